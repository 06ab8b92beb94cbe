//! Declarations of native functions (name, parameters, defaults, variadics, capability, effects).
//!
//! One declaration per function: the checker validates calls against it and the VM
//! attaches the implementation to the same declaration, so check time and run time
//! never disagree. The CLI assembles a [`Registry`] from the crates that declare them.

use std::collections::BTreeMap;
use std::fmt;

use foldhash::HashMap;

/// A capability a function needs (docs/contract/STDLIB.md, "Capabilities").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    MemoryWrite,
    MemoryRead,
    KernelSubmit,
    PluginsInvoke,
    HomeostasisActuate,
    KernelRegister,
    HomeostasisRecord,
    SecurityRead,
}

impl Capability {
    /// Every capability, in declaration order (`cap as usize` indexes it).
    pub const ALL: [Capability; 8] = [
        Capability::MemoryWrite,
        Capability::MemoryRead,
        Capability::KernelSubmit,
        Capability::PluginsInvoke,
        Capability::HomeostasisActuate,
        Capability::KernelRegister,
        Capability::HomeostasisRecord,
        Capability::SecurityRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::MemoryWrite => "memory.write",
            Capability::MemoryRead => "memory.read",
            Capability::KernelSubmit => "kernel.submit",
            Capability::PluginsInvoke => "plugins.invoke",
            Capability::HomeostasisActuate => "homeostasis.actuate",
            Capability::KernelRegister => "kernel.register",
            Capability::HomeostasisRecord => "homeostasis.record",
            Capability::SecurityRead => "security.read",
        }
    }

    /// The module whose declaration (`requires: ["memory"]`) grants this capability.
    pub fn module(self) -> &'static str {
        self.as_str().split('.').next().unwrap_or_default()
    }
}

/// A constant default value of a parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum DefaultValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'static str),
    EmptyList,
    EmptyMap,
    /// A duration in milliseconds.
    Duration(u64),
}

impl fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultValue::Null => f.write_str("null"),
            DefaultValue::Bool(b) => write!(f, "{b}"),
            DefaultValue::Int(n) => write!(f, "{n}"),
            DefaultValue::Float(x) => write!(f, "{x:?}"),
            DefaultValue::Str(s) => write!(f, "{s:?}"),
            DefaultValue::EmptyList => f.write_str("[]"),
            DefaultValue::EmptyMap => f.write_str("{}"),
            DefaultValue::Duration(ms) if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            DefaultValue::Duration(ms) => write!(f, "{ms}ms"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Positional or keyword.
    Normal,
    /// `args...`: collects the remaining positional arguments.
    Variadic,
    /// After a variadic: only by keyword.
    KeywordOnly,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub name: &'static str,
    pub default: Option<DefaultValue>,
    pub kind: ParamKind,
}

/// The declaration of one native function.
#[derive(Clone, Debug, PartialEq)]
pub struct FnDecl {
    /// `None` for a global function, else the module name (`memory`, `kernel`, ...).
    pub module: Option<&'static str>,
    pub name: &'static str,
    pub params: Vec<ParamDecl>,
    pub capability: Option<Capability>,
    pub effectful: bool,
    /// The call suspends its fiber until something outside the VM answers (a plugin's
    /// process): refused inside a `transaction:`, which must not hold the state database's
    /// write lock while it waits (A137 at check time, the VM at run time).
    pub waits: bool,
    pub doc: &'static str,
}

impl FnDecl {
    /// A global function with no parameters yet.
    pub fn global(name: &'static str) -> FnDecl {
        FnDecl {
            module: None,
            name,
            params: Vec::new(),
            capability: None,
            effectful: false,
            waits: false,
            doc: "",
        }
    }

    /// A function of `module` with no parameters yet.
    pub fn in_module(module: &'static str, name: &'static str) -> FnDecl {
        FnDecl {
            module: Some(module),
            ..FnDecl::global(name)
        }
    }

    /// A required positional-or-keyword parameter.
    pub fn param(mut self, name: &'static str) -> FnDecl {
        self.params.push(ParamDecl {
            name,
            default: None,
            kind: ParamKind::Normal,
        });
        self
    }

    /// An optional positional-or-keyword parameter with its default.
    pub fn opt(mut self, name: &'static str, default: DefaultValue) -> FnDecl {
        self.params.push(ParamDecl {
            name,
            default: Some(default),
            kind: ParamKind::Normal,
        });
        self
    }

    /// A variadic rest parameter (`args...`).
    pub fn rest(mut self, name: &'static str) -> FnDecl {
        self.params.push(ParamDecl {
            name,
            default: None,
            kind: ParamKind::Variadic,
        });
        self
    }

    /// A keyword-only parameter (after the variadic), with its default.
    pub fn kw_only(mut self, name: &'static str, default: DefaultValue) -> FnDecl {
        self.params.push(ParamDecl {
            name,
            default: Some(default),
            kind: ParamKind::KeywordOnly,
        });
        self
    }

    pub fn capability(mut self, cap: Capability) -> FnDecl {
        self.capability = Some(cap);
        self
    }

    pub fn effectful(mut self) -> FnDecl {
        self.effectful = true;
        self
    }

    /// See [`FnDecl::waits`].
    pub fn waits(mut self) -> FnDecl {
        self.waits = true;
        self
    }

    pub fn doc(mut self, doc: &'static str) -> FnDecl {
        self.doc = doc;
        self
    }

    /// `module.name` or `name`.
    pub fn qualified_name(&self) -> String {
        match self.module {
            Some(m) => format!("{m}.{}", self.name),
            None => self.name.to_string(),
        }
    }

