//! End-to-end tests of the runtime host through `aether run`: the memory module on SQLite
//! (across runs, transactions, crash safety), the 1.1 names built on it, security checks
//! and metrics.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A scratch directory with a state directory inside it.
struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn state(&self) -> PathBuf {
        self.path().join("state")
    }

    fn write(&self, name: &str, src: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, src).expect("write script");
        p
    }

    fn run(&self, src: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
        self.write("t.aether", src);
        let mut cmd = Command::cargo_bin("aether").expect("binary");
        cmd.current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("AETHERRA_PROFILE")
            .env_remove("AETHERRA_REQUIRE_CAPABILITIES")
            .env_remove("AETHERRA_NET_STRICT")
            .env_remove("AETHERRA_NETWORK_ALLOWLIST")
            .args(["run", "t.aether", "--state-dir"])
            .arg(self.state())
            .args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("aether runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, src: &str) -> String {
        let r = self.run(src, &[], &[]);
        assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
        r.stdout
    }
}

const MEMORY: &str = "goal: \"memory\"\nmetadata:\n    requires: [\"memory\"]\n";

fn script(body: &str) -> String {
    format!("{MEMORY}{body}")
}

#[test]
fn every_memory_function_does_what_stdlib_md_says() {
    let d = Dir::new();
    let out = d.ok(&script(
        r#"let a = memory.store("disk pressure on node-3", tags=["ops", "disk"])
let b = memory.store({service: "api", p95: 120}, kind="metric")
let again = memory.store("disk pressure on node-3", tags=["pager"])
print(a == again, type(a))
let r = memory.get(a)
print(r.content, r.tags, r.kind, len(r.hash), type(r.created_at))
print(memory.get(b).content.p95, memory.get(999) == null)
let hits = memory.recall("disk node", limit=5)
print(len(hits), hits[0].id == a)
print(len(memory.recall("", tags=["ops", "pager"])), len(memory.recall("", tags=["nope"])))
print(memory.count(), memory.count(tags=["ops"]))
print(memory.forget(b), memory.forget(b), memory.count())
let s = memory.status()
print(s.entries, s.size_bytes > 0, endswith(s.path, "aether.db"))
"#,
    ));
    assert_eq!(
        out,
        "true int\n\
         disk pressure on node-3 [\"ops\", \"disk\", \"pager\"] note 64 str\n\
         120 true\n\
         1 true\n\
         1 0\n\
         2 1\n\
         true false 1\n\
         1 true true\n"
    );
}

#[test]
fn memory_survives_across_runs() {
    let d = Dir::new();
    d.ok(&script(
        "memory.store(\"remember the canary\", tags=[\"deploy\"])\n",
    ));
    let out = d.ok(&script(
        "let hits = memory.recall(\"canary\")\nprint(len(hits), hits[0].content, hits[0].tags)\n",
    ));
    assert_eq!(out, "1 remember the canary [\"deploy\"]\n");
}

#[test]
fn a_failed_transaction_rolls_back_its_memory_writes() {
    let d = Dir::new();
    let r = d.run(
        &script(
            r#"memory.store("kept")
transaction:
    - memory.store("rolled back 1")
    - memory.store("rolled back 2")
    assert false, "abort the transaction"
"#,
        ),
        &[],
        &[],
    );
    assert_eq!(r.code, 21, "{}", r.stderr);
    assert!(r.stderr.contains("abort the transaction"), "{}", r.stderr);
    let out = d.ok(&script(
        "print(memory.count(), memory.recall(\"rolled\") == [])\n",
    ));
    assert_eq!(out, "1 true\n");
    // A committed block keeps everything, nested blocks included.
    let out = d.ok(&script(
        r#"transaction:
    - memory.store("a")
    transaction:
        - memory.store("b")
print(memory.count())
"#,
    ));
    assert_eq!(out, "3\n");
}

