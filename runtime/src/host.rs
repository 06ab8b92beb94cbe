//! The VM host: resolves the module functions a script calls to their implementations,
//! maps `transaction:` blocks onto SQLite savepoints, and keeps the run log in memory.

use std::path::PathBuf;

use aether_vm::{ErrorClass, Event, Host, HostCall, HostCx, HostError, Map, Value};

use crate::homeostasis::{Homeostasis, Setpoints};
use crate::kernel::{Kernel, KernelSettings};
use crate::memory;
use crate::plugins::{PluginErrorKind, Plugins};
use crate::security::{self, NetworkPolicy, Trust};
use crate::state::{State, StateError};

/// What the host needs to know about the run.
pub struct RuntimeConfig {
    /// Where the database lives (`.aetherra/` unless `--state-dir`).
    pub state_dir: PathBuf,
    /// What the script declares (`require: capabilities:` and module names).
    pub capabilities: Vec<String>,
    pub network: NetworkPolicy,
    /// Trusted keys for `security.verify_signature`; `None` when they could not be loaded.
    pub trust: Option<Trust>,
    /// The plugins discovered for this run.
    pub plugins: Plugins,
    /// Refuse calls needing capabilities the script does not declare (profiles test, prod).
    pub enforce_capabilities: bool,
    /// `policy: mock_io`: plugin invocations return null without running.
    pub mock_io: bool,
    /// `policy: deterministic`: only plugins declared deterministic may run.
    pub deterministic: bool,
    pub kernel: KernelSettings,
    /// The run's state is discarded afterwards (`aether classify`): the database lives in
    /// memory, fresh for this run, and nothing is written under `state_dir`.
    pub throwaway: bool,
}

/// The functions this host implements, by id (the index).
const FUNCTIONS: &[&str] = &[
    "memory.store",
    "memory.get",
    "memory.recall",
    "memory.forget",
    "memory.count",
    "memory.status",
    "store",
    "reflect",
    "load_logs",
    "escalate_to",
    "security.verify_signature",
    "security.check_capabilities",
    "security.check_network_policy",
    "homeostasis.record",
    "plugins.list",
    "plugins.status",
    "plugins.invoke",
    "run_plugin",
    "available_plugins",
    "kernel.submit",
    "kernel.status",
    "kernel.dlq",
    "kernel.register",
    "kernel.heartbeat",
    "kernel.services",
    "homeostasis.health",
    "homeostasis.get_slo",
    "homeostasis.check_slo",
    "homeostasis.actuate",
    "homeostasis.status",
    "self_heal",
];

/// The runtime host of one run.
pub struct RuntimeHost {
    config: RuntimeConfig,
    kernel: Kernel,
    /// Built on first use from the setpoints (defaults, or `STATE_DIR/setpoints.json`).
    homeostasis: Option<Homeostasis>,
    /// Opened on first use, so a script that keeps no state leaves no database behind.
    state: Option<State>,
    /// Open `transaction:` savepoints.
    depth: u32,
    /// Whether this run recorded any metric (the controller then runs at the end).
    recorded_metrics: bool,
    /// Metrics and run-log lines that arrived while a transaction was open.
    deferred_metrics: Vec<(String, f64, String)>,
    deferred_logs: Vec<(Value, Vec<String>)>,
    /// Writes that failed without failing the script (run records, metrics, run-log lines,
    /// homeostasis corrections, the database itself): one message per kind of write, for
    /// the CLI to print (see [`RuntimeHost::take_lost_writes`]).
    lost_writes: Vec<String>,
}

/// Remember a failed write of `what`, once per kind.
fn note_lost(lost: &mut Vec<String>, what: &str, err: impl std::fmt::Display) {
    let prefix = format!("{what} could not be written");
    if !lost.iter().any(|l| l.starts_with(&prefix)) {
        lost.push(format!("{prefix}: {err}"));
    }
}

fn runtime_error(e: StateError) -> HostError {
    HostError::runtime(e.0)
}

