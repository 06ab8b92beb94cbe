//! A real editor client: Neovim's built-in LSP client, headless, attached to `aether lsp`.
//! Skipped (with a printed reason) only when `nvim` is not installed; `.ci/run` installs it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn nvim_available() -> bool {
    Command::new("nvim")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run the Lua script headless with these variables; kill Neovim if it hangs.
fn run_nvim(script: &str, dir: &Path, vars: &[(&str, String)]) {
    let mut child = Command::new("nvim")
        .args(["--headless", "--clean", "-n", "-c"])
        .arg(format!("luafile {script}"))
        .current_dir(dir)
        .envs(vars.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nvim");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait for nvim").is_some() {
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nvim did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn neovim_client_receives_the_diagnostic_of_a_typo_and_formats_as_aether_fmt() {
    if !nvim_available() {
        eprintln!("skipping: nvim is not installed (apt-get install neovim; .ci/run does)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("typo.aether");
    let text = "goal: \"typo\"\nlet   x =[1,2]\nprint(lenn( x ))\n";
    std::fs::write(&file, text).expect("write");
    let out = dir.path().join("diagnostics.txt");
    let formatted = dir.path().join("formatted.txt");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/editor/nvim_attach.lua");
    run_nvim(
        &script.display().to_string(),
        dir.path(),
        &[
            (
                "AETHER_BIN",
                assert_cmd::cargo::cargo_bin("aether").display().to_string(),
            ),
            ("AETHER_FILE", file.display().to_string()),
            ("AETHER_OUT", out.display().to_string()),
            ("AETHER_FORMATTED", formatted.display().to_string()),
        ],
    );
    let got = std::fs::read_to_string(&out).expect("the script wrote its diagnostics");
    assert_eq!(got, "A101 2 unknown function `lenn`\n");
    // The buffer after formatting through the client is what `aether fmt -` prints.
    let mut fmt = Command::new(assert_cmd::cargo::cargo_bin("aether"))
        .args(["fmt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("aether fmt");
    std::io::Write::write_all(&mut fmt.stdin.take().expect("stdin"), text.as_bytes())
        .expect("write stdin");
    let want = fmt.wait_with_output().expect("fmt output");
    let want = String::from_utf8(want.stdout).expect("utf-8");
    assert_ne!(want, text);
    let got = std::fs::read_to_string(&formatted).expect("the script wrote the buffer");
    assert_eq!(got, want);
}
