//! The `memory` module: records in SQLite, de-duplicated by content hash, recalled with
//! FTS5 (bm25 ranking) and filtered by tags. Every write is one SQLite transaction, or part
//! of the enclosing `transaction:` block's savepoint.

use rusqlite::{params, params_from_iter, OptionalExtension, Row};
use sha2::{Digest, Sha256};

use aether_vm::{Map, Value};

use crate::state::{State, StateError};

/// The most records one `recall` returns.
pub const MAX_LIMIT: i64 = 1000;

/// A stored record.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub id: i64,
    pub content: Value,
    pub tags: Vec<String>,
    pub kind: String,
    pub created_at: String,
    pub hash: String,
}

impl Record {
    /// `{id, content, tags, kind, created_at, hash}`, as scripts see it.
    pub fn to_value(&self) -> Value {
        let tags: Vec<Value> = self.tags.iter().map(|t| Value::from(t.as_str())).collect();
        let m: Map = [
            ("id", Value::Int(self.id)),
            ("content", self.content.clone()),
            ("tags", Value::from(tags)),
            ("kind", Value::from(self.kind.as_str())),
            ("created_at", Value::from(self.created_at.as_str())),
            ("hash", Value::from(self.hash.as_str())),
        ]
        .into_iter()
        .collect();
        Value::from(m)
    }
}

/// A JSON value as a script value (numbers that fit are ints).
pub fn from_json(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(from_json).collect::<Vec<_>>())
        }
        serde_json::Value::Object(entries) => Value::from(
            entries
                .iter()
                .map(|(k, v)| (k.as_str(), from_json(v)))
                .collect::<Map>(),
        ),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn record(row: &Row<'_>) -> rusqlite::Result<Record> {
    let content: String = row.get(1)?;
    let tags: String = row.get(2)?;
    let content = serde_json::from_str(&content)
        .map(|j| from_json(&j))
        .unwrap_or_else(|_| Value::from(content.as_str()));
    let tags: Vec<String> = serde_json::from_str(&tags).unwrap_or_default();
    Ok(Record {
        id: row.get(0)?,
        content,
        tags,
        kind: row.get(3)?,
        created_at: row.get(4)?,
        hash: row.get(5)?,
    })
}

const COLUMNS: &str = "m.id, m.content, m.tags, m.kind, m.created_at, m.hash";

/// `AND`-ed conditions that the record has every tag, with their parameters.
fn tag_filter(tags: &[String]) -> String {
    tags.iter()
        .map(|_| " AND EXISTS (SELECT 1 FROM memory_tags t WHERE t.memory_id = m.id AND t.tag = ?)")
        .collect()
}

/// Run `f` as one unit of writes: its own transaction outside a `transaction:` block (taking
/// the write lock at once with BEGIN IMMEDIATE, which waits under the busy timeout while
/// another run writes; a read that later upgrades to a write could not wait), or a
/// savepoint inside one.
fn atomically<T>(
    state: &State,
    f: impl FnOnce() -> Result<T, StateError>,
) -> Result<T, StateError> {
    let (begin, commit, undo) = if state.conn.is_autocommit() {
        ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
    } else {
        (
            "SAVEPOINT aether_write",
            "RELEASE aether_write",
            "ROLLBACK TO aether_write; RELEASE aether_write",
        )
    };
    state.conn.execute_batch(begin)?;
    match f() {
        Ok(v) => match state.conn.execute_batch(commit) {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = state.conn.execute_batch(undo);
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = state.conn.execute_batch(undo);
            Err(e)
        }
    }
}

static UNIQUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Store `content` with `tags` and `kind`; the same content and kind stored again returns
/// the existing record's id (its tags gain the new ones).
pub fn store(
    state: &State,
    content: &Value,
    tags: &[String],
    kind: &str,
) -> Result<i64, StateError> {
    store_with(state, content, tags, kind, false)
}

/// Store a record that is never merged with an equal one (run-log lines repeat).
pub fn store_unique(
    state: &State,
    content: &Value,
    tags: &[String],
    kind: &str,
) -> Result<i64, StateError> {
    store_with(state, content, tags, kind, true)
}

