//! The host functions of the runtime's modules, one file per module: each function's
//! declaration beside its implementation, and the arguments read by parameter name.
//!
//! [`functions`] lists them all; the `i`-th is host function id `i`
//! ([`aether_vm::FnTable::with_host`]), so [`RuntimeHost`](crate::RuntimeHost) calls
//! through the index with no name in between.

mod homeostasis;
mod kernel;
mod memory;
pub(crate) mod plugins;
mod security;
mod signals;

use std::sync::LazyLock;

use aether_check::decl::FnDecl;
use aether_vm::{Args, HostCall, HostCx, HostError, Value};

use crate::host::RuntimeHost;
use crate::state::StateError;

/// How the host runs a function.
#[derive(Clone, Copy)]
pub(crate) enum HostFn {
    /// Answers at once (an SQLite statement, a look-up).
    Sync(fn(&mut RuntimeHost, &Args<'_>, &mut HostCx<'_>) -> Result<Value, HostError>),
    /// May answer with a future (a plugin process).
    Call(fn(&mut RuntimeHost, &Args<'_>, &mut HostCx<'_>) -> HostCall),
    /// Keeps a durable run's journal itself (`wait_signal`: its result commits with the
    /// signal it consumes), so the host does not journal it around the call.
    SelfJournaled(fn(&mut RuntimeHost, &Args<'_>, &mut HostCx<'_>) -> HostCall),
}

/// Every host function, each a declaration with its implementation, by host id.
pub(crate) static FUNCTIONS: LazyLock<Vec<(FnDecl, HostFn)>> = LazyLock::new(functions);

fn functions() -> Vec<(FnDecl, HostFn)> {
    let mut all = memory::functions();
    all.extend(kernel::functions());
    all.extend(homeostasis::functions());
    all.extend(plugins::functions());
    all.extend(security::functions());
    all.extend(signals::functions());
    all
}

pub(crate) fn runtime_error(e: StateError) -> HostError {
    HostError::runtime(e.0)
}

/// The value bound to `param`.
pub(crate) fn arg<'a>(args: &Args<'a>, param: &str) -> Result<&'a Value, HostError> {
    args.get(param).map_err(|e| HostError::runtime(e.message))
}

/// The string bound to `param` (`what` names it in the error).
pub(crate) fn str_arg<'a>(args: &Args<'a>, param: &str, what: &str) -> Result<&'a str, HostError> {
    match arg(args, param)? {
        Value::Str(s) => Ok(s),
        other => Err(HostError::runtime(format!(
            "{what} must be a string, not {}",
            other.type_name()
        ))),
    }
}

/// The int bound to `param`.
pub(crate) fn int_arg(args: &Args<'_>, param: &str) -> Result<i64, HostError> {
    match arg(args, param)? {
        Value::Int(n) => Ok(*n),
        other => Err(HostError::runtime(format!(
            "{param} must be an int, not {}",
            other.type_name()
        ))),
    }
}

/// A list of strings (`tags=[...]`) bound to `param`; a single string is one tag, null none.
pub(crate) fn tags_arg(args: &Args<'_>, param: &str) -> Result<Vec<String>, HostError> {
    match arg(args, param)? {
        Value::Null => Ok(Vec::new()),
        Value::Str(s) => Ok(vec![s.to_string()]),
        Value::List(items) => items
            .iter()
            .map(|t| match t {
                Value::Str(s) => Ok(s.to_string()),
                other => Err(HostError::runtime(format!(
                    "tags must be strings, not {}",
                    other.type_name()
                ))),
            })
            .collect(),
        other => Err(HostError::runtime(format!(
            "tags must be a list of strings, not {}",
            other.type_name()
        ))),
    }
}

/// A script value as JSON (for plugins and actuation parameters); `what` names it in the
/// error when it nests too deep for JSON ([`crate::memory::json_ready`]).
pub(crate) fn to_json(v: &Value, what: &str) -> Result<serde_json::Value, HostError> {
    crate::memory::json_ready(v, what).map_err(HostError::runtime)?;
    serde_json::from_str(&v.to_json())
        .map_err(|e| HostError::runtime(format!("internal: {what} is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_host_function_is_declared_once_with_a_doc() {
        let mut seen = BTreeSet::new();
        for (d, _) in FUNCTIONS.iter() {
            assert!(
                seen.insert(d.qualified_name()),
                "{} twice",
                d.qualified_name()
            );
            assert!(!d.doc.is_empty(), "{} has no doc", d.qualified_name());
        }
    }

    /// `[[...[1]...]]` with `depth` brackets.
    fn nested(depth: usize) -> Value {
        (0..depth).fold(Value::Int(1), |v, _| Value::from(vec![v]))
    }

    #[test]
    fn values_as_deep_as_json_carries_convert_and_deeper_ones_are_refused() {
        // serde_json reads back exactly JSON_MAX_DEPTH levels.
        let ok = to_json(&nested(aether_vm::JSON_MAX_DEPTH), "the value").unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&ok.to_string()).is_ok());
        let e = to_json(&nested(aether_vm::JSON_MAX_DEPTH + 1), "the value").unwrap_err();
        assert!(
            e.message.contains("more than 127 levels deep"),
            "{}",
            e.message
        );
        assert!(serde_json::from_str::<serde_json::Value>(
            &nested(aether_vm::JSON_MAX_DEPTH + 1).to_json()
        )
        .is_err());
    }

    #[test]
    fn tags_accept_a_string_a_list_or_null() {
        let decl = FnDecl::global("f").param("tags");
        let one = [Value::from("a")];
        assert_eq!(
            tags_arg(&Args::new(&decl, &one), "tags"),
            Ok(vec!["a".to_string()])
        );
        let none = [Value::Null];
        assert_eq!(tags_arg(&Args::new(&decl, &none), "tags"), Ok(Vec::new()));
        let bad = [Value::Int(1)];
        assert_eq!(
            tags_arg(&Args::new(&decl, &bad), "tags").map_err(|e| e.message),
            Err("tags must be a list of strings, not int".to_string())
        );
    }
}
