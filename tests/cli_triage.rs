//! End-to-end tests of triage: `aether classify`, `aether baseline`, `aether trends`, stable fingerprints and stale suppressions.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use assert_cmd::Command;
use serde_json::Value;

/// The fixture tree (copied into a temporary directory by [`triage_tree`]).
const TREE: &str = "tests/fixtures/triage/tree";
/// Copied to `.aetherra/workflow_suppressions.txt`, the default suppression file.
const SUPPRESSIONS: &str = "tests/fixtures/triage/workflow_suppressions.txt";
const DEFAULT_SUPPRESSIONS: &str = ".aetherra/workflow_suppressions.txt";
const HISTORY: &str = ".aetherra/workflow_history";

// Fingerprints of the fixture tree's findings, hard-coded and verified with
// `printf '%s' 'INPUT' | sha256sum | cut -c1-16` (INPUT in the comment); the tests also
// recompute every one of them with [`sha256_16`].

/// `VALIDATION_ERROR|3|unknown function `foo``
const FP_FOO: &str = "d7adfda14188f536";
/// `stable/v1|A101|validation_error.aether|foo|0`
const SFP_FOO: &str = "8d07a720a40bfdbd";
/// `VALIDATION_ERROR|3|unknown function `bar`` (suppressed by line 2 of the suppression file)
const FP_BAR: &str = "98b0d72d0a9bb2da";
/// `stable/v1|A101|suppressed_legacy.aether|bar|0`
const SFP_BAR: &str = "f6579ce26ced930c";
/// `PARSE_ERROR|3|unexpected end of line, expected `:``
const FP_PARSE: &str = "ddfef4a0dae2b000";
/// `stable/v1|A001|parse_error.aether||0` (the span is empty: the end of `if ready`)
const SFP_PARSE: &str = "6f2fa122e43012b7";
/// `IO_ERROR|2|file is not valid UTF-8: invalid byte at offset 25`
const FP_UTF8: &str = "8927b14f3ee26976";
/// `stable/v1|A018|not_utf8.aether|\u{FFFD}|0` (the bad byte, decoded as U+FFFD:
/// `printf 'stable/v1|A018|not_utf8.aether|\xef\xbf\xbd|0' | sha256sum`)
const SFP_UTF8: &str = "f113017d85f2a296";
/// `RUNTIME_ERROR|3|list index 5 is out of range for a list of length 1`
const FP_INDEX: &str = "df098db768cba837";
/// `stable/v1|RUNTIME_ERROR|runtime_error.aether|xs[5]|0`
const SFP_INDEX: &str = "3ede5f1b81c90176";
/// `TIMEOUT_ERROR|-|the run's time budget of 1s ran out (policy timeout or --timeout)`: a
/// timeout has no position (where the budget runs out depends on the machine's speed).
const FP_TIMEOUT: &str = "bc9e6b45a499dcd0";
/// `stable/v1|TIMEOUT_ERROR|timeout.aether||0` (no position, so no snippet)
const SFP_TIMEOUT: &str = "7ca9341bad549bb9";
/// `RUNTIME_ERROR|3|list index 7 is out of range for a list of length 2`
const FP_NAMES: &str = "db1d46dd3af9a13b";
/// `stable/v1|RUNTIME_ERROR|suppressed_stable.aether|names[7]|0` (suppressed by line 3)
const SFP_NAMES: &str = "d8dbfefe293ba423";
/// Line 5 of the suppression file: matches nothing.
const STALE: &str = "0123456789abcdef";

const BAR_MSG: &str = "unknown function `bar`";
const FOO_MSG: &str = "unknown function `foo`";
const PARSE_MSG: &str = "unexpected end of line, expected `:`";
const UTF8_MSG: &str = "file is not valid UTF-8: invalid byte at offset 25";
const INDEX_MSG: &str = "list index 5 is out of range for a list of length 1";
const NAMES_MSG: &str = "list index 7 is out of range for a list of length 2";
const TIMEOUT_MSG: &str = "the run's time budget of 1s ran out (policy timeout or --timeout)";

/// Every path of the tree in report order (sorted), with the files of skipped directories absent.
const PATHS: [&str; 9] = [
    "clean.aether",
    "not_utf8.aether",
    "parse_error.aether",
    "runtime_error.aether",
    "sub/nested_clean.aether",
    "suppressed_legacy.aether",
    "suppressed_stable.aether",
    "timeout.aether",
    "validation_error.aether",
];

/// The keys of a `workflows` record, in order.
const RECORD_KEYS: [&str; 13] = [
    "path",
    "ok",
    "category",
    "error",
    "signature_verified",
    "risk_score",
    "code",
    "code_name",
    "phase",
    "line",
    "fingerprint",
    "stable_fingerprint",
    "suppressed",
];

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn aether(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("aether").expect("the aether binary is built");
    cmd.current_dir(dir).env("NO_COLOR", "1");
    cmd
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    let out = aether(dir).args(args).output().expect("aether starts");
    Run {
        code: out
            .status
            .code()
            .expect("aether exits by itself, not by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Run and insist on exit 0.
fn ok_in(dir: &Path, args: &[&str]) -> Run {
    let res = run_in(dir, args);
    assert_eq!(
        res.code, 0,
        "aether {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        res.stdout, res.stderr
    );
    res
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().expect("a file has a parent")).expect("create dirs");
    fs::write(&path, bytes).expect("write file");
    path
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy fixture");
        }
    }
}

/// The fixture tree in a temporary directory (the tests' working directory), with the
/// default suppression file and a broken file in each of three skipped directories.
fn triage_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo_root().join(TREE), dir.path());
    let supp = dir.path().join(DEFAULT_SUPPRESSIONS);
    fs::create_dir_all(supp.parent().expect("parent")).expect("create .aetherra");
    fs::copy(repo_root().join(SUPPRESSIONS), &supp).expect("copy suppressions");
    let broken = b"goal: \"in a skipped directory\"\nnot_a_function()\n";
    for rel in ["target/x.aether", ".venv/y.aether", "node_modules/z.aether"] {
        write(dir.path(), rel, broken);
    }
    dir
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Replace every `timestamp` value, so that reports can be compared and snapshotted.
fn redact_timestamps(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "timestamp" {
                    *x = Value::String("[timestamp]".into());
                } else {
                    redact_timestamps(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_timestamps),
        _ => {}
    }
}

fn redacted(v: &Value) -> Value {
    let mut v = v.clone();
    redact_timestamps(&mut v);
    v
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("serialise")
}

/// The `workflows` record of `path`.
fn record<'a>(doc: &'a Value, path: &str) -> &'a Value {
    doc["workflows"]
        .as_array()
        .expect("workflows is an array")
        .iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("no record for {path} in\n{}", pretty(doc)))
}

fn paths(doc: &Value) -> Vec<&str> {
    doc["workflows"]
        .as_array()
        .expect("workflows is an array")
        .iter()
        .map(|r| r["path"].as_str().expect("path"))
        .collect()
}

/// `classify` with the JSON report on stdout and no history, markdown discarded.
fn classify_json(dir: &Path, extra: &[&str]) -> (Value, String) {
    let mut args = vec![
        "classify",
        "--output",
        "-",
        "--markdown",
        "/dev/null",
        "--no-history",
    ];
    args.extend_from_slice(extra);
    let res = ok_in(dir, &args);
    (parse_json(&res.stdout), res.stderr)
}

/// The `--format json` diagnostics of one file: `(rule, line, fingerprint, stable_fingerprint)`.
fn check_findings(dir: &Path, file: &str, extra: &[&str]) -> Vec<(String, u64, String, String)> {
    let mut args = vec!["check", file, "--format", "json"];
    args.extend_from_slice(extra);
    let res = run_in(dir, &args);
    let files = parse_json(&res.stdout);
    let files = files.as_array().expect("an array of files");
    assert_eq!(files.len(), 1, "{}", res.stdout);
    files[0]["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| {
            (
                d["rule"].as_str().expect("rule").to_string(),
                d["line"].as_u64().expect("line"),
                d["fingerprint"].as_str().expect("fingerprint").to_string(),
                d["stable_fingerprint"]
                    .as_str()
                    .expect("stable_fingerprint")
                    .to_string(),
            )
        })
        .collect()
}

