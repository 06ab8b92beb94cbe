//! The runtime host: the `memory`, `kernel`, `homeostasis`, `plugins` and `security`
//! modules the VM calls, their declarations, and the state they keep under `.aetherra/`.

pub mod homeostasis;
pub mod host;
pub mod kernel;
pub mod memory;
pub mod plugins;
pub mod security;
pub mod state;

pub use host::{RuntimeConfig, RuntimeHost};

use aether_check::decl::{Capability, DefaultValue, FnDecl};

/// The modules the runtime host provides, in docs/contract/STDLIB.md order.
pub const MODULES: &[&str] = &["memory", "kernel", "homeostasis", "plugins", "security"];

/// The declarations of the module functions and of the Aether 1.1 globals backed by a module.
pub fn declarations() -> Vec<FnDecl> {
    let mut decls = memory();
    decls.extend(kernel());
    decls.extend(homeostasis());
    decls.extend(plugins());
    decls.extend(security());
    decls.extend(globals());
    decls
}

/// `memory`: SQLite-backed records with full-text recall.
fn memory() -> Vec<FnDecl> {
    let m = "memory";
    vec![
        FnDecl::in_module(m, "store")
            .param("content")
            .opt("tags", DefaultValue::EmptyList)
            .opt("kind", DefaultValue::Str("note"))
            .capability(Capability::MemoryWrite)
            .effectful()
            .doc("Stores a record and returns its id."),
        FnDecl::in_module(m, "get")
            .param("id")
            .capability(Capability::MemoryRead)
            .doc("The record with this id, or null."),
        FnDecl::in_module(m, "recall")
            .param("query")
            .opt("limit", DefaultValue::Int(5))
            .opt("tags", DefaultValue::EmptyList)
            .capability(Capability::MemoryRead)
            .doc("Records ranked by full-text match of query (newest first when query is empty)."),
        FnDecl::in_module(m, "forget")
            .param("id")
            .capability(Capability::MemoryWrite)
            .effectful()
            .doc("Deletes the record with this id; whether it existed."),
        FnDecl::in_module(m, "count")
            .opt("tags", DefaultValue::EmptyList)
            .capability(Capability::MemoryRead)
            .doc("The number of records, optionally only those with tags."),
        FnDecl::in_module(m, "status")
            .capability(Capability::MemoryRead)
            .doc("{entries, size_bytes, path} of the memory store."),
    ]
}

/// `kernel`: bounded task queues, dead letters and service heartbeats.
fn kernel() -> Vec<FnDecl> {
    let m = "kernel";
    vec![
        FnDecl::in_module(m, "submit")
            .param("task")
            .opt("data", DefaultValue::EmptyMap)
            .opt("priority", DefaultValue::Str("normal"))
            .opt("deadline", DefaultValue::Duration(30_000))
            .capability(Capability::KernelSubmit)
            .effectful()
            .doc("Queues task (called with data's entries as keywords) and returns its id."),
        FnDecl::in_module(m, "status")
            .doc("{running, queues, inflight, processed, dlq} of the kernel."),
        FnDecl::in_module(m, "dlq")
            .opt("limit", DefaultValue::Int(100))
            .doc("Dead letters {task, reason, attempts, at}."),
        FnDecl::in_module(m, "register")
            .param("name")
            .effectful()
            .doc("Registers a service by name."),
        FnDecl::in_module(m, "heartbeat")
            .param("name")
            .effectful()
            .doc("Records a heartbeat of the named service."),
        FnDecl::in_module(m, "services")
            .doc("The registered services [{name, status, last_heartbeat, stale}]."),
    ]
}

/// `homeostasis`: metrics, SLOs and rate-limited actuation.
fn homeostasis() -> Vec<FnDecl> {
    let m = "homeostasis";
    vec![
        FnDecl::in_module(m, "record")
            .param("metric")
            .param("value")
            .effectful()
            .doc("Records a measurement of metric."),
        FnDecl::in_module(m, "health").doc("Overall health between 0 and 1."),
        FnDecl::in_module(m, "get_slo")
            .param("name")
            .doc("The SLO {target, minimum?, maximum?, breach_action} named name."),
        FnDecl::in_module(m, "check_slo")
            .param("name")
            .opt("value", DefaultValue::Null)
            .doc("Whether the SLO named name is met (by value, or by the recorded metric)."),
        FnDecl::in_module(m, "actuate")
            .param("action")
            .param("target")
            .opt("params", DefaultValue::EmptyMap)
            .capability(Capability::HomeostasisActuate)
            .effectful()
            .doc("Performs action on target honouring cooldowns and rate limits; {ok, reason}."),
        FnDecl::in_module(m, "status").doc("The state of homeostasis."),
    ]
}

/// `plugins`: external commands speaking JSON over stdin/stdout.
fn plugins() -> Vec<FnDecl> {
    let m = "plugins";
    vec![
        FnDecl::in_module(m, "list")
            .doc("The installed plugins [{name, version, capabilities, circuit}]."),
        FnDecl::in_module(m, "invoke")
            .param("name")
            .rest("args")
            .kw_only("function", DefaultValue::Str("run"))
            .kw_only("timeout", DefaultValue::Null)
            .capability(Capability::PluginsInvoke)
            .effectful()
            .doc("Calls function of plugin name with args and returns its result."),
        FnDecl::in_module(m, "status")
            .param("name")
            .doc("The state of the named plugin."),
    ]
}

/// `security`: signatures and policy checks.
fn security() -> Vec<FnDecl> {
    let m = "security";
    vec![
        FnDecl::in_module(m, "verify_signature")
            .param("path")
            .doc("Verifies the signature of the file at path; {ok, reason, key_id}."),
        FnDecl::in_module(m, "check_capabilities")
            .param("list")
            .doc("Whether the capabilities in list are granted."),
        FnDecl::in_module(m, "check_network_policy")
            .param("host")
            .doc("Whether the network policy allows host."),
    ]
}

