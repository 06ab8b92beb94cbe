//! A `transaction:` block that rolls back in a durable run (docs/durable.md, "Transactions").
//!
//! The journal entries a block writes (its calls' outcomes, `now()`, ...) live in the
//! block's SQLite transaction. Rolled back with it, they would leave a hole: a replay would
//! run the block live, read another clock or another memory, and may take another path
//! (the block commits where it had failed). So the entries are read before the rollback and
//! written again after it: the block's effects are undone, its record is kept. Replayed,
//! the block gets the same answers, fails the same way and rolls back again; a replayed
//! call never acts, so nothing the block did the first time is done now.
//!
//! Why the block failed is kept too: an entry `transaction` at its fiber's next key holds
//! the error (class, code, message, line), written in the same transaction as the kept
//! entries. A failure the journal cannot reproduce by itself (the time limit, a failed
//! `COMMIT`) is raised again from it: a replay that reaches that key (a journaled call, a
//! read, the clock, or the block's commit) fails there with the recorded error.

use rusqlite::params;

use aether_vm::{ErrorClass, HostError, TxFailure, Value};

use super::journal::{digest_of, encode, journal_error, Journal};
use super::{entry_of_row, now_text, Entry, ENTRY_COLUMNS};
use crate::host::RuntimeHost;
use crate::state::State;

/// The name of the entry that records why a block rolled back.
pub(super) const TX_FAILURE: &str = "transaction";

/// The journal's name of an error class (and back, in [`class_of`]).
fn class_name(c: ErrorClass) -> &'static str {
    match c {
        ErrorClass::Runtime => "runtime",
        ErrorClass::Timeout => "timeout",
        ErrorClass::Permission => "permission",
        ErrorClass::Plugin => "plugin",
        ErrorClass::Nondeterminism => "nondeterminism",
        ErrorClass::Memory => "memory",
        ErrorClass::Indeterminate => "indeterminate",
        ErrorClass::Detached => "detached",
    }
}

fn class_of(name: &str) -> ErrorClass {
    match name {
        "timeout" => ErrorClass::Timeout,
        "permission" => ErrorClass::Permission,
        "plugin" => ErrorClass::Plugin,
        "nondeterminism" => ErrorClass::Nondeterminism,
        "memory" => ErrorClass::Memory,
        "indeterminate" => ErrorClass::Indeterminate,
        "detached" => ErrorClass::Detached,
        _ => ErrorClass::Runtime,
    }
}

/// The value of a `transaction` entry: the error that rolled the block back.
fn failure_value(why: &TxFailure<'_>) -> Value {
    let line = why.line.map_or(Value::Null, |l| Value::Int(i64::from(l)));
    [
        ("class", Value::from(class_name(why.class))),
        ("code", Value::Int(i64::from(why.class.code()))),
        ("code_name", Value::from(why.class.code_name())),
        ("message", Value::from(why.message)),
        ("line", line),
    ]
    .into_iter()
    .collect::<aether_vm::Map>()
    .into()
}

/// The error a `transaction` entry recorded (`result`: its decoded result).
pub(super) fn recorded_failure(result: Option<&Result<Value, HostError>>) -> HostError {
    match result {
        Some(Ok(Value::Map(m))) => {
            let class = match m.get("class") {
                Some(Value::Str(s)) => class_of(s),
                _ => ErrorClass::Runtime,
            };
            let message = match m.get("message") {
                Some(Value::Str(s)) => s.to_string(),
                _ => "the transaction was rolled back".to_string(),
            };
            HostError::new(class, message)
        }
        Some(Err(e)) => e.clone(),
        _ => journal_error("a `transaction` entry records no error"),
    }
}

/// The `transaction` entry recording `why` at its fiber's next key, or `None` when none
/// is written: the error says the replay diverged or an effect is indeterminate (the
/// journal holds why already), the replay raised this very failure from the journal, or
/// the key is recorded already (replaying: the failure there is taken as replayed; another
/// entry there is left alone).
fn failure_row(j: &mut Journal, why: &TxFailure<'_>) -> Option<Entry> {
    if matches!(
        why.class,
        ErrorClass::Nondeterminism | ErrorClass::Indeterminate | ErrorClass::Detached
    ) {
        return None;
    }
    if j.failures_replayed.remove(why.fiber) {
        return None;
    }
    let key = j.peek_key(why.fiber);
    if j.failure_at(&key) {
        // Replayed, the block failed by itself where it failed the first time.
        let _ = j.take_failure(why.fiber);
        j.failures_replayed.remove(why.fiber);
        return None;
    }
    if j.is_recorded(&key) {
        return None;
    }
    let (fiber, seq) = j.next_key(why.fiber);
    j.next_completion += 1;
    let now = now_text();
    Some(Entry {
        fiber,
        seq,
        completion: Some(j.next_completion),
        name: TX_FAILURE.to_string(),
        digest: digest_of(TX_FAILURE, &[]),
        kind: "outcome".to_string(),
        result: Some(encode(&Ok(failure_value(why)))),
        started_at: now.clone(),
        ended_at: Some(now),
    })
}

impl RuntimeHost {
    /// A block has begun: entries numbered after now are its own.
    pub(crate) fn journal_tx_begun(&mut self) {
        if let Some(j) = &mut self.journal {
            j.tx_marks.push(j.next_completion);
        }
    }