fn arg_str<'v>(args: &'v [Value], i: usize, what: &str) -> Result<&'v str, HostError> {
    match args.get(i) {
        Some(Value::Str(s)) => Ok(s),
        Some(other) => Err(HostError::runtime(format!(
            "{what} must be a string, not {}",
            other.type_name()
        ))),
        None => Err(HostError::runtime(format!("{what} is missing"))),
    }
}

fn arg_int(args: &[Value], i: usize, what: &str) -> Result<i64, HostError> {
    match args.get(i) {
        Some(Value::Int(n)) => Ok(*n),
        Some(other) => Err(HostError::runtime(format!(
            "{what} must be an int, not {}",
            other.type_name()
        ))),
        None => Err(HostError::runtime(format!("{what} is missing"))),
    }
}

/// A list of strings (`tags=[...]`); a single string is one tag.
fn arg_tags(args: &[Value], i: usize) -> Result<Vec<String>, HostError> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Str(s)) => Ok(vec![s.to_string()]),
        Some(Value::List(items)) => items
            .iter()
            .map(|t| match t {
                Value::Str(s) => Ok(s.to_string()),
                other => Err(HostError::runtime(format!(
                    "tags must be strings, not {}",
                    other.type_name()
                ))),
            })
            .collect(),
        Some(other) => Err(HostError::runtime(format!(
            "tags must be a list of strings, not {}",
            other.type_name()
        ))),
    }
}

fn records(rs: Vec<memory::Record>) -> Value {
    Value::from(rs.iter().map(memory::Record::to_value).collect::<Vec<_>>())
}

impl RuntimeHost {
    pub fn new(config: RuntimeConfig) -> RuntimeHost {
        RuntimeHost {
            kernel: Kernel::new(config.kernel.clone()),
            homeostasis: None,
            config,
            state: None,
            depth: 0,
            recorded_metrics: false,
            deferred_metrics: Vec::new(),
            deferred_logs: Vec::new(),
            lost_writes: Vec::new(),
        }
    }

    /// The writes that failed during the run without failing it, one message per kind of
    /// write (the run record, metrics, the run log, dead letters, ...). The CLI prints them
    /// as warnings: the runtime never prints.
    pub fn take_lost_writes(&mut self) -> Vec<String> {
        let mut lost = std::mem::take(&mut self.lost_writes);
        for l in self.kernel.take_lost_writes() {
            note_lost(&mut lost, "a dead letter", l);
        }
        lost
    }

    /// Open the state database if it can be; when it cannot, the kernel goes on in memory
    /// and the failure is a lost write.
    fn try_state(&mut self) {
        if let Err(e) = self.state() {
            note_lost(&mut self.lost_writes, "the state database", e.message);
        }
    }

    /// Record a host measurement; a failure is a lost write, not the script's error.
    fn host_metric(&mut self, name: &str, x: f64) {
        if let Err(e) = self.record_metric(name, &Value::Float(x)) {
            note_lost(&mut self.lost_writes, "a metric", e.message);
        }
    }

    /// Record how a run ended, when the run kept state (a run that opened no database
    /// leaves none behind).
    pub fn record_run(
        &mut self,
        file: &str,
        started_at: &str,
        code: i32,
        code_name: &str,
        message: &str,
    ) {
        let Some(st) = &self.state else {
            return;
        };
        let ended = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        if let Err(e) = st.conn.execute(
            "INSERT INTO runs (file, started_at, ended_at, code, code_name, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![file, started_at, ended, code, code_name, message],
        ) {
            note_lost(&mut self.lost_writes, "the run record", e);
        }
    }

