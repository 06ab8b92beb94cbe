//! The journal of a durable run: every effectful host call's intent and outcome keyed by
//! `(run_id, fiber_path, seq)`, and replay of what is recorded (docs/durable.md).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use rusqlite::params;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use aether_vm::{Args, ErrorClass, HostCall, HostCx, HostError, Value};

use super::{hex, journal, now_secs, now_text, LEASE_SECS};
use crate::calls::HostFn;
use crate::host::RuntimeHost;
use crate::state::{State, StateError};

/// A recorded call: what replay compares and returns.
pub(super) struct Recorded {
    pub(super) name: String,
    pub(super) digest: String,
    pub(super) result: Option<Result<Value, HostError>>,
    /// Its place in the order outcomes were recorded across fibers.
    completion: Option<i64>,
}

/// An outcome of a host future, to be written when the VM hands it over.
type Completion = (String, i64, String);

/// The journal of the durable run this host is running (replaying what is recorded).
pub struct Journal {
    pub run_id: String,
    seqs: HashMap<String, i64>,
    recorded: HashMap<(String, i64), Recorded>,
    completions: Rc<RefCell<Vec<Completion>>>,
    pub(super) next_completion: i64,
    lease_renewed: f64,
    /// Replay order: the completion numbers of recorded entries not replayed yet, and of
    /// the replayed answers held back until the entries before them are replayed.
    outstanding: Rc<RefCell<BTreeSet<i64>>>,
    held: Rc<RefCell<BTreeSet<i64>>>,
    /// The last value each (fiber, name) journaled: its key and value (a step attempt's
    /// end is added to it).
    pub(super) last_value: HashMap<(String, String), (i64, Value)>,
    /// An indeterminate effect stopped the run: its status becomes `needs_attention`.
    pub needs_attention: bool,
    /// The run left the process to wait: its status is `waiting` (set by `detach`).
    pub detached: bool,
    /// Leave the process when every fiber waits at least this many seconds (`None`: never).
    pub detach_after: Option<f64>,
    /// Effects outside the database in flight (a run never leaves while one is).
    pub(super) live: Rc<std::cell::Cell<usize>>,
    /// For each open `transaction:` block (and savepoint in one), innermost last: the last
    /// completion number written before it began (see `rollback.rs`).
    pub(super) tx_marks: Vec<i64>,
    /// Fibers whose recorded block failure (`transaction` entry) the replay raised: their
    /// rollback records no other (see `rollback.rs`).
    pub(super) failures_replayed: HashSet<String>,
}

pub(super) fn encode(r: &Result<Value, HostError>) -> String {
    match r {
        Ok(v) => match crate::calls::to_json(v, "the result") {
            Ok(j) => json!({"ok": j}).to_string(),
            // Journalled as the error it is, never as a `null` result.
            Err(e) => encode(&Err(e)),
        },
        Err(e) => {
            let class = match e.class {
                ErrorClass::Timeout => "timeout",
                ErrorClass::Permission => "permission",
                ErrorClass::Plugin => "plugin",
                _ => "runtime",
            };
            json!({"err": {"class": class, "message": e.message}}).to_string()
        }
    }
}

pub(super) fn decode(text: &str) -> Result<Result<Value, HostError>, String> {
    let j: Json = serde_json::from_str(text).map_err(|e| format!("corrupted result: {e}"))?;
    if let Some(v) = j.get("ok") {
        return Ok(Ok(crate::memory::from_json(v)));
    }
    let err = j.get("err").ok_or("corrupted result: neither ok nor err")?;
    let class = match err.get("class").and_then(Json::as_str) {
        Some("timeout") => ErrorClass::Timeout,
        Some("permission") => ErrorClass::Permission,
        Some("plugin") => ErrorClass::Plugin,
        _ => ErrorClass::Runtime,
    };
    let message = err.get("message").and_then(Json::as_str).unwrap_or("");
    Ok(Err(HostError::new(class, message)))
}

