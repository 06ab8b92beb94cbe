//! The VM's own non-determinism in a durable run's journal: the clock (`now()`), the
//! absolute deadlines of `sleep`, step timeouts and backoffs, and step attempts with how
//! they ended (docs/durable.md). Each is one `outcome` entry at the fiber's next key, so a
//! replay reads back the value the first execution saw and a resumed `sleep` waits only
//! what is left of its deadline.

use rusqlite::params;

use aether_vm::{HostError, Value};

use super::journal::{digest_of, encode, journal_error};
use super::{now_text, Journal};
use crate::host::RuntimeHost;

impl RuntimeHost {
    /// See [`aether_vm::Host::journal_value`].
    pub(crate) fn journal_value(
        &mut self,
        fiber: &str,
        name: &str,
        args: &[Value],
        live: Value,
    ) -> Result<Value, HostError> {
        let Some(mut j) = self.journal.take() else {
            return Ok(live);
        };
        let r = self.value_with(&mut j, fiber, name, args, live);
        self.journal = Some(j);
        r
    }

    fn value_with(
        &mut self,
        j: &mut Journal,
        fiber: &str,
        name: &str,
        args: &[Value],
        live: Value,
    ) -> Result<Value, HostError> {
        let st = self.state()?;
        j.flush(st)?;
        let key = j.next_key(fiber);
        let digest = digest_of(name, args);
        let value = match j.replay(&key, name, &digest)? {
            Some(rec) => {
                j.consumed(&rec);
                match rec.result {
                    Some(r) => r?,
                    None => {
                        return Err(journal_error(format!(
                            "entry {}#{} of run `{}` (`{name}`) has no recorded value",
                            key.0, key.1, j.run_id
                        )))
                    }
                }
            }
            None => {
                j.next_completion += 1;
                let now = now_text();
                st.conn
                    .execute(
                        "INSERT INTO journal (run_id, fiber, seq, completion, name, digest, kind, \
                         result, started_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'outcome', ?7, ?8, ?8)",
                        params![j.run_id, key.0, key.1, j.next_completion, name, digest, encode(&Ok(live.clone())), now],
                    )
                    .map_err(journal_error)?;
                live
            }
        };
        j.last_value
            .insert((key.0, name.to_string()), (key.1, value.clone()));
        Ok(value)
    }

    /// See [`aether_vm::Host::journal_end`]: the value gains `end` (once).
    pub(crate) fn journal_end(&mut self, fiber: &str, name: &str, end: &str) {
        let Some(mut j) = self.journal.take() else {
            return;
        };
        let slot = (fiber.to_string(), name.to_string());
        if let Some((seq, Value::Map(m))) = j.last_value.remove(&slot).as_ref() {
            let mut m = (**m).clone();
            if m.get("end").is_none() {
                m.insert("end", Value::from(end));
                let result = encode(&Ok(Value::from(m)));
                if let Ok(st) = self.state() {
                    let _ = st.conn.execute(
                        "UPDATE journal SET result = ?4, ended_at = ?5 \
                         WHERE run_id = ?1 AND fiber = ?2 AND seq = ?3",
                        params![j.run_id, fiber, seq, result, now_text()],
                    );
                }
            }
        }
        self.journal = Some(j);
    }

    /// See [`aether_vm::Host::idle`].
    pub(crate) fn journal_idle(&self) {
        if let Some(j) = &self.journal {
            j.idle();
        }
    }
}
