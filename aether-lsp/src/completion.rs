//! Completion: block headers and statement keywords valid at the cursor, names in scope,
//! module members after `memory.`, keyword arguments inside a call, plugin names in strings.

use aether_check::decl::Registry;
use lsp_types::{CompletionItem, CompletionItemKind, CompletionResponse, InsertTextFormat, Url};

use crate::analysis;
use crate::document::Document;
use crate::index::DefKind;
use crate::server::{Analysed, Settings};

/// Block headers at the top level (snippets with a placeholder for the name).
const TOP_HEADERS: &[(&str, &str)] = &[
    ("goal:", "goal: \"$1\""),
    ("meta:", "meta:\n    $0"),
    ("metadata:", "metadata:\n    $0"),
    ("policy:", "policy:\n    $0"),
    ("require:", "require:\n    $0"),
    ("plugin_contract:", "plugin_contract:\n    $0"),
    ("on_error:", "on_error:\n    - when: $1\n      do: $0"),
    ("action", "action ${1:name}($2):\n    $0"),
    ("workflow", "workflow ${1:name}:\n    steps:\n        - $0"),
];

/// Statements that may start a line in a body.
const STATEMENTS: &[&str] = &[
    "let",
    "if",
    "for",
    "while",
    "return",
    "emit",
    "trigger",
    "sleep",
    "await",
    "assert",
    "parallel:",
    "transaction:",
    "memory:",
];

const META_KEYS: &[&str] = &[
    "name",
    "version",
    "author",
    "description",
    "seed",
    "requires",
];

/// Where the cursor is, from the text before it.
struct Context<'t> {
    /// The identifier being typed (possibly empty).
    word: &'t str,
    /// `target` in `target.word`.
    member_of: Option<&'t str>,
    /// Inside a string literal.
    in_string: bool,
    /// The callee of the innermost unclosed `(` (dotted), and whether the cursor is in its
    /// first argument.
    call: Option<(String, bool)>,
    /// Only whitespace (or a list dash) before the word on this line, outside brackets.
    line_start: bool,
    /// The text of the line before the cursor.
    prefix: &'t str,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// How far back the scan for an unclosed bracket looks.
const LOOKBACK: usize = 8 * 1024;

fn context<'t>(doc: &'t Document, offset: usize) -> Context<'t> {
    let text = &doc.text;
    let line_start = doc.line_start_of(offset);
    let prefix = &text[line_start..offset];
    let word_start = prefix
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_ident(*c))
        .last()
        .map_or(prefix.len(), |(i, _)| i);
    let word = &prefix[word_start..];
    let before = &prefix[..word_start];
    let member_of = before.strip_suffix('.').map(|t| {
        let start = t
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_ident(*c))
            .last()
            .map_or(t.len(), |(i, _)| i);
        &t[start..]
    });
    // Scan forward from a line start well before the cursor: strings end on their own line,
    // so a line start is outside any string.
    let scan_from = doc.line_start_of(offset.saturating_sub(LOOKBACK));
    let mut stack: Vec<(usize, char)> = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut commas: Vec<usize> = Vec::new();
    let bytes = &text[scan_from..offset];
    let mut iter = bytes.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q || c == '\n' {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '#' => skip_line(&mut iter),
            '/' if iter.peek().is_some_and(|(_, n)| *n == '/') => skip_line(&mut iter),
            '(' | '[' | '{' => {
                stack.push((scan_from + i, c));
                commas.push(0);
            }
            ')' | ']' | '}' => {
                stack.pop();
                commas.pop();
            }
            ',' => {
                if let Some(n) = commas.last_mut() {
                    *n += 1;
                }
            }
            _ => {}
        }
    }
    let call = match stack.last() {
        Some(&(pos, '(')) => {
            let head = &text[..pos];
            let start = head
                .char_indices()
                .rev()
                .take_while(|(_, c)| is_ident(*c) || *c == '.')
                .last()
                .map_or(head.len(), |(i, _)| i);
            let callee = head[start..].trim_matches('.').to_string();
            (!callee.is_empty()).then(|| (callee, commas.last() == Some(&0)))
        }
        _ => None,
    };
    let line_start = stack.is_empty()
        && quote.is_none()
        && before
            .trim_start()
            .trim_start_matches('-')
            .trim()
            .is_empty();
    Context {
        word,
        member_of,
        in_string: quote.is_some(),
        call,
        line_start,
        prefix,
    }
}