/// The warning `check` and `classify` print for a stale suppression entry.
fn stale_warning(fp: &str, file: &str, line: u32) -> String {
    format!("warning: suppression `{fp}` ({file}:{line}) matched no finding in the files checked; remove it if it is fixed")
}

/// The stale-suppression warnings of a run's stderr.
fn stale_warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("warning: suppression"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), so that fingerprints are recomputed from their recipe here rather
// than trusted: the crate under test has `sha2`, the tests do not.

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The first 16 hex characters of SHA-256 of `input`.
fn sha256_16(input: &str) -> String {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = input.as_bytes().to_vec();
    let bits = (msg.len() as u64) * 8;
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    format!("{:08x}{:08x}", h[0], h[1])
}

/// docs/contract/LANGUAGE.md section 8: `CODE_NAME|LINE|FIRST_LINE_OF_MESSAGE`.
fn legacy_fp(code_name: &str, line: Option<u32>, message: &str) -> String {
    let line = line.map_or_else(|| "-".to_string(), |l| l.to_string());
    let first = message.lines().next().unwrap_or("");
    sha256_16(&format!("{code_name}|{line}|{first}"))
}

/// `stable/v1|RULE|PATH|SNIPPET|OCCURRENCE`.
fn stable_fp(rule: &str, path: &str, snippet: &str, occurrence: usize) -> String {
    sha256_16(&format!("stable/v1|{rule}|{path}|{snippet}|{occurrence}"))
}

#[test]
fn sha256_helper_matches_known_digests() {
    // NIST test vectors, plus the block boundaries of the padding (55, 56 and 64 bytes).
    assert_eq!(sha256_16(""), "e3b0c44298fc1c14");
    assert_eq!(sha256_16("abc"), "ba7816bf8f01cfea");
    assert_eq!(
        sha256_16("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8"
    );
    // `printf 'a%.0s' $(seq 55) | sha256sum` and likewise for 56 and 64.
    assert_eq!(sha256_16(&"a".repeat(55)), "9f4390f8d30c2dd9");
    assert_eq!(sha256_16(&"a".repeat(56)), "b35439a4ac6f0948");
    assert_eq!(sha256_16(&"a".repeat(64)), "ffe054fe7ae0cb6d");
}

#[test]
fn fixture_fingerprints_follow_their_recipes() {
    let legacy = [
        (FP_FOO, "VALIDATION_ERROR", FOO_MSG),
        (FP_BAR, "VALIDATION_ERROR", BAR_MSG),
        (FP_PARSE, "PARSE_ERROR", PARSE_MSG),
        (FP_INDEX, "RUNTIME_ERROR", INDEX_MSG),
        (FP_NAMES, "RUNTIME_ERROR", NAMES_MSG),
    ];
    for (fp, code, msg) in legacy {
        assert_eq!(legacy_fp(code, Some(3), msg), fp, "{code}|3|{msg}");
    }
    assert_eq!(legacy_fp("IO_ERROR", Some(2), UTF8_MSG), FP_UTF8);
    assert_eq!(legacy_fp("TIMEOUT_ERROR", None, TIMEOUT_MSG), FP_TIMEOUT);
    let stable = [
        (SFP_FOO, "A101", "validation_error.aether", "foo"),
        (SFP_BAR, "A101", "suppressed_legacy.aether", "bar"),
        (SFP_PARSE, "A001", "parse_error.aether", ""),
        (SFP_UTF8, "A018", "not_utf8.aether", "\u{FFFD}"),
        (SFP_INDEX, "RUNTIME_ERROR", "runtime_error.aether", "xs[5]"),
        (SFP_TIMEOUT, "TIMEOUT_ERROR", "timeout.aether", ""),
        (
            SFP_NAMES,
            "RUNTIME_ERROR",
            "suppressed_stable.aether",
            "names[7]",
        ),
    ];
    for (fp, rule, path, snippet) in stable {
        assert_eq!(
            stable_fp(rule, path, snippet, 0),
            fp,
            "{rule} {path} {snippet:?}"
        );
    }
    // The suppression file lists the legacy fingerprint of one file, the stable one of another.
    let text = read(&repo_root().join(SUPPRESSIONS));
    let entries: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let token = l.split_whitespace().next()?;
            (!token.starts_with('#')).then_some((i + 1, token))
        })
        .collect();
    assert_eq!(entries, [(2, FP_BAR), (3, SFP_NAMES), (5, STALE)]);
}

// ---------------------------------------------------------------------------------------------
// classify over the fixture tree

/// Field by field, the record classify gives a file.
#[allow(clippy::too_many_arguments)]
fn assert_record(
    doc: &Value,
    path: &str,
    category: &str,
    code: i64,
    phase: &str,
    line: Option<u32>,
    error: Option<&str>,
    fingerprints: Option<(&str, &str)>,
    suppressed: bool,
) {
    let r = record(doc, path);
    let keys: Vec<&str> = r
        .as_object()
        .expect("a record is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, RECORD_KEYS, "{path}");
    let code_name = match code {
        0 => "SUCCESS",
        20 => "PARSE_ERROR",
        21 => "RUNTIME_ERROR",
        23 => "TIMEOUT_ERROR",
        25 => "VALIDATION_ERROR",
        26 => "IO_ERROR",
        other => panic!("unexpected code {other}"),
    };
    let ok = code == 0 || suppressed;
    let expected = serde_json::json!({
        "path": path,
        "ok": ok,
        "category": category,
        "error": error,
        "signature_verified": false,
        "risk_score": 0,
        "code": code,
        "code_name": code_name,
        "phase": phase,
        "line": line,
        "fingerprint": fingerprints.map(|f| f.0),
        "stable_fingerprint": fingerprints.map(|f| f.1),
        "suppressed": suppressed,
    });
    assert_eq!(r, &expected, "record of {path}");
}

/// Categories as `(name, count, examples)`, in the report's order.
fn categories(doc: &Value) -> Vec<(String, u64, Vec<String>)> {
    doc["summary"]["categories"]
        .as_object()
        .expect("categories is an object")
        .iter()
        .map(|(name, c)| {
            let examples = c["examples"]
                .as_array()
                .expect("examples")
                .iter()
                .map(|e| e.as_str().expect("example path").to_string())
                .collect();
            (name.clone(), c["count"].as_u64().expect("count"), examples)
        })
        .collect()
}

fn cat(name: &str, examples: &[&str]) -> (String, u64, Vec<String>) {
    (
        name.to_string(),
        examples.len() as u64,
        examples.iter().map(|s| s.to_string()).collect(),
    )
}

/// The markdown's `| Category | Count | Examples |` rows as `(name, count, examples)`.
fn markdown_rows(md: &str) -> Vec<(String, u64, Vec<String>)> {
    let mut lines = md
        .lines()
        .skip_while(|l| *l != "| Category | Count | Examples |");
    assert_eq!(
        lines.next(),
        Some("| Category | Count | Examples |"),
        "no table in\n{md}"
    );
    assert_eq!(lines.next(), Some("|---|---|---|"));
    lines
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "{l}");
            let examples = cells[2]
                .split(", ")
                .map(|e| e.trim_matches('`').to_string())
                .collect();
            (
                cells[0].to_string(),
                cells[1].parse().expect("a count"),
                examples,
            )
        })
        .collect()
}

