//! The scratch directory, `ledger` plugin and helpers the end-to-end tests of durable runs
//! share (tests/cli_durable*.rs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

pub(crate) struct Out {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// A scratch directory with a `ledger` plugin: `run_plugin("ledger", KEY, SECS)` appends
/// KEY to the ledger file, sleeps SECS, then answers `did KEY`; and an idempotent `keyed` plugin:
/// `run_plugin("keyed", SECS)` appends its idempotency key (`none` without one).
pub(crate) struct Dir {
    tmp: tempfile::TempDir,
}

pub(crate) const HEAD: &str = "goal: \"durable\"\nrequire:\n    capabilities: [\"plugins.invoke\", \"memory.write\"]\n    plugins: [\"ledger>=1.0.0\", \"keyed>=1.0.0\"]\n";

impl Dir {
    pub(crate) fn new() -> Dir {
        let d = Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        };
        d.plugin(
            "ledger",
            r#"{"name": "ledger", "version": "1.0.0", "command": ["sh", "./p.sh"], "functions": ["run"], "timeout": 30}"#,
            r#"read line
key=$(printf '%s' "$line" | sed -n 's/.*"args":\["\([^"]*\)",\([0-9]*\)\].*/\1/p')
secs=$(printf '%s' "$line" | sed -n 's/.*"args":\["\([^"]*\)",\([0-9]*\)\].*/\2/p')
echo "$key" >> "$LEDGER"
sleep "${secs:-0}"
echo "{\"ok\": true, \"result\": \"did $key\"}"
"#,
        );
        // `run_plugin("keyed", SECS)`: an idempotent plugin appending its idempotency key.
        d.plugin(
            "keyed",
            r#"{"name": "keyed", "version": "1.0.0", "command": ["sh", "./p.sh"], "idempotent": true, "timeout": 30}"#,
            r#"read line
key=$(printf '%s' "$line" | sed -n 's/.*"idempotency_key":"\([^"]*\)".*/\1/p')
secs=$(printf '%s' "$line" | sed -n 's/.*"args":\[\([0-9]*\)\].*/\1/p')
echo "${key:-none}" >> "$LEDGER"
sleep "${secs:-0}"
echo "{\"ok\": true, \"result\": \"key $key\"}"
"#,
        );
        d
    }

    pub(crate) fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Install plugin `name` with its manifest and `p.sh`.
    pub(crate) fn plugin(&self, name: &str, manifest: &str, script: &str) {
        let p = self.path().join("plugins").join(name);
        std::fs::create_dir_all(&p).expect("plugin dir");
        std::fs::write(p.join("plugin.json"), manifest).expect("manifest");
        std::fs::write(p.join("p.sh"), script).expect("plugin script");
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.path().join("state")
    }

    pub(crate) fn ledger(&self) -> String {
        std::fs::read_to_string(self.path().join("ledger")).unwrap_or_default()
    }

    pub(crate) fn script(&self, body: &str) {
        std::fs::write(self.path().join("w.aether"), format!("{HEAD}{body}")).expect("script");
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> StdCommand {
        let bin = assert_cmd::cargo::cargo_bin("aether");
        let mut cmd = StdCommand::new(bin);
        cmd.current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("AETHERRA_QUIET", "1")
            .env("LEDGER", self.path().join("ledger"))
            .env_remove("AETHERRA_PROFILE")
            .args(args)
            .arg("--state-dir")
            .arg(self.state());
        cmd
    }

    pub(crate) fn aether(&self, args: &[&str]) -> Out {
        let mut cmd = Command::from_std(self.cmd(args));
        let out = cmd.output().expect("aether runs");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn aether")
    }

    /// Start `run w.aether --id ID`, wait until the ledger has `lines` lines (plus
    /// `settle`), then SIGKILL it.
    pub(crate) fn kill_at(&self, id: &str, lines: usize, settle: Duration) {
        let mut child = self.spawn(&["run", "w.aether", "--id", id]);
        let start = Instant::now();
        while self.ledger().lines().count() < lines {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the ledger never reached {lines} lines: {:?}",
                self.ledger()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(settle);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    pub(crate) fn status(&self, id: &str) -> serde_json::Value {
        let out = self.aether(&["runs", "show", id, "--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str(&out.stdout).expect("json")
    }
}
