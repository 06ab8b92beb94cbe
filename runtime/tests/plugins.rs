//! Integration tests of the plugins module: discovery, the JSON protocol, timeouts, the
//! circuit breaker, version requirements and the shipped `sysinfo` example plugin.
#![cfg(unix)]

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::task::Poll;
use std::time::{Duration, Instant};

use aether_check::spec::PluginRequirement;
use aether_runtime::plugins::{
    search_dirs, timeout_from_json, Manifest, PluginErrorKind, PluginSettings, Plugins,
};
use serde_json::{json, Value};

/// Runs a future on a current-thread runtime, as the VM does.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// Writes a plugin directory `root/dir` with `plugin.json` and an executable `run.sh`.
fn write_plugin(root: &Path, dir: &str, manifest: &Value, script: &str) -> PathBuf {
    let path = root.join(dir);
    std::fs::create_dir_all(&path).expect("create plugin dir");
    let text = serde_json::to_string_pretty(manifest).expect("manifest json");
    std::fs::write(path.join("plugin.json"), text).expect("write manifest");
    let script_path = path.join("run.sh");
    std::fs::write(&script_path, format!("#!/bin/sh\n{script}\n")).expect("write script");
    std::fs::set_permissions(&script_path, std::fs::Permissions::from_mode(0o755))
        .expect("chmod script");
    path
}

/// A manifest running `./run.sh` with functions run and echo.
fn manifest(name: &str, version: &str) -> Value {
    json!({
        "name": name,
        "version": version,
        "command": ["./run.sh"],
        "functions": ["run", "echo"],
        "capabilities": ["net"],
        "deterministic": true,
        "side_effects": false,
    })
}

fn discover_one(root: &Path, settings: PluginSettings) -> Plugins {
    let (plugins, warnings) = Plugins::discover(&[root.to_path_buf()], settings);
    assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
    plugins
}

/// A script that answers `ok: true` with the request it read.
const ECHO_REQUEST: &str = r#"read -r req
printf '{"ok":true,"result":%s}\n' "$req""#;

#[test]
fn discovery_skips_malformed_manifests_and_first_name_wins() {
    let first = tempfile::tempdir().expect("tempdir");
    let second = tempfile::tempdir().expect("tempdir");
    write_plugin(
        first.path(),
        "alpha",
        &manifest("alpha", "1.0.0"),
        ECHO_REQUEST,
    );
    write_plugin(
        second.path(),
        "alpha-again",
        &manifest("alpha", "2.0.0"),
        ECHO_REQUEST,
    );
    write_plugin(
        second.path(),
        "beta",
        &manifest("beta", "0.3.1"),
        ECHO_REQUEST,
    );
    // Malformed: bad JSON, bad version, empty command.
    let bad = second.path().join("broken");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join("plugin.json"), "{ not json").expect("write");
    let mut bad_version = manifest("gamma", "one");
    bad_version["version"] = json!("one");
    write_plugin(second.path(), "gamma", &bad_version, ECHO_REQUEST);
    let mut no_command = manifest("delta", "1.0.0");
    no_command["command"] = json!([]);
    write_plugin(second.path(), "delta", &no_command, ECHO_REQUEST);
    // Not plugins: a directory without manifest, a plain file, a missing search directory.
    std::fs::create_dir_all(second.path().join("empty")).expect("mkdir");
    std::fs::write(second.path().join("README"), "hi").expect("write");
    let missing = second.path().join("does-not-exist");

    let dirs = vec![
        first.path().to_path_buf(),
        missing,
        second.path().to_path_buf(),
    ];
    let (plugins, warnings) = Plugins::discover(&dirs, PluginSettings::default());

    assert_eq!(warnings.len(), 3, "warnings: {warnings:?}");
    assert!(warnings
        .iter()
        .any(|w| w.contains("broken") && w.contains("invalid JSON")));
    assert!(warnings
        .iter()
        .any(|w| w.contains("gamma") && w.contains("version")));
    assert!(warnings
        .iter()
        .any(|w| w.contains("delta") && w.contains("command")));

    assert_eq!(
        plugins.names(),
        vec!["alpha".to_string(), "beta".to_string()]
    );
    let alpha = plugins.manifest("alpha").expect("alpha");
    assert_eq!(
        alpha.version.to_string(),
        "1.0.0",
        "the first directory wins"
    );
    assert!(alpha.dir.ends_with("alpha"));
    assert!(
        alpha.command[0].ends_with("alpha/run.sh"),
        "{:?}",
        alpha.command
    );

    let list = plugins.list();
    assert_eq!(
        list,
        vec![
            json!({"name": "alpha", "version": "1.0.0", "capabilities": ["net"], "circuit": "closed"}),
            json!({"name": "beta", "version": "0.3.1", "capabilities": ["net"], "circuit": "closed"}),
        ]
    );
    let status = plugins.status("beta").expect("status");
    assert_eq!(status["circuit"], "closed");
    assert_eq!(status["invocations"], 0);
    assert_eq!(status["deterministic"], true);
    assert_eq!(status["side_effects"], false);
    assert_eq!(status["functions"], json!(["run", "echo"]));
    assert_eq!(status["last_error"], Value::Null);
    assert!(plugins.status("nope").is_none());
}

