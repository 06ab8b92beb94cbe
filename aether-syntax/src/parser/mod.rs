//! The parser: LALRPOP over the layout tokens, with error recovery. `parse()` is the only
//! public entry; `lalrpop_util` types never leave this module.

mod build;
mod climb;

use lalrpop_util::{ErrorRecovery, ParseError};

use crate::ast::{Item, ListItem, MapEntry, MapValue, Script, Stmt, StmtKind};
use crate::diagnostic::{sort_diagnostics, Diagnostic};
use crate::lexer::lex;
use crate::rules;
use crate::span::{LineIndex, Span};
use crate::token::Tok;

lalrpop_util::lalrpop_mod!(
    // Generated code: its style is LALRPOP's, not ours.
    #[allow(
        clippy::all,
        clippy::pedantic,
        unreachable_pub,
        unused_qualifications,
        dead_code
    )]
    grammar,
    "/parser/grammar.rs"
);

/// A syntax tree plus every lexical and syntax diagnostic, sorted by position.
/// Parsing never fails outright: a broken statement becomes an `Error` node.
#[derive(Debug)]
pub struct Parsed {
    pub ast: Script,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parse a whole `.aether` source text.
pub fn parse(src: &str) -> Parsed {
    let lexed = lex(src);
    let mut diags = lexed.diagnostics;
    let mut recovered: Vec<ErrorRecovery<usize, Tok<'_>, ()>> = Vec::new();
    let mut grammar_diags = Vec::new();
    let result = grammar::ScriptParser::new().parse(
        &mut recovered,
        &mut grammar_diags,
        lexed.tokens.into_iter().map(Ok::<_, ()>),
    );
    let ast = match result {
        Ok(script) => script,
        Err(err) => {
            recovered.push(ErrorRecovery {
                error: err,
                dropped_tokens: vec![],
            });
            Script { items: vec![] }
        }
    };
    // A chained comparison is a syntax error found by the precedence pass (climb.rs), not by
    // the grammar: it takes part in the one-per-line rule below with the recovered ones.
    // (An inner chain is reported first, when its parentheses close: sort them by position.)
    let (mut chained, grammar_diags): (Vec<Diagnostic>, Vec<Diagnostic>) = grammar_diags
        .into_iter()
        .partition(|d| std::ptr::eq(d.rule(), &rules::SYNTAX_ERROR));
    chained.sort_by_key(|d| d.span().start);
    diags.extend(grammar_diags);
    check_layout(&ast, &mut diags);

    // One syntax error per line: recovery can trip more than once over the same mistake,
    // and a lexical error already explains the tokens around it. (The line index is
    // built only for a file with syntax errors.)
    if !recovered.is_empty() || !chained.is_empty() {
        let index = LineIndex::new(src);
        let mut lines_with_errors: Vec<u32> = diags
            .iter()
            .map(|d| index.line_col(src, d.span().start).line)
            .collect();
        let mut keep = |d: Diagnostic, diags: &mut Vec<Diagnostic>| {
            let line = index.line_col(src, d.span().start).line;
            if !lines_with_errors.contains(&line) {
                lines_with_errors.push(line);
                diags.push(d);
            }
        };
        let mut chained = chained.into_iter().peekable();
        for rec in recovered {
            let d = syntax_error(rec.error, src.len());
            while let Some(c) = chained.next_if(|c| c.span().start < d.span().start) {
                keep(c, &mut diags);
            }
            keep(d, &mut diags);
        }
        for c in chained {
            keep(c, &mut diags);
        }
    }
    sort_diagnostics(&mut diags);
    Parsed {
        ast,
        diagnostics: diags,
    }
}

fn describe_expected(expected: &[String]) -> String {
    let mut names: Vec<&str> = expected.iter().map(|e| e.trim_matches('"')).collect();
    // Closers and separators are the likeliest fixes: list them first.
    let rank = |n: &&str| match *n {
        ")" | "]" | "}" | "," | ":" | "=" | "newline" => 0,
        _ => 1,
    };
    names.sort_by_key(rank);
    let is_expr_start = |n: &str| {
        matches!(
            n,
            "int"
                | "float"
                | "duration"
                | "string"
                | "name"
                | "true"
                | "false"
                | "null"
                | "("
                | "["
                | "{"
                | "-"
                | "not"
                | "!"
                | "policy"
                | "workflow"
                | "memory"
        )
    };
    let mut out: Vec<String> = Vec::new();
    if names.contains(&"int") && names.contains(&"name") {
        out.push("an expression".into());
    }
    for n in &names {
        if out.len() >= 7 {
            out.push("…".into());
            break;
        }
        if !out.is_empty() && out[0] == "an expression" && is_expr_start(n) {
            continue;
        }
        out.push(match *n {
            "name" => "a name".into(),
            "int" | "float" => "a number".into(),
            "duration" => "a duration".into(),
            "string" => "a string".into(),
            "newline" => "end of line".into(),
            "indent" => "an indented block".into(),
            "dedent" => "end of block".into(),
            "-item" => "a `-` list item".into(),
            "unquoted text" | "reserved block" => continue,
            other => format!("`{other}`"),
        });
    }
    out.dedup();
    match out.len() {
        0 => "something else".into(),
        1 => out.remove(0),
        _ => format!("one of {}", out.join(", ")),
    }
}

fn syntax_error(err: ParseError<usize, Tok<'_>, ()>, eof: usize) -> Diagnostic {
    match err {
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => {
            let wanted = describe_expected(&expected);
            let span = Span::new(l, r);
            match tok {
                Tok::Indent => Diagnostic::new(&rules::SYNTAX_ERROR, "unexpected indentation")
                    .with_primary(span, "this line is indented")
                    .with_help("only a line ending in `:` opens an indented block; line this up with the line above"),
                Tok::Dedent => Diagnostic::new(
                    &rules::SYNTAX_ERROR,
                    format!("unexpected end of block, expected {wanted}"),
                )
                .with_primary(span, "the block ends here")
                .with_help("a block needs at least one indented line"),
                Tok::If if expected.iter().any(|e| e == "\":\"") => Diagnostic::new(
                    &rules::SYNTAX_ERROR,
                    format!("unexpected `if`, expected {wanted}"),
                )
                .with_primary(span, "unexpected here")
                .with_help("write `elif condition:` for an else-if branch"),
                Tok::Inputs => Diagnostic::new(&rules::SYNTAX_ERROR, "`inputs:` must be the first line of an action body")
                    .with_primary(span, "not the first line")
                    .with_help("move `inputs: [...]` to the line right after `action NAME:`, or declare the parameters as `action NAME(a, b):`"),
                Tok::Newline => Diagnostic::new(
                    &rules::SYNTAX_ERROR,
                    format!("unexpected end of line, expected {wanted}"),
                )
                .with_primary(span, "line ends here"),
                other => Diagnostic::new(
                    &rules::SYNTAX_ERROR,
                    format!("unexpected {}, expected {wanted}", other.describe()),
                )
                .with_primary(span, "unexpected here"),
            }
        }
        ParseError::UnrecognizedEof { location, expected } => Diagnostic::new(
            &rules::SYNTAX_ERROR,
            format!(
                "unexpected end of file, expected {}",
                describe_expected(&expected)
            ),
        )
        .with_primary(
            Span::new(location.min(eof), location.min(eof)),
            "file ends here",
        ),
        ParseError::ExtraToken { token: (l, tok, r) } => Diagnostic::new(
            &rules::SYNTAX_ERROR,
            format!("unexpected {}", tok.describe()),
        )
        .with_primary(Span::new(l, r), "unexpected here"),
        ParseError::InvalidToken { location } => {
            Diagnostic::new(&rules::SYNTAX_ERROR, "invalid token")
                .with_primary(Span::new(location, location), "here")
        }
        ParseError::User { error: () } => Diagnostic::new(&rules::SYNTAX_ERROR, "invalid input"),
    }
}

/// Structural rules the grammar keeps generic: `- item` statements belong in `transaction:`
/// blocks, and `as`/`key=value` options belong to workflow steps.
fn check_layout(script: &Script, diags: &mut Vec<Diagnostic>) {
    fn stmts(list: &[Stmt], in_transaction: bool, diags: &mut Vec<Diagnostic>) {
        for s in list {
            stmt(s, in_transaction, diags);
        }
    }
    fn stmt(s: &Stmt, in_transaction: bool, diags: &mut Vec<Diagnostic>) {
        match &s.kind {
            StmtKind::Item(_) if !in_transaction => diags.push(
                Diagnostic::new(
                    &rules::LIST_ITEM_OUTSIDE_LIST,
                    "`-` list item outside a list",
                )
                .with_primary(
                    Span::new(s.span.start as usize, s.span.start as usize + 1),
                    "list item here",
                )
                .with_help(
                    "`- call()` steps belong in a `transaction:` block; elsewhere drop the `-`",
                ),
            ),
            StmtKind::If {
                branches,
                else_block,
            } => {
                for (_, b) in branches {
                    stmts(&b.stmts, false, diags);
                }
                if let Some(b) = else_block {
                    stmts(&b.stmts, false, diags);
                }
            }
            StmtKind::For { body, .. }
            | StmtKind::While { body, .. }
            | StmtKind::Parallel(body) => stmts(&body.stmts, false, diags),
            StmtKind::Transaction(body) => stmts(&body.stmts, true, diags),
            _ => {}
        }
    }
    fn plain_items(entries: &[MapEntry], steps_allowed: bool, diags: &mut Vec<Diagnostic>) {
        for e in entries {
            match &e.value {
                MapValue::List(items) if !(steps_allowed && e.key == "steps") => {
                    for it in items {
                        item_options(it, diags);
                    }
                }
                MapValue::Map(inner) => plain_items(inner, false, diags),
                _ => {}
            }
        }
    }
    fn item_options(it: &ListItem, diags: &mut Vec<Diagnostic>) {
        let first = it
            .binding
            .as_ref()
            .map(|b| b.span)
            .or(it.options.first().map(|o| o.name.span));
        if let Some(span) = first {
            diags.push(
                Diagnostic::new(
                    &rules::MISPLACED_STEP_OPTION,
                    "`as` and `key=value` options are only allowed on workflow steps",
                )
                .with_primary(span, "not a workflow step")
                .with_help("move this item under a workflow's `steps:`, or remove the options"),
            );
        }
    }
    for item in &script.items {
        match item {
            Item::Stmt(s) => stmt(s, false, diags),
            Item::Action(a) => stmts(&a.body.stmts, false, diags),
            Item::Mapping(m) => plain_items(&m.entries, false, diags),
            Item::Workflow(w) => plain_items(&w.entries, true, diags),
            _ => {}
        }
    }
}
