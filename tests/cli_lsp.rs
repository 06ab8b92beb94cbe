//! End-to-end tests of `aether lsp`: the real binary, spoken to in JSON-RPC over stdio.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

struct Client {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next_id: i64,
    /// Notifications seen while waiting for responses.
    pending: Vec<Value>,
}

fn read_message(out: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length:") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    out.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

impl Client {
    fn start(dir: &Path, args: &[&str]) -> Client {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("aether"))
            .arg("lsp")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aether lsp");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            while let Some(msg) = read_message(&mut stdout) {
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Client {
            child,
            stdin,
            rx,
            next_id: 0,
            pending: Vec::new(),
        }
    }

    fn raw(&mut self, body: &[u8]) {
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(body);
        self.stdin.write_all(&frame).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        let msg = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.raw(msg.to_string().as_bytes());
    }

    fn send(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        self.raw(msg.to_string().as_bytes());
        self.next_id
    }

    fn next(&mut self) -> Value {
        match self.rx.recv_timeout(WAIT) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!("no message from the server in {WAIT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the server closed its output"),
        }
    }

    /// The response to request `id` (notifications on the way are kept).
    fn response(&mut self, id: i64) -> Value {
        loop {
            let msg = self.next();
            if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                return msg;
            }
            self.pending.push(msg);
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        let resp = self.response(id);
        assert!(resp.get("error").is_none(), "{method}: {resp}");
        resp["result"].clone()
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.pending.iter().position(|m| {
                m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri
            }) {
                let msg = self.pending.remove(i);
                return msg["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
            assert!(Instant::now() < deadline, "no diagnostics for {uri}");
            let msg = self.next();
            self.pending.push(msg);
        }
    }

    fn initialize(&mut self, root: &Path, options: Value) -> Value {
        let root_uri = format!("file://{}", root.display());
        let result = self.request(
            "initialize",
            json!({"processId": null, "rootUri": root_uri, "capabilities": {}, "initializationOptions": options}),
        );
        self.notify("initialized", json!({}));
        result
    }

    fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "aether", "version": 1, "text": text}}),
        );
    }

    /// `shutdown`, then `exit`: the process ends with status 0.
    fn finish(mut self) {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert_eq!(status.code(), Some(0));
                return;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pos(line: u32, character: u32) -> Value {
    json!({"line": line, "character": character})
}

fn at(uri: &str, line: u32, character: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": pos(line, character)})
}

const SCRIPT: &str = "goal: \"triage\"\nmetadata:\n    requires: [\"memory\"]\n\nlet total = 1\naction add(n, by = 2):\n    return n + by + total\n\ntotal = add(total, by=3)\nlet found = memory.recall(\"disk\", limit=2)\nprint(totl)\nworkflow nightly:\n    steps:\n        - add(1) as first\n        - add(first)\n";

fn workspace() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let uri = format!("file://{}/flow.aether", root.display());
    (dir, uri)
}

#[test]
fn diagnostics_appear_then_clear_after_an_incremental_fix() {
    let (dir, uri) = workspace();
    let mut c = Client::start(dir.path(), &[]);
    let init = c.initialize(dir.path(), Value::Null);
    assert_eq!(init["capabilities"]["textDocumentSync"]["change"], 2);
    c.open(&uri, SCRIPT);
    let diags = c.diagnostics(&uri);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!(d["code"], "A103");
    assert_eq!(d["severity"], 1);
    assert_eq!(d["range"], json!({"start": pos(10, 6), "end": pos(10, 10)}));
    assert!(d["message"]
        .as_str()
        .unwrap()
        .starts_with("undefined variable `totl`"));
    assert!(d["codeDescription"]["href"]
        .as_str()
        .unwrap()
        .ends_with("/docs/codes/A103.md"));
    // The same as `aether check` on the same text.
    std::fs::write(dir.path().join("flow.aether"), SCRIPT).expect("write");
    let out = Command::new(assert_cmd::cargo::cargo_bin("aether"))
        .args(["check", "--format", "json", "flow.aether"])
        .current_dir(dir.path())
        .output()
        .expect("check");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let check_ids: Vec<&Value> = report[0]["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| &d["rule"])
        .collect();
    assert_eq!(check_ids, vec![&json!("A103")], "{report}");

    // Fix the typo with an incremental edit: `totl` -> `total`.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
            {"range": {"start": pos(10, 9), "end": pos(10, 9)}, "text": "a"}
        ]}),
    );
    assert_eq!(c.diagnostics(&uri), Vec::<Value>::new());
    c.finish();
}

