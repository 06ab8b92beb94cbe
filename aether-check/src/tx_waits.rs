//! Waits inside `transaction:` blocks: a `sleep`, a plugin call or an `await` there (A137),
//! or a call of an action that can wait (A208), would hold the state database's write lock
//! while nothing happens, and every other run's writes would wait for it.
//!
//! The VM refuses the same waits at run time (what this pass cannot see: a wait reached
//! through a function value, a step's retry backoff); see docs/reliability.md.

use std::collections::{HashMap, HashSet};

use aether_syntax::ast::*;
use aether_syntax::visit::{walk_expr, walk_stmt, Visitor};
use aether_syntax::{Diagnostic, Span};

use crate::codes::{CALL_OF_WAITING_ACTION_IN_TRANSACTION, WAIT_IN_TRANSACTION};
use crate::decl::Registry;

/// A wait found in a block: where, and what it is ("`sleep`", "a call of `plugins.invoke`").
type Wait = (Span, String);

/// The A137 and A208 diagnostics of a script.
pub(crate) fn check(script: &Script, registry: &Registry) -> Vec<Diagnostic> {
    let actions: HashMap<&str, &Action> = script
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Action(a) => Some((a.name.text.as_str(), a)),
            _ => None,
        })
        .collect();
    let order: Vec<&Action> = script
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Action(a) => Some(a),
            _ => None,
        })
        .collect();
    let mut pass = TxPass {
        registry,
        order: &order,
        actions: &actions,
        waiting: None,
        depth: 0,
        started_inside: HashSet::new(),
        out: Vec::new(),
    };
    for item in &script.items {
        match item {
            Item::Stmt(s) => pass.visit_stmt(s),
            Item::Action(a) => pass.visit_block(&a.body),
            _ => {}
        }
    }
    pass.out
}

/// What a call expression calls, when it is a name the script or the registry knows.
enum Callee<'a> {
    Action(&'a str),
    Waiting(String),
    Other,
}

fn callee<'a>(expr: &'a Expr, actions: &HashMap<&str, &Action>, registry: &Registry) -> Callee<'a> {
    let ExprKind::Call { callee, .. } = &expr.kind else {
        return Callee::Other;
    };
    let decl = match &callee.kind {
        ExprKind::Name(n) if actions.contains_key(n.as_str()) => return Callee::Action(n),
        ExprKind::Name(n) => registry.global(n),
        ExprKind::Member { target, name } => match &target.kind {
            ExprKind::Name(m) => registry.module_fn(m, &name.text),
            _ => None,
        },
        _ => None,
    };
    match decl {
        Some(d) if d.waits => Callee::Waiting(d.qualified_name()),
        _ => Callee::Other,
    }
}

/// A wait, or a call of one of the script's actions, in an action's body.
enum Step<'a> {
    Wait(Wait),
    Call(&'a str),
}

/// The first wait of each action that can wait, directly or through the actions it calls:
/// the first step of its body in source order that waits (a wait, or a call of an action
/// that can wait). `order`: the actions in source order, so the wait named is the same on
/// every run whatever the maps' order.
fn waiting_actions<'a>(
    order: &[&'a Action],
    actions: &HashMap<&'a str, &'a Action>,
    registry: &Registry,
) -> HashMap<&'a str, Wait> {
    let scans: Vec<(&str, Vec<Step<'a>>)> = order
        .iter()
        .map(|action| {
            let mut scan = Scan {
                registry,
                actions,
                steps: Vec::new(),
            };
            scan.visit_block(&action.body);
            (action.name.text.as_str(), scan.steps)
        })
        .collect();
    // An action waits when one it calls waits: propagate until nothing changes. An
    // action's first waiting step only moves earlier, so this ends; the bound is a guard.
    let mut found: HashMap<&str, (usize, Wait)> = HashMap::new();
    for _ in 0..=2 * scans.len() + 1 {
        let mut changed = false;
        for (name, steps) in &scans {
            let first = steps.iter().enumerate().find_map(|(i, step)| match step {
                Step::Wait(w) => Some((i, w.clone())),
                Step::Call(c) => found.get(c).map(|(_, w)| (i, w.clone())),
            });
            let Some((i, w)) = first else {
                continue;
            };
            if found
                .get(name)
                .is_none_or(|(j, old)| i < *j || (i == *j && *old != w))
            {
                found.insert(name, (i, w));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    found.into_iter().map(|(name, (_, w))| (name, w)).collect()
}

/// The waits and action calls of one action's body, in source order.
struct Scan<'r, 'a> {
    registry: &'r Registry,
    actions: &'r HashMap<&'a str, &'a Action>,
    steps: Vec<Step<'a>>,
}

impl<'a> Visitor<'a> for Scan<'_, 'a> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match &stmt.kind {
            StmtKind::Sleep(_) => self.steps.push(Step::Wait((stmt.span, "`sleep`".into()))),
            StmtKind::Await(_) => self.steps.push(Step::Wait((stmt.span, "`await`".into()))),
            _ => {}
        }
        walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match callee(expr, self.actions, self.registry) {
            Callee::Action(name) => self.steps.push(Step::Call(name)),
            Callee::Waiting(name) => self
                .steps
                .push(Step::Wait((expr.span, format!("a call of `{name}`")))),
            Callee::Other => {}
        }
        walk_expr(self, expr);
    }
}

/// The walk over every `transaction:` block.
struct TxPass<'r, 'a> {
    registry: &'r Registry,
    /// The script's actions in source order.
    order: &'r [&'a Action],
    actions: &'r HashMap<&'a str, &'a Action>,
    /// The actions that can wait, worked out the first time a transaction calls an action
    /// (most scripts have no transaction, and scanning every action's body is not free).
    waiting: Option<HashMap<&'a str, Wait>>,
    /// Open `transaction:` blocks around the node being visited.
    depth: usize,
    /// Names a `parallel:` inside the open transaction declared: their work runs in the
    /// transaction, cannot wait, and may be awaited there.
    started_inside: HashSet<&'a str>,
    out: Vec<Diagnostic>,
}

