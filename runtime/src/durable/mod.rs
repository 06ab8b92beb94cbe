//! Durable runs: the `durable_runs` row (status, owner, lease) and the journal of effectful
//! host calls that lets a run be replayed after its process died (docs/durable.md). This file
//! holds the runs table (ids, claim, owner and lease); `journal` holds the journal.

use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use crate::state::{State, StateError};

/// Every status a run can have.
pub const STATUSES: &[&str] = &[
    "pending",
    "running",
    "waiting",
    "needs_attention",
    "succeeded",
    "failed",
    "cancelled",
];

/// Statuses a run is finished in.
pub const FINISHED: &[&str] = &["succeeded", "failed", "cancelled"];

/// How long a lease lasts; an owner renews it while it journals.
const LEASE_SECS: f64 = 60.0;

/// One run's row.
#[derive(Clone, Debug)]
pub struct RunRow {
    pub id: String,
    pub file: String,
    pub script_sha256: String,
    pub args: String,
    pub status: String,
    pub owner_host: Option<String>,
    pub owner_pid: Option<i64>,
    pub lease_until: Option<f64>,
    pub result: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The signals the run's fibers wait for (`wait_signal`), each name once, in the order
    /// of their waits: recorded while it runs, kept while it is `waiting`.
    pub waiting_for: Vec<String>,
    /// A `waiting` run: when its timer is due (unix seconds), if it waits on one.
    pub wake_at: Option<f64>,
}

/// One journal entry, as `runs show --journal` prints it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub fiber: String,
    pub seq: i64,
    pub completion: Option<i64>,
    pub name: String,
    pub digest: String,
    pub kind: String,
    pub result: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Unix seconds as the timestamps of `runs show` print them (RFC 3339, UTC).
pub fn unix_text(secs: f64) -> String {
    chrono::DateTime::from_timestamp_millis((secs * 1000.0) as i64).map_or_else(
        || format!("{secs}"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Whether `id` is a well-formed run id: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A fresh run id: `r-` and 16 hex digits hashed from the OS's random source, the clock,
/// the pid and a counter.
pub fn fresh_id() -> String {
    let mut h = Sha256::new();
    h.update(now_secs().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    h.update(n.to_le_bytes());
    let mut noise = [0u8; 16];
    let _ = getrandom::fill(&mut noise);
    h.update(noise);
    let d = h.finalize();
    format!("r-{}", hex(&d[..8]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a script's text.
pub fn script_digest(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// This machine's name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The start time of process `pid` (field 22 of /proc/PID/stat), which tells a live owner
/// from a later process that reused its pid.
fn process_start(pid: i64) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// Whether the owner recorded on a row is a live process.
fn owner_alive(row_host: &str, pid: i64, start: Option<&str>, lease_until: f64) -> bool {
    if row_host != host_name() {
        // Another machine's process cannot be looked at: trust its lease.
        return now_secs() < lease_until;
    }
    match process_start(pid) {
        Some(s) => start.is_none_or(|want| want == s),
        None => false,
    }
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        file: r.get(1)?,
        script_sha256: r.get(2)?,
        args: r.get(3)?,
        status: r.get(4)?,
        owner_host: r.get(5)?,
        owner_pid: r.get(6)?,
        lease_until: r.get(7)?,
        result: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        waiting_for: Vec::new(),
        wake_at: r.get(11)?,
    })
}

const ROW_COLUMNS: &str = "id, file, script_sha256, args, status, owner_host, owner_pid, \
     lease_until, result, created_at, updated_at, wake_at";

/// Fill in `waiting_for` of `rows` from the `run_waits` table.
fn with_waits(st: &State, mut rows: Vec<RunRow>) -> Result<Vec<RunRow>, StateError> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let one = rows.len() == 1;
    let mut stmt = st.conn.prepare_cached(
        "SELECT run_id, name FROM run_waits WHERE ?1 IS NULL OR run_id = ?1 \
         ORDER BY run_id, fiber, seq",
    )?;
    let only = one.then(|| rows[0].id.clone());
    let mut waits: std::collections::HashMap<String, Vec<String>> = Default::default();
    for w in stmt.query_map([only], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))? {
        let (id, name) = w?;
        let names = waits.entry(id).or_default();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for row in &mut rows {
        if let Some(names) = waits.remove(&row.id) {
            row.waiting_for = names;
        }
    }
    Ok(rows)
}

/// The row of run `id`.
pub fn find(st: &State, id: &str) -> Result<Option<RunRow>, StateError> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM durable_runs WHERE id = ?1");
    let row = st.conn.query_row(&sql, [id], read_row).optional()?;
    Ok(with_waits(st, row.into_iter().collect())?.pop())
}

/// Runs, newest first, optionally of one status.
pub fn list(st: &State, status: Option<&str>) -> Result<Vec<RunRow>, StateError> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM durable_runs WHERE ?1 IS NULL OR status = ?1 \
         ORDER BY created_at DESC, id"
    );
    let mut stmt = st.conn.prepare(&sql)?;
    let rows = stmt.query_map([status], read_row)?;
    with_waits(st, rows.collect::<Result<_, _>>()?)
}

/// The journal of run `id` in key order.
pub fn journal(st: &State, id: &str) -> Result<Vec<Entry>, StateError> {
    let mut stmt = st.conn.prepare(&format!(
        "SELECT {ENTRY_COLUMNS} FROM journal WHERE run_id = ?1 ORDER BY started_at, fiber, seq"
    ))?;
    let rows = stmt.query_map([id], entry_of_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The `journal` columns an [`Entry`] is read from, in [`entry_of_row`]'s order.
pub(crate) const ENTRY_COLUMNS: &str =
    "fiber, seq, completion, name, digest, kind, result, started_at, ended_at";

/// An [`Entry`] from a row selected with [`ENTRY_COLUMNS`].
pub(crate) fn entry_of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        fiber: r.get(0)?,
        seq: r.get(1)?,
        completion: r.get(2)?,
        name: r.get(3)?,
        digest: r.get(4)?,
        kind: r.get(5)?,
        result: r.get(6)?,
        started_at: r.get(7)?,
        ended_at: r.get(8)?,
    })
}

/// Why a run cannot be claimed.
#[derive(Debug, PartialEq)]
pub enum ClaimError {
    /// Another live process owns it.
    Owned(String),
    /// It is finished (its status).
    Finished(String),
    State(String),
}

impl From<StateError> for ClaimError {
    fn from(e: StateError) -> ClaimError {
        ClaimError::State(e.0)
    }
}

impl From<rusqlite::Error> for ClaimError {
    fn from(e: rusqlite::Error) -> ClaimError {
        ClaimError::State(format!("state database: {e}"))
    }
}

/// Create run `id` (status running, owned by this process).
pub fn create(st: &State, id: &str, file: &str, sha: &str, args: &str) -> Result<(), StateError> {
    let now = now_text();
    let pid = i64::from(std::process::id());
    st.conn.execute(
        "INSERT INTO durable_runs (id, file, script_sha256, args, status, owner_host, owner_pid, \
         owner_start, lease_until, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            id,
            file,
            sha,
            args,
            host_name(),
            pid,
            process_start(pid),
            now_secs() + LEASE_SECS,
            now
        ],
    )?;
    Ok(())
}

