//! Signals of durable runs (docs/durable.md): `aether runs signal` stores a signal in the
//! run's mailbox (the `signals` table), where it waits until the run's `wait_signal(name)`
//! takes it. Taking a signal marks it consumed in the same SQLite transaction that journals
//! the wait's result: delivery is at least once (a crash before that commit leaves the
//! signal in the mailbox for the resumed run) and a signal is consumed exactly once.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value as Json;

use aether_vm::{Args, ErrorClass, HostCall, HostCx, HostError, Value};

use super::journal::{digest_of, encode, journal_error};
use super::{find, now_secs, now_text, FINISHED};
use crate::calls::{arg, str_arg};
use crate::host::RuntimeHost;
use crate::state::{State, StateError};

/// How often a waiting run looks at its mailbox.
const POLL: Duration = Duration::from_millis(100);

/// The longest signal name.
const MAX_NAME: usize = 128;

/// What `send` did.
#[derive(Debug, PartialEq)]
pub enum Sent {
    /// Stored in the mailbox (its id).
    Stored(i64),
    /// A signal with this key was sent to this run before: nothing changed.
    Duplicate,
}

/// Why a signal was refused.
#[derive(Debug, PartialEq)]
pub enum SendError {
    /// Bad input (exit 2): the message says what.
    Usage(String),
    /// The run is finished (its status).
    Finished(String),
    State(String),
}

impl From<rusqlite::Error> for SendError {
    fn from(e: rusqlite::Error) -> SendError {
        SendError::State(format!("state database: {e}"))
    }
}

impl From<StateError> for SendError {
    fn from(e: StateError) -> SendError {
        SendError::State(e.0)
    }
}

/// Whether `name` can name a signal: 1 to 128 characters, no control characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_NAME && !name.chars().any(char::is_control)
}

/// Send signal `name` with JSON `data` to run `id`, at most once per `key`.
pub fn send(
    st: &State,
    id: &str,
    name: &str,
    data: &str,
    key: Option<&str>,
) -> Result<Sent, SendError> {
    if !valid_name(name) {
        return Err(SendError::Usage(format!(
            "`{name}` is not a signal name: use 1 to {MAX_NAME} characters without control characters"
        )));
    }
    let data: Json = serde_json::from_str(data)
        .map_err(|e| SendError::Usage(format!("--data is not JSON: {e}")))?;
    st.conn.execute_batch("BEGIN IMMEDIATE")?;
    let res = send_in_tx(st, id, name, &data, key);
    let end = if res.is_ok() { "COMMIT" } else { "ROLLBACK" };
    st.conn.execute_batch(end)?;
    res
}

fn send_in_tx(
    st: &State,
    id: &str,
    name: &str,
    data: &Json,
    key: Option<&str>,
) -> Result<Sent, SendError> {
    let row = find(st, id)?.ok_or_else(|| SendError::Usage(format!("no run `{id}`")))?;
    if FINISHED.contains(&row.status.as_str()) {
        return Err(SendError::Finished(row.status));
    }
    let added = st.conn.execute(
        "INSERT OR IGNORE INTO signals (run_id, name, data, key, sent_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, name, data.to_string(), key, now_text()],
    )?;
    if added == 0 {
        return Ok(Sent::Duplicate);
    }
    Ok(Sent::Stored(st.conn.last_insert_rowid()))
}

/// One run's wait for a signal: the journal key of its result and its deadline.
#[derive(Clone)]
struct Wait {
    run_id: String,
    name: String,
    fiber: String,
    seq: i64,
    digest: String,
    /// Unix seconds; `None` waits for ever.
    deadline: Option<f64>,
}

impl Wait {
    /// Take the oldest unconsumed signal, or give up past the deadline, journaling the
    /// result in the same transaction; `None`: keep waiting.
    fn settle(&self, conn: &Connection) -> Result<Option<Result<Value, HostError>>, HostError> {
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(journal_error)?;
        let res = self.settle_in_tx(conn);
        let end = match res {
            Ok(Some(_)) => "COMMIT",
            _ => "ROLLBACK",
        };
        conn.execute_batch(end).map_err(journal_error)?;
        res
    }