#[test]
fn the_1_1_names_store_reflect_load_logs_and_escalate_to() {
    let d = Dir::new();
    let out = d.ok(&script(
        r#"let id = store("nightly backup finished", tag="backup")
print(memory.get(id).tags, reflect("backup")[0].id == id)
log("first line")
log("a warning", level="warning")
narrate("the story so far")
let logs = load_logs()
print(len(logs), logs[0].content.message, logs[0].tags)
print(len(load_logs(tag="warning")), load_logs(tag="warning")[0].content.message)
print(len(load_logs(limit=1)))
let e = escalate_to("oncall", "disk full")
print(memory.get(e).content, memory.get(e).tags)
"#,
    ));
    assert_eq!(
        out,
        "[\"backup\"] true\n\
         3 the story so far [\"log\", \"narrate\"]\n\
         1 a warning\n\
         1\n\
         {\"target\": \"oncall\", \"message\": \"disk full\"} [\"escalation\"]\n"
    );
}

#[test]
fn escalation_reaches_the_event_stream() {
    let d = Dir::new();
    let events = d.path().join("ev.jsonl");
    let r = d.run(
        &script("escalate_to(\"sre\", \"p1\")\n"),
        &["--events", events.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&events).expect("events");
    assert!(
        text.contains(r#""kind":"escalation","line":4,"target":"sre","message":"p1""#),
        "{text}"
    );
}

#[test]
fn security_checks() {
    let d = Dir::new();
    let src = r#"goal: "security"
require:
    capabilities: ["memory.read", "plugins.invoke"]
print(security.check_capabilities(["memory.read"]), security.check_capabilities(["memory.write"]))
print(security.check_network_policy("api.example.dev"), security.check_network_policy("evil.io"))
let v = security.verify_signature("t.aether")
print(v.ok, v.reason, v.key_id)
"#;
    let r = d.run(src, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Without AETHERRA_NET_STRICT every host is allowed.
    assert_eq!(r.stdout, "true false\ntrue true\nfalse missing null\n");
    let r = d.run(
        src,
        &[],
        &[
            ("AETHERRA_NET_STRICT", "1"),
            ("AETHERRA_NETWORK_ALLOWLIST", ".example.dev, api.other.io"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "true false\ntrue false\nfalse missing null\n");
}

#[test]
fn capabilities_are_enforced_in_profile_test() {
    let d = Dir::new();
    let r = d.run(
        "goal: \"undeclared\"\nmemory.count()\n",
        &["--profile", "test"],
        &[],
    );
    assert_eq!(r.code, 21);
    assert!(
        r.stderr.contains("needs capability `memory.read`"),
        "{}",
        r.stderr
    );
    let r = d.run(
        "goal: \"undeclared\"\nmemory.count()\n",
        &[],
        &[("AETHERRA_REQUIRE_CAPABILITIES", "1")],
    );
    assert_eq!(r.code, 21, "{}", r.stderr);
    // Declaring the module grants its capabilities.
    let r = d.run(
        &script("print(memory.count())\n"),
        &["--profile", "test"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn bad_arguments_to_module_functions_are_runtime_errors() {
    let d = Dir::new();
    let r = d.run(
        &script("memory.recall(\"x\", limit=-1)\n"),
        &["--json-status"],
        &[],
    );
    assert_eq!(r.code, 21);
    assert!(
        r.stdout.contains("recall limit must not be negative"),
        "{}",
        r.stdout
    );
    let r = d.run(&script("memory.store(\"x\", tags=[1])\n"), &[], &[]);
    assert_eq!(r.code, 21);
    assert!(
        r.stderr.contains("tags must be strings, not int"),
        "{}",
        r.stderr
    );
}

#[test]
fn metrics_are_recorded_in_the_state_database() {
    let d = Dir::new();
    let out = d.ok(
        "goal: \"metrics\"\nmetrics({latency_ms: 12.5, queue: 3})\nhomeostasis.record(\"errors\", 2)\nprint(\"ok\")\n",
    );
    assert_eq!(out, "ok\n");
    let db = d.state().join("aether.db");
    assert!(db.is_file(), "the state database exists");
}

#[test]
fn a_script_that_keeps_no_state_leaves_no_database() {
    let d = Dir::new();
    assert_eq!(d.ok("goal: \"pure\"\nprint(1 + 1)\n"), "2\n");
    assert!(!d.state().join("aether.db").exists());
}

/// SIGKILL in the middle of a stream of transactions, each writing a pair of records:
/// the database opens clean afterwards, with whole pairs only.
#[test]
fn a_killed_run_leaves_whole_transactions_only() {
    let d = Dir::new();
    d.write(
        "writer.aether",
        &script(
            r#"let i = 0
while true:
    transaction:
        - memory.store("left " + str(i), tags=["left"])
        - memory.store("right " + str(i), tags=["right"])
    i = i + 1
"#,
        ),
    );
    let bin = assert_cmd::cargo::cargo_bin("aether");
    let mut child = StdCommand::new(bin)
        .current_dir(d.path())
        .args(["run", "writer.aether", "--state-dir"])
        .arg(d.state())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    // Wait until it has committed something, then kill it mid-stream.
    let db = d.state().join("aether.db");
    let start = Instant::now();
    while !(db.exists() && start.elapsed() > Duration::from_millis(400))
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let out = d.ok(&script(
        "let l = memory.count(tags=[\"left\"])\nlet r = memory.count(tags=[\"right\"])\nprint(l == r, l > 0)\n",
    ));
    assert_eq!(out, "true true\n");
}

/// Write a plugin into `DIR/plugins/NAME` whose `run` answers with `answer` (a shell
/// snippet that prints the response line).
fn plugin(d: &Dir, name: &str, manifest_extra: &str, body: &str) {
    let dir = d.path().join("plugins").join(name);
    std::fs::create_dir_all(&dir).expect("plugin dir");
    std::fs::write(
        dir.join("plugin.json"),
        format!(
            r#"{{"name": "{name}", "version": "1.2.0", "command": ["sh", "./p.sh"], "functions": ["run"]{manifest_extra}}}"#
        ),
    )
    .expect("manifest");
    std::fs::write(dir.join("p.sh"), format!("read line\n{body}\n")).expect("script");
}

const PLUGINS: &str = "goal: \"plugins\"\nrequire:\n    capabilities: [\"plugins.invoke\"]\n";

#[test]
fn plugins_are_discovered_invoked_and_listed() {
    let d = Dir::new();
    plugin(
        &d,
        "adder",
        "",
        r#"echo '{"ok": true, "result": {"sum": 42}}'"#,
    );
    let out = d.ok(&format!(
        "{PLUGINS}print(run_plugin(\"adder\", 40, 2).sum)\nprint(plugins.list())\nprint(plugins.status(\"nope\"))\n"
    ));
    assert_eq!(
        out,
        "42\n[{\"name\": \"adder\", \"version\": \"1.2.0\", \"capabilities\": [], \"circuit\": \"closed\"}]\nnull\n"
    );
}

#[test]
fn plugin_failures_and_timeouts_have_their_codes() {
    let d = Dir::new();
    plugin(
        &d,
        "broken",
        "",
        r#"echo '{"ok": false, "error": "disk on fire"}'"#,
    );
    plugin(&d, "slow", "", "exec sleep 5");
    let r = d.run(
        &format!("{PLUGINS}on_error:\n    - when: PluginError\n      do: print(\"plugin error:\", error.message)\nrun_plugin(\"broken\")\n"),
        &[],
        &[],
    );
    assert_eq!(r.code, 21, "{}", r.stderr);
    assert!(r.stdout.starts_with("plugin error:"), "{}", r.stdout);
    assert!(r.stdout.contains("disk on fire"), "{}", r.stdout);
    let start = Instant::now();
    let r = d.run(
        &format!("{PLUGINS}plugins.invoke(\"slow\", timeout=0.3)\n"),
        &["--json-status"],
        &[],
    );
    assert_eq!(r.code, 23, "{}", r.stderr);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "the timeout stopped it"
    );
}

/// A plugin runs in its own process group (so its whole group can be killed on a timeout);
/// an interrupt sent to `aether` alone must still stop it and what it started.
#[test]
fn interrupting_aether_stops_a_running_plugin_and_its_children() {
    let d = Dir::new();
    plugin(
        &d,
        "busy",
        "",
        "sleep 30 &
echo $! > grandchild.pid
wait",
    );
    d.write(
        "t.aether",
        &format!("{PLUGINS}plugins.invoke(\"busy\", timeout=60)\n"),
    );
    let bin = assert_cmd::cargo::cargo_bin("aether");
    let mut child = StdCommand::new(bin)
        .current_dir(d.path())
        .args(["run", "t.aether", "--state-dir"])
        .arg(d.state())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn aether");
    let pid_file = d.path().join("plugins/busy/grandchild.pid");
    let start = Instant::now();
    let grandchild = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the plugin started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("aether ends");
    assert!(!exit.success());
    // The grandchild goes away (a zombie waiting for init counts as gone).
    let gone = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    };
    let start = Instant::now();
    while !gone(grandchild) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the plugin's `sleep 30` outlived the interrupt"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_circuit_breaker_opens_within_a_run() {
    let d = Dir::new();
    plugin(
        &d,
        "flaky",
        "",
        r#"echo x >> calls.txt; echo '{"ok": false, "error": "nope"}'"#,
    );
    let src = format!(
        "{PLUGINS}workflow:\n    steps:\n        - run_plugin(\"flaky\") retry=4 backoff=10ms\n"
    );
    let r = d.run(&src, &[], &[("AETHERRA_PLUGIN_CB_THRESHOLD", "2")]);
    assert_eq!(r.code, 21, "{}", r.stderr);
    assert!(r.stderr.contains("circuit"), "{}", r.stderr);
    let calls = std::fs::read_to_string(d.path().join("plugins/flaky/calls.txt")).expect("calls");
    assert_eq!(
        calls.lines().count(),
        2,
        "the open circuit stopped further calls"
    );
}

#[test]
fn plugin_policies_and_requirements() {
    let d = Dir::new();
    plugin(
        &d,
        "netty",
        r#", "capabilities": ["network"], "deterministic": false"#,
        r#"echo '{"ok": true, "result": 1}'"#,
    );
    // A capability the plugin declares must be declared by the script under profile test.
    let r = d.run(
        &format!("{PLUGINS}run_plugin(\"netty\")\n"),
        &["--profile", "test"],
        &[],
    );
    assert_eq!(r.code, 21);
    assert!(
        r.stderr.contains("needs capability `network`"),
        "{}",
        r.stderr
    );
    // mock_io: no process runs, the result is null.
    let out = d.ok(&format!(
        "{PLUGINS}policy:\n    mock_io: true\nprint(run_plugin(\"netty\"))\n"
    ));
    assert_eq!(out, "null\n");
    // deterministic: plugins not declared deterministic are refused.
    let r = d.run(
        &format!("{PLUGINS}policy:\n    deterministic: true\nrun_plugin(\"netty\")\n"),
        &[],
        &[],
    );
    assert_eq!(r.code, 21);
    assert!(
        r.stderr.contains("not declared deterministic"),
        "{}",
        r.stderr
    );
    // `require: plugins:` versions are checked before anything runs.
    let r = d.run(
        "goal: \"req\"\nrequire:\n    plugins: [\"netty>=2.0\"]\nprint(\"ran\")\n",
        &["--json-status"],
        &[],
    );
    assert_eq!(r.code, 21);
    assert!(!r.stdout.contains("ran"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("plugin requirement `netty>=2.0` is not met"),
        "{}",
        r.stdout
    );
}

const KERNEL: &str = "goal: \"kernel\"\nmetadata:\n    requires: [\"kernel\"]\n";

#[test]
fn kernel_tasks_run_by_priority_with_keyword_arguments_and_defaults() {
    let d = Dir::new();
    let out = d.ok(&format!(
        r#"{KERNEL}action work(x, scale = 10):
    print("work", x * scale)
trigger work(1)
let id = kernel.submit("work", data={{x: 2}}, priority="high")
kernel.submit(work, data={{x: 3, scale: 100}}, priority="background")
print("submitted", type(id))
"#
    ));
    assert_eq!(out, "submitted int\nwork 20\nwork 10\nwork 300\n");
}

#[test]
fn failing_unknown_late_and_overflowing_tasks_go_to_the_dead_letter_queue() {
    let d = Dir::new();
    let src = format!(
        r#"{KERNEL}action fails(n):
    assert false, "task " + str(n) + " fails"
action slow():
    sleep 2s
action ok():
    print("ok ran")
kernel.submit("fails", data={{n: 7}})
kernel.submit("nope")
kernel.submit("ok", data={{extra: 1}})
kernel.submit("slow", deadline=150ms)
kernel.submit("ok", priority="high")
kernel.submit("ok", priority="high")
"#
    );
    let start = Instant::now();
    let r = d.run(&src, &[], &[("AETHERRA_KERNEL_QSIZE_HIGH", "1")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the late task was stopped"
    );
    assert_eq!(r.stdout, "ok ran\n");
    // The dead letters persist: a second run reads them.
    let out = d.ok(&format!(
        "{KERNEL}print(kernel.status().dlq)\nfor l in kernel.dlq():\n    print(l.task, l.attempts, l.reason)\n"
    ));
    assert_eq!(
        out,
        "5\n\
         slow 1 the task ran past its deadline and was stopped\n\
         fails 3 task 7 fails\n\
         ok 1 action `ok` has no parameter `extra`\n\
         nope 1 no action named `nope`\n\
         ok 0 queue full (high holds 1)\n"
    );
}

#[test]
fn kernel_status_and_the_service_registry() {
    let d = Dir::new();
    let out = d.ok(&format!(
        r#"{KERNEL}kernel.register("indexer")
kernel.heartbeat("indexer")
let s = kernel.status()
print(s.running, s.queues.normal, s.inflight, s.processed)
let svc = kernel.services()[0]
print(svc.name, svc.status, svc.stale)
"#
    ));
    assert_eq!(
        out,
        "true {\"depth\": 0, \"capacity\": 512} 0 0\nindexer up false\n"
    );
    let r = d.run(&format!("{KERNEL}kernel.heartbeat(\"ghost\")\n"), &[], &[]);
    assert_eq!(r.code, 21);
    assert!(
        r.stderr.contains("service `ghost` is not registered"),
        "{}",
        r.stderr
    );
    // Stale after the configured window.
    let out = d.run(
        &format!("{KERNEL}sleep 1.2\nprint(kernel.services()[0].status)\n"),
        &[],
        &[("AETHERRA_REGISTRY_STALE_SEC", "1")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "stale\n");
}

fn status(d: &Dir, extra: &[&str]) -> Run {
    let out = Command::cargo_bin("aether")
        .expect("binary")
        .current_dir(d.path())
        .env_remove("AETHER_PLUGIN_PATH")
        .args(["status", "--state-dir"])
        .arg(d.state())
        .args(extra)
        .output()
        .expect("aether runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn status_reports_each_subsystem_and_never_fails() {
    let d = Dir::new();
    // Nothing has run: the subsystems that read the database say so.
    let r = status(&d, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(v["memory"]["available"], false);
    assert!(v["memory"]["reason"]
        .as_str()
        .expect("reason")
        .contains("no state database"));
    assert_eq!(v["plugins"]["available"], true);
    // After a run that stores, registers and dead-letters.
    plugin(&d, "adder", "", r#"echo '{"ok": true, "result": 1}'"#);
    d.ok(&format!(
        "{KERNEL}    requires: [\"memory\"]\nmemory.store(\"a\")\nmemory.store(\"b\")\nkernel.register(\"svc\")\nkernel.submit(\"missing_action\")\nmetrics({{x: 1}})\n"
    ).replace("    requires: [\"kernel\"]\n    requires: [\"memory\"]\n", "    requires: [\"kernel\", \"memory\"]\n"));
    let v: serde_json::Value = serde_json::from_str(&status(&d, &["--json"]).stdout).expect("JSON");
    assert_eq!(v["memory"]["entries"], 2);
    assert_eq!(v["kernel"]["dlq"], 1);
    assert_eq!(v["kernel"]["services"][0]["name"], "svc");
    // `x`, and the host's own measurements: the (dead-lettered) task's latency, and at
    // the end of the run the deepest queue and the dead-letter count.
    assert_eq!(v["homeostasis"]["metrics_collected"], 4);
    assert_eq!(v["plugins"]["installed"][0]["name"], "adder");
    assert_eq!(v["runs"]["total"], 1);
    assert_eq!(v["runs"]["last"]["code_name"], "SUCCESS");
    // Health is the mean SLO score over SLOs with data: task latency and queue depth are
    // on target (1.0); one dead letter against a maximum of 10 scores 0.9.
    assert_eq!(v["overall"]["health_percent"], 96.7);
    let text = status(&d, &[]).stdout;
    assert!(
        text.contains("runs:        1 recorded, 0 failed, last t.aether (SUCCESS)"),
        "{text}"
    );
    assert!(text.contains("memory:      2 records"), "{text}");
    assert!(
        text.contains("kernel:      1 dead letters, 1 services (0 stale)"),
        "{text}"
    );
    assert!(text.contains("plugins:     adder 1.2.0"), "{text}");
    let prom = status(&d, &["--prometheus"]).stdout;
    assert!(
        prom.contains("# TYPE aetherra_memory_entries gauge\naetherra_memory_entries 2\n"),
        "{prom}"
    );
    assert!(prom.contains("aetherra_kernel_dlq 1\n"), "{prom}");
    assert!(prom.contains("aetherra_plugins_installed 1\n"), "{prom}");
    assert!(
        prom.contains("# TYPE aetherra_system_health gauge\naetherra_system_health 0.96"),
        "{prom}"
    );
}

const HOMEOSTASIS: &str = "goal: \"homeostasis\"\nmetadata:\n    requires: [\"homeostasis\"]\n";

#[test]
fn homeostasis_slos_health_and_rate_limited_actuations() {
    let d = Dir::new();
    let out = d.ok(&format!(
        r#"{HOMEOSTASIS}print(homeostasis.health())
homeostasis.record("task_latency_ms", 80)
print(homeostasis.get_slo("task_latency_ms_p95"))
print(homeostasis.check_slo("task_latency_ms_p95"), homeostasis.check_slo("task_latency_ms_p95", 400))
print(homeostasis.actuate("restart", "kernel"))
print(homeostasis.actuate("restart", "kernel").ok)
print(self_heal("memory").ok, homeostasis.status().runlevel)
"#
    ));
    assert_eq!(
        out,
        "1.0\n\
         {\"target\": 100.0, \"maximum\": 250.0, \"breach_action\": \"auto_rollback\"}\n\
         true false\n\
         {\"ok\": true, \"reason\": \"allowed\"}\n\
         false\n\
         true ONLINE\n"
    );
    // The cooldown holds across runs: it is kept in the state database.
    let out = d.ok(&format!(
        "{HOMEOSTASIS}print(homeostasis.actuate(\"restart\", \"kernel\").reason)\n"
    ));
    assert!(out.starts_with("cooldown: "), "{out}");
    // Unknown SLO names are run-time errors that list the known ones.
    let r = d.run(
        &format!("{HOMEOSTASIS}homeostasis.check_slo(\"made_up\")\n"),
        &[],
        &[],
    );
    assert_eq!(r.code, 21);
    assert!(r.stderr.contains("made_up"), "{}", r.stderr);
}

#[test]
fn setpoints_json_overrides_the_defaults() {
    let d = Dir::new();
    std::fs::create_dir_all(d.state()).expect("state dir");
    std::fs::write(
        d.state().join("setpoints.json"),
        r#"{"slos": {"task_latency_ms_p95": {"target": 20, "maximum": 40}}}"#,
    )
    .expect("setpoints");
    let out = d.ok(&format!(
        "{HOMEOSTASIS}print(homeostasis.get_slo(\"task_latency_ms_p95\").target, homeostasis.check_slo(\"task_latency_ms_p95\", 45))\n"
    ));
    assert_eq!(out, "20.0 false\n");
    std::fs::write(d.state().join("setpoints.json"), "{not json").expect("bad");
    let r = d.run(&format!("{HOMEOSTASIS}homeostasis.health()\n"), &[], &[]);
    assert_eq!(r.code, 21);
    assert!(r.stderr.contains("setpoints.json"), "{}", r.stderr);
}

#[test]
fn the_controller_requests_the_breach_action_at_the_end_of_a_run() {
    let d = Dir::new();
    let src = format!(
        "{HOMEOSTASIS}for ms in [900, 1000, 1100]:\n    homeostasis.record(\"task_latency_ms\", ms)\nprint(homeostasis.check_slo(\"task_latency_ms_p95\"))\n"
    );
    assert_eq!(d.ok(&src), "false\n");
    let v: serde_json::Value = serde_json::from_str(&status(&d, &["--json"]).stdout).expect("JSON");
    // p95 far past the 250 ms limit: the PID output exceeds the threshold, so the SLO's
    // breach action (auto_rollback on the kernel) is requested and allowed; health drops to
    // 0 with it, so the health SLO's action (notify_chat_agents) is requested too.
    assert_eq!(v["homeostasis"]["actions_executed"], 2);
    let text = v["homeostasis"]["status"].to_string();
    assert!(
        text.contains("auto_rollback") || text.contains("notify_chat_agents"),
        "{text}"
    );
    // The next run's requests meet the cooldowns: refused, and recorded as such.
    assert_eq!(d.ok(&src), "false\n");
    let v: serde_json::Value = serde_json::from_str(&status(&d, &["--json"]).stdout).expect("JSON");
    assert_eq!(v["homeostasis"]["actions_executed"], 2);
    assert_eq!(v["homeostasis"]["actions_refused"], 2);
}

// Regressions found by review.

#[test]
fn huge_durations_are_clamped_not_a_crash() {
    let d = Dir::new();
    let r = d.run("goal: \"x\"\nsleep 1e300\n", &["--timeout", "0.2"], &[]);
    assert_eq!(r.code, 23, "{}", r.stderr);
    let r = d.run("goal: \"x\"\nprint(1)\n", &["--timeout", "1e300"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = d.ok(&format!(
        "{KERNEL}action w(n):\n    print(\"w\", n)\nkernel.submit(\"w\", data={{n: 1}}, deadline=1e300)\n"
    ));
    assert_eq!(out, "w 1\n");
    let r = d.run(
        "goal: \"x\"\naction f():\n    return 1\nworkflow:\n    steps:\n        - f timeout=1000000000000000d retry=3 backoff=1000000000000000d\n",
        &[],
        &[("AETHERRA_REGISTRY_HEARTBEAT_SEC", "1e19")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_failed_run_with_running_tasks_runs_its_handler_and_ends() {
    let d = Dir::new();
    let start = Instant::now();
    let r = d.run(
        &format!(
            "{KERNEL}on_error:\n    - when: Any\n      do: report()\naction report():\n    print(\"handler ran\")\naction slow(n):\n    sleep 1s\n    return n\nfor i in range(5):\n    trigger slow(n=i)\nsleep 100ms\nassert false, \"main fails\"\n"
        ),
        &[],
        &[],
    );
    assert_eq!(r.code, 21, "{}", r.stderr);
    assert_eq!(r.stdout, "handler ran\n");
    assert!(start.elapsed() < Duration::from_secs(5), "no hang");
    // The tasks the failed run left are dead letters, not lost.
    let out = d.ok(&format!("{KERNEL}print(kernel.status().dlq)\n"));
    assert_eq!(out, "5\n");
}

#[test]
fn a_failed_update_of_a_top_level_variable_keeps_its_value_for_handlers() {
    let d = Dir::new();
    let r = d.run(
        "goal: \"x\"\non_error:\n    - when: Any\n      do: report()\naction report():\n    print(\"s is\", s, m)\nlet s = \"abc\"\nlet m = {a: 1}\nlet n = 5\nm[\"b\"] = 2\ns = s + n\n",
        &[],
        &[],
    );
    assert_eq!(r.code, 21, "{}", r.stderr);
    assert_eq!(r.stdout, "s is abc {\"a\": 1, \"b\": 2}\n");
}

#[test]
fn recall_keeps_the_newest_among_equal_matches_under_a_limit() {
    let d = Dir::new();
    let out = d.ok(&script(
        "memory.store(\"alpha beta\")\nmemory.store(\"alpha gamma\")\nmemory.store(\"alpha delta\")\nprint(memory.recall(\"alpha\", limit=1)[0].content)\nprint(len(memory.recall(\"\\u{0} alpha\")))\n",
    ));
    assert_eq!(out, "alpha delta\n3\n");
}

#[test]
fn concurrent_runs_share_a_state_directory() {
    let d = Dir::new();
    d.write(
        "writer.aether",
        &script("for i in range(100):\n    memory.store(\"w \" + str(i) + \" \" + str(args.who))\nprint(\"ok\")\n"),
    );
    let bin = assert_cmd::cargo::cargo_bin("aether");
    // Four runs at once on a directory that does not exist yet: they create and migrate it
    // once, then take turns writing.
    let children: Vec<_> = (0..4)
        .map(|who| {
            StdCommand::new(&bin)
                .current_dir(d.path())
                .args(["run", "writer.aether", "--arg"])
                .arg(format!("who={who}"))
                .arg("--state-dir")
                .arg(d.state())
                .output_async()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("finished");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(d.ok(&script("print(memory.count())\n")), "400\n");
}

/// `Command::spawn` with piped output, as a small extension for the test above.
trait OutputAsync {
    fn output_async(&mut self) -> std::process::Child;
}

impl OutputAsync for StdCommand {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    }
}

#[test]
fn a_transaction_rollback_keeps_dead_letters() {
    let d = Dir::new();
    let r = d.run(
        &format!(
            "{KERNEL}    requires: [\"memory\"]\naction boom(n):\n    assert false, \"task boom\"\ntransaction:\n    memory.store(\"inside\")\n    kernel.submit(\"boom\", data={{n: 1}}, deadline=0s)\n    kernel.submit(\"nope\")\n    assert false, \"main fails\"\n"
        )
        .replace("    requires: [\"kernel\"]\n    requires: [\"memory\"]\n", "    requires: [\"kernel\", \"memory\"]\n"),
        &[],
        &[],
    );
    assert_eq!(r.code, 21, "{}", r.stderr);
    let out = d.ok(&format!(
        "{KERNEL}    requires: [\"memory\"]\nprint(memory.count(), len(kernel.dlq()))\n"
    )
    .replace(
        "    requires: [\"kernel\"]\n    requires: [\"memory\"]\n",
        "    requires: [\"kernel\", \"memory\"]\n",
    ));
    // The store rolled back with the block; the dead letters (a missed deadline, the task
    // left queued when the run failed) were written outside it.
    assert_eq!(out, "0 2\n");
}

#[test]
fn transactions_of_concurrent_fibers_do_not_undo_each_other() {
    let d = Dir::new();
    let r = d.run(
        &script(
            r#"action spin(seconds):
    let t0 = now()
    while now() - t0 < seconds:
        t0 = t0
action a():
    transaction:
        memory.store("from-a")
        spin(0.1)
        assert false, "a fails"
    return 1
action b():
    sleep 10ms
    transaction:
        memory.store("from-b")
        spin(0.15)
    return 2
parallel:
    y: a()
    x: b()
await x
await y
"#,
        ),
        &[],
        &[],
    );
    assert_eq!(r.code, 21, "{}", r.stderr);
    let out = d.ok(&script(
        "for r in memory.recall(\"\"):\n    if r.kind == \"note\":\n        print(r.content)\n",
    ));
    assert_eq!(out, "from-b\n");
}

#[test]
fn work_started_inside_a_transaction_commits_or_rolls_back_with_it() {
    let d = Dir::new();
    let events = d.path().join("ev.jsonl");
    let r = d.run(
        &script(
            r#"action f():
    emit "from-child" 1
    memory.store("child-write")
    return 1
transaction:
    emit "from-main" 0
    parallel:
        x: f()
    await x
    assert false, "rollback please"
"#,
        ),
        &["--events", events.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(r.code, 21, "{}", r.stderr);
    let text = std::fs::read_to_string(&events).expect("events");
    assert!(
        !text.contains("from-child") && !text.contains("from-main"),
        "{text}"
    );
    assert!(
        text.contains(r#""outcome":"rollback","events_dropped":2"#),
        "{text}"
    );
    assert_eq!(d.ok(&script("print(memory.count())\n")), "0\n");
}

#[test]
fn awaiting_earlier_writers_inside_a_transaction_is_refused() {
    // It could never finish (the work waits for the transaction to write, the transaction
    // for the work), and a transaction must not wait: A137 at check time.
    let d = Dir::new();
    let r = d.run(
        &script(
            "action w():\n    sleep 10ms\n    memory.store(\"x\")\n    return 1\nparallel:\n    a: w()\ntransaction:\n    memory.store(\"y\")\n    await a\n",
        ),
        &["--timeout", "5s"],
        &[],
    );
    assert_eq!(r.code, 25, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`await` inside a `transaction:` block of work started outside it"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_run_log_the_database_cannot_take_is_a_warning_once_not_silence() {
    let d = Dir::new();
    // A directory where the database file should be: the state cannot be opened, so the
    // run-log lines of `log` have nowhere to go. The run still succeeds.
    std::fs::create_dir_all(d.state().join("aether.db")).expect("block the database");
    let r = d.run(
        "goal: \"g\"\nlog(\"one\")\nlog(\"two\")\nprint(\"done\")\n",
        &[],
        &[],
    );
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    assert_eq!(r.stdout, "done\n");
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: a run-log line could not be written: "))
        .collect();
    assert_eq!(warnings.len(), 1, "stderr:\n{}", r.stderr);
    assert!(warnings[0].contains("cannot open"), "{}", warnings[0]);
}