    /// The run is over: tasks still queued or running are dead-lettered.
    pub fn shutdown(&mut self) {
        if self.kernel.has_work() {
            self.try_state();
            self.kernel.shutdown(self.state.as_ref());
        }
        // The host's measurements for homeostasis, when this run used the kernel or plugins.
        if self.kernel.used() {
            let depth = self.kernel.max_depth() as f64;
            self.host_metric("queue_depth", depth);
            self.try_state();
            let dlq = self.kernel.dlq_total(self.state.as_ref()) as f64;
            self.host_metric("dlq_count", dlq);
        }
        self.correct();
        for name in self.config.plugins.names() {
            let rate = self
                .config
                .plugins
                .status(&name)
                .and_then(|s| s.get("success_rate").and_then(serde_json::Value::as_f64));
            let invoked = self
                .config
                .plugins
                .status(&name)
                .and_then(|s| s.get("invocations").and_then(serde_json::Value::as_u64))
                .unwrap_or(0);
            if let (Some(rate), true) = (rate, invoked > 0) {
                self.host_metric("plugin_success_rate", rate);
            }
        }
    }

    /// The end-of-run control step: when this run recorded metrics, the PID controller runs
    /// once over the SLOs, and each breach action it proposes is requested through
    /// `actuate` (so cooldowns and rate limits apply, and the audit log records it).
    fn correct(&mut self) {
        if !self.recorded_metrics {
            return;
        }
        let (h, st) = match self.homeo() {
            Ok(it) => it,
            Err(e) => {
                note_lost(
                    &mut self.lost_writes,
                    "the homeostasis correction",
                    e.message,
                );
                return;
            }
        };
        let corrections = match h.evaluate(st) {
            Ok(it) => it,
            Err(e) => {
                note_lost(&mut self.lost_writes, "the homeostasis correction", e);
                return;
            }
        };
        let mut failed = None;
        for c in corrections {
            if let Some(action) = &c.action {
                let params = serde_json::json!({
                    "slo": c.slo,
                    "value": c.value,
                    "target": c.target,
                    "output": c.output,
                    "by": "controller",
                });
                if let Err(e) = h.actuate(st, action, &c.component, &params) {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            note_lost(&mut self.lost_writes, "the homeostasis correction", e);
        }
    }

    /// When the outermost transaction has ended, write what was kept out of it (dead
    /// letters must never be rolled back with a script's transaction).
    fn after_transaction(&mut self) {
        if self.depth != 0 {
            return;
        }
        self.kernel.flush_dead_letters(self.state.as_ref());
        let Some(st) = &self.state else {
            return;
        };
        for (name, x, at) in std::mem::take(&mut self.deferred_metrics) {
            if let Err(e) = st.conn.execute(
                "INSERT INTO metrics (name, value, at) VALUES (?1, ?2, ?3)",
                rusqlite::params![name, x, at],
            ) {
                note_lost(&mut self.lost_writes, "a metric", e);
            }
        }
        for (content, tags) in std::mem::take(&mut self.deferred_logs) {
            if let Err(e) = memory::store_unique(st, &content, &tags, "log") {
                note_lost(&mut self.lost_writes, "a run-log line", e.0);
            }
        }
    }

    /// The homeostasis controller and the open state database, together.
    fn homeo(&mut self) -> Result<(&mut Homeostasis, &State), HostError> {
        self.state()?;
        if self.homeostasis.is_none() {
            let setpoints = Setpoints::load(&self.config.state_dir).map_err(HostError::runtime)?;
            self.homeostasis = Some(Homeostasis::new(setpoints));
        }
        match (self.homeostasis.as_mut(), self.state.as_ref()) {
            (Some(h), Some(st)) => Ok((h, st)),
            _ => Err(HostError::runtime("homeostasis is not available")),
        }
    }

    fn state(&mut self) -> Result<&State, HostError> {
        if self.state.is_none() {
            let st = if self.config.throwaway {
                State::in_memory()
            } else {
                State::open(&self.config.state_dir)
            }
            .map_err(runtime_error)?;
            self.state = Some(st);
        }
        self.state
            .as_ref()
            .ok_or_else(|| HostError::runtime("the state database is not open"))
    }

    fn call_sync(
        &mut self,
        name: &str,
        args: &[Value],
        cx: &mut HostCx<'_>,
    ) -> Result<Value, HostError> {
        match name {
            "memory.store" => {
                let tags = arg_tags(args, 1)?;
                let kind = arg_str(args, 2, "kind")?.to_string();
                let content = args.first().cloned().unwrap_or_default();
                let st = self.state()?;
                memory::store(st, &content, &tags, &kind)
                    .map(Value::Int)
                    .map_err(runtime_error)
            }
            "store" => {
                let tags = arg_tags(args, 1)?;
                let content = args.first().cloned().unwrap_or_default();
                let st = self.state()?;
                memory::store(st, &content, &tags, "note")
                    .map(Value::Int)
                    .map_err(runtime_error)
            }
            "memory.get" => {
                let id = arg_int(args, 0, "id")?;
                let st = self.state()?;
                Ok(memory::get(st, id)
                    .map_err(runtime_error)?
                    .map_or(Value::Null, |r| r.to_value()))
            }
            "memory.recall" => {
                let query = arg_str(args, 0, "query")?.to_string();
                let limit = arg_int(args, 1, "limit")?;
                let tags = arg_tags(args, 2)?;
                let st = self.state()?;
                let start = std::time::Instant::now();
                let res = memory::recall(st, &query, limit, &tags)
                    .map(records)
                    .map_err(runtime_error);
                // The host's own measurement for homeostasis: memory round trip.
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                self.host_metric("memory_roundtrip_ms", ms);
                res
            }
            "reflect" => {
                let query = arg_str(args, 0, "query")?.to_string();
                let st = self.state()?;
                memory::recall(st, &query, 5, &[])
                    .map(records)
                    .map_err(runtime_error)
            }
            "memory.forget" => {
                let id = arg_int(args, 0, "id")?;
                let st = self.state()?;
                memory::forget(st, id)
                    .map(Value::Bool)
                    .map_err(runtime_error)
            }
            "memory.count" => {
                let tags = arg_tags(args, 0)?;
                let st = self.state()?;
                memory::count(st, &tags)
                    .map(Value::Int)
                    .map_err(runtime_error)
            }
            "memory.status" => {
                let st = self.state()?;
                memory::status(st).map_err(runtime_error)
            }
            "load_logs" => {
                let tag = match args.first() {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(arg_str(args, 0, "tag")?.to_string()),
                };
                let limit = arg_int(args, 1, "limit")?;
                let st = self.state()?;
                memory::logs(st, tag.as_deref(), limit)
                    .map(records)
                    .map_err(runtime_error)
            }
            "escalate_to" => {
                let target = args.first().map(Value::display).unwrap_or_default();
                let message = args.get(1).map(Value::display).unwrap_or_default();
                let fields: Map = [
                    ("target", Value::from(target.as_str())),
                    ("message", Value::from(message.as_str())),
                ]
                .into_iter()
                .collect();
                cx.event("escalation", fields.clone());
                let st = self.state()?;
                memory::store_unique(
                    st,
                    &Value::from(fields),
                    &["escalation".to_string()],
                    "escalation",
                )
                .map(Value::Int)
                .map_err(runtime_error)
            }
            "security.verify_signature" => {
                let path = arg_str(args, 0, "path")?;
                Ok(security::verify_signature(
                    std::path::Path::new(path),
                    self.config.trust.as_ref(),
                ))
            }
            "security.check_capabilities" => {
                let wanted = arg_tags(args, 0)?;
                let caps = &self.config.capabilities;
                let granted = |c: &str| {
                    let module = c.split('.').next().unwrap_or(c);
                    caps.iter().any(|d| d == c || d == module)
                };
                Ok(Value::Bool(wanted.iter().all(|c| granted(c))))
            }
            "security.check_network_policy" => {
                let host = arg_str(args, 0, "host")?;
                Ok(Value::Bool(self.config.network.allows(host)))
            }
            "homeostasis.record" => {
                let metric = arg_str(args, 0, "metric")?.to_string();
                let value = args.get(1).cloned().unwrap_or_default();
                self.record_metric(&metric, &value)?;
                Ok(Value::Null)
            }
            "plugins.list" | "available_plugins" => Ok(Value::from(
                self.config
                    .plugins
                    .list()
                    .iter()
                    .map(memory::from_json)
                    .collect::<Vec<_>>(),
            )),
            "plugins.status" => {
                let name = arg_str(args, 0, "name")?;
                Ok(self
                    .config
                    .plugins
                    .status(name)
                    .map_or(Value::Null, |j| memory::from_json(&j)))
            }
            "kernel.submit" => {
                let task = match args.first() {
                    Some(Value::Str(s)) => s.to_string(),
                    Some(Value::Action(a)) => a.name.clone(),
                    Some(other) => {
                        return Err(HostError::runtime(format!(
                            "a task is an action or its name, not {}",
                            other.type_name()
                        )))
                    }
                    None => return Err(HostError::runtime("the task is missing")),
                };
                let data = match args.get(1) {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Map(m)) => m.as_ref().clone(),
                    Some(other) => {
                        return Err(HostError::runtime(format!(
                            "task data is a map of argument names to values, not {}",
                            other.type_name()
                        )))
                    }
                };
                let priority = arg_str(args, 2, "priority")?.to_string();
                let deadline =
                    match args.get(3) {
                        Some(Value::Duration(ms)) if *ms >= 0.0 => aether_vm::wait_of_ms(*ms),
                        Some(Value::Int(n)) if *n >= 0 => aether_vm::wait_of_ms(*n as f64 * 1000.0),
                        Some(Value::Float(x)) if *x >= 0.0 && x.is_finite() => {
                            aether_vm::wait_of_ms(x * 1000.0)
                        }
                        _ => return Err(HostError::runtime(
                            "deadline is a duration or a number of seconds that is not negative",
                        )),
                    };
                self.try_state();
                self.kernel
                    .submit(self.state.as_ref(), &task, data, &priority, deadline)
                    .map(|id| Value::Int(id as i64))
                    .map_err(HostError::runtime)
            }
            "kernel.status" => {
                self.try_state();
                Ok(self.kernel.status(self.state.as_ref()))
            }
            "kernel.dlq" => {
                let limit = arg_int(args, 0, "limit")?;
                self.try_state();
                let letters = self
                    .kernel
                    .dlq(self.state.as_ref(), limit)
                    .map_err(runtime_error)?;
                Ok(Value::from(
                    letters
                        .iter()
                        .map(|d| {
                            let m: Map = [
                                ("task", Value::from(d.task.as_str())),
                                ("reason", Value::from(d.reason.as_str())),
                                ("attempts", Value::Int(d.attempts as i64)),
                                ("at", Value::from(d.at.as_str())),
                            ]
                            .into_iter()
                            .collect();
                            Value::from(m)
                        })
                        .collect::<Vec<_>>(),
                ))
            }
            "kernel.register" | "kernel.heartbeat" => {
                let service = arg_str(args, 0, "name")?.to_string();
                self.state()?;
                let st = self
                    .state
                    .as_ref()
                    .ok_or_else(|| HostError::runtime("no state"))?;
                self.kernel
                    .heartbeat(st, &service, name == "kernel.register")
                    .map_err(runtime_error)?;
                Ok(Value::Null)
            }
            "kernel.services" => {
                self.state()?;
                let st = self
                    .state
                    .as_ref()
                    .ok_or_else(|| HostError::runtime("no state"))?;
                self.kernel.services(st).map_err(runtime_error)
            }
            "homeostasis.health" => {
                let (h, st) = self.homeo()?;
                h.health(st).map(Value::Float).map_err(HostError::runtime)
            }
            "homeostasis.get_slo" => {
                let slo = arg_str(args, 0, "name")?.to_string();
                let (h, _) = self.homeo()?;
                Ok(h.get_slo(&slo)
                    .map_or(Value::Null, |j| memory::from_json(&j)))
            }
            "homeostasis.check_slo" => {
                let slo = arg_str(args, 0, "name")?.to_string();
                let value = match args.get(1) {
                    None | Some(Value::Null) => None,
                    Some(Value::Int(n)) => Some(*n as f64),
                    Some(Value::Float(x)) => Some(*x),
                    Some(Value::Duration(ms)) => Some(*ms),
                    Some(other) => {
                        return Err(HostError::runtime(format!(
                            "an SLO value is a number, not {}",
                            other.type_name()
                        )))
                    }
                };
                let (h, st) = self.homeo()?;
                h.check_slo(st, &slo, value)
                    .map(Value::Bool)
                    .map_err(HostError::runtime)
            }
            "homeostasis.actuate" | "self_heal" => {
                let (action, target, params) = if name == "self_heal" {
                    let component = args.first().map(Value::display).unwrap_or_default();
                    ("restart".to_string(), component, serde_json::json!({}))
                } else {
                    let action = arg_str(args, 0, "action")?.to_string();
                    let target = arg_str(args, 1, "target")?.to_string();
                    let params = args
                        .get(2)
                        .map(|v| {
                            serde_json::from_str(&v.to_json()).unwrap_or(serde_json::Value::Null)
                        })
                        .unwrap_or_else(|| serde_json::json!({}));
                    (action, target, params)
                };
                let (h, st) = self.homeo()?;
                let answer = h
                    .actuate(st, &action, &target, &params)
                    .map_err(HostError::runtime)?;
                let answer = memory::from_json(&answer);
                let fields: Map = [
                    ("action", Value::from(action.as_str())),
                    ("target", Value::from(target.as_str())),
                    ("ok", answer.get_field("ok").unwrap_or(Value::Null)),
                    ("reason", answer.get_field("reason").unwrap_or(Value::Null)),
                ]
                .into_iter()
                .collect();
                cx.event("actuation", fields);
                Ok(answer)
            }
            "homeostasis.status" => {
                let (h, st) = self.homeo()?;
                h.status(st)
                    .map(|j| memory::from_json(&j))
                    .map_err(HostError::runtime)
            }
            other => Err(HostError::runtime(format!(
                "internal: `{other}` has an id but no implementation"
            ))),
        }
    }

    /// `plugins.invoke(name, args..., function="run", timeout=null)` and
    /// `run_plugin(name, args...)`: the process runs while other fibers go on.
    fn invoke_plugin(&mut self, which: &str, args: Vec<Value>, cx: &mut HostCx<'_>) -> HostCall {
        let ready = |r: Result<Value, HostError>| HostCall::Ready(r);
        let name = match arg_str(&args, 0, "the plugin name") {
            Ok(n) => n.to_string(),
            Err(e) => return ready(Err(e)),
        };
        let rest: Vec<serde_json::Value> = match args.get(1) {
            Some(Value::List(items)) => items
                .iter()
                .map(|v| serde_json::from_str(&v.to_json()).unwrap_or(serde_json::Value::Null))
                .collect(),
            _ => Vec::new(),
        };
        let (function, timeout) = if which == "plugins.invoke" {
            let function = match arg_str(&args, 2, "function") {
                Ok(f) => f.to_string(),
                Err(e) => return ready(Err(e)),
            };
            let t = args
                .get(3)
                .map(|v| serde_json::from_str(&v.to_json()).unwrap_or(serde_json::Value::Null))
                .unwrap_or(serde_json::Value::Null);
            match crate::plugins::timeout_from_json(&t) {
                Ok(t) => (function, t),
                Err(e) => return ready(Err(HostError::runtime(e))),
            }
        } else {
            ("run".to_string(), None)
        };
        if let Some(m) = self.config.plugins.manifest(&name) {
            if self.config.enforce_capabilities {
                let caps = &self.config.capabilities;
                let missing = m.capabilities.iter().find(|c| {
                    let module = c.split('.').next().unwrap_or(c);
                    !caps.iter().any(|d| d == *c || d == module)
                });
                if let Some(c) = missing {
                    return ready(Err(HostError::new(
                        ErrorClass::Permission,
                        format!(
                            "plugin `{name}` needs capability `{c}`, which the script does not declare (add it to `require: capabilities:`)"
                        ),
                    )));
                }
            }
            if self.config.deterministic && !m.deterministic {
                return ready(Err(HostError::runtime(format!(
                    "plugin `{name}` is not declared deterministic, and the policy is `deterministic: true`"
                ))));
            }
        }
        if self.config.mock_io {
            let fields: Map = [
                ("plugin", Value::from(name.as_str())),
                ("function", Value::from(function.as_str())),
            ]
            .into_iter()
            .collect();
            cx.event("plugin_mocked", fields);
            return ready(Ok(Value::Null));
        }
        let fut = self.config.plugins.invoke(&name, &function, rest, timeout);
        HostCall::Pending(Box::pin(async move {
            match fut.await {
                Ok(j) => Ok(memory::from_json(&j)),
                Err(e) => {
                    let class = match e.kind {
                        PluginErrorKind::Timeout => ErrorClass::Timeout,
                        PluginErrorKind::NotFound | PluginErrorKind::UnknownFunction => {
                            ErrorClass::Runtime
                        }
                        PluginErrorKind::CircuitOpen | PluginErrorKind::Failed => {
                            ErrorClass::Plugin
                        }
                    };
                    Err(HostError::new(class, e.message))
                }
            }
        }))
    }

    fn record_metric(&mut self, name: &str, value: &Value) -> Result<(), HostError> {
        let x = match value {
            Value::Int(n) => *n as f64,
            Value::Float(x) => *x,
            Value::Duration(ms) => *ms,
            other => {
                return Err(HostError::runtime(format!(
                    "metric `{name}` must be a number or a duration, not {}",
                    other.type_name()
                )))
            }
        };
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.recorded_metrics = true;
        if self.depth > 0 {
            // Measurements are kept whatever becomes of the open transaction.
            self.deferred_metrics.push((name.to_string(), x, at));
            return Ok(());
        }
        let st = self.state()?;
        st.conn
            .execute(
                "INSERT INTO metrics (name, value, at) VALUES (?1, ?2, ?3)",
                rusqlite::params![name, x, at],
            )
            .map_err(|e| HostError::runtime(format!("state database: {e}")))?;
        Ok(())
    }
}

impl Host for RuntimeHost {
    fn resolve(&mut self, name: &str) -> Option<u32> {
        FUNCTIONS.iter().position(|f| *f == name).map(|i| i as u32)
    }

