//! Legacy dialects: brace plugin modules, NeuroCode scripts and YAML-like plugin manifests, recognised from strong markers and reported once instead of a cascade of parser errors.
//!
//! [`scan`] finds the legacy constructs of a file line by line (outside strings and comments)
//! and decides, for each site, whether it has a faithful Aether mapping ([`Rewrite`]) or not
//! (a reason). `aether check` reports a recognised file with one A401 diagnostic that names
//! the dialect and counts the constructs, plus one diagnostic per construct kind (its own rule
//! id, for `aether classify`'s buckets); `aether migrate` applies exactly the rewrites found
//! here, so the count `check` announces is the count `migrate` converts.
//!
//! Recognition needs strong markers: a file is recognised only when it has parse errors, at
//! least one construct that cannot be Aether 1.2 (`think "..."`, `remember ... as`, `plugin
//! NAME {`, `plugin "NAME":`, `define ... end`, ...), and a parse error on a construct's
//! line. A real Aether file's diagnostics are never replaced.

use std::collections::{BTreeMap, BTreeSet};

use aether_syntax::{Diagnostic, ResultCode, Rule, Span};

use crate::codes;

/// A legacy dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dialect {
    BracePlugin,
    NeuroCode,
    YamlManifest,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::BracePlugin => "brace plugin",
            Dialect::NeuroCode => "NeuroCode",
            Dialect::YamlManifest => "YAML plugin manifest",
        }
    }
}

/// A legacy construct; each has its own rule id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Construct {
    PluginModule,
    BraceFn,
    Manifest,
    Think,
    RememberAs,
    Recall,
    Learn,
    Suggest,
    When,
    Define,
    GoalPriority,
    AgentSwitch,
    TextValue,
}

impl Construct {
    pub fn rule(self) -> &'static Rule {
        match self {
            Construct::PluginModule => &codes::BRACE_PLUGIN_MODULE,
            Construct::BraceFn => &codes::BRACE_FUNCTION,
            Construct::Manifest => &codes::YAML_PLUGIN_MANIFEST,
            Construct::Think => &codes::NEUROCODE_THINK,
            Construct::RememberAs => &codes::NEUROCODE_REMEMBER_AS,
            Construct::Recall => &codes::NEUROCODE_RECALL,
            Construct::Learn => &codes::NEUROCODE_LEARN,
            Construct::Suggest => &codes::NEUROCODE_SUGGEST,
            Construct::When => &codes::NEUROCODE_WHEN,
            Construct::Define => &codes::NEUROCODE_DEFINE,
            Construct::GoalPriority => &codes::GOAL_WITH_PRIORITY,
            Construct::AgentSwitch => &codes::NEUROCODE_AGENT_SWITCH,
            Construct::TextValue => &codes::UNQUOTED_TEXT_VALUE,
        }
    }

    /// The short name counted in the A401 message, singular and plural.
    fn counted(self) -> (&'static str, &'static str) {
        match self {
            Construct::PluginModule => ("plugin module", "plugin modules"),
            Construct::BraceFn => ("fn", "fn"),
            Construct::Manifest => ("manifest", "manifests"),
            Construct::Think => ("think", "think"),
            Construct::RememberAs => ("remember ... as", "remember ... as"),
            Construct::Recall => ("recall", "recall"),
            Construct::Learn => ("learn", "learn"),
            Construct::Suggest => ("suggest", "suggest"),
            Construct::When => ("when block", "when blocks"),
            Construct::Define => ("define ... end", "define ... end"),
            Construct::GoalPriority => ("goal ... priority", "goal ... priority"),
            Construct::AgentSwitch => ("agent switch", "agent switches"),
            Construct::TextValue => ("unquoted text value", "unquoted text values"),
        }
    }

    /// How a report names the construct: `NeuroCode `remember ... as``.
    pub fn title(self) -> &'static str {
        match self {
            Construct::PluginModule => "brace plugin module",
            Construct::BraceFn => "brace plugin `fn`",
            Construct::Manifest => "YAML plugin manifest",
            Construct::Think => "NeuroCode `think`",
            Construct::RememberAs => "NeuroCode `remember ... as`",
            Construct::Recall => "NeuroCode `recall`",
            Construct::Learn => "NeuroCode `learn`",
            Construct::Suggest => "NeuroCode `suggest`",
            Construct::When => "NeuroCode `when COND:`",
            Construct::Define => "NeuroCode `define ... end`",
            Construct::GoalPriority => "`goal: TEXT priority: LEVEL`",
            Construct::AgentSwitch => "NeuroCode `agent: on`",
            Construct::TextValue => "unquoted text value",
        }
    }

    /// What `aether migrate` writes instead, for a site it converts.
    pub fn mapping(self) -> &'static str {
        match self {
            Construct::Think => "`narrate(\"...\")`",
            Construct::RememberAs => "`memory.store(x, tags=[\"tag\"])`",
            Construct::Recall => "`memory.recall(...)`",
            Construct::When => "`if COND:`",
            Construct::Define => "`action NAME(args):`",
            Construct::GoalPriority => "a quoted goal and `priority` under `meta:`",
            Construct::TextValue => "a string literal",
            _ => "nothing: it has no Aether equivalent",
        }
    }

    /// The dialect the construct marks (`None`: found in several dialects, a weak marker).
    fn dialect(self) -> Option<Dialect> {
        match self {
            Construct::PluginModule | Construct::BraceFn => Some(Dialect::BracePlugin),
            Construct::Manifest => Some(Dialect::YamlManifest),
            Construct::GoalPriority | Construct::TextValue => None,
            _ => Some(Dialect::NeuroCode),
        }
    }

    /// Constructs taken from a line even when it parses: they are never rewritten, and
    /// inside a brace module or after `agent: on` the parser reports only the first line.
    fn reported_anywhere(self) -> bool {
        matches!(
            self,
            Construct::PluginModule
                | Construct::BraceFn
                | Construct::Manifest
                | Construct::AgentSwitch
        )
    }

    /// Strong markers: forms that cannot be Aether 1.2.
    fn strong(self) -> bool {
        !matches!(
            self,
            Construct::When
                | Construct::GoalPriority
                | Construct::TextValue
                | Construct::BraceFn
                | Construct::AgentSwitch
        )
    }
}

