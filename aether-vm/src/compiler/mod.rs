//! The compiler: a checked AST to a `Program` of stack-machine bytecode.
//!
//! It trusts the checker for names and arities (`aether run` checks first) and reports
//! constructs this increment cannot run yet as a `CompileError` saying so.

use std::collections::HashMap;

use aether_check::decl::{DefaultValue, FnId, ParamKind, Registry};
use aether_syntax::ast::*;
use aether_syntax::Span;

use crate::program::{Function, Handler, Instr, Program, Step, WorkflowInfo};
use crate::value::{ActionRef, Map, Value};

mod expr;
mod scope;
mod stmt;

/// The global slot that holds `aether run --arg` values (not a name a script can declare).
pub const ARGS_GLOBAL: &str = "$args";

/// A construct that cannot be compiled (yet), with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
    pub span: Span,
}

/// A count the compiler has already bounded (instructions, constants, functions: see
/// `Compiler::u32_of`) as an operand.
fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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

/// What a compiler-made function does.
enum Body<'a> {
    /// Evaluate and return the expression (a `parallel:` right side, an `on_error` call).
    Expr(&'a Expr),
    /// A workflow step: a call, or a bare name or module function called with no arguments.
    StepCall(&'a Expr),
    /// A workflow block's steps.
    Workflow(&'a Workflow),
}

/// A function the compiler made for a construct that runs on its own fiber.
struct Synthetic<'a> {
    func: u32,
    /// The enclosing function's variables the body reads, passed in as arguments.
    params: Vec<String>,
    body: Body<'a>,
}

struct Compiler<'a> {
    registry: &'a Registry,
    /// Some fiber may read top-level variables while another updates them (the script
    /// has a `parallel:` block), so top-level updates never move a value out of its slot.
    shares_globals: bool,
    synthetic: Vec<Synthetic<'a>>,
    workflows: HashMap<&'a str, u32>,
    program: Program,
    actions: HashMap<&'a str, (u32, &'a Action)>,
    globals: HashMap<String, u16>,
    /// Index of each string constant.
    strings: HashMap<std::rc::Rc<str>, u32>,
    fs: FnState,
    /// The statement being compiled (where a limit error points).
    at: Span,
    /// The first operand that did not fit its instruction (a script too large to compile).
    too_large: Option<CompileError>,
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
pub fn compile<'a>(script: &'a Script, registry: &'a Registry) -> Result<Program, CompileError> {
    let mut c = Compiler {
        registry,
        shares_globals: script_spawns(script),
        synthetic: Vec::new(),
        workflows: HashMap::new(),
        program: Program::default(),
        actions: HashMap::new(),
        globals: HashMap::new(),
        strings: HashMap::new(),
        fs: FnState::default(),
        at: Span::default(),
        too_large: None,
    };
    c.function("<main>", 0);
    for item in &script.items {
        match item {
            Item::Action(a) => {
                c.at = a.name.span;
                let idx = c.function(&a.name.text, a.params().len());
                let required = a.params().iter().rposition(|p| p.default.is_none());
                let f = &mut c.program.functions[idx as usize];
                f.required = required.map_or(0, |i| u16::try_from(i + 1).unwrap_or(u16::MAX));
                f.params = a.params().iter().map(|p| p.name.text.clone()).collect();
                f.is_action = true;
                c.actions.insert(&a.name.text, (idx, a));
            }
            Item::Stmt(s) => {
                if let StmtKind::Let { name, .. } | StmtKind::Declare { name, .. } = &s.kind {
                    c.at = s.span;
                    c.global_slot(&name.text);
                }
            }
            Item::Workflow(w) => {
                let label = w.name.as_ref().map_or("workflow", |n| n.text.as_str());
                let func = c.function(&format!("<workflow {label}>"), 0);
                let idx = saturating_u32(c.program.workflows.len());
                c.program.workflows.push(WorkflowInfo {
                    name: w.name.as_ref().map(|n| n.text.clone()),
                    func,
                    span: w.keyword_span,
                });
                if let Some(n) = &w.name {
                    c.workflows.entry(&n.text).or_insert(idx);
                }
                c.synthetic.push(Synthetic {
                    func,
                    params: Vec::new(),
                    body: Body::Workflow(w),
                });
            }
            Item::OnError(o) => {
                for rule in &o.rules {
                    let func = c.function(&format!("<on_error {}>", rule.kind.text), 1);
                    c.program.handlers.push(Handler {
                        kind: rule.kind.text.clone(),
                        func,
                        span: rule.span,
                    });
                    c.synthetic.push(Synthetic {
                        func,
                        params: vec!["error".to_string()],
                        body: Body::Expr(&rule.handler),
                    });
                }
            }
            Item::Mapping(m) => c.mapping(m),
            Item::Reserved { span, .. } => return Err(not_yet("reserved blocks", *span)),
            Item::Goal(_) => {}
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
    // Workflows run after the main body, in file order, unless it already called them.
    for i in 0..c.program.workflows.len() {
        let span = c.program.workflows[i].span;
        c.emit(
            Instr::CallWorkflow {
                workflow: saturating_u32(i),
                if_not_run: true,
            },
            span,
        );
        c.emit(Instr::Pop, span);
    }
    c.emit(Instr::Null, end);
    c.emit(Instr::Return, end);
    c.program.functions[0].n_locals = c.fs.max_slot;
    // The actions, in declaration order.
    let mut actions: Vec<(u32, &Action)> = c.actions.values().copied().collect();
    actions.sort_by_key(|(idx, _)| *idx);
    for (idx, a) in actions {
        c.program.functions[idx as usize].entry = saturating_u32(c.program.code.len());
        c.fs = FnState {
            scopes: vec![HashMap::new()],
            ..FnState::default()
        };
        let slots: Vec<u16> = a
            .params()
            .iter()
            .map(|p| c.declare_local(&p.name.text))
            .collect();
        // The prologue: a parameter a call through a reference did not give takes its
        // default here (direct calls evaluate defaults at the call site).
        for (p, slot) in a.params().iter().zip(slots) {
            if let Some(d) = &p.default {
                let at = c.emit(Instr::JumpIfGiven { slot, target: 0 }, d.span);
                let scopes = std::mem::take(&mut c.fs.scopes);
                c.fs.scopes.push(HashMap::new());
                let res = c.expr(d);
                c.fs.scopes = scopes;
                res?;
                c.emit(Instr::StoreLocal(slot), d.span);
                let end = c.here();
                c.patch(at, end);
            }
        }
        c.block(&a.body)?;
        c.emit(Instr::Null, a.span);
        c.emit(Instr::Return, a.span);
        c.program.functions[idx as usize].n_locals = c.fs.max_slot;
    }
    // Workflows, steps, `parallel:` right sides and `on_error` calls; compiling one may
    // queue more (a workflow queues its steps).
    while let Some(syn) = c.synthetic.pop() {
        c.synthetic_fn(syn)?;
    }
    if let Some(e) = c.too_large {
        return Err(e);
    }
    c.program.fuse();
    Ok(c.program)
}

/// The value of a constant expression (literals, negated numbers, lists and maps of them).
fn const_value(e: &Expr) -> Option<Value> {
    Some(match &e.kind {
        ExprKind::Null => Value::Null,
        ExprKind::Bool(b) => Value::Bool(*b),
        ExprKind::Int(n) => Value::Int(*n),
        ExprKind::Float(x) => Value::Float(*x),
        ExprKind::Str(s) => Value::from(s.as_str()),
        ExprKind::Duration(ms) => Value::Duration(*ms),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            operand,
        } => const_value(operand)?.neg().ok()?,
        ExprKind::List(items) => {
            Value::from(items.iter().map(const_value).collect::<Option<Vec<_>>>()?)
        }
        ExprKind::Map(entries) => Value::from(
            entries
                .iter()
                .map(|(k, v)| Some((k.text.as_str(), const_value(v)?)))
                .collect::<Option<Map>>()?,
        ),
        _ => return None,
    })
}

