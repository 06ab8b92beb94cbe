//! `aether status`: one view of the runtime's state directory (kernel, memory,
//! homeostasis, plugins), as text, JSON (the shape of the seed's maintenance status
//! endpoint) or Prometheus text exposition. Best effort: a subsystem that cannot be read
//! reports `available: false` and a reason, and never fails the command.

use super::stdio::{out, outln};
use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map, Value};

use aether_runtime::kernel::{Kernel, KernelSettings};
use aether_runtime::plugins::{PluginSettings, Plugins};
use aether_runtime::state::{State, DB_FILE};

#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// The state directory [default: .aetherra].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Print the status as one JSON object.
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Print Prometheus text exposition (metric names `aetherra_*`).
    #[arg(long)]
    prometheus: bool,
}

fn unavailable(reason: impl Into<String>) -> Value {
    json!({"available": false, "reason": reason.into()})
}

fn to_json(v: &aether_vm::Value) -> Value {
    serde_json::from_str(&v.to_json()).unwrap_or(Value::Null)
}

fn count(state: &State, sql: &str) -> i64 {
    state.conn.query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

/// The whole status object.
fn collect(state_dir: &std::path::Path) -> Value {
    let db = state_dir.join(DB_FILE);
    let state = if db.is_file() {
        State::open(state_dir).map_err(|e| e.0)
    } else {
        Err(format!(
            "no state database at `{}`: nothing has run with this state directory yet",
            db.display()
        ))
    };
    let memory = match &state {
        Ok(st) => {
            let mut m = Map::new();
            m.insert("available".into(), json!(true));
            m.insert(
                "entries".into(),
                json!(count(st, "SELECT COUNT(*) FROM memory")),
            );
            m.insert(
                "logs".into(),
                json!(count(st, "SELECT COUNT(*) FROM memory WHERE kind = 'log'")),
            );
            m.insert("size_bytes".into(), json!(st.size_bytes()));
            m.insert("path".into(), json!(st.path().display().to_string()));
            Value::Object(m)
        }
        Err(e) => unavailable(e.clone()),
    };
    let kernel = match (&state, KernelSettings::from_vars(|k| std::env::var(k).ok())) {
        (Ok(st), Ok(settings)) => {
            let k = Kernel::new(settings);
            let services = k.services(st).map(|v| to_json(&v)).unwrap_or(Value::Null);
            let stale = services.as_array().map_or(0, |a| {
                a.iter().filter(|s| s["stale"] == json!(true)).count()
            });
            json!({
                "available": true,
                "dlq": count(st, "SELECT COUNT(*) FROM dead_letters"),
                "services": services,
                "stale_services": stale,
            })
        }
        (Err(e), _) => unavailable(e.clone()),
        (_, Err(e)) => unavailable(e),
    };
    let homeostasis = match &state {
        Ok(st) => match aether_runtime::homeostasis::Setpoints::load(state_dir) {
            Ok(setpoints) => {
                let h = aether_runtime::homeostasis::Homeostasis::new(setpoints);
                json!({
                    "available": true,
                    "health": h.health(st).ok(),
                    "status": h.status(st).ok(),
                    "metrics_collected": count(st, "SELECT COUNT(*) FROM metrics"),
                    "actions_executed": count(st, "SELECT COUNT(*) FROM actuations WHERE ok = 1"),
                    "actions_refused": count(st, "SELECT COUNT(*) FROM actuations WHERE ok = 0"),
                })
            }
            Err(e) => unavailable(e),
        },
        Err(e) => unavailable(e.clone()),
    };
    let runs = match &state {
        Ok(st) => json!({
            "total": count(st, "SELECT COUNT(*) FROM runs"),
            "failed": count(st, "SELECT COUNT(*) FROM runs WHERE code != 0"),
            "last": st.conn.query_row(
                "SELECT file, ended_at, code_name FROM runs ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok(json!({"file": r.get::<_, String>(0)?, "ended_at": r.get::<_, String>(1)?, "code_name": r.get::<_, String>(2)?})),
            ).ok(),
        }),
        Err(e) => unavailable(e.clone()),
    };
    let durable = match &state {
        Ok(st) => match aether_runtime::durable::summary(st) {
            Ok(mut d) => {
                d["available"] = json!(true);
                d
            }
            Err(e) => unavailable(e.0),
        },
        Err(e) => unavailable(e.clone()),
    };
    let plugins = match PluginSettings::from_env() {
        Ok(settings) => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            let dirs = aether_runtime::plugins::search_dirs(
                None,
                &cwd,
                std::env::var("AETHER_PLUGIN_PATH").ok().as_deref(),
            );
            let (found, warnings) = Plugins::discover(&dirs, settings);
            json!({"available": true, "installed": found.list(), "warnings": warnings})
        }
        Err(e) => unavailable(e),
    };
    let health = homeostasis["health"].as_f64();
    json!({
        "ok": true,
        "ts": super::output::timestamp(),
        "state_dir": state_dir.display().to_string(),
        "overall": {
            "health_percent": health.map(|h| (h * 1000.0).round() / 10.0),
            "overall_running": false,
        },
        "runs": runs,
        "durable": durable,
        "kernel": kernel,
        "memory": memory,
        "homeostasis": homeostasis,
        "plugins": plugins,
    })
}