/// Take ownership of unfinished run `id` for this process: refused while its owner is a
/// live process (on this machine) or holds an unexpired lease (elsewhere). One writer at a
/// time (BEGIN IMMEDIATE), so of two racing claims exactly one wins.
pub fn claim(st: &State, id: &str, sha: Option<&str>) -> Result<RunRow, ClaimError> {
    immediate(st, || claim_in_tx(st, id, sha))
}

/// [`claim`], reading the run's journal for its replay in the same transaction: a corrupted
/// journal is refused (`ClaimError::State`) before anything is written, so the database is
/// unchanged, and the journal is read once, consistent with the claim.
pub fn claim_loaded(
    st: &State,
    id: &str,
    sha: Option<&str>,
) -> Result<(RunRow, Journal), ClaimError> {
    immediate(st, || {
        let journal = Journal::load(st, id)?;
        Ok((claim_in_tx(st, id, sha)?, journal))
    })
}

/// Run `f` in one `BEGIN IMMEDIATE` transaction (one writer at a time): committed when it
/// returns `Ok`, rolled back when it returns `Err`.
pub(crate) fn immediate<T, E: From<rusqlite::Error>>(
    st: &State,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    st.conn.execute_batch("BEGIN IMMEDIATE")?;
    let res = f();
    let end = if res.is_ok() { "COMMIT" } else { "ROLLBACK" };
    st.conn.execute_batch(end)?;
    res
}

fn claim_in_tx(st: &State, id: &str, sha: Option<&str>) -> Result<RunRow, ClaimError> {
    let row = find(st, id)?.ok_or_else(|| ClaimError::State(format!("no run `{id}`")))?;
    if FINISHED.contains(&row.status.as_str()) {
        return Err(ClaimError::Finished(row.status));
    }
    let me = i64::from(std::process::id());
    if let Some(who) = live_owner(st, &row)? {
        return Err(ClaimError::Owned(who));
    }
    st.conn.execute(
        "UPDATE durable_runs SET status = 'running', owner_host = ?2, owner_pid = ?3, \
         owner_start = ?4, lease_until = ?5, updated_at = ?6, wake_at = NULL, \
         script_sha256 = coalesce(?7, script_sha256) WHERE id = ?1",
        params![
            id,
            host_name(),
            me,
            process_start(me),
            now_secs() + LEASE_SECS,
            now_text(),
            sha
        ],
    )?;
    // The replay starts from the top: each wait still open records itself again.
    st.conn
        .execute("DELETE FROM run_waits WHERE run_id = ?1", [id])?;
    Ok(row)
}

