//! Expressions and calls: assignment targets, operators, literals, calls of actions,
//! workflows and functions of the table (arguments bound by parameter), `trigger`.

use super::*;

impl<'a> Compiler<'a> {
    /// Store the value in local `tmp` into the place `target` (a name, index or field).
    pub(super) fn assign(&mut self, target: &'a Expr, tmp: u16) -> Result<(), CompileError> {
        match &target.kind {
            ExprKind::Name(n) => {
                let var = self
                    .lookup(n)
                    .ok_or_else(|| not_yet(&format!("assignment to `{n}`"), target.span))?;
                self.emit(Instr::LoadLocal(tmp), target.span);
                self.store(var, target.span);
            }
            ExprKind::Index {
                target: inner,
                index,
            } => {
                self.container(inner, &[index])?;
                self.expr(index)?;
                self.emit(Instr::LoadLocal(tmp), target.span);
                self.emit(Instr::SetIndex, target.span);
                self.emit(Instr::StoreLocal(tmp), target.span);
                self.assign(inner, tmp)?;
            }
            ExprKind::Member {
                target: inner,
                name,
            } => {
                self.container(inner, &[])?;
                self.emit(Instr::LoadLocal(tmp), target.span);
                let k = self.constant(Value::from(name.text.as_str()));
                self.emit(Instr::SetField(k), target.span);
                self.emit(Instr::StoreLocal(tmp), target.span);
                self.assign(inner, tmp)?;
            }
            _ => return Err(not_yet("this assignment target", target.span)),
        }
        Ok(())
    }

    /// The container of `x[k] = v` / `x.k = v`: moved out of a plain variable when that is
    /// safe (so the update is in place), else loaded.
    pub(super) fn container(
        &mut self,
        inner: &'a Expr,
        others: &[&Expr],
    ) -> Result<(), CompileError> {
        if let ExprKind::Name(n) = &inner.kind {
            if let Some(var) = self.takeable(n, others) {
                self.take(var, inner.span);
                return Ok(());
            }
        }
        self.expr(inner)
    }

    pub(super) fn expr(&mut self, e: &'a Expr) -> Result<(), CompileError> {
        let span = e.span;
        match &e.kind {
            ExprKind::Null => {
                self.emit(Instr::Null, span);
            }
            ExprKind::Bool(b) => {
                let k = self.constant(Value::Bool(*b));
                self.emit(Instr::Const(k), span);
            }
            ExprKind::Int(n) => {
                let k = self.constant(Value::Int(*n));
                self.emit(Instr::Const(k), span);
            }
            ExprKind::Float(x) => {
                let k = self.constant(Value::Float(*x));
                self.emit(Instr::Const(k), span);
            }
            ExprKind::Duration(ms) => {
                let k = self.constant(Value::Duration(*ms));
                self.emit(Instr::Const(k), span);
            }
            ExprKind::Str(s) => {
                let k = self.constant(Value::from(s.as_str()));
                self.emit(Instr::Const(k), span);
            }
            ExprKind::List(items) => {
                for it in items {
                    self.expr(it)?;
                }
                let n_operand = self.u32_of(items.len(), "elements in one list");
                self.emit(Instr::MakeList(n_operand), span);
            }
            ExprKind::Map(entries) => {
                for (k, v) in entries {
                    let key = self.constant(Value::from(k.text.as_str()));
                    self.emit(Instr::Const(key), k.span);
                    self.expr(v)?;
                }
                let n_operand = self.u32_of(entries.len(), "entries in one map");
                self.emit(Instr::MakeMap(n_operand), span);
            }
            ExprKind::Name(n) => match self.lookup(n) {
                Some(var) => self.load(var, span),
                None if n == "policy" => {
                    let k = self.constant(Value::from(self.program.policy.clone()));
                    self.emit(Instr::Const(k), span);
                }
                None if n == "args" => {
                    let slot = self.global_slot(ARGS_GLOBAL);
                    self.emit(Instr::LoadGlobal(slot), span);
                }
                None if n == "workflow" => {
                    return Err(CompileError {
                        message: "`workflow` is readable only inside a workflow block's steps"
                            .into(),
                        span,
                    })
                }
                None => match self.actions.get(n.as_str()) {
                    Some((idx, _)) => {
                        let k = self.constant(Value::Action(std::rc::Rc::new(ActionRef {
                            func: *idx,
                            name: n.clone(),
                        })));
                        self.emit(Instr::Const(k), span);
                    }
                    None => return Err(not_yet(&format!("`{n}` as a value"), span)),
                },
            },
            ExprKind::Unary { op, operand } => {
                self.expr(operand)?;
                let instr = match op {
                    UnaryOp::Neg => Instr::Neg,
                    UnaryOp::Not => Instr::Not,
                };
                self.emit(instr, span);
            }
            ExprKind::Binary {
                op: op @ (BinaryOp::And | BinaryOp::Or),
                lhs,
                rhs,
            } => {
                self.expr(lhs)?;
                let jump = if *op == BinaryOp::And {
                    Instr::JumpIfFalseKeep(0)
                } else {
                    Instr::JumpIfTrueKeep(0)
                };
                let at = self.emit(jump, span);
                self.expr(rhs)?;
                let end = self.here();
                self.patch(at, end);
            }
            ExprKind::Binary { op, lhs, rhs } if self.local_operand(lhs, rhs).is_some() => {
                // `x op e` for a local `x` and a compound `e`: `e` first, then one
                // instruction with `x` as its register operand (nothing in `e` can assign
                // `x`, so reading it last reads the same value).
                let slot = self.local_operand(lhs, rhs).expect("checked by the guard");
                self.expr(rhs)?;
                self.emit(Instr::LocalBinary { slot, op: *op }, span);
            }
            ExprKind::Binary { op, lhs, rhs } => {
                self.expr(lhs)?;
                self.expr(rhs)?;
                self.emit(Instr::Binary(*op), span);
            }
            ExprKind::Call { callee, args } => self.call(callee, args, span)?,
            ExprKind::Member { target, name } => {
                if let Some(path) = e.dotted_path() {
                    let builtin = matches!(path[0], "policy" | "args" | "workflow");
                    if path.len() == 2 && self.lookup(path[0]).is_none() && !builtin {
                        return Err(not_yet(&format!("`{}`", path.join(".")), span));
                    }
                }
                self.expr(target)?;
                let k = self.constant(Value::from(name.text.as_str()));
                self.emit(Instr::GetField(k), span);
            }
            ExprKind::Index { target, index } => {
                self.expr(target)?;
                self.expr(index)?;
                self.emit(Instr::Index, span);
            }
            ExprKind::MultiIndex { .. } | ExprKind::Error => {
                return Err(not_yet("this expression", span))
            }
        }
        Ok(())
    }