#[test]
fn classify_the_fixture_tree() {
    let dir = triage_tree();
    let d = dir.path();
    let res = ok_in(d, &["classify", "--timeout", "1s", "--jobs", "4"]);
    let doc = parse_json(&read(&d.join("workflow_failures.json")));
    let md = read(&d.join("workflow_failures.md"));

    // Discovery: sorted by path, the files of target/, .venv/ and node_modules/ skipped.
    assert_eq!(paths(&doc), PATHS);

    let s = &doc["summary"];
    let keys: Vec<&str> = s
        .as_object()
        .expect("summary")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "total",
            "failed",
            "failure_rate",
            "suppressed_failures",
            "categories",
            "suppression_file",
            "stale_suppressions",
            "timestamp"
        ]
    );
    assert_eq!(s["total"], 9);
    assert_eq!(s["failed"], 5);
    assert_eq!(s["failure_rate"], 0.5556);
    assert_eq!(s["suppressed_failures"], 2);
    assert_eq!(s["suppression_file"], DEFAULT_SUPPRESSIONS);
    // The stable suppression of a runtime failure is used by the run: only line 5 is stale.
    assert_eq!(
        s["stale_suppressions"],
        serde_json::json!([{"fingerprint": STALE, "line": 5}])
    );
    let ts = s["timestamp"].as_str().expect("timestamp");
    chrono::DateTime::parse_from_rfc3339(ts).expect("an RFC 3339 timestamp");
    assert!(ts.ends_with('Z') && ts.len() == 27, "{ts}");
    // Most frequent first, then by name.
    assert_eq!(
        categories(&doc),
        [
            cat("SUCCESS", &["clean.aether", "sub/nested_clean.aether"]),
            cat("IO_ERROR", &["not_utf8.aether"]),
            cat("PARSE_ERROR", &["parse_error.aether"]),
            cat("RUNTIME_ERROR", &["runtime_error.aether"]),
            cat("Suppressed-RUNTIME_ERROR", &["suppressed_stable.aether"]),
            cat("Suppressed-VALIDATION_ERROR", &["suppressed_legacy.aether"]),
            cat("TIMEOUT_ERROR", &["timeout.aether"]),
            cat("VALIDATION_ERROR", &["validation_error.aether"]),
        ]
    );

    let x = "execute";
    assert_record(
        &doc,
        "clean.aether",
        "SUCCESS",
        0,
        x,
        None,
        None,
        None,
        false,
    );
    assert_record(
        &doc,
        "sub/nested_clean.aether",
        "SUCCESS",
        0,
        x,
        None,
        None,
        None,
        false,
    );
    assert_record(
        &doc,
        "not_utf8.aether",
        "IO_ERROR",
        26,
        "read",
        Some(2),
        Some(UTF8_MSG),
        Some((FP_UTF8, SFP_UTF8)),
        false,
    );
    assert_record(
        &doc,
        "parse_error.aether",
        "PARSE_ERROR",
        20,
        "parse",
        Some(3),
        Some(PARSE_MSG),
        Some((FP_PARSE, SFP_PARSE)),
        false,
    );
    assert_record(
        &doc,
        "validation_error.aether",
        "VALIDATION_ERROR",
        25,
        "validate",
        Some(3),
        Some(FOO_MSG),
        Some((FP_FOO, SFP_FOO)),
        false,
    );
    assert_record(
        &doc,
        "runtime_error.aether",
        "RUNTIME_ERROR",
        21,
        x,
        Some(3),
        Some(INDEX_MSG),
        Some((FP_INDEX, SFP_INDEX)),
        false,
    );
    assert_record(
        &doc,
        "timeout.aether",
        "TIMEOUT_ERROR",
        23,
        x,
        None,
        Some(TIMEOUT_MSG),
        Some((FP_TIMEOUT, SFP_TIMEOUT)),
        false,
    );
    // Suppressed: ok, not failed, the code and fingerprints of the failure they hide.
    assert_record(
        &doc,
        "suppressed_legacy.aether",
        "Suppressed-VALIDATION_ERROR",
        25,
        "validate",
        Some(3),
        Some(BAR_MSG),
        Some((FP_BAR, SFP_BAR)),
        true,
    );
    assert_record(
        &doc,
        "suppressed_stable.aether",
        "Suppressed-RUNTIME_ERROR",
        21,
        x,
        Some(3),
        Some(NAMES_MSG),
        Some((FP_NAMES, SFP_NAMES)),
        true,
    );

    // stderr: the stale entry, then the summary.
    assert_eq!(
        stale_warnings(&res.stderr),
        [stale_warning(STALE, DEFAULT_SUPPRESSIONS, 5)]
    );
    assert!(
        res.stderr
            .contains("classified 9 workflows: 5 failed (55.56%), 2 suppressed\n"),
        "{}",
        res.stderr
    );
    assert_eq!(res.stdout, "", "reports go to files, not stdout");

    // The markdown table: one row per category, as in the JSON.
    assert_eq!(markdown_rows(&md), categories(&doc));
    assert!(md.contains("**9 workflows: 5 failed (55.56%), 2 suppressed.**"));
    assert!(md.contains("| `0123456789abcdef` | 5 |"));

    // One run, one history entry, whose snapshot is the report.
    let trends = parse_json(&read(&d.join(HISTORY).join("trends.json")));
    let entries = trends.as_array().expect("trends is an array");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["timestamp"], ts);
    assert_eq!(entries[0]["failed"], 5);
    assert_eq!(entries[0]["total"], 9);
    let snapshot = d
        .join(HISTORY)
        .join(entries[0]["file"].as_str().expect("file"));
    assert_eq!(read(&snapshot), read(&d.join("workflow_failures.json")));

    insta::assert_snapshot!("classify_json", pretty(&redacted(&doc)));
    insta::assert_snapshot!("classify_markdown", md.replace(ts, "[timestamp]"));
}

#[test]
fn check_only_runs_nothing() {
    let dir = triage_tree();
    let (doc, stderr) = classify_json(dir.path(), &["--check-only"]);
    let s = &doc["summary"];
    assert_eq!(paths(&doc), PATHS);
    assert_eq!(s["total"], 9);
    assert_eq!(s["failed"], 3);
    assert_eq!(s["failure_rate"], 0.3333);
    assert_eq!(s["suppressed_failures"], 1);
    assert_eq!(
        categories(&doc),
        [
            cat(
                "SUCCESS",
                &[
                    "clean.aether",
                    "runtime_error.aether",
                    "sub/nested_clean.aether",
                    "suppressed_stable.aether",
                    "timeout.aether",
                ]
            ),
            cat("IO_ERROR", &["not_utf8.aether"]),
            cat("PARSE_ERROR", &["parse_error.aether"]),
            cat("Suppressed-VALIDATION_ERROR", &["suppressed_legacy.aether"]),
            cat("VALIDATION_ERROR", &["validation_error.aether"]),
        ]
    );
    // Nothing ran: the clean files stop at the validate phase.
    for path in [
        "clean.aether",
        "runtime_error.aether",
        "sub/nested_clean.aether",
        "suppressed_stable.aether",
        "timeout.aether",
    ] {
        assert_record(
            &doc, path, "SUCCESS", 0, "validate", None, None, None, false,
        );
    }
    assert_record(
        &doc,
        "suppressed_legacy.aether",
        "Suppressed-VALIDATION_ERROR",
        25,
        "validate",
        Some(3),
        Some(BAR_MSG),
        Some((FP_BAR, SFP_BAR)),
        true,
    );
    // Without a run, the suppression of the runtime failure matches nothing either.
    assert_eq!(
        s["stale_suppressions"],
        serde_json::json!([
            {"fingerprint": SFP_NAMES, "line": 3},
            {"fingerprint": STALE, "line": 5},
        ])
    );
    assert_eq!(
        stale_warnings(&stderr),
        [
            stale_warning(SFP_NAMES, DEFAULT_SUPPRESSIONS, 3),
            stale_warning(STALE, DEFAULT_SUPPRESSIONS, 5),
        ]
    );
}