/// A faithful rewrite of one site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// Replace the site's code (after the indentation, before a trailing comment) with this.
    Code(String),
    /// `define NAME(args)` ... `end`: the header line's code becomes `header`, the `end` line
    /// (0-based) goes, and the body lines `body` get `shift` more spaces of indentation.
    Define {
        header: String,
        end_line: usize,
        body: std::ops::Range<usize>,
        shift: usize,
    },
    /// `goal: TEXT priority: LEVEL`: the line's code becomes `goal`, and `priority: "LEVEL"`
    /// goes under the top-level `meta:` (or `metadata:`) block, which is created after the
    /// goal line when there is none.
    GoalPriority { goal: String, priority: String },
}

/// One occurrence of a legacy construct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub construct: Construct,
    /// 0-based line.
    pub line: usize,
    /// The construct's code on its line (without indentation and trailing comment).
    pub span: Span,
    /// The faithful rewrite, or why there is none.
    pub rewrite: Result<Rewrite, &'static str>,
}

/// A file recognised as written in a legacy dialect.
#[derive(Clone, Debug)]
pub struct Recognition {
    pub dialect: Dialect,
    pub sites: Vec<Site>,
}

impl Recognition {
    /// Sites per construct, in rule order: (construct, sites, convertible).
    pub fn counts(&self) -> Vec<(Construct, usize, usize)> {
        let mut by: BTreeMap<Construct, (usize, usize)> = BTreeMap::new();
        for s in &self.sites {
            let e = by.entry(s.construct).or_default();
            e.0 += 1;
            e.1 += usize::from(s.rewrite.is_ok());
        }
        by.into_iter().map(|(c, (n, ok))| (c, n, ok)).collect()
    }

    /// Sites `aether migrate` converts.
    pub fn convertible(&self) -> usize {
        self.sites.iter().filter(|s| s.rewrite.is_ok()).count()
    }

