//! End-to-end tests of `aether gate`: exit codes, thresholds, baseline shapes and the JSON result (docs/gate.md).

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{json, Value};

/// The result object's keys, in the seed's order.
const RESULT_KEYS: [&str; 7] = [
    "ok",
    "timestamp",
    "new_counts",
    "ref_counts",
    "abs_threshold",
    "rel_threshold",
    "regressions",
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{}", self.stdout))
    }
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::cargo_bin("aether")
        .expect("the aether binary is built")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("aether starts");
    Run {
        code: out
            .status
            .code()
            .expect("aether exits by itself, not by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write file");
    path
}

/// A baseline in the shape `generate_parse_baseline.py` writes, with `by_code` as given.
fn baseline(by_code: Value) -> String {
    json!({
        "timestamp": "2025-09-13T10:00:00Z",
        "total": 2700,
        "by_code": by_code,
        "failure_rate": 0.6667,
        "files": [{"path": "a.aether", "code_name": "PARSE_ERROR", "line": 12, "message": "x"}],
    })
    .to_string()
}

/// Run the gate on two `by_code` objects with extra arguments.
fn gate(new: Value, reference: Value, extra: &[&str]) -> Run {
    let dir = tempdir();
    write(dir.path(), "new.json", &baseline(new));
    write(dir.path(), "ref.json", &baseline(reference));
    let mut args = vec!["gate", "--new", "new.json", "--ref", "ref.json"];
    args.extend_from_slice(extra);
    run_in(dir.path(), &args)
}

fn assert_timestamp(v: &Value) {
    let ts = v["timestamp"].as_str().expect("timestamp is a string");
    assert!(
        ts.len() == "2026-01-01T00:00:00.000000Z".len() && ts.ends_with('Z') && ts.contains('T'),
        "RFC 3339 UTC with microseconds: {ts}"
    );
}

fn codes(v: &Value) -> Vec<&str> {
    v["regressions"]
        .as_array()
        .expect("regressions is a list")
        .iter()
        .map(|r| r["code"].as_str().expect("code"))
        .collect()
}

