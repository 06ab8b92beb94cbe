//! `aether run`: check a script, compile it and run it on the VM, with the run's budgets,
//! event stream, status line and exit code (docs/contract/LANGUAGE.md section 7, phase `execute`).

use super::stdio::{err, errln, outln};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Map as JsonMap, Value as Json};

use aether_check::Phase;
use aether_syntax::{LineIndex, ResultCode, Span};
use aether_vm::{Budget, Event, EventSink, Map, Value, Vm, VmError};

use super::output;
use super::render::{inert, render_file, snippet_line, DEFAULT_MAX_ERRORS};
use super::report::{check_file, FileReport, Options, Status};
pub(crate) use super::switches::Profile;
use super::switches::Switches;

#[derive(Args, Debug, Default)]
pub(crate) struct RunArgs {
    /// The script to run.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// A value for the script's `args` map (repeatable, one KEY once); values are strings.
    #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = parse_arg)]
    args: Vec<(String, String)>,
    /// Wall-clock budget of the run (`30s`, `1m30s`, `250ms`, or seconds); the smaller of
    /// this and `policy: timeout` applies.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Memory budget of the run (`512MB`, `1GiB`, or bytes; KB/MB/GB are powers of 1000,
    /// KiB/MiB/GiB of 1024); the smaller of this and `policy: max_memory` applies. Past it
    /// the run stops with MEMORY_LIMIT_ERROR (29) [default: `policy: max_memory`, else
    /// 2 GiB in profile dev, 512 MiB in test, 1 GiB in prod].
    #[arg(long, value_name = "SIZE", value_parser = aether_check::spec::parse_size)]
    max_memory: Option<u64>,
    /// Run profile [default: $AETHERRA_PROFILE, else dev].
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Directory of the run's state (created if missing) [default: .aetherra].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Print a JSON status line on stdout after the program's output.
    #[arg(long)]
    json_status: bool,
    /// Print `AETHER_ERROR_CODE:<n>` (the exit status) on stderr.
    #[arg(long)]
    emit_error_code: bool,
    /// Write the run's event stream to FILE as JSON lines (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    #[command(flatten)]
    sig: super::signing::StrictSignatureArgs,
    /// Run durably under a fresh run id (printed on stderr and in the status line): effects
    /// are journaled and `aether runs resume ID` replays the run after a crash.
    #[arg(long)]
    durable: bool,
    /// Run durably under run id ID: the same id, script and args attach to that run
    /// (resume it if unfinished, print its result if finished).
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Resume a durable run even though its script changed since it started.
    #[arg(long)]
    allow_changed: bool,
    /// Show no progress, warnings or `log` lines on stderr (as AETHERRA_QUIET=1); errors
    /// still show. Progress (steps, retries, backoff waits) shows only on a terminal.
    #[arg(long, short)]
    quiet: bool,
    /// A durable run leaves the process (status `waiting`) as soon as every fiber waits
    /// on a timer or a signal, instead of after 5 minutes of waiting ahead.
    #[arg(long)]
    detach_waits: bool,
}

/// `aether run` with its arguments given as words (`aether runs resume` builds them).
#[derive(clap::Parser, Debug)]
#[command(name = "aether run")]
struct RunOnly {
    #[command(flatten)]
    run: RunArgs,
}

/// The arguments of `run WORDS...` (the first word is the subcommand's name), or `None`
/// when they do not parse (the full command line then reports it, or prints the help).
pub(crate) fn parse_alone(words: &[std::ffi::OsString]) -> Option<RunArgs> {
    if let Some(args) = just_a_file(words) {
        return Some(args);
    }
    <RunOnly as clap::Parser>::try_parse_from(words)
        .ok()
        .map(|r| r.run)
}

/// `run FILE` and nothing else, FILE a word clap reads as the positional (not empty, not
/// an option): what clap would return, without building `run`'s parser (a fifth of a
/// hello-world run's instructions and its code pages; docs/performance.md, start-up).
fn just_a_file(words: &[std::ffi::OsString]) -> Option<RunArgs> {
    let [_, file] = words else { return None };
    let first = file.as_encoded_bytes().first()?;
    (*first != b'-').then(|| RunArgs {
        file: PathBuf::from(file),
        ..RunArgs::default()
    })
}

