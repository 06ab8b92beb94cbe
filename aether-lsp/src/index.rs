//! Name resolution for the editor: every definition (actions, workflows, step bindings,
//! variables, parameters) and every use of one, plus uses of native functions, by span.
//!
//! Follows docs/contract/LANGUAGE.md's scope rules: actions and named workflows are hoisted; `let`
//! declares in the current block; `x: e` assigns when `x` is visible in the current action
//! (or at top level) and declares otherwise; `parallel:` and `transaction:` open no scope;
//! actions read top-level variables; a step's `as` binding is visible to later steps.

use std::collections::HashMap;

use aether_syntax::ast::{
    Action, Arg, Block, Expr, ExprKind, Item, ListItem, MapValue, Param, Script, Stmt, StmtKind,
    Workflow,
};
use aether_syntax::visit::{walk_expr, Visitor};
use aether_syntax::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DefKind {
    Action,
    Workflow,
    /// A workflow step's `as` binding.
    Step,
    Variable,
    Parameter,
}

#[derive(Clone, Debug)]
pub(crate) struct Def {
    pub(crate) name: String,
    pub(crate) kind: DefKind,
    /// The defining name.
    pub(crate) span: Span,
    /// Where the name can be used (for completion).
    pub(crate) visible: Span,
    /// Parameter names (`a`, `b = 1`) of an action.
    pub(crate) params: Vec<String>,
}

/// A use of a native function or module: `len` in `len(x)`, `recall` in `memory.recall`.
#[derive(Clone, Debug)]
pub(crate) struct NativeUse {
    pub(crate) span: Span,
    pub(crate) module: Option<String>,
    pub(crate) name: String,
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) defs: Vec<Def>,
    /// (span of the use, index of its definition in `defs`).
    pub(crate) refs: Vec<(Span, usize)>,
    pub(crate) natives: Vec<NativeUse>,
}

/// Whether a name is a module (`memory`, `plugins`, ...).
pub(crate) type IsModule<'a> = &'a dyn Fn(&str) -> bool;

const WHOLE: Span = Span {
    start: 0,
    end: u32::MAX,
};

struct Scope {
    names: HashMap<String, usize>,
    end: u32,
    /// The top of an action or of the file: `x: e` assigns to names visible up to here.
    boundary: bool,
}

struct Resolver<'a> {
    index: Index,
    scopes: Vec<Scope>,
    /// Action index in `defs` -> its parameters' indices.
    params: HashMap<usize, Vec<usize>>,
    /// Keyword arguments of action calls (span, action, keyword), resolved at the end,
    /// when every action's parameters are known.
    keywords: Vec<(Span, usize, String)>,
    is_module: IsModule<'a>,
}

impl Index {
    pub(crate) fn build(script: &Script, is_module: IsModule<'_>) -> Index {
        let mut r = Resolver {
            index: Index::default(),
            scopes: vec![Scope {
                names: HashMap::new(),
                end: u32::MAX,
                boundary: false,
            }],
            params: HashMap::new(),
            keywords: Vec::new(),
            is_module,
        };
        // Hoisted: actions and named workflows.
        for item in &script.items {
            match item {
                Item::Action(a) => {
                    let params = a.params().iter().map(param_text).collect();
                    r.define(&a.name.text, DefKind::Action, a.name.span, WHOLE, params);
                }
                Item::Workflow(Workflow {
                    name: Some(name), ..
                }) => {
                    r.define(&name.text, DefKind::Workflow, name.span, WHOLE, Vec::new());
                }
                _ => {}
            }
        }
        r.push(u32::MAX, true);
        for item in &script.items {
            if let Item::Stmt(s) = item {
                r.stmt(s);
            }
        }
        for item in &script.items {
            match item {
                Item::Action(a) => r.action(a),
                Item::Workflow(w) => r.workflow(w),
                Item::OnError(o) => {
                    for rule in &o.rules {
                        r.push(rule.span.end, true);
                        r.expr(&rule.handler);
                        r.scopes.pop();
                    }
                }
                _ => {}
            }
        }
        for (span, action, kw) in std::mem::take(&mut r.keywords) {
            let params = r.params.get(&action).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(p) = params.iter().find(|p| r.index.defs[**p].name == kw) {
                r.index.refs.push((span, *p));
            }
        }
        r.index.refs.sort_by_key(|(s, _)| *s);
        r.index
    }

