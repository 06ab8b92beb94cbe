//! Slots and scopes: globals, locals and temporaries, moves out of a slot for in-place
//! updates, and the operand limits (a script too large to run).

use super::*;

impl<'a> Compiler<'a> {
    /// `n` as a 16-bit operand; past the limit, the script is too large (the error is
    /// reported at the statement being compiled, once) and the operand saturates.
    pub(super) fn u16_of(&mut self, n: usize, what: &str) -> u16 {
        u16::try_from(n).unwrap_or_else(|_| {
            self.limit(what, usize::from(u16::MAX));
            u16::MAX
        })
    }

    /// `n` as a 32-bit operand (instructions, constants, list sizes), like [`Self::u16_of`].
    pub(super) fn u32_of(&mut self, n: usize, what: &str) -> u32 {
        u32::try_from(n).unwrap_or_else(|_| {
            self.limit(what, u32::MAX as usize);
            u32::MAX
        })
    }

    pub(super) fn limit(&mut self, what: &str, max: usize) {
        let at = self.at;
        self.too_large.get_or_insert_with(|| CompileError {
            message: format!("this script is too large to run: more than {max} {what}"),
            span: at,
        });
    }

    /// The next free local slot of the current function.
    pub(super) fn next_local(&mut self) -> u16 {
        let slot = self.fs.next_slot;
        match slot.checked_add(1) {
            Some(next) => self.fs.next_slot = next,
            None => self.limit(
                "local variables and temporaries in one action",
                usize::from(u16::MAX),
            ),
        }
        self.fs.max_slot = self.fs.max_slot.max(self.fs.next_slot);
        slot
    }

    pub(super) fn global_slot(&mut self, name: &str) -> u16 {
        if let Some(slot) = self.globals.get(name) {
            return *slot;
        }
        let slot = self.u16_of(self.program.globals.len() + 1, "top-level variables") - 1;
        self.program.globals.push(name.to_string());
        self.globals.insert(name.to_string(), slot);
        slot
    }

    pub(super) fn declare_local(&mut self, name: &str) -> u16 {
        let slot = self.next_local();
        self.fs
            .scopes
            .last_mut()
            .expect("a scope")
            .insert(name.to_string(), Var::Local(slot));
        slot
    }

    /// A scratch local for intermediate values; freed with the enclosing scope.
    pub(super) fn temp(&mut self) -> u16 {
        self.next_local()
    }

    /// Declare `name` here: a global at the main body's top level, else a local.
    pub(super) fn declare(&mut self, name: &str) -> Var {
        if self.fs.is_main && self.fs.scopes.len() == 1 {
            let slot = self.global_slot(name);
            self.fs.scopes[0].insert(name.to_string(), Var::Global(slot));
            Var::Global(slot)
        } else {
            Var::Local(self.declare_local(name))
        }
    }

    /// Variable `name` if an update of it may move its value out of the slot while `others`
    /// are evaluated: they must not read it, and for a top-level variable nothing else may
    /// run meanwhile (no call, no other fiber).
    pub(super) fn takeable(&self, name: &str, others: &[&Expr]) -> Option<Var> {
        let var = self.visible_here(name).or_else(|| {
            // Actions may not assign top-level variables; the main body may.
            self.fs.is_main.then(|| self.lookup(name)).flatten()
        })?;
        let mut read = Vec::new();
        for e in others {
            names_in(e, &mut read);
        }
        if read.contains(&name) {
            return None;
        }
        match var {
            Var::Local(_) => Some(var),
            Var::Global(_)
                if !self.shares_globals && !others.iter().any(|e| self.runs_script(e)) =>
            {
                Some(var)
            }
            Var::Global(_) => None,
        }
    }

