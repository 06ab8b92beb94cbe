//! Parse and check throughput over the generated corpus: `cargo bench -p aether-check`.
//!
//! A plain timing harness (no framework): each phase runs over every file of
//! `bench/gen_corpus.py --files 3000 --seed 1` (or the directory in `AETHER_BENCH_CORPUS`)
//! and the best of 10 rounds (`AETHER_BENCH_ROUNDS`) is printed in ms and MB/s. Run without `--bench` (as
//! `cargo test --all-targets` does), it checks one small file once and exits.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aether_check::decl::{DefaultValue, FnDecl, Registry};
use aether_syntax::parse;

#[path = "../tests/common/mod.rs"]
mod common;

/// Globals the generated corpus calls beyond those of the test registry; their exact
/// parameters do not matter here (any arity is accepted), only that they resolve.
const CORPUS_GLOBALS: &[&str] = &[
    "append",
    "trim",
    "contains",
    "abs",
    "upper",
    "json_encode",
    "json_decode",
    "type",
    "round",
    "int",
    "float",
    "bool",
    "concat",
    "values",
    "keys",
    "startswith",
    "split",
    "lower",
    "endswith",
    "summarize",
    "sum",
    "min",
    "max",
    "join",
];

fn registry() -> Registry {
    let mut r = common::registry();
    r.extend(
        CORPUS_GLOBALS
            .iter()
            .map(|n| FnDecl::global(n).rest("args")),
    );
    r.extend([
        FnDecl::global("sorted")
            .param("x")
            .opt("reverse", DefaultValue::Null),
        FnDecl::in_module("memory", "count").opt("tags", DefaultValue::EmptyList),
    ]);
    r
}

fn corpus() -> Vec<String> {
    let dir = match std::env::var_os("AETHER_BENCH_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let dir = root.join("target/bench-corpus");
            if !dir.exists() {
                let status = std::process::Command::new("python3")
                    .arg(root.join("bench/gen_corpus.py"))
                    .arg(&dir)
                    .args(["--files", "3000", "--seed", "1"])
                    .status()
                    .expect("python3 runs bench/gen_corpus.py");
                assert!(status.success(), "bench/gen_corpus.py failed");
            }
            dir
        }
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus directory exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "aether"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("a readable corpus file"))
        .collect()
}

/// Rounds per phase: `AETHER_BENCH_ROUNDS`, default 10 (1 under cachegrind, to count
/// instructions).
fn rounds() -> usize {
    std::env::var("AETHER_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10)
}

/// The best of `rounds()` timings of `f`, printed with its throughput over `bytes`.
fn measure(name: &str, bytes: usize, mut f: impl FnMut()) {
    let rounds = rounds();
    let best = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or(Duration::ZERO);
    let mb_s = bytes as f64 / 1e6 / best.as_secs_f64();
    println!(
        "{name:<28} best of {rounds}: {:>8.2} ms  {mb_s:>6.1} MB/s",
        best.as_secs_f64() * 1e3
    );
}

fn main() {
    let registry = registry();
    if !std::env::args().any(|a| a == "--bench") {
        // Test mode: one pass over one file, so the harness cannot rot.
        let analysis = aether_check::analyze("goal: \"g\"\nprint(len([1, 2]))\n", &registry);
        assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics);
        return;
    }
    let files = corpus();
    let bytes: usize = files.iter().map(String::len).sum();
    let errors: Vec<_> = files
        .iter()
        .filter_map(|src| {
            let analysis = aether_check::analyze(src, &registry);
            analysis.diagnostics.into_iter().find(|d| d.is_error())
        })
        .collect();
    println!(
        "corpus: {} files, {:.2} MB, {} with errors{}",
        files.len(),
        bytes as f64 / 1e6,
        errors.len(),
        errors
            .first()
            .map_or(String::new(), |d| format!(" (first: {})", d.message()))
    );
    let parsed: Vec<_> = files.iter().map(|src| parse(src).ast).collect();
    measure("parse", bytes, || {
        for src in &files {
            black_box(parse(black_box(src)));
        }
    });
    measure("check (parsed trees)", bytes, || {
        for ast in &parsed {
            black_box(aether_check::check(black_box(ast), &registry));
        }
    });
    measure("analyze (parse + check)", bytes, || {
        for src in &files {
            black_box(aether_check::analyze(black_box(src), &registry));
        }
    });
}
