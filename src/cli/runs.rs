//! `aether runs` and the durable side of `aether run --durable / --id`: attach to a run,
//! record how it ended, list, show, resume and cancel runs (docs/durable.md).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{json, Value as Json};

use aether_runtime::durable::{self, ClaimError, RunRow};
use aether_runtime::state::State;
use aether_syntax::ResultCode;

use super::run::Outcome;
use super::stdio::{errln, outln};

#[derive(Args, Debug)]
pub(crate) struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
    /// Directory of the state database [default: .aetherra].
    #[arg(long, value_name = "DIR", global = true)]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum RunsCommand {
    /// List durable runs, newest first.
    List {
        /// Only runs with this status (pending, running, waiting, needs_attention,
        /// succeeded, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one run, and with --journal its journal entries.
    Show {
        id: String,
        #[arg(long)]
        journal: bool,
        #[arg(long)]
        json: bool,
    },
    /// Resume an unfinished run: replay its script, recorded effects returning their results.
    Resume {
        id: String,
        /// Resume even though the script changed since the run started.
        #[arg(long)]
        allow_changed: bool,
        /// Print a JSON status line on stdout after the program's output.
        #[arg(long)]
        json_status: bool,
    },
    /// Cancel an unfinished run (refused while a live process runs it).
    Cancel { id: String },
}

const STATUSES: &[&str] = &[
    "pending",
    "running",
    "waiting",
    "needs_attention",
    "succeeded",
    "failed",
    "cancelled",
];

fn open(dir: &Path) -> Result<State, i32> {
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

fn args_json(args: &[(String, String)]) -> String {
    let m: std::collections::BTreeMap<&str, &str> =
        args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    json!(m).to_string()
}

/// The recorded result of a finished run: its exit code, after saying so on stderr.
fn report_finished(row: &RunRow) -> i32 {
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
    match durable::claim(&st, &id, allow_changed.then_some(sha.as_str())) {
        Ok(_) => {
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

/// Record how the durable run `id` ended.
pub(crate) fn record_end(host: &mut aether_runtime::RuntimeHost, id: &str, outcome: &Outcome) {
    let needs_attention = host.take_journal().is_some_and(|j| j.needs_attention);
    let status = if outcome.code == ResultCode::Success {
        "succeeded"
    } else if needs_attention {
        "needs_attention"
    } else {
        "failed"
    };
    let result = json!({
        "code": outcome.code.number(),
        "code_name": outcome.code.name(),
        "message": outcome.message,
        "line": outcome.line,
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

fn row_json(r: &RunRow) -> Json {
    json!({
        "id": r.id,
        "file": r.file,
        "script_sha256": r.script_sha256,
        "args": serde_json::from_str::<Json>(&r.args).unwrap_or(Json::Null),
        "status": r.status,
        "owner_host": r.owner_host,
        "owner_pid": r.owner_pid,
        "lease_until": r.lease_until,
        "result": r.result.as_deref().and_then(|t| serde_json::from_str::<Json>(t).ok()),
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    })
}

fn find_run(st: &State, id: &str) -> Result<RunRow, i32> {
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

pub(crate) fn run(args: RunsArgs) -> i32 {
    let dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".aetherra"));
    match command(args.command, &dir) {
        Ok(code) | Err(code) => code,
    }
}

fn command(cmd: RunsCommand, dir: &Path) -> Result<i32, i32> {
    match cmd {
        RunsCommand::List { status, json } => {
            if let Some(s) = status.as_deref().filter(|s| !STATUSES.contains(s)) {
                errln!(
                    "error: `{s}` is not a status: one of {}",
                    STATUSES.join(", ")
                );
                return Err(2);
            }
            let st = open(dir)?;
            let rows = durable::list(&st, status.as_deref()).map_err(|e| {
                errln!("error: {e}");
                1
            })?;
            if json {
                let all: Vec<Json> = rows.iter().map(row_json).collect();
                outln!("{}", Json::Array(all));
            } else {
                for r in &rows {
                    outln!("{}  {:<15}  {}  {}", r.id, r.status, r.updated_at, r.file);
                }
            }
            Ok(0)
        }
        RunsCommand::Show { id, journal, json } => {
            let st = open(dir)?;
            let row = find_run(&st, &id)?;
            let entries = if journal {
                durable::journal(&st, &id).map_err(|e| {
                    errln!("error: {e}");
                    1
                })?
            } else {
                Vec::new()
            };
            if json {
                let mut j = row_json(&row);
                if journal {
                    j["journal"] = entries
                        .iter()
                        .map(|e| {
                            json!({
                                "fiber": e.fiber, "seq": e.seq, "completion": e.completion,
                                "name": e.name, "digest": e.digest, "kind": e.kind,
                                "result": e.result.as_deref().and_then(|t| serde_json::from_str::<Json>(t).ok()),
                                "started_at": e.started_at, "ended_at": e.ended_at,
                            })
                        })
                        .collect();
                }
                outln!("{j}");
            } else {
                outln!("run {}: {}", row.id, row.status);
                outln!("  file     {}", row.file);
                outln!("  args     {}", row.args);
                outln!("  started  {}", row.created_at);
                outln!("  updated  {}", row.updated_at);
                if let Some(r) = &row.result {
                    outln!("  result   {r}");
                }
                for e in &entries {
                    let result = e.result.as_deref().unwrap_or("(no outcome: indeterminate)");
                    outln!(
                        "  {}#{} {:<8} {} {}",
                        e.fiber,
                        e.seq,
                        e.kind,
                        e.name,
                        result
                    );
                }
            }
            Ok(0)
        }
        RunsCommand::Resume {
            id,
            allow_changed,
            json_status,
        } => {
            let st = open(dir)?;
            let row = find_run(&st, &id)?;
            if durable::FINISHED.contains(&row.status.as_str()) {
                return Err(report_finished(&row));
            }
            drop(st);
            let mut words = vec![
                "aether run".to_string(),
                row.file.clone(),
                "--id".into(),
                id,
                "--state-dir".into(),
                dir.display().to_string(),
            ];
            if let Ok(Json::Object(m)) = serde_json::from_str::<Json>(&row.args) {
                for (k, v) in m {
                    words.push("--arg".into());
                    words.push(format!("{k}={}", v.as_str().unwrap_or_default()));
                }
            }
            if allow_changed {
                words.push("--allow-changed".into());
            }
            if json_status {
                words.push("--json-status".into());
            }
            Ok(super::run::run_words(words))
        }
        RunsCommand::Cancel { id } => {
            let st = open(dir)?;
            find_run(&st, &id)?;
            match durable::cancel(&st, &id) {
                Ok(true) => {
                    errln!("run `{id}` cancelled");
                    Ok(0)
                }
                Ok(false) => {
                    errln!("error: run `{id}` is already finished");
                    Err(1)
                }
                Err(ClaimError::Owned(who)) => {
                    errln!("error: run `{id}` is being run by {who}: stop that process first");
                    Err(1)
                }
                Err(ClaimError::Finished(_)) => Err(1),
                Err(ClaimError::State(e)) => {
                    errln!("error: {e}");
                    Err(1)
                }
            }
        }
    }
}
