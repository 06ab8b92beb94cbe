//! `aether runs signal ID NAME --data JSON [--key K]`: put a signal in a durable run's
//! mailbox (docs/durable.md, "Signals").

use aether_runtime::durable::signals::{self, SendError, Sent};
use aether_runtime::state::State;

use super::stdio::errln;

/// Send the signal; `Err` is the exit status (2 bad input, 1 a finished run or a database
/// failure), and then nothing was stored.
pub(crate) fn send(
    st: &State,
    id: &str,
    name: &str,
    data: &str,
    key: Option<&str>,
) -> Result<i32, i32> {
    match signals::send(st, id, name, data, key) {
        Ok(Sent::Stored(n)) => {
            errln!("signal `{name}` sent to run `{id}` (mailbox entry {n})");
            Ok(0)
        }
        Ok(Sent::Duplicate) => {
            let key = key.unwrap_or_default();
            errln!(
                "signal with key `{key}` was already sent to run `{id}`: ignored (nothing changed)"
            );
            Ok(0)
        }
        Err(SendError::Usage(m)) => {
            errln!("error: {m}");
            Err(2)
        }
        Err(SendError::Finished(status)) => {
            errln!("error: run `{id}` is finished ({status}): no wait can take a signal any more");
            Err(1)
        }
        Err(SendError::State(e)) => {
            errln!("error: {e}");
            Err(1)
        }
    }
}
