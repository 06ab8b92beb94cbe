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
pub(super) struct Chain {
    pieces: Vec<Piece>,
    /// The comparisons of the run of pieces since the last `and`, `or` or `not`.
    run: Comparisons,
    /// A chained comparison was reported while the chain was read.
    reported: bool,
}

/// How many comparisons the current run holds: a second one is a chained comparison.
#[derive(Debug, Clone, Copy)]
enum Comparisons {
    None,
    One(BinaryOp, Span),
    /// Two or more, reported.
    Chained,
}

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
    pub(super) fn new(operand: Expr, op: (BinaryOp, Span)) -> Chain {
        let chain = Chain {
            pieces: Vec::with_capacity(4),
            run: Comparisons::None,
            reported: false,
        };
        chain.push(operand, op, &mut Vec::new())
    }

    /// A chain that starts with `not`.
    pub(super) fn starting_with_not(start: usize) -> Chain {
        let mut pieces = Vec::with_capacity(4);
        pieces.push(Piece::Not(start as u32));
        Chain {
            pieces,
            run: Comparisons::None,
            reported: false,
        }
    }

    pub(super) fn not(mut self, start: usize) -> Chain {
        self.pieces.push(Piece::Not(start as u32));
        self.run = Comparisons::None;
        self
    }

    /// `operand op` appended. A second comparison in a run (no `and`, `or` or `not` between
    /// them: `a < b + c < d`) is reported now, while the line is read, so a later syntax
    /// error on the line cannot take its place (the grammar reports the first error of a
    /// line); `finish` then builds its `Error` node without reporting it again.
    pub(super) fn push(
        mut self,
        operand: Expr,
        (op, span): (BinaryOp, Span),
        diags: &mut Vec<Diagnostic>,
    ) -> Chain {
        self.pieces.push(Piece::Operand(operand));
        self.pieces.push(Piece::Op(op, span));
        match (precedence(op), self.run) {
            (NOT_OPERAND, Comparisons::None) => self.run = Comparisons::One(op, span),
            (NOT_OPERAND, Comparisons::One(first, first_span)) => {
                diags.push(chained_comparison(first, first_span, op, span));
                self.run = Comparisons::Chained;
                self.reported = true;
            }
            (level, _) if level < NOT_OPERAND => self.run = Comparisons::None,
            _ => {}
        }
        self
    }

    /// The chain closed by its last operand, as a tree. A chained comparison is reported
    /// (into `diags`) and becomes an `Error` node spanning the whole comparison.
    pub(super) fn finish(mut self, last: Expr, diags: &mut Vec<Diagnostic>) -> Expr {
        self.pieces.push(Piece::Operand(last));
        let mut reported_while_read = Vec::new();
        let mut climb = Climb {
            pieces: self.pieces.into_iter(),
            peeked: None,
            diags: if self.reported {
                &mut reported_while_read
            } else {
                diags
            },
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Chain;
    use crate::ast::{BinaryOp, Expr, ExprKind, Item, StmtKind, UnaryOp};
    use crate::parser::{parse, Parsed};
    use crate::span::Span;

    /// The expression of a one-statement file, fully parenthesised, each node with its span.
    fn spanned(e: &Expr) -> String {
        let body = match &e.kind {
            ExprKind::Binary { op, lhs, rhs } => {
                format!("({} {} {})", spanned(lhs), op.as_str(), spanned(rhs))
            }
            ExprKind::Unary {
                op: UnaryOp::Not,
                operand,
            } => format!("(not {})", spanned(operand)),
            ExprKind::Unary {
                op: UnaryOp::Neg,
                operand,
            } => format!("(-{})", spanned(operand)),
            ExprKind::Name(n) => n.clone(),
            ExprKind::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        };
        format!("{body}@{}..{}", e.span.start - AT, e.span.end - AT)
    }

    fn plain(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Binary { op, lhs, rhs } => {
                format!("({} {} {})", plain(lhs), op.as_str(), plain(rhs))
            }
            ExprKind::Unary {
                op: UnaryOp::Not,
                operand,
            } => format!("(not {})", plain(operand)),
            ExprKind::Unary {
                op: UnaryOp::Neg,
                operand,
            } => format!("(-{})", plain(operand)),
            ExprKind::Name(n) => n.clone(),
            ExprKind::Int(i) => i.to_string(),
            ExprKind::Error => "ERROR".into(),
            ExprKind::Member { target, name } => format!("{}.{}", plain(target), name.text),
            ExprKind::Call { callee, args } => {
                let args: Vec<String> = args.iter().map(|a| plain(&a.value)).collect();
                format!("{}({})", plain(callee), args.join(", "))
            }
            other => format!("{other:?}"),
        }
    }

    /// Where the expression starts in the parsed file (`v = ` before it: a line starting
    /// with `-` is a list item).
    const AT: u32 = 4;

    fn parsed(expr: &str) -> (Parsed, Option<Expr>) {
        let p = parse(&format!("v = {expr}\n"));
        let e = match p.ast.items.first() {
            Some(Item::Stmt(s)) => match &s.kind {
                StmtKind::Assign { value, .. } => Some(value.clone()),
                _ => None,
            },
            _ => None,
        };
        (p, e)
    }

    /// The tree of a well-formed expression.
    fn tree(expr: &str) -> String {
        let (p, e) = parsed(expr);
        assert!(p.diagnostics.is_empty(), "{expr}: {:?}", p.diagnostics);
        plain(&e.expect("an expression statement"))
    }

    /// The one diagnostic of a broken expression: message, primary span, secondary spans.
    fn error(expr: &str) -> (String, Span, Vec<Span>) {
        let (p, _) = parsed(expr);
        assert_eq!(p.diagnostics.len(), 1, "{expr}: {:?}", p.diagnostics);
        let d = &p.diagnostics[0];
        let shift = |s: Span| Span::new((s.start - AT) as usize, (s.end - AT) as usize);
        let secondary = d
            .labels()
            .iter()
            .filter(|l| !l.primary)
            .map(|l| shift(l.span))
            .collect();
        (d.message().to_string(), shift(d.span()), secondary)
    }

    const LEVELS: [(&str, u8); 10] = [
        ("or", 1),
        ("||", 1),
        ("and", 2),
        ("&&", 2),
        ("==", 4),
        ("<", 4),
        ("not in", 4),
        ("+", 5),
        ("-", 5),
        ("*", 6),
    ];

    fn canonical(op: &str) -> &str {
        match op {
            "||" => "or",
            "&&" => "and",
            other => other,
        }
    }

    #[test]
    fn every_pair_of_levels_groups_by_precedence_then_to_the_left() {
        for (p, lp) in LEVELS {
            for (q, lq) in LEVELS {
                let src = format!("a {p} b {q} c");
                let (p, q) = (canonical(p), canonical(q));
                if lp == 4 && lq == 4 {
                    let (msg, _, _) = error(&src);
                    assert_eq!(msg, "comparison operators cannot be chained", "{src}");
                } else if lp >= lq {
                    assert_eq!(tree(&src), format!("((a {p} b) {q} c)"), "{src}");
                } else {
                    assert_eq!(tree(&src), format!("(a {p} (b {q} c))"), "{src}");
                }
            }
        }
        for op in ["/", "%", "!=", "<=", ">", ">=", "in"] {
            assert_eq!(tree(&format!("a {op} b")), format!("(a {op} b)"));
        }
    }

    #[test]
    fn left_associative_operators_group_to_the_left() {
        assert_eq!(tree("a - b - c - d"), "(((a - b) - c) - d)");
        assert_eq!(tree("a / b * c % d"), "(((a / b) * c) % d)");
        assert_eq!(tree("a or b || c"), "((a or b) or c)");
        assert_eq!(tree("a and b && c"), "((a and b) and c)");
        assert_eq!(tree("a + b * c - d"), "((a + (b * c)) - d)");
        assert_eq!(tree("a or b and c or d"), "((a or (b and c)) or d)");
    }

    #[test]
    fn not_sits_between_and_and_the_comparisons() {
        assert_eq!(tree("not a == b"), "(not (a == b))");
        assert_eq!(tree("!a == b"), "(not (a == b))");
        assert_eq!(tree("not a and b"), "((not a) and b)");
        assert_eq!(tree("a or not b and c"), "(a or ((not b) and c))");
        assert_eq!(tree("not not a + b in c"), "(not (not ((a + b) in c)))");
        assert_eq!(tree("a not in b"), "(a not in b)");
        assert_eq!(tree("not a not in b"), "(not (a not in b))");
        assert_eq!(tree("a and not b < c or d"), "((a and (not (b < c))) or d)");
    }

    #[test]
    fn unary_minus_and_postfix_bind_tighter_than_the_binary_operators() {
        assert_eq!(tree("-a * b"), "((-a) * b)");
        assert_eq!(tree("a * -b"), "(a * (-b))");
        assert_eq!(tree("- - a - b"), "((-(-a)) - b)");
        assert_eq!(tree("-a.b(c) + d"), "((-a.b(c)) + d)");
        assert_eq!(tree("(a + b) * c"), "((a + b) * c)");
    }

    #[test]
    fn spans_run_from_the_first_token_to_the_last() {
        let (_, e) = parsed("not (a) + b * -d < e");
        assert_eq!(
            spanned(&e.expect("an expression")),
            "(not ((a@4..7 + (b@10..11 * (-d@15..16)@14..16)@10..16)@4..16 < e@19..20)@4..20)@0..20"
        );
    }

    #[test]
    fn a_chained_comparison_is_reported_once_with_both_operators() {
        let (msg, primary, secondary) = error("a < b == c");
        assert_eq!(msg, "comparison operators cannot be chained");
        assert_eq!(primary, Span::new(6, 8));
        assert_eq!(secondary, vec![Span::new(2, 3)]);
        let (_, primary, secondary) = error("x and a not in b + c in d < e");
        assert_eq!(primary, Span::new(21, 23));
        assert_eq!(secondary, vec![Span::new(8, 14)]);
        let (p, e) = parsed("a < b < c and d");
        assert_eq!(p.diagnostics.len(), 1);
        let e = e.expect("the statement is kept");
        assert_eq!(plain(&e), "(ERROR and d)");
        let ExprKind::Binary { lhs, .. } = &e.kind else {
            panic!("{e:?}")
        };
        assert_eq!(lhs.span, Span::new(AT as usize, AT as usize + 9));
        assert!(p.diagnostics[0]
            .help()
            .is_some_and(|h| h.contains("`a < b and b < c`")));
        // Parenthesised comparisons are not a chain.
        assert_eq!(tree("(a < b) == c"), "((a < b) == c)");
    }

    #[test]
    fn a_chained_comparison_takes_its_lines_one_syntax_error() {
        // A later error on the line is dropped, as when the grammar stopped at the chain.
        let (msg, primary, _) = error("f(a < b < c) x");
        assert_eq!(msg, "comparison operators cannot be chained");
        assert_eq!(primary, Span::new(8, 9));
        // An earlier one (here the line's indentation) keeps the line.
        let p = parse("let a = 1\n  let b = a < a < a\n");
        let messages: Vec<&str> = p.diagnostics.iter().map(|d| d.message()).collect();
        assert_eq!(messages, ["unexpected indentation"]);
        // Chains on two lines are both reported.
        let p = parse("v = a < b < c\nw = a == b != c\n");
        assert_eq!(p.diagnostics.len(), 2, "{:?}", p.diagnostics);
    }

    #[test]
    fn a_chained_comparison_keeps_its_line_when_a_later_error_stops_the_expression() {
        // The expression never closes (`4` cannot follow `3`), so the chain is reported
        // while it is read, and as the line's first error it is the one kept.
        for (src, at) in [
            ("let a = 1 < 2 < 3 4\n", 14),
            ("print(1 < 2 < 3 +)\n", 12),
            ("let b = x == y + z != w w\n", 19),
        ] {
            let p = parse(src);
            let messages: Vec<&str> = p.diagnostics.iter().map(|d| d.message()).collect();
            assert_eq!(
                messages,
                ["comparison operators cannot be chained"],
                "{src}"
            );
            assert_eq!(p.diagnostics[0].span().start, at, "{src}");
        }
        // Reported once, whether the chain closes or not.
        let p = parse("let c = a < b < c < d\n");
        assert_eq!(p.diagnostics.len(), 1, "{:?}", p.diagnostics);
        // A new run after `and`, `or` or `not` starts counting again.
        assert!(parse("let d = a < b and c < d or not e < f\n")
            .diagnostics
            .is_empty());
    }

    #[test]
    fn not_after_an_arithmetic_or_comparison_operator_is_still_an_error() {
        for (src, at) in [
            ("a == not b", 5),
            ("a + not b", 4),
            ("-not a", 1),
            ("a * !b", 4),
        ] {
            let (msg, primary, _) = error(src);
            assert!(msg.starts_with("unexpected `"), "{src}: {msg}");
            assert_eq!(primary.start, at, "{src}");
        }
    }

    /// Takes a tree apart without recursion (a 100,000-deep `not` chain would overflow the
    /// stack in `Drop`), counting its nodes and its depth.
    fn take_apart(e: Expr) -> (usize, usize) {
        let (mut nodes, mut depth) = (0, 0);
        let mut stack = vec![(e, 1)];
        while let Some((e, d)) = stack.pop() {
            nodes += 1;
            depth = depth.max(d);
            match e.kind {
                ExprKind::Binary { lhs, rhs, .. } => {
                    stack.push((*lhs, d + 1));
                    stack.push((*rhs, d + 1));
                }
                ExprKind::Unary { operand, .. } => stack.push((*operand, d + 1)),
                _ => {}
            }
        }
        (nodes, depth)
    }

    #[test]
    fn hostile_chains_are_climbed_with_recursion_bounded_by_the_levels() {
        // The lexer drops a line of more than 1,000 operators (NESTING_TOO_DEEP) before the
        // parser, but the climbing must not depend on it: 100,000 `not`s, then 50,000 times a
        // chain through every level (200,001 operands), on a 128 KiB stack.
        let worker = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let name = |at: usize| Expr::new(ExprKind::Name("a".into()), Span::new(at, at + 1));
                let op = |op: BinaryOp, at: usize| (op, Span::new(at, at + 1));
                let mut chain = Chain::starting_with_not(0);
                for i in 1..100_000 {
                    chain = chain.not(i);
                }
                let mut at = 100_000;
                let mut diags = Vec::new();
                for i in 0..50_000 {
                    for o in [BinaryOp::Mul, BinaryOp::Add, BinaryOp::Lt] {
                        chain = chain.push(name(at), op(o, at + 1), &mut diags);
                        at += 2;
                    }
                    let logic = if i % 2 == 0 {
                        BinaryOp::And
                    } else {
                        BinaryOp::Or
                    };
                    chain = chain
                        .push(name(at), op(logic, at + 1), &mut diags)
                        .not(at + 2);
                    at += 3;
                }
                let e = chain.finish(name(at), &mut diags);
                assert!(diags.is_empty(), "{diags:?}");
                assert_eq!(e.span, Span::new(0, at + 1));
                assert!(matches!(
                    e.kind,
                    ExprKind::Binary {
                        op: BinaryOp::Or,
                        ..
                    }
                ));
                take_apart(e)
            })
            .expect("a thread");
        let (nodes, depth) = worker.join().expect("no stack overflow");
        // 200,001 operands, 200,000 binary nodes, 150,000 `not`s.
        assert_eq!(nodes, 200_001 + 200_000 + 150_000);
        assert!(depth > 100_000, "{depth}");
    }

    /// A token of a generated expression.
    #[derive(Clone, Debug)]
    enum T {
        Atom(String),
        Op(&'static str),
        Not,
        Neg,
        Open,
        Close,
    }

    const OPS: [&str; 17] = [
        "or", "||", "and", "&&", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "+", "-", "*",
        "/", "%",
    ];

    fn gen_expr(depth: u32) -> BoxedStrategy<Vec<T>> {
        let atom = prop_oneof![
            (0..4u8).prop_map(|i| vec![T::Atom(format!("x{i}"))]),
            (0..100i64).prop_map(|i| vec![T::Atom(i.to_string())]),
        ];
        let operand: BoxedStrategy<Vec<T>> = if depth == 0 {
            atom.boxed()
        } else {
            prop_oneof![
                3 => atom,
                1 => gen_expr(depth - 1).prop_map(|mut inner| {
                    inner.insert(0, T::Open);
                    inner.push(T::Close);
                    inner
                }),
            ]
            .boxed()
        };
        let piece = (
            0..3usize,
            0..3usize,
            operand,
            prop::sample::select(OPS.to_vec()),
        );
        prop::collection::vec(piece, 1..6)
            .prop_map(|pieces| {
                let mut out = Vec::new();
                let mut not_allowed = true;
                let n = pieces.len();
                for (i, (nots, negs, operand, op)) in pieces.into_iter().enumerate() {
                    if not_allowed {
                        out.extend(std::iter::repeat_n(T::Not, nots.saturating_sub(1)));
                    }
                    out.extend(std::iter::repeat_n(T::Neg, negs.saturating_sub(1)));
                    out.extend(operand);
                    if i + 1 < n {
                        out.push(T::Op(op));
                        not_allowed = matches!(op, "or" | "||" | "and" | "&&");
                    }
                }
                out
            })
            .boxed()
    }

    /// The old grammar's levels as a recursive-descent oracle over the generated tokens,
    /// each token at its offset; `Err` holds the span of a second chained comparison.
    struct Oracle<'a> {
        toks: &'a [(T, usize, usize)],
        at: usize,
    }

    type Node = (String, usize, usize);

    impl Oracle<'_> {
        fn peek_op(&self, ops: &[&str]) -> Option<(&'static str, usize, usize)> {
            match self.toks.get(self.at) {
                Some((T::Op(op), s, e)) if ops.contains(op) => Some((op, *s, *e)),
                _ => None,
            }
        }

        fn left(
            &mut self,
            ops: &[&str],
            next: fn(&mut Self) -> Result<Node, Span>,
        ) -> Result<Node, Span> {
            let mut l = next(self)?;
            while let Some((op, _, _)) = self.peek_op(ops) {
                self.at += 1;
                let r = next(self)?;
                l = bin(l, op, r);
            }
            Ok(l)
        }

        fn or(&mut self) -> Result<Node, Span> {
            self.left(&["or", "||"], Self::and)
        }

        fn and(&mut self) -> Result<Node, Span> {
            self.left(&["and", "&&"], Self::not)
        }

        fn not(&mut self) -> Result<Node, Span> {
            if let Some((T::Not, s, _)) = self.toks.get(self.at) {
                let s = *s;
                self.at += 1;
                let e = self.not()?;
                return Ok((format!("(not {}@{}..{})", e.0, e.1, e.2), s, e.2));
            }
            self.cmp()
        }

        fn cmp(&mut self) -> Result<Node, Span> {
            const CMP: [&str; 8] = ["==", "!=", "<", "<=", ">", ">=", "in", "not in"];
            let l = self.add()?;
            let Some((op, _, _)) = self.peek_op(&CMP) else {
                return Ok(l);
            };
            self.at += 1;
            let r = self.add()?;
            match self.peek_op(&CMP) {
                Some((_, s, e)) => Err(Span::new(s, e)),
                None => Ok(bin(l, op, r)),
            }
        }

        fn add(&mut self) -> Result<Node, Span> {
            self.left(&["+", "-"], Self::mul)
        }

        fn mul(&mut self) -> Result<Node, Span> {
            self.left(&["*", "/", "%"], Self::unary)
        }

        fn unary(&mut self) -> Result<Node, Span> {
            let (t, s, e) = self.toks[self.at].clone();
            self.at += 1;
            match t {
                T::Neg => {
                    let inner = self.unary()?;
                    Ok((
                        format!("(-{}@{}..{})", inner.0, inner.1, inner.2),
                        s,
                        inner.2,
                    ))
                }
                T::Atom(a) => Ok((a, s, e)),
                T::Open => {
                    let inner = self.or()?;
                    let (_, _, close) = self.toks[self.at];
                    self.at += 1;
                    Ok((inner.0, s, close))
                }
                other => panic!("generated no {other:?} here"),
            }
        }
    }

    fn bin(l: Node, op: &str, r: Node) -> Node {
        let op = canonical(op);
        let text = format!("({}@{}..{} {op} {}@{}..{})", l.0, l.1, l.2, r.0, r.1, r.2);
        (text, l.1, r.2)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Random chains of operands, operators, `not`s, `-`s and parentheses parse to the
        /// tree (and spans) of the old level-per-precedence grammar, or report the chained
        /// comparison that grammar stopped at.
        #[test]
        fn chains_parse_like_the_level_grammar(toks in gen_expr(2)) {
            let mut src = String::new();
            let mut spanned_toks = Vec::new();
            for t in toks {
                if !src.is_empty() {
                    src.push(' ');
                }
                let text = match &t {
                    T::Atom(a) => a.as_str(),
                    T::Op(op) => op,
                    T::Not => "not",
                    T::Neg => "-",
                    T::Open => "(",
                    T::Close => ")",
                };
                let start = src.len();
                src.push_str(text);
                spanned_toks.push((t, start, src.len()));
            }
            let mut oracle = Oracle { toks: &spanned_toks, at: 0 };
            let expected = oracle.or();
            let (p, e) = parsed(&src);
            match expected {
                Ok((text, s, e_end)) => {
                    prop_assert!(p.diagnostics.is_empty(), "{}: {:?}", src, p.diagnostics);
                    prop_assert_eq!(oracle.at, spanned_toks.len());
                    let e = e.expect("an expression statement");
                    prop_assert_eq!(spanned(&e), format!("{text}@{s}..{e_end}"), "{}", src);
                }
                Err(span) => {
                    prop_assert!(!p.diagnostics.is_empty(), "{}", src);
                    let d = &p.diagnostics[0];
                    prop_assert_eq!(d.message(), "comparison operators cannot be chained");
                    prop_assert_eq!(d.span(), Span::new(span.start as usize + 4, span.end as usize + 4), "{}", src);
                    prop_assert!(p.diagnostics.iter().all(|d| d.message() == "comparison operators cannot be chained"));
                }
            }
        }
    }
}