    /// The slot of `lhs` when `lhs op rhs` compiles to `LocalBinary`: `lhs` names a
    /// local of this action and `rhs` is compound (a constant or a local operand has its
    /// own fused instructions).
    fn local_operand(&self, lhs: &Expr, rhs: &Expr) -> Option<u16> {
        let ExprKind::Name(n) = &lhs.kind else {
            return None;
        };
        let simple = match &rhs.kind {
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Duration(_)
            | ExprKind::Str(_) => true,
            ExprKind::Name(r) => matches!(self.lookup(r), Some(Var::Local(_))),
            _ => false,
        };
        match self.lookup(n) {
            Some(Var::Local(slot)) if !simple => Some(slot),
            _ => None,
        }
    }

    pub(super) fn call(
        &mut self,
        callee: &'a Expr,
        args: &'a [Arg],
        span: Span,
    ) -> Result<(), CompileError> {
        if let ExprKind::Member { target, name } = &callee.kind {
            if let ExprKind::Name(module) = &target.kind {
                if self.lookup(module).is_none() {
                    let Some(id) = self.registry.module_fn_id(module, &name.text) else {
                        return Err(not_yet(&format!("`{module}.{}()`", name.text), callee.span));
                    };
                    return self.native_call(id, args, span);
                }
            }
            return Err(not_yet("calls through values", callee.span));
        }
        let ExprKind::Name(name) = &callee.kind else {
            return Err(not_yet("calls through values", callee.span));
        };
        if let Some(var) = self.lookup(name) {
            // An action reference held in a variable: positional arguments only.
            if let Some(a) = args.iter().find(|a| a.name.is_some()) {
                return Err(not_yet(
                    "keyword arguments in a call through a variable",
                    a.value.span,
                ));
            }
            self.load(var, callee.span);
            for a in args {
                self.expr(&a.value)?;
            }
            let n_operand = self.u16_of(args.len(), "arguments in one call");
            self.emit(Instr::CallValue { argc: n_operand }, span);
            return Ok(());
        }
        if let Some((idx, action)) = self.actions.get(name.as_str()).copied() {
            let params: Vec<Param<'_>> = action
                .params()
                .iter()
                .map(|p| Param {
                    name: &p.name.text,
                    kind: ParamKind::Normal,
                    default: p.default.as_ref().map_or(Default::Required, Default::Expr),
                })
                .collect();
            self.bind(&params, args, span)?;
            let n_operand = self.u16_of(params.len(), "arguments in one call");
            self.emit(
                Instr::CallAction {
                    func: idx,
                    argc: n_operand,
                },
                span,
            );
            return Ok(());
        }
        if let Some(w) = self.workflows.get(name.as_str()).copied() {
            self.emit(
                Instr::CallWorkflow {
                    workflow: w,
                    if_not_run: false,
                },
                span,
            );
            return Ok(());
        }
        let Some(id) = self.registry.global_id(name) else {
            return Err(not_yet(&format!("`{name}()`"), callee.span));
        };
        self.native_call(id, args, span)
    }