pub(crate) fn run_words(words: Vec<String>) -> i32 {
    match <RunOnly as clap::Parser>::try_parse_from(words) {
        Ok(r) => run(r.run),
        Err(e) => {
            errln!("error: {e}");
            2
        }
    }
}

fn parse_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    let ms = aether_syntax::token::parse_duration(s)
        .or_else(|| s.parse::<f64>().ok().map(|secs| secs * 1000.0))
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .ok_or_else(|| format!("`{s}` is not a positive duration such as 30s, 1m30s or 250ms"))?;
    Ok(aether_vm::wait_of_ms(ms))
}

fn usage_error(message: &str, emit_error_code: bool) -> i32 {
    errln!("error: {message}");
    if emit_error_code {
        errln!("AETHER_ERROR_CODE:2");
    }
    2
}

/// JSON lines of the event stream, numbered in the order they are written.
struct JsonLines<'s> {
    out: BufWriter<Box<dyn Write>>,
    text: &'s str,
    index: LineIndex,
    seq: u64,
    /// The first write that failed: the stream is incomplete, which the run reports once.
    lost: Option<std::io::Error>,
}

impl JsonLines<'_> {
    fn write(&mut self, kind: &str, span: Option<Span>, fields: JsonMap<String, Json>) {
        self.seq += 1;
        let mut m = JsonMap::new();
        m.insert("seq".into(), json!(self.seq));
        m.insert("time".into(), json!(output::timestamp()));
        m.insert("kind".into(), json!(kind));
        let line = span.map(|s| self.index.line_col(self.text, s.start).line);
        m.insert("line".into(), json!(line));
        m.extend(fields);
        // A run that is killed keeps the records written so far.
        let res = writeln!(self.out, "{}", Json::Object(m)).and_then(|()| self.out.flush());
        if let Err(e) = res {
            self.lost.get_or_insert(e);
        }
    }
}

fn to_json(v: &Value) -> Json {
    serde_json::from_str(&v.to_json()).unwrap_or(Json::Null)
}

impl EventSink for JsonLines<'_> {
    fn event(&mut self, event: &Event) {
        let fields: JsonMap<String, Json> = event
            .fields
            .iter()
            .map(|(k, v)| (k.to_string(), to_json(v)))
            .collect();
        self.write(&event.kind, event.span, fields);
    }
}

impl EventSink for &mut JsonLines<'_> {
    fn event(&mut self, event: &Event) {
        (**self).event(event);
    }
}

/// How a run ended.
pub(crate) struct Outcome {
    pub(crate) code: ResultCode,
    pub(crate) message: String,
    pub(crate) line: Option<u32>,
    /// Where the error happened, when it has a place in the script.
    pub(crate) span: Option<Span>,
}

/// The memory budget of a run when neither `--max-memory` nor `policy: max_memory` sets
/// one (docs/running.md): generous in dev, tight in test (CI runs several at once), and
/// in prod what a single workflow of the reference set needs many times over.
pub(crate) fn default_max_memory(profile: Profile) -> u64 {
    match profile {
        Profile::Dev => 2 << 30,
        Profile::Test => 512 << 20,
        Profile::Prod => 1 << 30,
    }
}

fn code_of(n: i32) -> ResultCode {
    match n {
        23 => ResultCode::TimeoutError,
        24 => ResultCode::UnsupportedFeature,
        27 => ResultCode::InternalError,
        28 => ResultCode::NondeterminismError,
        29 => ResultCode::MemoryLimitError,
        _ => ResultCode::RuntimeError,
    }
}

fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// `file:line:col` of a span.
fn place(display: &str, text: &str, index: &LineIndex, span: Span) -> String {
    let lc = index.line_col(text, span.start);
    format!("{display}:{}:{}", lc.line, lc.column)
}

/// A run-time error for people: the message, where, the source line, the backtrace.
fn render_error(display: &str, text: &str, index: &LineIndex, e: &VmError) -> String {
    render(
        display,
        text,
        index,
        e.kind().code_name(),
        e.message(),
        e.span(),
        e.trace(),
    )
}

