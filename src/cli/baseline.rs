//! `aether baseline`: the check result of every workflow as counts by code, for
//! `aether gate` to compare against a reference (the seed's parse baseline).

use super::stdio::errln;
use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map, Value};

use aether_syntax::ResultCode;

use super::check::check_all;
use super::classify::rate;
use super::discover::{discover_tree, shown};
use super::report::{check_file, load_suppressions, Options};

#[derive(Args, Debug)]
pub(crate) struct BaselineArgs {
    /// Directory searched for *.aether files (or a single file).
    #[arg(value_name = "ROOT", default_value = ".")]
    root: PathBuf,
    /// Where the baseline is written (`-` for stdout).
    #[arg(long, value_name = "FILE", default_value = "parse_baseline.json")]
    output: PathBuf,
    /// Suppression file [default: .aetherra/workflow_suppressions.txt if present]; a
    /// suppressed failure counts as SUCCESS, as in `aether check`.
    #[arg(long, value_name = "FILE")]
    suppressions: Option<PathBuf>,
    /// Number of files checked at once [default: number of CPUs].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    #[command(flatten)]
    sig: super::signing::StrictSignatureArgs,
}

/// Stack size of checking threads (see `aether check`).
const STACK_BYTES: usize = 64 << 20;

pub(crate) fn run(args: BaselineArgs) -> i32 {
    let suppressions = match load_suppressions(args.suppressions.as_deref()) {
        Ok((_, s)) => s,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    let files = match discover_tree(&args.root) {
        Ok(files) => files,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    let functions = super::function_table();
    // Strict signature mode counts as in `check`: a refused file is a SIGNATURE_ERROR.
    let signatures = match args.sig.strict_trust() {
        Ok(t) => t,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    let opts = Options {
        suppressions,
        signatures,
        ..Options::default()
    };
    let jobs = super::check::worker_count(args.jobs);
    let reports = check_all(&files, jobs, STACK_BYTES, |p| {
        check_file(p, functions.registry(), &opts)
    });
    // Counts keyed by code name, in code order (SUCCESS first).
    let mut counts: BTreeMap<i32, (ResultCode, u64)> = BTreeMap::new();
    for r in &reports {
        counts
            .entry(r.status.code.number())
            .or_insert((r.status.code, 0))
            .1 += 1;
    }
    let mut by_code = Map::new();
    for (code, n) in counts.values() {
        by_code.insert(code.name().to_string(), json!(n));
    }
    let failed = reports.iter().filter(|r| !r.status.ok).count();
    let suppressed = reports
        .iter()
        .filter(|r| r.status.suppressed.is_some())
        .count();
    let files_json: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "path": shown(&r.display),
                "ok": r.status.ok,
                "code": r.status.code.number(),
                "code_name": r.status.code.name(),
                "line": r.status.line,
                "message": r.status.message,
            })
        })
        .collect();
    let doc = json!({
        "timestamp": super::output::timestamp(),
        "total": reports.len(),
        "by_code": by_code,
        "failure_rate": rate(failed, reports.len()),
        "suppressed": suppressed,
        "files": files_json,
    });
    let text = serde_json::to_string_pretty(&doc).expect("JSON values always serialise") + "\n";
    if let Err(e) = super::trends::write_output(&args.output, text.as_bytes()) {
        errln!("error: cannot write `{}`: {e}", args.output.display());
        return ResultCode::IoError.number();
    }
    errln!(
        "baseline of {} file{}: {} failed ({:.2}%){}",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        failed,
        rate(failed, reports.len()) * 100.0,
        if args.output == std::path::Path::new("-") {
            String::new()
        } else {
            format!(", written to {}", args.output.display())
        }
    );
    0
}