fn skip_line(iter: &mut std::iter::Peekable<std::str::CharIndices<'_>>) {
    while iter.next_if(|(_, c)| *c != '\n').is_some() {}
}

/// The headers enclosing the line at `offset`, innermost first: the first word of each
/// less-indented line above it (`workflow`, `steps:`, `for`, ...).
fn enclosing(doc: &Document, offset: usize) -> Vec<String> {
    let text = &doc.text;
    let line_start = doc.line_start_of(offset);
    let current = &text[line_start..offset];
    let mut indent = current.len() - current.trim_start().len();
    let mut out = Vec::new();
    for line in text[..line_start].lines().rev() {
        if indent == 0 {
            break;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("//") {
            continue;
        }
        let ind = line.len() - trimmed.len();
        if ind < indent {
            let head: String = trimmed
                .trim_start_matches('-')
                .trim_start()
                .chars()
                .take_while(|c| is_ident(*c) || *c == ':')
                .collect();
            out.push(head);
            indent = ind;
        }
    }
    out
}

/// The first word of the previous line at the same indentation (to offer `elif`/`else`).
fn previous_sibling(doc: &Document, offset: usize) -> Option<String> {
    let text = &doc.text;
    let line_start = doc.line_start_of(offset);
    let current = &text[line_start..offset];
    let indent = current.len() - current.trim_start().len();
    for line in text[..line_start].lines().rev() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("//") {
            continue;
        }
        let ind = line.len() - trimmed.len();
        if ind < indent {
            return None;
        }
        if ind == indent {
            return Some(trimmed.chars().take_while(|c| is_ident(*c)).collect());
        }
    }
    None
}

fn item(label: &str, kind: CompletionItemKind, detail: Option<String>) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail,
        ..CompletionItem::default()
    }
}

fn snippet(label: &str, body: &str) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(CompletionItemKind::KEYWORD),
        insert_text: Some(body.to_string()),
        insert_text_format: Some(InsertTextFormat::SNIPPET),
        ..CompletionItem::default()
    }
}

fn key_items(keys: &[&str]) -> Vec<CompletionItem> {
    keys.iter()
        .map(|k| CompletionItem {
            insert_text: Some(format!("{k}: ")),
            ..item(k, CompletionItemKind::PROPERTY, None)
        })
        .collect()
}

/// Plugin names discovered as `aether run` finds them for this file (`plugins/` beside it,
/// `plugins/` in the project root, `AETHER_PLUGIN_PATH`).
pub(crate) fn plugin_names(settings: &Settings, uri: &Url) -> Vec<String> {
    use aether_runtime::plugins::{search_dirs, PluginSettings, Plugins, ENV_PLUGIN_PATH};
    let file = uri.to_file_path().ok();
    let root = crate::diagnostics::project_root(settings, file.as_deref())
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let path = std::env::var(ENV_PLUGIN_PATH).ok();
    let dirs = search_dirs(
        file.as_deref().and_then(|f| f.parent()),
        &root,
        path.as_deref(),
    );
    let (plugins, _warnings) = Plugins::discover(&dirs, PluginSettings::default());
    plugins.names()
}