#[test]
fn hover_completion_and_navigation() {
    let (dir, uri) = workspace();
    let mut c = Client::start(dir.path(), &[]);
    c.initialize(dir.path(), Value::Null);
    c.open(&uri, SCRIPT);
    c.diagnostics(&uri);

    // Hover on `recall` of `memory.recall`.
    let hover = c.request("textDocument/hover", at(&uri, 9, 21));
    let text = hover["contents"]["value"].as_str().expect("markdown");
    assert!(
        text.contains("memory.recall(query, limit=5, tags=[])"),
        "{text}"
    );
    assert!(text.contains("memory.read"), "{text}");
    // Hover on the action `add` where it is called.
    let hover = c.request("textDocument/hover", at(&uri, 8, 9));
    let text = hover["contents"]["value"].as_str().expect("markdown");
    assert!(text.contains("action add(n, by = ...)"), "{text}");
    assert!(text.contains("line 6"), "{text}");

    // Completion after `memory.`.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
            {"range": {"start": pos(15, 0), "end": pos(15, 0)}, "text": "memory."}
        ]}),
    );
    let items = c.request("textDocument/completion", at(&uri, 15, 7));
    let labels: Vec<&str> = items
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["label"].as_str())
        .collect();
    for want in ["recall", "store", "get", "forget"] {
        assert!(labels.contains(&want), "{labels:?}");
    }
    assert!(!labels.contains(&"len"), "{labels:?}");
    // Keyword arguments inside a call.
    let items = c.request("textDocument/completion", at(&uri, 9, 41));
    let labels: Vec<&str> = items
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["label"].as_str())
        .collect();
    assert!(labels.contains(&"tags="), "{labels:?}");

    // Definition of `total` used in the action body: the `let` on line 4.
    let def = c.request("textDocument/definition", at(&uri, 6, 22));
    assert_eq!(def["range"], json!({"start": pos(4, 4), "end": pos(4, 9)}));
    // References to `first` (the step binding) with its declaration.
    let refs = c.request(
        "textDocument/references",
        json!({"textDocument": {"uri": uri}, "position": pos(14, 14), "context": {"includeDeclaration": true}}),
    );
    let lines: Vec<u64> = refs
        .as_array()
        .expect("locations")
        .iter()
        .map(|l| l["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![13, 14]);
    // Rename the action `add`: its definition and three calls.
    let edit = c.request(
        "textDocument/rename",
        json!({"textDocument": {"uri": uri}, "position": pos(5, 8), "newName": "plus"}),
    );
    let edits = edit["changes"][&uri].as_array().expect("edits");
    assert_eq!(edits.len(), 4, "{edits:?}");
    assert!(edits.iter().all(|e| e["newText"] == "plus"));
    // A keyword is not a valid new name.
    let id = c.send(
        "textDocument/rename",
        json!({"textDocument": {"uri": uri}, "position": pos(5, 8), "newName": "let"}),
    );
    assert_eq!(c.response(id)["error"]["code"], -32602);

    // The outline.
    let symbols = c.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    let names: Vec<&str> = symbols
        .as_array()
        .expect("symbols")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, vec!["goal", "add", "nightly"]);
    let steps = symbols[2]["children"].as_array().expect("steps");
    assert_eq!(steps[0]["name"], "add as first");

    // Semantic tokens: present, five integers each.
    let tokens = c.request(
        "textDocument/semanticTokens/full",
        json!({"textDocument": {"uri": uri}}),
    );
    let data = tokens["data"].as_array().expect("data");
    assert!(!data.is_empty() && data.len() % 5 == 0);
    c.finish();
}