    fn call(&mut self, id: u32, args: Vec<Value>, cx: &mut HostCx<'_>) -> HostCall {
        let Some(name) = FUNCTIONS.get(id as usize) else {
            return HostCall::Ready(Err(HostError::runtime(
                "internal: unknown host function id",
            )));
        };
        // A database round trip is worth more than one instruction.
        cx.charge(10);
        match *name {
            "plugins.invoke" | "run_plugin" => self.invoke_plugin(name, args, cx),
            _ => HostCall::Ready(self.call_sync(name, &args, cx)),
        }
    }

    fn begin(&mut self) -> Result<(), HostError> {
        let depth = self.depth;
        let st = self.state()?;
        // The outermost block takes the write lock at once (BEGIN IMMEDIATE, waiting under
        // the busy timeout for another run to finish its write); inner blocks are savepoints.
        let sql = if depth == 0 {
            "BEGIN IMMEDIATE".to_string()
        } else {
            format!("SAVEPOINT aether_tx_{depth}")
        };
        st.conn
            .execute_batch(&sql)
            .map_err(|e| HostError::runtime(format!("cannot start the transaction: {e}")))?;
        self.depth += 1;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), HostError> {
        let Some(depth) = self.depth.checked_sub(1) else {
            return Ok(());
        };
        self.depth = depth;
        let st = self.state()?;
        let (commit, undo) = if depth == 0 {
            ("COMMIT".to_string(), "ROLLBACK".to_string())
        } else {
            (
                format!("RELEASE aether_tx_{depth}"),
                format!("ROLLBACK TO aether_tx_{depth}; RELEASE aether_tx_{depth}"),
            )
        };
        if let Err(e) = st.conn.execute_batch(&commit) {
            let _ = st.conn.execute_batch(&undo);
            return Err(HostError::new(
                ErrorClass::Runtime,
                format!("the transaction could not commit and was rolled back: {e}"),
            ));
        }
        self.after_transaction();
        Ok(())
    }