fn render(
    display: &str,
    text: &str,
    index: &LineIndex,
    code_name: &str,
    message: &str,
    span: Option<Span>,
    trace: &[(String, Option<Span>)],
) -> String {
    let display = &*inert(display);
    let mut out = format!("error[{code_name}]: {}\n", inert(message));
    if let Some(span) = span {
        let lc = index.line_col(text, span.start);
        let line_text = index
            .line_start(lc.line)
            .map(|start| {
                let rest = &text[start as usize..];
                rest.split('\n').next().unwrap_or("").trim_end_matches('\r')
            })
            .unwrap_or("");
        // A long line is cut around the error, and control characters never reach the
        // terminal as themselves.
        let (line_text, column) = snippet_line(line_text, lc.column);
        let gutter = lc.line.to_string().len();
        let pad = " ".repeat(gutter);
        out.push_str(&format!("{pad}--> {}\n", place(display, text, index, span)));
        out.push_str(&format!("{pad} |\n{} | {line_text}\n", lc.line));
        let end = index.line_col(text, span.end.max(span.start));
        let room = (line_text.chars().count() as u32 + 1).saturating_sub(column);
        let width = if end.line == lc.line {
            (end.column.saturating_sub(lc.column)).clamp(1, room.max(1))
        } else {
            1
        };
        out.push_str(&format!(
            "{pad} | {}{}\n",
            " ".repeat(column.saturating_sub(1) as usize),
            "^".repeat(width as usize)
        ));
    }
    // Deep recursion repeats one frame many times: show it once with a count.
    let mut i = 0;
    while i < trace.len() {
        let mut same = 1;
        while i + same < trace.len() && trace[i + same] == trace[i] {
            same += 1;
        }
        let (name, site) = &trace[i];
        match site {
            Some(s) => out.push_str(&format!(
                "  in `{name}`, called at {}\n",
                place(display, text, index, *s)
            )),
            None => out.push_str(&format!("  in `{name}`\n")),
        }
        if same > 1 {
            out.push_str(&format!("  ... the same frame {} more times\n", same - 1));
        }
        i += same;
    }
    out
}