impl Journal {
    /// Load run `id`'s journal for replay.
    pub fn load(st: &State, id: &str) -> Result<Journal, StateError> {
        let mut recorded = HashMap::new();
        let mut next_completion = 0;
        let mut outstanding = BTreeSet::new();
        let entries = journal(st, id)?;
        check_keys(id, &entries)?;
        for e in entries {
            let result = match (e.kind.as_str(), &e.result) {
                ("outcome", Some(text)) => Some(decode(text).map_err(|m| {
                    StateError(format!(
                        "run `{id}`: journal entry {}#{}: {m}",
                        e.fiber, e.seq
                    ))
                })?),
                _ => None,
            };
            next_completion = next_completion.max(e.completion.unwrap_or(0));
            outstanding.extend(e.completion);
            recorded.insert(
                (e.fiber, e.seq),
                Recorded {
                    name: e.name,
                    digest: e.digest,
                    result,
                    completion: e.completion,
                },
            );
        }
        Ok(Journal {
            run_id: id.to_string(),
            seqs: HashMap::new(),
            recorded,
            completions: Rc::default(),
            next_completion,
            lease_renewed: now_secs(),
            needs_attention: false,
            detached: false,
            detach_after: None,
            live: Rc::default(),
            outstanding: Rc::new(RefCell::new(outstanding)),
            held: Rc::default(),
            last_value: HashMap::new(),
            tx_marks: Vec::new(),
            failures_replayed: HashSet::new(),
        })
    }

    pub(super) fn next_key(&mut self, fiber: &str) -> (String, i64) {
        let n = self.seqs.entry(fiber.to_string()).or_insert(0);
        *n += 1;
        (fiber.to_string(), *n)
    }

    /// `fiber`'s next key follows `seq` again when it is ahead of it (its entries after
    /// `seq` were rolled back with a block: see `rollback.rs`).
    pub(super) fn rewind(&mut self, fiber: &str, seq: i64) {
        if let Some(n) = self.seqs.get_mut(fiber) {
            *n = (*n).min(seq);
        }
    }

    /// The key [`Journal::next_key`] will give `fiber`, without taking it.
    pub(super) fn peek_key(&self, fiber: &str) -> (String, i64) {
        (
            fiber.to_string(),
            self.seqs.get(fiber).copied().unwrap_or(0) + 1,
        )
    }

    /// Whether an entry not replayed yet is recorded at `key`.
    pub(super) fn is_recorded(&self, key: &(String, i64)) -> bool {
        self.recorded.contains_key(key)
    }

    /// Whether the entry recorded at `key` is a block's failure (`transaction`).
    pub(super) fn failure_at(&self, key: &(String, i64)) -> bool {
        self.recorded
            .get(key)
            .is_some_and(|r| r.name == super::rollback::TX_FAILURE)
    }

    /// The entry recorded at `key`, if any, taken for replay; `Err` when the script now
    /// calls something else there (`NONDETERMINISM_ERROR`), or when a `transaction:` block
    /// failed there the first time (its recorded error: the block fails the same way).
    pub(super) fn replay(
        &mut self,
        key: &(String, i64),
        name: &str,
        digest: &str,
    ) -> Result<Option<Recorded>, HostError> {
        let Some(rec) = self.recorded.remove(key) else {
            return Ok(None);
        };
        if rec.name == name && rec.digest == digest {
            return Ok(Some(rec));
        }
        if rec.name == super::rollback::TX_FAILURE {
            return Err(self.failure_replayed(&key.0, &rec));
        }
        let what = if rec.name == name {
            format!("`{name}` with different arguments")
        } else {
            format!("`{name}`")
        };
        Err(HostError::new(
            ErrorClass::Nondeterminism,
            format!(
                "the replay diverged from the journal of run `{}`: entry {}#{} recorded `{}`, the script now calls {what}",
                self.run_id, key.0, key.1, rec.name
            ),
        ))
    }

    /// The recorded failure `rec` of a block of `fiber` is raised again now.
    pub(super) fn failure_replayed(&mut self, fiber: &str, rec: &Recorded) -> HostError {
        self.consumed(rec);
        self.failures_replayed.insert(fiber.to_string());
        super::rollback::recorded_failure(rec.result.as_ref())
    }