#[test]
fn check_and_classify_check_only_agree() {
    let dir = triage_tree();
    let d = dir.path();
    let check = run_in(d, &["check", ".", "--json-status"]);
    // The first failing file in discovery order decides the exit status.
    assert_eq!(check.code, 26);
    let statuses: Vec<Value> = check.stdout.lines().map(parse_json).collect();
    let files: Vec<String> = statuses
        .iter()
        .map(|s| {
            let f = s["file"].as_str().expect("file");
            f.strip_prefix("./").unwrap_or(f).to_string()
        })
        .collect();
    assert_eq!(files, PATHS);
    let (doc, _) = classify_json(d, &["--check-only"]);
    for (status, path) in statuses.iter().zip(PATHS) {
        let r = record(&doc, path);
        if r["suppressed"] == true {
            // check reports the file as passing; classify keeps the code it hides.
            assert_eq!(path, "suppressed_legacy.aether");
            assert_eq!(status["ok"], true);
            assert_eq!(status["code"], 0);
            assert_eq!(r["code"], 25);
            continue;
        }
        for key in ["ok", "code", "code_name", "phase", "line"] {
            assert_eq!(status[key], r[key], "{key} of {path}");
        }
        let message = status["message"].as_str().expect("message");
        assert_eq!(
            r["error"],
            if message.is_empty() {
                Value::Null
            } else {
                message.into()
            }
        );
    }
    // check warns about stale entries as classify --check-only does.
    assert_eq!(
        stale_warnings(&check.stderr),
        [
            stale_warning(SFP_NAMES, DEFAULT_SUPPRESSIONS, 3),
            stale_warning(STALE, DEFAULT_SUPPRESSIONS, 5),
        ]
    );
}

#[test]
fn categories_show_at_most_five_examples_most_frequent_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for i in 0..7 {
        write(d, &format!("ok_{i}.aether"), b"goal: \"fine\"\nprint(1)\n");
    }
    for i in 0..3 {
        write(d, &format!("bad_{i}.aether"), b"goal: \"bad\"\nfoo()\n");
    }
    let (doc, _) = classify_json(d, &["--check-only"]);
    assert_eq!(
        categories(&doc),
        [
            (
                "SUCCESS".to_string(),
                7,
                (0..5).map(|i| format!("ok_{i}.aether")).collect()
            ),
            (
                "VALIDATION_ERROR".to_string(),
                3,
                (0..3).map(|i| format!("bad_{i}.aether")).collect()
            ),
        ]
    );
    assert_eq!(doc["summary"]["failure_rate"], 0.3);
    assert_eq!(doc["summary"]["suppression_file"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// stable fingerprints

#[test]
fn stable_fingerprint_survives_lines_inserted_above() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let file = "flows/edit.aether";
    write(d, file, b"goal: \"edit\"\nlet total = 1\nfoo(total)\n");
    let stable = stable_fp("A101", file, "foo", 0);
    let before = check_findings(d, file, &[]);
    assert_eq!(
        before,
        [(
            "A101".to_string(),
            3,
            legacy_fp("VALIDATION_ERROR", Some(3), FOO_MSG),
            stable.clone()
        )]
    );
    // The path is project-relative however it is spelled.
    let absolute = d.join(file).display().to_string();
    for spelling in [
        "./flows/edit.aether",
        "flows//edit.aether",
        absolute.as_str(),
    ] {
        assert_eq!(check_findings(d, spelling, &[])[0].3, stable, "{spelling}");
    }

    // Two lines above the finding: the line-based fingerprint moves, the stable one stays.
    write(
        d,
        file,
        b"goal: \"edit\"\n# a comment\nlet unused = 0\nlet total = 1\nfoo(total)\n",
    );
    let after = check_findings(d, file, &[]);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].1, 5);
    assert_eq!(after[0].2, legacy_fp("VALIDATION_ERROR", Some(5), FOO_MSG));
    assert_ne!(after[0].2, before[0].2);
    assert_eq!(after[0].3, stable);

    // A suppression by the stable fingerprint, written before the edit, still suppresses.
    write(
        d,
        "supp.txt",
        format!("{stable}  # foo comes from a plugin\n").as_bytes(),
    );
    let check = run_in(
        d,
        &["check", file, "--json-status", "--suppressions", "supp.txt"],
    );
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert_eq!(stale_warnings(&check.stderr), Vec::<&str>::new());
    let (doc, stderr) = classify_json(d, &["flows", "--suppressions", "supp.txt"]);
    assert_eq!(stale_warnings(&stderr), Vec::<&str>::new());
    assert_record(
        &doc,
        file,
        "Suppressed-VALIDATION_ERROR",
        25,
        "validate",
        Some(5),
        Some(FOO_MSG),
        Some((after[0].2.as_str(), stable.as_str())),
        true,
    );

    // Editing the flagged text changes it: the suppression no longer applies and is stale.
    write(
        d,
        file,
        b"goal: \"edit\"\n# a comment\nlet unused = 0\nlet total = 1\nfooo(total)\n",
    );
    let edited = check_findings(d, file, &[]);
    assert_eq!(edited[0].3, stable_fp("A101", file, "fooo", 0));
    assert_ne!(edited[0].3, stable);
    let check = run_in(
        d,
        &["check", file, "--json-status", "--suppressions", "supp.txt"],
    );
    assert_eq!(check.code, 25);
    assert_eq!(
        stale_warnings(&check.stderr),
        [stale_warning(&stable, "supp.txt", 1)]
    );
}

#[test]
fn stable_fingerprint_of_a_runtime_failure_survives_lines_inserted_above() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let file = "flows/rt.aether";
    write(d, file, b"goal: \"rt\"\nlet xs = [1]\nprint(xs[5])\n");
    let stable = stable_fp("RUNTIME_ERROR", file, "xs[5]", 0);
    let (doc, _) = classify_json(d, &["flows"]);
    let legacy3 = legacy_fp("RUNTIME_ERROR", Some(3), INDEX_MSG);
    assert_record(
        &doc,
        file,
        "RUNTIME_ERROR",
        21,
        "execute",
        Some(3),
        Some(INDEX_MSG),
        Some((legacy3.as_str(), stable.as_str())),
        false,
    );
    write(d, "supp.txt", format!("{stable}\n").as_bytes());
    write(
        d,
        file,
        b"goal: \"rt\"\nprint(\"first\")\nprint(\"second\")\nlet xs = [1]\nprint(xs[5])\n",
    );
    let (doc, stderr) = classify_json(d, &["flows", "--suppressions", "supp.txt"]);
    let legacy5 = legacy_fp("RUNTIME_ERROR", Some(5), INDEX_MSG);
    assert_ne!(legacy5, legacy3);
    assert_record(
        &doc,
        file,
        "Suppressed-RUNTIME_ERROR",
        21,
        "execute",
        Some(5),
        Some(INDEX_MSG),
        Some((legacy5.as_str(), stable.as_str())),
        true,
    );
    assert_eq!(doc["summary"]["failed"], 0);
    assert_eq!(doc["summary"]["suppressed_failures"], 1);
    assert_eq!(stale_warnings(&stderr), Vec::<&str>::new());
}

/// Regression: a timeout's line and fingerprints were those of the statement running when
/// the budget ran out, which varies from run to run; now a timeout has no position, and its
/// suppression holds across runs and edits.
#[test]
fn timeouts_have_no_position_and_stable_fingerprints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let file = "spin.aether";
    // A loop whose body spans several lines: the budget can run out on any of them.
    write(
        d,
        file,
        b"goal: \"spin\"\nlet n = 0\nwhile true:\n    n = n + 1\n    n = n - 1\n    n = n * 1\n",
    );
    let msg = "the run's time budget of 300ms ran out (policy timeout or --timeout)";
    let legacy = legacy_fp("TIMEOUT_ERROR", None, msg);
    let stable = stable_fp("TIMEOUT_ERROR", file, "", 0);
    for _ in 0..3 {
        let (doc, _) = classify_json(d, &["--timeout", "300ms"]);
        assert_record(
            &doc,
            file,
            "TIMEOUT_ERROR",
            23,
            "execute",
            None,
            Some(msg),
            Some((legacy.as_str(), stable.as_str())),
            false,
        );
    }
    write(d, "supp.txt", format!("{stable}\n").as_bytes());
    let (doc, stderr) = classify_json(d, &["--timeout", "300ms", "--suppressions", "supp.txt"]);
    assert_eq!(record(&doc, file)["category"], "Suppressed-TIMEOUT_ERROR");
    assert_eq!(doc["summary"]["failed"], 0);
    assert_eq!(stale_warnings(&stderr), Vec::<&str>::new());
}

