//! Runs that wait outside any process (docs/durable.md, "Waiting runs"): a durable run
//! whose every fiber waits on a timer or a signal long enough leaves the process with
//! status `waiting` and its wake time; `due` finds the waiting runs whose time came or
//! whose signal arrived, `interrupted` the running runs whose owner is gone, for
//! `aether runs resume --due / --all-interrupted` and `aether worker`.

use rusqlite::params;

use super::{now_secs, now_text, owner_alive, ROW_COLUMNS};
use crate::host::RuntimeHost;
use crate::state::{State, StateError};

/// Without `--detach-waits`, a durable run leaves the process when every fiber waits and
/// the earliest timer (a `sleep`, backoff, step or signal deadline) is at least this far
/// ahead (5 minutes).
pub const DETACH_AFTER_SECS: f64 = 300.0;

impl RuntimeHost {
    /// See [`aether_vm::Host::detach`].
    pub(crate) fn journal_detach(&mut self, wake: Option<f64>) -> bool {
        let Some(j) = self.journal.as_ref() else {
            return false;
        };
        let Some(after) = j.detach_after else {
            return false;
        };
        if j.live.get() > 0 || j.holding() || wake.is_some_and(|w| w - now_secs() < after) {
            // A signal wait's deadline could only make the wake earlier.
            return false;
        }
        let id = j.run_id.clone();
        let Ok(st) = self.state() else {
            return false;
        };
        if !st.conn.is_autocommit() {
            return false;
        }
        // The signal waits' own deadlines: the run wakes at the earliest.
        let signal_wake: Option<f64> = st
            .conn
            .query_row(
                "SELECT min(deadline) FROM run_waits WHERE run_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap_or(None);
        let wake = match (wake, signal_wake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Automatically only for a long timer: a signal wait without a deadline stays in
        // the process unless `--detach-waits` (after = 0) asked otherwise.
        let leave = match wake {
            Some(w) => w - now_secs() >= after,
            None => after <= 0.0,
        };
        if !leave {
            return false;
        }
        let left = st.conn.execute(
            "UPDATE durable_runs SET status = 'waiting', wake_at = ?2, owner_host = NULL, \
             owner_pid = NULL, owner_start = NULL, lease_until = NULL, updated_at = ?3 \
             WHERE id = ?1",
            params![id, wake, now_text()],
        );
        if left.is_err() {
            return false;
        }
        if let Some(j) = self.journal.as_mut() {
            j.detached = true;
        }
        true
    }
}

fn ids(st: &State, sql: &str) -> Result<Vec<String>, StateError> {
    let mut stmt = st.conn.prepare(sql)?;
    let rows = stmt.query_map(params![now_secs()], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Waiting runs whose wake time has come or whose awaited signal is in the mailbox, oldest
/// first.
pub fn due(st: &State) -> Result<Vec<String>, StateError> {
    ids(
        st,
        "SELECT id FROM durable_runs r WHERE status = 'waiting' AND ((wake_at IS NOT NULL \
         AND wake_at <= ?1) OR EXISTS (SELECT 1 FROM run_waits w JOIN signals s \
         ON s.run_id = w.run_id AND s.name = w.name WHERE w.run_id = r.id \
         AND s.consumed_at IS NULL)) ORDER BY created_at, id",
    )
}

/// Running runs whose owner process is gone (on this machine) or whose lease expired,
/// oldest first.
pub fn interrupted(st: &State) -> Result<Vec<String>, StateError> {
    let sql = format!(
        "SELECT {ROW_COLUMNS}, owner_start FROM durable_runs WHERE status = 'running' \
         ORDER BY created_at, id"
    );
    let mut stmt = st.conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| {
        let row = super::read_row(r)?;
        let start: Option<String> = r.get(12)?;
        Ok((row, start))
    })?;
    let mut out = Vec::new();
    for it in rows {
        let (row, start) = it?;
        let alive = match (&row.owner_host, row.owner_pid) {
            (Some(h), Some(pid)) => {
                owner_alive(h, pid, start.as_deref(), row.lease_until.unwrap_or(0.0))
            }
            _ => false,
        };
        if !alive {
            out.push(row.id);
        }
    }
    Ok(out)
}
