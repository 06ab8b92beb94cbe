//! Statements: declarations, assignments, control flow and the pending-value analysis.

use foldhash::{HashSet, HashSetExt};

use aether_syntax::ast::*;
use aether_syntax::Diagnostic;

use super::{Checker, BUILTIN_VALUES};
use crate::codes::*;

impl<'a> Checker<'a> {
    pub(super) fn block_stmts(&mut self, stmts: &'a [Stmt]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    fn scoped_block(&mut self, b: &'a Block) {
        self.frame().open_scope();
        self.block_stmts(&b.stmts);
        self.frame().close_scope();
    }

    pub(super) fn stmt(&mut self, s: &'a Stmt) {
        match &s.kind {
            StmtKind::Let { name, value, .. } => {
                self.expr(value);
                self.frame().declare(&name.text, false);
            }
            StmtKind::Declare { name, value, .. } => {
                self.expr(value);
                self.declare_or_assign(name);
            }
            StmtKind::Assign { target, value } => {
                self.expr(value);
                self.assign_target(target);
            }
            StmtKind::Memory { call } => {
                if let ExprKind::Call { callee, args } = &call.kind {
                    if let ExprKind::Name(n) = &callee.kind {
                        if self.registry.module_fn("memory", n).is_some() {
                            let member = Expr::new(
                                ExprKind::Member {
                                    target: Box::new(Expr::new(
                                        ExprKind::Name("memory".into()),
                                        callee.span,
                                    )),
                                    name: Name {
                                        text: n.clone(),
                                        span: callee.span,
                                    },
                                },
                                callee.span,
                            );
                            self.call(&member, args, call.span);
                            return;
                        }
                    }
                    self.call(callee, args, call.span);
                }
            }
            StmtKind::Expr(e) | StmtKind::Item(e) => {
                self.expr(e);
                if !e.is_call() && !matches!(e.kind, ExprKind::Error) {
                    self.push(
                        Diagnostic::new(&EXPRESSION_STATEMENT_NOT_CALL, "this expression's value is thrown away")
                            .with_primary(e.span, "not a call")
                            .with_help("assign it (`x = ...`), pass it to a call such as `print(...)`, or remove the line"),
                    );
                }
            }
            StmtKind::If {
                branches,
                else_block,
            } => {
                // A value is still pending after the `if` when it is pending at the end of
                // any path through it (the path without a taken branch included).
                let before = self.frame().pending_names();
                let mut after = HashSet::new();
                for (cond, block) in branches {
                    self.frame().set_pending(&before);
                    self.expr(cond);
                    self.scoped_block(block);
                    after.extend(self.frame().pending_names());
                }
                self.frame().set_pending(&before);
                match else_block {
                    Some(b) => {
                        self.scoped_block(b);
                        after.extend(self.frame().pending_names());
                    }
                    None => after.extend(before),
                }
                self.frame().set_pending(&after);
            }
            StmtKind::For { var, iter, body } => {
                self.expr(iter);
                // The body may run zero times: what was pending before stays pending.
                let before = self.frame().pending_names();
                self.frame().open_scope();
                self.frame().declare(&var.text, false);
                self.frame().loop_depth += 1;
                self.block_stmts(&body.stmts);
                self.frame().loop_depth -= 1;
                self.frame().close_scope();
                let mut after = self.frame().pending_names();
                after.extend(before);
                self.frame().set_pending(&after);
            }
            StmtKind::While { cond, body } => {
                self.expr(cond);
                let before = self.frame().pending_names();
                self.frame().loop_depth += 1;
                self.scoped_block(body);
                self.frame().loop_depth -= 1;
                let mut after = self.frame().pending_names();
                after.extend(before);
                self.frame().set_pending(&after);
            }
            StmtKind::Break | StmtKind::Continue => {
                let word = if matches!(s.kind, StmtKind::Break) {
                    "break"
                } else {
                    "continue"
                };
                let frame = self.frame();
                let leaves_transaction = frame.loop_depth > 0
                    && frame.transaction_loops.last() == Some(&frame.loop_depth);
                if leaves_transaction {
                    self.push(
                        Diagnostic::new(&JUMP_OUT_OF_TRANSACTION, format!("`{word}` inside a `transaction:` block jumps out of it"))
                            .with_primary(s.span, "would leave the transaction neither committed nor rolled back")
                            .with_help(format!("set a flag inside the transaction and `{word}` after the `transaction:` block")),
                    );
                }
                if self.frame().loop_depth == 0 {
                    let (rule, word) = if matches!(s.kind, StmtKind::Break) {
                        (&BREAK_OUTSIDE_LOOP, "break")
                    } else {
                        (&CONTINUE_OUTSIDE_LOOP, "continue")
                    };
                    self.push(
                        Diagnostic::new(rule, format!("`{word}` outside a loop"))
                            .with_primary(s.span, "not inside `for` or `while`")
                            .with_help(format!("`{word}` only works inside a `for` or `while` body; use `return` to leave an action")),
                    );
                }
            }
            StmtKind::Return(value) => {
                if let Some(v) = value {
                    self.expr(v);
                }
                if self.frame().transaction_depth > 0 {
                    self.push(
                        Diagnostic::new(&RETURN_OUTSIDE_ACTION, "`return` inside a `transaction:` block")
                            .with_primary(s.span, "would leave the transaction neither committed nor rolled back")
                            .with_help("store the result in a variable and `return` after the `transaction:` block"),
                    );
                }
            }
            StmtKind::Emit { payload, .. } => {
                if let Some(p) = payload {
                    self.expr(p);
                }
            }
            StmtKind::Trigger(e) => {
                self.expr(e);
                self.use_module("kernel", s.span);
                if !e.is_call() && !matches!(e.kind, ExprKind::Error) {
                    self.push(
                        Diagnostic::new(&TRIGGER_NOT_CALL, "`trigger` needs a call")
                            .with_primary(e.span, "not a call")
                            .with_help("write `trigger some_action(arg)` to submit the call as a kernel task"),
                    );
                }
            }
            StmtKind::Sleep(e) => self.expr(e),
            StmtKind::Parallel(body) => {
                for inner in &body.stmts {
                    match &inner.kind {
                        StmtKind::Let { name, value, .. }
                        | StmtKind::Declare { name, value, .. } => {
                            self.expr(value);
                            self.frame().declare(&name.text, true);
                            self.frame().reported_pending.remove(&name.text);
                        }
                        StmtKind::Error => {}
                        _ => {
                            self.stmt(inner);
                            self.push(
                                Diagnostic::new(&PARALLEL_NON_DECLARATION, "a `parallel:` block holds only declarations")
                                    .with_primary(inner.span, "not `x: e` or `let x = e`")
                                    .with_help("start each concurrent value as `name: call(...)`, then `await name` after the block"),
                            );
                        }
                    }
                }
            }
            StmtKind::Await(targets) => {
                for t in targets {
                    self.await_target(t);
                }
            }
            StmtKind::Transaction(body) => {
                self.has_transaction = true;
                let depth = self.frame().loop_depth;
                self.frame().transaction_depth += 1;
                self.frame().transaction_loops.push(depth);
                self.block_stmts(&body.stmts);
                self.frame().transaction_loops.pop();
                self.frame().transaction_depth -= 1;
            }
            StmtKind::Assert { cond, message } => {
                self.expr(cond);
                if let Some(m) = message {
                    self.expr(m);
                }
            }
            StmtKind::Error => {}
        }
    }