    fn rollback(&mut self) {
        let Some(depth) = self.depth.checked_sub(1) else {
            return;
        };
        self.depth = depth;
        if let Some(st) = &self.state {
            let undo = if depth == 0 {
                "ROLLBACK".to_string()
            } else {
                format!("ROLLBACK TO aether_tx_{depth}; RELEASE aether_tx_{depth}")
            };
            let _ = st.conn.execute_batch(&undo);
        }
        self.after_transaction();
    }

    fn trigger(&mut self, task: &str, data: Map) -> Result<Value, HostError> {
        self.try_state();
        self.kernel
            .submit(
                self.state.as_ref(),
                task,
                data,
                "normal",
                std::time::Duration::from_secs(30),
            )
            .map(|id| Value::Int(id as i64))
            .map_err(HostError::runtime)
    }

    fn next_task(&mut self) -> Option<aether_vm::Task> {
        if !self.kernel.pending() {
            return None;
        }
        self.try_state();
        self.kernel.next(self.state.as_ref())
    }

    fn task_finished(&mut self, id: u64, result: Result<Value, String>, give_up: bool) {
        self.try_state();
        self.kernel
            .finished(self.state.as_ref(), id, result, give_up);
        // The host's own measurement for homeostasis: task latency, submit to finish.
        if let Some(ms) = self.kernel.latencies.pop() {
            self.host_metric("task_latency_ms", ms);
        }
    }