#[test]
fn code_actions_apply_the_checkers_fixes() {
    let (dir, uri) = workspace();
    let mut c = Client::start(dir.path(), &[]);
    c.initialize(dir.path(), Value::Null);
    c.open(&uri, SCRIPT);
    c.diagnostics(&uri);
    let actions = c.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": {"start": pos(10, 7), "end": pos(10, 7)}, "context": {"diagnostics": []}}),
    );
    let actions = actions.as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["title"], "replace with `total`");
    let edit = &actions[0]["edit"]["changes"][&uri][0];
    assert_eq!(edit["newText"], "total");
    assert_eq!(
        edit["range"],
        json!({"start": pos(10, 6), "end": pos(10, 10)})
    );

    // The legacy forms `aether migrate` rewrites: `intent:` and unquoted goal text.
    let legacy = "file:///tmp/legacy.aether";
    c.open(legacy, "intent: \"x\"\nprint(1)\n");
    c.diagnostics(legacy);
    let actions = c.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": legacy}, "range": {"start": pos(0, 0), "end": pos(0, 3)}, "context": {"diagnostics": []}}),
    );
    assert_eq!(actions[0]["edit"]["changes"][legacy][0]["newText"], "goal");
    c.finish();
}

#[test]
fn strict_and_suppressions_follow_the_workspace() {
    let (dir, uri) = workspace();
    // A warning only: the goal is missing.
    let text = "print(1)\n";
    let mut c = Client::start(dir.path(), &[]);
    c.initialize(dir.path(), json!({"strict": true}));
    c.open(&uri, text);
    let diags = c.diagnostics(&uri);
    assert_eq!(diags.len(), 1, "{diags:?}");
    // Under strict the warning fails the check: shown as an error.
    assert_eq!(diags[0]["severity"], 1);
    let rule = diags[0]["code"].as_str().expect("code").to_string();
    c.finish();

    // Suppress it by its stable fingerprint, as `aether check --format json` reports it.
    std::fs::write(dir.path().join("flow.aether"), text).expect("write");
    let out = Command::new(assert_cmd::cargo::cargo_bin("aether"))
        .args(["check", "--format", "json", "flow.aether"])
        .current_dir(dir.path())
        .output()
        .expect("check");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let finding = &report[0]["diagnostics"][0];
    assert_eq!(finding["rule"], json!(rule));
    let fp = finding["stable_fingerprint"].as_str().expect("fingerprint");
    std::fs::create_dir_all(dir.path().join(".aetherra")).expect("mkdir");
    std::fs::write(
        dir.path().join(".aetherra/workflow_suppressions.txt"),
        format!("{fp} # known\n"),
    )
    .expect("write suppressions");
    let mut c = Client::start(dir.path(), &["--strict"]);
    c.initialize(dir.path(), Value::Null);
    c.open(&uri, text);
    assert_eq!(c.diagnostics(&uri), Vec::<Value>::new());
    c.finish();
}

