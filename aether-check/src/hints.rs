//! Diagnostics a new user needs: run-time failures caught at check time (`"n: " + 3`, `sleep "5s"`), endless `while true:` loops, and better help for common slips (`eles:`, `if x = 1:`, `retires=2`, `lenght(`).
//!
//! [`lint`] walks a parsed script for A132, A133 and A207; [`refine`] improves the help of
//! diagnostics the parser and checker already report, without changing what they report.

use aether_syntax::ast::{BinaryOp, Block, Expr, ExprKind, Item, MapValue, Script, Stmt, StmtKind};
use aether_syntax::diagnostic::Fix;
use aether_syntax::{rules, Diagnostic, Span};

use crate::codes;
use crate::decl::Registry;

/// Common other names of step options: (what people write, the option).
const STEP_OPTION_ALIASES: &[(&str, &str)] = &[
    ("retries", "retry"),
    ("retrys", "retry"),
    ("retry_count", "retry"),
    ("max_retries", "retry"),
    ("timeouts", "timeout"),
    ("require", "requires"),
    ("backoffs", "backoff"),
];

/// Common other names of built-in functions: (what people write, the function).
const FUNCTION_ALIASES: &[(&str, &str)] = &[
    ("length", "len"),
    ("size", "len"),
    ("println", "print"),
    ("echo", "print"),
    ("tostring", "str"),
    ("to_string", "str"),
    ("string", "str"),
];

/// How far a typo may be from a name: short names need a closer match.
fn allowed(name: &str) -> usize {
    match name.chars().count() {
        0..=3 => 1,
        4..=6 => 2,
        n => n / 3,
    }
}

/// The closest of `candidates` (each `(spelling, meaning)`) to `name`: the smallest
/// distance, then the longest common prefix (`retires` is `retries` before `requires`).
fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<&'a str> {
    let prefix = |c: &str| {
        name.chars()
            .zip(c.chars())
            .take_while(|(a, b)| a == b)
            .count()
    };
    candidates
        .into_iter()
        .filter(|(spelling, _)| *spelling != name)
        .map(|(spelling, meaning)| {
            (
                strsim::damerau_levenshtein(name, spelling),
                usize::MAX - prefix(spelling),
                meaning,
            )
        })
        .filter(|(d, _, _)| *d <= allowed(name))
        .min()
        .map(|(_, _, meaning)| meaning)
}

/// The name between the first pair of backticks of a message.
fn quoted_name(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// The line of `src` holding `offset`: (its start offset, its text without the newline).
fn line_at(src: &str, offset: usize) -> (usize, &str) {
    let offset = offset.min(src.len());
    let start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = src[start..].find('\n').map_or(src.len(), |i| start + i);
    (start, src[start..end].trim_end_matches('\r'))
}

/// Better help for diagnostics already reported (the diagnostics themselves stay).
pub(crate) fn refine(src: &str, diags: Vec<Diagnostic>, registry: &Registry) -> Vec<Diagnostic> {
    diags
        .into_iter()
        .map(|d| {
            let id = d.rule().id;
            if id == rules::SYNTAX_ERROR.id && !d.labels().is_empty() {
                syntax_help(src, d)
            } else if id == codes::UNKNOWN_STEP_OPTION.id {
                let name = quoted_name(d.message()).unwrap_or_default().to_string();
                let options = crate::STEP_OPTIONS.iter().map(|o| (*o, *o));
                match closest(&name, options.chain(STEP_OPTION_ALIASES.iter().copied())) {
                    Some(o) => {
                        let help = match d.help() {
                            Some(h) if !h.starts_with("did you mean") => {
                                format!("did you mean `{o}`? {h}")
                            }
                            _ => format!("did you mean `{o}`?"),
                        };
                        d.with_help(help)
                    }
                    None => d,
                }
            } else if id == codes::UNKNOWN_FUNCTION.id
                && !d.help().is_some_and(|h| h.starts_with("did you mean"))
            {
                let name = quoted_name(d.message()).unwrap_or_default().to_string();
                match closest(&name, FUNCTION_ALIASES.iter().copied()) {
                    Some(f) if registry.global(f).is_some() => {
                        d.with_help(format!("did you mean `{f}`?"))
                    }
                    _ => d,
                }
            } else {
                d
            }
        })
        .collect()
}

/// `eles:` and `if x = 1:`.
fn syntax_help(src: &str, d: Diagnostic) -> Diagnostic {
    let span = d.span();
    let (start, line) = line_at(src, span.start as usize);
    let code = line.trim_start();
    let indent = line.len() - code.len();
    if let Some(word) = code.strip_suffix(':').map(str::trim_end) {
        if word != "else"
            && word.chars().all(|c| c.is_ascii_alphabetic())
            && strsim::damerau_levenshtein(word, "else") <= 2
            && word.len() >= 3
            && word.starts_with('e')
        {
            let at = Span::new(start + indent, start + indent + word.len());
            return d
                .with_help(format!("did you mean `else:`? `{word}` is not a keyword"))
                .with_fix(Fix {
                    description: "write `else`".into(),
                    span: at,
                    replacement: "else".into(),
                });
        }
    }
    let opens = ["if ", "elif ", "while "]
        .iter()
        .any(|k| code.starts_with(k));
    if opens && src.get(span.range()) == Some("=") {
        return d
            .with_help("to compare, write `==`; a single `=` assigns")
            .with_fix(Fix {
                description: "compare with `==`".into(),
                span,
                replacement: "==".into(),
            });
    }
    d
}

/// Findings of the walk: A132 (string + non-string literal), A133 (`sleep` of a string) and
/// A207 (an endless `while true:`).
pub(crate) fn lint(src: &str, script: &Script) -> Vec<Diagnostic> {
    let budget = script.items.iter().any(|i| match i {
        Item::Mapping(m) => m.entries.iter().any(|e| {
            matches!(e.key.as_str(), "timeout" | "max_steps")
                && matches!(e.value, MapValue::Expr(_))
        }),
        _ => false,
    });
    let mut w = Walker {
        src,
        budget,
        out: Vec::new(),
    };
    for item in &script.items {
        match item {
            Item::Stmt(s) => w.stmt(s),
            Item::Action(a) => w.block(&a.body),
            _ => {}
        }
    }
    w.out
}

struct Walker<'s> {
    src: &'s str,
    /// The script sets `policy: timeout` or `max_steps`.
    budget: bool,
    out: Vec<Diagnostic>,
}