    fn settle_in_tx(
        &self,
        conn: &Connection,
    ) -> Result<Option<Result<Value, HostError>>, HostError> {
        let signal: Option<(i64, String)> = conn
            .query_row(
                "SELECT id, data FROM signals WHERE run_id = ?1 AND name = ?2 \
                 AND consumed_at IS NULL ORDER BY id LIMIT 1",
                params![self.run_id, self.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(journal_error)?;
        let now = now_text();
        let result = match signal {
            Some((sid, data)) => {
                let payload: Json = serde_json::from_str(&data).unwrap_or(Json::Null);
                conn.execute(
                    "UPDATE signals SET consumed_at = ?2, consumed_by = ?3 WHERE id = ?1",
                    params![sid, now, format!("{}#{}", self.fiber, self.seq)],
                )
                .map_err(journal_error)?;
                Ok(crate::memory::from_json(&payload))
            }
            None if self.deadline.is_some_and(|d| now_secs() >= d) => Err(HostError::new(
                ErrorClass::Timeout,
                format!(
                    "no signal `{}` arrived before the wait's timeout",
                    self.name
                ),
            )),
            None => return Ok(None),
        };
        conn.execute(
            "INSERT INTO journal (run_id, fiber, seq, name, digest, kind, result, started_at, \
             ended_at) VALUES (?1, ?2, ?3, 'wait_signal', ?4, 'outcome', ?5, ?6, ?6)",
            params![
                self.run_id,
                self.fiber,
                self.seq,
                self.digest,
                encode(&result),
                now
            ],
        )
        .map_err(journal_error)?;
        conn.execute(
            "DELETE FROM run_waits WHERE run_id = ?1 AND fiber = ?2 AND seq = ?3",
            params![self.run_id, self.fiber, self.seq],
        )
        .map_err(journal_error)?;
        Ok(Some(result))
    }
}

/// The timeout argument of `wait_signal` in milliseconds (`None`: no timeout).
fn timeout_ms(v: &Value) -> Result<Option<f64>, HostError> {
    let ms = match v {
        Value::Null => return Ok(None),
        Value::Duration(ms) => *ms,
        Value::Int(n) => *n as f64 * 1000.0,
        Value::Float(x) => x * 1000.0,
        other => {
            return Err(HostError::runtime(format!(
                "wait_signal's timeout is a duration or a number of seconds, not {}",
                other.type_name()
            )))
        }
    };
    if !ms.is_finite() || ms < 0.0 {
        return Err(HostError::runtime(
            "wait_signal's timeout must be a duration that is not negative",
        ));
    }
    Ok(Some(ms))
}

/// `wait_signal(name, timeout=null)`.
pub(crate) fn wait_signal(h: &mut RuntimeHost, args: &Args<'_>, cx: &mut HostCx<'_>) -> HostCall {
    match start_wait(h, args, cx) {
        Ok(call) => call,
        Err(e) => HostCall::Ready(Err(e)),
    }
}

fn start_wait(
    h: &mut RuntimeHost,
    args: &Args<'_>,
    cx: &mut HostCx<'_>,
) -> Result<HostCall, HostError> {
    let name = str_arg(args, "name", "a signal name")?.to_string();
    if !valid_name(&name) {
        return Err(HostError::runtime(format!(
            "`{name}` is not a signal name: use 1 to {MAX_NAME} characters without control characters"
        )));
    }
    let timeout = timeout_ms(arg(args, "timeout")?)?;
    if h.journal.is_none() {
        return Err(HostError::runtime(
            "wait_signal needs a durable run: start it with `aether run FILE --durable` (or `--id ID`) so that a signal can reach it with `aether runs signal` (docs/durable.md)",
        ));
    }
    let fiber = cx.fiber().to_string();
    let key_args = [
        Value::from(name.as_str()),
        timeout.map_or(Value::Null, Value::Duration),
    ];
    // The deadline is journaled first: a resumed wait keeps it.
    let live = timeout.map_or(Value::Null, |ms| Value::Float(now_secs() + ms / 1000.0));
    let deadline = match h.journal_value(&fiber, "wait_signal.deadline", &key_args, live)? {
        Value::Float(d) => Some(d),
        _ => None,
    };
    let dir: PathBuf = h.config.state_dir.clone();
    let Some(mut j) = h.journal.take() else {
        return Err(HostError::runtime("internal: no journal"));
    };
    let res = (|| {
        let st = h.state()?;
        if !st.conn.is_autocommit() {
            return Err(HostError::runtime(
                "in a durable run, `wait_signal` cannot wait inside `transaction:` (the block holds the database's write lock)",
            ));
        }
        let (fiber, seq) = j.next_key(&fiber);
        let digest = digest_of("wait_signal", &key_args);
        let key = (fiber, seq);
        if let Some(rec) = j.replay(&key, "wait_signal", &digest)? {
            return Ok(match rec.result.clone() {
                Some(r) => j.in_order(&rec, r),
                None => HostCall::Ready(Err(journal_error(format!(
                    "entry {}#{} of run `{}` (`wait_signal`) has no recorded result",
                    key.0, key.1, j.run_id
                )))),
            });
        }
        let wait = Wait {
            run_id: j.run_id.clone(),
            name,
            fiber: key.0,
            seq: key.1,
            digest,
            deadline,
        };
        // What the run waits for, beside the other fibers' waits (`runs show`, `--due`).
        st.conn
            .execute(
                "INSERT OR REPLACE INTO run_waits (run_id, fiber, seq, name, deadline) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![wait.run_id, wait.fiber, wait.seq, wait.name, wait.deadline],
            )
            .map_err(journal_error)?;
        if let Some(r) = wait.settle(&st.conn)? {
            j.settled_now(st, (wait.fiber, wait.seq, encode(&r)))?;
            return Ok(HostCall::Ready(r));
        }
        let done = j.completion_sink();
        Ok(HostCall::Pending(Box::pin(async move {
            // Its own connection: the host's is not the future's to hold.
            let st = State::open(&dir).map_err(|e| HostError::runtime(e.0))?;
            loop {
                tokio::time::sleep(POLL).await;
                if let Some(r) = wait.settle(&st.conn)? {
                    done.borrow_mut()
                        .push((wait.fiber.clone(), wait.seq, encode(&r)));
                    return r;
                }
            }
        })))
    })();
    h.journal = Some(j);
    res
}

/// One signal in a run's mailbox, as `runs show` prints it.
#[derive(Clone, Debug)]
pub struct Mail {
    pub name: String,
    pub data: String,
    pub key: Option<String>,
    pub sent_at: String,
    pub consumed_at: Option<String>,
    pub consumed_by: Option<String>,
}

/// The signals sent to run `id`, in the order they arrived.
pub fn mailbox(st: &State, id: &str) -> Result<Vec<Mail>, StateError> {
    let mut stmt = st.conn.prepare(
        "SELECT name, data, key, sent_at, consumed_at, consumed_by FROM signals \
         WHERE run_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(Mail {
            name: r.get(0)?,
            data: r.get(1)?,
            key: r.get(2)?,
            sent_at: r.get(3)?,
            consumed_at: r.get(4)?,
            consumed_by: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_signal_is_stored_once_and_bad_input_changes_nothing() {
        let st = State::in_memory().expect("db");
        super::super::create(&st, "r1", "/x.aether", "abc", "{}").expect("create");
        assert!(matches!(
            send(&st, "r1", "go", "{\"a\": 1}", Some("k")),
            Ok(Sent::Stored(_))
        ));
        assert_eq!(send(&st, "r1", "go", "2", Some("k")), Ok(Sent::Duplicate));
        assert!(matches!(
            send(&st, "r1", "go", "{", None),
            Err(SendError::Usage(_))
        ));
        assert!(matches!(
            send(&st, "r1", "", "1", None),
            Err(SendError::Usage(_))
        ));
        assert!(matches!(
            send(&st, "nope", "go", "1", None),
            Err(SendError::Usage(_))
        ));
        super::super::finish(&st, "r1", "succeeded", &serde_json::json!({})).expect("finish");
        assert_eq!(
            send(&st, "r1", "go", "1", None),
            Err(SendError::Finished("succeeded".into()))
        );
        let mail = mailbox(&st, "r1").expect("mailbox");
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].data, "{\"a\":1}");
    }

    #[test]
    fn a_wait_takes_the_oldest_signal_and_journals_it_in_one_transaction() {
        let st = State::in_memory().expect("db");
        super::super::create(&st, "r1", "/x.aether", "abc", "{}").expect("create");
        let wait = Wait {
            run_id: "r1".into(),
            name: "go".into(),
            fiber: "0".into(),
            seq: 1,
            digest: "d".into(),
            deadline: None,
        };
        assert_eq!(wait.settle(&st.conn).expect("settle"), None, "nothing yet");
        send(&st, "r1", "go", "1", None).expect("first");
        send(&st, "r1", "go", "2", None).expect("second");
        let got = wait.settle(&st.conn).expect("settle");
        assert_eq!(got, Some(Ok(Value::Int(1))));
        let mail = mailbox(&st, "r1").expect("mailbox");
        assert_eq!(mail[0].consumed_by.as_deref(), Some("0#1"));
        assert!(mail[1].consumed_at.is_none(), "the second stays buffered");
        let entries = super::super::journal(&st, "r1").expect("journal");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "wait_signal");
        let late = Wait {
            deadline: Some(0.0),
            name: "other".into(),
            seq: 2,
            ..wait
        };
        let timed_out = late.settle(&st.conn).expect("settle");
        assert!(matches!(timed_out, Some(Err(e)) if e.class == ErrorClass::Timeout));
    }
}