    /// `this file is written in the NeuroCode dialect: 2 think, ...; aether migrate converts 3 of 4`.
    pub fn message(&self) -> String {
        let parts: Vec<String> = self
            .counts()
            .iter()
            .map(|(c, n, _)| {
                let (one, many) = c.counted();
                format!("{n} {}", if *n == 1 { one } else { many })
            })
            .collect();
        format!(
            "this file is written in the {} dialect: {}; aether migrate converts {} of {}",
            self.dialect.name(),
            parts.join(", "),
            self.convertible(),
            self.sites.len()
        )
    }
}

/// A line split into indentation, code and trailing comment (offsets into the line).
pub struct Split {
    /// Bytes of leading spaces and tabs.
    pub indent: usize,
    /// Where the code ends (before trailing whitespace and a comment).
    pub code_end: usize,
}

/// Where a line's code ends: before a `#` or `//` comment outside strings, trailing
/// whitespace trimmed.
pub fn split(line: &str) -> Split {
    let indent = line.len() - line.trim_start_matches([' ', '\t', '\u{FEFF}']).len();
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = indent;
    let mut end = line.len();
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => {
                if b == b'"' || b == b'\'' {
                    quote = Some(b);
                } else if b == b'#' || (b == b'/' && bytes.get(i + 1) == Some(&b'/')) {
                    end = i;
                    break;
                }
            }
        }
        i += 1;
    }
    let code_end = indent + line[indent..end].trim_end().len();
    Split { indent, code_end }
}

/// Whether `code` is a script with no parse error.
fn parses(code: &str) -> bool {
    !aether_syntax::parse(&format!("{code}\n")).has_errors()
}

/// Whether `text` is one expression.
fn is_expression(text: &str) -> bool {
    !text.trim().is_empty() && parses(&format!("let __legacy = ({text})"))
}

fn is_ident(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `word` followed by whitespace, `(` or `"` at the start of `code`: the rest.
fn after_word<'a>(code: &'a str, word: &str) -> Option<&'a str> {
    let rest = code.strip_prefix(word)?;
    match rest.chars().next() {
        Some(c) if c.is_whitespace() || c == '(' || c == '"' || c == '\'' => Some(rest.trim()),
        _ => None,
    }
}

/// The last ` as ` in `text` outside strings.
fn last_as(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut found = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if bytes[i..].starts_with(b" as ") => found = Some(i),
            None => {}
        }
        i += 1;
    }
    found
}

/// `text` as a double-quoted Aether string.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Text a mapping value means plainly: words, digits, `-`, `_`, `.`, `/` and spaces, with a
/// letter, that is not a number-with-unit (`5min`, left to the duration rules).
fn plain_text(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty()
        || !v.chars().any(|c| c.is_ascii_alphabetic())
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ' '))
    {
        return false;
    }
    // `5min`, `1.5sec`: digits then letters is a mistyped duration, not text.
    let digits = v.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    if digits.len() < v.len() && digits.chars().all(|c| c.is_ascii_alphabetic()) {
        return false;
    }
    !matches!(v, "true" | "false" | "null")
}

/// Statement keywords that are never mapping keys.
const NOT_KEYS: &[&str] = &[
    "goal", "intent", "if", "elif", "else", "for", "while", "when", "agent", "return", "define",
];

