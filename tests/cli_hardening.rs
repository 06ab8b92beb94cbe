//! End-to-end tests of `aether` against hostile input and careless setups (issue 12): closed and full streams, FIFOs, pathological diagnostics, fail-closed switches, exit codes, `-` paths.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment switches a test machine might set, removed from every run.
const SWITCHES: [&str; 9] = [
    "AETHERRA_PROFILE",
    "AETHERRA_SIGNING_STRICT",
    "AETHERRA_SCRIPT_VERIFY_STRICT",
    "AETHERRA_PROD_UNSAFE_ALLOW",
    "AETHERRA_REQUIRE_CAPABILITIES",
    "AETHERRA_NET_STRICT",
    "AETHERRA_QUIET",
    "AETHER_SIGNING_KEY",
    "AETHER_PLUGIN_PATH",
];

const CLEAN: &str = "goal: \"clean\"\nprint(\"hello\")\n";
const UNCLOSED: &str = "goal: \"broken\"\nfoo(\n";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn aether(dir: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("aether"));
    cmd.current_dir(dir).env("NO_COLOR", "1");
    for var in SWITCHES {
        cmd.env_remove(var);
    }
    cmd
}

/// Wait for `child` at most `limit` (draining its output meanwhile); a child still running
/// then is killed and the test fails.
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break status,
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`aether {what}` still ran after {limit:?}: it hung");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = aether(dir);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = wait_bounded(
        cmd.spawn().expect("aether starts"),
        Duration::from_secs(60),
        &args.join(" "),
    );
    Run {
        code: out.status.code().expect("aether exits by itself"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    run_env(dir, args, &[])
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn write(dir: &Path, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
    fs::write(&path, bytes).expect("write");
    path
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

fn full() -> Stdio {
    Stdio::from(
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full exists on Linux"),
    )
}

// ----- 1. closed and full output streams -----------------------------------------------------

/// Run with stdout a pipe whose reader is gone before `aether` writes (`| true`).
fn with_closed_stdout(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut child = aether(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aether starts");
    drop(child.stdout.take());
    let out = wait_bounded(child, Duration::from_secs(60), &args.join(" "));
    (
        out.status
            .code()
            .expect("aether exits by itself, not by a signal"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_every_command_quietly_with_its_own_code() {
    let dir = tempdir();
    write(dir.path(), "ok.aether", CLEAN);
    write(dir.path(), "bad.aether", UNCLOSED);
    // A baseline for `gate`, a history for `trends`.
    let res = run_in(dir.path(), &["baseline", ".", "--output", "b.json"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    let res = run_in(
        dir.path(),
        &[
            "classify",
            ".",
            "--check-only",
            "--output",
            "o.json",
            "--markdown",
            "m.md",
        ],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    for (args, code) in [
        (vec!["status", "--json"], 0),
        (vec!["status"], 0),
        (vec!["status", "--prometheus"], 0),
        (vec!["check", "ok.aether", "--format", "json"], 0),
        (vec!["check", "bad.aether", "--format", "sarif"], 20),
        (vec!["check", "bad.aether", "--json-status"], 20),
        (vec!["run", "ok.aether", "--json-status"], 0),
        (vec!["verify", "ok.aether"], 0),
        (vec!["migrate", "ok.aether", "--dry-run"], 0),
        (vec!["baseline", ".", "--output", "-"], 0),
        (vec!["trends"], 0),
        (vec!["trends", "--json"], 0),
        (
            vec![
                "classify",
                ".",
                "--check-only",
                "--no-history",
                "--output",
                "-",
                "--markdown",
                "m.md",
            ],
            0,
        ),
        (vec!["gate", "--new", "b.json", "--ref", "b.json"], 0),
        (vec!["keygen", "--out", "keys", "--name", "k"], 0),
        (vec!["sign", "ok.aether", "--key", "keys/k.key"], 0),
    ] {
        let (got, stderr) = with_closed_stdout(dir.path(), &args);
        assert_eq!(got, code, "aether {}: {stderr}", args.join(" "));
        assert!(
            !stderr.contains("panicked"),
            "aether {}: {stderr}",
            args.join(" ")
        );
    }
}

#[test]
fn run_piped_into_head_keeps_the_scripts_result() {
    let dir = tempdir();
    write(
        dir.path(),
        "many.aether",
        "goal: \"many lines\"\nfor i in range(0, 20000):\n    print(i)\n",
    );
    let mut child = aether(dir.path())
        .args(["run", "many.aether", "--emit-error-code"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aether starts");
    // `| head -2`: read two lines, then go away.
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    for expected in ["0\n", "1\n"] {
        line.clear();
        reader.read_line(&mut line).expect("a line");
        assert_eq!(line, expected);
    }
    drop(reader);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let out = wait_bounded(child, Duration::from_secs(60), "run many.aether");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("RUNTIME_ERROR"), "{stderr}");
    assert!(stderr.ends_with("AETHER_ERROR_CODE:0\n"), "{stderr}");
}

#[test]
fn a_full_stderr_keeps_the_files_result_code() {
    let dir = tempdir();
    write(dir.path(), "bad.aether", UNCLOSED);
    write(dir.path(), "ok.aether", CLEAN);
    for (args, code) in [
        (vec!["check", "bad.aether"], 20),
        (vec!["check", "ok.aether"], 0),
        (vec!["run", "bad.aether"], 20),
        (vec!["run", "ok.aether"], 0),
        (vec!["verify", "ok.aether"], 0),
        (vec!["check", "nope.aether"], 26),
    ] {
        let out = aether(dir.path())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(full())
            .output()
            .expect("aether starts");
        assert_eq!(out.status.code(), Some(code), "aether {}", args.join(" "));
    }
}

#[test]
fn a_full_stdout_is_an_io_error_not_a_silent_success() {
    let dir = tempdir();
    write(dir.path(), "ok.aether", CLEAN);
    write(dir.path(), "bad.aether", UNCLOSED);
    for (args, code) in [
        (vec!["check", "ok.aether", "--format", "json"], 26),
        // A failing file keeps its own code.
        (vec!["check", "bad.aether", "--format", "json"], 20),
        (vec!["status", "--json"], 26),
    ] {
        let out = aether(dir.path())
            .args(&args)
            .stdout(full())
            .stderr(Stdio::piped())
            .output()
            .expect("aether starts");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "aether {}: {stderr}",
            args.join(" ")
        );
        assert!(
            stderr.contains("error: cannot write to stdout: no space left on device"),
            "{stderr}"
        );
    }
}

// ----- 2. FIFOs and other non-regular files ------------------------------------------------------

#[test]
fn a_fifo_in_a_tree_or_named_is_reported_and_skipped_by_every_command() {
    let dir = tempdir();
    write(dir.path(), "a_ok.aether", CLEAN);
    mkfifo(&dir.path().join("x.aether"));
    let key_dir = dir.path().join("keys");
    let res = run_in(
        dir.path(),
        &[
            "keygen",
            "--out",
            key_dir.to_str().expect("utf-8"),
            "--name",
            "k",
        ],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    let key = key_dir.join("k.key");
    let key = key.to_str().expect("utf-8");
    for (args, code) in [
        (vec!["check", "."], 26),
        (vec!["check", "x.aether"], 26),
        (vec!["run", "x.aether"], 26),
        (vec!["verify", "."], 26),
        (vec!["sign", "x.aether", "--key", key], 1),
        (vec!["migrate", ".", "--dry-run", "--no-report"], 26),
    ] {
        let res = run_in(dir.path(), &args);
        assert_eq!(res.code, code, "aether {}: {}", args.join(" "), res.stderr);
        assert!(
            res.stderr.contains("not a regular file (a fifo)")
                || res.stderr.contains("not a regular file (a FIFO)"),
            "aether {}: {}",
            args.join(" "),
            res.stderr
        );
    }
    // Triage records the FIFO as that file's IO_ERROR and goes on.
    let res = run_in(dir.path(), &["baseline", ".", "--output", "-"]);
    assert!(
        res.stdout.contains("IO_ERROR"),
        "{}{}",
        res.stdout,
        res.stderr
    );
    let res = run_in(
        dir.path(),
        &[
            "classify",
            ".",
            "--check-only",
            "--no-history",
            "--output",
            "-",
            "--markdown",
            "m.md",
        ],
    );
    assert!(
        res.stdout.contains("IO_ERROR"),
        "{}{}",
        res.stdout,
        res.stderr
    );
    assert!(res.stdout.contains("x.aether"), "{}", res.stdout);
}

#[test]
fn a_device_is_not_read() {
    let dir = tempdir();
    let res = run_in(dir.path(), &["check", "/dev/zero"]);
    assert_eq!(res.code, 26, "{}", res.stderr);
    assert!(
        res.stderr
            .contains("not a regular file (a character device)"),
        "{}",
        res.stderr
    );
}

// ----- 3. bounded, inert human diagnostics -------------------------------------------------------

#[test]
fn repeated_errors_are_capped_per_file_with_a_count_of_the_rest() {
    let dir = tempdir();
    let mut src = String::from("goal: \"deep\"\n");
    for i in 0..2000 {
        src.push_str(&"    ".repeat(i));
        src.push_str("if true:\n");
    }
    write(dir.path(), "deep.aether", &src);
    let started = Instant::now();
    let res = run_in(dir.path(), &["check", "deep.aether"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        res.code,
        20,
        "{}",
        &res.stderr[res.stderr.len().saturating_sub(500)..]
    );
    let shown = res.stderr.matches("nesting-too-deep").count();
    assert_eq!(shown, 50, "the default --max-errors");
    let total: usize = res
        .stderr
        .lines()
        .last()
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|l| l.trim_start_matches("1 failed (").split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the summary counts the errors");
    assert!(total > 1000, "{total}");
    assert!(
        res.stderr.contains(&format!(
            "... and {} more diagnostics in deep.aether (`--max-errors 0` shows all; `--format json` lists all)\n",
            total - 50
        )),
        "{}",
        &res.stderr[res.stderr.len() - 400..]
    );
    assert!(
        res.stderr.len() < 100_000,
        "{} bytes of stderr",
        res.stderr.len()
    );
    let res = run_in(dir.path(), &["check", "deep.aether", "--max-errors", "3"]);
    assert_eq!(res.stderr.matches("nesting-too-deep").count(), 3);
    let res = run_in(dir.path(), &["check", "deep.aether", "--max-errors", "0"]);
    assert_eq!(res.stderr.matches("nesting-too-deep").count(), total);
    // Machine formats keep every diagnostic.
    let res = run_in(dir.path(), &["check", "deep.aether", "--format", "json"]);
    assert_eq!(res.stdout.matches("\"A022\"").count(), total);
}

#[test]
fn long_lines_are_cut_around_the_error() {
    let dir = tempdir();
    write(
        dir.path(),
        "brackets.aether",
        format!("goal: \"b\"\nx = {}\n", "(".repeat(10_000)),
    );
    let res = run_in(dir.path(), &["check", "brackets.aether"]);
    assert_ne!(res.code, 0);
    let longest = res
        .stderr
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    assert!(longest < 200, "a line of {longest} characters");
    assert!(
        res.stderr.contains('…'),
        "{}",
        &res.stderr[..600.min(res.stderr.len())]
    );
    assert!(res.stderr.len() < 60_000, "{} bytes", res.stderr.len());
}

#[test]
fn control_bytes_never_reach_the_terminal() {
    let dir = tempdir();
    write(
        dir.path(),
        "bin.aether",
        b"goal: \"b\"\n\x1b[31mred\x07\x00 \xff\xfe junk\n\x1b]0;title\x07\n".as_slice(),
    );
    write(
        dir.path(),
        "ctl.aether",
        "goal: \"c\"\nx = \u{1b}[2J 1\u{202e}\n",
    );
    for file in ["bin.aether", "ctl.aether"] {
        let out = aether(dir.path())
            .args(["check", file])
            .output()
            .expect("aether starts");
        assert_ne!(out.status.code(), Some(0));
        let bad: Vec<u8> = out
            .stderr
            .iter()
            .copied()
            .filter(|&b| b < 0x20 && b != b'\n')
            .collect();
        assert!(
            bad.is_empty(),
            "{file}: raw control bytes {bad:?} in\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains('␛'), "{file}");
    }
}

// ----- 4. security switches fail closed ---------------------------------------------------------

#[test]
fn strict_signing_switches_understand_every_case_and_refuse_the_rest() {
    let dir = tempdir();
    write(dir.path(), "ok.aether", CLEAN);
    for var in ["AETHERRA_SIGNING_STRICT", "AETHERRA_SCRIPT_VERIFY_STRICT"] {
        for on in ["TRUE", "True", "Yes", "ON", "1", " on "] {
            for cmd in ["check", "run"] {
                let res = run_env(dir.path(), &[cmd, "ok.aether"], &[(var, on)]);
                assert_eq!(res.code, 22, "{var}={on} {cmd}: {}", res.stderr);
            }
        }
        for off in ["0", "False", "NO", "off", ""] {
            let res = run_env(dir.path(), &["check", "ok.aether"], &[(var, off)]);
            assert_eq!(res.code, 0, "{var}={off}: {}", res.stderr);
        }
        for odd in ["2", "enabled", "y"] {
            for cmd in ["check", "run", "verify", "classify"] {
                let res = run_env(dir.path(), &[cmd, "ok.aether"], &[(var, odd)]);
                assert_eq!(res.code, 2, "{var}={odd} {cmd}: {}", res.stderr);
                assert!(
                    res.stderr.contains(&format!("{var} is `{odd}`")),
                    "{var}={odd} {cmd}: {}",
                    res.stderr
                );
            }
        }
    }
    for (var, value) in [
        ("AETHERRA_PROD_UNSAFE_ALLOW", "maybe"),
        ("AETHERRA_REQUIRE_CAPABILITIES", "always"),
        ("AETHERRA_NET_STRICT", "2"),
    ] {
        let res = run_env(dir.path(), &["run", "ok.aether"], &[(var, value)]);
        assert_eq!(res.code, 2, "{var}: {}", res.stderr);
        assert!(res.stderr.contains(var), "{}", res.stderr);
    }
}

#[test]
fn a_profile_is_read_the_same_way_by_check_and_run() {
    let dir = tempdir();
    write(dir.path(), "ok.aether", CLEAN);
    for cmd in ["check", "run", "verify"] {
        let res = run_env(
            dir.path(),
            &[cmd, "ok.aether"],
            &[("AETHERRA_PROFILE", "production")],
        );
        assert_eq!(res.code, 2, "{cmd}: {}", res.stderr);
        assert!(
            res.stderr
                .contains("AETHERRA_PROFILE is `production`: use dev, test or prod"),
            "{cmd}: {}",
            res.stderr
        );
        // Any case of prod is prod: the unsigned file is refused.
        let res = run_env(
            dir.path(),
            &[cmd, "ok.aether"],
            &[("AETHERRA_PROFILE", "PROD")],
        );
        assert_eq!(res.code, 22, "{cmd}: {}", res.stderr);
    }
}

// ----- 6. exit codes that say what happened ------------------------------------------------------

#[test]
fn verify_of_a_missing_path_fails() {
    let dir = tempdir();
    let res = run_in(dir.path(), &["verify", "nope"]);
    assert_eq!(res.code, 26, "{}", res.stderr);
    assert_eq!(res.stdout, "FAIL nope (unreadable)\n");
    assert!(
        res.stderr.contains("error: cannot read `nope`"),
        "{}",
        res.stderr
    );
}

#[test]
fn sign_refuses_a_file_that_does_not_parse() {
    let dir = tempdir();
    let res = run_in(dir.path(), &["keygen", "--out", "keys", "--name", "k"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    let bad = write(dir.path(), "bad.aether", UNCLOSED);
    let ok = write(dir.path(), "ok.aether", CLEAN);
    let res = run_in(
        dir.path(),
        &["sign", "bad.aether", "ok.aether", "--key", "keys/k.key"],
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
    assert!(
        res.stderr
            .contains("FAIL bad.aether: does not parse (line 2: `(` was never closed)"),
        "{}",
        res.stderr
    );
    assert_eq!(
        fs::read_to_string(&bad).expect("read"),
        UNCLOSED,
        "left unchanged"
    );
    assert_eq!(res.stdout, "OK signed: ok.aether\n");
    assert!(fs::read_to_string(&ok)
        .expect("read")
        .starts_with("# @signature ed25519 "));
    // The explicit flag signs it anyway.
    let res = run_in(
        dir.path(),
        &[
            "sign",
            "bad.aether",
            "--key",
            "keys/k.key",
            "--allow-parse-errors",
        ],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert!(fs::read_to_string(&bad)
        .expect("read")
        .starts_with("# @signature ed25519 "));
}

// ----- 7. `-` is stdout; a repeated --arg is refused ---------------------------------------------

#[test]
fn events_dash_go_to_stdout() {
    let dir = tempdir();
    write(dir.path(), "ok.aether", CLEAN);
    let res = run_in(dir.path(), &["run", "ok.aether", "--events", "-"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert!(!dir.path().join("-").exists(), "no file named `-`");
    let lines: Vec<&str> = res.stdout.lines().collect();
    assert!(lines.contains(&"hello"), "{}", res.stdout);
    let events: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        events.first().map(|e| e["status"].clone()),
        Some("started".into())
    );
    assert_eq!(
        events.last().map(|e| e["status"].clone()),
        Some("succeeded".into())
    );
}

#[test]
fn verify_output_dash_goes_to_stdout() {
    let dir = tempdir();
    write(dir.path(), "ok.aether", CLEAN);
    let res = run_in(dir.path(), &["verify", "ok.aether", "--output", "-"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert!(!dir.path().join("-").exists(), "no file named `-`");
    assert!(
        res.stdout.contains("# Aether script verification report"),
        "{}",
        res.stdout
    );
}

#[test]
fn a_repeated_arg_is_a_usage_error() {
    let dir = tempdir();
    write(dir.path(), "ok.aether", CLEAN);
    let res = run_in(
        dir.path(),
        &["run", "ok.aether", "--arg", "k=1", "--arg", "k=2"],
    );
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(
        res.stderr.contains("--arg `k` is given more than once"),
        "{}",
        res.stderr
    );
    let res = run_in(
        dir.path(),
        &["run", "ok.aether", "--arg", "k=1", "--arg", "j=2"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
}
