//! `aether init [DIR]`: a starter workflow, a `.aetherra/` suppression file and a GitHub
//! Actions job, never overwriting a file that exists.

use super::stdio::{errln, outln};
use std::path::{Path, PathBuf};

use clap::Args;

#[derive(Args, Debug)]
pub(crate) struct InitArgs {
    /// Directory to set up (created if missing) [default: the current directory].
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

/// The starter workflow: checks clean and is formatted (a test keeps it so).
pub(crate) const STARTER: &str = r#"goal: "Check that the service answers, and keep a note of it"

metadata:
    name: "hello"
    version: "0.1.0"

on_error:
    - when: Any
      do: log("hello failed: " + error.message, level="error")

action probe(service, attempts = 3):
    let latencies = []
    for i in range(attempts):
        latencies = append(latencies, 100 + i * 10)
    return {service: service, p95: max(latencies)}

workflow hello:
    service: "checkout"
    steps:
        - probe(workflow.service) as result timeout=5s
        - print(format("{}: p95 {} ms", result.service, result.p95))
"#;

const SUPPRESSIONS: &str = "\
# Fingerprints of accepted findings, one per line (`aether check --format json` shows them).
# `#` starts a comment; an entry that matches nothing is warned about.
";

const CI: &str = r#"name: aether
on: [push, pull_request]
jobs:
  aether:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: dtolnay/rust-toolchain@stable
      # AETHER_REPO: the git URL where your organisation hosts the aether toolchain.
      - run: cargo install --locked --git "$AETHER_REPO" aether
        env:
          AETHER_REPO: ${{ vars.AETHER_REPO }}
      - run: aether fmt --check .
      - run: aether check . --format github
"#;

/// The files `init` writes, relative to its directory.
pub(crate) const FILES: &[(&str, &str)] = &[
    ("workflows/hello.aether", STARTER),
    (".aetherra/workflow_suppressions.txt", SUPPRESSIONS),
    (".github/workflows/aether.yml", CI),
];

fn create(path: &Path, text: &str) -> std::io::Result<bool> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // `create_new` fails on an existing file (or a dangling symlink): nothing is overwritten.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut f) => {
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn run(args: InitArgs) -> i32 {
    let mut code = 0;
    for (rel, text) in FILES {
        let path = args.dir.join(rel);
        let shown = path.display().to_string();
        let shown = shown.strip_prefix("./").unwrap_or(&shown);
        match create(&path, text) {
            Ok(true) => outln!("created {shown}"),
            Ok(false) => outln!("skipped {shown} (it exists; left as it is)"),
            Err(e) => {
                errln!("error: cannot write {shown}: {e}");
                code = aether_syntax::ResultCode::IoError.number();
            }
        }
    }
    if code == 0 {
        outln!(
            "next: `aether run {}`, then `aether check {}`",
            args.dir.join("workflows/hello.aether").display(),
            args.dir.display()
        );
    }
    code
}
