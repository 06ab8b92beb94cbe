//! `aether classify`: triage a tree of workflows. Every file is checked and, unless
//! `--check-only`, the ones that check clean are run in-process in a throwaway state
//! directory (profile `test`, a time budget), so runtime failures are found without
//! touching the real state. Results are bucketed by code (the category), fingerprinted,
//! matched against the suppression file, written as JSON and markdown, and kept in a
//! history with a rolling `trends.json`.

use super::stdio::errln;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{json, Map, Value};

use aether_check::fingerprint::{fingerprint, normalize_snippet, stable_fingerprint};
use aether_check::Phase;
use aether_syntax::{LineIndex, ResultCode};

mod legacy;

use super::check::check_all;
use super::discover::{discover_tree, shown};
use super::report::{
    check_file, load_suppressions, stale_suppressions, warn_stale, FileReport, Options,
};
use super::run::{execute, Execution, Profile, Source};
use super::util::{md_cell, Trust};

#[derive(Args, Debug)]
pub(crate) struct ClassifyArgs {
    /// Directory searched for *.aether files (or a single file).
    #[arg(value_name = "ROOT", default_value = ".")]
    root: PathBuf,
    /// Number of files handled at once [default: number of CPUs].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// The JSON report (`-` or a non-regular file such as /dev/stdout is written in place).
    #[arg(long, value_name = "FILE", default_value = "workflow_failures.json")]
    output: PathBuf,
    /// The markdown report with the `| Category | Count | Examples |` table.
    #[arg(long, value_name = "FILE", default_value = "workflow_failures.md")]
    markdown: PathBuf,
    /// Where each run's snapshot and the rolling trends.json are kept.
    #[arg(long, value_name = "DIR", default_value = ".aetherra/workflow_history")]
    history_dir: PathBuf,
    /// Do not write a history snapshot or update trends.json.
    #[arg(long, conflicts_with = "chart")]
    no_history: bool,
    /// Suppression file [default: .aetherra/workflow_suppressions.txt if present].
    #[arg(long, value_name = "FILE")]
    suppressions: Option<PathBuf>,
    /// Only the first N files (in path order).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Time budget of each run (`8s`, `500ms`, `1m`, or seconds).
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = super::run::parse_timeout)]
    timeout: Duration,
    /// Memory budget of each run (`256MiB`, `1GB`, or bytes); the smaller of this and a
    /// file's `policy: max_memory` applies. Files run `--jobs` at a time, each with its own.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = aether_check::spec::parse_size)]
    max_memory: u64,
    /// Check only: do not run the files that check clean.
    #[arg(long)]
    check_only: bool,
    /// Also draw the trend history as an SVG line chart into FILE.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    #[command(flatten)]
    sig: super::signing::StrictSignatureArgs,
}

/// The triage result of one file.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) path: String,
    pub(crate) ok: bool,
    pub(crate) category: String,
    pub(crate) error: Option<String>,
    pub(crate) signature_verified: bool,
    pub(crate) risk_score: u32,
    pub(crate) code: ResultCode,
    pub(crate) phase: Phase,
    pub(crate) line: Option<u32>,
    pub(crate) fingerprint: Option<String>,
    pub(crate) stable_fingerprint: Option<String>,
    pub(crate) suppressed: bool,
    /// Every suppression entry a finding of this file used (not only the verdict's), for
    /// stale-entry detection. Fix: this used to hold only the entry behind the verdict, so
    /// an entry suppressing a second error, a warning, or an error next to an unsuppressed
    /// one was reported stale by `classify` while `check` (which looks at every finding)
    /// saw it used.
    used_suppressions: Vec<String>,
    /// The first 16 hex characters of SHA-256 over the file's bytes (None: unreadable).
    content_hash: Option<String>,
    /// The first file (in path order) with the same content, when this one is a copy.
    duplicate_of: Option<String>,
    /// The legacy dialect and constructs `check` reports in the file.
    legacy: legacy::FileLegacy,
}

