//! Reads in a durable run's journal (docs/durable.md, "Guarantees"): every host function that
//! is not `effectful` reads something outside the script (memory, the kernel's queue,
//! homeostasis, the plugin directory, a file), so what it returned is an `outcome` entry at
//! the fiber's next key and a replay returns the recorded value, not what the database holds
//! now. Inside `transaction:` too: the entry commits with the block, or outlives its
//! rollback (`rollback.rs`). A read needs no `fsync`: its entry is an ordinary
//! (`synchronous=NORMAL`) commit, and if a crash loses it the read simply runs again on
//! resume (nothing after it committed: a later commit's sync would have made it durable
//! too).

use rusqlite::params;

use aether_vm::{Args, HostCall, HostCx, HostError, Value};

use super::journal::{encode, journal_error, Journal};
use super::now_text;
use crate::host::RuntimeHost;

/// A read's implementation (a `HostFn::Sync`).
pub(crate) type ReadFn =
    fn(&mut RuntimeHost, &Args<'_>, &mut HostCx<'_>) -> Result<Value, HostError>;

impl RuntimeHost {
    /// A read of a durable run: replayed from the journal when recorded there, else run and
    /// its result journaled.
    pub(crate) fn journaled_read(
        &mut self,
        name: &str,
        f: ReadFn,
        args: &Args<'_>,
        raw: &[Value],
        cx: &mut HostCx<'_>,
    ) -> HostCall {
        self.with_journal(|host, j| host.read_with(j, name, f, args, raw, cx))
            .unwrap_or_else(super::journal::no_journal)
    }

    fn read_with(
        &mut self,
        j: &mut Journal,
        name: &str,
        f: ReadFn,
        args: &Args<'_>,
        raw: &[Value],
        cx: &mut HostCx<'_>,
    ) -> HostCall {
        let ready = HostCall::Ready;
        let at = match self.entry_at(j, name, raw, cx) {
            Ok(at) => at,
            Err(e) => return ready(Err(e)),
        };
        let (in_block, key, digest) = (at.in_block, at.key, at.digest);
        if let Some(rec) = at.recorded {
            return match rec.result.clone() {
                // Inside `transaction:` the answer cannot wait (the block holds the write).
                Some(r) if !in_block => j.in_order(&rec, r),
                Some(r) => {
                    j.consumed(&rec);
                    ready(r)
                }
                None => ready(Err(journal_error(format!(
                    "entry {}#{} of run `{}` (`{name}`) has no recorded value",
                    key.0, key.1, j.run_id
                )))),
            };
        }
        let started = now_text();
        let r = f(self, args, cx).map_err(|e| self.name_busy(e));
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
            .and_then(|mut stmt| {
                stmt.execute(params![
                    j.run_id,
                    key.0,
                    key.1,
                    j.next_completion,
                    name,
                    digest,
                    encode(&r),
                    started,
                    now_text()
                ])
            });
        if let Err(e) = wrote {
            return ready(Err(journal_error(e)));
        }
        ready(r)
    }
}