    /// The definition whose name or one of whose uses covers `offset`, with that span.
    pub(crate) fn def_at(&self, offset: u32) -> Option<(usize, Span)> {
        let covers = |s: &Span| s.start <= offset && offset <= s.end;
        self.defs
            .iter()
            .enumerate()
            .find(|(_, d)| covers(&d.span))
            .map(|(i, d)| (i, d.span))
            .or_else(|| {
                self.refs
                    .iter()
                    .find(|(s, _)| covers(s))
                    .map(|(s, d)| (*d, *s))
            })
    }

    pub(crate) fn native_at(&self, offset: u32) -> Option<&NativeUse> {
        self.natives
            .iter()
            .find(|n| n.span.start <= offset && offset <= n.span.end)
    }

    /// Every use of definition `def`, in source order.
    pub(crate) fn uses(&self, def: usize) -> impl Iterator<Item = Span> + '_ {
        self.refs
            .iter()
            .filter(move |(_, d)| *d == def)
            .map(|(s, _)| *s)
    }
}

fn param_text(p: &Param) -> String {
    match &p.default {
        Some(_) => format!("{} = ...", p.name.text),
        None => p.name.text.clone(),
    }
}

impl Resolver<'_> {
    fn push(&mut self, end: u32, boundary: bool) {
        self.scopes.push(Scope {
            names: HashMap::new(),
            end,
            boundary,
        });
    }

    fn define(
        &mut self,
        name: &str,
        kind: DefKind,
        span: Span,
        visible: Span,
        params: Vec<String>,
    ) -> usize {
        let id = self.index.defs.len();
        self.index.defs.push(Def {
            name: name.to_string(),
            kind,
            span,
            visible,
            params,
        });
        if let Some(scope) = self.scopes.last_mut() {
            scope.names.insert(name.to_string(), id);
        }
        id
    }

    fn declare(&mut self, name: &str, kind: DefKind, span: Span) -> usize {
        let end = self.scopes.last().map_or(u32::MAX, |s| s.end);
        self.define(
            name,
            kind,
            span,
            Span {
                start: span.end,
                end,
            },
            Vec::new(),
        )
    }

    fn lookup(&self, name: &str) -> Option<usize> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.names.get(name).copied())
    }

    /// Visible in the current action (or top level): the scopes up to the boundary.
    fn lookup_local(&self, name: &str) -> Option<usize> {
        for s in self.scopes.iter().rev() {
            if let Some(id) = s.names.get(name) {
                return Some(*id);
            }
            if s.boundary {
                break;
            }
        }
        None
    }

    fn action(&mut self, a: &Action) {
        self.push(a.span.end, true);
        let mut ids = Vec::new();
        for p in a.params() {
            if let Some(d) = &p.default {
                self.expr(d);
            }
            let visible = Span {
                start: p.name.span.end,
                end: a.span.end,
            };
            ids.push(self.define(
                &p.name.text,
                DefKind::Parameter,
                p.name.span,
                visible,
                Vec::new(),
            ));
        }
        if let Some(action) = self.lookup(&a.name.text) {
            self.params.insert(action, ids);
        }
        self.block_stmts(&a.body);
        self.scopes.pop();
    }

    fn workflow(&mut self, w: &Workflow) {
        self.push(w.span.end, true);
        for e in &w.entries {
            match &e.value {
                MapValue::Expr(x) => self.expr(x),
                MapValue::List(items) if e.key == "steps" => {
                    for item in items {
                        self.step(item);
                    }
                }
                MapValue::List(items) => {
                    for item in items {
                        self.expr(&item.value);
                    }
                }
                MapValue::Map(_) => {}
            }
        }
        self.scopes.pop();
    }

    fn step(&mut self, item: &ListItem) {
        // A bare name is a call with no arguments.
        match &item.value.kind {
            ExprKind::Name(n) => self.callee_name(n, item.value.span, &[]),
            _ => self.expr(&item.value),
        }
        for opt in &item.options {
            self.expr(&opt.value);
        }
        if let Some(b) = &item.binding {
            self.declare(&b.text, DefKind::Step, b.span);
        }
    }

    fn block_stmts(&mut self, b: &Block) {
        for s in &b.stmts {
            self.stmt(s);
        }
    }

    fn scoped_block(&mut self, b: &Block) {
        self.push(b.span.end, false);
        self.block_stmts(b);
        self.scopes.pop();
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Let { name, value, .. } => {
                self.expr(value);
                self.declare(&name.text, DefKind::Variable, name.span);
            }
            StmtKind::Declare { name, value, .. } => {
                self.expr(value);
                match self.lookup_local(&name.text) {
                    Some(id) => self.index.refs.push((name.span, id)),
                    None => {
                        self.declare(&name.text, DefKind::Variable, name.span);
                    }
                }
            }
            StmtKind::Assign { target, value } => {
                self.expr(value);
                self.expr(target);
            }
            StmtKind::Memory { call } => match &call.kind {
                ExprKind::Call { callee, args } => {
                    if let ExprKind::Name(n) = &callee.kind {
                        self.index.natives.push(NativeUse {
                            span: callee.span,
                            module: Some("memory".into()),
                            name: n.clone(),
                        });
                    }
                    self.args(args);
                }
                _ => self.expr(call),
            },
            StmtKind::Expr(e) | StmtKind::Trigger(e) | StmtKind::Sleep(e) | StmtKind::Item(e) => {
                self.expr(e)
            }
            StmtKind::Return(e) => {
                if let Some(e) = e {
                    self.expr(e);
                }
            }
            StmtKind::Emit { payload, .. } => {
                if let Some(e) = payload {
                    self.expr(e);
                }
            }
            StmtKind::Await(es) => es.iter().for_each(|e| self.expr(e)),
            StmtKind::Assert { cond, message } => {
                self.expr(cond);
                if let Some(m) = message {
                    self.expr(m);
                }
            }
            StmtKind::If {
                branches,
                else_block,
            } => {
                for (cond, block) in branches {
                    self.expr(cond);
                    self.scoped_block(block);
                }
                if let Some(b) = else_block {
                    self.scoped_block(b);
                }
            }
            StmtKind::For { var, iter, body } => {
                self.expr(iter);
                self.push(body.span.end, false);
                self.declare(&var.text, DefKind::Variable, var.span);
                self.block_stmts(body);
                self.scopes.pop();
            }
            StmtKind::While { cond, body } => {
                self.expr(cond);
                self.scoped_block(body);
            }
            StmtKind::Parallel(b) | StmtKind::Transaction(b) => self.block_stmts(b),
            StmtKind::Break | StmtKind::Continue | StmtKind::Error => {}
        }
    }

    fn args(&mut self, args: &[Arg]) {
        for a in args {
            self.expr(&a.value);
        }
    }

    /// A called name: a variable or action, else a native global function.
    fn callee_name(&mut self, n: &str, span: Span, args: &[Arg]) {
        match self.lookup(n) {
            Some(id) => {
                self.index.refs.push((span, id));
                // Keyword arguments name the action's parameters.
                if self.index.defs[id].kind == DefKind::Action {
                    for a in args {
                        if let Some(kw) = &a.name {
                            self.keywords.push((kw.span, id, kw.text.clone()));
                        }
                    }
                }
            }
            None => self.index.natives.push(NativeUse {
                span,
                module: None,
                name: n.to_string(),
            }),
        }
    }

    fn expr(&mut self, e: &Expr) {
        self.visit_expr(e);
    }
}