impl Record {
    /// Counts as a failure: not ok and not suppressed.
    pub(crate) fn failed(&self) -> bool {
        !self.ok
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "path": self.path,
            "ok": self.ok,
            "category": self.category,
            "error": self.error,
            "signature_verified": self.signature_verified,
            "risk_score": self.risk_score,
            "code": self.code.number(),
            "code_name": self.code.name(),
            "phase": self.phase.as_str(),
            "line": self.line,
            "fingerprint": self.fingerprint,
            "stable_fingerprint": self.stable_fingerprint,
            "suppressed": self.suppressed,
        });
        // Only when there is something to say, so reports of Aether trees keep their shape.
        if let Some(obj) = v.as_object_mut() {
            if let Some(d) = self.legacy.dialect {
                obj.insert("dialect".into(), json!(d));
            }
            if let Some(first) = &self.duplicate_of {
                obj.insert("duplicate_of".into(), json!(first));
            }
        }
        v
    }
}

/// The record of a file from its check report alone (a failure, or a clean file when
/// nothing runs it).
fn record_of_check(r: &FileReport, signature_verified: bool, risk_score: u32) -> Record {
    let s = &r.status;
    let finding = s.finding.and_then(|i| r.findings.get(i));
    let code = s.suppressed.unwrap_or(s.code);
    let category = s.category();
    Record {
        path: shown(&r.display),
        ok: s.ok,
        category,
        error: finding.map(|f| f.diag.message().to_string()),
        signature_verified,
        risk_score,
        code,
        phase: s.phase,
        line: s.line,
        fingerprint: finding.map(|f| f.fingerprint.clone()),
        stable_fingerprint: finding.map(|f| f.stable_fingerprint.clone()),
        suppressed: s.suppressed.is_some(),
        used_suppressions: r
            .findings
            .iter()
            .filter_map(|f| f.suppressed_by.clone())
            .collect(),
        content_hash: r
            .source
            .as_deref()
            .map(|t| aether_check::fingerprint::content_hash(t.as_bytes())),
        duplicate_of: None,
        legacy: r
            .source
            .as_deref()
            .filter(|_| !s.ok)
            .map(|t| catch_unwind(AssertUnwindSafe(|| legacy::of_source(t))).unwrap_or_default())
            .unwrap_or_default(),
    }
}

/// What classification needs for every file.
struct Classifier<'a> {
    functions: aether_vm::FnTable,
    opts: Options,
    trust: Option<Trust>,
    /// Strict signature mode: plugins must have signed manifests.
    plugin_trust: Option<aether_runtime::security::Trust>,
    timeout: Duration,
    max_memory: u64,
    check_only: bool,
    /// The throwaway state directory every run sees (empty: each run's database is a
    /// fresh in-memory one, so runs never share state).
    state_dir: PathBuf,
    keyring: Option<&'a Path>,
    revoked: Option<&'a Path>,
}

