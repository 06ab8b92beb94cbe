//! The VM host: calls the module functions ([`crate::calls`]) by their host id, maps
//! `transaction:` blocks onto SQLite savepoints, and keeps the run log in memory.

use std::path::PathBuf;

use aether_vm::{
    Args, ErrorClass, Event, Host, HostCall, HostCx, HostError, Map, TxFailure, Value,
};

use crate::calls::HostFn;
use crate::homeostasis::{self, Homeostasis, Setpoints};
use crate::kernel::{Kernel, KernelSettings};
use crate::memory;
use crate::plugins::Plugins;
use crate::security::{NetworkPolicy, Trust};
use crate::state::State;

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

/// The runtime host of one run.
pub struct RuntimeHost {
    pub(crate) config: RuntimeConfig,
    pub(crate) kernel: Kernel,
    /// Built on first use from the setpoints (defaults, or `STATE_DIR/setpoints.json`).
    homeostasis: Option<Homeostasis>,
    /// Opened on first use, so a script that keeps no state leaves no database behind.
    pub(crate) state: Option<State>,
    /// Open `transaction:` savepoints.
    depth: u32,
    /// The error of the host call after which SQLite ended the open block's transaction.
    block_lost_by: Option<String>,
    /// Whether this run recorded any metric (the controller then runs at the end).
    recorded_metrics: bool,
    /// Metrics and run-log lines that arrived while a transaction was open.
    deferred_metrics: Vec<(String, f64, String)>,
    deferred_logs: Vec<(Value, Vec<String>)>,
    /// Writes that failed without failing the script (run records, metrics, run-log lines,
    /// homeostasis corrections, the database itself): one message per kind of write, for
    /// the CLI to print (see [`RuntimeHost::take_lost_writes`]).
    lost_writes: Vec<String>,
    /// The journal of a durable run (`None`: an ordinary run, which journals nothing).
    pub(crate) journal: Option<crate::durable::Journal>,
    /// The idempotency key of the plugin call being started by a durable run's journal.
    pub(crate) idempotency_key: Option<String>,
}

/// Remember a failed write of `what`, once per kind.
fn note_lost(lost: &mut Vec<String>, what: &str, err: impl std::fmt::Display) {
    let prefix = format!("{what} could not be written");
    if !lost.iter().any(|l| l.starts_with(&prefix)) {
        lost.push(format!("{prefix}: {err}"));
    }
}