    /// The innermost block committed: its entries belong to the enclosing one, if any.
    pub(crate) fn journal_tx_committed(&mut self) {
        if let Some(j) = &mut self.journal {
            j.tx_marks.pop();
        }
    }

    /// Replaying: the error a block of `fiber` failed with at this point the first time (a
    /// `transaction` entry at its next key), taken from the journal.
    pub(crate) fn replayed_tx_failure(&mut self, fiber: &str) -> Option<HostError> {
        self.journal.as_mut()?.take_failure(fiber)
    }

    /// Roll the innermost block back with `undo` (SQL), keeping the journal entries it
    /// wrote or completed and, for the outermost block, recording `why` it failed: one
    /// transaction after the rollback writes them all, or none. `Err`: they could not be
    /// kept (the block is rolled back anyway).
    pub(crate) fn roll_back_keeping_journal(
        &mut self,
        undo: &str,
        why: Option<&TxFailure<'_>>,
    ) -> Result<(), String> {
        let Some(st) = &self.state else {
            return Ok(());
        };
        let mark = self.journal.as_mut().and_then(|j| j.tx_marks.pop());
        let (Some(j), Some(mark)) = (self.journal.as_mut(), mark) else {
            return undo_open(st, undo);
        };
        // A failed `COMMIT` after which SQLite rolled the transaction back itself took the
        // block's entries with it: its failure then goes where they began, so the fiber's
        // keys have no gap and a replay fails at the block's first journaled step.
        let lost = st.conn.is_autocommit();
        let kept = if lost {
            Ok(Vec::new())
        } else {
            rows_after(st, &j.run_id, mark)
        };
        undo_open(st, undo)?;
        let mut rows = kept.map_err(|e| journal_error(e).message)?;
        if let Some(w) = why {
            if lost {
                let written =
                    last_written(st, &j.run_id, w.fiber).map_err(|e| journal_error(e).message)?;
                j.rewind(w.fiber, written);
            }
            rows.extend(failure_row(j, w));
        }
        if rows.is_empty() {
            return Ok(());
        }
        write_all(st, &j.run_id, &rows).map_err(|e| journal_error(e).message)
    }
}

/// Undo the open block; nothing to undo when SQLite rolled the transaction back itself
/// (some failed `COMMIT`s do).
fn undo_open(st: &State, undo: &str) -> Result<(), String> {
    if st.conn.is_autocommit() {
        return Ok(());
    }
    st.conn.execute_batch(undo).map_err(|e| e.to_string())
}

/// Write `rows` in one transaction (a savepoint inside an enclosing block): all or none.
fn write_all(st: &State, run_id: &str, rows: &[Entry]) -> rusqlite::Result<()> {
    let (begin, end, abort) = if st.conn.is_autocommit() {
        ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
    } else {
        (
            "SAVEPOINT aether_keep",
            "RELEASE aether_keep",
            "ROLLBACK TO aether_keep; RELEASE aether_keep",
        )
    };
    st.conn.execute_batch(begin)?;
    let written = insert_rows(st, run_id, rows).and_then(|()| st.conn.execute_batch(end));
    if written.is_err() && !st.conn.is_autocommit() {
        let _ = st.conn.execute_batch(abort);
    }
    written
}

fn insert_rows(st: &State, run_id: &str, rows: &[Entry]) -> rusqlite::Result<()> {
    let mut insert = st.conn.prepare_cached(
        "INSERT OR REPLACE INTO journal (run_id, fiber, seq, completion, name, digest, \
         kind, result, started_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for r in rows {
        insert.execute(params![
            run_id,
            r.fiber,
            r.seq,
            r.completion,
            r.name,
            r.digest,
            r.kind,
            r.result,
            r.started_at,
            r.ended_at
        ])?;
    }
    Ok(())
}

/// The last seq of `fiber` in the run's journal (0: none).
fn last_written(st: &State, run_id: &str, fiber: &str) -> rusqlite::Result<i64> {
    st.conn.query_row(
        "SELECT coalesce(max(seq), 0) FROM journal WHERE run_id = ?1 AND fiber = ?2",
        params![run_id, fiber],
        |r| r.get(0),
    )
}

/// The run's entries numbered after `mark`: those the open block wrote or completed.
fn rows_after(st: &State, run_id: &str, mark: i64) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = st.conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM journal WHERE run_id = ?1 AND completion > ?2"
    ))?;
    let rows = stmt.query_map(params![run_id, mark], entry_of_row)?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_failure_round_trips() {
        let why = TxFailure {
            fiber: "0.1",
            class: ErrorClass::Timeout,
            message: "too long",
            line: Some(7),
        };
        let v = failure_value(&why);
        let e = recorded_failure(Some(&Ok(v)));
        assert_eq!(e, HostError::new(ErrorClass::Timeout, "too long"));
        for c in [
            ErrorClass::Runtime,
            ErrorClass::Permission,
            ErrorClass::Plugin,
            ErrorClass::Memory,
        ] {
            assert_eq!(class_of(class_name(c)), c);
        }
        let bad = recorded_failure(Some(&Ok(Value::Int(3))));
        assert_eq!(bad.class, ErrorClass::Runtime);
        assert!(bad.message.contains("records no error"), "{}", bad.message);
    }
}
