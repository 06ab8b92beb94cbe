//! Name resolution and validation rules over a parsed script.

use std::collections::{BTreeMap, HashMap, HashSet};

use aether_syntax::ast::*;
use aether_syntax::diagnostic::Fix;
use aether_syntax::visit::{walk_expr, Visitor};
use aether_syntax::{Diagnostic, Span};

use crate::codes::*;
use crate::decl::{FnDecl, ParamKind, Registry};
use crate::spec::{self, PluginRequirement, Specs, StepSpec};

/// Error kinds an `on_error` rule may name: result code names and aliases.
pub const ERROR_KINDS: &[&str] = &[
    "GENERIC_FAILURE",
    "PARSE_ERROR",
    "RUNTIME_ERROR",
    "SIGNATURE_ERROR",
    "TIMEOUT_ERROR",
    "UNSUPPORTED_FEATURE",
    "VALIDATION_ERROR",
    "IO_ERROR",
    "INTERNAL_ERROR",
    "NONDETERMINISM_ERROR",
    "MEMORY_LIMIT_ERROR",
    "Timeout",
    "Indeterminate",
    "PermissionError",
    "PluginError",
    "RuntimeError",
    "Any",
];

/// Names every script can read without declaring them.
const BUILTIN_VALUES: &[&str] = &["args", "policy", "workflow"];

/// A variable declared in a frame (top-level names seen from actions are `Checker::globals`).
#[derive(Clone, Debug)]
struct Var {
    pending: bool,
}

/// One function body being checked: the main body, an action, a workflow or a handler.
struct Frame {
    scopes: Vec<HashMap<String, Var>>,
    /// Inside an action, workflow or handler: top-level names are readable, not assignable.
    sees_globals: bool,
    loop_depth: usize,
    transaction_depth: usize,
    /// The loop depth at each enclosing `transaction:` entry.
    transaction_loops: Vec<usize>,
    /// Pending names already reported once.
    reported_pending: HashSet<String>,
    /// A `parallel:` block has declared something: only then can anything be pending, so
    /// frames without one skip the per-branch bookkeeping.
    has_pending: bool,
}

impl Frame {
    fn new(sees_globals: bool) -> Frame {
        Frame {
            scopes: vec![HashMap::new()],
            sees_globals,
            loop_depth: 0,
            transaction_depth: 0,
            transaction_loops: Vec::new(),
            reported_pending: HashSet::new(),
            has_pending: false,
        }
    }

    fn lookup(&self, name: &str) -> Option<&Var> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    fn lookup_mut(&mut self, name: &str) -> Option<&mut Var> {
        self.scopes.iter_mut().rev().find_map(|s| s.get_mut(name))
    }

