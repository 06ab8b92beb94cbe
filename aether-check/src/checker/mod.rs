//! Name resolution and validation rules over a parsed script.

mod expr;
mod scope;
mod stmt;

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use aether_syntax::ast::*;
use aether_syntax::diagnostic::Fix;
use aether_syntax::{Diagnostic, Span};

use crate::codes::*;
use crate::decl::Registry;
use crate::spec::{self, PluginRequirement, Specs, StepSpec};

use scope::Frame;

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
    frames: Vec<Frame<'a>>,
    specs: Specs,
    /// A `transaction:` block was met: only then can `tx_waits` find anything.
    has_transaction: bool,
}

/// What checking a script found.
pub(crate) struct Checked {
    /// Unsorted.
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) specs: Specs,
    /// The script holds a `transaction:` block (the walk met every statement).
    pub(crate) has_transaction: bool,
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
            has_transaction: false,
        }
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn frame(&mut self) -> &mut Frame<'a> {
        self.frames
            .last_mut()
            .expect("checking always happens inside a frame")
    }

    /// Every diagnostic of the script, unsorted, and the settings it typed on the way.
    pub(crate) fn check(mut self, script: &'a Script) -> Checked {
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
        Checked {
            diags: self.diags,
            specs: self.specs,
            has_transaction: self.has_transaction,
        }
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

    fn action(&mut self, a: &'a Action) {
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

    fn params(&mut self, params: &'a [Param]) {
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

    fn workflow(&mut self, w: &'a Workflow) {
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

    fn step(&mut self, step: &'a ListItem) {
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
