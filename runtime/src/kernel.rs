//! The `kernel` module: three bounded priority queues of tasks (actions called with keyword
//! arguments), retries, deadlines, a dead-letter queue persisted in the state database, and
//! a service registry with heartbeats and stale detection.
//!
//! The VM runs the tasks: it asks [`Kernel::next`] for the next due task whenever one of its
//! workers is free and reports back through [`Kernel::finished`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rusqlite::params;

use aether_vm::{Map, Task, Value};

use crate::state::{State, StateError};

/// Attempts a task gets before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 3;

/// The priorities, most urgent first.
pub const PRIORITIES: [&str; 3] = ["high", "normal", "background"];

/// Queue sizes and registry windows (docs/contract/LANGUAGE.md section 10).
#[derive(Clone, Debug, PartialEq)]
pub struct KernelSettings {
    /// Capacities of the high, normal and background queues.
    pub capacity: [usize; 3],
    /// Keep dead letters in the state database (`AETHERRA_KERNEL_DLQ`, default on).
    pub persist_dlq: bool,
    pub heartbeat: Duration,
    pub stale: Duration,
}

impl Default for KernelSettings {
    fn default() -> KernelSettings {
        KernelSettings {
            capacity: [128, 512, 512],
            persist_dlq: true,
            heartbeat: Duration::from_secs(60),
            stale: Duration::from_secs(180),
        }
    }
}

impl KernelSettings {
    /// From `AETHERRA_KERNEL_QSIZE_HIGH|NORMAL|BACKGROUND`, `AETHERRA_KERNEL_DLQ`,
    /// `AETHERRA_REGISTRY_HEARTBEAT_SEC` and `AETHERRA_REGISTRY_STALE_SEC` (default three
    /// heartbeats). A value that is not a number is an error naming the variable.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<KernelSettings, String> {
        let mut s = KernelSettings::default();
        let num = |name: &str| -> Result<Option<f64>, String> {
            match get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            {
                None => Ok(None),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .map(Some)
                    .ok_or_else(|| {
                        format!("{name} is `{v}`: expected a number that is not negative")
                    }),
            }
        };
        for (i, p) in ["HIGH", "NORMAL", "BACKGROUND"].iter().enumerate() {
            if let Some(n) = num(&format!("AETHERRA_KERNEL_QSIZE_{p}"))? {
                s.capacity[i] = n as usize;
            }
        }
        if let Some(v) = get("AETHERRA_KERNEL_DLQ") {
            s.persist_dlq = !matches!(v.trim(), "0" | "false" | "no" | "off");
        }
        if let Some(h) = num("AETHERRA_REGISTRY_HEARTBEAT_SEC")? {
            s.heartbeat = aether_vm::wait_of_ms(h * 1000.0);
            s.stale = s.heartbeat.saturating_mul(3).min(aether_vm::MAX_WAIT);
        }
        if let Some(st) = num("AETHERRA_REGISTRY_STALE_SEC")? {
            s.stale = aether_vm::wait_of_ms(st * 1000.0);
        }
        Ok(s)
    }
}

#[derive(Clone, Debug)]
struct Queued {
    id: u64,
    action: String,
    data: Map,
    priority: usize,
    /// When the task must have finished (it is dead-lettered if it has not started by then,
    /// and stopped if it is still running).
    deadline: Instant,
    attempts: u32,
    submitted: Instant,
}

/// A dead letter.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub task: String,
    pub reason: String,
    pub attempts: u32,
    pub at: String,
}

/// A dead letter not yet in the database.
#[derive(Clone, Debug)]
struct Unwritten {
    letter: DeadLetter,
    data: String,
    priority: String,
}

