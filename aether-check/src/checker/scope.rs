//! Frames and scopes: the variables a function body can see, and which are pending.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

/// A variable declared in a frame (top-level names seen from actions are `Checker::globals`).
#[derive(Clone, Debug)]
pub(super) struct Var {
    pub(super) pending: bool,
}

/// A variable of one scope, with the variable of the same name it hides.
struct Binding<'a> {
    name: &'a str,
    var: Var,
    /// The binding in an enclosing scope this one hides: visible again when this scope closes.
    hides: Option<usize>,
}

/// One function body being checked: the main body, an action, a workflow or a handler.
/// Names are borrowed from the script (declaring one allocates nothing), and a name is
/// found with one hash lookup however deep the scopes are nested.
pub(super) struct Frame<'a> {
    /// The bindings of every open scope, the innermost scope's last.
    bindings: Vec<Binding<'a>>,
    /// Where each scope opened inside the frame's own starts in `bindings`.
    scope_starts: Vec<usize>,
    /// Each visible name's innermost binding, by index in `bindings`.
    innermost: HashMap<&'a str, usize>,
    /// Inside an action, workflow or handler: top-level names are readable, not assignable.
    pub(super) sees_globals: bool,
    pub(super) loop_depth: usize,
    pub(super) transaction_depth: usize,
    /// The loop depth at each enclosing `transaction:` entry.
    pub(super) transaction_loops: Vec<usize>,
    /// Pending names already reported once.
    pub(super) reported_pending: HashSet<String>,
    /// A `parallel:` block has declared something: only then can anything be pending, so
    /// frames without one skip the per-branch bookkeeping.
    pub(super) has_pending: bool,
}

impl<'a> Frame<'a> {
    pub(super) fn new(sees_globals: bool) -> Frame<'a> {
        Frame {
            bindings: Vec::new(),
            scope_starts: Vec::new(),
            innermost: HashMap::new(),
            sees_globals,
            loop_depth: 0,
            transaction_depth: 0,
            transaction_loops: Vec::new(),
            reported_pending: HashSet::new(),
            has_pending: false,
        }
    }

    /// Open a block's scope: what it declares is gone when it closes.
    pub(super) fn open_scope(&mut self) {
        self.scope_starts.push(self.bindings.len());
    }

    /// Close the innermost scope opened by [`Frame::open_scope`]; the names it hid are
    /// visible again.
    pub(super) fn close_scope(&mut self) {
        let Some(start) = self.scope_starts.pop() else {
            return;
        };
        while self.bindings.len() > start {
            let Some(b) = self.bindings.pop() else { break };
            match b.hides {
                Some(i) => self.innermost.insert(b.name, i),
                None => self.innermost.remove(b.name),
            };
        }
    }

    pub(super) fn lookup(&self, name: &str) -> Option<&Var> {
        let i = *self.innermost.get(name)?;
        Some(&self.bindings[i].var)
    }

    pub(super) fn lookup_mut(&mut self, name: &str) -> Option<&mut Var> {
        let i = *self.innermost.get(name)?;
        Some(&mut self.bindings[i].var)
    }

    /// Every variable of every open scope (a hidden one too), innermost scope last.
    pub(super) fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.bindings.iter().map(|b| b.name)
    }

    /// Names that are pending on the current path.
    pub(super) fn pending_names(&self) -> HashSet<&'a str> {
        if !self.has_pending {
            return HashSet::new();
        }
        self.bindings
            .iter()
            .filter(|b| b.var.pending)
            .map(|b| b.name)
            .collect()
    }

    /// Make exactly `names` pending (names declared since then are gone with their scope).
    pub(super) fn set_pending(&mut self, names: &HashSet<&'a str>) {
        if !self.has_pending {
            return;
        }
        for b in &mut self.bindings {
            b.var.pending = names.contains(b.name);
        }
    }

    /// Declare `name` in the innermost scope (declaring it again there replaces it).
    pub(super) fn declare(&mut self, name: &'a str, pending: bool) {
        self.has_pending |= pending;
        let start = self.scope_starts.last().copied().unwrap_or(0);
        let var = Var { pending };
        match self.innermost.get(name).copied() {
            Some(i) if i >= start => self.bindings[i].var = var,
            hides => {
                self.innermost.insert(name, self.bindings.len());
                self.bindings.push(Binding { name, var, hides });
            }
        }
    }
}