/// The Aether 1.1 global names that are backed by a runtime module.
fn globals() -> Vec<FnDecl> {
    vec![
        FnDecl::global("store")
            .param("x")
            .opt("tag", DefaultValue::Null)
            .capability(Capability::MemoryWrite)
            .effectful()
            .doc("memory.store(x, tags=[tag]) (tags=[] when tag is null); returns the id."),
        FnDecl::global("reflect")
            .opt("query", DefaultValue::Str(""))
            .capability(Capability::MemoryRead)
            .doc("memory.recall(query)."),
        FnDecl::global("load_logs")
            .opt("tag", DefaultValue::Null)
            .opt("limit", DefaultValue::Int(100))
            .capability(Capability::MemoryRead)
            .doc("The run-log records kept in memory, newest first, optionally by tag."),
        FnDecl::global("escalate_to")
            .param("target")
            .opt("message", DefaultValue::Str(""))
            .capability(Capability::MemoryWrite)
            .effectful()
            .doc("Emits an escalation event and records it in memory with tag escalation."),
        FnDecl::global("run_plugin")
            .param("name")
            .rest("args")
            .capability(Capability::PluginsInvoke)
            .effectful()
            .doc("plugins.invoke(name, args...)."),
        FnDecl::global("available_plugins").doc("plugins.list()."),
        FnDecl::global("self_heal")
            .opt("component", DefaultValue::Str(""))
            .capability(Capability::HomeostasisActuate)
            .effectful()
            .doc("homeostasis.actuate(\"restart\", component)."),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_check::decl::ParamKind;
    use std::collections::{BTreeMap, BTreeSet};

    fn find(name: &str) -> FnDecl {
        declarations()
            .into_iter()
            .find(|d| d.qualified_name() == name)
            .unwrap_or_else(|| panic!("{name} is not declared"))
    }

    #[test]
    fn no_duplicate_names() {
        let mut seen = BTreeSet::new();
        for d in declarations() {
            assert!(
                seen.insert(d.qualified_name()),
                "{} declared twice",
                d.qualified_name()
            );
        }
    }

    #[test]
    fn no_global_clashes_with_the_stdlib() {
        let stdlib: BTreeSet<String> = aether_stdlib::declarations()
            .iter()
            .map(FnDecl::qualified_name)
            .collect();
        for d in declarations() {
            assert!(
                !stdlib.contains(&d.qualified_name()),
                "{} also in stdlib",
                d.qualified_name()
            );
        }
    }

    #[test]
    fn declares_exactly_the_module_functions() {
        let expected: BTreeMap<&str, BTreeSet<&str>> = [
            (
                "memory",
                &["store", "get", "recall", "forget", "count", "status"][..],
            ),
            (
                "kernel",
                &[
                    "submit",
                    "status",
                    "dlq",
                    "register",
                    "heartbeat",
                    "services",
                ][..],
            ),
            (
                "homeostasis",
                &[
                    "record",
                    "health",
                    "get_slo",
                    "check_slo",
                    "actuate",
                    "status",
                ][..],
            ),
            ("plugins", &["list", "invoke", "status"][..]),
            (
                "security",
                &[
                    "verify_signature",
                    "check_capabilities",
                    "check_network_policy",
                ][..],
            ),
        ]
        .into_iter()
        .map(|(m, fns)| (m, fns.iter().copied().collect()))
        .collect();
        let mut declared: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for d in declarations() {
            if let Some(m) = d.module {
                declared.entry(m).or_default().insert(d.name);
            }
        }
        assert_eq!(declared, expected);
        let modules: BTreeSet<&str> = MODULES.iter().copied().collect();
        assert_eq!(modules, expected.keys().copied().collect::<BTreeSet<_>>());
    }

    #[test]
    fn declares_exactly_the_module_backed_globals() {
        let declared: BTreeSet<&str> = declarations()
            .iter()
            .filter(|d| d.module.is_none())
            .map(|d| d.name)
            .collect();
        let expected: BTreeSet<&str> = [
            "store",
            "reflect",
            "load_logs",
            "escalate_to",
            "run_plugin",
            "available_plugins",
            "self_heal",
        ]
        .into_iter()
        .collect();
        assert_eq!(declared, expected);
    }

    #[test]
    fn stdlib_and_runtime_cover_every_global_of_the_contract() {
        let all: BTreeSet<String> = aether_stdlib::declarations()
            .iter()
            .chain(declarations().iter())
            .filter(|d| d.module.is_none())
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
                Some(Capability::MemoryRead) => assert!(!d.effectful, "{} only reads", d.name),
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

    #[test]
    fn parameter_order_is_well_formed() {
        for d in declarations() {
            let q = d.qualified_name();
            let mut seen_variadic = false;
            let mut seen_default = false;
            for p in &d.params {
                match p.kind {
                    ParamKind::Normal => {
                        assert!(!seen_variadic, "{q}: {} after the variadic", p.name);
                        if p.default.is_some() {
                            seen_default = true;
                        } else {
                            assert!(!seen_default, "{q}: required {} after optional", p.name);
                        }
                    }
                    ParamKind::Variadic => {
                        assert!(!seen_variadic, "{q}: two variadics");
                        seen_variadic = true;
                    }
                    ParamKind::KeywordOnly => {
                        assert!(
                            seen_variadic,
                            "{q}: keyword-only {} without variadic",
                            p.name
                        );
                        assert!(
                            p.default.is_some(),
                            "{q}: keyword-only {} without default",
                            p.name
                        );
                    }
                }
            }
        }
    }
}
