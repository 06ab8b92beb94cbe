//! The runtime host: the `memory`, `kernel`, `homeostasis`, `plugins` and `security`
//! modules the VM calls, their declarations, and the state they keep under `.aetherra/`.

pub mod busy;
mod calls;
pub mod durable;
pub mod files;
pub mod homeostasis;
pub mod host;
pub mod kernel;
pub mod memory;
pub mod plugins;
pub mod security;
pub mod state;
mod wal;

pub use host::{RuntimeConfig, RuntimeHost};

use aether_check::decl::FnDecl;
use aether_vm::FnTable;

/// The modules the runtime host provides, in docs/contract/STDLIB.md order.
pub const MODULES: &[&str] = &["memory", "kernel", "homeostasis", "plugins", "security"];

/// The declarations of the host functions (module functions and the Aether 1.1 globals
/// backed by a module), in host-id order: the `i`-th is called as `Host::call(i, ..)`.
pub fn declarations() -> Vec<FnDecl> {
    calls::FUNCTIONS.iter().map(|(d, _)| d.clone()).collect()
}

/// The function table of this build: the VM's intrinsics, the stdlib's natives and this
/// crate's host functions. The CLI checks, compiles and runs against it.
pub fn function_table() -> FnTable {
    FnTable::new()
        .with_natives(aether_stdlib::natives())
        .with_host(declarations())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_check::decl::Capability;
    use std::collections::{BTreeMap, BTreeSet};

    fn find(name: &str) -> FnDecl {
        declarations()
            .into_iter()
            .find(|d| d.qualified_name() == name)
            .unwrap_or_else(|| panic!("{name} is not declared"))
    }

    #[test]
    fn stdlib_and_runtime_cover_every_global_of_the_contract() {
        let table = function_table();
        let all: BTreeSet<String> = table
            .registry()
            .globals()
            .map(FnDecl::qualified_name)
            .collect();
        let aether_1_1 = [
            "store",
            "reflect",
            "load_logs",
            "summarize",
            "detect_anomalies",
            "escalate_to",
            "run_plugin",
            "available_plugins",
            "evaluate_confidence",
            "check_confidence",
            "self_heal",
            "load_feature_index",
        ];
        for name in aether_1_1 {
            assert!(all.contains(name), "{name} is not declared");
        }
    }

    #[test]
    fn exact_signatures() {
        let cases = [
            (
                "memory.store",
                "memory.store(content, tags=[], kind=\"note\")",
            ),
            ("memory.recall", "memory.recall(query, limit=5, tags=[])"),
            ("memory.count", "memory.count(tags=[])"),
            (
                "kernel.submit",
                "kernel.submit(task, data={}, priority=\"normal\", deadline=30s)",
            ),
            ("kernel.dlq", "kernel.dlq(limit=100)"),
            (
                "homeostasis.check_slo",
                "homeostasis.check_slo(name, value=null)",
            ),
            (
                "homeostasis.actuate",
                "homeostasis.actuate(action, target, params={})",
            ),
            (
                "plugins.invoke",
                "plugins.invoke(name, args..., function=\"run\", timeout=null)",
            ),
            (
                "security.verify_signature",
                "security.verify_signature(path)",
            ),
            ("store", "store(x, tag=null)"),
            ("reflect", "reflect(query=\"\")"),
            ("load_logs", "load_logs(tag=null, limit=100)"),
            ("escalate_to", "escalate_to(target, message=\"\")"),
            ("run_plugin", "run_plugin(name, args...)"),
            ("available_plugins", "available_plugins()"),
            ("self_heal", "self_heal(component=\"\")"),
        ];
        for (name, sig) in cases {
            assert_eq!(find(name).signature(), sig);
        }
    }

    #[test]
    fn capabilities_match_the_table() {
        let table: BTreeMap<&str, Capability> = [
            ("memory.store", Capability::MemoryWrite),
            ("memory.forget", Capability::MemoryWrite),
            ("store", Capability::MemoryWrite),
            ("escalate_to", Capability::MemoryWrite),
            ("memory.get", Capability::MemoryRead),
            ("memory.recall", Capability::MemoryRead),
            ("memory.count", Capability::MemoryRead),
            ("memory.status", Capability::MemoryRead),
            ("reflect", Capability::MemoryRead),
            ("load_logs", Capability::MemoryRead),
            ("kernel.submit", Capability::KernelSubmit),
            ("plugins.invoke", Capability::PluginsInvoke),
            ("run_plugin", Capability::PluginsInvoke),
            ("homeostasis.actuate", Capability::HomeostasisActuate),
            ("self_heal", Capability::HomeostasisActuate),
            ("kernel.register", Capability::KernelRegister),
            ("kernel.heartbeat", Capability::KernelRegister),
            ("homeostasis.record", Capability::HomeostasisRecord),
            ("security.verify_signature", Capability::SecurityRead),
        ]
        .into_iter()
        .collect();
        for d in declarations() {
            let name = d.qualified_name();
            assert_eq!(
                d.capability,
                table.get(name.as_str()).copied(),
                "capability of {name}"
            );
        }
        for name in table.keys() {
            find(name);
        }
    }

    #[test]
    fn capability_holders_write_or_read_state_as_declared() {
        for d in declarations() {
            match d.capability {
                Some(Capability::MemoryRead | Capability::SecurityRead) => {
                    assert!(!d.effectful, "{} only reads", d.name)
                }
                Some(_) => assert!(d.effectful, "{} changes state", d.qualified_name()),
                None => {}
            }
        }
    }

    #[test]
    fn effectful_are_exactly_the_state_changing_functions() {
        let effectful: BTreeSet<String> = declarations()
            .iter()
            .filter(|d| d.effectful)
            .map(FnDecl::qualified_name)
            .collect();
        let expected: BTreeSet<String> = [
            "memory.store",
            "memory.forget",
            "kernel.submit",
            "kernel.register",
            "kernel.heartbeat",
            "homeostasis.record",
            "homeostasis.actuate",
            "plugins.invoke",
            "store",
            "escalate_to",
            "run_plugin",
            "self_heal",
            "wait_signal",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(effectful, expected);
    }

    #[test]
    fn every_module_function_is_in_a_listed_module_and_documented() {
        for d in declarations() {
            if let Some(m) = d.module {
                assert!(MODULES.contains(&m), "{m} is not in MODULES");
            }
            assert!(!d.doc.is_empty(), "{} has no doc", d.qualified_name());
        }
    }
}
