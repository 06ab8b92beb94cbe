//! Expressions: name reads, calls and their arguments, module use.

use aether_syntax::ast::*;
use aether_syntax::visit::{walk_expr, Visitor};
use aether_syntax::{Diagnostic, Span};

use super::{did_you_mean, replace_with, suggest, Checker, BUILTIN_VALUES};
use crate::codes::*;
use crate::decl::{FnDecl, ParamDecl, ParamKind};

/// What a signature is shown as in a diagnostic. Formatting it costs more than checking the
/// call, so it is kept as a reference and written only when a diagnostic needs it.
enum Shown<'a> {
    Decl(&'a FnDecl),
    Action(&'a Action),
    /// A named workflow: called with no arguments.
    Workflow(&'a str),
}

/// A callable's parameters, borrowed from where they are declared (checking a call
/// allocates nothing).
#[derive(Clone, Copy)]
enum Params<'a> {
    Decl(&'a [ParamDecl]),
    Action(&'a [Param]),
}

impl<'a> Params<'a> {
    fn len(self) -> usize {
        match self {
            Params::Decl(p) => p.len(),
            Params::Action(p) => p.len(),
        }
    }

    /// Parameter `i`: (name, has a default, kind).
    fn get(self, i: usize) -> (&'a str, bool, ParamKind) {
        match self {
            Params::Decl(p) => (p[i].name, p[i].default.is_some(), p[i].kind),
            Params::Action(p) => (
                p[i].name.text.as_str(),
                p[i].default.is_some(),
                ParamKind::Normal,
            ),
        }
    }

    /// Every parameter with its index.
    fn iter(self) -> impl Iterator<Item = (usize, (&'a str, bool, ParamKind))> {
        (0..self.len()).map(move |i| (i, self.get(i)))
    }

    /// The index of the first parameter named as parameter `i` is: a name declared twice
    /// is one parameter to a caller.
    fn first_named(self, i: usize) -> usize {
        let name = self.get(i).0;
        (0..i).find(|&j| self.get(j).0 == name).unwrap_or(i)
    }
}

/// The parameters a call gives a value, by [`Params::first_named`] index: a bit each for
/// the first 64, a vector only past them.
#[derive(Default)]
struct Filled {
    bits: u64,
    more: Vec<usize>,
}

impl Filled {
    fn insert(&mut self, i: usize) {
        match u32::try_from(i).ok().and_then(|i| 1u64.checked_shl(i)) {
            Some(bit) => self.bits |= bit,
            None => self.more.push(i),
        }
    }

    fn contains(&self, i: usize) -> bool {
        match u32::try_from(i).ok().and_then(|i| 1u64.checked_shl(i)) {
            Some(bit) => self.bits & bit != 0,
            None => self.more.contains(&i),
        }
    }
}

/// A callable's parameters, from an action or a native declaration.
struct Signature<'a> {
    shown: Shown<'a>,
    params: Params<'a>,
}

impl<'a> Signature<'a> {
    fn of_decl(d: &'a FnDecl) -> Signature<'a> {
        Signature {
            shown: Shown::Decl(d),
            params: Params::Decl(&d.params),
        }
    }

    fn of_action(a: &'a Action) -> Signature<'a> {
        Signature {
            shown: Shown::Action(a),
            params: Params::Action(a.params()),
        }
    }

    fn of_workflow(name: &'a str) -> Signature<'a> {
        Signature {
            shown: Shown::Workflow(name),
            params: Params::Decl(&[]),
        }
    }

    /// The signature as diagnostics show it: `name(a, b=…)`.
    fn display(&self) -> String {
        match self.shown {
            Shown::Decl(d) => d.signature(),
            Shown::Action(a) => {
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
                format!("{}({})", a.name.text, shown.join(", "))
            }
            Shown::Workflow(n) => format!("{n}()"),
        }
    }
}

impl Checker<'_> {
    /// A read of a plain name.
    pub(super) fn name(&mut self, n: &str, span: Span) {
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

    pub(super) fn use_module(&mut self, module: &str, span: Span) {
        if let Some(m) = self.registry.module_name(module) {
            self.used_modules.entry(m).or_insert(span);
        }
    }

    pub(super) fn module_requirements(&mut self) {
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

    pub(super) fn expr(&mut self, e: &Expr) {
        self.visit_expr(e);
    }

    pub(super) fn call(&mut self, callee: &Expr, args: &[Arg], span: Span) {
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
                    self.arguments(&Signature::of_workflow(n), args, span, callee.span);
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
        let params = sig.params;
        let normal = || params.iter().filter(|(_, p)| p.2 == ParamKind::Normal);
        let normal_count = normal().count();
        let variadic = params.iter().any(|(_, p)| p.2 == ParamKind::Variadic);
        if positional > normal_count && !variadic {
            let extra = &args[normal_count];
            let plural = if normal_count == 1 { "" } else { "s" };
            self.push(
                Diagnostic::new(
                    &WRONG_ARITY,
                    format!(
                        "`{}` takes {} positional argument{plural} but {positional} {} given",
                        sig.display(),
                        normal_count,
                        if positional == 1 { "was" } else { "were" }
                    ),
                )
                .with_primary(extra.value.span, "unexpected argument")
                .with_secondary(callee_span, "called here")
                .with_help(format!("the signature is `{}`", sig.display())),
            );
            return;
        }
        // The usual call: positional arguments only, every parameter left out has a default.
        if !seen_keyword && normal().skip(positional).all(|(_, p)| p.1) {
            return;
        }
        let mut filled = Filled::default();
        for (i, _) in normal().take(positional) {
            filled.insert(params.first_named(i));
        }
        // A misspelt keyword also leaves its parameter unfilled: report the spelling only.
        let mut unknown_keyword = false;
        for a in args {
            let Some(kw) = &a.name else { continue };
            let target = params
                .iter()
                .find(|(_, p)| p.0 == kw.text && p.2 != ParamKind::Variadic);
            match target {
                None => {
                    unknown_keyword = true;
                    let names = params
                        .iter()
                        .filter(|(_, p)| p.2 != ParamKind::Variadic)
                        .map(|(_, p)| p.0);
                    let mut d = Diagnostic::new(
                        &UNKNOWN_KEYWORD_ARGUMENT,
                        format!("unknown keyword argument `{}`", kw.text),
                    )
                    .with_primary(kw.span, "no parameter by this name");
                    d = match suggest(&kw.text, names) {
                        Some(s) => d
                            .with_help(format!(
                                "did you mean `{s}=`? the signature is `{}`",
                                sig.display()
                            ))
                            .with_fix(replace_with(kw.span, s)),
                        None => d.with_help(format!("the signature is `{}`", sig.display())),
                    };
                    self.push(d);
                }
                Some((i, _)) => {
                    let first = params.first_named(i);
                    if filled.contains(first) {
                        self.push(
                            Diagnostic::new(
                                &DUPLICATE_ARGUMENT,
                                format!("argument `{}` is given more than once", kw.text),
                            )
                            .with_primary(kw.span, "given again")
                            .with_help(format!("the signature is `{}`", sig.display())),
                        );
                    } else {
                        filled.insert(first);
                    }
                }
            }
        }
        let missing: Vec<&str> = normal()
            .filter(|&(i, p)| !p.1 && !filled.contains(params.first_named(i)))
            .map(|(_, p)| p.0)
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
                        sig.display()
                    ),
                )
                .with_primary(call_span, format!("missing {list}"))
                .with_help(format!("the signature is `{}`", sig.display())),
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
