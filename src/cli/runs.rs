//! `aether runs` and the durable side of `aether run --durable / --id`: attach to a run,
//! record how it ended, list, show, resume and cancel runs (docs/durable.md).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{json, Value as Json};

use aether_runtime::durable::{self, entry_json, row_json, signals, ClaimError, RunRow};

use super::durable::{find_run, open, report_finished};
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
    /// With --due: every waiting run whose timer is due or whose signal arrived; with
    /// --all-interrupted: every running run whose owner process is gone.
    Resume {
        #[arg(required_unless_present_any = ["due", "all_interrupted"], conflicts_with_all = ["due", "all_interrupted"])]
        id: Option<String>,
        #[arg(long)]
        due: bool,
        #[arg(long)]
        all_interrupted: bool,
        /// Resume even though the script changed since the run started.
        #[arg(long)]
        allow_changed: bool,
        /// Print a JSON status line on stdout after the program's output.
        #[arg(long)]
        json_status: bool,
    },
    /// Cancel an unfinished run (refused while a live process runs it).
    Cancel { id: String },
    /// Send signal NAME to an unfinished run; its `wait_signal(NAME)` returns the data.
    Signal {
        id: String,
        name: String,
        /// The payload, as JSON.
        #[arg(long, value_name = "JSON", default_value = "null")]
        data: String,
        /// A de-duplication key: a second signal with the same key is ignored.
        #[arg(long, value_name = "K")]
        key: Option<String>,
    },
    #[command(flatten)]
    Ops(super::runs_ops::OpsCommand),
}

use durable::STATUSES;

fn state_error(e: aether_runtime::state::StateError) -> i32 {
    errln!("error: {e}");
    1
}

/// Replay run `row` in this process (`aether run FILE --id ID` with its recorded args).
fn resume(row: &RunRow, dir: &Path, allow_changed: bool, json_status: bool) -> i32 {
    let mut words = vec![
        "aether run".to_string(),
        row.file.clone(),
        "--id".into(),
        row.id.clone(),
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
    super::run::run_words(words)
}

/// Resume each of `ids` in turn (`--due`, `--all-interrupted`): the exit status is 0 when
/// every one ended or went back to waiting, else the first other status.
fn resume_all(ids: &[String], dir: &Path) -> i32 {
    let mut first_bad = 0;
    for id in ids {
        let row = match open(dir).and_then(|st| find_run(&st, id)) {
            Ok(row) => row,
            Err(code) => {
                first_bad = if first_bad == 0 { code } else { first_bad };
                continue;
            }
        };
        errln!("resuming run `{id}`");
        let code = resume(&row, dir, false, false);
        if code != 0 && first_bad == 0 {
            first_bad = code;
        }
    }
    errln!("resumed {} run(s)", ids.len());
    first_bad
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
                    outln!(
                        "{}  {:<15}  {}  {}{}",
                        r.id,
                        r.status,
                        r.updated_at,
                        r.file,
                        super::durable::waits_text(r)
                    );
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
            let mail = signals::mailbox(&st, &id).map_err(|e| {
                errln!("error: {e}");
                1
            })?;
            if json {
                let mut j = row_json(&row);
                j["signals"] = mail
                    .iter()
                    .map(|m| {
                        json!({
                            "name": m.name, "key": m.key, "sent_at": m.sent_at,
                            "data": serde_json::from_str::<Json>(&m.data).unwrap_or(Json::Null),
                            "consumed_at": m.consumed_at, "consumed_by": m.consumed_by,
                        })
                    })
                    .collect();
                if journal {
                    j["journal"] = entries.iter().map(entry_json).collect();
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
                for name in &row.waiting_for {
                    outln!("  waits    for signal `{name}`");
                }
                if let Some(at) = row.wake_at {
                    outln!("  wakes    {}", durable::unix_text(at));
                }
                for m in &mail {
                    let state = m
                        .consumed_by
                        .as_deref()
                        .map_or_else(|| "buffered".to_string(), |by| format!("consumed by {by}"));
                    outln!("  signal   {} {} ({state})", m.name, m.data);
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
            due,
            all_interrupted,
            allow_changed,
            json_status,
        } => {
            let st = open(dir)?;
            let Some(id) = id else {
                let mut ids = if due {
                    durable::due(&st)
                } else {
                    Ok(Vec::new())
                }
                .map_err(state_error)?;
                if all_interrupted {
                    ids.extend(durable::interrupted(&st).map_err(state_error)?);
                }
                drop(st);
                return Ok(resume_all(&ids, dir));
            };
            let row = find_run(&st, &id)?;
            if durable::FINISHED.contains(&row.status.as_str()) {
                return Err(report_finished(&row));
            }
            drop(st);
            Ok(resume(&row, dir, allow_changed, json_status))
        }
        RunsCommand::Signal {
            id,
            name,
            data,
            key,
        } => {
            let st = open(dir)?;
            find_run(&st, &id)?;
            super::signal::send(&st, &id, &name, &data, key.as_deref())
        }
        RunsCommand::Ops(op) => super::runs_ops::command(op, dir),
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