impl RuntimeHost {
    pub fn new(config: RuntimeConfig) -> RuntimeHost {
        RuntimeHost {
            kernel: Kernel::new(config.kernel.clone()),
            homeostasis: None,
            config,
            state: None,
            depth: 0,
            block_lost_by: None,
            recorded_metrics: false,
            deferred_metrics: Vec::new(),
            deferred_logs: Vec::new(),
            lost_writes: Vec::new(),
            journal: None,
            idempotency_key: None,
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
    pub(crate) fn try_state(&mut self) {
        if let Err(e) = self.state() {
            note_lost(&mut self.lost_writes, "the state database", e.message);
        }
    }

    /// Record a host measurement; a failure is a lost write, not the script's error.
    pub(crate) fn host_metric(&mut self, name: &str, x: f64) {
        if let Err(e) = self.record_metric(name, &Value::Float(x)) {
            note_lost(&mut self.lost_writes, "a metric", e.message);
        }
    }

    /// Make this run durable: effectful calls are journaled, or replayed from `journal`.
    pub fn set_journal(&mut self, journal: crate::durable::Journal) {
        self.journal = Some(journal);
    }

    /// The durable run's journal, once the run is over (outcomes still held are written).
    pub fn take_journal(&mut self) -> Option<crate::durable::Journal> {
        self.flush_journal();
        self.journal.take()
    }

    /// The state database, opened when this run has not opened it yet.
    pub fn state_db(&mut self) -> Result<&State, String> {
        self.state().map_err(|e| e.message)
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
            if let Err(e) = homeostasis::insert_metric(st, &name, x, &at) {
                note_lost(&mut self.lost_writes, "a metric", e);
            }
        }
        for (content, tags) in std::mem::take(&mut self.deferred_logs) {
            if let Err(e) = memory::store_unique(st, &content, &tags, "log") {
                note_lost(&mut self.lost_writes, "a run-log line", e.0);
            }
        }
    }

    /// A host call's error: one that found the state database busy names who holds it
    /// (see [`crate::busy`]).
    pub(crate) fn name_busy(&self, e: HostError) -> HostError {
        if e.message.starts_with(crate::busy::BUSY) && !self.config.throwaway {
            return crate::busy::error(&self.config.state_dir);
        }
        e
    }

    /// The homeostasis controller and the open state database, together.
    pub(crate) fn homeo(&mut self) -> Result<(&mut Homeostasis, &State), HostError> {
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

    pub(crate) fn state(&mut self) -> Result<&State, HostError> {
        if self.state.is_none() {
            let st = if self.config.throwaway {
                State::scratch()
            } else {
                State::open(&self.config.state_dir)
            }
            .map_err(|e| self.name_busy(crate::calls::runtime_error(e)))?;
            self.state = Some(st);
        }
        self.state
            .as_ref()
            .ok_or_else(|| HostError::runtime("the state database is not open"))
    }

    /// `Err` when the open `transaction:` block has lost its SQLite transaction. SQLite
    /// rolls a transaction back by itself on some errors in the middle of a block (a full
    /// disk, an I/O error, a trigger's `RAISE(ROLLBACK)`); the block has failed then, and a
    /// write made after that (by another fiber of the block, say) would commit on its own,
    /// outside the block. Every host call, `trigger` and the block's commit ask first.
    fn block_intact(&self) -> Result<(), HostError> {
        if !self.block_lost() {
            return Ok(());
        }
        let why = match &self.block_lost_by {
            Some(e) => format!(" ({e})"),
            None => String::new(),
        };
        Err(HostError::runtime(format!(
            "the database rolled this `transaction:` block back after an error \
             inside it{why}; nothing the block wrote was kept"
        )))
    }

    /// A block is open and SQLite has ended its transaction.
    fn block_lost(&self) -> bool {
        self.depth > 0
            && self
                .state
                .as_ref()
                .is_some_and(|st| st.conn.is_autocommit())
    }

    /// A host call's work, once the block is known to be intact.
    fn dispatch(
        &mut self,
        decl: &'static aether_check::decl::FnDecl,
        func: &'static HostFn,
        args: Vec<Value>,
        cx: &mut HostCx<'_>,
    ) -> HostCall {
        if decl.effectful && self.journal.is_some() && !matches!(func, HostFn::SelfJournaled(_)) {
            let name = decl.qualified_name();
            let bound = Args::new(decl, &args);
            return self.journaled_call(&name, func, &bound, &args, cx);
        }
        if self.journal.is_some() {
            if let HostFn::Sync(f) = func {
                // A read: its result is journaled too, so a replay sees what this run saw.
                let name = decl.qualified_name();
                let bound = Args::new(decl, &args);
                return self.journaled_read(&name, *f, &bound, &args, cx);
            }
        }
        let args = Args::new(decl, &args);
        match func {
            HostFn::Sync(f) => HostCall::Ready(f(self, &args, cx).map_err(|e| self.name_busy(e))),
            HostFn::Call(f) | HostFn::SelfJournaled(f) => f(self, &args, cx),
        }
    }

    pub(crate) fn record_metric(&mut self, name: &str, value: &Value) -> Result<(), HostError> {
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
        homeostasis::insert_metric(st, name, x, &at)
            .map_err(|e| HostError::runtime(format!("state database: {e}")))
    }
}

impl Drop for RuntimeHost {
    /// A throwaway run's database goes back to this thread, emptied, for its next
    /// throwaway run ([`State::recycle`]); not while unwinding from a panic, when it may be
    /// in any state (it is closed then).
    fn drop(&mut self) {
        if let Some(st) = self.state.take().filter(|_| self.config.throwaway) {
            if !std::thread::panicking() {
                st.recycle();
            }
        }
    }
}

impl Host for RuntimeHost {
    fn call(&mut self, id: u32, args: Vec<Value>, cx: &mut HostCx<'_>) -> HostCall {
        let Some((decl, func)) = crate::calls::FUNCTIONS.get(id as usize) else {
            return HostCall::Ready(Err(HostError::runtime(
                "internal: unknown host function id",
            )));
        };
        // A database round trip is worth more than one instruction.
        cx.charge(10);
        if let Err(e) = self.block_intact() {
            return HostCall::Ready(Err(e));
        }
        let answer = self.dispatch(decl, func, args, cx);
        if let HostCall::Ready(Err(e)) = &answer {
            if self.block_lost() {
                // This call's error made SQLite end the block's transaction.
                self.block_lost_by.get_or_insert_with(|| e.message.clone());
            }
        }
        answer
    }

    fn begin(&mut self) -> Result<(), HostError> {
        self.block_intact()?;
        let depth = self.depth;
        let st = self.state()?;
        // The outermost block takes the write lock at once (BEGIN IMMEDIATE, waiting under
        // the busy timeout for another run to finish its write); inner blocks are savepoints.
        let sql = if depth == 0 {
            "BEGIN IMMEDIATE".to_string()
        } else {
            format!("SAVEPOINT aether_tx_{depth}")
        };
        if let Err(e) = st.conn.execute_batch(&sql) {
            if crate::busy::is_busy(&e) {
                return Err(crate::busy::error(&self.config.state_dir));
            }
            return Err(HostError::runtime(format!(
                "cannot start the transaction: {e}"
            )));
        }
        if depth == 0 && !self.config.throwaway {
            crate::busy::claim(&self.config.state_dir);
        }
        self.depth += 1;
        self.journal_tx_begun();
        Ok(())
    }

    fn commit(&mut self, fiber: &str) -> Result<(), HostError> {
        let Some(depth) = self.depth.checked_sub(1) else {
            return Ok(());
        };
        // Replaying a block that failed here the first time: it fails the same way.
        if let Some(e) = self.replayed_tx_failure(fiber) {
            return Err(e);
        }
        // The block stays open: the VM rolls it back with this error, as below.
        self.block_intact()?;
        let st = self.state()?;
        let commit = if depth == 0 {
            "COMMIT".to_string()
        } else {
            format!("RELEASE aether_tx_{depth}")
        };
        if let Err(e) = st.conn.execute_batch(&commit) {
            // The block stays open: the VM rolls it back (`rollback`) with this error, which
            // keeps its journal entries and, in a durable run, records why.
            return Err(HostError::new(
                ErrorClass::Runtime,
                format!("the transaction could not commit and was rolled back: {e}"),
            ));
        }
        self.depth = depth;
        if depth == 0 && !self.config.throwaway {
            crate::busy::release(&self.config.state_dir);
        }
        self.journal_tx_committed();
        self.after_transaction();
        Ok(())
    }

    fn rollback(&mut self, why: Option<&TxFailure<'_>>) {
        let Some(depth) = self.depth.checked_sub(1) else {
            return;
        };
        self.depth = depth;
        if depth == 0 {
            self.block_lost_by = None;
            if !self.config.throwaway {
                crate::busy::release(&self.config.state_dir);
            }
        }
        let undo = if depth == 0 {
            "ROLLBACK".to_string()
        } else {
            format!("ROLLBACK TO aether_tx_{depth}; RELEASE aether_tx_{depth}")
        };
        // The block's journal entries outlive it, with why it failed (durable/rollback.rs).
        let why = if depth == 0 { why } else { None };
        if let Err(lost) = self.roll_back_keeping_journal(&undo, why) {
            note_lost(
                &mut self.lost_writes,
                "the journal of a rolled-back block",
                lost,
            );
        }
        self.after_transaction();
    }

    fn trigger(&mut self, task: &str, data: Map) -> Result<Value, HostError> {
        self.block_intact()?;
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

    fn settled(&mut self) {
        self.flush_journal();
    }

    fn durable(&self) -> bool {
        self.journal.is_some()
    }

    fn journal_value(
        &mut self,
        fiber: &str,
        name: &str,
        args: &[Value],
        live: Value,
    ) -> Result<Value, HostError> {
        RuntimeHost::journal_value(self, fiber, name, args, live)
    }

    fn journal_end(&mut self, fiber: &str, name: &str, end: &str) {
        RuntimeHost::journal_end(self, fiber, name, end)
    }

    fn idle(&mut self) {
        self.journal_idle();
    }

    fn detach(&mut self, wake: Option<f64>) -> bool {
        self.journal_detach(wake)
    }

    fn metric(&mut self, name: &str, value: &Value) {
        // `metrics(map)` already validated the values; a storage failure must not fail
        // the script's observability call.
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
            memory::store_unique(st, &Value::from(content), &tags, "log")
                .map_err(crate::calls::runtime_error)
        });
        if let Err(e) = res {
            note_lost(&mut self.lost_writes, "a run-log line", e.message);
        }
    }
}
