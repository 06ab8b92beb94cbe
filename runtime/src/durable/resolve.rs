//! `aether runs resolve`: an operator settles an indeterminate journal entry (an intent
//! whose outcome is unknown) so that `aether runs resume` continues past it (docs/durable.md).

use rusqlite::{params, OptionalExtension};
use serde_json::Value as Json;

use aether_vm::{ErrorClass, HostError};

use super::journal::encode;
use super::{find, immediate, live_owner, now_text, FINISHED};
use crate::state::{State, StateError};

/// What the operator says happened to the effect.
#[derive(Clone, Debug, PartialEq)]
pub enum Settle {
    /// It took effect and returned this value.
    Succeeded(Json),
    /// It failed with this message (the call raises it on resume).
    Failed(String),
    /// It did not happen: run it again on resume (with the same idempotency key).
    Retry,
}

/// `FIBER:SEQ` (as in the idempotency key `run_id:FIBER:SEQ`) or `FIBER#SEQ` (as `runs show`
/// prints it): the fiber path is dot-separated numbers, `seq` counts from 1.
pub fn parse_entry_key(text: &str) -> Option<(String, i64)> {
    let (fiber, seq) = text.rsplit_once([':', '#'])?;
    let fiber_ok = !fiber.is_empty()
        && fiber
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let seq: i64 = seq.parse().ok().filter(|n| *n >= 1)?;
    fiber_ok.then(|| (fiber.to_string(), seq))
}

/// Settle entry `fiber:seq` of run `id`. The entry must be an intent without outcome and the
/// run unfinished and not owned by a live process; otherwise nothing changes. Returns the
/// entry's function name.
pub fn resolve(
    st: &State,
    id: &str,
    fiber: &str,
    seq: i64,
    settle: &Settle,
) -> Result<String, StateError> {
    immediate(st, || resolve_in_tx(st, id, fiber, seq, settle))
}

fn resolve_in_tx(
    st: &State,
    id: &str,
    fiber: &str,
    seq: i64,
    settle: &Settle,
) -> Result<String, StateError> {
    let fail = |m: String| Err(StateError(m));
    let Some(row) = find(st, id)? else {
        return fail(format!("no run `{id}` (see `aether runs list`)"));
    };
    if FINISHED.contains(&row.status.as_str()) {
        return fail(format!(
            "run `{id}` is already finished ({}): nothing to resolve",
            row.status
        ));
    }
    if let Some(who) = live_owner(st, &row)? {
        return fail(format!(
            "run `{id}` is being run by {who}: its open entries are in flight, not indeterminate"
        ));
    }
    let entry: Option<(String, String, Option<String>)> = st
        .conn
        .query_row(
            "SELECT name, kind, result FROM journal WHERE run_id = ?1 AND fiber = ?2 AND seq = ?3",
            params![id, fiber, seq],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((name, kind, result)) = entry else {
        return fail(format!(
            "run `{id}` has no journal entry {fiber}:{seq} (see `aether runs show {id} --journal`)"
        ));
    };
    if kind != "intent" || result.is_some() {
        return fail(format!(
            "journal entry {fiber}:{seq} of run `{id}` (`{name}`) is not indeterminate: its outcome is recorded"
        ));
    }
    let outcome = match settle {
        Settle::Retry => {
            st.conn.execute(
                "DELETE FROM journal WHERE run_id = ?1 AND fiber = ?2 AND seq = ?3",
                params![id, fiber, seq],
            )?;
            return Ok(name);
        }
        Settle::Succeeded(v) => Ok(crate::memory::from_json(v)),
        Settle::Failed(m) => {
            let plugin = name == "run_plugin" || name == "plugins.invoke";
            let class = if plugin {
                ErrorClass::Plugin
            } else {
                ErrorClass::Runtime
            };
            Err(HostError::new(class, m.clone()))
        }
    };
    st.conn.execute(
        "UPDATE journal SET kind = 'outcome', result = ?4, ended_at = ?5, \
         completion = (SELECT coalesce(max(completion), 0) + 1 FROM journal WHERE run_id = ?1) \
         WHERE run_id = ?1 AND fiber = ?2 AND seq = ?3",
        params![id, fiber, seq, encode(&outcome), now_text()],
    )?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_parse() {
        assert_eq!(parse_entry_key("0:3"), Some(("0".into(), 3)));
        assert_eq!(parse_entry_key("0.2#1"), Some(("0.2".into(), 1)));
        for bad in ["3", "0:", ":3", "0:0", "0:-1", "a:1", "0..1:2", "0:1x", ""] {
            assert_eq!(parse_entry_key(bad), None, "{bad}");
        }
    }
}
