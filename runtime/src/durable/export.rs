//! `aether runs export / verify`: a run's row and journal as JSON lines in a SHA-256 hash
//! chain (each line carries the hash of the line before), tamper-evident evidence for an audit
//! (docs/durable.md, "Export and verify"). Signing is the CLI's, with aether-sign.

use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use super::{hex, Entry, RunRow};

/// The `prev` of the first line.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A run's row as JSON (`runs show --json`, export).
pub fn row_json(r: &RunRow) -> Json {
    json!({
        "id": r.id,
        "file": r.file,
        "script_sha256": r.script_sha256,
        "args": serde_json::from_str::<Json>(&r.args).unwrap_or(Json::Null),
        "status": r.status,
        "owner_host": r.owner_host,
        "owner_pid": r.owner_pid,
        "lease_until": r.lease_until,
        "result": r.result.as_deref().and_then(|t| serde_json::from_str::<Json>(t).ok()),
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "waiting_for": r.waiting_for,
        "wake_at": r.wake_at,
    })
}

/// A journal entry as JSON (`runs show --journal --json`, export).
pub fn entry_json(e: &Entry) -> Json {
    json!({
        "fiber": e.fiber, "seq": e.seq, "completion": e.completion,
        "name": e.name, "digest": e.digest, "kind": e.kind,
        "result": e.result.as_deref().and_then(|t| serde_json::from_str::<Json>(t).ok()),
        "started_at": e.started_at, "ended_at": e.ended_at,
    })
}

fn sha256_hex(line: &str) -> String {
    hex(&Sha256::digest(line.as_bytes()))
}

/// The export text: line 1 the run, one line per journal entry, a last `end` line with the
/// count; line `n` carries `"n": n` and `"prev"`: the SHA-256 (hex) of line `n-1`'s text.
pub fn export_lines(row: &RunRow, entries: &[Entry]) -> String {
    let mut out = String::new();
    let mut prev = GENESIS.to_string();
    let mut n = 0;
    let mut push = |kind: &str, field: &str, body: Json| {
        n += 1;
        let line = json!({"n": n, "prev": prev, "type": kind, field: body}).to_string();
        prev = sha256_hex(&line);
        out.push_str(&line);
        out.push('\n');
    };
    push("run", "run", row_json(row));
    for e in entries {
        push("entry", "entry", entry_json(e));
    }
    push("end", "entries", json!(entries.len()));
    out
}

/// What a valid export holds.
#[derive(Debug, PartialEq)]
pub struct Verified {
    pub run_id: String,
    pub entries: usize,
}

/// Check the hash chain of an export's lines (`first_line` is the file line number of the
/// first of them, after a signature header). An error names the first bad file line.
pub fn verify_chain(text: &str, first_line: usize) -> Result<Verified, String> {
    let mut prev = GENESIS.to_string();
    let mut run_id = None;
    let mut entries = 0usize;
    let mut ended = false;
    for (i, line) in text.lines().enumerate() {
        let at = first_line + i;
        let n = i + 1;
        if ended {
            return Err(format!("line {at}: a line after the `end` line"));
        }
        let j: Json = serde_json::from_str(line)
            .map_err(|e| format!("line {at}: not a JSON line of an export ({e})"))?;
        if j.get("n").and_then(Json::as_u64) != Some(n as u64) {
            return Err(format!(
                "line {at}: out of place (it says it is line {} of the export, expected {n}): a line was removed, added or moved",
                j.get("n").map_or("none".to_string(), Json::to_string)
            ));
        }
        if j.get("prev").and_then(Json::as_str) != Some(prev.as_str()) {
            let which = if n == 1 {
                format!("line {at}: the chain does not start at the genesis hash")
            } else {
                format!(
                    "line {}: altered (its SHA-256 does not match the `prev` of line {at})",
                    at - 1
                )
            };
            return Err(which);
        }
        match (n, j.get("type").and_then(Json::as_str)) {
            (1, Some("run")) => {
                run_id = j
                    .pointer("/run/id")
                    .and_then(Json::as_str)
                    .map(str::to_string);
            }
            (1, _) => return Err(format!("line {at}: the first line must be the run")),
            (_, Some("entry")) => entries += 1,
            (_, Some("end")) => {
                if j.get("entries").and_then(Json::as_u64) != Some(entries as u64) {
                    return Err(format!(
                        "line {at}: the `end` line counts {} entries, the export holds {entries}",
                        j.get("entries").map_or("no".to_string(), Json::to_string)
                    ));
                }
                ended = true;
            }
            _ => return Err(format!("line {at}: unknown line type")),
        }
        prev = sha256_hex(line);
    }
    if !ended {
        return Err(format!(
            "line {}: the export ends without its `end` line (truncated)",
            first_line + text.lines().count()
        ));
    }
    let run_id = run_id.ok_or(format!("line {first_line}: the run has no id"))?;
    Ok(Verified { run_id, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        let row = RunRow {
            id: "r1".into(),
            file: "/w.aether".into(),
            script_sha256: "ab".into(),
            args: "{}".into(),
            status: "succeeded".into(),
            owner_host: None,
            owner_pid: None,
            lease_until: None,
            result: None,
            created_at: "t0".into(),
            updated_at: "t1".into(),
            waiting_for: Vec::new(),
            wake_at: None,
        };
        let e = |seq| Entry {
            fiber: "0".into(),
            seq,
            completion: Some(seq),
            name: "run_plugin".into(),
            digest: "d".into(),
            kind: "outcome".into(),
            result: Some("{\"ok\":1}".into()),
            started_at: "t".into(),
            ended_at: None,
        };
        export_lines(&row, &[e(1), e(2), e(3)])
    }

    #[test]
    fn a_clean_export_verifies() {
        let v = verify_chain(&sample(), 1).expect("valid");
        assert_eq!(v.entries, 3);
        assert_eq!(v.run_id, "r1");
    }

    #[test]
    fn tampered_removed_reordered_and_truncated_lines_are_named() {
        let text = sample();
        let lines: Vec<&str> = text.lines().collect();
        let join = |ls: Vec<&str>| ls.join("\n") + "\n";
        let tampered = text.replacen("\"ok\":1", "\"ok\":2", 2);
        let err = verify_chain(&tampered, 1).expect_err("tampered");
        assert!(err.starts_with("line 2: altered"), "{err}");
        let mut removed = lines.clone();
        removed.remove(2);
        assert!(verify_chain(&join(removed), 1)
            .expect_err("removed")
            .starts_with("line 3: out of place"));
        let mut moved = lines.clone();
        moved.swap(1, 2);
        assert!(verify_chain(&join(moved), 1)
            .expect_err("moved")
            .starts_with("line 2: out of place"));
        let cut = join(lines[..4].to_vec());
        assert!(verify_chain(&cut, 2)
            .expect_err("cut")
            .contains("without its `end` line"));
        assert!(verify_chain("garbage\n", 1)
            .expect_err("garbage")
            .starts_with("line 1: not a JSON line"));
    }
}