impl Walker<'_> {
    fn block(&mut self, b: &Block) {
        for s in &b.stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Let { value, .. } | StmtKind::Declare { value, .. } => self.expr(value),
            StmtKind::Assign { target, value } => {
                self.expr(target);
                self.expr(value);
            }
            StmtKind::Memory { call }
            | StmtKind::Expr(call)
            | StmtKind::Trigger(call)
            | StmtKind::Item(call) => self.expr(call),
            StmtKind::If {
                branches,
                else_block,
            } => {
                for (c, b) in branches {
                    self.expr(c);
                    self.block(b);
                }
                if let Some(b) = else_block {
                    self.block(b);
                }
            }
            StmtKind::For { iter, body, .. } => {
                self.expr(iter);
                self.block(body);
            }
            StmtKind::While { cond, body } => {
                self.expr(cond);
                if matches!(cond.kind, ExprKind::Bool(true)) && !self.budget && !exits(body, true) {
                    self.out.push(
                        Diagnostic::new(
                            &codes::ENDLESS_LOOP,
                            "`while true:` has no `break`, no `return` and no budget: it never ends",
                        )
                        .with_primary(cond.span, "always true")
                        .with_help("add a `break` (or `return`) for when the work is done, or give the script a budget: `policy:` with `timeout: 10m` or `max_steps: 100000`"),
                    );
                }
                self.block(body);
            }
            StmtKind::Return(Some(e))
            | StmtKind::Emit {
                payload: Some(e), ..
            } => self.expr(e),
            StmtKind::Sleep(e) => {
                if let ExprKind::Str(text) = &e.kind {
                    self.out.push(sleep_of_string(e, text));
                }
                self.expr(e);
            }
            StmtKind::Parallel(b) | StmtKind::Transaction(b) => self.block(b),
            StmtKind::Await(es) => es.iter().for_each(|e| self.expr(e)),
            StmtKind::Assert { cond, message } => {
                self.expr(cond);
                if let Some(m) = message {
                    self.expr(m);
                }
            }
            _ => {}
        }
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Binary { op, lhs, rhs } => {
                if *op == BinaryOp::Add {
                    self.mixed_add(lhs, rhs);
                }
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Unary { operand, .. } => self.expr(operand),
            ExprKind::Call { callee, args } => {
                self.expr(callee);
                args.iter().for_each(|a| self.expr(&a.value));
            }
            ExprKind::List(items) => items.iter().for_each(|i| self.expr(i)),
            ExprKind::Map(entries) => entries.iter().for_each(|(_, v)| self.expr(v)),
            ExprKind::Member { target, .. } => self.expr(target),
            ExprKind::Index { target, index } => {
                self.expr(target);
                self.expr(index);
            }
            _ => {}
        }
    }

    /// `"text" + 3` (either side): `+` of a string and a literal that is not one.
    fn mixed_add(&mut self, lhs: &Expr, rhs: &Expr) {
        let (other, string_side) = if stringy(lhs) && non_string_literal(rhs).is_some() {
            (rhs, "left")
        } else if stringy(rhs) && non_string_literal(lhs).is_some() {
            (lhs, "right")
        } else {
            return;
        };
        let kind = non_string_literal(other).unwrap_or("value");
        let text = self.src.get(other.span.range()).unwrap_or_default();
        let fixed = format!("str({text})");
        self.out.push(
            Diagnostic::new(
                &codes::STRING_PLUS_NON_STRING,
                format!("`+` of a string and {kind} fails at run time"),
            )
            .with_primary(
                other.span,
                format!("{kind}, added to the string on the {string_side}"),
            )
            .with_help(format!(
                "convert it to a string: `{fixed}` (or build the text with `format(\"{{}}\", ...)`)"
            ))
            .with_fix(Fix {
                description: format!("write `{fixed}`"),
                span: other.span,
                replacement: fixed,
            }),
        );
    }
}