    /// Take the block failure recorded at `fiber`'s next key, if that is what is there.
    pub(super) fn take_failure(&mut self, fiber: &str) -> Option<HostError> {
        let key = self.peek_key(fiber);
        if !self.failure_at(&key) {
            return None;
        }
        let key = self.next_key(fiber);
        let rec = self.recorded.remove(&key)?;
        Some(self.failure_replayed(fiber, &rec))
    }

    /// A replayed entry is consumed now (its answer goes to its fiber).
    pub(super) fn consumed(&self, rec: &Recorded) {
        if let Some(c) = rec.completion {
            self.outstanding.borrow_mut().remove(&c);
        }
    }

    /// The replayed answer `r` of `rec`: at once when every entry recorded before it has
    /// been replayed, else held back (a pending call) until they are, so fibers wake in the
    /// recorded completion order and `parallel:` branches interleave as they did.
    pub(super) fn in_order(&self, rec: &Recorded, r: Result<Value, HostError>) -> HostCall {
        let Some(c) = rec.completion else {
            return HostCall::Ready(r);
        };
        let first = self.outstanding.borrow().first().copied();
        if first.is_none_or(|f| f >= c) {
            self.consumed(rec);
            return HostCall::Ready(r);
        }
        self.held.borrow_mut().insert(c);
        let outstanding = Rc::clone(&self.outstanding);
        let held = Rc::clone(&self.held);
        let mut answer = Some(r);
        HostCall::Pending(Box::pin(std::future::poll_fn(move |_| {
            let first = outstanding.borrow().first().copied();
            if first.is_some_and(|f| f < c) {
                return std::task::Poll::Pending;
            }
            outstanding.borrow_mut().remove(&c);
            held.borrow_mut().remove(&c);
            std::task::Poll::Ready(answer.take().unwrap_or(Ok(Value::Null)))
        })))
    }

    /// Every fiber waits: the entries recorded before the first held answer will not be
    /// replayed (their fibers are gone), so that answer goes next.
    /// Whether answers are held back (the run is still replaying).
    pub(super) fn holding(&self) -> bool {
        !self.held.borrow().is_empty()
    }

    pub(crate) fn idle(&self) {
        if let Some(h) = self.held.borrow().first().copied() {
            self.outstanding.borrow_mut().retain(|c| *c >= h);
        }
    }

    /// Where a host future puts its outcome for [`Journal::flush`] to number and write.
    pub(super) fn completion_sink(&self) -> Rc<RefCell<Vec<Completion>>> {
        Rc::clone(&self.completions)
    }

    /// An outcome already in the journal gets its completion number now.
    pub(super) fn settled_now(&mut self, st: &State, c: Completion) -> Result<(), HostError> {
        self.completions.borrow_mut().push(c);
        self.flush(st)
    }

    /// Write the outcomes of host futures that have completed.
    pub(super) fn flush(&mut self, st: &State) -> Result<(), HostError> {
        let done: Vec<Completion> = std::mem::take(&mut *self.completions.borrow_mut());
        for (fiber, seq, result) in done {
            self.next_completion += 1;
            st.conn
                .prepare_cached(
                    "UPDATE journal SET kind = 'outcome', result = ?4, completion = ?5, \
                     ended_at = ?6 WHERE run_id = ?1 AND fiber = ?2 AND seq = ?3",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        self.run_id,
                        fiber,
                        seq,
                        result,
                        self.next_completion,
                        now_text()
                    ])
                })
                .map_err(|e| HostError::runtime(format!("journal: {e}")))?;
        }
        // Renew the lease now and then, while the run makes progress.
        let now = now_secs();
        if now - self.lease_renewed > LEASE_SECS / 3.0 {
            self.lease_renewed = now;
            let _ = st.conn.execute(
                "UPDATE durable_runs SET lease_until = ?2 WHERE id = ?1",
                params![self.run_id, now + LEASE_SECS],
            );
        }
        Ok(())
    }
}