/// Names, calls and module members are recorded; every other expression is walked by the
/// shared visitor.
impl<'a> Visitor<'a> for Resolver<'_> {
    fn visit_expr(&mut self, e: &'a Expr) {
        match &e.kind {
            ExprKind::Name(n) => match self.lookup(n) {
                Some(id) => self.index.refs.push((e.span, id)),
                None if (self.is_module)(n) => self.index.natives.push(NativeUse {
                    span: e.span,
                    module: Some(n.clone()),
                    name: String::new(),
                }),
                None => {}
            },
            ExprKind::Call { callee, args } => {
                match &callee.kind {
                    ExprKind::Name(n) => self.callee_name(n, callee.span, args),
                    _ => self.expr(callee),
                }
                self.args(args);
            }
            ExprKind::Member { target, name } => {
                self.expr(target);
                if let ExprKind::Name(m) = &target.kind {
                    if self.lookup(m).is_none() && (self.is_module)(m) {
                        self.index.natives.push(NativeUse {
                            span: name.span,
                            module: Some(m.clone()),
                            name: name.text.clone(),
                        });
                    }
                }
            }
            _ => walk_expr(self, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(src: &str) -> Index {
        let parsed = aether_syntax::parse(src);
        Index::build(&parsed.ast, &|m| m == "memory")
    }

    fn at(src: &str, needle: &str, nth: usize) -> u32 {
        src.match_indices(needle).nth(nth).expect("needle").0 as u32
    }

    #[test]
    fn variables_actions_and_steps_resolve() {
        let src = "goal: \"g\"\nlet total = 1\naction add(n, by = 2):\n    let r = n + by + total\n    return r\ntotal = add(total, by=3)\nworkflow w:\n    steps:\n        - add(1) as first\n        - add(first)\n";
        let ix = index(src);
        let (total, _) = ix.def_at(at(src, "total", 0)).expect("def");
        assert_eq!(ix.defs[total].kind, DefKind::Variable);
        assert_eq!(ix.uses(total).count(), 3);
        let (add, _) = ix.def_at(at(src, "add", 1)).expect("use of add");
        assert_eq!(ix.defs[add].kind, DefKind::Action);
        assert_eq!(ix.defs[add].params, vec!["n", "by = ..."]);
        assert_eq!(ix.uses(add).count(), 3);
        // `by=3` names the parameter.
        let (by, _) = ix.def_at(at(src, "by=3", 0)).expect("kwarg");
        assert_eq!(ix.defs[by].kind, DefKind::Parameter);
        let (first, _) = ix.def_at(at(src, "first", 1)).expect("step use");
        assert_eq!(ix.defs[first].kind, DefKind::Step);
    }

    #[test]
    fn block_scopes_shadow_and_declare_form_assigns() {
        let src = "let x = 1\nif x:\n    let x = 2\n    print(x)\nx: 3\nprint(x)\n";
        let ix = index(src);
        let (outer, _) = ix.def_at(at(src, "x", 0)).expect("outer");
        let (inner, _) = ix.def_at(at(src, "x", 3)).expect("inner use");
        assert_ne!(outer, inner);
        // `x: 3` assigns the outer x; the last print reads it.
        let (last, _) = ix.def_at(at(src, "x", 5)).expect("last use");
        assert_eq!(last, outer);
        assert_eq!(ix.uses(outer).count(), 3);
    }

    #[test]
    fn natives_are_recorded() {
        let src = "let r = memory.recall(\"q\")\nprint(len(r))\n";
        let ix = index(src);
        let n = ix.native_at(at(src, "recall", 0)).expect("recall");
        assert_eq!(n.module.as_deref(), Some("memory"));
        assert_eq!(n.name, "recall");
        assert!(ix.native_at(at(src, "len", 0)).is_some());
    }
}