#[test]
fn the_same_directory_twice_is_searched_once() {
    let root = tempfile::tempdir().expect("tempdir");
    write_plugin(root.path(), "a", &manifest("a", "1.0.0"), ECHO_REQUEST);
    let dirs = vec![root.path().to_path_buf(), root.path().join(".")];
    let (plugins, warnings) = Plugins::discover(&dirs, PluginSettings::default());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(plugins.names(), vec!["a".to_string()]);
}

#[test]
fn manifest_defaults_and_program_resolution() {
    let dir = Path::new("/opt/p");
    let m = Manifest::parse(
        r#"{"name": "p", "version": "1.2.3", "command": ["sh", "x.sh"]}"#,
        dir,
    )
    .expect("manifest");
    assert_eq!(
        m.command,
        vec!["sh".to_string(), "x.sh".to_string()],
        "PATH lookup for sh"
    );
    assert_eq!(m.functions, vec!["run".to_string()]);
    assert!(m.capabilities.is_empty());
    assert!(!m.deterministic);
    assert!(m.side_effects);
    assert_eq!(m.timeout, None);
    let m = Manifest::parse(
        r#"{"name": "p", "version": "1.2.3", "command": ["bin/tool"], "timeout": 2.5}"#,
        dir,
    )
    .expect("manifest");
    assert_eq!(m.command, vec!["/opt/p/bin/tool".to_string()]);
    assert_eq!(m.timeout, Some(Duration::from_millis(2500)));
    for bad in [
        r#"[]"#,
        r#"{"version": "1.0.0", "command": ["x"]}"#,
        r#"{"name": "a b", "version": "1.0.0", "command": ["x"]}"#,
        r#"{"name": "p", "version": "1.0", "command": ["x"]}"#,
        r#"{"name": "p", "version": "1.0.0", "command": "x"}"#,
        r#"{"name": "p", "version": "1.0.0", "command": ["x"], "functions": [1]}"#,
        r#"{"name": "p", "version": "1.0.0", "command": ["x"], "deterministic": "yes"}"#,
        r#"{"name": "p", "version": "1.0.0", "command": ["x"], "timeout": 0}"#,
        r#"{"name": "p", "version": "1.0.0", "command": ["x"], "timeout": "5"}"#,
    ] {
        assert!(Manifest::parse(bad, dir).is_err(), "accepted {bad}");
    }
}

#[test]
fn invoke_round_trips_args_and_sends_the_request_line() {
    let root = tempfile::tempdir().expect("tempdir");
    write_plugin(
        root.path(),
        "echoer",
        &manifest("echoer", "1.0.0"),
        ECHO_REQUEST,
    );
    let plugins = discover_one(root.path(), PluginSettings::default());
    let args = vec![
        json!(1),
        json!("two, \"quoted\""),
        json!({"k": [true, null]}),
        json!(2.5),
    ];
    let result =
        block_on(plugins.invoke("echoer", "echo", args.clone(), None)).expect("invoke succeeds");
    assert_eq!(
        result,
        json!({"function": "echo", "args": args, "plugin": "echoer"})
    );
    let status = plugins.status("echoer").expect("status");
    assert_eq!(status["invocations"], 1);
    assert_eq!(status["successes"], 1);
    assert_eq!(status["failures"], 0);
    assert_eq!(status["success_rate"], 1.0);
}