    /// Names that are pending on the current path.
    fn pending_names(&self) -> HashSet<String> {
        if !self.has_pending {
            return HashSet::new();
        }
        self.scopes
            .iter()
            .flat_map(|s| s.iter())
            .filter(|(_, v)| v.pending)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Make exactly `names` pending (names declared since then are gone with their scope).
    fn set_pending(&mut self, names: &HashSet<String>) {
        if !self.has_pending {
            return;
        }
        for scope in &mut self.scopes {
            for (n, v) in scope.iter_mut() {
                v.pending = names.contains(n);
            }
        }
    }

    fn declare(&mut self, name: &str, pending: bool) {
        self.has_pending |= pending;
        let scope = self.scopes.last_mut().expect("a frame always has a scope");
        scope.insert(name.to_string(), Var { pending });
    }
}

/// A callable's parameters, from an action or a native declaration.
struct Signature<'a> {
    display: String,
    params: Vec<(&'a str, bool, ParamKind)>,
}

impl<'a> Signature<'a> {
    fn of_decl(d: &'a FnDecl) -> Signature<'a> {
        Signature {
            display: d.signature(),
            params: d
                .params
                .iter()
                .map(|p| (p.name, p.default.is_some(), p.kind))
                .collect(),
        }
    }

    fn of_action(a: &'a Action) -> Signature<'a> {
        let params: Vec<_> = a
            .params()
            .iter()
            .map(|p| (p.name.text.as_str(), p.default.is_some(), ParamKind::Normal))
            .collect();
        let shown: Vec<String> = a
            .params()
            .iter()
            .map(|p| {
                if p.default.is_some() {
                    format!("{}=…", p.name.text)
                } else {
                    p.name.text.clone()
                }
            })
            .collect();
        Signature {
            display: format!("{}({})", a.name.text, shown.join(", ")),
            params,
        }
    }
}

pub(crate) struct Checker<'a> {
    registry: &'a Registry,
    diags: Vec<Diagnostic>,
    actions: BTreeMap<&'a str, &'a Action>,
    /// Named workflows: the main body may call them (no arguments) to run them early.
    workflows: BTreeMap<&'a str, Span>,
    globals: HashSet<&'a str>,
    required_modules: HashSet<String>,
    required_plugins: Option<HashSet<String>>,
    used_modules: BTreeMap<&'static str, Span>,
    frames: Vec<Frame>,
    specs: Specs,
}

/// "did you mean `s`?" as help, and as the fix that writes `s` over `span` (the editor's
/// quick fix).
pub(crate) fn did_you_mean(d: Diagnostic, span: Span, s: &str) -> Diagnostic {
    d.with_help(format!("did you mean `{s}`?"))
        .with_fix(replace_with(span, s))
}

fn replace_with(span: Span, s: &str) -> Fix {
    Fix {
        description: format!("replace with `{s}`"),
        span,
        replacement: s.to_string(),
    }
}

pub(crate) fn suggest<'n>(
    name: &str,
    candidates: impl IntoIterator<Item = &'n str>,
) -> Option<&'n str> {
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| {
            // Short names need a closer match: `foo` is not a typo of `bool`.
            let allowed = match name.chars().count() {
                0..=3 => 1,
                4..=6 => 2,
                n => n / 3,
            };
            *d <= allowed && *d < c.len().min(name.len())
        })
        .min()
        .map(|(_, c)| c)
}

