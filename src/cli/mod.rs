//! Command-line parsing and dispatch; the only place (with the runtime) that touches files and streams.

mod baseline;
mod check;
mod classify;
mod discover;
mod durable;
mod explain;
mod fmt;
mod gate;
mod init;
mod lsp;
mod migrate;
mod output;
mod plugins;
mod progress;
mod render;
mod report;
mod run;
mod runs;
mod runs_ops;
mod signal;
mod signing;
mod status;
mod stdio;
mod switches;
mod trends;
mod util;
mod worker;

use clap::{Parser, Subcommand};

use stdio::{errln, out};

use aether_vm::FnTable;

#[derive(Parser, Debug)]
#[command(
    name = "aether",
    version,
    about = "Toolchain for .aether workflow scripts",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and validate files or directories without running anything.
    Check(check::CheckArgs),
    /// Check a script, then run it (workflows, budgets, events, on_error).
    Run(run::RunArgs),
    /// Durable runs: list, show, resume, signal, cancel, resolve, export, verify, stuck, prune
    /// (docs/durable.md).
    Runs(runs::RunsArgs),
    /// Resume durable runs that are due or interrupted, in a loop (docs/durable.md).
    Worker(worker::WorkerArgs),
    /// Show the runtime's state: kernel, memory, homeostasis and plugins.
    Status(status::StatusArgs),
    /// Triage a tree of workflows: check (and run) each, bucket failures by code, keep history.
    Classify(classify::ClassifyArgs),
    /// Snapshot the check result of every workflow (counts by code) for `aether gate`.
    Baseline(baseline::BaselineArgs),
    /// Show the classification history (trends.json) and draw it as an SVG chart.
    Trends(trends::TrendsArgs),
    /// Compare two parse baselines; exit 1 when PARSE_ERROR or VALIDATION_ERROR regressed.
    Gate(gate::GateArgs),
    /// Rewrite legacy forms (`intent:`, unquoted goal text) and tidy whitespace.
    Migrate(migrate::MigrateArgs),
    /// Rewrite files in the canonical layout (`--check` for CI, `-` for editors).
    Fmt(fmt::FmtArgs),
    /// Print a rule's documentation page (`aether explain A101`).
    Explain(explain::ExplainArgs),
    /// Print a shell completion script (bash, zsh, fish or powershell) on stdout.
    Completions(CompletionsArgs),
    /// Set up a project: a starter workflow, `.aetherra/` and a CI job (never overwrites).
    Init(init::InitArgs),
    /// Serve the Language Server Protocol on stdin/stdout (for editors).
    Lsp(lsp::LspArgs),
    /// Generate an ed25519 signing key pair.
    Keygen(signing::KeygenArgs),
    /// Sign scripts in place (inserts or replaces the `# @signature` header).
    Sign(signing::SignArgs),
    /// Verify signatures and score risk, with an optional markdown report.
    Verify(signing::VerifyArgs),
    /// Plugin tools: `pin` writes the SHA-256 of a plugin's files into its manifest.
    Plugins(plugins::PluginsArgs),
}

#[derive(clap::Args, Debug)]
struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Print the completion script of `shell` for the whole command line.
fn completions(shell: clap_complete::Shell) -> i32 {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    // Generated whole first: clap_complete panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "aether", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    0
}

/// Every function this build knows, with its implementation: the VM's intrinsics, the
/// stdlib's natives and the runtime's host functions (the checker reads its registry).
pub(crate) fn function_table() -> FnTable {
    aether_runtime::function_table()
}

/// A usage error happens before the options are parsed: look for the flag by hand.
fn args_asked_for_error_code(args: &[std::ffi::OsString]) -> bool {
    args.iter().any(|a| a == "--emit-error-code")
}

/// Run the CLI and return the process exit status.
pub(crate) fn main(args: Vec<std::ffi::OsString>) -> i32 {
    // `aether run` is parsed with its own arguments alone when they parse: clap builds the
    // whole command line (every subcommand's arguments) first, a quarter of a hello-world
    // run's start-up. Help, `--version` and usage errors go through the full parser below,
    // so what they print does not change.
    if args.get(1).is_some_and(|a| a == "run") {
        if let Some(run_args) = run::parse_alone(&args[1..]) {
            return stdio::finish(run::run(run_args));
        }
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            if code == 2 && args_asked_for_error_code(&args) {
                errln!("AETHER_ERROR_CODE:2");
            }
            return code;
        }
    };
    let code = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Run(args) => run::run(args),
        Command::Runs(args) => runs::run(args),
        Command::Worker(args) => worker::run(args),
        Command::Status(args) => status::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Baseline(args) => baseline::run(args),
        Command::Trends(args) => trends::run(args),
        Command::Keygen(args) => signing::keygen(args),
        Command::Sign(args) => signing::sign(args),
        Command::Verify(args) => signing::verify(args),
        Command::Plugins(args) => plugins::run(args),
        Command::Gate(args) => gate::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Completions(args) => completions(args.shell),
        Command::Init(args) => init::run(args),
        Command::Lsp(args) => lsp::run(args),
    };
    stdio::finish(code)
}