impl Classifier<'_> {
    fn classify(&self, path: &Path) -> Record {
        let report = check_file(path, self.functions.registry(), &self.opts);
        let text = report.source.as_deref().unwrap_or("");
        let signature_verified = match (&self.trust, &report.source) {
            (Some(t), Some(text)) => {
                aether_sign::verify(text, &t.keys.keyring, &t.keys.revoked).is_ok()
            }
            _ => false,
        };
        let risk_score = match (&report.source, &report.analysis) {
            (Some(text), Some(analysis)) => catch_unwind(AssertUnwindSafe(|| {
                aether_check::risk::assess(text, &analysis.ast).score()
            }))
            .unwrap_or(0),
            _ => 0,
        };
        let mut record = record_of_check(&report, signature_verified, risk_score);
        if self.check_only || !report.status.ok || report.status.suppressed.is_some() {
            return record;
        }
        let Some(analysis) = &report.analysis else {
            return record;
        };
        // Run it: in-process, fresh state, profile test, the time budget; output discarded.
        let index = LineIndex::new(text);
        let exec = Execution {
            file: path,
            args: &[],
            timeout: Some(self.timeout),
            max_memory: Some(self.max_memory),
            profile: Profile::Test,
            state_dir: self.state_dir.clone(),
            events: None,
            keyring: self.keyring,
            revoked: self.revoked,
            strict_trust: self.plugin_trust.as_ref(),
            quiet: true,
            // Profile test enforces capabilities and the network allowlist anyway.
            require_capabilities: false,
            net_strict: false,
            diagnostics: false,
            throwaway: true,
            run_id: None,
            detach_waits: false,
        };
        let source = Source {
            text,
            analysis,
            index: &index,
            display: &report.display,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            execute(
                &exec,
                source,
                &self.functions,
                std::io::sink(),
                std::io::sink(),
            )
        }))
        .unwrap_or_else(|payload| super::run::Outcome {
            code: ResultCode::InternalError,
            message: format!(
                "internal error: {}",
                super::report::panic_message(payload.as_ref())
            ),
            line: None,
            span: None,
        });
        if outcome.code == ResultCode::Success {
            record.phase = Phase::Execute;
            return record;
        }
        // Where a wall-clock budget runs out depends on the machine's speed and load (the same
        // `while true:` loop stops on its condition in one run and in its body in the next),
        // so a timeout has no position: its line and fingerprints stay the same between runs.
        let (line, span) = if outcome.code == ResultCode::TimeoutError {
            (None, None)
        } else {
            (outcome.line, outcome.span)
        };
        let fp = fingerprint(outcome.code.name(), line, &outcome.message);
        let snippet = span
            .and_then(|s| text.get(s.start as usize..s.end.max(s.start) as usize))
            .map(normalize_snippet)
            .unwrap_or_default();
        let stable = stable_fingerprint(outcome.code.name(), &report.project_path, &snippet, 0);
        let suppressed_by = [&fp, &stable]
            .into_iter()
            .find(|f| self.opts.suppressions.contains(f))
            .cloned();
        let suppressed = suppressed_by.is_some();
        let mut used_suppressions = std::mem::take(&mut record.used_suppressions);
        used_suppressions.extend(suppressed_by);
        Record {
            ok: suppressed,
            category: if suppressed {
                format!("Suppressed-{}", outcome.code.name())
            } else {
                outcome.code.name().to_string()
            },
            error: Some(outcome.message),
            code: outcome.code,
            phase: Phase::Execute,
            line,
            fingerprint: Some(fp),
            stable_fingerprint: Some(stable),
            suppressed,
            used_suppressions,
            ..record
        }
    }
}

/// Stack size of classifying threads: checking recurses over the tree, and runs host a VM.
const STACK_BYTES: usize = 64 << 20;

/// Classify `files` on `jobs` threads (each with a deep stack); results in input order.
fn classify_all(files: &[PathBuf], jobs: usize, c: &Classifier<'_>) -> Vec<Record> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} classifying [{bar:40}] {pos}/{len} {elapsed_precise} (eta {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let records = check_all(files, jobs, STACK_BYTES, |p| {
        let r = c.classify(p);
        bar.inc(1);
        r
    });
    bar.finish_and_clear();
    records
}

/// Round to 4 decimals, as the seed's reports do.
pub(crate) fn rate(failed: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        (failed as f64 / total as f64 * 10_000.0).round() / 10_000.0
    }
}

