//! The compiler: a checked AST to a `Program` of stack-machine bytecode.
//!
//! It trusts the checker for names and arities (`aether run` checks first) and reports
//! constructs this increment cannot run yet as a `CompileError` saying so.

use std::collections::HashMap;

use aether_check::decl::{DefaultValue, FnDecl, ParamKind, Registry};
use aether_syntax::ast::*;
use aether_syntax::Span;

use crate::program::{Function, Instr, Program};
use crate::value::{Map, Value};

/// A construct that cannot be compiled (yet), with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
    pub span: Span,
}

fn not_yet(what: &str, span: Span) -> CompileError {
    CompileError {
        message: format!("not available yet: {what}"),
        span,
    }
}

#[derive(Clone, Copy, Debug)]
enum Var {
    Local(u16),
    Global(u16),
}

struct Loop {
    /// Where `continue` jumps.
    head: u32,
    /// Jumps to patch to the loop's exit.
    breaks: Vec<usize>,
    /// A `for` loop keeps two values on the stack that `break` must drop.
    is_for: bool,
}

/// One function being compiled.
#[derive(Default)]
struct FnState {
    scopes: Vec<HashMap<String, Var>>,
    next_slot: u16,
    max_slot: u16,
    loops: Vec<Loop>,
    is_main: bool,
}

/// How a parameter gets its value when the call does not give one.
enum Default<'a> {
    Required,
    Const(Value),
    Expr(&'a Expr),
}

struct Param<'a> {
    name: &'a str,
    kind: ParamKind,
    default: Default<'a>,
}

struct Compiler<'a> {
    registry: &'a Registry,
    program: Program,
    actions: HashMap<&'a str, (u32, &'a Action)>,
    globals: HashMap<String, u16>,
    natives: HashMap<String, u32>,
    /// Index of each string constant.
    strings: HashMap<std::rc::Rc<str>, u32>,
    fs: FnState,
}

fn default_value(d: &DefaultValue) -> Value {
    match d {
        DefaultValue::Null => Value::Null,
        DefaultValue::Bool(b) => Value::Bool(*b),
        DefaultValue::Int(n) => Value::Int(*n),
        DefaultValue::Float(x) => Value::Float(*x),
        DefaultValue::Str(s) => Value::from(*s),
        DefaultValue::EmptyList => Value::from(Vec::new()),
        DefaultValue::EmptyMap => Value::from(Map::new()),
        DefaultValue::Duration(ms) => Value::Duration(*ms as f64),
    }
}

/// Compile a script. Workflows, `on_error`, concurrency, events and modules arrive in later
/// increments and are refused with a `not available yet` error.
pub fn compile(script: &Script, registry: &Registry) -> Result<Program, CompileError> {
    let mut c = Compiler {
        registry,
        program: Program::default(),
        actions: HashMap::new(),
        globals: HashMap::new(),
        natives: HashMap::new(),
        strings: HashMap::new(),
        fs: FnState::default(),
    };
    c.program.functions.push(Function {
        name: "<main>".into(),
        entry: 0,
        arity: 0,
        n_locals: 0,
    });
    for item in &script.items {
        match item {
            Item::Action(a) => {
                let idx = c.program.functions.len() as u32;
                c.program.functions.push(Function {
                    name: a.name.text.clone(),
                    entry: 0,
                    arity: a.params().len() as u16,
                    n_locals: 0,
                });
                c.actions.insert(&a.name.text, (idx, a));
            }
            Item::Stmt(s) => {
                if let StmtKind::Let { name, .. } | StmtKind::Declare { name, .. } = &s.kind {
                    c.global_slot(&name.text);
                }
            }
            Item::Workflow(w) => return Err(not_yet("workflow blocks", w.keyword_span)),
            Item::OnError(o) => return Err(not_yet("on_error rules", o.span)),
            Item::Reserved { span, .. } => return Err(not_yet("reserved blocks", *span)),
            Item::Goal(_) | Item::Mapping(_) => {}
        }
    }
    // The main body.
    c.fs = FnState {
        scopes: vec![HashMap::new()],
        is_main: true,
        ..FnState::default()
    };
    for item in &script.items {
        if let Item::Stmt(s) = item {
            c.stmt(s)?;
        }
    }
    let end = Span::default();
    c.emit(Instr::Null, end);
    c.emit(Instr::Return, end);
    c.program.functions[0].n_locals = c.fs.max_slot;
    // The actions, in declaration order.
    let mut actions: Vec<(u32, &Action)> = c.actions.values().copied().collect();
    actions.sort_by_key(|(idx, _)| *idx);
    for (idx, a) in actions {
        c.program.functions[idx as usize].entry = c.program.code.len() as u32;
        c.fs = FnState {
            scopes: vec![HashMap::new()],
            ..FnState::default()
        };
        for p in a.params() {
            c.declare_local(&p.name.text);
        }
        c.block(&a.body)?;
        c.emit(Instr::Null, a.span);
        c.emit(Instr::Return, a.span);
        c.program.functions[idx as usize].n_locals = c.fs.max_slot;
    }
    Ok(c.program)
}