    /// Whether evaluating `e` may run script code (an action, a workflow, a call through
    /// a variable), which could read a top-level variable; native functions cannot.
    pub(super) fn runs_script(&self, e: &Expr) -> bool {
        has_call(e, &|callee| match &callee.kind {
            ExprKind::Name(n) => {
                self.lookup(n).is_some()
                    || self.actions.contains_key(n.as_str())
                    || self.workflows.contains_key(n.as_str())
                    || self.registry.global(n).is_none()
            }
            ExprKind::Member { target, .. } => {
                !matches!(&target.kind, ExprKind::Name(m) if self.lookup(m).is_none())
            }
            _ => true,
        })
    }

    pub(super) fn take(&mut self, var: Var, span: Span) {
        match var {
            Var::Local(slot) => self.emit(Instr::TakeLocal(slot), span),
            Var::Global(slot) => self.emit(Instr::TakeGlobal(slot), span),
        };
    }

    /// `x = x + a + ...` and `x = append(x, v)` as in-place updates; false when the
    /// statement does not have that shape (or the update may not move the value).
    pub(super) fn update_in_place(
        &mut self,
        name: &Name,
        value: &'a Expr,
    ) -> Result<bool, CompileError> {
        let mut rest = Vec::new();
        let numeric = |e: &&Expr| matches!(e.kind, ExprKind::Int(_) | ExprKind::Float(_));
        if add_chain(value, &name.text, &mut rest) && !rest.is_empty() && !rest.iter().all(numeric)
        {
            let Some(var) = self.takeable(&name.text, &rest) else {
                return Ok(false);
            };
            self.take(var, name.span);
            // Same tree walk as `expr` for a left-nested `+` chain.
            fn operands<'e>(e: &'e Expr, out: &mut Vec<(&'e Expr, Span)>) {
                if let ExprKind::Binary {
                    op: BinaryOp::Add,
                    lhs,
                    rhs,
                } = &e.kind
                {
                    operands(lhs, out);
                    out.push((rhs, e.span));
                }
            }
            let mut ops = Vec::new();
            operands(value, &mut ops);
            for (rhs, span) in ops {
                self.expr(rhs)?;
                self.emit(Instr::Binary(BinaryOp::Add), span);
            }
            self.store(var, name.span);
            return Ok(true);
        }
        if let ExprKind::Call { callee, args } = &value.kind {
            let is_append = matches!(&callee.kind, ExprKind::Name(n) if n == "append")
                && self.lookup("append").is_none()
                && !self.actions.contains_key("append")
                && self.registry.global("append").is_some();
            if let (true, [first, second]) = (is_append, args.as_slice()) {
                let named_first = matches!(&first.value.kind, ExprKind::Name(n) if *n == name.text);
                if named_first && first.name.is_none() && second.name.is_none() {
                    if let Some(var) = self.takeable(&name.text, &[&second.value]) {
                        self.take(var, name.span);
                        self.expr(&second.value)?;
                        self.emit(Instr::ListPush, value.span);
                        self.store(var, name.span);
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// A variable of the current function (not a top-level one seen from an action).
    pub(super) fn visible_here(&self, name: &str) -> Option<Var> {
        self.fs
            .scopes
            .iter()
            .rev()
            .find_map(|sc| sc.get(name).copied())
    }

    pub(super) fn lookup(&self, name: &str) -> Option<Var> {
        self.fs
            .scopes
            .iter()
            .rev()
            .find_map(|s| s.get(name).copied())
            .or_else(|| self.globals.get(name).map(|s| Var::Global(*s)))
    }

    pub(super) fn store(&mut self, var: Var, span: Span) {
        match var {
            Var::Local(slot) => self.emit(Instr::StoreLocal(slot), span),
            Var::Global(slot) => self.emit(Instr::StoreGlobal(slot), span),
        };
    }

    pub(super) fn load(&mut self, var: Var, span: Span) {
        match var {
            Var::Local(slot) => self.emit(Instr::LoadLocal(slot), span),
            Var::Global(slot) => self.emit(Instr::LoadGlobal(slot), span),
        };
    }
}