/// The legacy constructs of `src`. `error_lines` are the 0-based lines with a parse error:
/// unquoted text values are only sites there.
pub fn scan(src: &str, error_lines: &BTreeSet<usize>) -> Vec<Site> {
    let lines: Vec<&str> = src.split('\n').collect();
    let mut offsets = Vec::with_capacity(lines.len());
    let mut at = 0;
    for l in &lines {
        offsets.push(at);
        at += l.len() + 1;
    }
    let meta_has_priority = meta_block(&lines).is_some_and(|(_, keys)| keys.contains("priority"));
    let actions: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("action ")?.trim_start();
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            Some(rest[..end].to_string())
        })
        .collect();
    let mut sites = Vec::new();
    let mut ends_taken: BTreeSet<usize> = BTreeSet::new();
    for (n, raw) in lines.iter().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let sp = split(line);
        let code = &line[sp.indent..sp.code_end];
        if code.is_empty() {
            continue;
        }
        let span = Span::new(offsets[n] + sp.indent, offsets[n] + sp.code_end);
        let site = |construct, rewrite| Site {
            construct,
            line: n,
            span,
            rewrite,
        };
        // A line that parses is Aether, whatever its first word (`think(x)` may call an
        // action named `think`): only reported constructs, never rewritten ones, are taken
        // from lines without a parse error.
        let erroneous = error_lines.contains(&n);
        if let Some(s) = scan_line(code, sp.indent, meta_has_priority) {
            let (construct, rewrite) = s;
            // `recall("x")` parses, and still means NeuroCode's recall unless the file has
            // an action of that name.
            let call_of_undeclared = matches!(
                construct,
                Construct::Think | Construct::Recall | Construct::RememberAs
            ) && !actions.iter().any(|a| code.starts_with(a.as_str()));
            if erroneous || call_of_undeclared || construct.reported_anywhere() {
                sites.push(site(construct, rewrite));
            }
        } else if let Some(rest) = after_word(code, "define").filter(|_| erroneous) {
            let rewrite = define(rest, n, sp.indent, &lines, &mut ends_taken);
            sites.push(site(Construct::Define, rewrite));
        } else if erroneous {
            if let Some(text) = text_value(code) {
                sites.push(site(Construct::TextValue, Ok(Rewrite::Code(text))));
            }
        }
    }
    sites
}

/// The construct a single line is, if any (not `define`, not text values).
fn scan_line(
    code: &str,
    indent: usize,
    meta_has_priority: bool,
) -> Option<(Construct, Result<Rewrite, &'static str>)> {
    if indent == 0 {
        if let Some(rest) = code.strip_prefix("plugin ") {
            let rest = rest.trim();
            if rest.ends_with('{') && is_ident(rest.trim_end_matches('{').trim()) {
                return Some((
                    Construct::PluginModule,
                    Err("no Aether equivalent: a plugin is a separate program with a manifest (docs/plugins.md)"),
                ));
            }
            if rest.starts_with('"') && rest.ends_with(':') {
                return Some((
                    Construct::Manifest,
                    Err("not a script: write a workflow with `workflow NAME:` and `steps:`, and the plugin's manifest as docs/plugins.md describes"),
                ));
            }
        }
        if let Some(rest) = code.strip_prefix("goal:") {
            if let Some(r) = goal_priority(rest, meta_has_priority) {
                return Some((Construct::GoalPriority, r));
            }
        }
        if let Some(rest) = code.strip_prefix("agent:") {
            if matches!(
                rest.trim(),
                "on" | "off" | "true" | "false" | "enabled" | "disabled"
            ) {
                return Some((
                    Construct::AgentSwitch,
                    Err("no Aether equivalent: `agent:` is reserved and not implemented in Aether 1.2"),
                ));
            }
        }
    }
    if let Some(rest) = code.strip_prefix("fn ") {
        let rest = rest.trim_start();
        let name_end = rest.find('(').unwrap_or(0);
        if name_end > 0 && is_ident(rest[..name_end].trim()) && rest.ends_with('{') {
            return Some((
                Construct::BraceFn,
                Err("no Aether equivalent: part of a brace plugin module"),
            ));
        }
    }
    if let Some(rest) = after_word(code, "think") {
        let text = format!("narrate({rest})");
        let r = if is_expression(rest) && parses(&text) {
            Ok(Rewrite::Code(text))
        } else {
            Err("not a plain `think \"text\"`: rewrite it by hand")
        };
        return Some((Construct::Think, r));
    }
    if let Some(rest) = after_word(code, "remember") {
        return Some((Construct::RememberAs, remember(rest)));
    }
    if let Some(rest) = after_word(code, "recall") {
        let args = match rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            Some(inner) if parses(&format!("f({inner})")) => inner.to_string(),
            _ => rest.to_string(),
        };
        let text = format!("memory.recall({args})");
        let r = if parses(&text) && (is_expression(&args) || rest.starts_with('(')) {
            Ok(Rewrite::Code(text))
        } else {
            Err("not a plain `recall QUERY`: rewrite it by hand")
        };
        return Some((Construct::Recall, r));
    }
    if after_word(code, "learn").is_some() {
        return Some((
            Construct::Learn,
            Err("no Aether equivalent: `learn` has no faithful mapping"),
        ));
    }
    if after_word(code, "suggest").is_some() {
        return Some((
            Construct::Suggest,
            Err("no Aether equivalent: `suggest` has no faithful mapping"),
        ));
    }
    if let Some(rest) = code.strip_prefix("when ") {
        if let Some(cond) = rest.trim().strip_suffix(':') {
            let cond = cond.trim();
            let r = if is_ident(cond) {
                Err("event-style trigger: `when NAME:` waits for an event, which Aether has no form for; rewrite it by hand")
            } else if is_expression(cond) {
                Ok(Rewrite::Code(format!("if {cond}:")))
            } else {
                Err("not a plain condition: rewrite it by hand")
            };
            return Some((Construct::When, r));
        }
    }
    None
}

