//! Frames and scopes: the variables a function body can see, and which are pending.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

/// A variable declared in a frame (top-level names seen from actions are `Checker::globals`).
#[derive(Clone, Debug)]
pub(super) struct Var {
    pub(super) pending: bool,
}

/// One function body being checked: the main body, an action, a workflow or a handler.
pub(super) struct Frame {
    pub(super) scopes: Vec<HashMap<String, Var>>,
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

impl Frame {
    pub(super) fn new(sees_globals: bool) -> Frame {
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

    pub(super) fn lookup(&self, name: &str) -> Option<&Var> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    pub(super) fn lookup_mut(&mut self, name: &str) -> Option<&mut Var> {
        self.scopes.iter_mut().rev().find_map(|s| s.get_mut(name))
    }

    /// Names that are pending on the current path.
    pub(super) fn pending_names(&self) -> HashSet<String> {
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
    pub(super) fn set_pending(&mut self, names: &HashSet<String>) {
        if !self.has_pending {
            return;
        }
        for scope in &mut self.scopes {
            for (n, v) in scope.iter_mut() {
                v.pending = names.contains(n);
            }
        }
    }

    pub(super) fn declare(&mut self, name: &str, pending: bool) {
        self.has_pending |= pending;
        let scope = self.scopes.last_mut().expect("a frame always has a scope");
        scope.insert(name.to_string(), Var { pending });
    }
}
