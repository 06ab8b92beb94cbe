//! Operator views of durable runs: stuck runs, pruning finished runs with their journals,
//! and the counts `aether status` reports (docs/durable.md, "Operating runs").

use rusqlite::{params, OptionalExtension};
use serde_json::{json, Map, Value as Json};

use super::{immediate, list, live_owner, RunRow, FINISHED};
use crate::state::{State, StateError};

/// Seconds in an age such as `90s`, `30m`, `2h`, `7d` or `45` (seconds); `None` when malformed.
pub fn parse_age(text: &str) -> Option<f64> {
    let text = text.trim();
    let (num, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let scale = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    Some(n * scale)
}

/// The `updated_at` text of `secs` seconds ago (the column's format sorts as text).
fn cutoff(secs: f64) -> String {
    let ago = chrono::Duration::milliseconds((secs * 1000.0).min(1e15) as i64);
    (chrono::Utc::now() - ago).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Unfinished runs that need someone: `needs_attention`, `running` while no live process
/// owns it (the owner died on this machine, or its lease expired elsewhere), or `waiting`
/// past its wake time. With `older_than`,
/// only runs not updated for that many seconds. Each with the reason.
pub fn stuck(st: &State, older_than: Option<f64>) -> Result<Vec<(RunRow, String)>, StateError> {
    let limit = older_than.map(cutoff);
    let mut out = Vec::new();
    for row in list(st, None)? {
        if limit.as_ref().is_some_and(|l| row.updated_at >= *l) {
            continue;
        }
        let reason = match row.status.as_str() {
            "needs_attention" => {
                "needs attention: an effect's outcome is unknown (see `aether runs resolve`)"
                    .to_string()
            }
            "running" | "pending" if live_owner(st, &row)?.is_none() => match row.owner_pid {
                Some(pid) => format!(
                    "{}: its owner (process {pid} on {}) is gone or its lease expired",
                    row.status,
                    row.owner_host.as_deref().unwrap_or("?")
                ),
                None => format!("{}: no process owns it", row.status),
            },
            "waiting" => match overdue(row.wake_at) {
                Some(late) => format!(
                    "waiting: its wake time passed {late:.0}s ago and no worker has resumed it \
                     (see `aether runs resume --due` or `aether worker`)"
                ),
                None => match arrived(st, &row.id)? {
                    Some(name) => format!(
                        "waiting: signal `{name}` it waits for arrived and no worker has resumed \
                         it (see `aether runs resume --due` or `aether worker`)"
                    ),
                    None => continue,
                },
            },
            _ => continue,
        };
        out.push((row, reason));
    }
    Ok(out)
}

/// A signal that run `id` waits for and that is in its mailbox, if any.
fn arrived(st: &State, id: &str) -> Result<Option<String>, StateError> {
    Ok(st
        .conn
        .query_row(
            "SELECT s.name FROM run_waits w JOIN signals s ON s.run_id = w.run_id \
             AND s.name = w.name WHERE w.run_id = ?1 AND s.consumed_at IS NULL \
             ORDER BY s.id LIMIT 1",
            [id],
            |r| r.get(0),
        )
        .optional()?)
}

/// How many seconds ago a waiting run's wake time passed; `None` when it has none or it is
/// still ahead.
fn overdue(wake_at: Option<f64>) -> Option<f64> {
    let now = super::now_secs();
    wake_at.filter(|w| *w <= now).map(|w| now - w)
}

/// Delete the finished runs not updated for `older_than` seconds, with their journals, in one
/// transaction. Returns each removed run with its status and number of journal entries.
pub fn prune(st: &State, older_than: f64) -> Result<Vec<(String, String, i64)>, StateError> {
    let limit = cutoff(older_than);
    immediate(st, || -> Result<Vec<(String, String, i64)>, StateError> {
        let mut removed = Vec::new();
        for row in list(st, None)? {
            if !FINISHED.contains(&row.status.as_str()) || row.updated_at >= limit {
                continue;
            }
            let n = st
                .conn
                .execute("DELETE FROM journal WHERE run_id = ?1", params![row.id])?;
            st.conn
                .execute("DELETE FROM durable_runs WHERE id = ?1", params![row.id])?;
            removed.push((row.id, row.status, n as i64));
        }
        Ok(removed)
    })
}

/// Run counts by status (every status, zeros included), the number of journal entries and
/// the bytes their text columns hold: `aether status`.
pub fn summary(st: &State) -> Result<Json, StateError> {
    let mut by_status: Map<String, Json> = super::STATUSES
        .iter()
        .map(|s| (s.to_string(), json!(0)))
        .collect();
    let mut stmt = st
        .conn
        .prepare("SELECT status, COUNT(*) FROM durable_runs GROUP BY status")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (status, n) = row?;
        by_status.insert(status, json!(n));
    }
    let (entries, bytes): (i64, i64) = st.conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(length(run_id) + length(fiber) + length(name) + \
         length(digest) + length(kind) + COALESCE(length(result), 0) + length(started_at) + \
         COALESCE(length(ended_at), 0) + 16), 0) FROM journal",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(json!({"by_status": by_status, "journal_entries": entries, "journal_bytes": bytes}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("90s"), Some(90.0));
        assert_eq!(parse_age("30m"), Some(1800.0));
        assert_eq!(parse_age("2h"), Some(7200.0));
        assert_eq!(parse_age("7d"), Some(604_800.0));
        assert_eq!(parse_age("45"), Some(45.0));
        assert_eq!(parse_age("0"), Some(0.0));
        for bad in ["", "h", "-1h", "2w", "1.2.3s", "2 h"] {
            assert_eq!(parse_age(bad), None, "{bad}");
        }
    }

    #[test]
    fn prune_removes_only_old_finished_runs_and_their_journals() {
        let st = State::in_memory().expect("db");
        super::super::create(&st, "old", "/x", "s", "{}").expect("create");
        super::super::create(&st, "live", "/x", "s", "{}").expect("create");
        super::super::finish(&st, "old", "succeeded", &json!({})).expect("finish");
        st.conn
            .execute(
                "INSERT INTO journal (run_id, fiber, seq, name, digest, kind, started_at) \
                 VALUES ('old', '0', 1, 'f', 'd', 'intent', 't')",
                [],
            )
            .expect("entry");
        assert!(prune(&st, 3600.0).expect("prune").is_empty(), "too young");
        let removed = prune(&st, 0.0).expect("prune");
        assert_eq!(
            removed,
            vec![("old".to_string(), "succeeded".to_string(), 1)]
        );
        assert!(super::super::find(&st, "live").expect("find").is_some());
        let s = summary(&st).expect("summary");
        assert_eq!(s["by_status"]["running"], 1);
        assert_eq!(s["journal_entries"], 0);
    }
}