/// Prometheus text exposition of the numeric fields.
fn prometheus(s: &Value) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, v: &Value| {
        if let Some(x) = v.as_f64() {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {x}\n"
            ));
        }
    };
    metric(
        "aetherra_system_health",
        "gauge",
        "System health score (0.0-1.0)",
        &s["homeostasis"]["health"],
    );
    metric(
        "aetherra_runs_total",
        "counter",
        "Runs that kept state",
        &s["runs"]["total"],
    );
    metric(
        "aetherra_memory_entries",
        "gauge",
        "Records in memory",
        &s["memory"]["entries"],
    );
    metric(
        "aetherra_memory_size_bytes",
        "gauge",
        "Size of the state database",
        &s["memory"]["size_bytes"],
    );
    metric(
        "aetherra_kernel_dlq",
        "gauge",
        "Tasks in the dead-letter queue",
        &s["kernel"]["dlq"],
    );
    metric(
        "aetherra_services_stale",
        "gauge",
        "Registered services whose heartbeat is stale",
        &s["kernel"]["stale_services"],
    );
    metric(
        "aetherra_metrics_collected",
        "counter",
        "Metrics recorded",
        &s["homeostasis"]["metrics_collected"],
    );
    metric(
        "aetherra_actions_executed",
        "counter",
        "Corrective actions allowed and recorded",
        &s["homeostasis"]["actions_executed"],
    );
    metric(
        "aetherra_durable_journal_entries",
        "gauge",
        "Entries in the journals of durable runs",
        &s["durable"]["journal_entries"],
    );
    metric(
        "aetherra_durable_journal_bytes",
        "gauge",
        "Bytes of journal entries (their text columns)",
        &s["durable"]["journal_bytes"],
    );
    let installed = s["plugins"]["installed"]
        .as_array()
        .map(|a| json!(a.len()))
        .unwrap_or(Value::Null);
    metric(
        "aetherra_plugins_installed",
        "gauge",
        "Plugins discovered",
        &installed,
    );
    if let Some(by) = s["durable"]["by_status"].as_object() {
        out.push_str("# HELP aetherra_durable_runs Durable runs by status\n");
        out.push_str("# TYPE aetherra_durable_runs gauge\n");
        for (status, n) in by {
            out.push_str(&format!(
                "aetherra_durable_runs{{status=\"{status}\"}} {n}\n"
            ));
        }
    }
    out
}

fn text(s: &Value) -> String {
    let avail = |v: &Value| v["available"] == json!(true);
    let mut out = format!(
        "state directory: {}\n",
        s["state_dir"].as_str().unwrap_or("")
    );
    let reason = |v: &Value| format!("unavailable ({})", v["reason"].as_str().unwrap_or(""));
    let m = &s["memory"];
    out.push_str(&if avail(m) {
        format!(
            "memory:      {} records ({} log lines), {} bytes\n",
            m["entries"], m["logs"], m["size_bytes"]
        )
    } else {
        format!("memory:      {}\n", reason(m))
    });
    let k = &s["kernel"];
    out.push_str(&if avail(k) {
        format!(
            "kernel:      {} dead letters, {} services ({} stale)\n",
            k["dlq"],
            k["services"].as_array().map_or(0, Vec::len),
            k["stale_services"]
        )
    } else {
        format!("kernel:      {}\n", reason(k))
    });
    let h = &s["homeostasis"];
    out.push_str(&if avail(h) {
        let health = h["health"]
            .as_f64()
            .map_or_else(String::new, |x| format!("health {x:.2}, "));
        format!(
            "homeostasis: {health}{} metrics, {} actions executed, {} refused\n",
            h["metrics_collected"], h["actions_executed"], h["actions_refused"]
        )
    } else {
        format!("homeostasis: {}\n", reason(h))
    });
    let r = &s["runs"];
    if r["total"].is_number() {
        let last = r["last"]["file"]
            .as_str()
            .map(|f| {
                format!(
                    ", last {f} ({})",
                    r["last"]["code_name"].as_str().unwrap_or("?")
                )
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "runs:        {} recorded, {} failed{last}\n",
            r["total"], r["failed"]
        ));
    }
    let d = &s["durable"];
    if let Some(by) = d["by_status"].as_object() {
        let counts: Vec<String> = by
            .iter()
            .filter(|(_, n)| n.as_i64() != Some(0))
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        let counts = if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        };
        out.push_str(&format!(
            "durable:     {counts}; journal {} entries, {} bytes\n",
            d["journal_entries"], d["journal_bytes"]
        ));
    }
    let p = &s["plugins"];
    out.push_str(&if avail(p) {
        let names: Vec<String> = p["installed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        format!(
                            "{} {}",
                            x["name"].as_str().unwrap_or("?"),
                            x["version"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "plugins:     {}\n",
            if names.is_empty() {
                "none installed".to_string()
            } else {
                names.join(", ")
            }
        )
    } else {
        format!("plugins:     {}\n", reason(p))
    });
    out
}

pub(crate) fn run(args: StatusArgs) -> i32 {
    let dir = args.state_dir.unwrap_or_else(|| PathBuf::from(".aetherra"));
    let s = collect(&dir);
    if args.json {
        outln!("{s}");
    } else if args.prometheus {
        out!("{}", prometheus(&s));
    } else {
        out!("{}", text(&s));
    }
    0
}