/// Each fiber's entries must be numbered 1, 2, 3, ...: a gap means a row was lost, and
/// replaying past it would run a recorded effect again.
fn check_keys(id: &str, entries: &[super::Entry]) -> Result<(), StateError> {
    let mut seqs: HashMap<&str, Vec<i64>> = HashMap::new();
    for e in entries {
        seqs.entry(&e.fiber).or_default().push(e.seq);
    }
    for (fiber, mut s) in seqs {
        s.sort_unstable();
        if let Some((i, seq)) = s.iter().enumerate().find(|(i, seq)| **seq != *i as i64 + 1) {
            return Err(StateError(format!(
                "run `{id}`: the journal is corrupted: fiber {fiber} has entry {fiber}#{seq} where {fiber}#{} belongs (a row is missing); nothing was run",
                i + 1
            )));
        }
    }
    Ok(())
}

pub(super) fn digest_of(name: &str, args: &[Value]) -> String {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    for a in args {
        h.update([0u8]);
        h.update(a.to_json().as_bytes());
    }
    hex(&h.finalize()[..16])
}

/// Where a journaled call stands in its fiber's journal ([`RuntimeHost::entry_at`]).
pub(super) struct EntryAt {
    pub(super) key: (String, i64),
    pub(super) digest: String,
    pub(super) recorded: Option<Recorded>,
    pub(super) in_block: bool,
}

/// The answer of a journaled call in a run that keeps no journal (a bug of the caller).
pub(super) fn no_journal() -> HostCall {
    HostCall::Ready(Err(HostError::runtime("internal: no journal")))
}

pub(super) fn journal_error(e: impl std::fmt::Display) -> HostError {
    HostError::runtime(format!("journal: {e}"))
}

impl RuntimeHost {
    /// Run `f` with this run's journal taken out of the host (so `f` may borrow both), and
    /// put it back; `None` when the run keeps no journal.
    pub(crate) fn with_journal<R>(
        &mut self,
        f: impl FnOnce(&mut RuntimeHost, &mut Journal) -> R,
    ) -> Option<R> {
        let mut j = self.journal.take()?;
        let r = f(self, &mut j);
        self.journal = Some(j);
        Some(r)
    }

    /// Write the outcomes of completed host futures (after the VM delivered them).
    pub(crate) fn flush_journal(&mut self) {
        self.with_journal(|host, j| {
            if let Ok(st) = host.state() {
                let _ = j.flush(st);
            }
        });
    }

    /// An effectful call of a durable run: replayed from the journal when recorded there,
    /// else journaled around the live call (docs/durable.md, "Guarantees").
    pub(crate) fn journaled_call(
        &mut self,
        name: &str,
        func: &HostFn,
        decl_args: &Args<'_>,
        raw: &[Value],
        cx: &mut HostCx<'_>,
    ) -> HostCall {
        self.with_journal(|host, j| host.journaled_with(j, name, func, decl_args, raw, cx))
            .unwrap_or_else(no_journal)
    }

    /// The next entry of the calling fiber for a journaled call of `name` with `raw`
    /// arguments, once the outcomes of completed futures are written: its key, the
    /// arguments' digest, the entry recorded there (taken for replay) and whether a
    /// `transaction:` block is open.
    pub(super) fn entry_at(
        &mut self,
        j: &mut Journal,
        name: &str,
        raw: &[Value],
        cx: &HostCx<'_>,
    ) -> Result<EntryAt, HostError> {
        let st = self.state()?;
        j.flush(st)?;
        let in_block = !st.conn.is_autocommit();
        let key = j.next_key(cx.fiber());
        let digest = digest_of(name, raw);
        let recorded = j.replay(&key, name, &digest)?;
        Ok(EntryAt {
            key,
            digest,
            recorded,
            in_block,
        })
    }