fn store_with(
    state: &State,
    content: &Value,
    tags: &[String],
    kind: &str,
    unique: bool,
) -> Result<i64, StateError> {
    let json = content.to_json();
    let text = match content {
        Value::Str(s) => s.to_string(),
        other => other.display(),
    };
    let hash = {
        let mut h = Sha256::new();
        h.update(kind.as_bytes());
        h.update([0]);
        h.update(json.as_bytes());
        if unique {
            let n = UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            h.update(format!("\0{}\0{}\0{n}", std::process::id(), now()).as_bytes());
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    atomically(state, || {
        let sp = &state.conn;
        let existing: Option<(i64, String)> = sp
            .query_row(
                "SELECT id, tags FROM memory WHERE hash = ?1",
                params![hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let id = match existing {
            Some((id, old)) => {
                let mut all: Vec<String> = serde_json::from_str(&old).unwrap_or_default();
                for t in tags {
                    if !all.contains(t) {
                        all.push(t.clone());
                    }
                }
                let all_json = serde_json::to_string(&all).unwrap_or_else(|_| "[]".into());
                sp.execute(
                    "UPDATE memory SET tags = ?1 WHERE id = ?2",
                    params![all_json, id],
                )?;
                id
            }
            None => {
                let mut unique: Vec<&String> = Vec::new();
                for t in tags {
                    if !unique.contains(&t) {
                        unique.push(t);
                    }
                }
                let tags_json = serde_json::to_string(&unique).unwrap_or_else(|_| "[]".into());
                sp.prepare_cached(
                "INSERT INTO memory (content, text, tags, kind, created_at, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![json, text, tags_json, kind, now(), hash])?;
                sp.last_insert_rowid()
            }
        };
        for t in tags {
            sp.execute(
                "INSERT OR IGNORE INTO memory_tags (memory_id, tag) VALUES (?1, ?2)",
                params![id, t],
            )?;
        }
        Ok(id)
    })
}

/// The record with this id.
pub fn get(state: &State, id: i64) -> Result<Option<Record>, StateError> {
    Ok(state
        .conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM memory m WHERE m.id = ?1"),
            params![id],
            record,
        )
        .optional()?)
}

/// The FTS5 query for free text: each word quoted (so nothing in it is syntax), OR-ed.
pub fn fts_query(query: &str) -> Option<String> {
    let words: Vec<String> = query
        .split_whitespace()
        .map(|w| w.replace('\0', ""))
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

/// Records matching `query` best first (bm25), or newest first for an empty query; only
/// records carrying every tag in `tags`.
pub fn recall(
    state: &State,
    query: &str,
    limit: i64,
    tags: &[String],
) -> Result<Vec<Record>, StateError> {
    if limit < 0 {
        return Err(StateError(format!(
            "recall limit must not be negative, got {limit}"
        )));
    }
    let limit = limit.min(MAX_LIMIT);
    let filter = tag_filter(tags);
    let rows = match fts_query(query) {
        Some(q) => {
            // Rank inside FTS5 and join only the winners: FTS5 computes bm25 for every
            // match, but sorting and limiting there avoids a row lookup per match.
            let filter = tags
                .iter()
                .map(|_| " AND EXISTS (SELECT 1 FROM memory_tags t WHERE t.memory_id = memory_fts.rowid AND t.tag = ?)")
                .collect::<String>();
            let sql = format!(
                "SELECT {COLUMNS} FROM (SELECT rowid AS id, rank FROM memory_fts \
                 WHERE memory_fts MATCH ?{filter} ORDER BY rank, rowid DESC LIMIT ?) f \
                 JOIN memory m ON m.id = f.id ORDER BY f.rank, m.id DESC"
            );
            let mut stmt = state.conn.prepare_cached(&sql)?;
            let mut values: Vec<rusqlite::types::Value> = vec![q.into()];
            values.extend(tags.iter().map(|t| t.clone().into()));
            values.push(limit.into());
            let rows = stmt.query_map(params_from_iter(values), record)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
        None => {
            let sql = format!(
                "SELECT {COLUMNS} FROM memory m WHERE 1{filter} ORDER BY m.id DESC LIMIT ?"
            );
            let mut stmt = state.conn.prepare_cached(&sql)?;
            let mut values: Vec<rusqlite::types::Value> =
                tags.iter().map(|t| t.clone().into()).collect();
            values.push(limit.into());
            let rows = stmt.query_map(params_from_iter(values), record)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(rows)
}

/// Delete a record; whether it existed.
pub fn forget(state: &State, id: i64) -> Result<bool, StateError> {
    Ok(state
        .conn
        .execute("DELETE FROM memory WHERE id = ?1", params![id])?
        > 0)
}

/// The number of records carrying every tag in `tags`.
pub fn count(state: &State, tags: &[String]) -> Result<i64, StateError> {
    let sql = format!("SELECT COUNT(*) FROM memory m WHERE 1{}", tag_filter(tags));
    let values: Vec<rusqlite::types::Value> = tags.iter().map(|t| t.clone().into()).collect();
    Ok(state
        .conn
        .query_row(&sql, params_from_iter(values), |r| r.get(0))?)
}

/// `{entries, size_bytes, path}`.
pub fn status(state: &State) -> Result<Value, StateError> {
    let entries = count(state, &[])?;
    let m: Map = [
        ("entries", Value::Int(entries)),
        ("size_bytes", Value::Int(state.size_bytes() as i64)),
        ("path", Value::from(state.path().display().to_string())),
    ]
    .into_iter()
    .collect();
    Ok(Value::from(m))
}

/// Run-log records (kind `log`), newest first, optionally only those with `tag`.
pub fn logs(state: &State, tag: Option<&str>, limit: i64) -> Result<Vec<Record>, StateError> {
    if limit < 0 {
        return Err(StateError(format!(
            "load_logs limit must not be negative, got {limit}"
        )));
    }
    let tags: Vec<String> = tag.map(str::to_string).into_iter().collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM memory m WHERE m.kind = 'log'{} ORDER BY m.id DESC LIMIT ?",
        tag_filter(&tags)
    );
    let mut stmt = state.conn.prepare_cached(&sql)?;
    let mut values: Vec<rusqlite::types::Value> = tags.into_iter().map(Into::into).collect();
    values.push(limit.min(MAX_LIMIT).into());
    let rows = stmt.query_map(params_from_iter(values), record)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn store_get_forget_round_trip() {
        let st = State::in_memory().expect("db");
        let id = store(&st, &s("disk pressure on node-3"), &tags(&["ops"]), "note").expect("store");
        let r = get(&st, id).expect("get").expect("present");
        assert_eq!(r.content, s("disk pressure on node-3"));
        assert_eq!(r.tags, vec!["ops"]);
        assert_eq!(r.kind, "note");
        assert_eq!(r.hash.len(), 64);
        assert!(forget(&st, id).expect("forget"));
        assert!(!forget(&st, id).expect("forget again"));
        assert_eq!(get(&st, id).expect("get"), None);
    }

    #[test]
    fn the_same_content_is_stored_once_and_gains_tags() {
        let st = State::in_memory().expect("db");
        let a = store(&st, &s("x"), &tags(&["a"]), "note").expect("store");
        let b = store(&st, &s("x"), &tags(&["b", "a"]), "note").expect("store");
        assert_eq!(a, b);
        assert_eq!(
            get(&st, a).expect("get").expect("present").tags,
            vec!["a", "b"]
        );
        let c = store(&st, &s("x"), &[], "log").expect("other kind");
        assert_ne!(a, c);
        assert_eq!(count(&st, &[]).expect("count"), 2);
    }

    #[test]
    fn recall_ranks_by_relevance_and_filters_by_every_tag() {
        let st = State::in_memory().expect("db");
        store(
            &st,
            &s("database connection refused"),
            &tags(&["db", "incident"]),
            "note",
        )
        .expect("1");
        store(&st, &s("cache warm"), &tags(&["cache"]), "note").expect("2");
        store(
            &st,
            &s("database database slow query"),
            &tags(&["db"]),
            "note",
        )
        .expect("3");
        let hits = recall(&st, "database", 5, &[]).expect("recall");
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].content, s("database database slow query"));
        let hits = recall(&st, "database", 5, &tags(&["db", "incident"])).expect("recall");
        assert_eq!(hits.len(), 1);
        // Syntax characters are words, not FTS5 operators.
        assert!(recall(&st, "\"AND OR NEAR( *", 5, &[])
            .expect("safe")
            .is_empty());
        let newest = recall(&st, "  ", 2, &[]).expect("newest");
        assert_eq!(newest[0].content, s("database database slow query"));
        assert_eq!(newest.len(), 2);
        assert!(recall(&st, "x", -1, &[]).is_err());
    }

    #[test]
    fn structured_content_round_trips() {
        let st = State::in_memory().expect("db");
        let v: Map = [
            ("service", s("api")),
            ("p95", Value::Float(12.5)),
            ("n", Value::Int(3)),
        ]
        .into_iter()
        .collect();
        let id = store(&st, &Value::from(v.clone()), &[], "note").expect("store");
        assert_eq!(
            get(&st, id).expect("get").expect("present").content,
            Value::from(v)
        );
        assert_eq!(recall(&st, "api", 5, &[]).expect("recall").len(), 1);
    }
}