/// The kernel of one run.
pub struct Kernel {
    settings: KernelSettings,
    queues: [VecDeque<Queued>; 3],
    inflight: HashMap<u64, Queued>,
    next_id: u64,
    processed: u64,
    failed: u64,
    /// Dead letters of this run (also persisted when `persist_dlq`).
    dead: Vec<DeadLetter>,
    /// Latency of each finished task, ms (submit to finish), for homeostasis.
    pub(crate) latencies: Vec<f64>,
    /// The deepest any queue got in this run.
    max_depth: usize,
    /// Dead letters waiting for the script's open transaction to end.
    unwritten: Vec<Unwritten>,
    /// Dead letters the database refused, as messages for the run's warnings.
    lost_writes: Vec<String>,
    /// Whether anything was submitted in this run.
    used: bool,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Kernel {
    pub fn new(settings: KernelSettings) -> Kernel {
        Kernel {
            settings,
            queues: Default::default(),
            inflight: HashMap::new(),
            next_id: 1,
            processed: 0,
            failed: 0,
            dead: Vec::new(),
            latencies: Vec::new(),
            max_depth: 0,
            unwritten: Vec::new(),
            lost_writes: Vec::new(),
            used: false,
        }
    }

    /// Queue `action(**data)`; a full queue dead-letters it at once. Returns the task id.
    pub fn submit(
        &mut self,
        state: Option<&State>,
        action: &str,
        data: Map,
        priority: &str,
        deadline: Duration,
    ) -> Result<u64, String> {
        let p = PRIORITIES
            .iter()
            .position(|x| *x == priority)
            .ok_or_else(|| {
                format!("priority `{priority}` is not one of high, normal, background")
            })?;
        let id = self.next_id;
        self.next_id += 1;
        self.used = true;
        let now = Instant::now();
        let q = Queued {
            id,
            action: action.to_string(),
            data,
            priority: p,
            deadline: aether_vm::instant_after(now, deadline),
            attempts: 0,
            submitted: now,
        };
        if self.queues[p].len() >= self.settings.capacity[p] {
            let cap = self.settings.capacity[p];
            self.dead_letter(state, &q, &format!("queue full ({priority} holds {cap})"));
        } else {
            self.queues[p].push_back(q);
            self.max_depth = self.max_depth.max(self.queues[p].len());
        }
        Ok(id)
    }

    /// The next task to start, most urgent queue first; tasks whose deadline passed while
    /// they waited are dead-lettered on the way.
    pub fn next(&mut self, state: Option<&State>) -> Option<Task> {
        loop {
            let q = self.queues.iter_mut().find_map(VecDeque::pop_front)?;
            if Instant::now() >= q.deadline {
                self.dead_letter(state, &q, "deadline missed before the task started");
                continue;
            }
            let mut q = q;
            q.attempts += 1;
            let task = Task {
                id: q.id,
                action: q.action.clone(),
                data: q.data.clone(),
                deadline: Some(q.deadline),
            };
            self.inflight.insert(q.id, q);
            return Some(task);
        }
    }

    /// A task ended: done, retried (back of its queue) or dead-lettered.
    pub fn finished(
        &mut self,
        state: Option<&State>,
        id: u64,
        result: Result<Value, String>,
        give_up: bool,
    ) {
        let Some(q) = self.inflight.remove(&id) else {
            return;
        };
        self.latencies
            .push(q.submitted.elapsed().as_secs_f64() * 1000.0);
        match result {
            Ok(_) => self.processed += 1,
            Err(e) if give_up => {
                self.failed += 1;
                self.dead_letter(state, &q, &e);
            }
            Err(e) if q.attempts < MAX_ATTEMPTS && Instant::now() < q.deadline => {
                self.queues[q.priority].push_back(Queued { ..q });
                let _ = e;
            }
            Err(e) => {
                self.failed += 1;
                self.dead_letter(state, &q, &e);
            }
        }
    }

    /// Whether anything was submitted in this run.
    pub fn used(&self) -> bool {
        self.used
    }

    /// The deepest any queue got in this run.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Dead letters in all (persisted ones included).
    pub fn dlq_total(&self, state: Option<&State>) -> i64 {
        self.dlq_count(state)
    }

    /// Whether tasks are queued or running.
    pub fn has_work(&self) -> bool {
        self.pending() || !self.inflight.is_empty()
    }

    /// Whether tasks are waiting to start.
    pub fn pending(&self) -> bool {
        self.queues.iter().any(|q| !q.is_empty())
    }

    /// The run is over: whatever is still queued or running is dead-lettered, never dropped.
    pub fn shutdown(&mut self, state: Option<&State>) {
        let left: Vec<Queued> = self
            .queues
            .iter_mut()
            .flat_map(|q| q.drain(..))
            .chain(self.inflight.drain().map(|(_, q)| q))
            .collect();
        for q in left {
            self.dead_letter(state, &q, "the run ended before the task finished");
        }
    }

    fn dead_letter(&mut self, state: Option<&State>, q: &Queued, reason: &str) {
        let at = now_text();
        if self.settings.persist_dlq {
            self.unwritten.push(Unwritten {
                letter: DeadLetter {
                    task: q.action.clone(),
                    reason: reason.to_string(),
                    attempts: q.attempts,
                    at: at.clone(),
                },
                data: Value::from(q.data.clone()).to_json(),
                priority: PRIORITIES[q.priority].to_string(),
            });
            self.flush_dead_letters(state);
        }
        self.dead.push(DeadLetter {
            task: q.action.clone(),
            reason: reason.to_string(),
            attempts: q.attempts,
            at,
        });
    }

    /// Persist the dead letters not written yet. While a script's `transaction:` is open
    /// they wait: writing them inside it would roll them back with it.
    pub fn flush_dead_letters(&mut self, state: Option<&State>) {
        let Some(st) = state else {
            return;
        };
        if !st.conn.is_autocommit() {
            return;
        }
        for u in std::mem::take(&mut self.unwritten) {
            let d = &u.letter;
            if let Err(e) = st.conn.execute(
                "INSERT INTO dead_letters (task, data, priority, reason, attempts, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![d.task, u.data, u.priority, d.reason, d.attempts, d.at],
            ) {
                self.lost_writes
                    .push(format!("the dead letter of task `{}`: {e}", d.task));
            }
        }
    }

    /// The dead letters that could not be written since the last call.
    pub fn take_lost_writes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lost_writes)
    }

    /// `kernel.status()`.
    pub fn status(&self, state: Option<&State>) -> Value {
        let queues: Map = PRIORITIES
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let q: Map = [
                    ("depth", Value::Int(self.queues[i].len() as i64)),
                    ("capacity", Value::Int(self.settings.capacity[i] as i64)),
                ]
                .into_iter()
                .collect();
                (*p, Value::from(q))
            })
            .collect();
        let dlq = self.dlq_count(state);
        let m: Map = [
            ("running", Value::Bool(true)),
            ("queues", Value::from(queues)),
            ("inflight", Value::Int(self.inflight.len() as i64)),
            ("processed", Value::Int(self.processed as i64)),
            ("failed", Value::Int(self.failed as i64)),
            ("dlq", Value::Int(dlq)),
        ]
        .into_iter()
        .collect();
        Value::from(m)
    }

    fn dlq_count(&self, state: Option<&State>) -> i64 {
        match state {
            Some(st) if self.settings.persist_dlq => {
                st.conn
                    .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))
                    .unwrap_or(self.dead.len() as i64)
                    + self.unwritten.len() as i64
            }
            _ => self.dead.len() as i64,
        }
    }

    /// `kernel.dlq(limit)`: the newest dead letters first (persisted ones included).
    pub fn dlq(&self, state: Option<&State>, limit: i64) -> Result<Vec<DeadLetter>, StateError> {
        let limit = limit.clamp(0, 10_000);
        match state {
            Some(st) if self.settings.persist_dlq => {
                let mut stmt = st.conn.prepare(
                    "SELECT task, reason, attempts, at FROM dead_letters ORDER BY id DESC LIMIT ?1",
                )?;
                let rows = stmt.query_map(params![limit], |r| {
                    Ok(DeadLetter {
                        task: r.get(0)?,
                        reason: r.get(1)?,
                        attempts: r.get(2)?,
                        at: r.get(3)?,
                    })
                })?;
                // Those waiting for a transaction to end are the newest.
                let mut out: Vec<DeadLetter> = self
                    .unwritten
                    .iter()
                    .rev()
                    .map(|u| u.letter.clone())
                    .collect();
                out.extend(rows.collect::<Result<Vec<_>, _>>()?);
                out.truncate(limit as usize);
                Ok(out)
            }
            _ => Ok(self
                .dead
                .iter()
                .rev()
                .take(limit as usize)
                .cloned()
                .collect()),
        }
    }

    /// `kernel.register(name)` and `kernel.heartbeat(name)`: the service is alive now.
    pub fn heartbeat(&self, state: &State, name: &str, register: bool) -> Result<(), StateError> {
        let now = now_text();
        if register {
            state.conn.execute(
                "INSERT INTO services (name, registered_at, last_heartbeat) VALUES (?1, ?2, ?2) \
                 ON CONFLICT(name) DO UPDATE SET last_heartbeat = excluded.last_heartbeat",
                params![name, now],
            )?;
            return Ok(());
        }
        let n = state.conn.execute(
            "UPDATE services SET last_heartbeat = ?2 WHERE name = ?1",
            params![name, now],
        )?;
        if n == 0 {
            return Err(StateError(format!(
                "service `{name}` is not registered: call kernel.register(\"{name}\") first"
            )));
        }
        Ok(())
    }

    /// `kernel.services()`: `[{name, status, last_heartbeat, stale}]`.
    pub fn services(&self, state: &State) -> Result<Value, StateError> {
        let mut stmt = state
            .conn
            .prepare("SELECT name, last_heartbeat FROM services ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let now = chrono::Utc::now();
        let mut out = Vec::new();
        for row in rows {
            let (name, last) = row?;
            let age = chrono::DateTime::parse_from_rfc3339(&last)
                .map(|t| (now - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)
                .unwrap_or(f64::INFINITY);
            let stale = age > self.settings.stale.as_secs_f64();
            let m: Map = [
                ("name", Value::from(name.as_str())),
                ("status", Value::from(if stale { "stale" } else { "up" })),
                ("last_heartbeat", Value::from(last.as_str())),
                ("stale", Value::Bool(stale)),
            ]
            .into_iter()
            .collect();
            out.push(Value::from(m));
        }
        Ok(Value::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: i64) -> Map {
        [("x", Value::Int(n))].into_iter().collect()
    }

    #[test]
    fn high_priority_goes_first_and_a_full_queue_dead_letters() {
        let mut k = Kernel::new(KernelSettings {
            capacity: [1, 2, 2],
            ..KernelSettings::default()
        });
        let st = State::in_memory().expect("db");
        k.submit(Some(&st), "a", data(1), "normal", Duration::from_secs(30))
            .expect("a");
        k.submit(Some(&st), "b", data(2), "high", Duration::from_secs(30))
            .expect("b");
        k.submit(Some(&st), "c", data(3), "high", Duration::from_secs(30))
            .expect("c");
        assert_eq!(k.next(Some(&st)).expect("task").action, "b");
        assert_eq!(k.next(Some(&st)).expect("task").action, "a");
        assert!(k.next(Some(&st)).is_none());
        let dlq = k.dlq(Some(&st), 10).expect("dlq");
        assert_eq!(dlq.len(), 1);
        assert_eq!(dlq[0].task, "c");
        assert!(dlq[0].reason.starts_with("queue full"), "{}", dlq[0].reason);
        assert!(k
            .submit(None, "d", Map::new(), "urgent", Duration::from_secs(1))
            .is_err());
    }

    #[test]
    fn failures_retry_then_dead_letter() {
        let mut k = Kernel::new(KernelSettings::default());
        k.submit(None, "w", Map::new(), "normal", Duration::from_secs(30))
            .expect("submit");
        for attempt in 1..=MAX_ATTEMPTS {
            let t = k.next(None).expect("a retry is queued");
            k.finished(None, t.id, Err(format!("boom {attempt}")), false);
        }
        assert!(k.next(None).is_none());
        let dlq = k.dlq(None, 10).expect("dlq");
        assert_eq!(dlq[0].attempts, MAX_ATTEMPTS);
        assert_eq!(dlq[0].reason, "boom 3");
    }

    #[test]
    fn a_missed_deadline_dead_letters_before_starting() {
        let mut k = Kernel::new(KernelSettings::default());
        k.submit(None, "late", Map::new(), "normal", Duration::ZERO)
            .expect("submit");
        assert!(k.next(None).is_none());
        assert_eq!(
            k.dlq(None, 1).expect("dlq")[0].reason,
            "deadline missed before the task started"
        );
    }

    #[test]
    fn settings_from_variables() {
        let s = KernelSettings::from_vars(|k| match k {
            "AETHERRA_KERNEL_QSIZE_HIGH" => Some("4".into()),
            "AETHERRA_REGISTRY_HEARTBEAT_SEC" => Some("10".into()),
            "AETHERRA_KERNEL_DLQ" => Some("0".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(s.capacity, [4, 512, 512]);
        assert_eq!(s.stale, Duration::from_secs(30));
        assert!(!s.persist_dlq);
        let bad = KernelSettings::from_vars(|k| {
            (k == "AETHERRA_KERNEL_QSIZE_NORMAL").then(|| "lots".into())
        });
        assert!(bad.unwrap_err().contains("AETHERRA_KERNEL_QSIZE_NORMAL"));
    }

    #[test]
    fn services_go_stale() {
        let st = State::in_memory().expect("db");
        let k = Kernel::new(KernelSettings {
            stale: Duration::from_secs(60),
            ..KernelSettings::default()
        });
        k.heartbeat(&st, "indexer", true).expect("register");
        assert!(k.heartbeat(&st, "ghost", false).is_err());
        st.conn
            .execute(
                "INSERT INTO services VALUES ('old', '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z')",
                [],
            )
            .expect("old row");
        let v = k.services(&st).expect("services");
        let text = v.repr();
        assert!(
            text.contains("\"name\": \"indexer\", \"status\": \"up\""),
            "{text}"
        );
        assert!(
            text.contains("\"name\": \"old\", \"status\": \"stale\""),
            "{text}"
        );
    }
}