    /// A call of the native function `id` (`len`, `memory.store`): its arguments bound
    /// against its declaration, then the call by id.
    pub(super) fn native_call(
        &mut self,
        id: FnId,
        args: &'a [Arg],
        span: Span,
    ) -> Result<(), CompileError> {
        let registry = self.registry;
        let Some(decl) = registry.decl(id) else {
            return Err(not_yet("a function without a declaration", span));
        };
        let params: Vec<Param<'_>> = decl
            .params
            .iter()
            .map(|p| Param {
                name: p.name,
                kind: p.kind,
                default: p
                    .default
                    .as_ref()
                    .map_or(Default::Required, |d| Default::Const(default_value(d))),
            })
            .collect();
        self.bind(&params, args, span)?;
        let n_operand = self.u16_of(params.len(), "arguments in one call");
        self.emit(
            Instr::CallNative {
                func: id.0,
                argc: n_operand,
            },
            span,
        );
        Ok(())
    }

    /// `trigger task(args)`: the arguments by parameter name, then the kernel submission.
    pub(super) fn trigger(&mut self, call: &'a Expr, span: Span) -> Result<(), CompileError> {
        let ExprKind::Call { callee, args } = &call.kind else {
            return Err(not_yet("`trigger` without a call", span));
        };
        let Some(path) = callee.dotted_path() else {
            return Err(not_yet("`trigger` of this callee", callee.span));
        };
        let task = path.join(".");
        let names: Vec<String> = match path.as_slice() {
            [n] => match self.actions.get(*n) {
                Some((_, a)) => a.params().iter().map(|p| p.name.text.clone()).collect(),
                None => self
                    .registry
                    .global(n)
                    .map(|d| d.params.iter().map(|p| p.name.to_string()).collect())
                    .unwrap_or_default(),
            },
            [m, f] => self
                .registry
                .module_fn(m, f)
                .map(|d| d.params.iter().map(|p| p.name.to_string()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for (i, a) in args.iter().enumerate() {
            let key = match &a.name {
                Some(n) => n.text.clone(),
                None => names.get(i).cloned().unwrap_or_else(|| format!("arg{i}")),
            };
            let k = self.constant(Value::from(key));
            self.emit(Instr::Const(k), a.value.span);
            self.expr(&a.value)?;
        }
        let n_operand = self.u32_of(args.len(), "entries in one map");
        self.emit(Instr::MakeMap(n_operand), span);
        let k = self.constant(Value::from(task));
        self.emit(Instr::Trigger { task: k }, span);
        Ok(())
    }

    /// Push one value per parameter in declaration order (a variadic as one list), evaluating
    /// the arguments in the order they are written.
    pub(super) fn bind(
        &mut self,
        params: &[Param<'a>],
        args: &'a [Arg],
        span: Span,
    ) -> Result<(), CompileError> {
        let n_positional = args.iter().take_while(|a| a.name.is_none()).count();
        let has_keywords = n_positional < args.len();
        // Arguments in written order: evaluated straight onto the stack when no keyword
        // reorders them, else into scratch locals first.
        let mut temps: Vec<u16> = Vec::new();
        if has_keywords {
            for a in args {
                self.expr(&a.value)?;
                let t = self.temp();
                self.emit(Instr::StoreLocal(t), a.value.span);
                temps.push(t);
            }
        }
        let mut next_positional = 0;
        for p in params {
            match p.kind {
                ParamKind::Variadic => {
                    let rest = n_positional.saturating_sub(next_positional);
                    for i in next_positional..n_positional {
                        self.arg_value(args, &temps, i)?;
                    }
                    next_positional = n_positional;
                    let n_operand = self.u32_of(rest, "elements in one list");
                    self.emit(Instr::MakeList(n_operand), span);
                }
                ParamKind::Normal | ParamKind::KeywordOnly => {
                    let given = if p.kind == ParamKind::Normal && next_positional < n_positional {
                        next_positional += 1;
                        Some(next_positional - 1)
                    } else {
                        args.iter()
                            .position(|a| a.name.as_ref().is_some_and(|n| n.text == p.name))
                    };
                    match (given, &p.default) {
                        (Some(i), _) => self.arg_value(args, &temps, i)?,
                        (None, Default::Const(v)) => {
                            let k = self.constant(v.clone());
                            self.emit(Instr::Const(k), span);
                        }
                        (None, Default::Expr(e)) => {
                            // Defaults see top-level names only, not the caller's locals.
                            let scopes = std::mem::take(&mut self.fs.scopes);
                            self.fs.scopes.push(HashMap::new());
                            let res = self.expr(e);
                            self.fs.scopes = scopes;
                            res?;
                        }
                        (None, Default::Required) => {
                            return Err(not_yet(&format!("a call without `{}`", p.name), span))
                        }
                    }
                }
            }
        }
        self.fs.next_slot = self
            .fs
            .next_slot
            .saturating_sub(self.u16_of(temps.len(), "arguments in one call"));
        Ok(())
    }

    pub(super) fn arg_value(
        &mut self,
        args: &'a [Arg],
        temps: &[u16],
        i: usize,
    ) -> Result<(), CompileError> {
        match temps.get(i) {
            Some(t) => {
                self.emit(Instr::LoadLocal(*t), args[i].value.span);
                Ok(())
            }
            None => self.expr(&args[i].value),
        }
    }
}
