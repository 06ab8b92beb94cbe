//! Writes the runtime cannot make (run records, metrics) fail no script, and are never silent: the host hands them to the CLI as warnings, once per kind.

use aether_runtime::kernel::KernelSettings;
use aether_runtime::plugins::{PluginSettings, Plugins};
use aether_runtime::security::NetworkPolicy;
use aether_runtime::{RuntimeConfig, RuntimeHost};
use aether_vm::{Host, Value};

fn host(state_dir: &std::path::Path) -> RuntimeHost {
    RuntimeHost::new(RuntimeConfig {
        state_dir: state_dir.to_path_buf(),
        capabilities: Vec::new(),
        network: NetworkPolicy::default(),
        trust: None,
        plugins: Plugins::discover(&[], PluginSettings::default()).0,
        enforce_capabilities: false,
        mock_io: false,
        deterministic: false,
        kernel: KernelSettings::default(),
        throwaway: false,
    })
}

#[test]
fn refused_writes_come_back_as_one_warning_per_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = host(dir.path());
    // The first metric opens the database and is written.
    h.metric("latency_ms", &Value::Float(12.0));
    assert_eq!(h.take_lost_writes(), Vec::<String>::new());
    // From now on the database refuses new runs and metrics (a trigger, so the test does
    // not depend on file permissions, which root ignores).
    let db = rusqlite::Connection::open(dir.path().join(aether_runtime::state::DB_FILE))
        .expect("open the state");
    db.execute_batch(
        "CREATE TRIGGER no_runs BEFORE INSERT ON runs BEGIN SELECT RAISE(FAIL, 'runs are read-only'); END;
         CREATE TRIGGER no_metrics BEFORE INSERT ON metrics BEGIN SELECT RAISE(FAIL, 'metrics are read-only'); END;",
    )
    .expect("install the triggers");
    drop(db);
    h.metric("latency_ms", &Value::Float(13.0));
    h.metric("latency_ms", &Value::Float(14.0));
    h.record_run("flow.aether", "2026-01-01T00:00:00Z", 0, "SUCCESS", "");
    let lost = h.take_lost_writes();
    assert_eq!(lost.len(), 2, "{lost:?}");
    assert!(
        lost[0].starts_with("a metric could not be written: ")
            && lost[0].contains("metrics are read-only"),
        "{lost:?}"
    );
    assert!(
        lost[1].starts_with("the run record could not be written: ")
            && lost[1].contains("runs are read-only"),
        "{lost:?}"
    );
    assert_eq!(h.take_lost_writes(), Vec::<String>::new(), "taken once");
}