pub(crate) fn run(args: RunArgs) -> i32 {
    let env = match Switches::from_env() {
        Ok(env) => env,
        Err(e) => return usage_error(&e, args.emit_error_code),
    };
    let profile = args.profile.or(env.profile).unwrap_or(Profile::Dev);
    // A key given twice is a mistake (which value did the caller mean?), not "the last wins".
    let mut keys = std::collections::HashSet::new();
    if let Some((k, _)) = args.args.iter().find(|(k, _)| !keys.insert(k.as_str())) {
        let msg = format!("--arg `{k}` is given more than once: give each key once");
        return usage_error(&msg, args.emit_error_code);
    }
    // Strict when asked, or when either the option's or the environment's profile is prod.
    let signatures = if args.sig.strict_signatures
        || env.strict_signatures(Some(profile))
        || env.strict_signatures(env.profile)
    {
        match super::signing::load_trust(args.sig.keyring.as_deref(), args.sig.revoked.as_deref()) {
            Ok(t) => Some(t),
            Err(e) => return usage_error(&e, args.emit_error_code),
        }
    } else {
        None
    };
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".aetherra"));
    if args.state_dir.is_some() {
        if let Err(e) = std::fs::create_dir_all(&state_dir) {
            let msg = format!(
                "cannot create state directory `{}`: {e}",
                state_dir.display()
            );
            return usage_error(&msg, args.emit_error_code);
        }
    }

    // 1. Check: a file with errors does not run.
    let functions = super::function_table();
    let opts = Options {
        signatures,
        keep_analysis: true,
        ..Options::default()
    };
    let mut report = check_file(&args.file, functions.registry(), &opts);
    let strict_trust = opts.signatures.map(|t| t.keys);
    let quiet = env.quiet || args.quiet;
    if !report.status.ok || (!quiet && !report.findings.is_empty()) {
        let mut text = String::new();
        render_file(&report, color_enabled(), DEFAULT_MAX_ERRORS, &mut text);
        err!("{text}");
    }
    if !report.status.ok {
        return finish(&args, &report, None);
    }
    let text = report.source.clone().unwrap_or_default();
    let index = LineIndex::new(&text);
    let display = report.display.clone();
    let Some(analysis) = report.analysis.take() else {
        // A file that checked clean was analysed: this is a bug, not a script's fault.
        errln!("error[INTERNAL_ERROR]: internal error: the checked file has no analysis");
        report.status = Status {
            ok: false,
            code: ResultCode::InternalError,
            phase: Phase::Execute,
            message: "internal error: the checked file has no analysis".into(),
            line: None,
            suppressed: None,
            finding: None,
        };
        return finish(&args, &report, None);
    };
    let run_id = if args.durable || args.id.is_some() {
        match super::durable::attach(
            &args.file,
            args.id.as_deref(),
            &text,
            &args.args,
            &state_dir,
            args.allow_changed,
        ) {
            Ok(id) => Some(id),
            Err(code) => {
                if args.emit_error_code {
                    errln!("AETHER_ERROR_CODE:{code}");
                }
                return code;
            }
        }
    } else {
        None
    };

    // 2. Compile and run; a panic anywhere in here is an internal error, not a crash.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let source = Source {
            text: &text,
            analysis: &analysis,
            index: &index,
            display: &display,
        };
        let exec = Execution {
            file: &args.file,
            args: &args.args,
            timeout: args.timeout,
            max_memory: args.max_memory,
            profile,
            state_dir: args
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".aetherra")),
            events: args.events.as_deref(),
            keyring: args.sig.keyring.as_deref(),
            revoked: args.sig.revoked.as_deref(),
            strict_trust: strict_trust.as_ref(),
            quiet,
            require_capabilities: env.require_capabilities,
            net_strict: env.net_strict,
            diagnostics: true,
            throwaway: false,
            run_id: run_id.as_deref(),
            detach_waits: args.detach_waits,
        };
        // A reader that goes away (`| head`) drops the rest of the output and leaves the
        // run's result alone (see `stdio`).
        let out = std::io::LineWriter::new(super::stdio::Stdout);
        execute(&exec, source, &functions, out, super::stdio::Stderr)
    }))
    .unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        errln!("error[INTERNAL_ERROR]: internal error: {msg}\n  = help: this is a bug in aether, not in your script; please report it with the file");
        Outcome {
            code: ResultCode::InternalError,
            message: format!("internal error: {msg}"),
            line: None,
            span: None,
        }
    });
    report.status = Status {
        ok: outcome.code == ResultCode::Success,
        code: outcome.code,
        phase: Phase::Execute,
        message: outcome.message,
        line: outcome.line,
        suppressed: None,
        finding: None,
    };
    finish_with(&args, &report, run_id.as_deref())
}

fn finish(args: &RunArgs, report: &FileReport, _ran: Option<()>) -> i32 {
    finish_with(args, report, None)
}

fn finish_with(args: &RunArgs, report: &FileReport, run_id: Option<&str>) -> i32 {
    let code = if report.status.ok {
        0
    } else {
        report.status.code.number()
    };
    if args.json_status {
        let mut line = output::status_line(report, &output::timestamp());
        if let (Some(id), Ok(Json::Object(mut m))) = (run_id, serde_json::from_str(&line)) {
            m.insert("run_id".into(), json!(id));
            // The run's status tells a finished run from one that left to wait (exit 0 both).
            let dir = args
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".aetherra"));
            if let Some(row) = super::durable::row_after(&dir, id) {
                m.insert("status".into(), json!(row.status));
                if row.status == "waiting" {
                    m.insert("waiting_for".into(), json!(row.waiting_for));
                    m.insert("wake_at".into(), json!(row.wake_at));
                }
            }
            line = Json::Object(m).to_string();
        }
        outln!("{line}");
    }
    if args.emit_error_code {
        errln!("AETHER_ERROR_CODE:{code}");
    }
    code
}

/// The checked script being run.
pub(crate) struct Source<'a> {
    pub(crate) text: &'a str,
    /// The file's tree and typed settings, from its check.
    pub(crate) analysis: &'a aether_check::Analysis,
    pub(crate) index: &'a LineIndex,
    pub(crate) display: &'a str,
}