/// `remember(x) as "tag"` / `remember x as "tag"` / `remember(x)`.
fn remember(rest: &str) -> Result<Rewrite, &'static str> {
    let (value, tag) = match last_as(rest) {
        Some(i) => (rest[..i].trim(), Some(rest[i + 4..].trim())),
        None => (rest, None),
    };
    let value = match value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
        Some(inner) if is_expression(inner) => inner,
        _ => value,
    };
    let text = match tag {
        Some(tag) if tag.starts_with('"') || tag.starts_with('\'') => {
            format!("memory.store({value}, tags=[{tag}])")
        }
        Some(_) => return Err("the tag is not a string: rewrite it by hand"),
        None => format!("memory.store({value})"),
    };
    if is_expression(value) && parses(&text) {
        Ok(Rewrite::Code(text))
    } else {
        Err("not a plain `remember(x) as \"tag\"`: rewrite it by hand")
    }
}

/// `goal: TEXT priority: LEVEL` (the text after `goal:`).
fn goal_priority(rest: &str, meta_has_priority: bool) -> Option<Result<Rewrite, &'static str>> {
    let at = rest.rfind(" priority:")?;
    let text = rest[..at].trim();
    let level = rest[at + " priority:".len()..].trim();
    if !is_ident(level) {
        return None;
    }
    if meta_has_priority {
        return Some(Err(
            "`meta:` already has a `priority`: decide which one holds by hand",
        ));
    }
    let goal = if text.starts_with('"') && parses(&format!("goal: {text}")) {
        text.to_string()
    } else if text.is_empty() {
        return Some(Err("no goal text before `priority:`"));
    } else {
        quote(text)
    };
    Some(Ok(Rewrite::GoalPriority {
        goal: format!("goal: {goal}"),
        priority: level.to_string(),
    }))
}

/// `key: text` where the text (or the key) is plain text without quotes.
fn text_value(code: &str) -> Option<String> {
    let colon = code.find(':')?;
    let key = code[..colon].trim_end();
    let value = code[colon + 1..].trim();
    let key_ok = is_ident(key) && !NOT_KEYS.contains(&key);
    let key_text = !key_ok
        && key.contains(['-', '.'])
        && !key.starts_with(['"', '-'])
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !key_ok && !key_text {
        return None;
    }
    let new_key = if key_text {
        quote(key)
    } else {
        key.to_string()
    };
    let new_value = if value.is_empty() || is_expression(value) {
        value.to_string()
    } else if plain_text(value) {
        quote(value)
    } else {
        return None;
    };
    if !key_text && new_value == value {
        return None;
    }
    let text = if new_value.is_empty() {
        format!("{new_key}:")
    } else {
        format!("{new_key}: {new_value}")
    };
    Some(text)
}

/// The top-level `meta:`/`metadata:` block: its header line and its keys.
pub fn meta_block(lines: &[&str]) -> Option<(usize, BTreeSet<String>)> {
    let header = lines.iter().position(|l| {
        let code = &l[..split(l).code_end];
        code == "meta:" || code == "metadata:"
    })?;
    let mut keys = BTreeSet::new();
    for l in &lines[header + 1..] {
        let sp = split(l);
        let code = &l[sp.indent..sp.code_end];
        if code.is_empty() {
            continue;
        }
        if sp.indent == 0 {
            break;
        }
        if let Some(colon) = code.find(':') {
            keys.insert(code[..colon].trim().trim_matches('"').to_string());
        }
    }
    Some((header, keys))
}

