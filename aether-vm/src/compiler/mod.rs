//! The compiler: a checked AST to a `Program` of stack-machine bytecode.
//!
//! It trusts the checker for names and arities (`aether run` checks first) and reports
//! constructs this increment cannot run yet as a `CompileError` saying so.

use std::collections::HashMap;

use aether_check::decl::{DefaultValue, FnId, ParamKind, Registry};
use aether_check::{Analysis, Specs};
use aether_syntax::ast::*;
use aether_syntax::visit::{walk_expr, walk_stmt, Visitor};
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

/// A construct the checker rejects reached the compiler: the script was compiled without
/// its check passing (`aether run` never does that).
fn unchecked(what: &str, span: Span) -> CompileError {
    CompileError {
        message: format!("{what} (the check rejects this script)"),
        span,
    }
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
    /// The settings the checker typed (workflow step options).
    specs: &'a Specs,
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

/// Compile a checked script: its tree, and the settings the checker typed (workflow step
/// options). A construct the VM does not run (a reserved block, keyword arguments through a
/// variable) is a `CompileError`; so is a script whose check failed.
pub fn compile<'a>(checked: &'a Analysis, registry: &'a Registry) -> Result<Program, CompileError> {
    let script = &checked.ast;
    let mut c = Compiler {
        registry,
        specs: &checked.specs,
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
    struct Spawns(bool);
    impl Visitor<'_> for Spawns {
        fn visit_stmt(&mut self, s: &Stmt) {
            match s.kind {
                StmtKind::Parallel(_) | StmtKind::Trigger(_) => self.0 = true,
                _ => walk_stmt(self, s),
            }
        }
        fn visit_expr(&mut self, e: &Expr) {
            self.0 |= submits(e);
        }
    }
    let mut found = Spawns(false);
    stmts.iter().for_each(|s| found.visit_stmt(s));
    found.0
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
    struct Calls<'p> {
        is_script: &'p dyn Fn(&Expr) -> bool,
        found: bool,
    }
    impl Visitor<'_> for Calls<'_> {
        fn visit_expr(&mut self, e: &Expr) {
            match &e.kind {
                _ if self.found => {}
                ExprKind::Call { callee, .. } if (self.is_script)(callee) => self.found = true,
                _ => walk_expr(self, e),
            }
        }
    }
    let mut calls = Calls {
        is_script,
        found: false,
    };
    calls.visit_expr(e);
    calls.found
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

/// The names an expression reads, in first-use order (the free variables a step, a
/// `parallel:` right side or a handler captures).
fn names_in<'e>(e: &'e Expr, out: &mut Vec<&'e str>) {
    struct Names<'o, 'e>(&'o mut Vec<&'e str>);
    impl<'e> Visitor<'e> for Names<'_, 'e> {
        fn visit_expr(&mut self, e: &'e Expr) {
            match &e.kind {
                ExprKind::Name(n) if !self.0.contains(&n.as_str()) => self.0.push(n),
                _ => walk_expr(self, e),
            }
        }
    }
    Names(out).visit_expr(e);
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
                (MappingKind::Require, "capabilities")
                | (MappingKind::Meta | MappingKind::Metadata, "requires") => {
                    if let Some(Value::List(items)) = &value {
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
            let options = self
                .specs
                .step(item.value.span)
                .ok_or_else(|| CompileError {
                    message: format!("workflow step `{label}` was not checked before compiling"),
                    span: item.value.span,
                })?;
            let mut spec = Step {
                func: 0,
                label: label.clone(),
                retry: options.retry,
                backoff_ms: options.backoff_ms,
                timeout_ms: options.timeout_ms,
                requires: options.requires.clone(),
                span: item.value.span,
            };
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