#[test]
fn identical_findings_in_one_file_get_different_stable_fingerprints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let file = "twice.aether";
    write(d, file, b"goal: \"twice\"\nfoo(1)\nfoo(2)\n");
    let findings = check_findings(d, file, &[]);
    let first = stable_fp("A101", file, "foo", 0);
    let second = stable_fp("A101", file, "foo", 1);
    assert_ne!(first, second);
    assert_eq!(
        findings,
        [
            (
                "A101".to_string(),
                2,
                legacy_fp("VALIDATION_ERROR", Some(2), FOO_MSG),
                first.clone()
            ),
            (
                "A101".to_string(),
                3,
                legacy_fp("VALIDATION_ERROR", Some(3), FOO_MSG),
                second.clone()
            ),
        ]
    );
    // Suppressing the second occurrence leaves the first failing.
    write(d, "supp.txt", format!("{second}\n").as_bytes());
    let check = run_in(
        d,
        &["check", file, "--json-status", "--suppressions", "supp.txt"],
    );
    assert_eq!(check.code, 25);
    assert_eq!(parse_json(check.stdout.trim())["line"], 2);
    // Both suppressed: the file passes.
    write(d, "supp.txt", format!("{first}\n{second}\n").as_bytes());
    let check = run_in(
        d,
        &["check", file, "--json-status", "--suppressions", "supp.txt"],
    );
    assert_eq!(check.code, 0);
}

// ---------------------------------------------------------------------------------------------
// stale suppressions

#[test]
fn stale_entries_are_reported_by_line_and_warned_about_by_check_and_classify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "a.aether", b"goal: \"a\"\nlet total = 1\nfoo(total)\n");
    let supp = format!(
        "# header comment\n\nFFFFEEEEDDDDCCCC  # stale, upper case\n{FP_FOO}\n   aaaabbbbccccdddd # stale, indented\n"
    );
    write(d, ".aetherra/workflow_suppressions.txt", supp.as_bytes());
    let (doc, stderr) = classify_json(d, &["--check-only"]);
    assert_eq!(
        doc["summary"]["stale_suppressions"],
        serde_json::json!([
            {"fingerprint": "ffffeeeeddddcccc", "line": 3},
            {"fingerprint": "aaaabbbbccccdddd", "line": 5},
        ])
    );
    let expected = [
        stale_warning("ffffeeeeddddcccc", DEFAULT_SUPPRESSIONS, 3),
        stale_warning("aaaabbbbccccdddd", DEFAULT_SUPPRESSIONS, 5),
    ];
    assert_eq!(stale_warnings(&stderr), expected);
    let check = run_in(d, &["check", "a.aether"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert_eq!(stale_warnings(&check.stderr), expected);
    // With nothing stale, nothing is said.
    write(
        d,
        ".aetherra/workflow_suppressions.txt",
        format!("{FP_FOO}\n").as_bytes(),
    );
    let (doc, stderr) = classify_json(d, &["--check-only"]);
    assert_eq!(doc["summary"]["stale_suppressions"], serde_json::json!([]));
    assert_eq!(stale_warnings(&stderr), Vec::<&str>::new());
}

/// Regression: classify counted only the suppression behind a file's verdict as used, so
/// entries for a second error, for an error next to an unsuppressed one, or for a warning
/// were reported stale by classify (but not by check).
#[test]
fn every_suppression_a_file_uses_counts_as_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // An unsuppressed error after a suppressed one.
    write(d, "mixed.aether", b"goal: \"mixed\"\nfoo(1)\nbar(2)\n");
    // Two suppressed errors.
    write(d, "both.aether", b"goal: \"both\"\nfoo(1)\nfoo(2)\n");
    // A suppressed warning (A203, unknown policy key) in a clean file.
    write(
        d,
        "warn.aether",
        b"goal: \"warn\"\npolicy:\n    retries: 3\nprint(\"done\")\n",
    );
    let warning = check_findings(d, "warn.aether", &[]);
    assert_eq!(warning.len(), 1);
    assert_eq!(warning[0].0, "A203");
    let supp = format!(
        "{}\n{}\n{}\n{}\n",
        stable_fp("A101", "mixed.aether", "foo", 0),
        stable_fp("A101", "both.aether", "foo", 0),
        stable_fp("A101", "both.aether", "foo", 1),
        warning[0].2,
    );
    write(d, "supp.txt", supp.as_bytes());
    for extra in [&["--check-only"][..], &[][..]] {
        let mut args = vec!["--suppressions", "supp.txt"];
        args.extend_from_slice(extra);
        let (doc, stderr) = classify_json(d, &args);
        assert_eq!(doc["summary"]["stale_suppressions"], serde_json::json!([]));
        assert_eq!(stale_warnings(&stderr), Vec::<&str>::new(), "{extra:?}");
        assert_eq!(record(&doc, "mixed.aether")["category"], "VALIDATION_ERROR");
        assert_eq!(record(&doc, "mixed.aether")["error"], BAR_MSG);
        assert_eq!(
            record(&doc, "both.aether")["category"],
            "Suppressed-VALIDATION_ERROR"
        );
        assert_eq!(record(&doc, "warn.aether")["category"], "SUCCESS");
    }
    let check = run_in(d, &["check", ".", "--suppressions", "supp.txt"]);
    assert_eq!(check.code, 25);
    assert_eq!(stale_warnings(&check.stderr), Vec::<&str>::new());
}

// ---------------------------------------------------------------------------------------------
// history and trends

/// A snapshot name: `%Y%m%dT%H%M%S.%6fZ`, an optional `-N`, then `_classification.json`.
fn is_snapshot_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix("_classification.json") else {
        return false;
    };
    let (stamp, suffix) = match stem.split_once('-') {
        Some((s, n)) => (s, Some(n)),
        None => (stem, None),
    };
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 23
        && digits(0..8)
        && b[8] == b'T'
        && digits(9..15)
        && b[15] == b'.'
        && digits(16..22)
        && b[22] == b'Z'
        && chrono::NaiveDateTime::parse_from_str(&stamp[..22], "%Y%m%dT%H%M%S%.6f").is_ok()
        && suffix.is_none_or(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

fn trends(dir: &Path) -> Vec<Value> {
    parse_json(&read(&dir.join(HISTORY).join("trends.json")))
        .as_array()
        .expect("trends.json is an array")
        .clone()
}

fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join(HISTORY))
        .expect("history dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_classification.json"))
        .collect();
    names.sort();
    names
}