fn const_map_value(v: &MapValue) -> Option<Value> {
    Some(match v {
        MapValue::Expr(e) => const_value(e)?,
        MapValue::List(items) => Value::from(
            items
                .iter()
                .map(|i| const_value(&i.value))
                .collect::<Option<Vec<_>>>()?,
        ),
        MapValue::Map(entries) => Value::from(const_entries(entries)?),
    })
}

fn const_entries(entries: &[MapEntry]) -> Option<Map> {
    entries
        .iter()
        .map(|e| Some((e.key.as_str(), const_map_value(&e.value)?)))
        .collect()
}

/// A step option's duration in ms: a duration literal, a number of seconds or a string
/// such as `"30s"`.
fn duration_ms(e: &Expr) -> Option<f64> {
    match const_value(e)? {
        Value::Duration(ms) => Some(ms),
        Value::Int(n) => Some(n as f64 * 1000.0),
        Value::Float(x) => Some(x * 1000.0),
        Value::Str(s) => aether_syntax::token::parse_duration(&s),
        _ => None,
    }
}

/// Whether an expression submits a kernel task (`kernel.submit(...)`), which runs beside
/// the fiber that submitted it.
fn submits(e: &Expr) -> bool {
    has_call(e, &|callee| {
        callee.dotted_path().as_deref() == Some(&["kernel", "submit"][..])
    })
}

