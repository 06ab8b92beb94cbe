//! The operator's `aether runs` subcommands: resolve an indeterminate entry, export and
//! verify a run's journal as hash-chained (optionally signed) evidence, list stuck runs and
//! prune finished ones (docs/durable.md, "Operating runs").

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{json, Value as Json};

use aether_runtime::durable::{self, Settle};

use super::durable::{find_run, open};
use super::stdio::{errln, out, outln};

#[derive(Subcommand, Debug)]
pub(crate) enum OpsCommand {
    /// Settle an indeterminate journal entry (an effect whose outcome is unknown); `runs
    /// resume ID` then continues with that outcome.
    #[command(group(clap::ArgGroup::new("outcome").required(true).args(["succeeded", "failed", "retry"])))]
    Resolve {
        id: String,
        /// The entry as FIBER:SEQ (`0:3`; `runs show ID --journal` prints it as `0#3`).
        entry: String,
        /// The effect happened and returned this JSON value.
        #[arg(long, value_name = "JSON")]
        succeeded: Option<String>,
        /// The effect failed with this message (the call raises it on resume).
        #[arg(long, value_name = "MSG")]
        failed: Option<String>,
        /// The effect did not happen: run it again on resume, with the same idempotency key.
        #[arg(long)]
        retry: bool,
    },
    /// Write a run's row and journal as JSON lines in a SHA-256 hash chain.
    Export {
        id: String,
        /// The file to write (`-`: stdout).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Sign the export with this `aether keygen` secret key.
        #[arg(long, value_name = "SECRET")]
        key: Option<PathBuf>,
    },
    /// Check an export's hash chain and, when it is signed, its signature.
    Verify {
        file: PathBuf,
        /// The signer's public key [default: the trusted keyring, .aetherra/keys/trusted].
        #[arg(long, value_name = "PUB")]
        pubkey: Option<PathBuf>,
    },
    /// Runs that need someone: needs_attention, or running with a dead owner or an
    /// expired lease.
    Stuck {
        /// Only runs not updated for this long (`30m`, `2h`, `7d`).
        #[arg(long, value_name = "D")]
        older_than: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete finished runs (succeeded, failed, cancelled) and their journals.
    Prune {
        /// Only runs finished this long ago or more (`30m`, `2h`, `7d`).
        #[arg(long, value_name = "D")]
        older_than: String,
    },
}

fn age(text: &str) -> Result<f64, i32> {
    durable::parse_age(text).ok_or_else(|| {
        errln!("error: `{text}` is not an age: use a number and s, m, h or d (`30m`, `7d`)");
        2
    })
}

fn state_err(e: impl std::fmt::Display) -> i32 {
    errln!("error: {e}");
    1
}

pub(crate) fn command(cmd: OpsCommand, dir: &Path) -> Result<i32, i32> {
    match cmd {
        OpsCommand::Resolve {
            id,
            entry,
            succeeded,
            failed,
            retry,
        } => {
            let Some((fiber, seq)) = durable::parse_entry_key(&entry) else {
                errln!("error: `{entry}` is not a journal entry: write FIBER:SEQ, such as `0:3` (see `aether runs show {id} --journal`)");
                return Err(2);
            };
            let settle = match (succeeded, failed, retry) {
                (Some(text), _, _) => match serde_json::from_str::<Json>(&text) {
                    Ok(v) => Settle::Succeeded(v),
                    Err(e) => {
                        errln!("error: --succeeded takes the effect's result as JSON (`\"done\"`, `{{\"ok\": 1}}`, `null`): {e}");
                        return Err(2);
                    }
                },
                (None, Some(msg), _) => Settle::Failed(msg),
                _ => Settle::Retry,
            };
            let st = open(dir)?;
            find_run(&st, &id)?;
            let name =
                durable::resolve(&st, &id, &fiber, seq, &settle).map_err(|e| state_err(e.0))?;
            let how = match settle {
                Settle::Succeeded(v) => format!("succeeded with {v}"),
                Settle::Failed(m) => format!("failed: {m}"),
                Settle::Retry => "to be run again".to_string(),
            };
            errln!("run `{id}`: entry {fiber}:{seq} (`{name}`) resolved as {how}; continue with `aether runs resume {id}`");
            Ok(0)
        }
        OpsCommand::Export { id, out: path, key } => {
            let st = open(dir)?;
            let row = find_run(&st, &id)?;
            let entries = durable::journal(&st, &id).map_err(state_err)?;
            let mut text = durable::export_lines(&row, &entries);
            if let Some(k) = key {
                let secret = super::signing::load_secret(Some(&k)).map_err(state_err)?;
                text = aether_sign::sign(&text, &secret);
            }
            if path == Path::new("-") {
                out!("{text}");
            } else {
                std::fs::write(&path, &text)
                    .map_err(|e| state_err(format!("cannot write `{}`: {e}", path.display())))?;
                errln!(
                    "run `{id}`: {} journal entries exported to `{}`",
                    entries.len(),
                    path.display()
                );
            }
            Ok(0)
        }
        OpsCommand::Verify { file, pubkey } => verify(&file, pubkey.as_deref()),
        OpsCommand::Stuck { older_than, json } => {
            let limit = older_than.as_deref().map(age).transpose()?;
            let st = open(dir)?;
            let rows = durable::stuck(&st, limit).map_err(state_err)?;
            if json {
                let all: Vec<Json> = rows
                    .iter()
                    .map(|(r, why)| {
                        let mut j = durable::row_json(r);
                        j["reason"] = json!(why);
                        j
                    })
                    .collect();
                outln!("{}", Json::Array(all));
            } else {
                for (r, why) in &rows {
                    let waits = super::durable::waits_text(r);
                    outln!("{}  {}  {}  {why}{waits}", r.id, r.updated_at, r.file);
                }
            }
            Ok(0)
        }
        OpsCommand::Prune { older_than } => {
            let limit = age(&older_than)?;
            let st = open(dir)?;
            let removed = durable::prune(&st, limit).map_err(state_err)?;
            for (id, status, n) in &removed {
                outln!("removed {id} ({status}, {n} journal entries)");
            }
            errln!("{} finished runs removed", removed.len());
            Ok(0)
        }
    }
}

/// `runs verify FILE`: the hash chain, then the signature when the file has one.
fn verify(file: &Path, pubkey: Option<&Path>) -> Result<i32, i32> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| state_err(format!("cannot read `{}`: {e}", file.display())))?;
    let header = aether_sign::split_header(&text);
    let signed = !matches!(header, aether_sign::Header::None);
    let body = &text[header.body_start()..];
    let first = if signed { 2 } else { 1 };
    let fail = |m: String| {
        errln!("error: `{}`: {m}", file.display());
        1
    };
    let v = durable::verify_chain(body, first).map_err(fail)?;
    let signer = if signed {
        let trust = match pubkey {
            Some(p) => {
                let key = std::fs::read_to_string(p)
                    .map_err(|e| fail(format!("cannot read `{}`: {e}", p.display())))?;
                let (keyring, errors) =
                    aether_sign::Keyring::from_public_keys([(p.display().to_string(), key)]);
                if let Some(e) = errors.first() {
                    return Err(fail(format!("bad public key: {e}")));
                }
                (keyring, aether_sign::Revocations::default())
            }
            None => {
                let t = super::signing::read_trust(None, None).map_err(fail)?;
                (t.keys.keyring, t.keys.revoked)
            }
        };
        let check = aether_sign::verify(&text, &trust.0, &trust.1);
        if !check.is_ok() {
            return Err(fail(format!("line 1: signature: {}", check.message())));
        }
        format!(", {}", check.message())
    } else if pubkey.is_some() {
        return Err(fail("not signed, but --pubkey asks for a signature".into()));
    } else {
        ", unsigned".to_string()
    };
    outln!(
        "ok: run `{}`, {} journal entries, hash chain intact{signer}",
        v.run_id,
        v.entries
    );
    Ok(0)
}