    fn await_target(&mut self, t: &Expr) {
        let ExprKind::Name(n) = &t.kind else {
            self.expr(t);
            self.push(
                Diagnostic::new(
                    &AWAIT_OF_NON_PENDING,
                    "`await` takes the names of pending values",
                )
                .with_primary(t.span, "not a name")
                .with_help("start the value in a `parallel:` block (`x: call()`), then `await x`"),
            );
            return;
        };
        let known_non_variable = self.is_known_non_variable(n);
        match self.frame().lookup_mut(n) {
            Some(var) if var.pending => var.pending = false,
            Some(_) => self.push(
                Diagnostic::new(
                    &AWAIT_OF_NON_PENDING,
                    format!("`{n}` is not a pending value"),
                )
                .with_primary(t.span, "already a plain value")
                .with_help("only names declared in a `parallel:` block can be awaited, once each"),
            ),
            None if known_non_variable => self.push(
                Diagnostic::new(
                    &AWAIT_OF_NON_PENDING,
                    format!("`{n}` is not a pending value"),
                )
                .with_primary(t.span, "an action, function or module, not a pending value")
                .with_help("start the work in a `parallel:` block (`x: call()`), then `await x`"),
            ),
            None => self.name(n, t.span),
        }
    }

    /// A name that resolves, but not to a variable of this frame or a top-level variable.
    fn is_known_non_variable(&self, n: &str) -> bool {
        let sees_globals = self.frames.last().is_some_and(|f| f.sees_globals);
        !(sees_globals && self.globals.contains(n))
            && (BUILTIN_VALUES.contains(&n)
                || n == "memory"
                || self.actions.contains_key(n)
                || self.workflows.contains_key(n)
                || self.registry.global(n).is_some()
                || self.registry.has_module(n))
    }

    fn declare_or_assign(&mut self, name: &'a Name) {
        // `x: e` assigns when `x` is visible in this frame, else declares it here.
        let frame = self.frame();
        match frame.lookup_mut(&name.text) {
            Some(var) => var.pending = false,
            None => frame.declare(&name.text, false),
        }
    }

    fn assign_target(&mut self, target: &Expr) {
        match &target.kind {
            ExprKind::Name(n) => {
                let sees_globals = self.frame().sees_globals;
                if self.frame().lookup(n).is_some() {
                    if let Some(v) = self.frame().lookup_mut(n) {
                        v.pending = false;
                    }
                } else if sees_globals && self.globals.contains(n.as_str()) {
                    self.push(
                        Diagnostic::new(&ASSIGNMENT_TO_GLOBAL_IN_ACTION, format!("actions cannot assign the top-level variable `{n}`"))
                            .with_primary(target.span, "top-level variable")
                            .with_help(format!("return the new value and assign it at top level, or declare a local with `let {n} = ...`")),
                    );
                } else {
                    let mut d = Diagnostic::new(
                        &ASSIGNMENT_TO_UNDECLARED,
                        format!("assignment to undeclared variable `{n}`"),
                    )
                    .with_primary(target.span, "not declared");
                    d = d.with_help(format!(
                        "declare it first with `let {n} = ...` or the 1.1 form `{n}: ...`"
                    ));
                    self.push(d);
                }
            }
            ExprKind::Index {
                target: inner,
                index,
            } => {
                self.expr(index);
                self.assign_target(inner);
            }
            ExprKind::Member { target: inner, .. } => self.assign_target(inner),
            _ => self.expr(target),
        }
    }

    pub(super) fn names_in_scope(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(f) = self.frames.last() {
            out.extend(f.names().map(str::to_string));
            if f.sees_globals {
                out.extend(self.globals.iter().map(|g| g.to_string()));
            }
        }
        out.extend(self.actions.keys().map(|a| a.to_string()));
        out
    }
}
