//! `aether check`: parse and validate files in parallel and report for people or for CI.

use super::stdio::{err, errln};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::{Args, ValueEnum};

use super::discover::discover;
use super::output;
use super::render::render_file;
use super::report::{
    check_file, load_suppressions, stale_suppressions, warn_stale, FileReport, Options,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Rich diagnostics with source snippets on stderr.
    Human,
    /// A JSON array on stdout: one object per file with its diagnostics.
    Json,
    /// SARIF 2.1.0 on stdout, for code-scanning upload.
    Sarif,
    /// GitHub Actions annotations (`::error file=..::`) on stdout.
    Github,
}

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// Files or directories (searched recursively for *.aether).
    #[arg(required_unless_present = "explain", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print the page of a rule (as `aether explain RULE`) and check nothing.
    #[arg(long, value_name = "RULE", conflicts_with = "paths")]
    explain: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Print one JSON status line per file on stdout, last.
    #[arg(long)]
    json_status: bool,
    /// Print `AETHER_ERROR_CODE:<n>` (the exit status) on stderr.
    #[arg(long)]
    emit_error_code: bool,
    /// Make warnings fail the check.
    #[arg(long)]
    strict: bool,
    /// Suppression file: one fingerprint per line [default: .aetherra/workflow_suppressions.txt if present].
    #[arg(long, value_name = "FILE")]
    suppressions: Option<PathBuf>,
    #[command(flatten)]
    sig: super::signing::StrictSignatureArgs,
    /// Diagnostics shown per file in the human format, then "... and N more" (0: all);
    /// `--format json`, `sarif` and `github` always list every one.
    #[arg(long, value_name = "N", default_value_t = super::render::DEFAULT_MAX_ERRORS)]
    max_errors: usize,
    /// Number of files checked at once [default: number of CPUs].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
}

/// Exit status 2, announced with `AETHER_ERROR_CODE:2` when asked for.
fn usage_error(emit_error_code: bool) -> i32 {
    if emit_error_code {
        errln!("AETHER_ERROR_CODE:2");
    }
    2
}

/// Stack size of checking threads: the parser and checker recurse over the tree, whose
/// depth the layout pass bounds; this leaves ample room for the deepest accepted input.
const CHECK_STACK_BYTES: usize = 64 << 20;

pub(crate) fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

pub(crate) fn run(args: CheckArgs) -> i32 {
    if let Some(rule) = &args.explain {
        return super::explain::explain(rule);
    }
    let (suppression_file, suppressions) = match load_suppressions(args.suppressions.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            errln!("error: {e}");
            return usage_error(args.emit_error_code);
        }
    };
    let signatures = match args.sig.strict_trust() {
        Ok(t) => t,
        Err(e) => {
            errln!("error: {e}");
            return usage_error(args.emit_error_code);
        }
    };
    let opts = Options {
        strict: args.strict,
        suppressions,
        signatures,
        keep_analysis: false,
    };
    let files = discover(&args.paths);
    if files.is_empty() {
        errln!("warning: no .aether files found under the given paths");
    }
    let functions = super::function_table();
    let jobs = worker_count(args.jobs);
    let reports = check_all(&files, jobs, CHECK_STACK_BYTES, |p| {
        check_file(p, functions.registry(), &opts)
    });

    let ts = output::timestamp();
    let mut out = super::stdio::Stdout;
    match args.format {
        Format::Human => {
            let color = color_enabled();
            let mut text = String::new();
            for r in &reports {
                render_file(r, color, args.max_errors, &mut text);
            }
            text.push_str(&summary(&reports));
            err!("{text}");
        }
        Format::Json => {
            let _ = writeln!(out, "{}", output::json_report(&reports, &ts));
        }
        Format::Sarif => {
            let _ = writeln!(out, "{}", output::sarif_report(&reports));
        }
        Format::Github => {
            let _ = write!(out, "{}", output::github_report(&reports));
        }
    }
    if args.json_status {
        for r in &reports {
            let _ = writeln!(out, "{}", output::status_line(r, &ts));
        }
    }
    let _ = out.flush();
    if let Some(file) = &suppression_file {
        let used = reports
            .iter()
            .flat_map(|r| &r.findings)
            .filter_map(|f| f.suppressed_by.as_deref());
        warn_stale(file, &stale_suppressions(&opts.suppressions, used), false);
    }
    let code = reports
        .iter()
        .find(|r| !r.status.ok)
        .map_or(0, |r| r.status.code.number());
    if args.emit_error_code {
        errln!("AETHER_ERROR_CODE:{code}");
    }
    // The process exits with this status next (`cli::main`, then `std::process::exit`): the
    // reports' memory goes back with it, without freeing each file's text and findings.
    std::mem::forget(reports);
    code
}

/// `--jobs`, or the number of CPUs.
pub(crate) fn worker_count(jobs: Option<u16>) -> usize {
    jobs.map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Check every file on `jobs` threads with `stack` bytes of stack; results come back in
/// input order.
pub(crate) fn check_all<F, R>(files: &[PathBuf], jobs: usize, stack: usize, check: F) -> Vec<R>
where
    F: Fn(&std::path::Path) -> R + Sync,
    R: Send,
{
    let jobs = jobs.clamp(1, files.len().max(1));
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<R>> = (0..files.len()).map(|_| None).collect();
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(p) = files.get(i) else { break };
            done.push((i, check(p)));
        }
        done
    };
    let chunks: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        // Start as many workers as the system allows, up to `jobs`: a system short of threads
        // or memory (`ulimit`) gets fewer workers, and with none the calling thread does it all.
        let mut handles = Vec::new();
        for _ in 0..jobs {
            match std::thread::Builder::new()
                .stack_size(stack)
                .spawn_scoped(s, work)
            {
                Ok(h) => handles.push(h),
                Err(_) => break,
            }
        }
        let mut chunks: Vec<Vec<(usize, R)>> = handles
            .into_iter()
            .map(|h| h.join().expect("checking catches its own panics"))
            .collect();
        if chunks.is_empty() {
            chunks.push(work());
        }
        chunks
    });
    for (i, r) in chunks.into_iter().flatten() {
        slots[i] = Some(r);
    }
    slots
        .into_iter()
        .map(|r| r.expect("every file was checked"))
        .collect()
}

fn summary(reports: &[FileReport]) -> String {
    let failed = reports.iter().filter(|r| !r.status.ok).count();
    let suppressed = reports
        .iter()
        .flat_map(|r| &r.findings)
        .filter(|f| f.suppressed)
        .count();
    let count = |sev| {
        reports
            .iter()
            .flat_map(|r| &r.findings)
            .filter(|f| !f.suppressed && f.diag.severity() == sev)
            .count()
    };
    let errors = count(aether_syntax::Severity::Error);
    let warnings = count(aether_syntax::Severity::Warning);
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let mut line = format!(
        "checked {}: {} passed, {} failed ({}, {})",
        plural(reports.len(), "file"),
        reports.len() - failed,
        failed,
        plural(errors, "error"),
        plural(warnings, "warning"),
    );
    if suppressed > 0 {
        line.push_str(&format!("; {suppressed} suppressed"));
    }
    line.push('\n');
    line
}
