//! A read-only walk over the syntax tree: a [`Visitor`] overrides the nodes it cares about and calls the matching `walk_*` function to go on into their children.
//!
//! The default methods visit every child in source order, so a pass that only looks at
//! expressions (free variables, calls, risky strings) is one `visit_expr` override and
//! cannot miss a statement kind added later (ruff's and oxc's visitors work the same way).

use crate::ast::*;

/// A pass over the tree. Every method's default walks into the node's children; an
/// override that still wants them calls the `walk_*` function of its node.
pub trait Visitor<'a> {
    fn visit_item(&mut self, item: &'a Item) {
        walk_item(self, item);
    }

    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        walk_stmt(self, stmt);
    }

    fn visit_block(&mut self, block: &'a Block) {
        walk_block(self, block);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        walk_expr(self, expr);
    }

    /// An entry of a mapping block or a workflow (`key: value`).
    fn visit_map_entry(&mut self, entry: &'a MapEntry) {
        walk_map_entry(self, entry);
    }

    /// A `- item` of a mapping value; in a workflow's `steps:`, a step with its options.
    fn visit_list_item(&mut self, item: &'a ListItem) {
        walk_list_item(self, item);
    }
}

/// Visit every item of a script, in order.
pub fn walk_script<'a, V: Visitor<'a> + ?Sized>(v: &mut V, script: &'a Script) {
    for item in &script.items {
        v.visit_item(item);
    }
}

pub fn walk_item<'a, V: Visitor<'a> + ?Sized>(v: &mut V, item: &'a Item) {
    match item {
        Item::Goal(g) => {
            if let Some(value) = &g.value {
                v.visit_expr(value);
            }
        }
        Item::Mapping(m) => m.entries.iter().for_each(|e| v.visit_map_entry(e)),
        Item::OnError(o) => o.rules.iter().for_each(|r| v.visit_expr(&r.handler)),
        Item::Action(a) => {
            for p in a.params() {
                if let Some(default) = &p.default {
                    v.visit_expr(default);
                }
            }
            v.visit_block(&a.body);
        }
        Item::Workflow(w) => w.entries.iter().for_each(|e| v.visit_map_entry(e)),
        Item::Reserved { .. } => {}
        Item::Stmt(s) => v.visit_stmt(s),
    }
}

pub fn walk_map_entry<'a, V: Visitor<'a> + ?Sized>(v: &mut V, entry: &'a MapEntry) {
    match &entry.value {
        MapValue::Expr(e) => v.visit_expr(e),
        MapValue::List(items) => items.iter().for_each(|i| v.visit_list_item(i)),
        MapValue::Map(entries) => entries.iter().for_each(|e| v.visit_map_entry(e)),
    }
}

pub fn walk_list_item<'a, V: Visitor<'a> + ?Sized>(v: &mut V, item: &'a ListItem) {
    v.visit_expr(&item.value);
    for opt in &item.options {
        v.visit_expr(&opt.value);
    }
}

pub fn walk_block<'a, V: Visitor<'a> + ?Sized>(v: &mut V, block: &'a Block) {
    for s in &block.stmts {
        v.visit_stmt(s);
    }
}

pub fn walk_stmt<'a, V: Visitor<'a> + ?Sized>(v: &mut V, stmt: &'a Stmt) {
    match &stmt.kind {
        StmtKind::Let { value, .. } | StmtKind::Declare { value, .. } => v.visit_expr(value),
        StmtKind::Assign { target, value } => {
            v.visit_expr(target);
            v.visit_expr(value);
        }
        StmtKind::Memory { call: e }
        | StmtKind::Expr(e)
        | StmtKind::Item(e)
        | StmtKind::Trigger(e)
        | StmtKind::Sleep(e)
        | StmtKind::Return(Some(e)) => v.visit_expr(e),
        StmtKind::If {
            branches,
            else_block,
        } => {
            for (cond, block) in branches {
                v.visit_expr(cond);
                v.visit_block(block);
            }
            if let Some(block) = else_block {
                v.visit_block(block);
            }
        }
        StmtKind::For { iter, body, .. } => {
            v.visit_expr(iter);
            v.visit_block(body);
        }
        StmtKind::While { cond, body } => {
            v.visit_expr(cond);
            v.visit_block(body);
        }
        StmtKind::Emit { payload, .. } => {
            if let Some(e) = payload {
                v.visit_expr(e);
            }
        }
        StmtKind::Parallel(b) | StmtKind::Transaction(b) => v.visit_block(b),
        StmtKind::Await(targets) => targets.iter().for_each(|e| v.visit_expr(e)),
        StmtKind::Assert { cond, message } => {
            v.visit_expr(cond);
            if let Some(m) = message {
                v.visit_expr(m);
            }
        }
        StmtKind::Return(None) | StmtKind::Break | StmtKind::Continue | StmtKind::Error => {}
    }
}

pub fn walk_expr<'a, V: Visitor<'a> + ?Sized>(v: &mut V, expr: &'a Expr) {
    match &expr.kind {
        ExprKind::List(items) => items.iter().for_each(|e| v.visit_expr(e)),
        ExprKind::Map(entries) => entries.iter().for_each(|(_, e)| v.visit_expr(e)),
        ExprKind::Unary { operand, .. } => v.visit_expr(operand),
        ExprKind::Binary { lhs, rhs, .. } => {
            v.visit_expr(lhs);
            v.visit_expr(rhs);
        }
        ExprKind::Call { callee, args } => {
            v.visit_expr(callee);
            args.iter().for_each(|a| v.visit_expr(&a.value));
        }
        ExprKind::Member { target, .. } => v.visit_expr(target),
        ExprKind::Index { target, index } => {
            v.visit_expr(target);
            v.visit_expr(index);
        }
        ExprKind::MultiIndex { target, indices } => {
            v.visit_expr(target);
            indices.iter().for_each(|e| v.visit_expr(e));
        }
        ExprKind::Null
        | ExprKind::Bool(_)
        | ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Duration(_)
        | ExprKind::Name(_)
        | ExprKind::Error => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name read, in source order.
    struct Names(Vec<String>);

    impl<'a> Visitor<'a> for Names {
        fn visit_expr(&mut self, e: &'a Expr) {
            if let ExprKind::Name(n) = &e.kind {
                self.0.push(n.clone());
            }
            walk_expr(self, e);
        }
    }

    #[test]
    fn the_default_walk_reaches_every_expression_in_source_order() {
        let src = "goal: \"g\"\naction f(p = d0):\n    if a:\n        b[c] = e(g=h)\n    else:\n        return i.j\nfor k in l:\n    assert m, n\nworkflow:\n    steps:\n        - o(q) retry=r\non_error:\n    - when: Any\n      do: s(error)\n";
        let parsed = crate::parse(src);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let mut names = Names(Vec::new());
        walk_script(&mut names, &parsed.ast);
        assert_eq!(
            names.0,
            ["d0", "a", "b", "c", "e", "h", "i", "l", "m", "n", "o", "q", "r", "s", "error"]
        );
    }
}