/// Whether statements start fibers that run beside the one running them: `parallel:`,
/// `trigger`, or a `kernel.submit(...)` call anywhere in them.
fn spawns(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match &s.kind {
        StmtKind::Parallel(_) | StmtKind::Trigger(_) => true,
        StmtKind::If {
            branches,
            else_block,
        } => {
            branches.iter().any(|(c, b)| submits(c) || spawns(&b.stmts))
                || else_block.as_ref().is_some_and(|b| spawns(&b.stmts))
        }
        StmtKind::For { iter: e, body, .. } | StmtKind::While { cond: e, body } => {
            submits(e) || spawns(&body.stmts)
        }
        StmtKind::Transaction(b) => spawns(&b.stmts),
        StmtKind::Let { value: e, .. }
        | StmtKind::Declare { value: e, .. }
        | StmtKind::Expr(e)
        | StmtKind::Item(e)
        | StmtKind::Memory { call: e }
        | StmtKind::Sleep(e)
        | StmtKind::Return(Some(e)) => submits(e),
        StmtKind::Assign { target, value } => submits(target) || submits(value),
        StmtKind::Emit {
            payload: Some(e), ..
        } => submits(e),
        StmtKind::Assert { cond, message } => {
            submits(cond) || message.as_ref().is_some_and(submits)
        }
        StmtKind::Await(targets) => targets.iter().any(submits),
        _ => false,
    })
}

/// Whether top-level variables may be read by other code while an update of one is in
/// flight (so such updates must never move a value out of its slot): fibers beside the main
/// body's, or an `on_error` handler reading them after an update failed half-way.
fn script_spawns(script: &Script) -> bool {
    script.items.iter().any(|i| match i {
        Item::OnError(_) => true,
        Item::Stmt(s) => spawns(std::slice::from_ref(s)),
        Item::Action(a) => spawns(&a.body.stmts),
        Item::Workflow(w) => w.steps().iter().any(|step| submits(&step.value)),
        _ => false,
    })
}

/// Whether an expression calls anything for which `is_script` says true.
fn has_call(e: &Expr, is_script: &dyn Fn(&Expr) -> bool) -> bool {
    let has_call = |e: &Expr| has_call(e, is_script);
    match &e.kind {
        ExprKind::Call { callee, args } => {
            is_script(callee) || has_call(callee) || args.iter().any(|a| has_call(&a.value))
        }
        ExprKind::List(items) => items.iter().any(has_call),
        ExprKind::Map(entries) => entries.iter().any(|(_, v)| has_call(v)),
        ExprKind::Unary { operand, .. } => has_call(operand),
        ExprKind::Binary { lhs, rhs, .. } => has_call(lhs) || has_call(rhs),
        ExprKind::Member { target, .. } => has_call(target),
        ExprKind::Index { target, index } => has_call(target) || has_call(index),
        ExprKind::MultiIndex { target, indices } => {
            has_call(target) || indices.iter().any(&has_call)
        }
        _ => false,
    }
}

/// `x + a + b` as `x` and `[a, b]`: the operands added to the leftmost name.
fn add_chain<'e>(e: &'e Expr, name: &str, rest: &mut Vec<&'e Expr>) -> bool {
    match &e.kind {
        ExprKind::Name(n) => n == name,
        ExprKind::Binary {
            op: BinaryOp::Add,
            lhs,
            rhs,
        } => {
            let ok = add_chain(lhs, name, rest);
            rest.push(rhs);
            ok
        }
        _ => false,
    }
}

/// The names an expression reads, in first-use order.
fn names_in<'e>(e: &'e Expr, out: &mut Vec<&'e str>) {
    match &e.kind {
        ExprKind::Name(n) if !out.contains(&n.as_str()) => out.push(n),
        ExprKind::List(items) => items.iter().for_each(|i| names_in(i, out)),
        ExprKind::Map(entries) => entries.iter().for_each(|(_, v)| names_in(v, out)),
        ExprKind::Unary { operand, .. } => names_in(operand, out),
        ExprKind::Binary { lhs, rhs, .. } => {
            names_in(lhs, out);
            names_in(rhs, out);
        }
        ExprKind::Call { callee, args } => {
            names_in(callee, out);
            args.iter().for_each(|a| names_in(&a.value, out));
        }
        ExprKind::Member { target, .. } => names_in(target, out),
        ExprKind::Index { target, index } => {
            names_in(target, out);
            names_in(index, out);
        }
        ExprKind::MultiIndex { target, indices } => {
            names_in(target, out);
            indices.iter().for_each(|i| names_in(i, out));
        }
        _ => {}
    }
}