#[test]
fn history_keeps_the_last_twenty_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "ok.aether", b"goal: \"fine\"\nprint(1)\n");
    write(d, "bad.aether", b"goal: \"bad\"\nfoo()\n");

    // No history yet.
    let res = run_in(d, &["trends"]);
    assert_eq!(res.code, 2);
    assert_eq!(
        res.stderr,
        "error: no history in `.aetherra/workflow_history` yet: run `aether classify` first\n"
    );
    // --no-history writes none.
    ok_in(d, &["classify", "--check-only", "--no-history"]);
    assert!(!d.join(".aetherra").exists());
    assert!(d.join("workflow_failures.json").is_file());

    let mut previous: Vec<Value> = Vec::new();
    for run in 1..=22 {
        ok_in(d, &["classify", "--check-only"]);
        let now = trends(d);
        // Exactly one entry more (the oldest dropped past 20).
        let kept = previous.len().min(19);
        assert_eq!(now.len(), kept + 1, "run {run}");
        assert_eq!(now[..kept], previous[previous.len() - kept..], "run {run}");
        let newest = &now[kept];
        assert_eq!(newest["failed"], 1);
        assert_eq!(newest["total"], 2);
        let snapshot = read(&d.join(HISTORY).join(newest["file"].as_str().expect("file")));
        assert_eq!(
            snapshot,
            read(&d.join("workflow_failures.json")),
            "run {run}"
        );
        assert_eq!(
            parse_json(&snapshot)["summary"]["timestamp"],
            newest["timestamp"]
        );
        previous = now;
    }
    let entries = trends(d);
    assert_eq!(entries.len(), 20);
    // Every snapshot stays on disk; trends.json lists the last 20, oldest first.
    let files = snapshot_files(d);
    assert_eq!(files.len(), 22);
    assert!(files.iter().all(|n| is_snapshot_name(n)), "{files:?}");
    let listed: Vec<&str> = entries
        .iter()
        .map(|e| e["file"].as_str().expect("file"))
        .collect();
    assert_eq!(listed, files[2..]);
    let stamps: Vec<&str> = entries
        .iter()
        .map(|e| e["timestamp"].as_str().expect("timestamp"))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");

    // `aether trends`: a header and one row per entry.
    let table = ok_in(d, &["trends"]).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 21, "{table}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["timestamp", "failed", "total", "rate", "change"]
    );
    for (i, (row, stamp)) in lines[1..].iter().zip(&stamps).enumerate() {
        let change = if i == 0 { "-" } else { "+0" };
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [stamp, "1", "2", "50.00%", change],
            "{row}"
        );
    }
    let json = ok_in(d, &["trends", "--json"]).stdout;
    assert_eq!(parse_json(&json), Value::Array(entries.clone()));

    // The chart: two series, a point per entry in each.
    ok_in(d, &["trends", "--chart", "charts/trend.svg"]);
    let svg = read(&d.join("charts/trend.svg"));
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert_eq!(svg.matches("<circle").count(), 40);
    assert!(svg.contains("1 failed of 2 (50.0%)"));

    // classify --chart draws the history including the new run (still 20 kept).
    ok_in(d, &["classify", "--check-only", "--chart", "c.svg"]);
    let svg = read(&d.join("c.svg"));
    assert_eq!(svg.matches("<circle").count(), 40);
    assert_eq!(snapshot_files(d).len(), 23);
    assert_eq!(trends(d).len(), 20);
    // --no-history (and so no chart) leaves the history alone.
    ok_in(d, &["classify", "--check-only", "--no-history"]);
    assert_eq!(snapshot_files(d).len(), 23);
    let res = run_in(d, &["classify", "--no-history", "--chart", "x.svg"]);
    assert_eq!(res.code, 2, "--chart needs the history");
}

#[test]
fn trends_of_an_empty_or_explicit_history_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "ok.aether", b"goal: \"fine\"\nprint(1)\n");
    ok_in(d, &["classify", "--check-only", "--history-dir", "hist"]);
    assert_eq!(fs::read_dir(d.join("hist")).expect("hist").count(), 2);
    let table = ok_in(d, &["trends", "--history-dir", "hist"]).stdout;
    assert_eq!(table.lines().count(), 2);
    assert!(table
        .lines()
        .nth(1)
        .expect("a row")
        .ends_with("0.00%       -"));
    let res = run_in(d, &["trends", "--history-dir", "nope", "--chart", "x.svg"]);
    assert_eq!(res.code, 2);
    assert!(!d.join("x.svg").exists());
}

// ---------------------------------------------------------------------------------------------
// outputs

fn tiny_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "ok.aether", b"goal: \"fine\"\nprint(1)\n");
    write(dir.path(), "bad.aether", b"goal: \"bad\"\nfoo()\n");
    dir
}

#[test]
fn json_report_to_stdout() {
    let dir = tiny_tree();
    let d = dir.path();
    for output in ["/dev/stdout", "-"] {
        let res = ok_in(
            d,
            &[
                "classify",
                "--check-only",
                "--no-history",
                "--output",
                output,
                "--markdown",
                "report.md",
            ],
        );
        let doc = parse_json(&res.stdout);
        assert_eq!(doc["summary"]["total"], 2, "{output}");
        assert_eq!(paths(&doc), ["bad.aether", "ok.aether"]);
        assert!(!d.join(output.trim_start_matches('/')).exists());
        assert!(!d.join("workflow_failures.json").exists());
    }
    // Markdown to stdout as well.
    let res = ok_in(
        d,
        &[
            "classify",
            "--check-only",
            "--no-history",
            "--output",
            "/dev/null",
            "--markdown",
            "-",
        ],
    );
    assert!(res
        .stdout
        .starts_with("# Workflow failure classification\n"));
    assert_eq!(markdown_rows(&res.stdout).len(), 2);
}

/// Regression: `/dev/stdout` redirected to a regular file was treated as that file and
/// replaced, so `--output /dev/stdout >> ci.log` lost the log's earlier content.
#[test]
fn dev_stdout_redirected_to_a_file_appends_to_it() {
    let dir = tiny_tree();
    let d = dir.path();
    let log = d.join("ci.log");
    fs::write(&log, "earlier line\n").expect("write log");
    let append = fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open log");
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("aether"))
        .current_dir(d)
        .args([
            "classify",
            "--check-only",
            "--no-history",
            "--output",
            "/dev/stdout",
            "--markdown",
            "/dev/null",
        ])
        .stdout(Stdio::from(append))
        .stderr(Stdio::null())
        .status()
        .expect("aether starts");
    assert_eq!(status.code(), Some(0));
    let text = read(&log);
    let json = text
        .strip_prefix("earlier line\n")
        .unwrap_or_else(|| panic!("the log lost its earlier content:\n{text}"));
    assert_eq!(parse_json(json)["summary"]["total"], 2);
}

