//! A `transaction:` block that rolls back in a durable run (docs/durable.md, "Transactions").
//!
//! The journal entries a block writes (its calls' outcomes, `now()`, ...) live in the
//! block's SQLite transaction. Rolled back with it, they would leave a hole: a replay would
//! run the block live, read another clock or another memory, and may take another path
//! (the block commits where it had failed). So the entries are read before the rollback and
//! written again after it: the block's effects are undone, its record is kept. Replayed,
//! the block gets the same answers, fails the same way and rolls back again; a replayed
//! call never acts, so nothing the block did the first time is done now.

use rusqlite::params;

use super::journal::journal_error;
use super::{entry_of_row, Entry, ENTRY_COLUMNS};
use crate::host::RuntimeHost;
use crate::state::State;

impl RuntimeHost {
    /// A block (or a savepoint in one) has begun: entries numbered after now are its own.
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

    /// Roll the innermost block back with `undo` (SQL), keeping the journal entries it
    /// wrote or completed. `Err`: they could not be kept (the block is rolled back anyway).
    pub(crate) fn roll_back_keeping_journal(&mut self, undo: &str) -> Result<(), String> {
        let Some(st) = &self.state else {
            return Ok(());
        };
        let mark = self.journal.as_mut().and_then(|j| j.tx_marks.pop());
        let (Some(j), Some(mark)) = (&self.journal, mark) else {
            return st.conn.execute_batch(undo).map_err(|e| e.to_string());
        };
        let rows = rows_after(st, &j.run_id, mark);
        st.conn.execute_batch(undo).map_err(|e| e.to_string())?;
        let rows = rows.map_err(|e| journal_error(e).message)?;
        let mut insert = st
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO journal (run_id, fiber, seq, completion, name, digest, \
                 kind, result, started_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(|e| journal_error(e).message)?;
        for r in rows {
            insert
                .execute(params![
                    j.run_id,
                    r.fiber,
                    r.seq,
                    r.completion,
                    r.name,
                    r.digest,
                    r.kind,
                    r.result,
                    r.started_at,
                    r.ended_at
                ])
                .map_err(|e| journal_error(e).message)?;
        }
        Ok(())
    }
}

/// The run's entries numbered after `mark`: those the open block wrote or completed.
fn rows_after(st: &State, run_id: &str, mark: i64) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = st.conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM journal WHERE run_id = ?1 AND completion > ?2"
    ))?;
    let rows = stmt.query_map(params![run_id, mark], entry_of_row)?;
    rows.collect()
}