/// How a step is labelled in messages and events: its callee (`fetch`, `memory.status`).
fn step_label(e: &Expr) -> String {
    let callee = match &e.kind {
        ExprKind::Call { callee, .. } => callee,
        _ => e,
    };
    callee
        .dotted_path()
        .map_or_else(|| "step".to_string(), |p| p.join("."))
}

impl<'a> Compiler<'a> {
    fn function(&mut self, name: &str, arity: usize) -> u32 {
        let arity = self.u16_of(arity, "parameters of one action");
        self.u32_of(
            self.program.functions.len() + 1,
            "actions, workflows and steps",
        );
        self.program.functions.push(Function {
            name: name.to_string(),
            entry: 0,
            arity,
            required: arity,
            n_locals: 0,
            params: Vec::new(),
            is_action: false,
        });
        saturating_u32(self.program.functions.len() - 1)
    }

    /// `policy:` settings, and the capabilities `require:` and `meta: requires:` declare.
    fn mapping(&mut self, m: &MappingBlock) {
        for e in &m.entries {
            let value = const_map_value(&e.value);
            match (m.kind, e.key.as_str()) {
                (MappingKind::Policy, _) => {
                    if let Some(v) = value {
                        self.program.policy.insert(e.key.as_str(), v);
                    }
                }
                (MappingKind::Require, "plugins") => {
                    if let Some(Value::List(items)) = value {
                        for it in items.iter() {
                            if let Value::Str(c) = it {
                                self.program.plugin_requirements.push(c.to_string());
                            }
                        }
                    }
                }
                (MappingKind::Require, "capabilities")
                | (MappingKind::Meta | MappingKind::Metadata, "requires") => {
                    if let Some(Value::List(items)) = value {
                        for it in items.iter() {
                            if let Value::Str(c) = it {
                                self.program.capabilities.push(c.to_string());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The local variables of the current function that `exprs` read.
    fn captures(&self, exprs: &[&Expr]) -> Vec<String> {
        let mut names = Vec::new();
        for e in exprs {
            names_in(e, &mut names);
        }
        names
            .into_iter()
            .filter(|n| matches!(self.lookup(n), Some(Var::Local(_))))
            .map(str::to_string)
            .collect()
    }

    /// Queue a function that evaluates `body` with `params` bound; returns its index.
    fn spawnable(&mut self, name: String, params: Vec<String>, body: Body<'a>) -> u32 {
        let func = self.function(&name, params.len());
        self.synthetic.push(Synthetic { func, params, body });
        func
    }

    fn load_captures(&mut self, params: &[String], span: Span) -> Result<(), CompileError> {
        for p in params {
            let var = self
                .lookup(p)
                .ok_or_else(|| not_yet(&format!("capturing `{p}`"), span))?;
            self.load(var, span);
        }
        Ok(())
    }

    fn synthetic_fn(&mut self, syn: Synthetic<'a>) -> Result<(), CompileError> {
        self.program.functions[syn.func as usize].entry = self.here();
        self.fs = FnState {
            scopes: vec![HashMap::new()],
            ..FnState::default()
        };
        for p in &syn.params {
            self.declare_local(p);
        }
        match syn.body {
            Body::Expr(e) => {
                self.expr(e)?;
                self.emit(Instr::Return, e.span);
            }
            Body::StepCall(e) => {
                match &e.kind {
                    ExprKind::Call { callee, args } => self.call(callee, args, e.span)?,
                    _ => self.call(e, &[], e.span)?,
                }
                self.emit(Instr::Return, e.span);
            }
            Body::Workflow(w) => self.workflow_body(w)?,
        }
        self.program.functions[syn.func as usize].n_locals = self.fs.max_slot;
        Ok(())
    }

    /// A workflow's function: `workflow` holds its settings; each step runs on a fiber of
    /// its own; the result is the map of the `as` bindings.
    fn workflow_body(&mut self, w: &'a Workflow) -> Result<(), CompileError> {
        let settings: Map = w
            .entries
            .iter()
            .filter(|e| e.key != "steps")
            .filter_map(|e| Some((e.key.as_str(), const_map_value(&e.value)?)))
            .collect();
        let k = self.constant(Value::from(settings));
        self.emit(Instr::Const(k), w.keyword_span);
        let slot = self.declare_local("workflow");
        self.emit(Instr::StoreLocal(slot), w.keyword_span);
        let mut bindings: Vec<(&'a str, u16)> = Vec::new();
        for item in w.steps() {
            let label = step_label(&item.value);
            let mut spec = Step {
                func: 0,
                label: label.clone(),
                retry: 0,
                backoff_ms: 1000.0,
                timeout_ms: None,
                requires: Vec::new(),
                span: item.value.span,
            };
            for opt in &item.options {
                let bad = || CompileError {
                    message: format!("step option `{}` has a value it cannot use", opt.name.text),
                    span: opt.value.span,
                };
                match opt.name.text.as_str() {
                    "retry" => match const_value(&opt.value) {
                        Some(Value::Int(n)) if n >= 0 => {
                            spec.retry = u32::try_from(n).unwrap_or(u32::MAX)
                        }
                        _ => return Err(bad()),
                    },
                    "backoff" => spec.backoff_ms = duration_ms(&opt.value).ok_or_else(bad)?,
                    "timeout" => spec.timeout_ms = Some(duration_ms(&opt.value).ok_or_else(bad)?),
                    "requires" => match const_value(&opt.value) {
                        Some(Value::List(items)) => {
                            for it in items.iter() {
                                match it {
                                    Value::Str(c) => spec.requires.push(c.to_string()),
                                    _ => return Err(bad()),
                                }
                            }
                        }
                        Some(Value::Str(c)) => spec.requires.push(c.to_string()),
                        _ => return Err(bad()),
                    },
                    _ => return Err(bad()),
                }
            }
            let params = self.captures(&[&item.value]);
            spec.func = self.spawnable(
                format!("<step {label}>"),
                params.clone(),
                Body::StepCall(&item.value),
            );
            let step = saturating_u32(self.program.steps.len());
            self.program.steps.push(spec);
            self.load_captures(&params, item.value.span)?;
            let n_operand = self.u16_of(params.len(), "arguments in one call");
            self.emit(
                Instr::RunStep {
                    step,
                    argc: n_operand,
                },
                item.value.span,
            );
            match &item.binding {
                Some(b) => {
                    let slot = match self.lookup(&b.text) {
                        Some(Var::Local(slot)) => slot,
                        _ => self.declare_local(&b.text),
                    };
                    self.emit(Instr::StoreLocal(slot), b.span);
                    bindings.retain(|(n, _)| *n != b.text);
                    bindings.push((&b.text, slot));
                }
                None => {
                    self.emit(Instr::Pop, item.value.span);
                }
            }
        }
        for (name, slot) in &bindings {
            let k = self.constant(Value::from(*name));
            self.emit(Instr::Const(k), w.keyword_span);
            self.emit(Instr::LoadLocal(*slot), w.keyword_span);
        }
        let n_operand = self.u32_of(bindings.len(), "entries in one map");
        self.emit(Instr::MakeMap(n_operand), w.keyword_span);
        self.emit(Instr::Return, w.keyword_span);
        Ok(())
    }

    fn emit(&mut self, instr: Instr, span: Span) -> usize {
        let ip = self.program.code.len();
        let ip32 = self.u32_of(ip + 1, "instructions");
        if self.program.source_map.last().map(|(_, s)| *s) != Some(span) {
            self.program.source_map.push((ip32 - 1, span));
        }
        self.program.code.push(instr);
        ip
    }

    fn here(&self) -> u32 {
        saturating_u32(self.program.code.len())
    }

    fn patch(&mut self, at: usize, target: u32) {
        self.program.code[at] = match self.program.code[at] {
            Instr::Jump(_) => Instr::Jump(target),
            Instr::JumpIfFalse(_) => Instr::JumpIfFalse(target),
            Instr::JumpIfFalseKeep(_) => Instr::JumpIfFalseKeep(target),
            Instr::JumpIfTrueKeep(_) => Instr::JumpIfTrueKeep(target),
            Instr::IterNext(_) => Instr::IterNext(target),
            Instr::JumpIfGiven { slot, .. } => Instr::JumpIfGiven { slot, target },
            other => other,
        };
    }

    fn constant(&mut self, v: Value) -> u32 {
        // Strings repeat (field names, map keys): share them, found through a map so a
        // string-heavy script compiles in linear time.
        if let Value::Str(s) = &v {
            if let Some(i) = self.strings.get(s.as_str()) {
                return *i;
            }
            let k = saturating_u32(self.program.constants.len());
            self.strings.insert(s.as_str().into(), k);
        }
        let k = self.u32_of(self.program.constants.len() + 1, "constants") - 1;
        self.program.constants.push(v);
        k
    }
}
