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

/// Refuses a value that nests lists and maps deeper than [`aether_vm::JSON_MAX_DEPTH`]:
/// carried as JSON it could not be read back (it would have become `null`).
pub fn json_ready(v: &Value, what: &str) -> Result<(), String> {
    if v.nests_deeper_than(aether_vm::JSON_MAX_DEPTH) {
        return Err(format!(
            "{what} nests lists and maps more than {} levels deep, more than JSON carries here (json_encode it to a string)",
            aether_vm::JSON_MAX_DEPTH
        ));
    }
    Ok(())
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
    // Prepared once per connection: a short run stores a record per log line.
    state.conn.prepare_cached(begin)?.execute([])?;
    match f() {
        Ok(v) => match state
            .conn
            .prepare_cached(commit)
            .and_then(|mut st| st.execute([]))
        {
            Ok(_) => Ok(v),
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

/// Lower-case hexadecimal digits of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
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
    json_ready(content, "the stored value").map_err(StateError)?;
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
        hex(&h.finalize())
    };
    atomically(state, || {
        let sp = &state.conn;
        let existing: Option<(i64, String)> = sp
            .prepare_cached("SELECT id, tags FROM memory WHERE hash = ?1")?
            .query_row(params![hash], |r| Ok((r.get(0)?, r.get(1)?)))
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
                sp.prepare_cached("UPDATE memory SET tags = ?1 WHERE id = ?2")?
                    .execute(params![all_json, id])?;
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
            sp.prepare_cached(
                "INSERT OR IGNORE INTO memory_tags (memory_id, tag) VALUES (?1, ?2)",
            )?
            .execute(params![id, t])?;
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

/// The words of a free-text query: split at whitespace, NULs dropped.
fn query_words(query: &str) -> Vec<String> {
    query
        .split_whitespace()
        .map(|w| w.replace('\0', ""))
        .filter(|w| !w.is_empty())
        .collect()
}

/// One word as an FTS5 phrase, quoted so nothing in it is syntax.
fn phrase(word: &str) -> String {
    format!("\"{}\"", word.replace('"', "\"\""))
}

/// The words as phrases, OR-ed, in the order given.
fn any_of<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words
        .into_iter()
        .map(phrase)
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The FTS5 query for free text: each word quoted (so nothing in it is syntax), OR-ed.
pub fn fts_query(query: &str) -> Option<String> {
    let words = query_words(query);
    (!words.is_empty()).then(|| any_of(words.iter().map(String::as_str)))
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
    if query_words(query).is_empty() {
        let filter = tag_filter(tags);
        let sql =
            format!("SELECT {COLUMNS} FROM memory m WHERE 1{filter} ORDER BY m.id DESC LIMIT ?");
        let mut stmt = state.conn.prepare_cached(&sql)?;
        let mut values: Vec<rusqlite::types::Value> =
            tags.iter().map(|t| t.clone().into()).collect();
        values.push(limit.into());
        let rows = stmt.query_map(params_from_iter(values), record)?;
        return Ok(rows.collect::<Result<Vec<_>, _>>()?);
    }
    // The ranking and the records come from one snapshot: the split plan below runs
    // several queries, and a write between them would mix two states' statistics.
    read_snapshot(state, || {
        let (ids, _) = ranked(state, query, limit, tags)?;
        let mut stmt = state
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM memory m WHERE m.id = ?1"))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = stmt.query_row(params![id], record).optional()? {
                out.push(r);
            }
        }
        Ok(out)
    })
}

/// Run `f` inside one read transaction (a single snapshot of the database), or inside the
/// enclosing one.
fn read_snapshot<T>(
    state: &State,
    f: impl FnOnce() -> Result<T, StateError>,
) -> Result<T, StateError> {
    if !state.conn.is_autocommit() {
        return f();
    }
    // Cached statements: recall is hot, and these would otherwise be parsed each time.
    state.conn.prepare_cached("BEGIN")?.execute([])?;
    let result = f().and_then(|v| {
        state.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(v)
    });
    if result.is_err() && !state.conn.is_autocommit() {
        let _ = state.conn.execute_batch("ROLLBACK");
    }
    result
}

/// How `ranked` reached its answer (the tests check that every way is exercised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Plan {
    /// One FTS5 query over every word.
    Full,
    /// The rare words' matches, rescored where they also hold a common word.
    Split,
    /// The same, with the records holding two common words as candidates too.
    SplitPaired,
    /// The split could not prove its answer, so the full query gave it.
    SplitThenFull,
}

/// bm25's k1 in FTS5 (b is 0.75; only k1 enters the bound below).
const BM25_K1: f64 = 1.2;
/// A word is common when more than max(COMMON_MIN, N / COMMON_DIVISOR) records hold it.
const COMMON_MIN: i64 = 500;
const COMMON_DIVISOR: f64 = 100.0;
/// Queries of more words take the full plan (each word costs a count).
const SPLIT_MAX_WORDS: usize = 32;
/// Records holding two common words are looked for when the query has at most this many
/// distinct common words (one FTS5 AND per pair)...
const PAIRED_MAX_WORDS: usize = 4;
/// ... and scored when there are at most this many of them.
const PAIRED_MAX_RECORDS: usize = 2000;
/// Relative slack for floating-point rounding in the bound: with at most SPLIT_MAX_WORDS
/// terms a bm25 sum is exact to within 1e-14 relative.
const ROUNDING: f64 = 1e-9;

/// `AND`-ed conditions on `memory_fts` that the record has every tag.
fn fts_tag_filter(tags: &[String]) -> String {
    tags.iter()
        .map(|_| " AND EXISTS (SELECT 1 FROM memory_tags t WHERE t.memory_id = memory_fts.rowid AND t.tag = ?)")
        .collect()
}

/// The ids of the best `limit` records for `query` (which has words), best first, and the
/// plan that found them.
fn ranked(
    state: &State,
    query: &str,
    limit: i64,
    tags: &[String],
) -> Result<(Vec<i64>, Plan), StateError> {
    let words = query_words(query);
    match ranked_split(state, &words, limit, tags)? {
        Split::Answer(ids) => Ok((ids, Plan::Split)),
        Split::AnswerPaired(ids) => Ok((ids, Plan::SplitPaired)),
        Split::NotApplicable => Ok((ranked_full(state, &words, limit, tags)?, Plan::Full)),
        Split::Unproven => Ok((
            ranked_full(state, &words, limit, tags)?,
            Plan::SplitThenFull,
        )),
    }
}

/// The full plan: one FTS5 query OR-ing every word, ranked inside FTS5. FTS5 computes
/// bm25 for every match, but sorting and limiting there avoids a row lookup per match.
fn ranked_full(
    state: &State,
    words: &[String],
    limit: i64,
    tags: &[String],
) -> Result<Vec<i64>, StateError> {
    let sql = format!(
        "SELECT rowid, rank FROM memory_fts WHERE memory_fts MATCH ?{} \
         ORDER BY rank, rowid DESC LIMIT ?",
        fts_tag_filter(tags)
    );
    let mut stmt = state.conn.prepare_cached(&sql)?;
    let mut values: Vec<rusqlite::types::Value> =
        vec![any_of(words.iter().map(String::as_str)).into()];
    values.extend(tags.iter().map(|t| t.clone().into()));
    values.push(limit.into());
    let rows = stmt.query_map(params_from_iter(values), |r| r.get::<_, i64>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Every match of the FTS5 expression `expr` carrying every tag, with its bm25 `rank`.
fn scored(state: &State, expr: &str, tags: &[String]) -> Result<Vec<(i64, f64)>, StateError> {
    let sql = format!(
        "SELECT rowid, rank FROM memory_fts WHERE memory_fts MATCH ?{}",
        fts_tag_filter(tags)
    );
    let mut stmt = state.conn.prepare_cached(&sql)?;
    let mut values: Vec<rusqlite::types::Value> = vec![expr.to_string().into()];
    values.extend(tags.iter().map(|t| t.clone().into()));
    let rows = stmt.query_map(params_from_iter(values), |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The rank of each record among `ids` that matches `expr`. The `+` keeps
/// the id condition from FTS5: SQLite checks it on each match before asking for `rank`,
/// so FTS5 walks the doclists once but scores only these records.
fn scored_among(state: &State, expr: &str, ids: &[i64]) -> Result<Vec<(i64, f64)>, StateError> {
    let mut stmt = state.conn.prepare_cached(
        "SELECT rowid, rank FROM memory_fts WHERE memory_fts MATCH ?1 \
         AND +rowid IN (SELECT value FROM json_each(?2))",
    )?;
    let ids = format!(
        "[{}]",
        ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    );
    let rows = stmt.query_map(params![expr, ids], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The ids of every match of `expr` carrying every tag (FTS5 computes no rank).
fn matching(state: &State, expr: &str, tags: &[String]) -> Result<Vec<i64>, StateError> {
    let sql = format!(
        "SELECT rowid FROM memory_fts WHERE memory_fts MATCH ?{}",
        fts_tag_filter(tags)
    );
    let mut stmt = state.conn.prepare_cached(&sql)?;
    let mut values: Vec<rusqlite::types::Value> = vec![expr.to_string().into()];
    values.extend(tags.iter().map(|t| t.clone().into()));
    let rows = stmt.query_map(params_from_iter(values), |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// How many records hold `word` (as FTS5 counts a phrase's matches for bm25), counting
/// no further than `cap` when given.
fn doc_count(state: &State, word: &str, cap: Option<i64>) -> Result<i64, StateError> {
    let n = match cap {
        Some(cap) => state
            .conn
            .prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM memory_fts WHERE memory_fts MATCH ?1 LIMIT ?2)",
            )?
            .query_row(params![phrase(word), cap], |r| r.get(0))?,
        None => state
            .conn
            .prepare_cached("SELECT count(*) FROM memory_fts WHERE memory_fts MATCH ?1")?
            .query_row(params![phrase(word)], |r| r.get(0))?,
    };
    Ok(n)
}

/// The outcome of the split plan.
enum Split {
    /// The best `limit` ids, proven equal to the full plan's.
    Answer(Vec<i64>),
    /// The same, proven with the records holding two common words as candidates.
    AnswerPaired(Vec<i64>),
    /// The query has no rare or no common word (or is otherwise unsuited).
    NotApplicable,
    /// The candidates could not be proven to be the best.
    Unproven,
}

/// The split plan: the full plan's answer without scoring every record that holds a common
/// word.
///
/// bm25 in FTS5 is a sum over the query's phrases, in query order, of terms that each
/// depend only on that phrase's frequency in the record, the record's length, and corpus
/// statistics (N, average length, the phrase's document count n):
/// `-Σ idf·f·(k1+1) / (f + k1·(1-b+b·len/avglen))`, `idf = ln((N-n+0.5)/(n+0.5))`
/// (1e-6 when not positive). A phrase absent from a record adds exactly 0.0. So:
///
/// - Words are *rare* or *common* by document count. A = the rare words OR-ed, in query
///   order: few matches, and the rank of a match that holds no common word is bit for bit
///   its full score.
/// - The candidates are A's matches. Those holding a common word are rescored: by B =
///   (rare words OR-ed) AND (common words OR-ed), each word once, when the query lists
///   all its rare words before its common ones (or after: B then lists the commons
///   first), so B's phrase order is the query's and its rank is bit for bit the full
///   score; when the two kinds interleave, by the full query restricted to the candidates'
///   ids (`+rowid IN`, which FTS5 does not see, so only those rows are scored).
/// - A record holding only common words scores no better than -UB, UB = Σ over common
///   phrases of idf·(k1+1) (each term's supremum), with N over-estimated by the id range
///   (a larger N only raises idf) and n under-estimated (first by the threshold, then
///   exactly when that is not enough).
/// - When that bound is too loose and the query has two to four distinct common words,
///   the records holding two of them (found without scoring, then scored by the full
///   query restricted to their ids) join the candidates; every other record holds at
///   most one distinct common word, and UB becomes the largest of those words' Σ.
///
/// With at least `limit` candidates and the `limit`-th scoring strictly better than -UB,
/// no other record can enter the top `limit`, and the candidates sorted by (score, id
/// descending) are exactly the full plan's answer (ties included, as every candidate's
/// score is the full query's own value). Otherwise the caller runs the full plan.
fn ranked_split(
    state: &State,
    words: &[String],
    limit: i64,
    tags: &[String],
) -> Result<Split, StateError> {
    // One distinct word is rare or common, never both. A word with no ASCII letter or
    // digit may hold no token at all (an empty phrase): leave those queries to the full
    // plan.
    if limit == 0
        || words.iter().all(|w| *w == words[0])
        || words.len() > SPLIT_MAX_WORDS
        || words
            .iter()
            .any(|w| !w.bytes().any(|b| b.is_ascii_alphanumeric()))
    {
        return Ok(Split::NotApplicable);
    }
    let limit = limit as usize;
    let (lo, hi): (Option<i64>, Option<i64>) = state
        .conn
        .prepare_cached("SELECT (SELECT min(id) FROM memory), (SELECT max(id) FROM memory)")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(Split::NotApplicable);
    };
    // Every indexed record is a memory row, with a distinct id: N <= hi - lo + 1.
    let n_max = hi as f64 - lo as f64 + 1.0;
    let threshold = COMMON_MIN.max((n_max / COMMON_DIVISOR) as i64);

    // Classify by document count, counting no further than just past the threshold.
    let mut counts: Vec<(&str, i64)> = Vec::new();
    for w in words {
        if !counts.iter().any(|(c, _)| c == w) {
            counts.push((w, doc_count(state, w, Some(threshold + 1))?));
        }
    }
    let count_of = |counts: &[(&str, i64)], w: &str| {
        counts.iter().find(|(c, _)| *c == w).map_or(0, |(_, n)| *n)
    };
    let common: Vec<bool> = words
        .iter()
        .map(|w| count_of(&counts, w) > threshold)
        .collect();
    if common.iter().all(|&c| c) || !common.iter().any(|&c| c) {
        return Ok(Split::NotApplicable);
    }
    let of_kind = |kind: bool| {
        words
            .iter()
            .zip(&common)
            .filter(move |(_, c)| **c == kind)
            .map(|(w, _)| w.as_str())
    };
    let full_expr = any_of(words.iter().map(String::as_str));
    let rare_expr = any_of(of_kind(false));
    let common_expr = any_of(of_kind(true));
    let first = |kind: bool| common.iter().position(|c| *c == kind).unwrap_or(0);
    let last = |kind: bool| common.iter().rposition(|c| *c == kind).unwrap_or(0);
    let commons_first = last(true) < first(false);
    let rares_first = last(false) < first(true);

    let mut cands = scored(state, &rare_expr, tags)?;
    let mut rescored = if commons_first {
        scored(state, &format!("({common_expr}) AND ({rare_expr})"), tags)?
    } else if rares_first {
        scored(state, &format!("({rare_expr}) AND ({common_expr})"), tags)?
    } else {
        let ids = cands.iter().map(|(id, _)| *id).collect::<Vec<_>>();
        scored_among(state, &full_expr, &ids)?
    };
    rescored.sort_unstable_by_key(|&(id, _)| id);
    for (id, score) in &mut cands {
        if let Ok(i) = rescored.binary_search_by_key(id, |&(r, _)| r) {
            *score = rescored[i].1;
        }
    }
    let by_rank = |a: &(i64, f64), b: &(i64, f64)| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0));
    cands.sort_by(by_rank);

    // Whether the limit-th candidate (rounded towards zero) beats every score down to
    // -bound (rounded away from zero).
    let beats = |cands: &[(i64, f64)], bound: f64| {
        cands
            .get(limit - 1)
            .is_some_and(|c| c.1 * (1.0 - ROUNDING) < -bound * (1.0 + ROUNDING))
    };
    // The most a common word's phrases (one per time the word appears in the query) add.
    let most = |w: &str, n: i64| {
        let n = n as f64;
        let idf = ((n_max - n + 0.5) / (n + 0.5)).ln().max(1e-6);
        idf * (BM25_K1 + 1.0) * of_kind(true).filter(|c| *c == w).count() as f64
    };
    let mut distinct: Vec<&str> = Vec::new();
    for w in of_kind(true) {
        if !distinct.contains(&w) {
            distinct.push(w);
        }
    }
    // First with each common word's count at its lower bound (just past the threshold),
    // which often suffices; then with the exact counts.
    let loose: f64 = distinct.iter().map(|w| most(w, threshold + 1)).sum();
    if beats(&cands, loose) {
        return Ok(Split::Answer(best(cands, limit)));
    }
    // Past half the records a word's idf is at its floor (1e-6) anyway: no need to count
    // further.
    let half = (n_max / 2.0) as i64 + 1;
    let mut exact: Vec<(&str, i64)> = Vec::new();
    for w in &distinct {
        exact.push((w, doc_count(state, w, Some(half))?));
    }
    if beats(&cands, exact.iter().map(|(w, n)| most(w, *n)).sum()) {
        return Ok(Split::Answer(best(cands, limit)));
    }
    // Several common words: a record holding two of them may be what outscores the
    // candidates. Those records (few, unless the words go together) join the candidates,
    // scored by the full query; every other record holds one common word and no rare
    // one, and scores no better than that word's most.
    if distinct.len() < 2 || distinct.len() > PAIRED_MAX_WORDS {
        return Ok(Split::Unproven);
    }
    let mut pairs = Vec::new();
    for (i, a) in distinct.iter().enumerate() {
        for b in &distinct[i + 1..] {
            pairs.push(format!("({} AND {})", phrase(a), phrase(b)));
        }
    }
    let mut known: Vec<i64> = cands.iter().map(|(id, _)| *id).collect();
    known.sort_unstable();
    let paired: Vec<i64> = matching(state, &pairs.join(" OR "), tags)?
        .into_iter()
        .filter(|id| known.binary_search(id).is_err())
        .collect();
    if paired.len() > PAIRED_MAX_RECORDS {
        return Ok(Split::Unproven);
    }
    if !paired.is_empty() {
        cands.extend(scored_among(state, &full_expr, &paired)?);
        cands.sort_by(by_rank);
    }
    let single = exact.iter().map(|(w, n)| most(w, *n)).fold(0.0, f64::max);
    if beats(&cands, single) {
        return Ok(Split::AnswerPaired(best(cands, limit)));
    }
    Ok(Split::Unproven)
}

/// The ids of the first `limit` of candidates sorted best first.
fn best(mut cands: Vec<(i64, f64)>, limit: usize) -> Vec<i64> {
    cands.truncate(limit);
    cands.into_iter().map(|(id, _)| id).collect()
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
        .prepare_cached(&sql)?
        .query_row(params_from_iter(values), |r| r.get(0))?)
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

    /// The ids recall returned before the split plan existed: the one-statement query,
    /// verbatim.
    fn old_recall_ids(st: &State, query: &str, limit: i64, tags: &[String]) -> Vec<i64> {
        let q = fts_query(query).expect("words");
        let filter = tags
            .iter()
            .map(|_| " AND EXISTS (SELECT 1 FROM memory_tags t WHERE t.memory_id = memory_fts.rowid AND t.tag = ?)")
            .collect::<String>();
        let sql = format!(
            "SELECT {COLUMNS} FROM (SELECT rowid AS id, rank FROM memory_fts \
             WHERE memory_fts MATCH ?{filter} ORDER BY rank, rowid DESC LIMIT ?) f \
             JOIN memory m ON m.id = f.id ORDER BY f.rank, m.id DESC"
        );
        let mut stmt = st.conn.prepare(&sql).expect("prepare");
        let mut values: Vec<rusqlite::types::Value> = vec![q.into()];
        values.extend(tags.iter().map(|t| t.clone().into()));
        values.push(limit.min(MAX_LIMIT).into());
        let rows = stmt
            .query_map(params_from_iter(values), record)
            .expect("query");
        rows.map(|r| r.expect("row").id).collect()
    }

    /// A deterministic pseudo-random sequence (64-bit LCG, high bits).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.next() % 100 < percent
        }
    }

    const CORPUS: usize = 3000;

    /// 3,000 records (so a word is common past 500 records): common words (`alpha` in 40%,
    /// `gamma` 25%, `beta` 20%, `delta` 22%), rare ones (`r0`..`r299`, about 20 records
    /// each), a mid-frequency one (`mid`, 13%), filler (`x0`..`x999`, never queried, so
    /// records of equal length and equal query terms tie exactly), non-ASCII words, and
    /// tags `a`, `b`, `c`; every seventh record is then forgotten.
    fn corpus() -> State {
        let st = State::in_memory().expect("db");
        let mut rng = Lcg(7);
        st.conn.execute_batch("BEGIN").expect("begin");
        for i in 0..CORPUS {
            let mut words: Vec<String> = Vec::new();
            for (w, pct) in [
                ("alpha", 40),
                ("gamma", 25),
                ("beta", 20),
                ("delta", 22),
                ("mid", 13),
            ] {
                if rng.chance(pct) {
                    words.push(w.into());
                    if rng.chance(20) {
                        words.push(w.into());
                    }
                }
            }
            for _ in 0..rng.below(3) {
                words.push(format!("r{}", rng.below(300)));
            }
            if rng.chance(5) {
                words.push(["café", "日本", "naïve", "node-3"][rng.below(4)].into());
            }
            for _ in 0..rng.below(3) {
                words.push(format!("x{}", rng.below(1000)));
            }
            // Shuffle, then make the text unique without changing its length: the last
            // filler word (or an added one) carries the record number.
            for k in (1..words.len()).rev() {
                words.swap(k, rng.below(k + 1));
            }
            words.push(format!("n{i}"));
            let mut t: Vec<&str> = Vec::new();
            for (tag, pct) in [("a", 50), ("b", 30), ("c", 10)] {
                if rng.chance(pct) {
                    t.push(tag);
                }
            }
            store(&st, &s(&words.join(" ")), &tags(&t), "note").expect("store");
        }
        st.conn.execute_batch("COMMIT").expect("commit");
        // Deleted records leave delete markers in the index; the first and last ids stay.
        for id in (2..CORPUS as i64).step_by(7) {
            assert!(forget(&st, id).expect("forget"));
        }
        st
    }

    /// The new recall, its plan, and the full plan all agree with the old query.
    fn check(st: &State, query: &str, limit: i64, tags: &[String]) -> Plan {
        let old = old_recall_ids(st, query, limit, tags);
        let words = query_words(query);
        let full = ranked_full(st, &words, limit, tags).expect("full");
        assert_eq!(
            full, old,
            "full plan: {query:?} limit {limit} tags {tags:?}"
        );
        let (ids, plan) = ranked(st, query, limit, tags).expect("ranked");
        assert_eq!(ids, old, "{plan:?}: {query:?} limit {limit} tags {tags:?}");
        let records: Vec<i64> = recall(st, query, limit, tags)
            .expect("recall")
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            records, old,
            "recall: {query:?} limit {limit} tags {tags:?}"
        );
        plan
    }

    #[test]
    fn the_split_plan_answers_exactly_like_the_full_query() {
        let st = corpus();
        let none: Vec<String> = Vec::new();
        // Rare then common, common then rare, interleaved, duplicated words.
        for q in [
            "r1 r2 alpha",
            "alpha r1 r2",
            "r1 alpha r2",
            "alpha r1 beta",
            "r7 r7 gamma",
            "gamma r7 gamma",
            "R7 Gamma",
            "r3 r4 alpha r5 gamma r6",
        ] {
            assert_eq!(check(&st, q, 1, &none), Plan::Split, "{q}");
            check(&st, q, 5, &none);
            check(&st, q, 100, &none);
            check(&st, q, 5, &tags(&["a"]));
            check(&st, q, 5, &tags(&["a", "b"]));
        }
        // No rare word, no common word: the full plan.
        assert_eq!(check(&st, "alpha gamma", 5, &none), Plan::Full);
        assert_eq!(check(&st, "r1 r2", 5, &none), Plan::Full);
        assert_eq!(check(&st, "mid r1", 5, &none), Plan::Full);
        assert_eq!(check(&st, "alpha", 5, &none), Plan::Full);
        assert_eq!(check(&st, "r1 r1", 5, &none), Plan::Full);
        // A word that may hold no token, or only non-ASCII ones: the full plan.
        assert_eq!(check(&st, "日本 alpha r1", 5, &none), Plan::Full);
        assert_eq!(check(&st, "-- alpha r1", 5, &none), Plan::Full);
        // Non-ASCII words with ASCII letters are phrases like any other.
        check(&st, "café alpha r1", 5, &none);
        check(&st, "naïve node-3 beta", 5, &none);
        check(&st, "\"alpha\" r1 AND", 5, &none);
        // Fewer rare matches than the limit: proven impossible, the full plan answers.
        assert_eq!(check(&st, "r1 alpha", 100, &none), Plan::SplitThenFull);
        assert_eq!(
            check(&st, "r1 alpha", 5, &tags(&["c"])),
            Plan::SplitThenFull
        );
        check(&st, "mid delta", 5, &none);
        check(&st, "mid delta", 100, &none);
        check(&st, "r3 alpha beta gamma delta", 1, &none);
        assert_eq!(check(&st, "r1 alpha", 0, &none), Plan::Full);
    }

    #[test]
    fn a_common_word_worth_more_than_the_candidates_sends_the_query_to_the_full_plan() {
        // 3,000 records: `common` in 530 (just past the threshold of 500, so worth a
        // bm25 term of up to 2.2 * 1.58), `lesser` in 429 (rare, about 1.7 a record),
        // 72 of them with both.
        let st = State::in_memory().expect("db");
        st.conn.execute_batch("BEGIN").expect("begin");
        for i in 0..3000 {
            let mut words = Vec::new();
            if i % 6 == 0 || i % 100 == 1 {
                words.push("common");
            }
            if i % 7 == 3 {
                words.push("lesser");
            }
            let text = format!("{} pad{i}", words.join(" "));
            store(&st, &s(&text), &[], "note").expect("store");
        }
        st.conn.execute_batch("COMMIT").expect("commit");
        assert_eq!(doc_count(&st, "common", None).expect("count"), 530);
        let none: Vec<String> = Vec::new();
        // Plenty of candidates, none provably ahead of a record with only `common`.
        for limit in [1, 5, 100] {
            assert_eq!(
                check(&st, "lesser common", limit, &none),
                Plan::SplitThenFull
            );
            assert_eq!(
                check(&st, "common lesser", limit, &none),
                Plan::SplitThenFull
            );
        }
    }

    #[test]
    fn records_holding_two_common_words_join_the_candidates() {
        // 3,050 records: `red` and `blue` in 650 each (common, up to 2.87 a record on
        // their own), never together except in 50 records `red red blue blue` (3.02);
        // `zz` in 30 (about 4.2, more than one common word but less than both).
        let st = State::in_memory().expect("db");
        st.conn.execute_batch("BEGIN").expect("begin");
        for i in 0..3000 {
            let w = match i % 5 {
                0 => "red ",
                1 => "blue ",
                2 if i % 100 == 2 => "zz ",
                _ => "",
            };
            store(&st, &s(&format!("{w}f{i} g{}", i % 7)), &[], "note").expect("store");
        }
        for i in 0..50u32 {
            // The same tokens, a different text each time: letter case varies.
            let mut letter = 0;
            let text: String = "red red blue blue"
                .chars()
                .map(|c| {
                    if c == ' ' {
                        return c;
                    }
                    letter += 1;
                    if i >> (letter - 1) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            store(&st, &s(&text), &[], "note").expect("store");
        }
        st.conn.execute_batch("COMMIT").expect("commit");
        assert_eq!(doc_count(&st, "red", None).expect("count"), 650);
        let none: Vec<String> = Vec::new();
        for q in ["zz red blue", "red zz blue", "blue red zz"] {
            assert_eq!(check(&st, q, 5, &none), Plan::SplitPaired, "{q}");
            // 80 candidates in all: too few.
            assert_eq!(check(&st, q, 100, &none), Plan::SplitThenFull, "{q}");
        }
        // `red` twice: its phrases together may be worth more than `zz`.
        assert_eq!(check(&st, "zz red blue red", 5, &none), Plan::SplitThenFull);
        assert_eq!(check(&st, "zz red blue", 40, &none), Plan::SplitPaired);
        let ids = ranked(&st, "zz red blue", 40, &none).expect("ranked").0;
        assert_eq!(ids.iter().filter(|&&id| id > 3000).count(), 10);
        // And any mixture of these words (`g0`..`g6`: 430 records each, rare).
        let pool = ["zz", "red", "blue", "RED", "g1", "g4", "f7", "f3000"];
        let mut rng = Lcg(9);
        let mut paired = 0;
        for _ in 0..300 {
            let n = 2 + rng.below(4);
            let words: Vec<&str> = (0..n).map(|_| pool[rng.below(pool.len())]).collect();
            let limit = [1, 5, 40][rng.below(3)];
            if check(&st, &words.join(" "), limit, &none) == Plan::SplitPaired {
                paired += 1;
            }
        }
        assert!(paired >= 10, "{paired}");
    }

    #[test]
    fn ties_keep_the_newest_first_across_the_limit() {
        let st = corpus();
        // Same length, same query terms: exact ties, broken by id, newest first.
        for i in 0..12 {
            store(&st, &s(&format!("tie alpha pad{i}")), &[], "note").expect("store");
            store(&st, &s(&format!("tie x{i} pad{i}")), &[], "note").expect("store");
        }
        let none: Vec<String> = Vec::new();
        for limit in [1, 5, 7, 13, 100] {
            for q in ["tie alpha", "alpha tie", "tie alpha tie", "tie tie alpha"] {
                let plan = check(&st, q, limit, &none);
                if limit <= 12 {
                    assert_eq!(plan, Plan::Split, "{q} {limit}");
                }
            }
        }
    }

    #[test]
    fn recall_inside_a_transaction_sees_its_own_writes() {
        let st = corpus();
        let none: Vec<String> = Vec::new();
        st.conn.execute_batch("BEGIN").expect("begin");
        for i in 0..40 {
            store(&st, &s(&format!("fresh alpha r9 w{i}")), &[], "note").expect("store");
        }
        assert_eq!(check(&st, "fresh alpha", 5, &none), Plan::Split);
        assert_eq!(check(&st, "r9 alpha fresh", 20, &none), Plan::Split);
        assert!(!st.conn.is_autocommit(), "still inside the transaction");
        st.conn.execute_batch("ROLLBACK").expect("rollback");
        assert!(recall(&st, "fresh", 5, &none).expect("recall").is_empty());
    }

    #[test]
    fn random_queries_answer_exactly_like_the_full_query() {
        let st = corpus();
        let mut rng = Lcg(42);
        let pool = [
            "alpha", "beta", "gamma", "delta", "mid", "café", "日本", "naïve", "node-3", "x5",
            "nothing", "ALPHA", "n17",
        ];
        let tag_sets = [vec![], tags(&["a"]), tags(&["b"]), tags(&["a", "c"])];
        let mut plans = std::collections::HashMap::new();
        for _ in 0..1000 {
            let n = 1 + rng.below(5);
            let words: Vec<String> = (0..n)
                .map(|_| {
                    if rng.chance(45) {
                        format!("r{}", rng.below(300))
                    } else {
                        pool[rng.below(pool.len())].to_string()
                    }
                })
                .collect();
            let query = words.join(" ");
            let limit = [1, 5, 5, 20, 100][rng.below(5)];
            let t = &tag_sets[rng.below(tag_sets.len())];
            *plans.entry(check(&st, &query, limit, t)).or_insert(0) += 1;
        }
        for plan in [Plan::Full, Plan::Split, Plan::SplitThenFull] {
            assert!(plans.get(&plan).copied().unwrap_or(0) >= 20, "{plans:?}");
        }
    }
}
