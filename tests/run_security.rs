//! End-to-end tests of `aether run` against hostile paths and undeclared effects (issue 12,
//! the security side): `security.verify_signature` on FIFOs and devices, capabilities of
//! the state-writing functions, and deeply nested values stored or emitted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `aether run t.aether ARGS` in `dir`, killing it if it runs past 60 s (a hang is a
/// failure, never a stuck test).
fn run_in(dir: &Path, src: &str, args: &[&str]) -> Run {
    std::fs::write(dir.join("t.aether"), src).expect("write script");
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("aether"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("AETHERRA_PROFILE")
        .env_remove("AETHERRA_REQUIRE_CAPABILITIES")
        .env_remove("AETHERRA_SIGNING_STRICT")
        .env_remove("AETHERRA_QUIET")
        .args(["run", "t.aether", "--state-dir"])
        .arg(dir.join("state"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("aether starts");
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("aether output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

#[test]
fn verify_signature_refuses_fifos_devices_and_directories_at_once() {
    // Before the fix the FIFO blocked the run past its --timeout (forever, with no writer),
    // and /dev/zero was read until memory ran out.
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("pipe"));
    std::fs::write(dir.path().join("plain.txt"), "not signed\n").unwrap();
    let src = "goal: \"paths\"\n\
               metadata:\n    requires: [\"security\"]\n\
               for p in [\"pipe\", \"/dev/zero\", \"/dev/stdin\", \".\", \"nope\", \"plain.txt\"]:\n    \
               let v = security.verify_signature(p)\n    print(p, v.ok, v.reason)\n";
    let r = run_in(dir.path(), src, &["--timeout", "20s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "pipe false unreadable\n/dev/zero false unreadable\n/dev/stdin false unreadable\n\
         . false unreadable\nnope false unreadable\nplain.txt false missing\n"
    );
    assert!(r.took < Duration::from_secs(15), "took {:?}", r.took);
}

#[test]
fn verify_signature_reads_no_more_than_its_cap() {
    // A regular file over 4 MiB is refused as unreadable, not read whole.
    let dir = tempfile::tempdir().unwrap();
    let big = std::fs::File::create(dir.path().join("big")).unwrap();
    big.set_len(64 << 20).unwrap();
    let src = "goal: \"big\"\nmetadata:\n    requires: [\"security\"]\n\
               print(security.verify_signature(\"big\").reason)\n";
    let r = run_in(dir.path(), src, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "unreadable\n");
}

/// The functions that changed state or read host files with nothing declared, with the
/// capability each needs now.
const GUARDED: &[(&str, &str)] = &[
    ("kernel.register(\"svc\")", "kernel.register"),
    ("kernel.heartbeat(\"svc\")", "kernel.register"),
    ("homeostasis.record(\"latency\", 3)", "homeostasis.record"),
    ("metrics({latency: 3})", "homeostasis.record"),
    ("security.verify_signature(\"t.aether\")", "security.read"),
];

#[test]
fn state_writers_and_file_readers_need_their_capability_under_profile_test() {
    // Before the fix each of these ran under --profile test with nothing declared.
    for (call, cap) in GUARDED {
        let dir = tempfile::tempdir().unwrap();
        // Declared by name, it runs (after a registration, which a heartbeat needs).
        let declared = format!(
            "goal: \"declared\"\nrequire:\n    capabilities: [\"{cap}\", \"kernel.register\"]\nkernel.register(\"svc\")\n{call}\nprint(\"ran\")\n"
        );
        let r = run_in(dir.path(), &declared, &["--profile", "test"]);
        assert_eq!(r.code, 0, "{call}: {}", r.stderr);
        assert_eq!(r.stdout, "ran\n", "{call}");
        let bare = format!("goal: \"undeclared\"\n{call}\nprint(\"ran\")\n");
        let r = run_in(dir.path(), &bare, &["--profile", "test"]);
        assert_eq!(r.code, 21, "{call}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(&format!("needs capability `{cap}`")),
            "{call}: {}",
            r.stderr
        );
        assert!(!r.stdout.contains("ran"), "{call}: {}", r.stdout);
        // In the dev profile nothing is enforced.
        let r = run_in(dir.path(), &bare, &[]);
        assert_eq!(r.code, 0, "{call}: {}", r.stderr);
    }
}

#[test]
fn check_reports_an_undeclared_metrics_call_like_other_capabilities() {
    // `metrics` is a global: before the fix `check` said nothing about it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.aether"),
        "goal: \"m\"\nmetrics({latency: 3})\n",
    )
    .unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("aether"))
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .args(["check", "m.aether", "--format", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("A204"), "{text}");
    assert!(
        text.contains("module `homeostasis` is used but not required"),
        "{text}"
    );
}

/// Writes a plugin into `DIR/plugins/NAME` running `sh ./p.sh`, whose body is `body`.
fn plugin(dir: &Path, name: &str, manifest_extra: &str, body: &str) -> std::path::PathBuf {
    let pdir = dir.join("plugins").join(name);
    std::fs::create_dir_all(&pdir).expect("plugin dir");
    std::fs::write(
        pdir.join("plugin.json"),
        format!(
            r#"{{"name": "{name}", "version": "1.0.0", "command": ["sh", "./p.sh"]{manifest_extra}}}"#
        ),
    )
    .expect("manifest");
    std::fs::write(pdir.join("p.sh"), body).expect("script");
    pdir
}

const DEEP: &str = "let deep = 1\nfor i in range(200):\n    deep = [deep]\n";

#[test]
fn a_value_too_deep_for_json_is_an_error_where_it_is_written_never_a_silent_null() {
    // Before the fix memory.store kept it and memory.get gave back its JSON text as a
    // string; an emitted event and a plugin's argument became `null`.
    let dir = tempfile::tempdir().unwrap();
    plugin(
        dir.path(),
        "echo",
        "",
        "read line\necho \"$line\" > got.txt\necho '{\"ok\": true, \"result\": 1}'\n",
    );
    let head = "goal: \"deep\"\nrequire:\n    capabilities: [\"memory\", \"plugins.invoke\"]\n";
    for (call, what) in [
        (
            "memory.store(deep)",
            "the stored value nests lists and maps more than 127 levels deep",
        ),
        (
            "emit \"deep_event\" deep",
            "the payload of event \"deep_event\" nests lists and maps more than 127 levels deep",
        ),
        (
            "plugins.invoke(\"echo\", deep)",
            "argument 1 of plugin `echo` nests lists and maps more than 127 levels deep",
        ),
    ] {
        let src = format!("{head}{DEEP}{call}\nprint(\"ran\")\n");
        let r = run_in(dir.path(), &src, &["--events", "ev.jsonl"]);
        assert_eq!(r.code, 21, "{call}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(what), "{call}: {}", r.stderr);
        assert!(!r.stdout.contains("ran"), "{call}");
    }
    assert!(!dir.path().join("plugins/echo/got.txt").exists());
    // 127 levels go through and come back whole.
    let src = format!(
        "{head}let deep = 1\nfor i in range(127):\n    deep = [deep]\n\
         let id = memory.store(deep)\nprint(memory.get(id).content == deep)\n\
         print(plugins.invoke(\"echo\", deep))\n"
    );
    let r = run_in(dir.path(), &src, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "true\n1\n");
    let got = std::fs::read_to_string(dir.path().join("plugins/echo/got.txt")).unwrap();
    assert!(
        got.contains(&format!("{}1{}", "[".repeat(128), "]".repeat(128))),
        "{got}"
    );
}

#[test]
fn a_plugin_response_over_the_cap_is_reported_as_too_large() {
    // Before the fix a 20 MB response was cut at 16 MiB and reported as "not JSON".
    let dir = tempfile::tempdir().unwrap();
    plugin(
        dir.path(),
        "big",
        "",
        "read line\nprintf '{\"ok\": true, \"result\": \"'\nhead -c 20000000 /dev/zero | tr '\\0' a\necho '\"}'\n",
    );
    let src = "goal: \"big\"\nrequire:\n    capabilities: [\"plugins.invoke\"]\nplugins.invoke(\"big\", timeout=60)\n";
    let r = run_in(dir.path(), src, &[]);
    assert_eq!(r.code, 21, "{}", r.stderr);
    assert!(
        r.stderr.contains("response too large (over 16 MiB)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("not JSON"), "{}", r.stderr);
}

/// Whether process `pid` is gone (a zombie waiting for its reaper counts as gone).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

#[test]
fn a_sigkilled_aether_leaves_no_plugin_nor_its_children_behind() {
    // Before the fix the plugin's `sleep 300` (and the plugin) outlived a SIGKILL of
    // `aether`: no handler runs on SIGKILL, so nothing killed the plugin's group.
    let dir = tempfile::tempdir().unwrap();
    let pdir = plugin(
        dir.path(),
        "busy",
        "",
        "echo $$ > plugin.pid\nsleep 300 &\necho $! > grandchild.pid\nwait\n",
    );
    std::fs::write(
        dir.path().join("t.aether"),
        "goal: \"busy\"\nrequire:\n    capabilities: [\"plugins.invoke\"]\nplugins.invoke(\"busy\", timeout=600)\n",
    )
    .unwrap();
    let mut aether = Command::new(assert_cmd::cargo::cargo_bin("aether"))
        .current_dir(dir.path())
        .args(["run", "t.aether", "--state-dir"])
        .arg(dir.path().join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aether starts");
    let read_pid = |name: &str| {
        std::fs::read_to_string(pdir.join(name))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
    };
    let start = Instant::now();
    let (plugin_pid, grandchild) = loop {
        if let (Some(p), Some(g)) = (read_pid("plugin.pid"), read_pid("grandchild.pid")) {
            break (p, g);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the plugin started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    aether.kill().expect("SIGKILL aether");
    aether.wait().expect("aether reaped");
    let start = Instant::now();
    while !(gone(plugin_pid) && gone(grandchild)) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the plugin ({plugin_pid}) or its `sleep 300` ({grandchild}) outlived a SIGKILL of aether"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