impl TxPass<'_, '_> {
    fn wait(&mut self, span: Span, what: &str) {
        self.out.push(
            Diagnostic::new(
                &WAIT_IN_TRANSACTION,
                what,
            )
            .with_primary(span, "would wait while the transaction holds the state database's write lock")
            .with_help("do the waiting before or after the `transaction:` block, and keep only the writes inside it"),
        );
    }
}

impl<'a> Visitor<'a> for TxPass<'_, 'a> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        if let StmtKind::Transaction(body) = &stmt.kind {
            self.depth += 1;
            self.visit_block(body);
            self.depth -= 1;
            if self.depth == 0 {
                self.started_inside.clear();
            }
            return;
        }
        if self.depth > 0 {
            match &stmt.kind {
                StmtKind::Sleep(_) => self.wait(stmt.span, "`sleep` inside a `transaction:` block"),
                StmtKind::Parallel(body) => {
                    for s in &body.stmts {
                        if let StmtKind::Let { name, .. } | StmtKind::Declare { name, .. } = &s.kind
                        {
                            self.started_inside.insert(&name.text);
                        }
                    }
                }
                StmtKind::Await(values) => {
                    for v in values {
                        let inside = matches!(&v.kind, ExprKind::Name(n) if self.started_inside.contains(n.as_str()));
                        if !inside {
                            self.wait(
                                v.span,
                                "`await` inside a `transaction:` block of work started outside it",
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        // An expression holds no statement, so none outside a transaction holds one.
        if self.depth == 0 {
            return;
        }
        match callee(expr, self.actions, self.registry) {
            Callee::Waiting(name) => self.wait(
                expr.span,
                &format!("a call of `{name}` inside a `transaction:` block"),
            ),
            Callee::Action(name) => {
                let (order, actions, registry) = (self.order, self.actions, self.registry);
                let waiting = self
                    .waiting
                    .get_or_insert_with(|| waiting_actions(order, actions, registry));
                if let Some((at, what)) = waiting.get(name).cloned() {
                    self.out.push(
                        Diagnostic::new(
                            &CALL_OF_WAITING_ACTION_IN_TRANSACTION,
                            format!(
                                "`{name}` can wait, and it is called inside a `transaction:` block"
                            ),
                        )
                        .with_primary(expr.span, "the run fails here if the call waits")
                        .with_secondary(at, format!("{what} waits"))
                        .with_help("call it before or after the `transaction:` block"),
                    );
                }
            }
            Callee::Other => {}
        }
        walk_expr(self, expr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a` calls `b` (which waits through `d`) before `c` (which waits itself): the wait
    /// named is the first in `a`'s source order (`d`'s `sleep 1s`), on every run.
    #[test]
    fn the_wait_named_is_the_first_in_source_order_on_every_run() {
        let src = "goal: \"g\"\naction d():\n    sleep 1s\naction b():\n    d()\naction c():\n    sleep 2s\naction a():\n    b()\n    c()\ntransaction:\n    a()\n";
        let parsed = aether_syntax::parse(src);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let registry = Registry::new();
        let named = || -> Vec<u32> {
            check(&parsed.ast, &registry)
                .iter()
                .flat_map(|d| d.labels().iter().filter(|l| !l.primary))
                .map(|l| l.span.start)
                .collect()
        };
        let at = src.find("sleep 1s").expect("in the source") as u32;
        for _ in 0..40 {
            assert_eq!(named(), vec![at]);
        }
    }
}