/// Whether the expression is certainly a string: a string literal, or `+` with one.
fn stringy(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Str(_) => true,
        ExprKind::Binary {
            op: BinaryOp::Add,
            lhs,
            rhs,
        } => stringy(lhs) || stringy(rhs),
        _ => false,
    }
}

/// The kind of a literal that is not a string (`an int`, ...), if it is one.
fn non_string_literal(e: &Expr) -> Option<&'static str> {
    Some(match &e.kind {
        ExprKind::Int(_) => "an int",
        ExprKind::Float(_) => "a float",
        ExprKind::Bool(_) => "a bool",
        ExprKind::Null => "null",
        ExprKind::Duration(_) => "a duration",
        ExprKind::List(_) => "a list",
        ExprKind::Map(_) => "a map",
        _ => return None,
    })
}

/// A133 for `sleep "5s"`, with the duration literal as the fix when the text is one.
fn sleep_of_string(e: &Expr, text: &str) -> Diagnostic {
    let d = Diagnostic::new(
        &codes::SLEEP_OF_STRING,
        "`sleep` of a string fails at run time: it takes a number of seconds or a duration",
    )
    .with_primary(e.span, "a string");
    let parsed = aether_syntax::parse(&format!("sleep {text}\n"));
    let is_duration = !parsed.has_errors()
        && matches!(
            parsed.ast.items.as_slice(),
            [Item::Stmt(Stmt {
                kind: StmtKind::Sleep(Expr {
                    kind: ExprKind::Duration(_) | ExprKind::Int(_) | ExprKind::Float(_),
                    ..
                }),
                ..
            })]
        );
    if is_duration {
        d.with_help(format!("write the duration without quotes: `sleep {text}`"))
            .with_fix(Fix {
                description: "remove the quotes".into(),
                span: e.span,
                replacement: text.to_string(),
            })
    } else {
        d.with_help("write a duration literal (`sleep 5s`, `sleep 1.5m`) or a number of seconds (`sleep 5`)")
    }
}

/// Whether `b` can leave a `while` loop: a `return` anywhere, or a `break` that belongs to
/// this loop (`top`: not inside a nested loop).
fn exits(b: &Block, top: bool) -> bool {
    b.stmts.iter().any(|s| match &s.kind {
        StmtKind::Return(_) => true,
        StmtKind::Break => top,
        StmtKind::If {
            branches,
            else_block,
        } => {
            branches.iter().any(|(_, b)| exits(b, top))
                || else_block.as_ref().is_some_and(|b| exits(b, top))
        }
        StmtKind::For { body, .. } | StmtKind::While { body, .. } => exits(body, false),
        StmtKind::Parallel(b) | StmtKind::Transaction(b) => exits(b, top),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_option_typos_prefer_the_option_people_meant() {
        let opts = crate::STEP_OPTIONS.iter().map(|o| (*o, *o));
        assert_eq!(
            closest("retires", opts.chain(STEP_OPTION_ALIASES.iter().copied())),
            Some("retry")
        );
        assert_eq!(
            closest("lenght", FUNCTION_ALIASES.iter().copied()),
            Some("len")
        );
        assert_eq!(closest("xyz", FUNCTION_ALIASES.iter().copied()), None);
    }
}