    /// The signature as written in docs/contract/STDLIB.md, e.g. `get(m, k, default=null)`.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match (&p.kind, &p.default) {
                (ParamKind::Variadic, _) => format!("{}...", p.name),
                (_, Some(d)) => format!("{}={d}", p.name),
                (_, None) => p.name.to_string(),
            })
            .collect();
        format!("{}({})", self.qualified_name(), params.join(", "))
    }

    pub fn is_variadic(&self) -> bool {
        self.params.iter().any(|p| p.kind == ParamKind::Variadic)
    }
}

/// A function's id: its index in the [`Registry`] (and in the VM's function table built
/// beside it). The compiler emits it; the VM calls through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FnId(pub u32);

impl FnId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Every native function known to a build of the toolchain, by id, by global name and by
/// module.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    decls: Vec<FnDecl>,
    /// In name order, for listings (completions, suggestions, help).
    globals: BTreeMap<&'static str, FnId>,
    modules: BTreeMap<&'static str, BTreeMap<&'static str, FnId>>,
    /// The same names hashed, for lookups: the checker resolves every call and every name
    /// that is not a variable, and a tree search compares strings at each level.
    global_index: HashMap<&'static str, FnId>,
    module_index: HashMap<&'static str, HashMap<&'static str, FnId>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Add a declaration and return its id; a later one with the same qualified name
    /// replaces the earlier and keeps its id.
    pub fn declare(&mut self, decl: FnDecl) -> FnId {
        let existing = match decl.module {
            None => self.global_index.get(decl.name),
            Some(m) => self.module_index.get(m).and_then(|fns| fns.get(decl.name)),
        };
        if let Some(&id) = existing {
            self.decls[id.index()] = decl;
            return id;
        }
        let id = FnId(u32::try_from(self.decls.len()).unwrap_or(u32::MAX));
        match decl.module {
            None => {
                self.globals.insert(decl.name, id);
                self.global_index.insert(decl.name, id);
            }
            Some(m) => {
                self.modules.entry(m).or_default().insert(decl.name, id);
                self.module_index
                    .entry(m)
                    .or_default()
                    .insert(decl.name, id);
            }
        }
        self.decls.push(decl);
        id
    }

    pub fn extend(&mut self, decls: impl IntoIterator<Item = FnDecl>) {
        for d in decls {
            self.declare(d);
        }
    }

    /// The declaration with this id.
    pub fn decl(&self, id: FnId) -> Option<&FnDecl> {
        self.decls.get(id.index())
    }

    /// How many functions are declared (ids are `0..len`).
    pub fn len(&self) -> usize {
        self.decls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.decls.is_empty()
    }

    /// Every declaration with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (FnId, &FnDecl)> {
        (0u32..).map(FnId).zip(self.decls.iter())
    }

    pub fn global_id(&self, name: &str) -> Option<FnId> {
        self.global_index.get(name).copied()
    }

    pub fn module_fn_id(&self, module: &str, name: &str) -> Option<FnId> {
        self.module_index.get(module)?.get(name).copied()
    }

    pub fn global(&self, name: &str) -> Option<&FnDecl> {
        self.decl(self.global_id(name)?)
    }

    pub fn module_fn(&self, module: &str, name: &str) -> Option<&FnDecl> {
        self.decl(self.module_fn_id(module, name)?)
    }

    pub fn has_module(&self, module: &str) -> bool {
        self.module_index.contains_key(module)
    }

    /// The registry's own spelling of a module name (`'static`), if it declares the module.
    pub fn module_name(&self, module: &str) -> Option<&'static str> {
        self.module_index.get_key_value(module).map(|(m, _)| *m)
    }

    /// The global functions, by name.
    pub fn globals(&self) -> impl Iterator<Item = &FnDecl> {
        self.globals.values().filter_map(|id| self.decl(*id))
    }

    pub fn module_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.modules.keys().copied()
    }

    /// The functions of `module`, by name.
    pub fn module_fns(&self, module: &str) -> impl Iterator<Item = &FnDecl> {
        self.modules
            .get(module)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|id| self.decl(*id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_renders_like_the_contract() {
        let d = FnDecl::in_module("plugins", "invoke")
            .param("name")
            .rest("args")
            .kw_only("function", DefaultValue::Str("run"))
            .kw_only("timeout", DefaultValue::Null);
        assert_eq!(
            d.signature(),
            "plugins.invoke(name, args..., function=\"run\", timeout=null)"
        );
        assert!(d.is_variadic());
    }

    #[test]
    fn registry_looks_up_globals_and_modules() {
        let mut r = Registry::new();
        r.declare(FnDecl::global("len").param("x"));
        r.declare(FnDecl::in_module("memory", "get").param("id"));
        assert!(r.global("len").is_some());
        assert!(r.module_fn("memory", "get").is_some());
        assert!(r.module_fn("memory", "len").is_none());
        assert!(r.has_module("memory"));
        assert!(!r.has_module("kernel"));
    }

    #[test]
    fn ids_are_declaration_order_and_a_redeclaration_keeps_its_id() {
        let mut r = Registry::new();
        let len = r.declare(FnDecl::global("len").param("x"));
        let get = r.declare(FnDecl::in_module("memory", "get").param("id"));
        assert_eq!((len, get), (FnId(0), FnId(1)));
        let again = r.declare(FnDecl::global("len").param("y"));
        assert_eq!(again, len);
        assert_eq!(r.len(), 2);
        assert_eq!(r.decl(len).map(|d| d.params[0].name), Some("y"));
        assert_eq!(r.module_fn_id("memory", "get"), Some(get));
    }
}