#[test]
fn large_requests_and_responses_do_not_deadlock() {
    let root = tempfile::tempdir().expect("tempdir");
    // Writes a large response before reading its request: both pipes must be serviced at once.
    write_plugin(
        root.path(),
        "big",
        &manifest("big", "1.0.0"),
        r#"head -c 300000 /dev/zero | tr '\0' 'x' > big.txt
printf '{"ok":true,"result":"%s"}\n' "$(cat big.txt)"
rm -f big.txt
cat >/dev/null"#,
    );
    write_plugin(
        root.path(),
        "deaf",
        &manifest("deaf", "1.0.0"),
        r#"echo '{"ok":true,"result":0}'"#,
    );
    let plugins = discover_one(root.path(), PluginSettings::default());
    let large = vec![json!("y".repeat(500_000))];
    let result =
        block_on(plugins.invoke("big", "run", large.clone(), Some(Duration::from_secs(20))))
            .expect("invoke");
    assert_eq!(result.as_str().map(str::len), Some(300_000));
    // A plugin that never reads its (large) request still answers.
    let result = block_on(plugins.invoke("deaf", "run", large, None)).expect("invoke");
    assert_eq!(result, json!(0));
}

#[test]
fn plugin_runs_in_its_directory_and_result_may_be_missing() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = write_plugin(
        root.path(),
        "where",
        &manifest("where", "1.0.0"),
        r#"cat >/dev/null
printf '{"ok":true,"result":"%s"}\n' "$(pwd -P)""#,
    );
    write_plugin(
        root.path(),
        "nothing",
        &manifest("nothing", "1.0.0"),
        r#"echo '{"ok": true}'
echo 'ignored second line'"#,
    );
    let plugins = discover_one(root.path(), PluginSettings::default());
    let cwd = block_on(plugins.invoke("where", "run", vec![], None)).expect("invoke");
    let expected = std::fs::canonicalize(&dir).expect("canonicalize");
    assert_eq!(cwd, json!(expected.to_string_lossy()));
    let result = block_on(plugins.invoke("nothing", "run", vec![], None)).expect("invoke");
    assert_eq!(result, Value::Null);
}

#[test]
fn command_can_be_an_interpreter_from_path() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut m = manifest("interp", "1.0.0");
    m["command"] = json!(["sh", "run.sh", "extra-arg"]);
    write_plugin(
        root.path(),
        "interp",
        &m,
        r#"printf '{"ok":true,"result":"%s"}\n' "$1""#,
    );
    let plugins = discover_one(root.path(), PluginSettings::default());
    let result = block_on(plugins.invoke("interp", "run", vec![], None)).expect("invoke");
    assert_eq!(result, json!("extra-arg"));
}

#[test]
fn ok_false_is_a_failure_with_the_plugins_message() {
    let root = tempfile::tempdir().expect("tempdir");
    write_plugin(
        root.path(),
        "sad",
        &manifest("sad", "1.0.0"),
        r#"echo 'some detail' >&2
echo '{"ok": false, "error": "disk is full"}'"#,
    );
    let plugins = discover_one(root.path(), PluginSettings::default());
    let err = block_on(plugins.invoke("sad", "run", vec![], None)).expect_err("fails");
    assert_eq!(err.kind, PluginErrorKind::Failed);
    assert!(err.message.contains("disk is full"), "{}", err.message);
    assert!(err.message.contains("some detail"), "{}", err.message);
    let status = plugins.status("sad").expect("status");
    assert_eq!(status["failures"], 1);
    assert_eq!(status["consecutive_failures"], 1);
    assert!(status["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("disk is full")));
}

#[test]
fn non_zero_exit_is_a_failure_with_the_stderr_tail() {
    let root = tempfile::tempdir().expect("tempdir");
    write_plugin(
        root.path(),
        "crash",
        &manifest("crash", "1.0.0"),
        r#"echo '{"ok": true, "result": 1}'
echo 'traceback: boom' >&2
exit 3"#,
    );
    let plugins = discover_one(root.path(), PluginSettings::default());
    let err = block_on(plugins.invoke("crash", "run", vec![], None)).expect_err("fails");
    assert_eq!(err.kind, PluginErrorKind::Failed);
    assert!(err.message.contains("status 3"), "{}", err.message);
    assert!(err.message.contains("traceback: boom"), "{}", err.message);
}

#[test]
fn invalid_or_missing_json_is_a_failure() {
    let root = tempfile::tempdir().expect("tempdir");
    write_plugin(
        root.path(),
        "garbage",
        &manifest("garbage", "1.0.0"),
        "echo 'hello there'",
    );
    write_plugin(
        root.path(),
        "silent",
        &manifest("silent", "1.0.0"),
        "cat >/dev/null",
    );
    write_plugin(
        root.path(),
        "no-ok",
        &manifest("no-ok", "1.0.0"),
        r#"echo '{"result": 1}'"#,
    );
    let plugins = discover_one(root.path(), PluginSettings::default());
    let err = block_on(plugins.invoke("garbage", "run", vec![], None)).expect_err("fails");
    assert_eq!(err.kind, PluginErrorKind::Failed);
    assert!(
        err.message.contains("not JSON") && err.message.contains("hello there"),
        "{}",
        err.message
    );
    let err = block_on(plugins.invoke("silent", "run", vec![], None)).expect_err("fails");
    assert_eq!(err.kind, PluginErrorKind::Failed);
    assert!(err.message.contains("no response"), "{}", err.message);
    let err = block_on(plugins.invoke("no-ok", "run", vec![], None)).expect_err("fails");
    assert_eq!(err.kind, PluginErrorKind::Failed);
    assert!(
        err.message.contains("\\\"ok\\\"") || err.message.contains("ok"),
        "{}",
        err.message
    );
}

#[test]
fn missing_program_is_a_failure() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut m = manifest("ghost", "1.0.0");
    m["command"] = json!(["./not-there.sh"]);
    write_plugin(root.path(), "ghost", &m, ECHO_REQUEST);
    let plugins = discover_one(root.path(), PluginSettings::default());
    let err = block_on(plugins.invoke("ghost", "run", vec![], None)).expect_err("fails");
    assert_eq!(err.kind, PluginErrorKind::Failed);
    assert!(err.message.contains("cannot start"), "{}", err.message);
}

#[test]
fn timeout_kills_a_slow_plugin() {
    let root = tempfile::tempdir().expect("tempdir");
    write_plugin(root.path(), "slow", &manifest("slow", "1.0.0"), "sleep 10");
    let plugins = discover_one(root.path(), PluginSettings::default());
    let started = Instant::now();
    let err = block_on(plugins.invoke("slow", "run", vec![], Some(Duration::from_millis(300))))
        .expect_err("times out");
    let elapsed = started.elapsed();
    assert_eq!(err.kind, PluginErrorKind::Timeout, "{}", err.message);
    assert!(err.message.contains("0.3s"), "{}", err.message);
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(300), "took {elapsed:?}");
    assert_eq!(plugins.status("slow").expect("status")["failures"], 1);
}

