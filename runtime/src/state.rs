//! The runtime's state: one SQLite database under the state directory (`.aetherra/` by
//! default), in WAL mode with a busy timeout, created and migrated by schema version.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

/// The database file inside the state directory.
pub const DB_FILE: &str = "aether.db";

/// Each migration takes the schema from version `i` to `i + 1`, in one transaction.
const MIGRATIONS: &[&str] = &[
    // 1: memory records with full-text search, tags, and the run log.
    r#"
    CREATE TABLE memory (
        id         INTEGER PRIMARY KEY,
        content    TEXT NOT NULL,      -- the stored value as JSON
        text       TEXT NOT NULL,      -- what full-text search sees
        tags       TEXT NOT NULL,      -- JSON array, in the order given
        kind       TEXT NOT NULL,
        created_at TEXT NOT NULL,      -- RFC 3339 UTC
        hash       TEXT NOT NULL       -- SHA-256 of kind and content, for de-duplication
    );
    CREATE UNIQUE INDEX memory_hash ON memory(hash);
    CREATE INDEX memory_kind ON memory(kind, id);
    CREATE TABLE memory_tags (
        memory_id INTEGER NOT NULL REFERENCES memory(id) ON DELETE CASCADE,
        tag       TEXT NOT NULL,
        PRIMARY KEY (memory_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX memory_tags_tag ON memory_tags(tag, memory_id);
    CREATE VIRTUAL TABLE memory_fts USING fts5(text, content='memory', content_rowid='id');
    CREATE TRIGGER memory_ai AFTER INSERT ON memory BEGIN
        INSERT INTO memory_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER memory_ad AFTER DELETE ON memory BEGIN
        INSERT INTO memory_fts(memory_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TABLE metrics (
        id    INTEGER PRIMARY KEY,
        name  TEXT NOT NULL,
        value REAL NOT NULL,
        at    TEXT NOT NULL
    );
    CREATE INDEX metrics_name ON metrics(name, id);
    "#,
    // 2: the kernel's dead letters and service registry, homeostasis actuations, the audit log.
    r#"
    CREATE TABLE dead_letters (
        id       INTEGER PRIMARY KEY,
        task     TEXT NOT NULL,
        data     TEXT NOT NULL,       -- JSON
        priority TEXT NOT NULL,
        reason   TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        at       TEXT NOT NULL
    );
    CREATE TABLE services (
        name           TEXT PRIMARY KEY,
        registered_at  TEXT NOT NULL,
        last_heartbeat TEXT NOT NULL   -- RFC 3339 UTC
    );
    CREATE TABLE actuations (
        id        INTEGER PRIMARY KEY,
        action    TEXT NOT NULL,
        target    TEXT NOT NULL,
        params    TEXT NOT NULL,      -- JSON
        ok        INTEGER NOT NULL,
        reason    TEXT NOT NULL,
        at        TEXT NOT NULL,
        at_epoch  REAL NOT NULL       -- seconds, for cooldown and rate-limit windows
    );
    CREATE INDEX actuations_target ON actuations(target, at_epoch);
    CREATE TABLE audit (
        id     INTEGER PRIMARY KEY,
        at     TEXT NOT NULL,
        actor  TEXT NOT NULL,         -- the subsystem: homeostasis, kernel, plugins, ...
        event  TEXT NOT NULL,
        detail TEXT NOT NULL          -- JSON
    );
    "#,
    // 3: a record of each run that kept state.
    r#"
    CREATE TABLE runs (
        id         INTEGER PRIMARY KEY,
        file       TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at   TEXT NOT NULL,
        code       INTEGER NOT NULL,
        code_name  TEXT NOT NULL,
        message    TEXT NOT NULL
    );
    "#,
    // 4: durable runs and their journal (docs/durable.md).
    r#"
    CREATE TABLE durable_runs (
        id            TEXT PRIMARY KEY,
        file          TEXT NOT NULL,      -- absolute path of the script
        script_sha256 TEXT NOT NULL,
        args          TEXT NOT NULL,      -- JSON object of --arg values
        status        TEXT NOT NULL CHECK (status IN ('pending', 'running', 'waiting',
                          'needs_attention', 'succeeded', 'failed', 'cancelled')),
        owner_host    TEXT,
        owner_pid     INTEGER,
        owner_start   TEXT,               -- the owner process's start time (/proc)
        lease_until   REAL,               -- unix seconds
        result        TEXT,               -- JSON {code, code_name, message, line}
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE INDEX durable_runs_status ON durable_runs(status, updated_at);
    CREATE TABLE journal (
        run_id      TEXT NOT NULL REFERENCES durable_runs(id) ON DELETE CASCADE,
        fiber       TEXT NOT NULL,        -- structural fiber path: 0, 0.1, 0.1.2
        seq         INTEGER NOT NULL,     -- per fiber, 1, 2, ...
        completion  INTEGER,              -- order of outcomes across the run's fibers
        name        TEXT NOT NULL,        -- the function's qualified name
        digest      TEXT NOT NULL,        -- SHA-256 of the name and the arguments' JSON
        kind        TEXT NOT NULL CHECK (kind IN ('intent', 'outcome')),
        result      TEXT,                 -- JSON {"ok": value} or {"err": {class, message}}
        started_at  TEXT NOT NULL,
        ended_at    TEXT,
        PRIMARY KEY (run_id, fiber, seq)
    ) WITHOUT ROWID;
    "#,
    // 5: the signal mailbox of durable runs and what a run waits for (docs/durable.md).
    r#"
    CREATE TABLE signals (
        id          INTEGER PRIMARY KEY,  -- the order signals arrived in
        run_id      TEXT NOT NULL REFERENCES durable_runs(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        data        TEXT NOT NULL,        -- JSON payload
        key         TEXT,                 -- de-duplication key (`runs signal --key`)
        sent_at     TEXT NOT NULL,
        consumed_at TEXT,                 -- set in the transaction that journals the wait
        consumed_by TEXT,                 -- that journal entry: fiber#seq
        UNIQUE (run_id, key)
    );
    CREATE INDEX signals_waiting ON signals(run_id, name, consumed_at, id);
    ALTER TABLE durable_runs ADD COLUMN waiting_for TEXT; -- the signal a wait needs
    ALTER TABLE durable_runs ADD COLUMN wake_at REAL;     -- unix seconds: when the wait ends
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A failure to open or use the state database.
#[derive(Debug)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> StateError {
        if crate::busy::is_busy(&e) {
            // Never SQLite's bare "database is locked" (the host names the holder).
            return StateError(crate::busy::generic());
        }
        StateError(format!("state database: {e}"))
    }
}

/// The open state database.
pub struct State {
    pub conn: Connection,
    path: PathBuf,
}

impl State {
    /// Open (creating when missing) `DIR/aether.db` and bring its schema up to date. A
    /// database written by a newer build is refused rather than guessed at.
    pub fn open(dir: &Path) -> Result<State, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StateError(format!(
                "cannot create state directory `{}`: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path)
            .map_err(|e| StateError(format!("cannot open `{}`: {e}", path.display())))?;
        conn.busy_timeout(crate::busy::BUSY_TIMEOUT)?;
        // Another run may be creating the same database right now: switching to WAL needs
        // a moment alone with the file, so retry for a while instead of failing.
        let mut tries = 0;
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => break,
                Err(_) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e.into()),
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut state = State { conn, path };
        state.migrate()?;
        Ok(state)
    }

    /// An in-memory database (tests and `--state-dir` free runs of the test suite).
    pub fn in_memory() -> Result<State, StateError> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut state = State {
            conn,
            path: PathBuf::from(":memory:"),
        };
        state.migrate()?;
        Ok(state)
    }

    /// Apply the migrations this database lacks, one transaction each. The version is read
    /// inside the (immediate, so writer-exclusive) transaction: two runs opening a new state
    /// directory at once migrate it once.
    fn migrate(&mut self) -> Result<(), StateError> {
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version > SCHEMA_VERSION {
                return Err(StateError(format!(
                    "`{}` has schema version {version}, newer than this build's {SCHEMA_VERSION}: upgrade aether",
                    self.path.display()
                )));
            }
            let Some(sql) = MIGRATIONS.get(version as usize) else {
                tx.commit()?;
                return Ok(());
            };
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()?;
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the database file and its write-ahead log.
    pub fn size_bytes(&self) -> u64 {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        size(&self.path) + size(&wal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_twice_migrates_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = State::open(dir.path()).expect("open");
        let v: i64 = a
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, SCHEMA_VERSION);
        drop(a);
        State::open(dir.path()).expect("reopen");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = State::open(dir.path()).expect("open");
        a.conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(a);
        let err = State::open(dir.path()).err().expect("refused");
        assert!(err.0.contains("newer than this build"), "{}", err.0);
    }
}