    fn journaled_with(
        &mut self,
        j: &mut Journal,
        name: &str,
        func: &HostFn,
        args: &Args<'_>,
        raw: &[Value],
        cx: &mut HostCx<'_>,
    ) -> HostCall {
        let ready = HostCall::Ready;
        let at = match self.entry_at(j, name, raw, cx) {
            Ok(at) => at,
            Err(e) => return ready(Err(e)),
        };
        let digest = at.digest;
        let (fiber, seq) = at.key;
        let mut retry = false;
        if let Some(rec) = at.recorded {
            match rec.result.clone() {
                // Inside `transaction:` the answer cannot wait (the block holds the write).
                Some(r) if !at.in_block => return j.in_order(&rec, r),
                Some(r) => {
                    j.consumed(&rec);
                    return ready(r);
                }
                // An idempotent plugin: run again with the same key (its intent is durable).
                None if crate::calls::plugins::idempotent_call(self, name, raw) => retry = true,
                None => {
                    j.needs_attention = true;
                    return ready(Err(HostError::new(
                        ErrorClass::Indeterminate,
                        format!(
                            "IndeterminateError: `{name}` (journal entry {fiber}#{seq} of run `{}`) started before the run was interrupted and its outcome is unknown; it is not run again (settle it with `aether runs resolve {} {fiber}:{seq} --succeeded JSON | --failed MSG | --retry`)",
                            j.run_id, j.run_id
                        ),
                    )));
                }
            }
        }
        let st = match self.state() {
            Ok(st) => st,
            Err(e) => return ready(Err(e)),
        };
        let started = now_text();
        match func {
            // In-process writes to the state database: the entry commits in the same
            // transaction as the write (exactly once).
            HostFn::Sync(f) => {
                let (begin, commit, undo) = if st.conn.is_autocommit() {
                    ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
                } else {
                    (
                        "SAVEPOINT aether_journal",
                        "RELEASE aether_journal",
                        "ROLLBACK TO aether_journal; RELEASE aether_journal",
                    )
                };
                if let Err(e) = st.conn.execute_batch(begin) {
                    return ready(Err(journal_error(e)));
                }
                let r = f(self, args, cx);
                let Ok(st) = self.state() else {
                    return ready(Err(HostError::runtime("the state database is not open")));
                };
                j.next_completion += 1;
                let wrote = st
                    .conn
                    .prepare_cached(
                        "INSERT INTO journal (run_id, fiber, seq, completion, name, digest, kind, \
                         result, started_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'outcome', ?7, ?8, ?9)",
                    )
                    .and_then(|mut stmt| stmt.execute(params![j.run_id, fiber, seq, j.next_completion, name, digest, encode(&r), started, now_text()]))
                    .and_then(|_| st.conn.execute_batch(commit));
                if let Err(e) = wrote {
                    let _ = st.conn.execute_batch(undo);
                    return ready(Err(journal_error(e)));
                }
                ready(r)
            }
            // Effects outside the database: the intent is durable before the call runs.
            HostFn::Call(f) | HostFn::SelfJournaled(f) => {
                if !st.conn.is_autocommit() {
                    return ready(Err(HostError::runtime(format!(
                        "in a durable run, `{name}` cannot run inside `transaction:`: its journal entry must commit before the effect starts"
                    ))));
                }
                // The intent is on stable storage (a synced commit) before the effect
                // starts; an intent being retried is durable already.
                let wrote = if retry {
                    Ok(0)
                } else {
                    st.synced(|conn| {
                        conn.prepare_cached(
                            "INSERT INTO journal (run_id, fiber, seq, name, digest, kind, \
                             started_at) VALUES (?1, ?2, ?3, ?4, ?5, 'intent', ?6)",
                        )?
                        .execute(params![j.run_id, fiber, seq, name, digest, started])
                    })
                };
                if let Err(e) = wrote {
                    return ready(Err(journal_error(e)));
                }
                self.idempotency_key = Some(format!("{}:{fiber}:{seq}", j.run_id));
                let call = f(self, args, cx);
                self.idempotency_key = None;
                match call {
                    HostCall::Ready(r) => {
                        j.completions.borrow_mut().push((fiber, seq, encode(&r)));
                        if let Ok(st) = self.state() {
                            if let Err(e) = j.flush(st) {
                                return ready(Err(e));
                            }
                        }
                        ready(r)
                    }
                    HostCall::Pending(fut) => {
                        let done = Rc::clone(&j.completions);
                        let live = Rc::clone(&j.live);
                        live.set(live.get() + 1);
                        HostCall::Pending(Box::pin(async move {
                            let r = fut.await;
                            live.set(live.get().saturating_sub(1));
                            done.borrow_mut().push((fiber, seq, encode(&r)));
                            r
                        }))
                    }
                }
            }
        }
    }
}