/// `define NAME(args)` at line `n`: the matching `end` and the rewrite.
fn define(
    rest: &str,
    n: usize,
    indent: usize,
    lines: &[&str],
    ends_taken: &mut BTreeSet<usize>,
) -> Result<Rewrite, &'static str> {
    let head = rest.trim_end_matches(':').trim();
    let header = format!("action {head}:");
    let open = head
        .find('(')
        .ok_or("no parameter list: rewrite it by hand")?;
    if !is_ident(head[..open].trim()) || !parses(&format!("{header}\n    return null")) {
        return Err("not a plain `define NAME(args)`: rewrite it by hand");
    }
    let mut end_line = None;
    let mut body_min_indent = usize::MAX;
    for (k, raw) in lines.iter().enumerate().skip(n + 1) {
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        let sp = split(l);
        let code = &l[sp.indent..sp.code_end];
        if code.is_empty() {
            continue;
        }
        if code == "end" && sp.indent == indent && !ends_taken.contains(&k) {
            end_line = Some(k);
            break;
        }
        if sp.indent < indent || after_word(code, "define").is_some() {
            break;
        }
        body_min_indent = body_min_indent.min(sp.indent);
    }
    let end_line = end_line.ok_or("no matching `end`: rewrite it by hand")?;
    ends_taken.insert(end_line);
    if body_min_indent == usize::MAX {
        return Err("an empty body: rewrite it by hand");
    }
    let shift = if body_min_indent > indent {
        0
    } else {
        indent + 4 - body_min_indent
    };
    Ok(Rewrite::Define {
        header,
        end_line,
        body: n + 1..end_line,
        shift,
    })
}

/// The 0-based lines of parse errors (not of reserved features such as `agent:` blocks).
pub fn error_lines(src: &str, diags: &[Diagnostic]) -> BTreeSet<usize> {
    // One index for all diagnostics: counting the newlines before each one was quadratic
    // (1,900 errors in an 8 MB file took minutes).
    let index = aether_syntax::LineIndex::new(src);
    diags
        .iter()
        .filter(|d| d.is_error() && d.code() == ResultCode::ParseError && !d.labels().is_empty())
        .map(|d| {
            let at = (d.span().start as usize).min(src.len());
            index.line_col(src, at as u32).line as usize - 1
        })
        .collect()
}

/// Recognise a legacy dialect from `src` and its parse diagnostics (see the module docs).
pub fn recognize(src: &str, parse_diags: &[Diagnostic]) -> Option<Recognition> {
    if !parse_diags.iter().any(Diagnostic::is_error) {
        return None;
    }
    let errors = error_lines(src, parse_diags);
    let sites = scan(src, &errors);
    let mut votes: BTreeMap<Dialect, usize> = BTreeMap::new();
    for s in sites.iter().filter(|s| s.construct.strong()) {
        if let Some(d) = s.construct.dialect() {
            *votes.entry(d).or_default() += 1;
        }
    }
    let dialect = votes
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(d, _)| *d)?;
    // A parse error on a construct's line (or inside a brace module): the constructs are
    // what the parser tripped over.
    let lines: BTreeSet<usize> = sites.iter().map(|s| s.line).collect();
    let braced = dialect == Dialect::BracePlugin;
    if !braced && errors.is_disjoint(&lines) {
        return None;
    }
    Some(Recognition { dialect, sites })
}