/// How to run a checked script: what `aether run` takes from its options, and what
/// `aether classify` sets for each file it runs in-process.
pub(crate) struct Execution<'a> {
    pub(crate) file: &'a std::path::Path,
    pub(crate) args: &'a [(String, String)],
    pub(crate) timeout: Option<Duration>,
    /// The caller's memory budget (`--max-memory`): the smaller of it and the policy's
    /// applies; with neither, the profile's default ([`default_max_memory`]).
    pub(crate) max_memory: Option<u64>,
    pub(crate) profile: Profile,
    pub(crate) state_dir: PathBuf,
    pub(crate) events: Option<&'a std::path::Path>,
    pub(crate) keyring: Option<&'a std::path::Path>,
    pub(crate) revoked: Option<&'a std::path::Path>,
    /// Strict signature mode: plugins must have signed manifests.
    pub(crate) strict_trust: Option<&'a aether_runtime::security::Trust>,
    /// `AETHERRA_QUIET`: no warnings, no `log` output.
    pub(crate) quiet: bool,
    /// `AETHERRA_REQUIRE_CAPABILITIES`: enforce capabilities in profile dev too.
    pub(crate) require_capabilities: bool,
    /// `AETHERRA_NET_STRICT`: the network allowlist applies in profile dev too.
    pub(crate) net_strict: bool,
    /// Render errors and warnings on stderr (`aether run`); `classify` only wants the outcome.
    pub(crate) diagnostics: bool,
    /// Keep no state: a fresh in-memory database (`classify`).
    pub(crate) throwaway: bool,
    /// The durable run this is (claimed by this process already).
    pub(crate) run_id: Option<&'a str>,
    /// `--detach-waits`: a durable run leaves the process as soon as it only waits.
    pub(crate) detach_waits: bool,
}