#[test]
fn protocol_errors_do_not_stop_the_server() {
    let (dir, uri) = workspace();
    let mut c = Client::start(dir.path(), &[]);
    // Before initialize: refused.
    let id = c.send("textDocument/hover", at(&uri, 0, 0));
    assert_eq!(c.response(id)["error"]["code"], -32002);
    c.initialize(dir.path(), Value::Null);
    // Not JSON at all.
    c.raw(b"{\"jsonrpc\": \"2.0\", \"id\": ");
    let err = c.next();
    assert_eq!(err["error"]["code"], -32700, "{err}");
    assert_eq!(err["id"], Value::Null);
    // JSON, but not a message.
    c.raw(br#"{"jsonrpc":"2.0","id":41,"params":{}}"#);
    let err = c.next();
    assert_eq!(err["error"]["code"], -32600, "{err}");
    assert_eq!(err["id"], 41);
    // An unknown method.
    let id = c.send("aether/unknown", json!({}));
    assert_eq!(c.response(id)["error"]["code"], -32601);
    // A request on a document that is not open.
    let id = c.send("textDocument/hover", at("file:///nowhere.aether", 0, 0));
    assert_eq!(c.response(id)["error"]["code"], -32602);
    // Bad parameters.
    let id = c.send("textDocument/hover", json!({"nope": 1}));
    assert_eq!(c.response(id)["error"]["code"], -32602);
    // Still serving, on half-typed input too.
    c.open(&uri, "goal: \"x\"\nlet r = memory.\nif (\n  [1, {\n");
    assert!(!c.diagnostics(&uri).is_empty());
    let hover = c.request("textDocument/hover", at(&uri, 1, 9));
    assert!(hover.is_null() || hover["contents"].is_object());
    let items = c.request("textDocument/completion", at(&uri, 1, 15));
    assert!(items.as_array().is_some_and(|a| !a.is_empty()), "{items}");
    c.finish();
}

#[test]
fn plugin_names_complete_from_manifests() {
    let (dir, _) = workspace();
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let plugin = root.join("plugins/weather");
    std::fs::create_dir_all(&plugin).expect("mkdir");
    std::fs::write(
        plugin.join("plugin.json"),
        r#"{"name": "weather", "version": "1.2.0", "command": ["./run.sh"]}"#,
    )
    .expect("manifest");
    let uri = format!("file://{}/flow.aether", root.display());
    let mut c = Client::start(dir.path(), &[]);
    c.initialize(dir.path(), Value::Null);
    c.open(&uri, "goal: \"x\"\nlet r = plugins.invoke(\"w\n");
    c.diagnostics(&uri);
    let items = c.request("textDocument/completion", at(&uri, 1, 25));
    let labels: Vec<&str> = items
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["label"].as_str())
        .collect();
    assert_eq!(labels, vec!["weather"]);
    c.finish();
}

#[test]
fn a_20000_line_file_gets_its_diagnostics() {
    let (dir, uri) = workspace();
    let mut text = String::from("goal: \"big\"\n");
    for i in 0..10_000 {
        text.push_str(&format!("let v{i} = {i} + 1\nprint(v{i})\n"));
    }
    text.push_str("print(nope)\n");
    let mut c = Client::start(dir.path(), &[]);
    c.initialize(dir.path(), Value::Null);
    c.open(&uri, &text);
    let diags = c.diagnostics(&uri);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["range"]["start"]["line"], 20_001);
    c.finish();
}

/// What `aether fmt -` makes of `text`.
fn aether_fmt(text: &str) -> String {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("aether"))
        .args(["fmt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("aether fmt");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("fmt");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Apply LSP text edits (non-overlapping, any order) to a text of single-byte characters.
fn apply(text: &str, edits: &[Value]) -> String {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |p: &Value| {
        let line = p["line"].as_u64().unwrap() as usize;
        starts.get(line).map_or(text.len(), |s| {
            s + p["character"].as_u64().unwrap() as usize
        })
    };
    let mut spans: Vec<(usize, usize, &str)> = edits
        .iter()
        .map(|e| {
            (
                offset(&e["range"]["start"]),
                offset(&e["range"]["end"]),
                e["newText"].as_str().unwrap(),
            )
        })
        .collect();
    spans.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut out = text.to_string();
    for (a, b, t) in spans {
        out.replace_range(a..b, t);
    }
    out
}

#[test]
fn formatting_gives_what_aether_fmt_gives() {
    let (dir, uri) = workspace();
    let text = "goal: \"fmt\"\nlet   a =[1,2]\nlet b={k:1}\nprint( a,b )\n";
    let mut c = Client::start(dir.path(), &[]);
    c.initialize(dir.path(), Value::Null);
    c.open(&uri, text);
    c.diagnostics(&uri);
    let edits = c.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    let want = aether_fmt(text);
    assert_ne!(want, text);
    assert_eq!(apply(text, edits.as_array().expect("edits")), want);
    // A range: only the lines it touches change.
    let edits = c.request(
        "textDocument/rangeFormatting",
        json!({"textDocument": {"uri": uri}, "range": {"start": pos(1, 0), "end": pos(1, 5)}, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    assert_eq!(
        apply(text, edits.as_array().expect("edits")),
        "goal: \"fmt\"\nlet a = [1, 2]\nlet b={k:1}\nprint( a,b )\n"
    );
    // A file that does not parse is left alone.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": "let x = (\n"}]}),
    );
    let edits = c.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    assert_eq!(edits, json!([]));
    c.finish();
}