#[test]
fn report_directories_are_created_and_unwritable_paths_exit_26() {
    let dir = tiny_tree();
    let d = dir.path();
    ok_in(
        d,
        &[
            "classify",
            "--check-only",
            "--no-history",
            "--output",
            "reports/json/deep/out.json",
            "--markdown",
            "reports/md/out.md",
        ],
    );
    let doc = parse_json(&read(&d.join("reports/json/deep/out.json")));
    assert_eq!(doc["summary"]["total"], 2);
    let md = read(&d.join("reports/md/out.md"));
    assert_eq!(markdown_rows(&md), categories(&doc));
    // Report files are readable by everyone, not left private like a temp file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(d.join("reports/json/deep/out.json"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }
    // No temporary file is left beside the report.
    let leftovers: Vec<_> = fs::read_dir(d.join("reports/json/deep"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["out.json"]);

    // A path below a regular file cannot be written (whoever runs the tests, root included).
    for (flag, path) in [
        ("--output", "ok.aether/out.json"),
        ("--markdown", "ok.aether/out.md"),
        ("--history-dir", "ok.aether/history"),
    ] {
        let res = run_in(d, &["classify", "--check-only", flag, path]);
        assert_eq!(res.code, 26, "{flag} {path}\n{}", res.stderr);
        assert!(res.stderr.contains("error: "), "{}", res.stderr);
        assert!(res.stderr.contains(path), "{}", res.stderr);
    }
    let res = run_in(
        d,
        &[
            "classify",
            "--check-only",
            "--no-history",
            "--output",
            "ok.aether/x.json",
        ],
    );
    assert!(
        res.stderr
            .starts_with("error: cannot write `ok.aether/x.json`: "),
        "{}",
        res.stderr
    );
    // A failed report write leaves no history behind.
    assert!(!d.join(HISTORY).exists());
}

#[test]
fn usage_errors_exit_2() {
    let dir = tiny_tree();
    let d = dir.path();
    let res = run_in(d, &["classify", "no/such/dir"]);
    assert_eq!(res.code, 2);
    assert_eq!(res.stderr, "error: `no/such/dir` does not exist\n");
    let res = run_in(d, &["classify", "--suppressions", "missing.txt"]);
    assert_eq!(res.code, 2);
    assert!(
        res.stderr
            .starts_with("error: cannot read suppression file `missing.txt`: "),
        "{}",
        res.stderr
    );
    for args in [
        &["classify", "--jobs", "0"][..],
        &["classify", "--timeout", "soon"][..],
        &["baseline", "no/such/dir"][..],
        &["baseline", "--suppressions", "missing.txt"][..],
    ] {
        assert_eq!(run_in(d, args).code, 2, "{args:?}");
    }
    assert!(!d.join("workflow_failures.json").exists());
    assert!(!d.join(".aetherra").exists());
}

// ---------------------------------------------------------------------------------------------
// --limit and --jobs

#[test]
fn limit_classifies_the_first_paths_only() {
    let dir = triage_tree();
    let (doc, _) = classify_json(dir.path(), &["--check-only", "--limit", "2"]);
    assert_eq!(paths(&doc), PATHS[..2]);
    assert_eq!(doc["summary"]["total"], 2);
    assert_eq!(doc["summary"]["failed"], 1);
    assert_eq!(doc["summary"]["failure_rate"], 0.5);
    // The suppressions of files beyond the limit matched nothing.
    assert_eq!(
        doc["summary"]["stale_suppressions"]
            .as_array()
            .expect("array")
            .len(),
        3
    );
    let (doc, _) = classify_json(dir.path(), &["--check-only", "--limit", "0"]);
    assert_eq!(doc["summary"]["total"], 0);
    assert_eq!(doc["summary"]["failure_rate"], 0.0);
}

#[test]
fn jobs_do_not_change_the_report() {
    let dir = triage_tree();
    let run = |jobs: &str| {
        let (doc, _) = classify_json(dir.path(), &["--timeout", "1s", "--jobs", jobs]);
        redacted(&doc)
    };
    let one = run("1");
    let four = run("4");
    assert_eq!(one["summary"]["total"], 9);
    assert_eq!(pretty(&one), pretty(&four));
}

/// Leaves state of every kind behind: memory records, the run log, an escalation, a service,
/// a task that dead-letters, metrics, an actuation (a cooldown), a trace level, an event,
/// and a step and time budget of its own.
const ISOLATION_WRITER: &str = r#"goal: "leave every kind of state behind"
metadata:
    requires: ["memory", "kernel", "homeostasis"]
policy:
    max_steps: 400
    timeout: 1s

action boom(n):
    assert false, "boom " + str(n)

memory.store("leaked secret", tags=["leak"])
store("another leaked record", tag="leak")
log("the writer was here")
escalate_to("oncall", "paged by the writer")
kernel.register("leaky_service")
kernel.submit("boom", data={n: 1})
metrics({queue_depth: 100000})
homeostasis.record("task_latency_ms", 999999)
let r = homeostasis.actuate("restart", "db")
assert r.ok, "the writer's first actuation is allowed: " + r.reason
trace("error")
emit "leaked_event" {from: "writer"}
"#;

/// Fails when it sees anything of another file's run (or its budgets).
const ISOLATION_PROBE: &str = r#"goal: "see no state of another file"
metadata:
    requires: ["memory", "kernel", "homeostasis"]

assert memory.count() == 0, "memory leaked: " + str(memory.count()) + " records"
assert len(memory.recall("leaked secret")) == 0, "recall found another file's record"
assert len(load_logs()) == 0, "the run log leaked"
assert len(kernel.dlq()) == 0, "dead letters leaked: " + str(kernel.dlq())
assert len(kernel.services()) == 0, "services leaked: " + str(kernel.services())
assert homeostasis.check_slo("queue_depth"), "metrics leaked"
assert homeostasis.health() == 1.0, "health sees another file's metrics: " + str(homeostasis.health())
let r = homeostasis.actuate("restart", "db")
assert r.ok, "a cooldown leaked: " + r.reason
log("the probe's own line")
assert len(load_logs()) == 1, "the trace level leaked: " + str(len(load_logs())) + " log lines"
let total = 0
for i in range(200):
    total = total + i
sleep 1200ms
let id = memory.store("first of this run")
assert id == 2, "ids do not start afresh: " + str(id)
"#;

/// Times out inside an open `transaction:` block, after a write outside it.
const ISOLATION_STUCK: &str = r#"goal: "time out inside an open transaction"
metadata:
    requires: ["memory"]
policy:
    timeout: 300ms

memory.store("written before the transaction")
transaction:
    memory.store("written inside the unfinished transaction")
    let spins = 0
    while true:
        spins = spins + 1
"#;

/// Every file `classify` runs gets its own state: nothing one run stores, records, queues,
/// registers or sets (memory, run log, kernel, homeostasis, trace level, budgets) is seen
/// by the next run on the same worker thread, even after a run that timed out inside an
/// open transaction.
#[test]
fn runs_do_not_see_each_others_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a_writer.aether", ISOLATION_WRITER.as_bytes());
    write(dir.path(), "b_probe.aether", ISOLATION_PROBE.as_bytes());
    write(dir.path(), "c_stuck.aether", ISOLATION_STUCK.as_bytes());
    // The second probe without the budget part (its sleep only tests the first file's budget).
    let quick: String = ISOLATION_PROBE
        .lines()
        .take_while(|l| !l.starts_with("let total"))
        .map(|l| format!("{l}\n"))
        .collect();
    let quick = quick + "let id = memory.store(\"first of this run\")\nassert id == 2, \"ids do not start afresh: \" + str(id)\n";
    write(dir.path(), "d_probe.aether", quick.as_bytes());
    for jobs in ["1", "2"] {
        let (doc, _) = classify_json(dir.path(), &["--jobs", jobs]);
        let got: Vec<(String, String, Value)> = doc["workflows"]
            .as_array()
            .expect("workflows")
            .iter()
            .map(|r| {
                (
                    r["path"].as_str().expect("path").to_string(),
                    r["category"].as_str().expect("category").to_string(),
                    r["error"].clone(),
                )
            })
            .collect();
        let ok = |p: &str| (p.to_string(), "SUCCESS".to_string(), Value::Null);
        assert_eq!(
            got,
            vec![
                ok("a_writer.aether"),
                ok("b_probe.aether"),
                (
                    "c_stuck.aether".to_string(),
                    "TIMEOUT_ERROR".to_string(),
                    Value::from(
                        "the run's time budget of 300ms ran out (policy timeout or --timeout)"
                    ),
                ),
                ok("d_probe.aether"),
            ],
            "--jobs {jobs}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// baseline

#[test]
fn baseline_of_the_fixture_tree() {
    let dir = triage_tree();
    let d = dir.path();
    let res = ok_in(d, &["baseline"]);
    assert_eq!(
        res.stderr,
        "baseline of 9 files: 3 failed (33.33%), written to parse_baseline.json\n"
    );
    let doc = parse_json(&read(&d.join("parse_baseline.json")));
    let keys: Vec<&str> = doc
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "timestamp",
            "total",
            "by_code",
            "failure_rate",
            "suppressed",
            "files"
        ]
    );
    chrono::DateTime::parse_from_rfc3339(doc["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339");
    assert_eq!(doc["total"], 9);
    // Nothing runs: runtime failures and timeouts pass; a suppressed failure is SUCCESS.
    // by_code is in code order, so its key order is asserted too.
    assert_eq!(
        pretty(&doc["by_code"]),
        pretty(&serde_json::json!({
            "SUCCESS": 6,
            "PARSE_ERROR": 1,
            "VALIDATION_ERROR": 1,
            "IO_ERROR": 1,
        }))
    );
    assert_eq!(doc["failure_rate"], 0.3333);
    assert_eq!(doc["suppressed"], 1);
    let file = |path: &str, code: i64, name: &str, line: Option<u32>, message: &str| {
        serde_json::json!({
            "path": path,
            "ok": code == 0,
            "code": code,
            "code_name": name,
            "line": line,
            "message": message,
        })
    };
    let expected = serde_json::json!([
        file("clean.aether", 0, "SUCCESS", None, ""),
        file("not_utf8.aether", 26, "IO_ERROR", Some(2), UTF8_MSG),
        file("parse_error.aether", 20, "PARSE_ERROR", Some(3), PARSE_MSG),
        file("runtime_error.aether", 0, "SUCCESS", None, ""),
        file("sub/nested_clean.aether", 0, "SUCCESS", None, ""),
        file(
            "suppressed_legacy.aether",
            0,
            "SUCCESS",
            Some(3),
            "suppressed VALIDATION_ERROR: unknown function `bar`"
        ),
        file("suppressed_stable.aether", 0, "SUCCESS", None, ""),
        file("timeout.aether", 0, "SUCCESS", None, ""),
        file(
            "validation_error.aether",
            25,
            "VALIDATION_ERROR",
            Some(3),
            FOO_MSG
        ),
    ]);
    assert_eq!(doc["files"], expected);

    // Without the suppression file the suppressed failure counts as the failure it is.
    let res = ok_in(
        d,
        &["baseline", "--suppressions", "/dev/null", "--output", "-"],
    );
    let doc = parse_json(&res.stdout);
    assert_eq!(
        pretty(&doc["by_code"]),
        pretty(&serde_json::json!({
            "SUCCESS": 5,
            "PARSE_ERROR": 1,
            "VALIDATION_ERROR": 2,
            "IO_ERROR": 1,
        }))
    );
    assert_eq!(doc["failure_rate"], 0.4444);
    assert_eq!(doc["suppressed"], 0);
    assert_eq!(
        res.stderr, "baseline of 9 files: 4 failed (44.44%)\n",
        "no `written to` for stdout"
    );
}

// ---------------------------------------------------------------------------
// Regressions found by review
// ---------------------------------------------------------------------------

#[test]
fn a_bad_runtime_setting_is_a_usage_error_not_a_failure_of_every_file() {
    let dir = tiny_tree();
    let res = aether(dir.path())
        .args(["classify", "--output", "-", "--markdown", "/dev/null"])
        .env("AETHERRA_KERNEL_QSIZE_HIGH", "abc")
        .output()
        .expect("aether starts");
    assert_eq!(res.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stderr.contains("AETHERRA_KERNEL_QSIZE_HIGH"), "{stderr}");
    assert!(res.stdout.is_empty());
    // Nothing was recorded in the history either.
    assert!(!dir.path().join(HISTORY).exists());
    // Check only runs nothing, so the runtime's settings do not matter.
    let res = aether(dir.path())
        .args([
            "classify",
            "--check-only",
            "--output",
            "-",
            "--markdown",
            "/dev/null",
        ])
        .env("AETHERRA_KERNEL_QSIZE_HIGH", "abc")
        .output()
        .expect("aether starts");
    assert_eq!(res.status.code(), Some(0));
}

#[test]
fn a_suppressed_record_describes_the_suppressed_error_not_a_suppressed_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Line 1: a warning (legacy `intent:`); line 2: an error. Both suppressed.
    write(dir.path(), "f/a.aether", b"intent: \"x\"\nfoo(1)\n");
    let findings = check_findings(dir.path(), "f/a.aether", &[]);
    let fps: Vec<String> = findings.iter().map(|f| f.2.clone()).collect();
    assert_eq!(fps.len(), 2, "{findings:?}");
    write(
        dir.path(),
        DEFAULT_SUPPRESSIONS,
        format!("{}\n{}\n", fps[0], fps[1]).as_bytes(),
    );
    let (doc, _) = classify_json(dir.path(), &["f"]);
    let r = record(&doc, "f/a.aether");
    assert_eq!(r["category"], "Suppressed-VALIDATION_ERROR");
    assert_eq!(r["error"], FOO_MSG);
    assert_eq!(r["line"], 2);
    assert_eq!(
        r["fingerprint"],
        legacy_fp("VALIDATION_ERROR", Some(2), FOO_MSG).as_str()
    );
}

#[test]
fn malformed_trend_entries_are_kept_aside_not_dropped() {
    let dir = tiny_tree();
    let history = dir.path().join(HISTORY);
    let original =
        r#"[{"file": "a.json", "timestamp": "2026-01-01T00:00:00Z", "failed": 3.5, "total": 4}]"#;
    write(&history, "trends.json", original.as_bytes());
    let res = ok_in(
        dir.path(),
        &[
            "classify",
            "--check-only",
            "--output",
            "/dev/null",
            "--markdown",
            "/dev/null",
        ],
    );
    assert!(res.stderr.contains("entry 1 is not"), "{}", res.stderr);
    let aside: Vec<PathBuf> = fs::read_dir(&history)
        .expect("history")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("trends.json.unreadable-"))
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(read(&aside[0]), original);
    assert_eq!(trends(dir.path()).len(), 1);
}