#[test]
fn manifest_timeout_then_settings_timeout_apply() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut m = manifest("slow-manifest", "1.0.0");
    m["timeout"] = json!(0.2);
    write_plugin(root.path(), "slow-manifest", &m, "exec sleep 10");
    write_plugin(
        root.path(),
        "slow-default",
        &manifest("slow-default", "1.0.0"),
        "exec sleep 10",
    );
    let settings = PluginSettings {
        invoke_timeout: Duration::from_millis(250),
        ..PluginSettings::default()
    };
    let plugins = discover_one(root.path(), settings);
    for name in ["slow-manifest", "slow-default"] {
        let started = Instant::now();
        let err = block_on(plugins.invoke(name, "run", vec![], None)).expect_err("times out");
        assert_eq!(
            err.kind,
            PluginErrorKind::Timeout,
            "{name}: {}",
            err.message
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{name} took {:?}",
            started.elapsed()
        );
    }
}

/// Whether process `pid` is still running: a zombie (dead, waiting for its new parent to reap
/// it) counts as gone. Uses `/proc` where there is one, else `kill(pid, 0)`.
fn running(pid: i32) -> bool {
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // "pid (comm) S ...": the state follows the last ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        return !matches!(state, "Z" | "X" | "x");
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Waits up to `limit` for process `pid` to be gone; whether it went.
fn gone_within(pid: i32, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        if !running(pid) {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid a plugin wrote to `file` (waiting briefly for it to appear).
fn read_pid(file: &Path) -> i32 {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                return pid;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the plugin did not write {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills a leftover test process so that a failing test does not leave it behind.
fn cleanup(pid: i32) {
    if running(pid) {
        // SAFETY: plain kill(2) of a process this test started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// A plugin (run as `sh run.sh`, so the shell is the direct child) that starts a grandchild
/// `sleep 30`, writes its pid to `grandchild.pid` and waits for it.
const STARTS_A_GRANDCHILD: &str = r#"sleep 30 &
echo $! > grandchild.pid.tmp
mv grandchild.pid.tmp grandchild.pid
wait"#;

fn grandchild_plugin(root: &Path, name: &str) -> PathBuf {
    let mut m = manifest(name, "1.0.0");
    m["command"] = json!(["sh", "run.sh"]);
    write_plugin(root, name, &m, STARTS_A_GRANDCHILD)
}

#[test]
fn timeout_kills_the_plugins_whole_process_group() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = grandchild_plugin(root.path(), "spawner");
    let plugins = discover_one(root.path(), PluginSettings::default());
    let err = block_on(plugins.invoke("spawner", "run", vec![], Some(Duration::from_secs(1))))
        .expect_err("times out");
    assert_eq!(err.kind, PluginErrorKind::Timeout, "{}", err.message);
    let pid = read_pid(&dir.join("grandchild.pid"));
    let gone = gone_within(pid, Duration::from_secs(2));
    cleanup(pid);
    assert!(gone, "the plugin's child {pid} outlived the timeout");
}

#[test]
fn dropping_an_invocation_kills_its_process_group() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = grandchild_plugin(root.path(), "abandoned");
    let plugins = discover_one(root.path(), PluginSettings::default());
    // The caller gives up first (as the VM does when its run deadline passes): the invocation
    // future is dropped while its own 20 s timeout is far away.
    let pidfile = dir.join("grandchild.pid");
    let outcome = block_on(async {
        let invocation = plugins.invoke("abandoned", "run", vec![], Some(Duration::from_secs(20)));
        let wait_for_pid = async {
            while !pidfile.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let deadline = async {
            tokio::time::timeout(Duration::from_secs(5), wait_for_pid)
                .await
                .expect("the plugin writes its child's pid");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut invocation = invocation;
        let mut deadline = std::pin::pin!(deadline);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(outcome) = invocation.as_mut().poll(cx) {
                return Poll::Ready(Some(outcome));
            }
            deadline.as_mut().poll(cx).map(|()| None)
        })
        .await
    });
    assert!(outcome.is_none(), "the plugin finished: {outcome:?}");
    let pid = read_pid(&pidfile);
    let gone = gone_within(pid, Duration::from_secs(2));
    cleanup(pid);
    assert!(
        gone,
        "the child {pid} of a dropped invocation is still running"
    );
}

#[test]
fn a_normally_finishing_plugin_still_answers_and_reports_its_status() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut m = manifest("plain", "1.0.0");
    m["command"] = json!(["sh", "run.sh"]);
    write_plugin(root.path(), "plain", &m, ECHO_REQUEST);
    // Closes its output, then keeps working for a while and exits 3: the invocation waits for
    // it to exit on its own (it is not killed when its output ends) and reports the status.
    write_plugin(
        root.path(),
        "lingers",
        &manifest("lingers", "1.0.0"),
        r#"cat >/dev/null
echo '{"ok": true, "result": 1}'
exec >&- 2>&-
sleep 0.3
exit 3"#,
    );
    let plugins = discover_one(root.path(), PluginSettings::default());
    for i in 0..3 {
        let result = block_on(plugins.invoke("plain", "echo", vec![json!(i)], None))
            .expect("invoke succeeds");
        assert_eq!(
            result,
            json!({"function": "echo", "args": [i], "plugin": "plain"})
        );
    }
    let started = Instant::now();
    let err = block_on(plugins.invoke("lingers", "run", vec![], Some(Duration::from_secs(20))))
        .expect_err("exit status 3");
    assert_eq!(err.kind, PluginErrorKind::Failed, "{}", err.message);
    assert!(err.message.contains("status 3"), "{}", err.message);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
    let status = plugins.status("plain").expect("status");
    assert_eq!(status["successes"], 3);
    assert_eq!(status["failures"], 0);
}

#[test]
fn background_processes_left_by_a_finished_plugin_are_killed() {
    let root = tempfile::tempdir().expect("tempdir");
    // One background child detached from the pipes, one still holding stdout: neither delays
    // the answer once the plugin has exited, and neither outlives the invocation.
    let dir = write_plugin(
        root.path(),
        "leaves",
        &manifest("leaves", "1.0.0"),
        r#"sleep 30 >/dev/null 2>&1 </dev/null &
echo $! > detached.pid
sleep 30 &
echo $! > attached.pid
echo '{"ok": true, "result": "done"}'"#,
    );
    let plugins = discover_one(root.path(), PluginSettings::default());
    let started = Instant::now();
    let result = block_on(plugins.invoke("leaves", "run", vec![], Some(Duration::from_secs(20))));
    let elapsed = started.elapsed();
    let pids = [
        read_pid(&dir.join("detached.pid")),
        read_pid(&dir.join("attached.pid")),
    ];
    let gone: Vec<bool> = pids
        .iter()
        .map(|&pid| gone_within(pid, Duration::from_secs(2)))
        .collect();
    pids.iter().for_each(|&pid| cleanup(pid));
    assert_eq!(result.expect("invoke succeeds"), json!("done"));
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(gone, [true, true], "background processes {pids:?} survived");
}

/// A plugin that appends a line to `count` each time it runs and succeeds only while the file
/// `mode` says `ok`.
fn counting_plugin(root: &Path) -> (PathBuf, PathBuf) {
    let count = root.join("count");
    let mode = root.join("mode");
    std::fs::write(&mode, "fail").expect("write mode");
    let script = format!(
        r#"echo run >> '{count}'
if [ "$(cat '{mode}')" = ok ]; then
  echo '{{"ok": true, "result": "fine"}}'
else
  echo 'flaky' >&2
  exit 1
fi"#,
        count = count.display(),
        mode = mode.display()
    );
    write_plugin(
        &root.join("plugins"),
        "flaky",
        &manifest("flaky", "1.0.0"),
        &script,
    );
    (count, mode)
}

fn runs(count: &Path) -> usize {
    std::fs::read_to_string(count)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn circuit(plugins: &Plugins, name: &str) -> Value {
    plugins.status(name).expect("status")["circuit"].clone()
}

#[test]
fn breaker_opens_half_opens_and_closes_on_success() {
    let root = tempfile::tempdir().expect("tempdir");
    let (count, mode) = counting_plugin(root.path());
    let settings = PluginSettings {
        cb_threshold: 3,
        cb_cooldown: Duration::from_millis(200),
        ..PluginSettings::default()
    };
    let plugins = discover_one(&root.path().join("plugins"), settings);

    for i in 1..=3 {
        let err = block_on(plugins.invoke("flaky", "run", vec![], None)).expect_err("fails");
        assert_eq!(err.kind, PluginErrorKind::Failed);
        assert!(err.message.contains("flaky"), "{}", err.message);
        assert_eq!(runs(&count), i);
    }
    assert_eq!(circuit(&plugins, "flaky"), "open");
    assert_eq!(plugins.list()[0]["circuit"], "open");

    // While open, nothing runs.
    for _ in 0..3 {
        let err = block_on(plugins.invoke("flaky", "run", vec![], None)).expect_err("rejected");
        assert_eq!(err.kind, PluginErrorKind::CircuitOpen, "{}", err.message);
    }
    assert_eq!(runs(&count), 3);
    let status = plugins.status("flaky").expect("status");
    assert_eq!(status["consecutive_failures"], 3);
    assert_eq!(status["invocations"], 3);
    assert_eq!(status["rejected"], 3);

    // After the cooldown exactly one trial is let through.
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(circuit(&plugins, "flaky"), "half-open");
    std::fs::write(&mode, "ok").expect("write mode");
    let trial = plugins.invoke("flaky", "run", vec![], None);
    let second = block_on(plugins.invoke("flaky", "run", vec![], None)).expect_err("rejected");
    assert_eq!(
        second.kind,
        PluginErrorKind::CircuitOpen,
        "{}",
        second.message
    );
    assert_eq!(block_on(trial).expect("trial succeeds"), json!("fine"));
    assert_eq!(runs(&count), 4);
    assert_eq!(circuit(&plugins, "flaky"), "closed");
    assert_eq!(
        plugins.status("flaky").expect("status")["consecutive_failures"],
        0
    );

    // Closed again: invocations run normally.
    block_on(plugins.invoke("flaky", "run", vec![], None)).expect("runs");
    assert_eq!(runs(&count), 5);
}

#[test]
fn breaker_reopens_when_the_trial_fails() {
    let root = tempfile::tempdir().expect("tempdir");
    let (count, mode) = counting_plugin(root.path());
    let settings = PluginSettings {
        cb_threshold: 2,
        cb_cooldown: Duration::from_millis(200),
        ..PluginSettings::default()
    };
    let plugins = discover_one(&root.path().join("plugins"), settings);
    for _ in 0..2 {
        block_on(plugins.invoke("flaky", "run", vec![], None)).expect_err("fails");
    }
    assert_eq!(circuit(&plugins, "flaky"), "open");
    assert_eq!(runs(&count), 2);

    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(circuit(&plugins, "flaky"), "half-open");
    let err = block_on(plugins.invoke("flaky", "run", vec![], None)).expect_err("trial fails");
    assert_eq!(err.kind, PluginErrorKind::Failed);
    assert_eq!(runs(&count), 3);
    // Re-opened with a fresh cooldown.
    assert_eq!(circuit(&plugins, "flaky"), "open");
    let err = block_on(plugins.invoke("flaky", "run", vec![], None)).expect_err("rejected");
    assert_eq!(err.kind, PluginErrorKind::CircuitOpen);
    assert_eq!(runs(&count), 3);

    std::thread::sleep(Duration::from_millis(250));
    std::fs::write(&mode, "ok").expect("write mode");
    block_on(plugins.invoke("flaky", "run", vec![], None)).expect("trial succeeds");
    assert_eq!(circuit(&plugins, "flaky"), "closed");
    assert_eq!(runs(&count), 4);
}

#[test]
fn a_dropped_trial_frees_the_half_open_slot() {
    let root = tempfile::tempdir().expect("tempdir");
    let (count, mode) = counting_plugin(root.path());
    let settings = PluginSettings {
        cb_threshold: 1,
        cb_cooldown: Duration::from_millis(100),
        ..PluginSettings::default()
    };
    let plugins = discover_one(&root.path().join("plugins"), settings);
    block_on(plugins.invoke("flaky", "run", vec![], None)).expect_err("fails");
    assert_eq!(circuit(&plugins, "flaky"), "open");
    std::thread::sleep(Duration::from_millis(150));
    drop(plugins.invoke("flaky", "run", vec![], None));
    std::fs::write(&mode, "ok").expect("write mode");
    block_on(plugins.invoke("flaky", "run", vec![], None)).expect("trial runs");
    assert_eq!(runs(&count), 2);
    assert_eq!(circuit(&plugins, "flaky"), "closed");
}

#[test]
fn unknown_function_and_unknown_plugin_do_not_run() {
    let root = tempfile::tempdir().expect("tempdir");
    let (count, _mode) = counting_plugin(root.path());
    let plugins = discover_one(&root.path().join("plugins"), PluginSettings::default());
    let err = block_on(plugins.invoke("flaky", "explode", vec![], None)).expect_err("unknown");
    assert_eq!(err.kind, PluginErrorKind::UnknownFunction);
    assert!(
        err.message.contains("explode") && err.message.contains("run, echo"),
        "{}",
        err.message
    );
    let err = block_on(plugins.invoke("missing", "run", vec![], None)).expect_err("unknown");
    assert_eq!(err.kind, PluginErrorKind::NotFound);
    assert!(
        err.message.contains("missing") && err.message.contains("flaky"),
        "{}",
        err.message
    );
    assert_eq!(runs(&count), 0);
    let status = plugins.status("flaky").expect("status");
    assert_eq!(status["invocations"], 0);
    assert_eq!(status["consecutive_failures"], 0);
}

fn req(text: &str) -> PluginRequirement {
    PluginRequirement::parse(text).expect("a well-formed requirement")
}

#[test]
fn check_requirement_versions() {
    let root = tempfile::tempdir().expect("tempdir");
    write_plugin(
        root.path(),
        "sysinfo",
        &manifest("sysinfo", "1.2.0"),
        ECHO_REQUEST,
    );
    let plugins = discover_one(root.path(), PluginSettings::default());
    for ok in [
        "sysinfo",
        " sysinfo ",
        "sysinfo>=1.0,<2",
        "sysinfo >= 1.0, < 2",
        "sysinfo==1.2.0",
        "sysinfo<=1.2.0",
        "sysinfo>1.1",
        "sysinfo>=1",
        "sysinfo==1.2",
    ] {
        assert_eq!(plugins.check_requirement(&req(ok)), Ok(()), "{ok}");
    }
    for bad in [
        "sysinfo>=2",
        "sysinfo==1.2.1",
        "sysinfo<1.2.0",
        "sysinfo>=1.0,<1.2",
    ] {
        let err = plugins.check_requirement(&req(bad)).expect_err(bad);
        assert!(
            err.contains("1.2.0") && err.contains("does not satisfy"),
            "{bad}: {err}"
        );
    }
    let err = plugins
        .check_requirement(&req("weather>=1.0"))
        .expect_err("missing");
    assert!(
        err.contains("weather") && err.contains("not installed"),
        "{err}"
    );
    for malformed in [
        "",
        ">=1.0",
        "sysinfo~1.0",
        "sysinfo>=",
        "sysinfo>=1.0,",
        "sysinfo>=x.y",
    ] {
        assert!(
            PluginRequirement::parse(malformed).is_err(),
            "accepted {malformed:?}"
        );
    }
}

#[test]
fn settings_from_variables() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(
        PluginSettings::from_vars(vars(&[])),
        Ok(PluginSettings::default())
    );
    let defaults = PluginSettings::default();
    assert_eq!(defaults.invoke_timeout, Duration::from_secs(30));
    assert_eq!(defaults.cb_threshold, 5);
    assert_eq!(defaults.cb_cooldown, Duration::from_secs(60));
    let s = PluginSettings::from_vars(vars(&[
        ("AETHERRA_PLUGIN_INVOKE_TIMEOUT_SEC", "2.5"),
        ("AETHERRA_PLUGIN_CB_THRESHOLD", "3"),
        ("AETHERRA_PLUGIN_CB_COOLDOWN_SEC", "0"),
    ]))
    .expect("valid");
    assert_eq!(s.invoke_timeout, Duration::from_millis(2500));
    assert_eq!(s.cb_threshold, 3);
    assert_eq!(s.cb_cooldown, Duration::ZERO);
    let empty = PluginSettings::from_vars(vars(&[("AETHERRA_PLUGIN_CB_THRESHOLD", "")]));
    assert_eq!(empty, Ok(PluginSettings::default()));
    for (var, value) in [
        ("AETHERRA_PLUGIN_INVOKE_TIMEOUT_SEC", "soon"),
        ("AETHERRA_PLUGIN_INVOKE_TIMEOUT_SEC", "0"),
        ("AETHERRA_PLUGIN_INVOKE_TIMEOUT_SEC", "-1"),
        ("AETHERRA_PLUGIN_INVOKE_TIMEOUT_SEC", "inf"),
        ("AETHERRA_PLUGIN_CB_THRESHOLD", "0"),
        ("AETHERRA_PLUGIN_CB_THRESHOLD", "2.5"),
        ("AETHERRA_PLUGIN_CB_COOLDOWN_SEC", "-5"),
        ("AETHERRA_PLUGIN_CB_COOLDOWN_SEC", "NaN"),
    ] {
        let err =
            PluginSettings::from_vars(move |name: &str| (name == var).then(|| value.to_string()))
                .expect_err(value);
        assert!(err.contains(var), "{err}");
    }
}

#[test]
fn helpers_for_the_host() {
    assert_eq!(timeout_from_json(&Value::Null), Ok(None));
    assert_eq!(
        timeout_from_json(&json!(1.5)),
        Ok(Some(Duration::from_millis(1500)))
    );
    assert_eq!(
        timeout_from_json(&json!(2)),
        Ok(Some(Duration::from_secs(2)))
    );
    assert!(timeout_from_json(&json!(0)).is_err());
    assert!(timeout_from_json(&json!(-1)).is_err());
    assert!(timeout_from_json(&json!("5")).is_err());
    let dirs = search_dirs(Some(Path::new("/s")), Path::new("/w"), Some("/a::/b"));
    let expected: Vec<PathBuf> = ["/s/plugins", "/w/plugins", "/a", "/b"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(dirs, expected);
    let dirs = search_dirs(None, Path::new("/w"), None);
    assert_eq!(dirs, vec![PathBuf::from("/w/plugins")]);
}

#[test]
fn shipped_sysinfo_plugin_works() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/plugins");
    let (plugins, warnings) = Plugins::discover(&[dir], PluginSettings::default());
    assert!(warnings.is_empty(), "{warnings:?}");
    let m = plugins.manifest("sysinfo").expect("sysinfo is shipped");
    assert_eq!(m.version.to_string(), "1.0.0");
    assert_eq!(m.functions, vec!["run".to_string(), "echo".to_string()]);
    assert!(m.capabilities.is_empty());
    assert!(!m.deterministic);
    assert!(!m.side_effects);
    assert_eq!(m.timeout, Some(Duration::from_secs(5)));
    assert_eq!(plugins.check_requirement(&req("sysinfo>=1.0,<2")), Ok(()));

    let result = block_on(plugins.invoke("sysinfo", "run", vec![], None)).expect("run");
    assert!(result["cpus"].as_u64().is_some_and(|n| n >= 1), "{result}");
    assert!(
        result["load1"].as_f64().is_some_and(|l| l >= 0.0),
        "{result}"
    );
    assert!(
        result["uptime_s"].as_f64().is_some_and(|u| u > 0.0),
        "{result}"
    );

    let args = vec![
        json!("a, b]"),
        json!(3),
        json!([1, {"x": null}]),
        json!(true),
    ];
    let echoed = block_on(plugins.invoke("sysinfo", "echo", args.clone(), None)).expect("echo");
    assert_eq!(echoed, Value::Array(args));
    let empty = block_on(plugins.invoke("sysinfo", "echo", vec![], None)).expect("echo");
    assert_eq!(empty, json!([]));

    let status = plugins.status("sysinfo").expect("status");
    assert_eq!(status["invocations"], 3);
    assert_eq!(status["failures"], 0);
    assert_eq!(status["circuit"], "closed");
}