/// Compile and run a checked script against the runtime host; the program's output goes
/// to `out`, its `log`/`trace` lines to `err`.
pub(crate) fn execute<W: Write>(
    exec: &Execution<'_>,
    source: Source<'_>,
    functions: &aether_vm::FnTable,
    out: W,
    err: impl Write,
) -> Outcome {
    let Source {
        text,
        analysis,
        index,
        display,
    } = source;
    let show = exec.diagnostics;
    let quiet = exec.quiet;
    let profile = exec.profile;
    let program = match aether_vm::compile(analysis, functions.registry()) {
        Ok(p) => p,
        Err(e) => {
            let line = index.line_col(text, e.span.start).line;
            if show {
                err!(
                    "{}",
                    render(
                        display,
                        text,
                        index,
                        "UNSUPPORTED_FEATURE",
                        &e.message,
                        Some(e.span),
                        &[]
                    )
                );
            }
            return Outcome {
                code: ResultCode::UnsupportedFeature,
                message: e.message,
                line: Some(line),
                span: Some(e.span),
            };
        }
    };
    let policy = &analysis.specs.policy;
    let policy_timeout = policy.timeout_ms.map(aether_vm::wait_of_ms);
    let timeout = match (exec.timeout, policy_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let max_steps = policy.max_steps;
    let max_memory = match (exec.max_memory, policy.max_memory) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(default_max_memory(profile)),
    };
    let deterministic = policy.deterministic;
    let enforce = profile != Profile::Dev || exec.require_capabilities;

    // `--events -` is stdout, between the program's own lines (each record is flushed whole).
    let sink = exec.events.map(|path| {
        if path == std::path::Path::new("-") {
            Ok(Box::new(super::stdio::Stdout) as Box<dyn Write>)
        } else {
            File::create(path).map(|f| Box::new(f) as Box<dyn Write>)
        }
    });
    let mut events = match (exec.events, sink) {
        (Some(path), Some(sink)) => match sink {
            Ok(f) => Some(JsonLines {
                out: BufWriter::new(f),
                text,
                index: LineIndex::new(text),
                seq: 0,
                lost: None,
            }),
            Err(e) => {
                let message = format!("cannot write events to `{}`: {e}", path.display());
                if show {
                    errln!("error[IO_ERROR]: {message}");
                }
                return Outcome {
                    code: ResultCode::IoError,
                    message,
                    line: None,
                    span: None,
                };
            }
        },
        _ => None,
    };
    if let Some(ev) = events.as_mut() {
        let mut m = JsonMap::new();
        m.insert("status".into(), json!("started"));
        m.insert("file".into(), json!(display));
        ev.write("run", None, m);
    }

    // The runtime host: module functions, transactions on the state database, the run log.
    let trust = super::signing::read_trust(exec.keyring, exec.revoked)
        .ok()
        .map(|t| t.keys);
    let plugin_settings = match aether_runtime::plugins::PluginSettings::from_env() {
        Ok(s) => s,
        Err(e) => return setup_failed(&mut events, e, show),
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let script_dir = exec.file.parent().map(|p| {
        if p.as_os_str().is_empty() {
            cwd.clone()
        } else {
            p.to_path_buf()
        }
    });
    let dirs = aether_runtime::plugins::search_dirs(
        script_dir.as_deref(),
        &cwd,
        std::env::var("AETHER_PLUGIN_PATH").ok().as_deref(),
    );
    let (plugins, mut warnings) =
        aether_runtime::plugins::Plugins::discover(&dirs, plugin_settings);
    if let Some(trust) = exec.strict_trust {
        // Strict signature mode: only plugins whose manifest is signed by a trusted key and
        // pins the files it runs.
        warnings.extend(plugins.retain(|m| {
            aether_runtime::security::verify_manifest(&m.dir, trust).and_then(|()| m.require_pins())
        }));
    }
    if show && !quiet {
        for w in &warnings {
            errln!("warning: {w}");
        }
    }
    // `require: plugins:` must be satisfied before anything runs.
    for req in &analysis.specs.plugins {
        if let Err(e) = plugins.check_requirement(req) {
            let message = format!("plugin requirement `{}` is not met: {e}", req.text);
            return setup_failed(&mut events, message, show);
        }
    }
    let mock_io = policy.mock_io;
    let kernel = match aether_runtime::kernel::KernelSettings::from_vars(|k| std::env::var(k).ok())
    {
        Ok(k) => k,
        Err(e) => return setup_failed(&mut events, e, show),
    };
    let mut host = aether_runtime::RuntimeHost::new(aether_runtime::RuntimeConfig {
        kernel,
        plugins,
        enforce_capabilities: enforce,
        mock_io,
        deterministic,
        state_dir: exec.state_dir.clone(),
        capabilities: program.capabilities.clone(),
        network: aether_runtime::security::NetworkPolicy::from_env(
            profile != Profile::Dev || exec.net_strict,
        ),
        trust,
        throwaway: exec.throwaway,
    });
    if let Some(id) = exec.run_id {
        let journal = host
            .state_db()
            .and_then(|st| super::durable::journal_of(st, id).map_err(|e| e.0));
        match journal {
            Ok(mut j) => {
                let after = aether_runtime::durable::DETACH_AFTER_SECS;
                j.detach_after = Some(if exec.detach_waits { 0.0 } else { after });
                host.set_journal(j);
            }
            Err(e) => return setup_failed(&mut events, e, show),
        }
    }
    let budget = Budget {
        max_steps,
        timeout,
        max_memory: Some(max_memory),
        ..Budget::default()
    };
    // Steps, retries and backoffs on a terminal (`progress`); the script's output goes
    // around the status line.
    let mut progress = super::progress::Progress::start(show && !quiet, color_enabled());
    let out = progress.guard(out, std::io::stdout().is_terminal());
    let mut vm = Vm::new(&program, functions, out, budget)
        .with_stderr(progress.guard(err, true))
        .with_host(&mut host)
        .enforce_capabilities(enforce)
        .deterministic(deterministic)
        .quiet(quiet)
        .with_source(text);
    let sinks: Vec<Box<dyn EventSink + '_>> = events
        .as_mut()
        .map(|ev| Box::new(ev) as Box<dyn EventSink + '_>)
        .into_iter()
        .chain(
            progress
                .sink()
                .map(|p| Box::new(p) as Box<dyn EventSink + '_>),
        )
        .collect();
    vm = vm.with_events(super::progress::Fanout(sinks));
    let run_args: Map = exec
        .args
        .iter()
        .map(|(k, v)| (k.as_str(), Value::from(v.as_str())))
        .collect();
    vm.set_args(run_args);
    let started_at = output::timestamp();
    let result = vm.run();
    progress.finish();
    let handled_by = vm.handled_by().map(str::to_string);
    let handler_error = vm.handler_error().cloned();
    let mut out = vm.into_output();
    let _ = out.flush();
    drop(out);
    // Tasks the run could not finish go to the dead-letter queue, never silently away.
    host.shutdown();

    let outcome = match result {
        Ok(_) => Outcome {
            code: ResultCode::Success,
            message: String::new(),
            line: None,
            span: None,
        },
        // Not a failure: the durable run left the process to wait (`record_end` says so).
        Err(e) if e.kind() == aether_vm::ErrorClass::Detached => Outcome {
            code: ResultCode::Success,
            message: String::new(),
            line: None,
            span: None,
        },
        Err(e) => {
            let mut text_out = render_error(display, text, index, &e);
            if let Some(kind) = &handled_by {
                text_out.push_str(&format!(
                    "  = note: the on_error rule `when: {kind}` ran; the run still fails\n"
                ));
            }
            if let Some(he) = &handler_error {
                text_out.push_str("error: the on_error handler failed too:\n");
                text_out.push_str(&render_error(display, text, index, he));
            }
            if show {
                err!("{text_out}");
            }
            Outcome {
                code: code_of(e.kind().code()),
                message: e.message().to_string(),
                line: e.span().map(|s| index.line_col(text, s.start).line),
                span: e.span(),
            }
        }
    };
    if let Some(id) = exec.run_id {
        super::durable::record_end(&mut host, id, outcome.code, &outcome.message, outcome.line);
    }
    host.record_run(
        display,
        &started_at,
        outcome.code.number(),
        outcome.code.name(),
        &outcome.message,
    );
    end_events(&mut events, &outcome);
    // Writes that failed without failing the run are said once each, never dropped silently.
    let mut lost = host.take_lost_writes();
    if let (Some(ev), Some(path)) = (&events, exec.events) {
        if let Some(e) = &ev.lost {
            lost.push(format!(
                "the event stream `{}` is incomplete: {e}",
                path.display()
            ));
        }
    }
    if show && !quiet {
        for l in &lost {
            errln!("warning: {l}");
        }
    }
    outcome
}

/// The last record of the event stream: how the run ended.
fn end_events(events: &mut Option<JsonLines<'_>>, outcome: &Outcome) {
    if let Some(ev) = events.as_mut() {
        let mut m = JsonMap::new();
        let ok = outcome.code == ResultCode::Success;
        m.insert(
            "status".into(),
            json!(if ok { "succeeded" } else { "failed" }),
        );
        m.insert("code".into(), json!(outcome.code.number()));
        m.insert("code_name".into(), json!(outcome.code.name()));
        m.insert("message".into(), json!(outcome.message));
        ev.write("run", None, m);
    }
}

/// The runtime could not be set up (a bad setting, an unmet plugin requirement): a
/// RUNTIME_ERROR before the script's first instruction, closing the event stream too.
fn setup_failed(events: &mut Option<JsonLines<'_>>, message: String, show: bool) -> Outcome {
    if show {
        errln!("error[RUNTIME_ERROR]: {message}");
    }
    let outcome = Outcome {
        code: ResultCode::RuntimeError,
        message,
        line: None,
        span: None,
    };
    end_events(events, &outcome);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn words(file: &str) -> Vec<OsString> {
        vec!["run".into(), file.into()]
    }

    #[test]
    fn run_and_a_file_alone_are_what_clap_would_parse() {
        for file in [
            "hello.aether",
            "dir/x.aether",
            "a b.aether",
            "help",
            "run",
            "é.aether",
        ] {
            let fast = just_a_file(&words(file)).expect("a plain file word");
            let clap = <RunOnly as clap::Parser>::try_parse_from(words(file)).expect("parses");
            assert_eq!(format!("{fast:?}"), format!("{:?}", clap.run), "{file}");
        }
    }

    #[test]
    fn anything_else_goes_to_clap() {
        for file in ["", "-", "--help", "-V", "--json-status"] {
            assert!(just_a_file(&words(file)).is_none(), "{file:?}");
        }
        let more: Vec<OsString> = vec!["run".into(), "x.aether".into(), "--quiet".into()];
        assert!(just_a_file(&more).is_none());
        assert!(just_a_file(&["run".into()]).is_none());
    }
}