#[test]
fn a_lock_left_by_a_killed_run_is_taken_over() {
    let dir = tiny_tree();
    let lock = write(&dir.path().join(HISTORY), "trends.json.lock", b"");
    // Age it past the stale limit (10 s) the way a killed run would leave it.
    let status = std::process::Command::new("touch")
        .args(["-d", "-1 minute"])
        .arg(&lock)
        .status()
        .expect("touch runs");
    assert!(status.success());
    let started = std::time::Instant::now();
    ok_in(
        dir.path(),
        &[
            "classify",
            "--check-only",
            "--output",
            "/dev/null",
            "--markdown",
            "/dev/null",
        ],
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(trends(dir.path()).len(), 1);
    assert!(!lock.exists());
}

#[test]
fn stable_fingerprints_ignore_how_the_path_is_spelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "flows/x.aether", b"goal: \"x\"\nfoo(1)\n");
    fs::create_dir_all(dir.path().join("other")).expect("mkdir");
    let expected = stable_fp("A101", "flows/x.aether", "foo", 0);
    let absolute = dir.path().join("flows/x.aether");
    for spelled in [
        "flows/x.aether",
        "./flows//x.aether",
        "other/../flows/x.aether",
        absolute.to_str().expect("UTF-8 path"),
    ] {
        let findings = check_findings(dir.path(), spelled, &[]);
        assert_eq!(findings[0].1, 2, "{spelled}");
        let res = run_in(dir.path(), &["check", "--format", "json", spelled]);
        let doc = parse_json(&res.stdout);
        assert_eq!(
            doc[0]["diagnostics"][0]["stable_fingerprint"],
            expected.as_str(),
            "{spelled}"
        );
    }
}

#[test]
fn a_root_with_doubled_separators_shows_relative_paths() {
    let dir = tiny_tree();
    let (doc, _) = classify_json(dir.path(), &[".//", "--check-only"]);
    for p in paths(&doc) {
        assert!(!p.starts_with('/') && !p.starts_with('.'), "{p}");
    }
}

#[test]
fn a_newline_in_a_file_name_does_not_break_the_markdown_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "t/a\nb.aether", b"goal: \"x\"\nfoo(1)\n");
    ok_in(
        dir.path(),
        &[
            "classify",
            "t",
            "--check-only",
            "--no-history",
            "--output",
            "/dev/null",
            "--markdown",
            "r.md",
        ],
    );
    let md = read(&dir.path().join("r.md"));
    let row = md
        .lines()
        .find(|l| l.starts_with("| VALIDATION_ERROR"))
        .expect("a row for the failure");
    assert!(row.ends_with("`t/a b.aether` |"), "{md}");
}