/// The diagnostics of a recognised file: one A401 naming the dialect and counts, then one per
/// construct kind at its first site (the others as secondary labels, lines in a note).
pub fn diagnostics(rec: &Recognition) -> Vec<Diagnostic> {
    // The first site, so that the file's verdict (its first error) is this diagnostic.
    let Some(first) = rec.sites.first() else {
        return Vec::new();
    };
    let mut out = vec![Diagnostic::new(&codes::LEGACY_DIALECT, rec.message())
        .with_primary(first.span, format!("{} starts here", rec.dialect.name()))
        .with_help(if rec.convertible() > 0 {
            "run `aether migrate --dry-run` on this file to see the rewrite; the constructs it cannot convert are listed with their rule ids"
        } else {
            "`aether migrate` cannot convert any of it: these constructs have no faithful Aether mapping"
        })
        .with_note("parser errors are not reported for a file in a legacy dialect: they would all be about the dialect")];
    for (construct, n, ok) in rec.counts() {
        let sites: Vec<&Site> = rec
            .sites
            .iter()
            .filter(|s| s.construct == construct)
            .collect();
        let lines: Vec<String> = sites.iter().map(|s| (s.line + 1).to_string()).collect();
        let mut d = Diagnostic::new(
            construct.rule(),
            format!(
                "{} is not Aether: {n} site{} (line{} {})",
                construct.title(),
                if n == 1 { "" } else { "s" },
                if n == 1 { "" } else { "s" },
                lines.join(", ")
            ),
        )
        .with_primary(sites[0].span, construct.title());
        for s in sites.iter().skip(1).take(20) {
            d = d.with_secondary(s.span, "here too");
        }
        d = if ok == n {
            d.with_help(format!(
                "`aether migrate` rewrites it to {}",
                construct.mapping()
            ))
        } else {
            let why = sites
                .iter()
                .find_map(|s| s.rewrite.as_ref().err())
                .copied()
                .unwrap_or_default();
            d.with_help(format!(
                "`aether migrate` converts {ok} of {n} (to {}); the rest: {why}",
                construct.mapping()
            ))
        };
        out.push(d);
    }
    out
}

/// In a file in no legacy dialect, the weak markers with a parse error on their line get
/// their own diagnostic instead of the parser's errors on that line: a `key: plain text`
/// line (`model: gpt-4o`, `cache: 100_MB`) one "quote this text" (A420) with a fix, instead
/// of an invalid duration unit or an unexpected name; `goal: TEXT priority: LEVEL` A417,
/// instead of A008's fix that would fold the priority into the goal text.
pub fn quote_text_values(src: &str, mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let errors = error_lines(src, &diags);
    let sites: Vec<Site> = scan(src, &errors)
        .into_iter()
        .filter(|s| {
            matches!(s.construct, Construct::TextValue | Construct::GoalPriority)
                && errors.contains(&s.line)
        })
        .collect();
    if sites.is_empty() {
        return diags;
    }
    let lines: BTreeSet<usize> = sites.iter().map(|s| s.line).collect();
    let line_of = |d: &Diagnostic| {
        let at = (d.span().start as usize).min(src.len());
        src.as_bytes()[..at].iter().filter(|b| **b == b'\n').count()
    };
    diags.retain(|d| {
        !(d.is_error() && d.code() == ResultCode::ParseError && lines.contains(&line_of(d)))
    });
    for s in sites {
        if s.construct == Construct::GoalPriority {
            diags.push(goal_priority_diagnostic(&s));
            continue;
        }
        let Ok(Rewrite::Code(fixed)) = &s.rewrite else {
            continue;
        };
        let was = src.get(s.span.range()).unwrap_or_default();
        diags.push(
            Diagnostic::new(
                &codes::UNQUOTED_TEXT_VALUE,
                "this looks like text: quote it".to_string(),
            )
            .with_primary(s.span, "plain text without quotes")
            .with_help(format!(
                "write `{fixed}`; `aether migrate` quotes it for you"
            ))
            .with_fix(aether_syntax::diagnostic::Fix {
                description: format!("quote the text: `{fixed}`"),
                span: s.span,
                replacement: fixed.clone(),
            })
            .with_note(format!(
                "`{was}` is not one value: unquoted, it reads as names, numbers and operators"
            )),
        );
    }
    aether_syntax::diagnostic::sort_diagnostics(&mut diags);
    diags
}