/// `process PID on HOST` when another live process owns `row` (this process does not count).
pub(crate) fn live_owner(st: &State, row: &RunRow) -> Result<Option<String>, StateError> {
    let (Some(h), Some(pid)) = (&row.owner_host, row.owner_pid) else {
        return Ok(None);
    };
    let start: Option<String> = st.conn.query_row(
        "SELECT owner_start FROM durable_runs WHERE id = ?1",
        [&row.id],
        |r| r.get(0),
    )?;
    let ours = *h == host_name() && pid == i64::from(std::process::id());
    let alive = owner_alive(h, pid, start.as_deref(), row.lease_until.unwrap_or(0.0));
    Ok((!ours && alive).then(|| format!("process {pid} on {h}")))
}

/// Record how a run ended and release it.
pub fn finish(st: &State, id: &str, status: &str, result: &Json) -> Result<(), StateError> {
    st.conn.execute(
        "UPDATE durable_runs SET status = ?2, result = ?3, owner_host = NULL, owner_pid = NULL, \
         owner_start = NULL, lease_until = NULL, updated_at = ?4 WHERE id = ?1",
        params![id, status, result.to_string(), now_text()],
    )?;
    st.conn
        .execute("DELETE FROM run_waits WHERE run_id = ?1", [id])?;
    Ok(())
}

/// Cancel an unfinished run whose owner is gone: `Ok(false)` when it is finished already.
pub fn cancel(st: &State, id: &str) -> Result<bool, ClaimError> {
    immediate(st, || match claim_in_tx(st, id, None) {
        Ok(_) => {
            let r = json!({"code": 1, "code_name": "GENERIC_FAILURE", "message": "cancelled", "line": null});
            finish(st, id, "cancelled", &r)
                .map(|()| true)
                .map_err(ClaimError::from)
        }
        Err(ClaimError::Finished(_)) => Ok(false),
        Err(e) => Err(e),
    })
}

mod export;
mod journal;
mod ops;
mod reads;
mod resolve;
mod rollback;
pub mod signals;
mod timers;
mod waiting;
pub use export::{entry_json, export_lines, row_json, verify_chain, Verified};
pub use journal::Journal;
#[cfg(test)]
use journal::{decode, encode};
pub use ops::{parse_age, prune, stuck, summary};
pub use resolve::{parse_entry_key, resolve, Settle};
pub use waiting::{due, interrupted, DETACH_AFTER_SECS};

#[cfg(test)]
mod tests {
    use super::*;
    use aether_vm::{ErrorClass, HostError, Value};

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("r-0123abcd"));
        assert!(valid_id("deploy_42"));
        assert!(!valid_id(""));
        assert!(!valid_id("a b"));
        assert!(!valid_id("../x"));
        assert!(!valid_id(&"x".repeat(65)));
        assert!(valid_id(&fresh_id()));
        assert_ne!(fresh_id(), fresh_id());
    }

    #[test]
    fn results_round_trip() {
        let ok: Result<Value, HostError> = Ok(Value::from("x"));
        assert_eq!(decode(&encode(&ok)).expect("decodes"), ok);
        let err: Result<Value, HostError> = Err(HostError::new(ErrorClass::Plugin, "boom"));
        assert_eq!(decode(&encode(&err)).expect("decodes"), err);
        assert!(decode("{").is_err());
    }

    #[test]
    fn a_second_claim_of_a_live_owner_is_refused() {
        let st = State::in_memory().expect("db");
        create(&st, "r1", "/x.aether", "abc", "{}").expect("create");
        // Owned by this very process: another process's claim would see it alive; here the
        // owner is us, so the claim succeeds (a resume by the owner itself).
        assert!(claim(&st, "r1", None).is_ok());
        st.conn
            .execute(
                "UPDATE durable_runs SET owner_pid = 1, owner_start = NULL WHERE id = 'r1'",
                [],
            )
            .expect("pid 1");
        assert!(matches!(claim(&st, "r1", None), Err(ClaimError::Owned(_))));
        st.conn
            .execute(
                "UPDATE durable_runs SET owner_pid = 2147483646 WHERE id = 'r1'",
                [],
            )
            .expect("dead pid");
        assert!(claim(&st, "r1", None).is_ok(), "a dead owner is taken over");
        finish(&st, "r1", "succeeded", &json!({})).expect("finish");
        assert_eq!(
            claim(&st, "r1", None).err(),
            Some(ClaimError::Finished("succeeded".into()))
        );
    }
}