impl<'a> Compiler<'a> {
    fn emit(&mut self, instr: Instr, span: Span) -> usize {
        let ip = self.program.code.len();
        if self.program.source_map.last().map(|(_, s)| *s) != Some(span) {
            self.program.source_map.push((ip as u32, span));
        }
        self.program.code.push(instr);
        ip
    }

    fn here(&self) -> u32 {
        self.program.code.len() as u32
    }

    fn patch(&mut self, at: usize, target: u32) {
        self.program.code[at] = match self.program.code[at] {
            Instr::Jump(_) => Instr::Jump(target),
            Instr::JumpIfFalse(_) => Instr::JumpIfFalse(target),
            Instr::JumpIfFalseKeep(_) => Instr::JumpIfFalseKeep(target),
            Instr::JumpIfTrueKeep(_) => Instr::JumpIfTrueKeep(target),
            Instr::IterNext(_) => Instr::IterNext(target),
            other => other,
        };
    }

    fn constant(&mut self, v: Value) -> u32 {
        // Strings repeat (field names, map keys): share them, found through a map so a
        // string-heavy script compiles in linear time.
        if let Value::Str(s) = &v {
            if let Some(i) = self.strings.get(s) {
                return *i;
            }
            self.strings
                .insert(s.clone(), self.program.constants.len() as u32);
        }
        self.program.constants.push(v);
        (self.program.constants.len() - 1) as u32
    }

    fn global_slot(&mut self, name: &str) -> u16 {
        if let Some(slot) = self.globals.get(name) {
            return *slot;
        }
        let slot = self.program.globals.len() as u16;
        self.program.globals.push(name.to_string());
        self.globals.insert(name.to_string(), slot);
        slot
    }

    fn native(&mut self, name: &str) -> u32 {
        if let Some(i) = self.natives.get(name) {
            return *i;
        }
        let i = self.program.natives.len() as u32;
        self.program.natives.push(name.to_string());
        self.natives.insert(name.to_string(), i);
        i
    }

    fn declare_local(&mut self, name: &str) -> u16 {
        let slot = self.fs.next_slot;
        self.fs.next_slot += 1;
        self.fs.max_slot = self.fs.max_slot.max(self.fs.next_slot);
        self.fs
            .scopes
            .last_mut()
            .expect("a scope")
            .insert(name.to_string(), Var::Local(slot));
        slot
    }

    /// A scratch local for intermediate values; freed with the enclosing scope.
    fn temp(&mut self) -> u16 {
        let slot = self.fs.next_slot;
        self.fs.next_slot += 1;
        self.fs.max_slot = self.fs.max_slot.max(self.fs.next_slot);
        slot
    }

    /// Declare `name` here: a global at the main body's top level, else a local.
    fn declare(&mut self, name: &str) -> Var {
        if self.fs.is_main && self.fs.scopes.len() == 1 {
            let slot = self.global_slot(name);
            self.fs.scopes[0].insert(name.to_string(), Var::Global(slot));
            Var::Global(slot)
        } else {
            Var::Local(self.declare_local(name))
        }
    }

    fn lookup(&self, name: &str) -> Option<Var> {
        self.fs
            .scopes
            .iter()
            .rev()
            .find_map(|s| s.get(name).copied())
            .or_else(|| self.globals.get(name).map(|s| Var::Global(*s)))
    }

    fn store(&mut self, var: Var, span: Span) {
        match var {
            Var::Local(slot) => self.emit(Instr::StoreLocal(slot), span),
            Var::Global(slot) => self.emit(Instr::StoreGlobal(slot), span),
        };
    }

    fn load(&mut self, var: Var, span: Span) {
        match var {
            Var::Local(slot) => self.emit(Instr::LoadLocal(slot), span),
            Var::Global(slot) => self.emit(Instr::LoadGlobal(slot), span),
        };
    }

