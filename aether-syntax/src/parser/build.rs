//! Helpers the grammar's actions call: node builders and grammar-level checks.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::rules;
use crate::span::Span;

pub(super) fn block(stmts: Vec<Stmt>) -> Block {
    let span = match (stmts.first(), stmts.last()) {
        (Some(a), Some(b)) => a.span.to(b.span),
        _ => Span::default(),
    };
    Block { stmts, span }
}

/// A statement boxed for the parser's symbol stack (see `Items` in the grammar).
pub(super) fn stmt(kind: StmtKind, l: usize, r: usize) -> Box<Stmt> {
    Box::new(Stmt {
        kind,
        span: Span::new(l, r),
    })
}

pub(super) fn unary(op: UnaryOp, operand: Expr, l: usize, r: usize) -> Expr {
    Expr::new(
        ExprKind::Unary {
            op,
            operand: Box::new(operand),
        },
        Span::new(l, r),
    )
}

pub(super) fn index(target: Expr, mut indices: Vec<Expr>, l: usize, r: usize) -> Expr {
    let kind = if indices.len() == 1 {
        ExprKind::Index {
            target: Box::new(target),
            index: Box::new(indices.remove(0)),
        }
    } else {
        ExprKind::MultiIndex {
            target: Box::new(target),
            indices,
        }
    };
    Expr::new(kind, Span::new(l, r))
}

/// The cover grammar of `x: T = e`: the first expression must read as a type hint.
pub(super) fn expr_to_type(diags: &mut Vec<Diagnostic>, e: Expr) -> Option<TypeHint> {
    fn convert(e: &Expr) -> Option<TypeHint> {
        match &e.kind {
            ExprKind::Name(n) => Some(TypeHint {
                name: n.clone(),
                args: vec![],
                span: e.span,
            }),
            ExprKind::Null => Some(TypeHint {
                name: "null".into(),
                args: vec![],
                span: e.span,
            }),
            ExprKind::Index { target, index } => {
                let ExprKind::Name(n) = &target.kind else {
                    return None;
                };
                Some(TypeHint {
                    name: n.clone(),
                    args: vec![convert(index)?],
                    span: e.span,
                })
            }
            ExprKind::MultiIndex { target, indices } => {
                let ExprKind::Name(n) = &target.kind else {
                    return None;
                };
                let args = indices.iter().map(convert).collect::<Option<Vec<_>>>()?;
                Some(TypeHint {
                    name: n.clone(),
                    args,
                    span: e.span,
                })
            }
            _ => None,
        }
    }
    let hint = convert(&e);
    if hint.is_none() {
        diags.push(
            Diagnostic::new(&rules::INVALID_TYPE_HINT, "invalid type hint")
                .with_primary(e.span, "not a type")
                .with_help("a type hint is a name like `int` or `list`, or `Name[T, ...]` like `List[map]`"),
        );
    }
    hint
}

pub(super) fn assignment(diags: &mut Vec<Diagnostic>, target: Expr, value: Expr) -> StmtKind {
    fn is_place(e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Name(n) => !matches!(n.as_str(), "policy" | "workflow" | "memory" | "args"),
            ExprKind::Member { target, .. } | ExprKind::Index { target, .. } => is_place(target),
            _ => false,
        }
    }
    if is_place(&target) {
        StmtKind::Assign { target, value }
    } else {
        let help = match &target.kind {
            ExprKind::Name(n) => format!("`{n}` is built in and cannot be assigned"),
            ExprKind::Binary {
                op: BinaryOp::Eq, ..
            } => "to compare, use `==` in a condition".into(),
            _ => "assign to a variable (`x = e`), an index (`x[k] = e`) or a field (`x.k = e`)"
                .into(),
        };
        diags.push(
            Diagnostic::new(
                &rules::INVALID_ASSIGNMENT_TARGET,
                "invalid assignment target",
            )
            .with_primary(target.span, "cannot assign to this")
            .with_help(help),
        );
        StmtKind::Error
    }
}

pub(super) fn memory_stmt(diags: &mut Vec<Diagnostic>, keyword: Span, call: Expr) -> StmtKind {
    if call.is_call() {
        StmtKind::Memory { call }
    } else {
        diags.push(
            Diagnostic::new(
                &rules::MEMORY_STATEMENT_NOT_CALL,
                "`memory:` must be followed by a call",
            )
            .with_primary(call.span, "not a call")
            .with_secondary(keyword, "`memory` is the memory module, not a variable")
            .with_help("write `memory: store(value)`, or use another name for a variable"),
        );
        StmtKind::Error
    }
}

pub(super) fn on_error_rule(
    diags: &mut Vec<Diagnostic>,
    when: Name,
    kind: Name,
    handler: Option<(Name, Expr)>,
    span: Span,
) -> Option<OnErrorRule> {
    if when.text != "when" {
        diags.push(
            Diagnostic::new(&rules::MALFORMED_ON_ERROR_RULE, format!("expected `when:`, found `{}:`", when.text))
                .with_primary(when.span, "not `when`")
                .with_help("an on_error rule is `- when: KIND` followed by `do: CALL` on the next line, indented deeper than the `-`"),
        );
        return None;
    }
    let Some((do_, handler)) = handler else {
        diags.push(
            Diagnostic::new(
                &rules::MALFORMED_ON_ERROR_RULE,
                "on_error rule has no `do:` handler",
            )
            .with_primary(span, "rule without a handler")
            .with_help("add `do: CALL` on the next line, indented deeper than the `-`"),
        );
        return None;
    };
    if do_.text != "do" {
        diags.push(
            Diagnostic::new(
                &rules::MALFORMED_ON_ERROR_RULE,
                format!("expected `do:`, found `{}:`", do_.text),
            )
            .with_primary(do_.span, "not `do`")
            .with_help("the second line of an on_error rule is `do: CALL`"),
        );
        return None;
    }
    Some(OnErrorRule {
        kind,
        handler,
        span,
    })
}

pub(super) fn quoted_error_kind(diags: &mut Vec<Diagnostic>, text: String, span: Span) -> Name {
    diags.push(
        Diagnostic::new(
            &rules::MALFORMED_ON_ERROR_RULE,
            "an error kind is a bare name, not a string",
        )
        .with_primary(span, "quoted")
        .with_help(format!("write `- when: {text}` without quotes"))
        .with_fix(crate::diagnostic::Fix {
            description: "remove the quotes".into(),
            span,
            replacement: text.clone(),
        }),
    );
    Name { text, span }
}
