//! The durable side of `aether run --durable / --id`: create or claim the run before it
//! starts, record how it ended (docs/durable.md).

use std::path::Path;

use serde_json::{json, Value as Json};

use aether_runtime::durable::{self, ClaimError, RunRow};
use aether_runtime::state::State;
use aether_syntax::ResultCode;

use super::stdio::errln;

fn args_json(args: &[(String, String)]) -> String {
    let m: std::collections::BTreeMap<&str, &str> =
        args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    json!(m).to_string()
}

/// The recorded result of a finished run: its exit code, after saying so on stderr.
pub(crate) fn report_finished(row: &RunRow) -> i32 {
    let result: Json = row
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Json::Null);
    let code = result.get("code").and_then(Json::as_i64).unwrap_or(1) as i32;
    let name = result.get("code_name").and_then(Json::as_str).unwrap_or("");
    let message = result.get("message").and_then(Json::as_str).unwrap_or("");
    errln!(
        "run `{}` already finished: {} ({name}{}{message})",
        row.id,
        row.status,
        if message.is_empty() { "" } else { ": " }
    );
    code
}

/// `aether run --durable / --id`: create or claim the run; `Err` is the exit status.
pub(crate) fn attach(
    file: &Path,
    id: Option<&str>,
    text: &str,
    args: &[(String, String)],
    dir: &Path,
    allow_changed: bool,
) -> Result<String, i32> {
    let id = id.map_or_else(durable::fresh_id, str::to_string);
    if !durable::valid_id(&id) {
        errln!("error: `{id}` is not a run id: use 1 to 64 letters, digits, `_` or `-`");
        return Err(2);
    }
    let path = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let path = path.display().to_string();
    let sha = durable::script_digest(text);
    let args = args_json(args);
    let st = State::open(dir).map_err(|e| {
        errln!("error: {e}");
        1
    })?;
    let fail = |e: aether_runtime::state::StateError| {
        errln!("error: {e}");
        1
    };
    let Some(row) = durable::find(&st, &id).map_err(fail)? else {
        durable::create(&st, &id, &path, &sha, &args).map_err(fail)?;
        errln!("durable run: {id}");
        return Ok(id);
    };
    if row.args != args {
        errln!("error: run `{id}` was started with other arguments ({}): give the same --arg values or a new id", row.args);
        return Err(2);
    }
    if row.file != path {
        errln!("error: run `{id}` runs `{}`, not `{path}`", row.file);
        return Err(2);
    }
    if row.script_sha256 != sha && !allow_changed {
        errln!("error: the script of run `{id}` changed since the run started (sha-256 {} then, {sha} now): resuming would replay a different program; pass --allow-changed to resume anyway", row.script_sha256);
        return Err(2);
    }
    if durable::FINISHED.contains(&row.status.as_str()) {
        return Err(report_finished(&row));
    }
    // A corrupted journal is refused before the run is claimed (in the claim's transaction),
    // so the database stays as it was; the journal read there is the one the replay uses.
    match durable::claim_loaded(&st, &id, allow_changed.then_some(sha.as_str())) {
        Ok((_, journal)) => {
            LOADED.with(|l| *l.borrow_mut() = Some(journal));
            errln!("durable run: {id} (resuming)");
            Ok(id)
        }
        Err(ClaimError::Owned(who)) => {
            errln!("error: run `{id}` is being run by {who}: refusing to run it twice");
            Err(1)
        }
        Err(ClaimError::Finished(_)) => {
            let row = durable::find(&st, &id).map_err(fail)?;
            Err(row.as_ref().map_or(1, report_finished))
        }
        Err(ClaimError::State(e)) => {
            errln!("error: {e}");
            Err(1)
        }
    }
}

thread_local! {
    /// The journal `attach` read while claiming a run, for `execute` to replay: read once.
    static LOADED: std::cell::RefCell<Option<durable::Journal>> = const { std::cell::RefCell::new(None) };
}

/// The journal of run `id` for its replay: the one `attach` read when it claimed the run,
/// else (a run it created) read now.
pub(crate) fn journal_of(
    st: &State,
    id: &str,
) -> Result<durable::Journal, aether_runtime::state::StateError> {
    match LOADED.with(|l| l.borrow_mut().take()) {
        Some(j) if j.run_id == id => Ok(j),
        _ => durable::Journal::load(st, id),
    }
}

/// Record how the durable run `id` ended.
pub(crate) fn record_end(
    host: &mut aether_runtime::RuntimeHost,
    id: &str,
    code: ResultCode,
    message: &str,
    line: Option<u32>,
) {
    let journal = host.take_journal();
    if journal.as_ref().is_some_and(|j| j.detached) {
        let waits = host
            .state_db()
            .ok()
            .and_then(|st| durable::find(st, id).ok().flatten())
            .map(|row| waits_text(&row).replacen("  ", " ", 1))
            .unwrap_or_default();
        errln!("run `{id}` is waiting (status `waiting`){waits}: `aether runs resume --due` or `aether worker` continues it when its timer is due or its signal arrives");
        return;
    }
    let needs_attention = journal.is_some_and(|j| j.needs_attention);
    let status = if code == ResultCode::Success {
        "succeeded"
    } else if needs_attention {
        "needs_attention"
    } else {
        "failed"
    };
    let result = json!({
        "code": code.number(),
        "code_name": code.name(),
        "message": message,
        "line": line,
    });
    match host.state_db() {
        Ok(st) => {
            if let Err(e) = durable::finish(st, id, status, &result) {
                errln!("error: cannot record the end of run `{id}`: {e}");
            }
        }
        Err(e) => errln!("error: cannot record the end of run `{id}`: {e}"),
    }
}

/// What a run waits for, for one-line listings: `  (waits for signal `a`, `b`; wakes T)`,
/// or nothing when it waits for nothing.
pub(crate) fn waits_text(r: &RunRow) -> String {
    let mut parts = Vec::new();
    if !r.waiting_for.is_empty() {
        let names: Vec<String> = r.waiting_for.iter().map(|n| format!("`{n}`")).collect();
        let s = if names.len() == 1 { "" } else { "s" };
        parts.push(format!("waits for signal{s} {}", names.join(", ")));
    }
    if let Some(at) = r.wake_at {
        parts.push(format!("wakes {}", durable::unix_text(at)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("  ({})", parts.join("; "))
    }
}

/// The row of durable run `id` once this process is done with it (its status: finished,
/// `waiting`, `needs_attention`), for the `--json-status` line; `None` if it cannot be read.
pub(crate) fn row_after(dir: &Path, id: &str) -> Option<RunRow> {
    let st = State::open(dir).ok()?;
    durable::find(&st, id).ok().flatten()
}

/// The state database of `runs` subcommands: a missing one is exit 2 (nothing to look at).
pub(crate) fn open(dir: &Path) -> Result<State, i32> {
    if !dir.join(aether_runtime::state::DB_FILE).exists() {
        errln!(
            "error: no state database in `{}` (no durable run was started there)",
            dir.display()
        );
        return Err(2);
    }
    State::open(dir).map_err(|e| {
        errln!("error: {e}");
        1
    })
}

pub(crate) fn find_run(st: &State, id: &str) -> Result<RunRow, i32> {
    if !durable::valid_id(id) {
        errln!("error: `{id}` is not a run id: use 1 to 64 letters, digits, `_` or `-`");
        return Err(2);
    }
    match durable::find(st, id) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => {
            errln!("error: no run `{id}` (see `aether runs list`)");
            Err(2)
        }
        Err(e) => {
            errln!("error: {e}");
            Err(1)
        }
    }
}