/// The summary block: counts, categories (most frequent first, up to 5 example paths
/// each), stale suppression entries.
fn summary(
    records: &[Record],
    ts: &str,
    stale: &[(String, u32)],
    suppression_file: Option<&Path>,
) -> Value {
    let total = records.len();
    let failed = records.iter().filter(|r| r.failed()).count();
    let suppressed = records.iter().filter(|r| r.suppressed).count();
    let mut cats: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in records {
        cats.entry(&r.category).or_default().push(&r.path);
    }
    let mut ordered: Vec<(&str, Vec<&str>)> = cats.into_iter().collect();
    ordered.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let mut categories = Map::new();
    for (name, paths) in ordered {
        categories.insert(
            name.to_string(),
            json!({"count": paths.len(), "examples": paths.iter().take(5).collect::<Vec<_>>()}),
        );
    }
    let stale: Vec<Value> = stale
        .iter()
        .map(|(fp, line)| json!({"fingerprint": fp, "line": line}))
        .collect();
    json!({
        "total": total,
        "failed": failed,
        "failure_rate": rate(failed, total),
        "suppressed_failures": suppressed,
        "categories": categories,
        "suppression_file": suppression_file.map(|p| p.display().to_string()),
        "stale_suppressions": stale,
        "timestamp": ts,
    })
}

/// The markdown report.
fn markdown(doc: &Value, check_only: bool, timeout: Duration) -> String {
    let s = &doc["summary"];
    let mut out = String::from("# Workflow failure classification\n\n");
    out.push_str(&format!(
        "Generated {} ({}).\n\n",
        s["timestamp"].as_str().unwrap_or(""),
        if check_only {
            "check only".to_string()
        } else {
            format!(
                "checked, then run with a time budget of {}",
                aether_vm::format_duration(timeout.as_secs_f64() * 1000.0)
            )
        }
    ));
    let total = s["total"].as_u64().unwrap_or(0);
    let failed = s["failed"].as_u64().unwrap_or(0);
    out.push_str(&format!(
        "**{total} workflows: {failed} failed ({:.2}%), {} suppressed.**\n\n",
        s["failure_rate"].as_f64().unwrap_or(0.0) * 100.0,
        s["suppressed_failures"].as_u64().unwrap_or(0)
    ));
    out.push_str(&legacy::markdown(s, md_cell));
    out.push_str("| Category | Count | Examples |\n|---|---|---|\n");
    if let Some(cats) = s["categories"].as_object() {
        for (name, c) in cats {
            let examples: Vec<String> = c["examples"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|p| format!("`{}`", md_cell(p)))
                        .collect()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "| {name} | {} | {} |\n",
                c["count"].as_u64().unwrap_or(0),
                examples.join(", ")
            ));
        }
    }
    if let Some(stale) = s["stale_suppressions"].as_array().filter(|a| !a.is_empty()) {
        out.push_str("\n## Stale suppressions\n\nThese entries of the suppression file matched no finding; remove them if the problem is fixed.\n\n| Fingerprint | Line |\n|---|---|\n");
        for e in stale {
            out.push_str(&format!(
                "| `{}` | {} |\n",
                e["fingerprint"].as_str().unwrap_or(""),
                e["line"]
            ));
        }
    }
    out
}