pub(crate) fn complete(
    registry: &Registry,
    a: &Analysed,
    doc: &Document,
    offset: usize,
    plugins: &dyn Fn() -> Vec<String>,
) -> Option<CompletionResponse> {
    let cx = context(doc, offset);
    let headers = enclosing(doc, offset);
    let inner = headers.first().map(String::as_str);
    let mut items = Vec::new();
    if cx.in_string {
        let plugin_arg = cx
            .call
            .as_ref()
            .is_some_and(|(callee, first)| callee == "plugins.invoke" && *first);
        let require_list =
            inner == Some("plugins:") && headers.get(1).map(String::as_str) == Some("require:");
        if plugin_arg || require_list {
            items.extend(
                plugins()
                    .into_iter()
                    .map(|p| item(&p, CompletionItemKind::MODULE, Some("plugin".into()))),
            );
        }
        return Some(CompletionResponse::Array(items));
    }
    if let Some(target) = cx.member_of {
        if analysis::is_module(registry, target) {
            items.extend(analysis::module_fns(registry, target).into_iter().map(|f| {
                CompletionItem {
                    documentation: Some(lsp_types::Documentation::String(f.doc.to_string())),
                    ..item(f.name, CompletionItemKind::FUNCTION, Some(f.signature))
                }
            }));
        } else if target == "policy" {
            items.extend(
                analysis::policy_keys()
                    .iter()
                    .map(|k| item(k, CompletionItemKind::PROPERTY, None)),
            );
        }
        return Some(CompletionResponse::Array(items));
    }
    // A `- when:` line of `on_error:`: the error kinds.
    if cx.prefix.trim_start().starts_with("- when:") || cx.prefix.trim_start().starts_with("when:")
    {
        items.extend(
            analysis::error_kinds()
                .iter()
                .map(|k| item(k, CompletionItemKind::ENUM_MEMBER, None)),
        );
        return Some(CompletionResponse::Array(items));
    }
    if cx.line_start {
        match inner {
            None => {
                items.extend(TOP_HEADERS.iter().map(|(l, b)| snippet(l, b)));
                items.extend(statements(&headers, doc, offset));
            }
            Some("policy:") => {
                items.extend(key_items(analysis::policy_keys()));
                return Some(CompletionResponse::Array(items));
            }
            Some("require:") => {
                items.extend(key_items(&["plugins", "capabilities"]));
                return Some(CompletionResponse::Array(items));
            }
            Some("meta:" | "metadata:") => {
                items.extend(key_items(META_KEYS));
                return Some(CompletionResponse::Array(items));
            }
            Some("on_error:") => {
                items.push(snippet("when:", "when: $1\n  do: $0"));
                return Some(CompletionResponse::Array(items));
            }
            Some("workflow") => {
                items.push(snippet("steps:", "steps:\n    - $0"));
                items.extend(key_items(&["input"]));
                return Some(CompletionResponse::Array(items));
            }
            Some("steps:") => {}
            Some(_) => items.extend(statements(&headers, doc, offset)),
        }
    }
    if inner == Some("steps:") && cx.call.is_none() && !cx.line_start {
        items.push(item("as", CompletionItemKind::KEYWORD, None));
        items.extend(analysis::step_options().iter().map(|o| CompletionItem {
            insert_text: Some(format!("{o}=")),
            ..item(o, CompletionItemKind::PROPERTY, Some("step option".into()))
        }));
    }
    if let Some((callee, _)) = &cx.call {
        items.extend(keyword_args(registry, a, callee));
    }
    items.extend(names(registry, a, offset));
    let _ = cx.word;
    Some(CompletionResponse::Array(items))
}

/// Statement keywords valid in a body with these enclosing headers.
fn statements(headers: &[String], doc: &Document, offset: usize) -> Vec<CompletionItem> {
    let mut out: Vec<CompletionItem> = STATEMENTS
        .iter()
        .map(|k| item(k, CompletionItemKind::KEYWORD, None))
        .collect();
    let in_loop = headers
        .iter()
        .take_while(|h| h.as_str() != "action")
        .any(|h| h == "for" || h == "while");
    if in_loop {
        out.push(item("break", CompletionItemKind::KEYWORD, None));
        out.push(item("continue", CompletionItemKind::KEYWORD, None));
    }
    if matches!(
        previous_sibling(doc, offset).as_deref(),
        Some("if" | "elif")
    ) {
        out.push(item("elif", CompletionItemKind::KEYWORD, None));
        out.push(item("else:", CompletionItemKind::KEYWORD, None));
    }
    if headers.first().map(String::as_str) == Some("action") {
        out.push(snippet("inputs:", "inputs: [$0]"));
    }
    out
}