#[test]
fn no_regression_exits_0() {
    let res = gate(
        json!({"PARSE_ERROR": 100, "VALIDATION_ERROR": 10}),
        json!({"PARSE_ERROR": 100, "VALIDATION_ERROR": 12}),
        &[],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    let v = res.json();
    assert_eq!(v["ok"], json!(true));
    assert_eq!(v["regressions"], json!([]));
    assert_eq!(
        v["new_counts"],
        json!({"PARSE_ERROR": 100, "VALIDATION_ERROR": 10})
    );
    assert_eq!(
        v["ref_counts"],
        json!({"PARSE_ERROR": 100, "VALIDATION_ERROR": 12})
    );
    assert_eq!(res.stderr, "");
}

#[test]
fn the_seeds_example_regresses_on_validation_error_only() {
    // PARSE_ERROR +10 is over the absolute threshold but only +0.56%.
    let res = gate(
        json!({"PARSE_ERROR": 1810, "VALIDATION_ERROR": 42}),
        json!({"PARSE_ERROR": 1800, "VALIDATION_ERROR": 30}),
        &[],
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
    let v = res.json();
    assert_eq!(v["ok"], json!(false));
    assert_eq!(
        v["regressions"],
        json!([{"code": "VALIDATION_ERROR", "old": 30, "new": 42, "delta": 12, "relative_increase": 0.4}])
    );
    assert!(
        res.stderr
            .contains("regression: VALIDATION_ERROR grew from 30 to 42 (+12, +40.0%)"),
        "{}",
        res.stderr
    );
}

#[test]
fn result_keys_come_in_the_seeds_order_and_counts_in_target_order() {
    // `by_code` lists VALIDATION_ERROR first: the output still starts with PARSE_ERROR.
    let res = gate(
        json!({"VALIDATION_ERROR": 3, "SUCCESS": 9, "PARSE_ERROR": 4}),
        json!({"VALIDATION_ERROR": 3, "PARSE_ERROR": 4}),
        &[],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    let v = res.json();
    let keys: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, RESULT_KEYS);
    for field in ["new_counts", "ref_counts"] {
        let keys: Vec<&str> = v[field]
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["PARSE_ERROR", "VALIDATION_ERROR"], "{field}");
    }
    assert_timestamp(&v);
}

#[test]
fn count_objects_and_plain_ints_are_read_alike() {
    let res = gate(
        json!({"PARSE_ERROR": {"count": 40}, "VALIDATION_ERROR": {"count": 2}}),
        json!({"PARSE_ERROR": 20, "VALIDATION_ERROR": {"count": 2}}),
        &[],
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
    let v = res.json();
    assert_eq!(
        v["new_counts"],
        json!({"PARSE_ERROR": 40, "VALIDATION_ERROR": 2})
    );
    assert_eq!(
        v["regressions"],
        json!([{"code": "PARSE_ERROR", "old": 20, "new": 40, "delta": 20, "relative_increase": 1.0}])
    );
}

#[test]
fn an_absent_code_counts_zero_and_growth_from_zero_is_relative_one() {
    // The seed's own baseline example has no VALIDATION_ERROR key.
    let res = gate(
        json!({"SUCCESS": 900, "PARSE_ERROR": 1800, "VALIDATION_ERROR": 6}),
        json!({"SUCCESS": 900, "PARSE_ERROR": 1800}),
        &[],
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
    let v = res.json();
    assert_eq!(v["ref_counts"]["VALIDATION_ERROR"], json!(0));
    assert_eq!(
        v["regressions"],
        json!([{"code": "VALIDATION_ERROR", "old": 0, "new": 6, "delta": 6, "relative_increase": 1.0}])
    );
}

#[test]
fn growth_from_zero_needs_a_relative_threshold_below_one() {
    let res = gate(
        json!({"PARSE_ERROR": 50}),
        json!({"PARSE_ERROR": 0}),
        &["--rel-threshold", "1"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.json()["rel_threshold"], json!(1.0));
}

#[test]
fn growth_equal_to_the_absolute_threshold_is_not_a_regression() {
    // +5 with abs 5 (relative 0.5 is far above 0.10).
    let res = gate(json!({"PARSE_ERROR": 15}), json!({"PARSE_ERROR": 10}), &[]);
    assert_eq!(res.code, 0, "{}", res.stdout);
    let res = gate(json!({"PARSE_ERROR": 16}), json!({"PARSE_ERROR": 10}), &[]);
    assert_eq!(res.code, 1, "{}", res.stdout);
}

#[test]
fn growth_equal_to_the_relative_threshold_is_not_a_regression() {
    // +10 of 100 is exactly 0.10 (absolute +10 is above 5).
    let res = gate(
        json!({"PARSE_ERROR": 110}),
        json!({"PARSE_ERROR": 100}),
        &[],
    );
    assert_eq!(res.code, 0, "{}", res.stdout);
    let res = gate(
        json!({"PARSE_ERROR": 111}),
        json!({"PARSE_ERROR": 100}),
        &[],
    );
    assert_eq!(res.code, 1, "{}", res.stdout);
}

#[test]
fn both_codes_regress_in_target_order() {
    let res = gate(
        json!({"VALIDATION_ERROR": 30, "PARSE_ERROR": 30}),
        json!({"VALIDATION_ERROR": 10, "PARSE_ERROR": 10}),
        &[],
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
    assert_eq!(codes(&res.json()), ["PARSE_ERROR", "VALIDATION_ERROR"]);
}

#[test]
fn thresholds_are_configurable_and_echoed() {
    let res = gate(
        json!({"PARSE_ERROR": 12}),
        json!({"PARSE_ERROR": 10}),
        &["--abs-threshold", "1", "--rel-threshold", "0.15"],
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
    let v = res.json();
    assert_eq!(v["abs_threshold"], json!(1));
    assert_eq!(v["rel_threshold"], json!(0.15));
    assert_eq!(codes(&v), ["PARSE_ERROR"]);
    // Zero thresholds: any growth at all regresses.
    let res = gate(
        json!({"PARSE_ERROR": 11}),
        json!({"PARSE_ERROR": 10}),
        &["--abs-threshold", "0", "--rel-threshold", "0"],
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
}

#[test]
fn whole_number_floats_are_accepted_as_threshold_and_counts() {
    // Regression: `--abs-threshold 3.0` and `"PARSE_ERROR": 3.0` were rejected, though both
    // are whole numbers (what a script doing arithmetic, or a JSON writer, may print).
    let res = gate(
        json!({"PARSE_ERROR": 14.0, "VALIDATION_ERROR": {"count": 2.0}}),
        json!({"PARSE_ERROR": 10, "VALIDATION_ERROR": {"count": 2}}),
        &["--abs-threshold", "3.0"],
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
    let v = res.json();
    assert_eq!(v["abs_threshold"], json!(3), "echoed as an integer");
    assert_eq!(
        v["new_counts"],
        json!({"PARSE_ERROR": 14, "VALIDATION_ERROR": 2})
    );
    assert_eq!(codes(&v), ["PARSE_ERROR"]);
    let res = gate(
        json!({"PARSE_ERROR": 13}),
        json!({"PARSE_ERROR": 10}),
        &["--abs-threshold", "3.0"],
    );
    assert_eq!(res.code, 0, "growth 3 is not more than 3.0: {}", res.stderr);
    // A fractional count is still invalid.
    let res = gate(json!({"PARSE_ERROR": 3.5}), json!({}), &[]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(
        res.stderr
            .starts_with("error: new baseline `new.json`: `by_code.PARSE_ERROR` must be a count"),
        "{}",
        res.stderr
    );
}

#[test]
fn baselines_may_start_with_a_byte_order_mark() {
    // PowerShell's `Set-Content -Encoding utf8` writes a UTF-8 BOM; Windows PowerShell's `>`
    // writes UTF-16 with a BOM.
    let dir = tempdir();
    let new = baseline(json!({"PARSE_ERROR": 20}));
    fs::write(dir.path().join("new.json"), format!("\u{FEFF}{new}")).expect("write");
    let reference = baseline(json!({"PARSE_ERROR": 10}));
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(reference.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    fs::write(dir.path().join("ref.json"), utf16).expect("write");
    let res = run_in(
        dir.path(),
        &["gate", "--new", "new.json", "--ref", "ref.json"],
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
    let v = res.json();
    assert_eq!(v["new_counts"]["PARSE_ERROR"], json!(20));
    assert_eq!(v["ref_counts"]["PARSE_ERROR"], json!(10));
    // Bytes that are not text are still an input error.
    fs::write(dir.path().join("ref.json"), b"\xEF\xBB\xBF{\xff}").expect("write");
    let res = run_in(
        dir.path(),
        &["gate", "--new", "new.json", "--ref", "ref.json"],
    );
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert_eq!(
        res.stderr,
        "error: reference baseline `ref.json`: not valid UTF-8 (byte 4)\n"
    );
}

#[test]
fn a_decrease_is_never_a_regression() {
    let res = gate(
        json!({"PARSE_ERROR": 0, "VALIDATION_ERROR": 0}),
        json!({"PARSE_ERROR": 500, "VALIDATION_ERROR": 40}),
        &["--abs-threshold", "0", "--rel-threshold", "0"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
}

#[test]
fn bad_thresholds_are_usage_errors() {
    for (flag, value) in [
        ("--abs-threshold", "-1"),
        ("--abs-threshold", "2.5"),
        ("--abs-threshold", "3.5"),
        ("--abs-threshold", "-3.0"),
        ("--abs-threshold", "NaN"),
        ("--abs-threshold", "inf"),
        ("--abs-threshold", "1e30"),
        ("--abs-threshold", "many"),
        ("--rel-threshold", "-0.1"),
        ("--rel-threshold", "NaN"),
        ("--rel-threshold", "inf"),
    ] {
        let res = gate(json!({}), json!({}), &[flag, value]);
        assert_eq!(res.code, 2, "{flag} {value}: {}", res.stderr);
        assert!(
            res.stderr
                .contains(&format!("invalid value '{value}' for '{flag}")),
            "{flag} {value}: {}",
            res.stderr
        );
        assert_eq!(res.stdout, "", "{flag} {value}");
    }
}

#[test]
fn missing_arguments_are_usage_errors() {
    let dir = tempdir();
    let res = run_in(dir.path(), &["gate", "--new", "new.json"]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.stderr.contains("--ref <FILE>"), "{}", res.stderr);
}

#[test]
fn a_missing_new_baseline_exits_2() {
    let dir = tempdir();
    write(dir.path(), "ref.json", &baseline(json!({})));
    let res = run_in(
        dir.path(),
        &["gate", "--new", "absent.json", "--ref", "ref.json"],
    );
    assert_eq!(res.code, 2);
    assert_eq!(res.stdout, "");
    assert_eq!(
        res.stderr,
        "error: new baseline `absent.json` does not exist\n"
    );
}

#[test]
fn an_invalid_baseline_exits_2_whichever_side() {
    for (text, why) in [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (r#"{"total": 3}"#, "no `by_code` object"),
        (r#"{"by_code": [1]}"#, "`by_code` is not an object"),
        (
            r#"{"by_code": {"PARSE_ERROR": -4}}"#,
            "`by_code.PARSE_ERROR` must be a count",
        ),
        (
            r#"{"by_code": {"VALIDATION_ERROR": {"total": 4}}}"#,
            "`by_code.VALIDATION_ERROR` must be a count",
        ),
    ] {
        for side in ["new", "ref"] {
            let dir = tempdir();
            let good = baseline(json!({"PARSE_ERROR": 1}));
            let (new, reference) = if side == "new" {
                (text.to_string(), good)
            } else {
                (good, text.to_string())
            };
            write(dir.path(), "new.json", &new);
            write(dir.path(), "ref.json", &reference);
            let res = run_in(
                dir.path(),
                &["gate", "--new", "new.json", "--ref", "ref.json"],
            );
            assert_eq!(res.code, 2, "{side} {text}: {}", res.stderr);
            assert_eq!(res.stdout, "", "{side} {text}");
            let label = if side == "new" { "new" } else { "reference" };
            assert!(
                res.stderr
                    .starts_with(&format!("error: {label} baseline `{side}.json`: {why}")),
                "{side} {text}: {}",
                res.stderr
            );
        }
    }
}

#[test]
fn an_unreadable_baseline_exits_2() {
    // A directory cannot be read as a file, even by root.
    let dir = tempdir();
    write(dir.path(), "new.json", &baseline(json!({})));
    fs::create_dir(dir.path().join("ref.json")).expect("mkdir");
    let res = run_in(
        dir.path(),
        &[
            "gate",
            "--new",
            "new.json",
            "--ref",
            "ref.json",
            "--fail-on-missing-ref",
        ],
    );
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(
        res.stderr
            .starts_with("error: reference baseline cannot read `ref.json`:"),
        "{}",
        res.stderr
    );
}

#[test]
fn a_missing_reference_passes_with_a_warning() {
    let dir = tempdir();
    write(
        dir.path(),
        "new.json",
        &baseline(json!({"PARSE_ERROR": 99})),
    );
    let res = run_in(
        dir.path(),
        &["gate", "--new", "new.json", "--ref", "absent.json"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stderr,
        "warning: reference baseline `absent.json` does not exist: nothing to compare, passing (use --fail-on-missing-ref to fail)\n"
    );
    let v = res.json();
    assert_eq!(v["ok"], json!(true));
    assert_eq!(v["ref_counts"], Value::Null);
    assert_eq!(v["regressions"], json!([]));
    assert_eq!(
        v["new_counts"],
        json!({"PARSE_ERROR": 99, "VALIDATION_ERROR": 0})
    );
}

#[test]
fn a_missing_reference_fails_with_fail_on_missing_ref() {
    let dir = tempdir();
    write(
        dir.path(),
        "new.json",
        &baseline(json!({"PARSE_ERROR": 99})),
    );
    let res = run_in(
        dir.path(),
        &[
            "gate",
            "--new",
            "new.json",
            "--ref",
            "absent.json",
            "--fail-on-missing-ref",
        ],
    );
    assert_eq!(res.code, 2);
    assert_eq!(res.stdout, "");
    assert_eq!(
        res.stderr,
        "error: reference baseline `absent.json` does not exist\n"
    );
}

#[test]
fn result_snapshot() {
    let res = gate(
        json!({"SUCCESS": 850, "PARSE_ERROR": {"count": 1810}, "VALIDATION_ERROR": 42}),
        json!({"SUCCESS": 870, "PARSE_ERROR": 1800, "VALIDATION_ERROR": {"count": 30}}),
        &[],
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
    let v = res.json();
    assert_timestamp(&v);
    let ts = v["timestamp"].as_str().expect("timestamp");
    // The exact bytes on stdout, timestamp aside.
    insta::assert_snapshot!("gate_result", res.stdout.replace(ts, "[timestamp]"));
}