pub(crate) fn run(args: ClassifyArgs) -> i32 {
    let (suppression_file, suppressions) = match load_suppressions(args.suppressions.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    let strict = match super::signing::strict_from_env() {
        Ok(on) => args.sig.strict_signatures || on,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    let trust = if strict {
        // As in `check`: strict mode needs a keyring, and says when it is empty.
        match super::signing::load_trust(args.sig.keyring.as_deref(), args.sig.revoked.as_deref()) {
            Ok(t) => Some(t),
            Err(e) => {
                errln!("error: {e}");
                return 2;
            }
        }
    } else {
        // Without strict mode an unreadable keyring only means nothing is verified.
        super::signing::read_trust(args.sig.keyring.as_deref(), args.sig.revoked.as_deref()).ok()
    };
    let signatures = trust.as_ref().filter(|_| strict).cloned();
    // Strict mode also loads only plugins whose manifests are signed, as `aether run` does.
    let plugin_trust = signatures.as_ref().map(|t| t.keys.clone());
    // The runtime's settings come from the environment: a bad one is a usage error once,
    // not a RUNTIME_ERROR recorded against every file (and in the history).
    if !args.check_only {
        if let Err(e) = aether_runtime::plugins::PluginSettings::from_env() {
            errln!("error: {e}");
            return 2;
        }
        if let Err(e) = aether_runtime::kernel::KernelSettings::from_vars(|k| std::env::var(k).ok())
        {
            errln!("error: {e}");
            return 2;
        }
    }
    let mut files = match discover_tree(&args.root) {
        Ok(files) => files,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    if let Some(n) = args.limit {
        files.truncate(n);
    }
    let jobs = super::check::worker_count(args.jobs);
    let throwaway = match tempfile::Builder::new()
        .prefix("aether-classify-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            errln!("error: cannot create a throwaway state directory: {e}");
            return ResultCode::IoError.number();
        }
    };
    let classifier = Classifier {
        functions: super::function_table(),
        opts: Options {
            strict: false,
            suppressions,
            signatures,
            keep_analysis: true,
        },
        trust,
        plugin_trust,
        timeout: args.timeout,
        max_memory: args.max_memory,
        check_only: args.check_only,
        state_dir: throwaway.path().to_path_buf(),
        keyring: args.sig.keyring.as_deref(),
        revoked: args.sig.revoked.as_deref(),
    };
    let mut records = classify_all(&files, jobs, &classifier);
    let entries = legacy_entries(&records);
    let dups = legacy::duplicate_of(&entries);
    for (r, d) in records.iter_mut().zip(dups) {
        r.duplicate_of = d;
    }

    let stale = match &suppression_file {
        Some(file) => {
            let stale = stale_suppressions(
                &classifier.opts.suppressions,
                records
                    .iter()
                    .flat_map(|r| r.used_suppressions.iter().map(String::as_str)),
            );
            warn_stale(file, &stale, !args.check_only);
            stale
        }
        None => Vec::new(),
    };
    let now = chrono::Utc::now();
    let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut summary = summary(&records, &ts, &stale, suppression_file.as_deref());
    if let Some(obj) = summary.as_object_mut() {
        legacy::extend_summary(obj, &legacy_entries(&records));
    }
    let doc = json!({
        "summary": summary,
        "workflows": records.iter().map(Record::to_json).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&doc).expect("JSON values always serialise") + "\n";
    if let Err(e) = super::trends::write_output(&args.output, text.as_bytes()) {
        errln!("error: cannot write `{}`: {e}", args.output.display());
        return ResultCode::IoError.number();
    }
    let md = markdown(&doc, args.check_only, args.timeout);
    if let Err(e) = super::trends::write_output(&args.markdown, md.as_bytes()) {
        errln!("error: cannot write `{}`: {e}", args.markdown.display());
        return ResultCode::IoError.number();
    }
    if !args.no_history {
        let failed = records.iter().filter(|r| r.failed()).count();
        if let Err(e) = super::trends::record(&args.history_dir, &text, now, failed, records.len())
        {
            errln!("error: {e}");
            return ResultCode::IoError.number();
        }
        if let Some(chart) = &args.chart {
            if let Err(e) = super::trends::draw(&args.history_dir, chart) {
                errln!("error: {e}");
                return ResultCode::IoError.number();
            }
        }
    }
    let s = &doc["summary"];
    errln!(
        "classified {} workflow{}: {} failed ({:.2}%), {} suppressed",
        records.len(),
        if records.len() == 1 { "" } else { "s" },
        s["failed"],
        s["failure_rate"].as_f64().unwrap_or(0.0) * 100.0,
        s["suppressed_failures"],
    );
    if let Some(cats) = s["categories"].as_object() {
        for (name, c) in cats.iter().filter(|(n, _)| *n != "SUCCESS") {
            errln!("  {name}: {}", c["count"]);
        }
    }
    for line in legacy::stderr_lines(s) {
        errln!("{line}");
    }
    0
}

/// What [`legacy`] needs of each record.
fn legacy_entries(records: &[Record]) -> Vec<legacy::Entry<'_>> {
    records
        .iter()
        .map(|r| legacy::Entry {
            path: &r.path,
            category: &r.category,
            failed: r.failed(),
            hash: r.content_hash.as_deref(),
            legacy: &r.legacy,
        })
        .collect()
}
