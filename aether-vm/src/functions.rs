//! The function table: every callable a script can name (VM intrinsics, stdlib natives,
//! runtime host functions), each a declaration beside its implementation, by [`FnId`].
//!
//! The CLI assembles one [`FnTable`]; the checker and the compiler read its
//! [`Registry`], the compiler emits a function's id and the VM calls through the same
//! index, so no name is looked up at run time. Adding a function is one entry: a
//! `(FnDecl, implementation)` pair in the crate that implements it (see
//! `docs/architecture.md`, "Adding a function").

use aether_check::decl::{FnDecl, FnId, ParamDecl, Registry};

use crate::value::{Value, ValueError};

/// The arguments of one call, bound by the compiler against the function's declaration:
/// one value per declared parameter, defaults filled in, a variadic `args...` as one list.
/// An implementation reads them by parameter name, never by position.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    decl: &'a FnDecl,
    values: &'a [Value],
}

impl<'a> Args<'a> {
    /// The arguments `values` of a call of `decl` (one per parameter, in order).
    pub fn new(decl: &'a FnDecl, values: &'a [Value]) -> Args<'a> {
        Args { decl, values }
    }

    /// The value bound to parameter `param`. A name the declaration does not have is a
    /// bug of the implementation, reported as an error rather than a panic (the unit
    /// tests of every function reach each of its parameters).
    #[inline]
    pub fn get(&self, param: &str) -> Result<&'a Value, ValueError> {
        for (p, v) in self.decl.params.iter().zip(self.values) {
            // The same literal in the declaration and the implementation is usually one
            // string in the binary: compare the pointers before the bytes.
            if std::ptr::eq(p.name, param) || p.name == param {
                return Ok(v);
            }
        }
        Err(self.unbound(param))
    }

    #[cold]
    fn unbound(&self, param: &str) -> ValueError {
        ValueError::new(format!(
            "internal: {}() has no bound parameter `{param}`",
            self.decl.qualified_name()
        ))
    }

    /// The elements bound to a variadic parameter (`args...`, always bound as a list).
    pub fn rest(&self, param: &str) -> Result<&'a [Value], ValueError> {
        match self.get(param)? {
            Value::List(items) => Ok(items),
            other => Err(ValueError::new(format!(
                "{}() received its variadic arguments as {}, not a list",
                self.decl.name,
                other.type_name()
            ))),
        }
    }

    /// The declaration the arguments were bound against.
    pub fn decl(&self) -> &'a FnDecl {
        self.decl
    }

    /// The parameters with their bound values, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a ParamDecl, &'a Value)> {
        self.decl.params.iter().zip(self.values)
    }

    /// Every bound value, in declaration order.
    pub fn values(&self) -> &'a [Value] {
        self.values
    }
}

/// A pure native function: its arguments, bound by parameter, to a value.
pub type NativeFn = fn(&Args<'_>) -> Result<Value, ValueError>;

/// A pure native: its declaration and its implementation, written side by side.
pub type Native = (FnDecl, NativeFn);

/// How the VM calls a function of the table.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Impl {
    /// A pure function over its bound arguments.
    Native(NativeFn),
    /// A function that needs the VM's streams or state (`print`, `log`, `now`, ...).
    Intrinsic(crate::vm::Intrinsic),
    /// A function of the runtime host, called with the host's own id.
    Host(u32),
}

/// Every function a build knows, each with its implementation, by [`FnId`].
#[derive(Clone, Debug)]
pub struct FnTable {
    registry: Registry,
    impls: Vec<Impl>,
}

impl Default for FnTable {
    fn default() -> FnTable {
        FnTable::new()
    }
}

impl FnTable {
    /// A table holding the VM's intrinsics (`print`, `log`, `trace`, `narrate`,
    /// `metrics`, `now`, `load_feature_index`).
    pub fn new() -> FnTable {
        let mut table = FnTable {
            registry: Registry::new(),
            impls: Vec::new(),
        };
        for (decl, which) in crate::vm::intrinsics() {
            table.add(decl, Impl::Intrinsic(which));
        }
        table
    }

    fn add(&mut self, decl: FnDecl, imp: Impl) -> FnId {
        let id = self.registry.declare(decl);
        match self.impls.get_mut(id.index()) {
            Some(slot) => *slot = imp,
            None => self.impls.push(imp),
        }
        id
    }

    /// Add a pure native (a later one of the same name replaces the earlier).
    pub fn native(&mut self, decl: FnDecl, func: NativeFn) -> FnId {
        self.add(decl, Impl::Native(func))
    }

    /// Add pure natives.
    pub fn with_natives(mut self, natives: impl IntoIterator<Item = Native>) -> FnTable {
        for (decl, func) in natives {
            self.native(decl, func);
        }
        self
    }

    /// Add the functions of the runtime host: the `i`-th is called as `Host::call(i, ..)`.
    pub fn with_host(mut self, decls: impl IntoIterator<Item = FnDecl>) -> FnTable {
        for (i, decl) in (0u32..).zip(decls) {
            self.add(decl, Impl::Host(i));
        }
        self
    }

    /// The declarations, for the checker and the compiler (ids are the table's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The declaration and implementation of function `id`.
    pub(crate) fn get(&self, id: u32) -> Option<(&FnDecl, Impl)> {
        let id = FnId(id);
        Some((self.registry.decl(id)?, *self.impls.get(id.index())?))
    }

    /// Every function with its id and whether it is implemented here, by the VM itself, or
    /// by the host, in id order (for the tidy test and docs).
    pub fn iter(&self) -> impl Iterator<Item = (FnId, &FnDecl, &'static str)> {
        self.registry.iter().zip(&self.impls).map(|((id, d), imp)| {
            let by = match imp {
                Impl::Native(_) => "native",
                Impl::Intrinsic(_) => "intrinsic",
                Impl::Host(_) => "host",
            };
            (id, d, by)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_check::decl::DefaultValue;

    fn first(args: &Args<'_>) -> Result<Value, ValueError> {
        Ok(args.get("a")?.clone())
    }

    #[test]
    fn args_are_read_by_parameter_name() {
        let decl = FnDecl::global("f")
            .param("a")
            .opt("b", DefaultValue::Int(2))
            .rest("more");
        let values = [
            Value::Int(1),
            Value::Int(2),
            Value::from(vec![Value::Int(3)]),
        ];
        let args = Args::new(&decl, &values);
        assert_eq!(args.get("b").cloned(), Ok(Value::Int(2)));
        assert_eq!(args.rest("more").map(<[Value]>::len), Ok(1));
        assert_eq!(
            args.get("c").map_err(|e| e.message),
            Err("internal: f() has no bound parameter `c`".to_string())
        );
    }

    #[test]
    fn a_later_declaration_replaces_the_implementation_under_the_same_id() {
        let mut t = FnTable::new();
        let n = t.registry().len();
        let id = t.native(FnDecl::global("f").param("a").doc("f"), first);
        assert_eq!(id.index(), n);
        let again = t.native(FnDecl::global("f").param("a").doc("g"), first);
        assert_eq!(again, id);
        assert_eq!(t.registry().len(), n + 1);
        assert!(matches!(t.get(id.0), Some((d, Impl::Native(_))) if d.doc == "g"));
    }
}