/// The value of an integer literal, negated ones included.
pub(crate) fn int_value(e: &Expr) -> Option<i64> {
    match &e.kind {
        ExprKind::Int(n) => Some(*n),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            operand,
        } => match operand.kind {
            ExprKind::Int(n) => n.checked_neg(),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn is_constant(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Null
        | ExprKind::Bool(_)
        | ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Duration(_)
        | ExprKind::Error => true,
        ExprKind::Unary {
            op: UnaryOp::Neg,
            operand,
        } => {
            matches!(
                operand.kind,
                ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Duration(_)
            )
        }
        ExprKind::List(items) => items.iter().all(is_constant),
        ExprKind::Map(entries) => entries.iter().all(|(_, v)| is_constant(v)),
        _ => false,
    }
}

impl<'a> Checker<'a> {
    pub(crate) fn new(registry: &'a Registry) -> Checker<'a> {
        Checker {
            registry,
            diags: Vec::new(),
            actions: BTreeMap::new(),
            workflows: BTreeMap::new(),
            globals: HashSet::new(),
            required_modules: HashSet::new(),
            required_plugins: None,
            used_modules: BTreeMap::new(),
            frames: Vec::new(),
            specs: Specs::default(),
        }
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn frame(&mut self) -> &mut Frame {
        self.frames
            .last_mut()
            .expect("checking always happens inside a frame")
    }

    /// Every diagnostic of the script, unsorted, and the settings it typed on the way.
    pub(crate) fn check(mut self, script: &'a Script) -> (Vec<Diagnostic>, Specs) {
        self.collect(script);
        // The main body, in order: top-level names exist from their declaration on.
        self.frames.push(Frame::new(false));
        for item in &script.items {
            if let Item::Stmt(s) = item {
                self.stmt(s);
            }
        }
        self.frames.pop();
        for item in &script.items {
            match item {
                Item::Action(a) => self.action(a),
                Item::Workflow(w) => self.workflow(w),
                Item::OnError(o) => self.on_error(o),
                _ => {}
            }
        }
        self.module_requirements();
        (self.diags, self.specs)
    }

    /// First pass: actions (hoisted), top-level names, requirements, block-level rules.
    fn collect(&mut self, script: &'a Script) {
        let mut goal_seen = false;
        for item in &script.items {
            match item {
                Item::Goal(g) => {
                    goal_seen = true;
                    self.goal(g);
                }
                Item::Mapping(m) => self.mapping_block(m),
                Item::Action(a) => {
                    if let Some(first) = self.actions.get(a.name.text.as_str()) {
                        let first_span = first.name.span;
                        self.push(
                            Diagnostic::new(
                                &DUPLICATE_ACTION,
                                format!("action `{}` is defined more than once", a.name.text),
                            )
                            .with_primary(a.name.span, "defined again here")
                            .with_secondary(first_span, "first defined here")
                            .with_help("rename one of them, or remove the duplicate"),
                        );
                    } else {
                        self.actions.insert(&a.name.text, a);
                    }
                }
                Item::Stmt(s) => self.collect_globals(s),
                Item::Workflow(Workflow { name: Some(n), .. }) => {
                    self.workflows.insert(&n.text, n.span);
                }
                _ => {}
            }
        }
        if !goal_seen {
            let span = script.items.first().map_or(Span::default(), |i| {
                let s = i.span();
                Span {
                    start: s.start,
                    end: s.start,
                }
            });
            self.push(
                Diagnostic::new(&MISSING_GOAL, "script has no `goal:`")
                    .with_primary(span, "add a goal before this")
                    .with_help("state the script's purpose on the first line: `goal: \"what this workflow achieves\"`"),
            );
        }
    }

    fn collect_globals(&mut self, s: &'a Stmt) {
        match &s.kind {
            StmtKind::Let { name, .. } | StmtKind::Declare { name, .. } => {
                self.globals.insert(&name.text);
            }
            // `parallel:` and `transaction:` open no scope.
            StmtKind::Parallel(b) | StmtKind::Transaction(b) => {
                for s in &b.stmts {
                    self.collect_globals(s);
                }
            }
            _ => {}
        }
    }

    fn goal(&mut self, g: &Goal) {
        if g.legacy {
            self.push(
                Diagnostic::new(
                    &LEGACY_INTENT,
                    "`intent:` is the legacy spelling of `goal:`",
                )
                .with_primary(g.keyword_span, "legacy keyword")
                .with_help("write `goal:`; `aether migrate --apply` rewrites it for you")
                .with_fix(Fix {
                    description: "replace `intent` with `goal`".into(),
                    span: g.keyword_span,
                    replacement: "goal".into(),
                }),
            );
        }
        if let Some(v) = &g.value {
            if !matches!(v.kind, ExprKind::Str(_) | ExprKind::Error) {
                self.push(
                    Diagnostic::new(&INVALID_GOAL, "goal must be a string")
                        .with_primary(v.span, "not a string literal")
                        .with_help("write the goal as quoted text: `goal: \"...\"`"),
                );
            }
        }
    }

    fn constant_entries(&mut self, entries: &[MapEntry], context: &str) {
        for e in entries {
            match &e.value {
                MapValue::Expr(v) => self.constant(v, context),
                MapValue::List(items) => {
                    for it in items {
                        self.constant(&it.value, context);
                    }
                }
                MapValue::Map(inner) => self.constant_entries(inner, context),
            }
        }
    }

    fn constant(&mut self, v: &Expr, context: &str) {
        spec::constant(v, context, &mut self.diags);
    }

    fn mapping_block(&mut self, m: &MappingBlock) {
        let context = format!("`{}:`", m.kind.keyword());
        self.constant_entries(&m.entries, &context);
        match m.kind {
            MappingKind::Meta | MappingKind::Metadata => {
                for e in &m.entries {
                    if e.key == "requires" {
                        for s in string_items(&e.value) {
                            self.required_modules.insert(s.0.to_string());
                        }
                    }
                }
            }
            MappingKind::Policy => self.specs.policy.apply(&m.entries, &mut self.diags),
            MappingKind::Require => {
                for e in &m.entries {
                    match e.key.as_str() {
                        "capabilities" => {
                            for (cap, _) in string_items(&e.value) {
                                if let Some(module) = cap.split('.').next() {
                                    self.required_modules.insert(module.to_string());
                                }
                            }
                        }
                        "plugins" => {
                            // Declaring plugins declares the module that invokes them.
                            self.required_modules.insert("plugins".to_string());
                            let plugins = self.required_plugins.get_or_insert_with(HashSet::new);
                            let mut bad = Vec::new();
                            for (req, span) in string_items(&e.value) {
                                match PluginRequirement::parse(req) {
                                    Ok(parsed) => {
                                        plugins.insert(parsed.name.clone());
                                        self.specs.plugins.push(parsed);
                                    }
                                    Err(why) => bad.push((req.to_string(), span, why)),
                                }
                            }
                            for (req, span, why) in bad {
                                self.push(
                                    Diagnostic::new(&INVALID_PLUGIN_REQUIREMENT, format!("invalid plugin requirement `{req}`: {why}"))
                                        .with_primary(span, "not `name` plus constraints")
                                        .with_help("write `\"name\"` or `\"name>=1.2.0,<2.0.0\"` (operators == >= <= > <, comma means and)"),
                                );
                            }
                        }
                        _ => {}
                    }
                }
            }
            MappingKind::PluginContract => {}
        }
    }

    fn action(&mut self, a: &Action) {
        if let (Some(_), Some((_, inputs_span))) = (&a.header_params, &a.inputs_params) {
            self.push(
                Diagnostic::new(
                    &DUPLICATE_PARAMETER_FORMS,
                    format!("action `{}` declares parameters twice", a.name.text),
                )
                .with_primary(*inputs_span, "`inputs:` line")
                .with_secondary(a.name.span, "parameters also declared in the header")
                .with_help(
                    "keep one form: `action NAME(a, b = 1):` or an `inputs: [a, b = 1]` first line",
                ),
            );
        }
        self.frames.push(Frame::new(true));
        // Duplicates are looked for within each form; both forms at once is A116 already.
        let forms: [&[Param]; 2] = [
            a.header_params.as_deref().unwrap_or(&[]),
            a.inputs_params.as_ref().map_or(&[], |(p, _)| p),
        ];
        for params in forms {
            self.params(params);
        }
        self.block_stmts(&a.body.stmts);
        self.frames.pop();
    }

    fn params(&mut self, params: &[Param]) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for p in params {
            if let Some(default) = &p.default {
                self.expr(default);
            }
            if let Some(first) = seen.get(p.name.text.as_str()) {
                let first = *first;
                self.push(
                    Diagnostic::new(
                        &DUPLICATE_PARAMETER,
                        format!("parameter `{}` is declared twice", p.name.text),
                    )
                    .with_primary(p.name.span, "declared again")
                    .with_secondary(first, "first declared here")
                    .with_help("give each parameter its own name"),
                );
            } else {
                seen.insert(&p.name.text, p.name.span);
            }
            self.frame().declare(&p.name.text, false);
        }
    }

    fn workflow(&mut self, w: &Workflow) {
        self.frames.push(Frame::new(true));
        for e in &w.entries {
            if e.key == "steps" {
                match &e.value {
                    MapValue::List(items) => {
                        for step in items {
                            self.step(step);
                        }
                    }
                    _ => self.push(
                        Diagnostic::new(
                            &INVALID_WORKFLOW_STEP,
                            "`steps:` must be a list of `- call` items",
                        )
                        .with_primary(e.key_span, "not a list of steps")
                        .with_help("write each step on its own line: `- fetch(x) as data retry=2`"),
                    ),
                }
            } else {
                let setting = MapEntry {
                    key: e.key.clone(),
                    key_span: e.key_span,
                    value: e.value.clone(),
                    span: e.span,
                };
                self.constant_entries(std::slice::from_ref(&setting), "workflow setting");
            }
        }
        self.frames.pop();
    }

    fn step(&mut self, step: &ListItem) {
        match &step.value.kind {
            ExprKind::Call { callee, args } => self.call(callee, args, step.value.span),
            ExprKind::Name(_) | ExprKind::Member { .. } => self.call(&step.value, &[], step.value.span),
            ExprKind::Error => {}
            _ => self.push(
                Diagnostic::new(&INVALID_WORKFLOW_STEP, "a workflow step must be a call")
                    .with_primary(step.value.span, "not a call")
                    .with_help("a step is an action or function call such as `- fetch(url) as page` (a bare name calls it with no arguments)"),
            ),
        }
        let spec = StepSpec::build(&step.options, &mut self.diags);
        self.specs.add_step(step.value.span, spec);
        if let Some(b) = &step.binding {
            self.frame().declare(&b.text, false);
        }
    }

    fn on_error(&mut self, o: &OnErrorBlock) {
        for rule in &o.rules {
            if !ERROR_KINDS.contains(&rule.kind.text.as_str()) {
                let mut d = Diagnostic::new(
                    &UNKNOWN_ERROR_KIND,
                    format!("unknown error kind `{}`", rule.kind.text),
                )
                .with_primary(rule.kind.span, "not an error kind");
                d = match suggest(&rule.kind.text, ERROR_KINDS.iter().copied()) {
                    Some(s) => did_you_mean(d, rule.kind.span, s),
                    None => d.with_help("use a code name such as `TIMEOUT_ERROR` or an alias: Timeout, PermissionError, PluginError, RuntimeError, Any"),
                };
                self.push(d);
            }
            self.frames.push(Frame::new(true));
            self.frame().declare("error", false);
            match &rule.handler.kind {
                ExprKind::Call { callee, args } => self.call(callee, args, rule.handler.span),
                ExprKind::Error => {}
                _ => {
                    self.expr(&rule.handler);
                    self.push(
                        Diagnostic::new(&HANDLER_NOT_CALL, "an `on_error` handler must be a call")
                            .with_primary(rule.handler.span, "not a call")
                            .with_help("write `do: notify(error.message)`; `error` holds code, code_name, message and line"),
                    );
                }
            }
            self.frames.pop();
        }
    }

    fn block_stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    fn scoped_block(&mut self, b: &Block) {
        self.frame().scopes.push(HashMap::new());
        self.block_stmts(&b.stmts);
        self.frame().scopes.pop();
    }

    fn stmt(&mut self, s: &Stmt) {
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
                self.frame().scopes.push(HashMap::new());
                self.frame().declare(&var.text, false);
                self.frame().loop_depth += 1;
                self.block_stmts(&body.stmts);
                self.frame().loop_depth -= 1;
                self.frame().scopes.pop();
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

    fn declare_or_assign(&mut self, name: &Name) {
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

    fn names_in_scope(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(f) = self.frames.last() {
            for s in &f.scopes {
                out.extend(s.keys().cloned());
            }
            if f.sees_globals {
                out.extend(self.globals.iter().map(|g| g.to_string()));
            }
        }
        out.extend(self.actions.keys().map(|a| a.to_string()));
        out
    }

    /// A read of a plain name.
    fn name(&mut self, n: &str, span: Span) {
        let frame = self.frames.last().expect("inside a frame");
        if let Some(var) = frame.lookup(n) {
            if var.pending && !frame.reported_pending.contains(n) {
                self.frame().reported_pending.insert(n.to_string());
                self.push(
                    Diagnostic::new(
                        &PENDING_VALUE_READ_BEFORE_AWAIT,
                        format!("`{n}` is read before it is awaited"),
                    )
                    .with_primary(span, "still pending here")
                    .with_help(format!(
                        "add `await {n}` after the `parallel:` block and before this use"
                    )),
                );
            }
            return;
        }
        if (frame.sees_globals && self.globals.contains(n))
            || BUILTIN_VALUES.contains(&n)
            || self.actions.contains_key(n)
            || self.workflows.contains_key(n)
            || self.registry.global(n).is_some()
        {
            return;
        }
        if n == "memory" || self.registry.has_module(n) {
            return;
        }
        if !frame.sees_globals && self.globals.contains(n) {
            self.push(
                Diagnostic::new(&UNDEFINED_VARIABLE, format!("`{n}` is used before it is declared"))
                    .with_primary(span, "not declared yet")
                    .with_help(format!("top-level statements run in order: move the declaration of `{n}` above this line")),
            );
            return;
        }
        let candidates = self.names_in_scope();
        let mut d = Diagnostic::new(&UNDEFINED_VARIABLE, format!("undefined variable `{n}`"))
            .with_primary(span, "not declared");
        let literal = match n {
            "True" => Some("true"),
            "False" => Some("false"),
            "None" | "nil" | "Null" | "NULL" => Some("null"),
            _ => None,
        };
        if let Some(lit) = literal {
            self.push(d.with_help(format!("the literal is written `{lit}` (lower case)")));
            return;
        }
        d = match suggest(n, candidates.iter().map(String::as_str)) {
            Some(s) => did_you_mean(d, span, s),
            None => d.with_help(format!("declare it first with `let {n} = ...`")),
        };
        self.push(d);
    }

    fn use_module(&mut self, module: &str, span: Span) {
        if let Some(m) = self.registry.module_names().find(|m| *m == module) {
            self.used_modules.entry(m).or_insert(span);
        }
    }

    fn module_requirements(&mut self) {
        let used = std::mem::take(&mut self.used_modules);
        for (module, span) in used {
            if !self.required_modules.contains(module) {
                self.push(
                    Diagnostic::new(&MODULE_NOT_REQUIRED, format!("module `{module}` is used but not required"))
                        .with_primary(span, format!("uses `{module}`"))
                        .with_help(format!("declare it: `metadata:` with `requires: [\"{module}\"]` (or the capability under `require: capabilities:`); profiles test and prod refuse undeclared capabilities")),
                );
            }
        }
    }

    fn check_plugin_name(&mut self, args: &[Arg]) {
        let Some(first) = args.first().filter(|a| a.name.is_none()) else {
            return;
        };
        let ExprKind::Str(name) = &first.value.kind else {
            return;
        };
        let declared = self
            .required_plugins
            .as_ref()
            .is_some_and(|p| p.contains(name));
        if !declared {
            self.push(
                Diagnostic::new(&PLUGIN_NOT_REQUIRED, format!("plugin `{name}` is invoked but not required"))
                    .with_primary(first.value.span, "not in `require: plugins:`")
                    .with_help(format!("declare it with a version constraint: `require:` / `plugins: [\"{name}>=1.0.0\"]`")),
            );
        }
    }

    fn expr(&mut self, e: &Expr) {
        self.visit_expr(e);
    }

    fn call(&mut self, callee: &Expr, args: &[Arg], span: Span) {
        for a in args {
            self.expr(&a.value);
        }
        match &callee.kind {
            ExprKind::Name(n) => {
                let frame = self.frames.last().expect("inside a frame");
                let is_var = frame.lookup(n).is_some()
                    || (frame.sees_globals && self.globals.contains(n.as_str()));
                if is_var {
                    // A variable holding an action reference: checked at run time.
                    self.name(n, callee.span);
                } else if let Some(action) = self.actions.get(n.as_str()).copied() {
                    self.arguments(&Signature::of_action(action), args, span, callee.span);
                } else if self.workflows.contains_key(n.as_str()) {
                    let sig = Signature {
                        display: format!("{n}()"),
                        params: vec![],
                    };
                    self.arguments(&sig, args, span, callee.span);
                } else if let Some(decl) = self.registry.global(n) {
                    if let Some(cap) = decl.capability {
                        self.use_module(cap.module(), callee.span);
                    }
                    if matches!(n.as_str(), "run_plugin") {
                        self.check_plugin_name(args);
                    }
                    self.arguments(&Signature::of_decl(decl), args, span, callee.span);
                } else {
                    self.unknown_function(n, callee.span);
                }
            }
            ExprKind::Member { target, name } => {
                let module = match &target.kind {
                    ExprKind::Name(m) => {
                        let frame = self.frames.last().expect("inside a frame");
                        let shadowed = frame.lookup(m).is_some()
                            || (frame.sees_globals && self.globals.contains(m.as_str()));
                        (!shadowed).then_some(m.as_str())
                    }
                    _ => None,
                };
                match module {
                    Some(m) if m == "memory" || self.registry.has_module(m) => {
                        self.module_call(m, name, args, span)
                    }
                    Some(m) if !BUILTIN_VALUES.contains(&m) && !self.actions.contains_key(m) => {
                        let modules: Vec<&str> = self.registry.module_names().collect();
                        let mut d =
                            Diagnostic::new(&UNKNOWN_MODULE, format!("unknown module `{m}`"))
                                .with_primary(target.span, "no such module or variable");
                        d = match suggest(m, modules.iter().copied()) {
                            Some(s) => did_you_mean(d, target.span, s),
                            None => d.with_help(format!("the modules are {}; a plugin is called with `plugins.invoke(\"name\", ...)`", modules.join(", "))),
                        };
                        self.push(d);
                    }
                    _ => self.expr(target),
                }
            }
            _ => self.expr(callee),
        }
    }

    fn module_call(&mut self, module: &str, name: &Name, args: &[Arg], span: Span) {
        self.use_module(module, name.span);
        match self.registry.module_fn(module, &name.text) {
            Some(decl) => {
                if module == "plugins" && name.text == "invoke" {
                    self.check_plugin_name(args);
                }
                self.arguments(&Signature::of_decl(decl), args, span, name.span);
            }
            None => {
                let members: Vec<&str> = self.registry.module_fns(module).map(|d| d.name).collect();
                let mut d = Diagnostic::new(
                    &UNKNOWN_MODULE_MEMBER,
                    format!("module `{module}` has no function `{}`", name.text),
                )
                .with_primary(name.span, "unknown member");
                d = match suggest(&name.text, members.iter().copied()) {
                    Some(s) => d
                        .with_help(format!("did you mean `{module}.{s}`?"))
                        .with_fix(replace_with(name.span, s)),
                    None => d.with_help(format!("`{module}` has: {}", members.join(", "))),
                };
                self.push(d);
            }
        }
    }

    fn unknown_function(&mut self, n: &str, span: Span) {
        let mut candidates: Vec<&str> = self.registry.globals().map(|d| d.name).collect();
        candidates.extend(self.actions.keys().copied());
        let mut d = Diagnostic::new(&UNKNOWN_FUNCTION, format!("unknown function `{n}`"))
            .with_primary(span, "not an action or built-in function");
        d = match suggest(n, candidates) {
            Some(s) => did_you_mean(d, span, s),
            None => d.with_help("define it with `action NAME(...):`, or see docs/language.md for the built-in functions"),
        };
        self.push(d);
    }

    fn arguments(&mut self, sig: &Signature<'_>, args: &[Arg], call_span: Span, callee_span: Span) {
        let mut seen_keyword = false;
        let mut positional = 0;
        for a in args {
            match &a.name {
                Some(_) => seen_keyword = true,
                None if seen_keyword => {
                    self.push(
                        Diagnostic::new(
                            &POSITIONAL_AFTER_KEYWORD,
                            "positional argument after a keyword argument",
                        )
                        .with_primary(a.value.span, "positional")
                        .with_help("put positional arguments first, then `name=value` arguments"),
                    );
                    return;
                }
                None => positional += 1,
            }
        }
        let normal: Vec<&(&str, bool, ParamKind)> = sig
            .params
            .iter()
            .filter(|p| p.2 == ParamKind::Normal)
            .collect();
        let variadic = sig.params.iter().any(|p| p.2 == ParamKind::Variadic);
        if positional > normal.len() && !variadic {
            let extra = &args[normal.len()];
            let plural = if normal.len() == 1 { "" } else { "s" };
            self.push(
                Diagnostic::new(
                    &WRONG_ARITY,
                    format!(
                        "`{}` takes {} positional argument{plural} but {positional} {} given",
                        sig.display,
                        normal.len(),
                        if positional == 1 { "was" } else { "were" }
                    ),
                )
                .with_primary(extra.value.span, "unexpected argument")
                .with_secondary(callee_span, "called here")
                .with_help(format!("the signature is `{}`", sig.display)),
            );
            return;
        }
        let mut filled: HashSet<&str> = normal.iter().take(positional).map(|p| p.0).collect();
        // A misspelt keyword also leaves its parameter unfilled: report the spelling only.
        let mut unknown_keyword = false;
        for a in args {
            let Some(kw) = &a.name else { continue };
            let target = sig
                .params
                .iter()
                .find(|p| p.0 == kw.text && p.2 != ParamKind::Variadic);
            match target {
                None => {
                    unknown_keyword = true;
                    let names = sig
                        .params
                        .iter()
                        .filter(|p| p.2 != ParamKind::Variadic)
                        .map(|p| p.0);
                    let mut d = Diagnostic::new(
                        &UNKNOWN_KEYWORD_ARGUMENT,
                        format!("unknown keyword argument `{}`", kw.text),
                    )
                    .with_primary(kw.span, "no parameter by this name");
                    d = match suggest(&kw.text, names) {
                        Some(s) => d
                            .with_help(format!(
                                "did you mean `{s}=`? the signature is `{}`",
                                sig.display
                            ))
                            .with_fix(replace_with(kw.span, s)),
                        None => d.with_help(format!("the signature is `{}`", sig.display)),
                    };
                    self.push(d);
                }
                Some(p) => {
                    if !filled.insert(p.0) {
                        self.push(
                            Diagnostic::new(
                                &DUPLICATE_ARGUMENT,
                                format!("argument `{}` is given more than once", kw.text),
                            )
                            .with_primary(kw.span, "given again")
                            .with_help(format!("the signature is `{}`", sig.display)),
                        );
                    }
                }
            }
        }
        let missing: Vec<&str> = normal
            .iter()
            .filter(|p| !p.1 && !filled.contains(p.0))
            .map(|p| p.0)
            .collect();
        if !missing.is_empty() && !unknown_keyword {
            let list = missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let plural = if missing.len() == 1 { "" } else { "s" };
            self.push(
                Diagnostic::new(
                    &WRONG_ARITY,
                    format!(
                        "missing required argument{plural} {list} in call to `{}`",
                        sig.display
                    ),
                )
                .with_primary(call_span, format!("missing {list}"))
                .with_help(format!("the signature is `{}`", sig.display)),
            );
        }
    }
}

/// Expressions open no scope: the default walk goes into every operand, and the nodes with
/// rules of their own (names, calls, multi-indexes) are handled here.
impl Visitor<'_> for Checker<'_> {
    fn visit_expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Name(n) => self.name(n, e.span),
            ExprKind::Call { callee, args } => self.call(callee, args, e.span),
            ExprKind::MultiIndex { .. } => {
                walk_expr(self, e);
                self.push(
                    Diagnostic::new(&INVALID_INDEX, "an index takes exactly one value")
                        .with_primary(e.span, "more than one index value")
                        .with_help("index one level at a time: `m[a][b]`; `Name[T, U]` is only meaningful as a type hint"),
                );
            }
            _ => walk_expr(self, e),
        }
    }
}

/// String items of a mapping value (a `[..]` literal or a `- item` list), with spans.
fn string_items(v: &MapValue) -> Vec<(&str, Span)> {
    let exprs: Vec<&Expr> = match v {
        MapValue::Expr(Expr {
            kind: ExprKind::List(items),
            ..
        }) => items.iter().collect(),
        MapValue::Expr(e) => vec![e],
        MapValue::List(items) => items.iter().map(|i| &i.value).collect(),
        MapValue::Map(_) => vec![],
    };
    exprs
        .into_iter()
        .filter_map(|e| match &e.kind {
            ExprKind::Str(s) => Some((s.as_str(), e.span)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_names_only() {
        assert_eq!(suggest("lenn", ["len", "str"]), Some("len"));
        assert_eq!(suggest("xyz", ["len", "str"]), None);
    }
}
