//! Statements: control flow, loops, `transaction:`, `memory:`, `emit`, `parallel:` and
//! the other statement forms.

use super::*;

impl<'a> Compiler<'a> {
    pub(super) fn block(&mut self, b: &'a Block) -> Result<(), CompileError> {
        self.fs.scopes.push(HashMap::new());
        let saved = self.fs.next_slot;
        for s in &b.stmts {
            self.stmt(s)?;
        }
        self.fs.next_slot = saved;
        self.fs.scopes.pop();
        Ok(())
    }

    pub(super) fn stmt(&mut self, s: &'a Stmt) -> Result<(), CompileError> {
        self.at = s.span;
        let span = s.span;
        match &s.kind {
            StmtKind::Let { name, value, .. } => {
                self.expr(value)?;
                let var = self.declare(&name.text);
                self.store(var, name.span);
            }
            StmtKind::Declare { name, value, .. } if self.update_in_place(name, value)? => {}
            StmtKind::Declare { name, value, .. } => {
                self.expr(value)?;
                // 1.1 form: assign when visible in this frame, else declare here.
                let var = match self.visible_here(&name.text) {
                    Some(v) => v,
                    None => self.declare(&name.text),
                };
                self.store(var, name.span);
            }
            StmtKind::Assign { target, value }
                if matches!(&target.kind, ExprKind::Name(_)) && {
                    let ExprKind::Name(n) = &target.kind else {
                        unreachable!()
                    };
                    let name = Name {
                        text: n.clone(),
                        span: target.span,
                    };
                    self.update_in_place(&name, value)?
                } => {}
            StmtKind::Assign { target, value } if matches!(&target.kind, ExprKind::Name(_)) => {
                let ExprKind::Name(n) = &target.kind else {
                    unreachable!("matched above")
                };
                self.expr(value)?;
                let var = self
                    .lookup(n)
                    .ok_or_else(|| not_yet(&format!("assignment to `{n}`"), target.span))?;
                self.store(var, target.span);
            }
            StmtKind::Assign { target, value } => {
                self.expr(value)?;
                let tmp = self.temp();
                self.emit(Instr::StoreLocal(tmp), span);
                self.assign(target, tmp)?;
                self.fs.next_slot -= 1;
            }
            StmtKind::Expr(e) => {
                self.expr(e)?;
                self.emit(Instr::Pop, span);
            }
            StmtKind::If {
                branches,
                else_block,
            } => {
                let mut ends = Vec::new();
                for (cond, body) in branches {
                    self.expr(cond)?;
                    let skip = self.emit(Instr::JumpIfFalse(0), cond.span);
                    self.block(body)?;
                    ends.push(self.emit(Instr::Jump(0), span));
                    let next = self.here();
                    self.patch(skip, next);
                }
                if let Some(b) = else_block {
                    self.block(b)?;
                }
                let end = self.here();
                for at in ends {
                    self.patch(at, end);
                }
            }
            StmtKind::While { cond, body } => {
                let head = self.here();
                self.expr(cond)?;
                let exit = self.emit(Instr::JumpIfFalse(0), cond.span);
                self.fs.loops.push(Loop {
                    head,
                    breaks: vec![exit],
                    is_for: false,
                });
                self.block(body)?;
                self.emit(Instr::Jump(head), span);
                self.close_loop();
            }
            StmtKind::For { var, iter, body } => {
                self.expr(iter)?;
                self.emit(Instr::IterStart, iter.span);
                let head = self.emit(Instr::IterNext(0), span);
                self.fs.loops.push(Loop {
                    head: saturating_u32(head),
                    breaks: vec![head],
                    is_for: true,
                });
                self.fs.scopes.push(HashMap::new());
                let saved = self.fs.next_slot;
                let slot = self.declare_local(&var.text);
                self.emit(Instr::StoreLocal(slot), var.span);
                for s in &body.stmts {
                    self.stmt(s)?;
                }
                self.fs.next_slot = saved;
                self.fs.scopes.pop();
                self.emit(Instr::Jump(saturating_u32(head)), span);
                self.close_loop();
            }
            StmtKind::Break => {
                let is_for = self.fs.loops.last().map(|l| l.is_for);
                let Some(is_for) = is_for else {
                    return Err(unchecked("`break` outside a loop", span));
                };
                if is_for {
                    // IterNext pops the loop's two values before it leaves; a `break` does
                    // the same, then both land on the loop's exit.
                    self.emit(Instr::Pop, span);
                    self.emit(Instr::Pop, span);
                }
                let at = self.emit(Instr::Jump(0), span);
                self.fs
                    .loops
                    .last_mut()
                    .expect("checked above")
                    .breaks
                    .push(at);
            }
            StmtKind::Continue => {
                let Some(head) = self.fs.loops.last().map(|l| l.head) else {
                    return Err(unchecked("`continue` outside a loop", span));
                };
                self.emit(Instr::Jump(head), span);
            }
            StmtKind::Return(value) => {
                match value {
                    Some(v) => self.expr(v)?,
                    None => {
                        self.emit(Instr::Null, span);
                    }
                }
                self.emit(Instr::Return, span);
            }
            StmtKind::Assert { cond, message } => {
                self.expr(cond)?;
                if let Some(m) = message {
                    self.expr(m)?;
                }
                self.emit(
                    Instr::Assert {
                        has_message: message.is_some(),
                    },
                    span,
                );
            }
            StmtKind::Memory { call } => {
                let ExprKind::Call { callee, args } = &call.kind else {
                    return Err(not_yet("`memory:` without a call", span));
                };
                let ExprKind::Name(f) = &callee.kind else {
                    return Err(not_yet("`memory:` with this callee", callee.span));
                };
                // `memory: f(args)` calls `memory.f`, or the global `f` when the memory
                // module has no `f`.
                match self.registry.module_fn_id("memory", f) {
                    Some(id) => self.native_call(id, args, call.span)?,
                    None => self.call(callee, args, call.span)?,
                }
                self.emit(Instr::Pop, span);
            }
            StmtKind::Emit { name, payload } => {
                if let Some(p) = payload {
                    self.expr(p)?;
                }
                let k = self.constant(Value::from(name.text.as_str()));
                self.emit(
                    Instr::Emit {
                        name: k,
                        has_payload: payload.is_some(),
                    },
                    span,
                );
            }
            StmtKind::Trigger(call) => self.trigger(call, span)?,
            StmtKind::Sleep(e) => {
                self.expr(e)?;
                self.emit(Instr::Sleep, span);
            }
            StmtKind::Parallel(body) => {
                // Each right side starts on a fiber of its own; the names belong to the
                // enclosing block (`parallel:` opens no scope).
                for inner in &body.stmts {
                    let (StmtKind::Let { name, value, .. } | StmtKind::Declare { name, value, .. }) =
                        &inner.kind
                    else {
                        return Err(not_yet(
                            "a `parallel:` statement that is not a declaration",
                            inner.span,
                        ));
                    };
                    let params = self.captures(&[value]);
                    let func = self.spawnable(
                        format!("<parallel {}>", name.text),
                        params.clone(),
                        Body::Expr(value),
                    );
                    self.load_captures(&params, value.span)?;
                    let n_operand = self.u16_of(params.len(), "arguments in one call");
                    self.emit(
                        Instr::Spawn {
                            func,
                            argc: n_operand,
                        },
                        value.span,
                    );
                    let var = match (&inner.kind, self.visible_here(&name.text)) {
                        (StmtKind::Declare { .. }, Some(v)) => v,
                        _ => self.declare(&name.text),
                    };
                    self.store(var, name.span);
                }
            }
            StmtKind::Await(targets) => {
                for t in targets {
                    let ExprKind::Name(n) = &t.kind else {
                        return Err(not_yet("`await` of an expression", t.span));
                    };
                    let var = self
                        .lookup(n)
                        .ok_or_else(|| not_yet(&format!("`await {n}`"), t.span))?;
                    self.load(var, t.span);
                    self.emit(Instr::Await, t.span);
                    self.store(var, t.span);
                }
            }
            StmtKind::Transaction(body) => {
                // Opens no scope: names declared inside belong to the enclosing block.
                self.emit(Instr::TxBegin, span);
                for inner in &body.stmts {
                    self.stmt(inner)?;
                }
                self.emit(Instr::TxCommit, span);
            }
            StmtKind::Item(e) => {
                self.expr(e)?;
                self.emit(Instr::Pop, span);
            }
            StmtKind::Error => return Err(not_yet("a statement that did not parse", span)),
        }
        Ok(())
    }

    pub(super) fn close_loop(&mut self) {
        let l = self.fs.loops.pop().expect("a loop is open");
        let end = self.here();
        for at in l.breaks {
            self.patch(at, end);
        }
    }
}