/// A417 for a goal line that carries a priority.
fn goal_priority_diagnostic(s: &Site) -> Diagnostic {
    let d = Diagnostic::new(
        &codes::GOAL_WITH_PRIORITY,
        "`priority:` is not part of the goal text",
    )
    .with_primary(s.span, "a goal and a priority on one line");
    match &s.rewrite {
        Ok(Rewrite::GoalPriority { goal, priority }) => d.with_help(format!(
            "write `{goal}` and `priority: {}` under `meta:`; `aether migrate` does it for you",
            quote(priority)
        )),
        Ok(_) => d,
        Err(why) => d.with_help(why.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(src: &str) -> Option<Recognition> {
        recognize(src, &aether_syntax::parse(src).diagnostics)
    }

    #[test]
    fn neurocode_is_recognised_with_counts() {
        let src = "goal: ship it priority: high\nthink \"a\"\nthink \"b\"\nremember(x) as \"t\"\nwhen x > 1:\n    learn \"y\"\n";
        let r = rec(src).expect("recognised");
        assert_eq!(r.dialect, Dialect::NeuroCode);
        assert_eq!(
            r.message(),
            "this file is written in the NeuroCode dialect: 2 think, 1 remember ... as, 1 learn, 1 when block, 1 goal ... priority; aether migrate converts 5 of 6"
        );
    }

    #[test]
    fn a_line_that_parses_is_not_a_site() {
        // `think(x)` calls an action named `think`; the file's error is elsewhere.
        let src = "action think(x):\n    return x\nthink(1)\nthink \"a\"\n";
        let errors = error_lines(src, &aether_syntax::parse(src).diagnostics);
        let lines: Vec<usize> = scan(src, &errors).iter().map(|s| s.line).collect();
        assert_eq!(lines, [3]);
        // Without such an action, `recall("x")` is NeuroCode's recall.
        let src = "think \"a\"\nrecall(\"x\")\n";
        let errors = error_lines(src, &aether_syntax::parse(src).diagnostics);
        assert_eq!(scan(src, &errors).len(), 2);
    }

    #[test]
    fn aether_files_are_not_recognised() {
        assert!(rec("goal: \"x\"\nlet think = 1\nprint(think)\n").is_none());
        assert!(rec("goal: \"x\"\nprint(\n").is_none());
        assert!(rec("goal: \"x\"\nwhen x > 1:\n    print(1)\n").is_none());
    }

    #[test]
    fn rewrites_are_faithful_or_absent() {
        let code = |src: &str| {
            let errors = error_lines(src, &aether_syntax::parse(src).diagnostics);
            scan(src, &errors)[0].rewrite.clone()
        };
        assert_eq!(
            code("remember(\"x\") as \"tag\""),
            Ok(Rewrite::Code("memory.store(\"x\", tags=[\"tag\"])".into()))
        );
        assert_eq!(
            code("recall \"deploys\""),
            Ok(Rewrite::Code("memory.recall(\"deploys\")".into()))
        );
        assert!(code("when user_requested:").is_err());
        assert_eq!(code("when a == 1:"), Ok(Rewrite::Code("if a == 1:".into())));
        assert!(code("think about it").is_err());
        assert_eq!(
            code("goal: create secure web application priority: critical"),
            Ok(Rewrite::GoalPriority {
                goal: "goal: \"create secure web application\"".into(),
                priority: "critical".into()
            })
        );
    }

    #[test]
    fn define_finds_its_end_and_shifts_a_flat_body() {
        let src = "define greet(name)\nthink \"hi\"\nend\n";
        let sites = scan(
            src,
            &error_lines(src, &aether_syntax::parse(src).diagnostics),
        );
        assert_eq!(
            sites[0].rewrite,
            Ok(Rewrite::Define {
                header: "action greet(name):".into(),
                end_line: 2,
                body: 1..2,
                shift: 4
            })
        );
    }

    #[test]
    fn text_values_are_quoted_but_durations_left_alone() {
        assert_eq!(
            text_value("model: gpt-4o"),
            Some("model: \"gpt-4o\"".into())
        );
        assert_eq!(
            text_value("limit: 100_MB"),
            Some("limit: \"100_MB\"".into())
        );
        assert_eq!(text_value("timeout: 5min"), None);
        assert_eq!(
            text_value("max-tokens: 100"),
            Some("\"max-tokens\": 100".into())
        );
        assert_eq!(text_value("x: f(1)"), None);
        assert_eq!(text_value("agent:"), None);
        // Multi-byte text never splits a character.
        assert!(remember("(\"é\\\"x\") as \"t\"").is_ok());
        assert_eq!(last_as("é\\é as b"), Some(5));
        assert_eq!(
            text_value("name: My Assistant"),
            Some("name: \"My Assistant\"".into())
        );
    }
}