/// `name=` for each parameter of the called native function or action.
fn keyword_args(registry: &Registry, a: &Analysed, callee: &str) -> Vec<CompletionItem> {
    let names: Vec<String> = match callee.split_once('.') {
        Some((m, f)) => analysis::native_fn(registry, Some(m), f)
            .map(|f| f.keywords.iter().map(|k| k.to_string()).collect())
            .unwrap_or_default(),
        None => match a
            .index
            .defs
            .iter()
            .find(|d| d.kind == DefKind::Action && d.name == callee)
        {
            Some(d) => d
                .params
                .iter()
                .map(|p| p.split(' ').next().unwrap_or(p).to_string())
                .collect(),
            None => analysis::native_fn(registry, None, callee)
                .map(|f| f.keywords.iter().map(|k| k.to_string()).collect())
                .unwrap_or_default(),
        },
    };
    names
        .into_iter()
        .map(|n| CompletionItem {
            insert_text: Some(format!("{n}=")),
            sort_text: Some(format!("0{n}")),
            ..item(
                &format!("{n}="),
                CompletionItemKind::FIELD,
                Some("keyword argument".into()),
            )
        })
        .collect()
}

/// Names usable in an expression at `offset`.
fn names(registry: &Registry, a: &Analysed, offset: usize) -> Vec<CompletionItem> {
    let at = offset as u32;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for d in a.index.defs.iter().rev() {
        let visible = match d.kind {
            DefKind::Action | DefKind::Workflow => true,
            _ => d.visible.start <= at && at <= d.visible.end,
        };
        if !visible || !seen.insert(d.name.clone()) {
            continue;
        }
        let kind = match d.kind {
            DefKind::Action => CompletionItemKind::FUNCTION,
            DefKind::Workflow => CompletionItemKind::MODULE,
            _ => CompletionItemKind::VARIABLE,
        };
        let detail = match d.kind {
            DefKind::Action => format!("action {}({})", d.name, d.params.join(", ")),
            kind => crate::navigation::kind_word(kind).to_string(),
        };
        out.push(item(&d.name, kind, Some(detail)));
    }
    for f in analysis::global_fns(registry) {
        if seen.insert(f.name.to_string()) {
            out.push(item(
                f.name,
                CompletionItemKind::FUNCTION,
                Some(f.signature),
            ));
        }
    }
    for m in analysis::modules(registry) {
        out.push(item(m, CompletionItemKind::MODULE, Some("module".into())));
    }
    for k in ["true", "false", "null", "not", "and", "or", "in"] {
        out.push(item(k, CompletionItemKind::KEYWORD, None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx_at(src: &str) -> (Document, usize) {
        let offset = src.find('|').expect("cursor");
        let text = src.replacen('|', "", 1);
        (Document::new(text, 1), offset)
    }

    #[test]
    fn member_call_and_string_contexts() {
        let (doc, at) = cx_at("let r = memory.re|\n");
        let cx = context(&doc, at);
        assert_eq!(cx.member_of, Some("memory"));
        assert_eq!(cx.word, "re");
        let (doc, at) = cx_at("plugins.invoke(\"sys|\n");
        let cx = context(&doc, at);
        assert!(cx.in_string);
        assert_eq!(cx.call, Some(("plugins.invoke".to_string(), true)));
        let (doc, at) = cx_at("log(\"a, (b\", le|");
        let cx = context(&doc, at);
        assert!(!cx.in_string);
        assert_eq!(cx.call, Some(("log".to_string(), false)));
    }

    #[test]
    fn headers_and_siblings() {
        let (doc, at) = cx_at(
            "action a(x):\n    for i in x:\n        if i:\n            print(i)\n        |\n",
        );
        assert_eq!(enclosing(&doc, at), vec!["for", "action"]);
        assert_eq!(previous_sibling(&doc, at).as_deref(), Some("if"));
        let (doc, at) = cx_at("x = 1\n|");
        assert!(enclosing(&doc, at).is_empty());
        assert!(context(&doc, at).line_start);
    }
}
