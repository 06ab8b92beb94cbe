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

    /// `n` as a 16-bit operand; past the limit, the script is too large (the error is
    /// reported at the statement being compiled, once) and the operand saturates.
    fn u16_of(&mut self, n: usize, what: &str) -> u16 {
        u16::try_from(n).unwrap_or_else(|_| {
            self.limit(what, usize::from(u16::MAX));
            u16::MAX
        })
    }

    /// `n` as a 32-bit operand (instructions, constants, list sizes), like [`Self::u16_of`].
    fn u32_of(&mut self, n: usize, what: &str) -> u32 {
        u32::try_from(n).unwrap_or_else(|_| {
            self.limit(what, u32::MAX as usize);
            u32::MAX
        })
    }

    fn limit(&mut self, what: &str, max: usize) {
        let at = self.at;
        self.too_large.get_or_insert_with(|| CompileError {
            message: format!("this script is too large to run: more than {max} {what}"),
            span: at,
        });
    }

    /// The next free local slot of the current function.
    fn next_local(&mut self) -> u16 {
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

    fn global_slot(&mut self, name: &str) -> u16 {
        if let Some(slot) = self.globals.get(name) {
            return *slot;
        }
        let slot = self.u16_of(self.program.globals.len() + 1, "top-level variables") - 1;
        self.program.globals.push(name.to_string());
        self.globals.insert(name.to_string(), slot);
        slot
    }

    fn declare_local(&mut self, name: &str) -> u16 {
        let slot = self.next_local();
        self.fs
            .scopes
            .last_mut()
            .expect("a scope")
            .insert(name.to_string(), Var::Local(slot));
        slot
    }

    /// A scratch local for intermediate values; freed with the enclosing scope.
    fn temp(&mut self) -> u16 {
        self.next_local()
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

    /// Variable `name` if an update of it may move its value out of the slot while `others`
    /// are evaluated: they must not read it, and for a top-level variable nothing else may
    /// run meanwhile (no call, no other fiber).
    fn takeable(&self, name: &str, others: &[&Expr]) -> Option<Var> {
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
    fn runs_script(&self, e: &Expr) -> bool {
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

    fn take(&mut self, var: Var, span: Span) {
        match var {
            Var::Local(slot) => self.emit(Instr::TakeLocal(slot), span),
            Var::Global(slot) => self.emit(Instr::TakeGlobal(slot), span),
        };
    }

    /// `x = x + a + ...` and `x = append(x, v)` as in-place updates; false when the
    /// statement does not have that shape (or the update may not move the value).
    fn update_in_place(&mut self, name: &Name, value: &'a Expr) -> Result<bool, CompileError> {
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
    fn visible_here(&self, name: &str) -> Option<Var> {
        self.fs
            .scopes
            .iter()
            .rev()
            .find_map(|sc| sc.get(name).copied())
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

    fn block(&mut self, b: &'a Block) -> Result<(), CompileError> {
        self.fs.scopes.push(HashMap::new());
        let saved = self.fs.next_slot;
        for s in &b.stmts {
            self.stmt(s)?;
        }
        self.fs.next_slot = saved;
        self.fs.scopes.pop();
        Ok(())
    }

    fn stmt(&mut self, s: &'a Stmt) -> Result<(), CompileError> {
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

    fn close_loop(&mut self) {
        let l = self.fs.loops.pop().expect("a loop is open");
        let end = self.here();
        for at in l.breaks {
            self.patch(at, end);
        }
    }

    /// Store the value in local `tmp` into the place `target` (a name, index or field).
    fn assign(&mut self, target: &'a Expr, tmp: u16) -> Result<(), CompileError> {
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
    fn container(&mut self, inner: &'a Expr, others: &[&Expr]) -> Result<(), CompileError> {
        if let ExprKind::Name(n) = &inner.kind {
            if let Some(var) = self.takeable(n, others) {
                self.take(var, inner.span);
                return Ok(());
            }
        }
        self.expr(inner)
    }

    fn expr(&mut self, e: &'a Expr) -> Result<(), CompileError> {
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

    fn call(&mut self, callee: &'a Expr, args: &'a [Arg], span: Span) -> Result<(), CompileError> {
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
    fn native_call(&mut self, id: FnId, args: &'a [Arg], span: Span) -> Result<(), CompileError> {
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
    fn trigger(&mut self, call: &'a Expr, span: Span) -> Result<(), CompileError> {
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
    fn bind(
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

    fn arg_value(&mut self, args: &'a [Arg], temps: &[u16], i: usize) -> Result<(), CompileError> {
        match temps.get(i) {
            Some(t) => {
                self.emit(Instr::LoadLocal(*t), args[i].value.span);
                Ok(())
            }
            None => self.expr(&args[i].value),
        }
    }
}