    fn block(&mut self, b: &Block) -> Result<(), CompileError> {
        self.fs.scopes.push(HashMap::new());
        let saved = self.fs.next_slot;
        for s in &b.stmts {
            self.stmt(s)?;
        }
        self.fs.next_slot = saved;
        self.fs.scopes.pop();
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), CompileError> {
        let span = s.span;
        match &s.kind {
            StmtKind::Let { name, value, .. } => {
                self.expr(value)?;
                let var = self.declare(&name.text);
                self.store(var, name.span);
            }
            StmtKind::Declare { name, value, .. } => {
                self.expr(value)?;
                // 1.1 form: assign when visible in this frame, else declare here.
                let visible = self
                    .fs
                    .scopes
                    .iter()
                    .rev()
                    .find_map(|sc| sc.get(&name.text).copied());
                let var = match visible {
                    Some(v) => v,
                    None => self.declare(&name.text),
                };
                self.store(var, name.span);
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
                    head: head as u32,
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
                self.emit(Instr::Jump(head as u32), span);
                self.close_loop();
            }
            StmtKind::Break => {
                let is_for = self.fs.loops.last().map(|l| l.is_for);
                let Some(is_for) = is_for else {
                    return Err(not_yet("`break` outside a loop", span));
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
                    return Err(not_yet("`continue` outside a loop", span));
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
            StmtKind::Memory { .. } => return Err(not_yet("the memory module", span)),
            StmtKind::Emit { .. } => return Err(not_yet("`emit` and the event stream", span)),
            StmtKind::Trigger(_) => return Err(not_yet("`trigger` (kernel tasks)", span)),
            StmtKind::Sleep(_) => return Err(not_yet("`sleep`", span)),
            StmtKind::Parallel(_) | StmtKind::Await(_) => {
                return Err(not_yet("`parallel:` and `await`", span))
            }
            StmtKind::Transaction(_) | StmtKind::Item(_) => {
                return Err(not_yet("`transaction:` blocks", span))
            }
            StmtKind::Error => return Err(not_yet("a statement that did not parse", span)),
        }
        Ok(())
    }

    fn close_loop(&mut self) {
        let l = self.fs.loops.pop().expect("a loop is open");
        let end = self.here();
        for at in l.breaks {
            self.patch(at, end);
        }
    }

    /// Store the value in local `tmp` into the place `target` (a name, index or field).
    fn assign(&mut self, target: &Expr, tmp: u16) -> Result<(), CompileError> {
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
                self.expr(inner)?;
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
                self.expr(inner)?;
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

    fn expr(&mut self, e: &Expr) -> Result<(), CompileError> {
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
                self.emit(Instr::MakeList(items.len() as u32), span);
            }
            ExprKind::Map(entries) => {
                for (k, v) in entries {
                    let key = self.constant(Value::from(k.text.as_str()));
                    self.emit(Instr::Const(key), k.span);
                    self.expr(v)?;
                }
                self.emit(Instr::MakeMap(entries.len() as u32), span);
            }
            ExprKind::Name(n) => match self.lookup(n) {
                Some(var) => self.load(var, span),
                None => return Err(not_yet(&format!("`{n}` as a value"), span)),
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
            ExprKind::Binary { op, lhs, rhs } => {
                self.expr(lhs)?;
                self.expr(rhs)?;
                self.emit(Instr::Binary(*op), span);
            }
            ExprKind::Call { callee, args } => self.call(callee, args, span)?,
            ExprKind::Member { target, name } => {
                if let Some(path) = e.dotted_path() {
                    if path.len() == 2 && self.lookup(path[0]).is_none() {
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

    fn call(&mut self, callee: &Expr, args: &[Arg], span: Span) -> Result<(), CompileError> {
        let ExprKind::Name(name) = &callee.kind else {
            return Err(not_yet("calls through modules or values", callee.span));
        };
        if self.lookup(name).is_some() {
            return Err(not_yet("calling a variable", callee.span));
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
            self.emit(
                Instr::CallAction {
                    func: idx,
                    argc: params.len() as u16,
                },
                span,
            );
            return Ok(());
        }
        let Some(decl) = self.registry.global(name) else {
            return Err(not_yet(&format!("`{name}()`"), callee.span));
        };
        let decl: FnDecl = decl.clone();
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
        let native = self.native(name);
        self.emit(
            Instr::CallNative {
                native,
                argc: params.len() as u16,
            },
            span,
        );
        Ok(())
    }

    /// Push one value per parameter in declaration order (a variadic as one list), evaluating
    /// the arguments in the order they are written.
    fn bind(&mut self, params: &[Param<'_>], args: &[Arg], span: Span) -> Result<(), CompileError> {
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
                    self.emit(Instr::MakeList(rest as u32), span);
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
        self.fs.next_slot -= temps.len() as u16;
        Ok(())
    }

    fn arg_value(&mut self, args: &[Arg], temps: &[u16], i: usize) -> Result<(), CompileError> {
        match temps.get(i) {
            Some(t) => {
                self.emit(Instr::LoadLocal(*t), args[i].value.span);
                Ok(())
            }
            None => self.expr(&args[i].value),
        }
    }
}