    fn tasks_pending(&self) -> bool {
        self.kernel.pending()
    }

    fn metric(&mut self, name: &str, value: &Value) {
        // `metrics(map)` already validated the values; a storage failure must not fail
        // the script's observability call, and is reported after the run.
        if let Err(e) = self.record_metric(name, value) {
            note_lost(&mut self.lost_writes, "a metric", e.message);
        }
    }

    fn observe(&mut self, event: &Event) {
        let (tag, text) = match event.kind.as_str() {
            "log" => (
                event
                    .fields
                    .get("level")
                    .map(Value::display)
                    .unwrap_or_else(|| "info".into()),
                event
                    .fields
                    .get("message")
                    .map(Value::display)
                    .unwrap_or_default(),
            ),
            "narrate" => (
                "narrate".to_string(),
                event
                    .fields
                    .get("text")
                    .map(Value::display)
                    .unwrap_or_default(),
            ),
            "trace" => (
                "trace".to_string(),
                format!(
                    "trace level {}",
                    event
                        .fields
                        .get("level")
                        .map(Value::display)
                        .unwrap_or_default()
                ),
            ),
            _ => return,
        };
        let content: Map = [
            ("level", Value::from(tag.as_str())),
            ("message", Value::from(text.as_str())),
        ]
        .into_iter()
        .collect();
        let tags = vec!["log".to_string(), tag];
        if self.depth > 0 {
            // Written after the open transaction ends: a rollback must not take the run
            // log with it.
            self.deferred_logs.push((Value::from(content), tags));
            return;
        }
        let res = self.state().and_then(|st| {
            memory::store_unique(st, &Value::from(content), &tags, "log").map_err(runtime_error)
        });
        if let Err(e) = res {
            note_lost(&mut self.lost_writes, "a run-log line", e.message);
        }
    }
}
