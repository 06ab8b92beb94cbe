//! Binary operators by precedence climbing. The grammar reads an expression as a flat chain
//! of operands, binary operators and prefix `not`s (so an operand is not reduced through one
//! unit rule per precedence level); `Chain::finish` builds the tree:
//!
//! | level | operators | associativity |
//! |---|---|---|
//! | 1 | `or` `\|\|` | left |
//! | 2 | `and` `&&` | left |
//! | 3 | prefix `not` `!` | |
//! | 4 | `==` `!=` `<` `<=` `>` `>=` `in` `not in` | none: `a < b < c` is reported |
//! | 5 | `+` `-` | left |
//! | 6 | `*` `/` `%` | left |
//!
//! Unary `-` and the postfix forms are inside an operand (the grammar builds them). The
//! grammar lets `not` follow only the start, `and`/`or` or another `not`.

use crate::ast::{BinaryOp, Expr, ExprKind, UnaryOp};
use crate::diagnostic::Diagnostic;
use crate::rules;
use crate::span::Span;

/// One element of the flat chain.
#[derive(Debug)]
pub(super) enum Piece {
    Operand(Expr),
    Op(BinaryOp, Span),
    /// A prefix `not` (or `!`) starting at this offset.
    Not(u32),
}

/// The chain of an expression read so far: it ends with an operator or a `not`.
#[derive(Debug)]
pub(super) struct Chain(Vec<Piece>);

const NOT_OPERAND: u8 = 4;

fn precedence(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => 1,
        BinaryOp::And => 2,
        BinaryOp::Eq
        | BinaryOp::NotEq
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::In
        | BinaryOp::NotIn => 4,
        BinaryOp::Add | BinaryOp::Sub => 5,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 6,
    }
}

impl Chain {
    /// `operand op`: the start of a chain.
    pub(super) fn new(operand: Expr, (op, span): (BinaryOp, Span)) -> Chain {
        let mut v = Vec::with_capacity(4);
        v.push(Piece::Operand(operand));
        v.push(Piece::Op(op, span));
        Chain(v)
    }

    /// A chain that starts with `not`.
    pub(super) fn starting_with_not(start: usize) -> Chain {
        let mut v = Vec::with_capacity(4);
        v.push(Piece::Not(start as u32));
        Chain(v)
    }

    pub(super) fn not(mut self, start: usize) -> Chain {
        self.0.push(Piece::Not(start as u32));
        self
    }

    pub(super) fn push(mut self, operand: Expr, (op, span): (BinaryOp, Span)) -> Chain {
        self.0.push(Piece::Operand(operand));
        self.0.push(Piece::Op(op, span));
        self
    }

    /// The chain closed by its last operand, as a tree. A chained comparison is reported
    /// (into `diags`) and becomes an `Error` node spanning the whole comparison.
    pub(super) fn finish(mut self, last: Expr, diags: &mut Vec<Diagnostic>) -> Expr {
        self.0.push(Piece::Operand(last));
        let mut climb = Climb {
            pieces: self.0.into_iter(),
            peeked: None,
            diags,
        };
        let e = climb.expr(0);
        debug_assert!(climb.next().is_none(), "the whole chain is consumed");
        e
    }
}

struct Climb<'d> {
    pieces: std::vec::IntoIter<Piece>,
    peeked: Option<Piece>,
    diags: &'d mut Vec<Diagnostic>,
}

impl Climb<'_> {
    fn next(&mut self) -> Option<Piece> {
        self.peeked.take().or_else(|| self.pieces.next())
    }

    /// The next operator, if it binds at least as tightly as `min` (left in place).
    fn op_at_least(&mut self, min: u8) -> Option<(BinaryOp, Span)> {
        if self.peeked.is_none() {
            self.peeked = self.pieces.next();
        }
        match self.peeked {
            Some(Piece::Op(op, span)) if precedence(op) >= min => Some((op, span)),
            _ => None,
        }
    }

    /// An operand with its prefix `not`s: `not` applies to a comparison-level expression.
    fn operand(&mut self) -> Expr {
        let mut nots = Vec::new();
        loop {
            match self.next() {
                Some(Piece::Not(start)) => nots.push(start),
                Some(Piece::Operand(e)) => {
                    let mut e = if nots.is_empty() {
                        e
                    } else {
                        self.peeked = Some(Piece::Operand(e));
                        self.binary(NOT_OPERAND)
                    };
                    for start in nots.into_iter().rev() {
                        let span = Span {
                            start,
                            end: e.span.end,
                        };
                        e = Expr::new(
                            ExprKind::Unary {
                                op: UnaryOp::Not,
                                operand: Box::new(e),
                            },
                            span,
                        );
                    }
                    return e;
                }
                // The grammar puts an operand after every operator and `not`.
                Some(Piece::Op(..)) | None => return Expr::new(ExprKind::Error, Span::default()),
            }
        }
    }

    fn expr(&mut self, min: u8) -> Expr {
        let lhs = self.operand();
        self.rest(lhs, min)
    }

    /// An expression whose first operand carries no prefix `not` (one is being built).
    fn binary(&mut self, min: u8) -> Expr {
        let lhs = match self.next() {
            Some(Piece::Operand(e)) => e,
            _ => Expr::new(ExprKind::Error, Span::default()),
        };
        self.rest(lhs, min)
    }

    /// Operators binding at least as tightly as `min` after `lhs`, left-associative; a second
    /// comparison at the same level is reported once.
    fn rest(&mut self, mut lhs: Expr, min: u8) -> Expr {
        let mut comparison: Option<(BinaryOp, Span)> = None;
        let mut chained = false;
        while let Some((op, span)) = self.op_at_least(min) {
            self.peeked = None;
            let level = precedence(op);
            let rhs = self.expr(level + 1);
            let whole = lhs.span.to(rhs.span);
            if level == NOT_OPERAND {
                if let Some((first_op, first_span)) = comparison {
                    if !chained {
                        self.diags
                            .push(chained_comparison(first_op, first_span, op, span));
                        chained = true;
                    }
                    lhs = Expr::new(ExprKind::Error, whole);
                    continue;
                }
                comparison = Some((op, span));
            }
            lhs = Expr::new(
                ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                whole,
            );
        }
        lhs
    }
}

fn chained_comparison(
    first: BinaryOp,
    first_span: Span,
    second: BinaryOp,
    span: Span,
) -> Diagnostic {
    Diagnostic::new(
        &rules::SYNTAX_ERROR,
        "comparison operators cannot be chained",
    )
    .with_primary(span, "second comparison")
    .with_secondary(first_span, "first comparison")
    .with_help(format!(
        "compare twice and join with `and`: `a {} b and b {} c`",
        first.as_str(),
        second.as_str()
    ))
}
