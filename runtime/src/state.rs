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
    // 6: every signal a durable run waits for, one row per waiting `wait_signal` (several
    // fibers can wait on different signals); `durable_runs.waiting_for` is no longer written.
    r#"
    CREATE TABLE run_waits (
        run_id      TEXT NOT NULL REFERENCES durable_runs(id) ON DELETE CASCADE,
        fiber       TEXT NOT NULL,        -- the journal key of the wait's result
        seq         INTEGER NOT NULL,
        name        TEXT NOT NULL,        -- the signal it waits for
        deadline    REAL,                 -- unix seconds: when the wait times out
        PRIMARY KEY (run_id, fiber, seq)
    ) WITHOUT ROWID;
    CREATE INDEX run_waits_name ON run_waits(run_id, name);
    INSERT INTO run_waits (run_id, fiber, seq, name, deadline)
        SELECT id, '', 0, waiting_for, NULL FROM durable_runs WHERE waiting_for IS NOT NULL;
    UPDATE durable_runs SET waiting_for = NULL;
    "#,
];

impl Scratch {
    /// The reset of the database open on `conn`, from `PRAGMA table_list` (which tells
    /// ordinary, virtual and shadow tables apart).
    fn of(conn: &Connection) -> Result<Scratch, StateError> {
        let mut stmt = conn.prepare(
            "SELECT name, type FROM pragma_table_list WHERE schema = 'main' ORDER BY name",
        )?;
        let tables = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let mut statements = Vec::new();
        let mut indexes = Vec::new();
        for (name, kind) in &tables {
            match kind.as_str() {
                "table" if name == "sqlite_sequence" || !name.starts_with("sqlite_") => {
                    statements.push(format!("DELETE FROM {}", quoted(name)));
                }
                "virtual" => {
                    let sql: String = conn.query_row(
                        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                        [name],
                        |r| r.get(0),
                    )?;
                    // Only an external-content FTS5 index can be emptied without its rows
                    // (its content table's rows are deleted above).
                    let lower = sql.to_ascii_lowercase();
                    if !lower.contains("using fts5") || !lower.contains("content=") {
                        return Err(StateError(format!(
                            "cannot empty the virtual table `{name}` of a throwaway database"
                        )));
                    }
                    let q = quoted(name);
                    indexes.push(format!("INSERT INTO {q}({q}) VALUES ('delete-all')"));
                }
                _ => {}
            }
        }
        statements.extend(indexes);
        Ok(Scratch { statements })
    }
}

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
    /// A throwaway database's reset: what [`State::recycle`] empties (`None`: not a
    /// throwaway one, never recycled).
    scratch: Option<Scratch>,
    /// The write-ahead log kept ahead of synced commits ([`State::synced`]).
    wal: crate::wal::WalRoom,
}

/// How to empty a throwaway database (from SQLite's own list of its tables): the ordinary
/// tables' rows are deleted, each external-content full-text index is emptied with its
/// `delete-all` command (its shadow tables with it).
struct Scratch {
    /// One statement per table, in one transaction: `DELETE FROM t` for each ordinary table
    /// (`sqlite_sequence` too, when it exists, so AUTOINCREMENT ids start afresh), then
    /// `INSERT INTO v(v) VALUES('delete-all')` for each full-text table.
    statements: Vec<String>,
}

/// Statements each throwaway database keeps prepared: its reset plus what the runtime
/// prepares with `prepare_cached` (more than rusqlite's default of 16, so that the reset
/// does not evict the runtime's statements and the other way round).
const SCRATCH_STATEMENT_CACHE: usize = 64;

thread_local! {
    /// This thread's emptied throwaway database, ready for its next throwaway run.
    static SCRATCH: std::cell::RefCell<Option<State>> = const { std::cell::RefCell::new(None) };
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
        let mut state = State {
            conn,
            path,
            scratch: None,
            wal: crate::wal::WalRoom::default(),
        };
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
            scratch: None,
            wal: crate::wal::WalRoom::default(),
        };
        state.migrate()?;
        Ok(state)
    }

    /// An empty in-memory database for a run whose state is thrown away (`aether classify`):
    /// the one this thread's previous throwaway run gave back with [`State::recycle`],
    /// emptied, or else a new one. Either way it holds no row of another run, and its ids
    /// start at 1: creating the schema is most of the cost of a short run, so it is created
    /// once per thread, not once per run.
    pub fn scratch() -> Result<State, StateError> {
        if let Some(state) = SCRATCH.with(|s| s.borrow_mut().take()) {
            return Ok(state);
        }
        let mut state = State::in_memory()?;
        state
            .conn
            .set_prepared_statement_cache_capacity(SCRATCH_STATEMENT_CACHE);
        state.scratch = Some(Scratch::of(&state.conn)?);
        Ok(state)
    }

    /// Give back a throwaway run's database ([`State::scratch`]): an open transaction is
    /// rolled back, every table emptied, and the database kept for this thread's next
    /// throwaway run. One that is not a throwaway database, or that cannot be emptied, is
    /// closed instead (the next run then creates a new one).
    pub fn recycle(self) {
        if self.scratch.is_none() || self.empty().is_err() {
            return;
        }
        SCRATCH.with(|s| *s.borrow_mut() = Some(self));
    }

    /// Roll back what is open and delete every row ([`Scratch`]), in one transaction.
    fn empty(&self) -> Result<(), StateError> {
        let Some(scratch) = &self.scratch else {
            return Err(StateError("not a throwaway database".into()));
        };
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK")?;
        }
        // Deferred, so the order of the deletes cannot trip a foreign key (all are
        // empty at the commit); the setting ends with the transaction.
        self.conn
            .execute_batch("BEGIN; PRAGMA defer_foreign_keys = ON")?;
        let deleted = scratch
            .statements
            .iter()
            .try_for_each(|sql| self.conn.prepare_cached(sql)?.execute([]).map(drop));
        match deleted.and_then(|()| self.conn.execute_batch("COMMIT")) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e.into())
            }
        }
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

    /// Run `write` as one transaction that is on stable storage when this returns: it
    /// commits with `synchronous=FULL` (SQLite syncs the log after the commit), with room
    /// made in the log first so that the sync does not grow the file (`wal.rs`). Called
    /// outside any transaction; on an error the transaction is rolled back.
    pub fn synced<T>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let done = self.synced_in_transaction(write);
        let restored = self.conn.pragma_update(None, "synchronous", "NORMAL");
        let value = done?;
        restored?;
        Ok(value)
    }

    fn synced_in_transaction<T>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        // Only speed depends on the room: without it the commit grows the file.
        let _ = self.wal.make_room(&self.path);
        let value = write(&self.conn)
            .and_then(|v| self.conn.prepare_cached("COMMIT")?.execute([]).map(|_| v));
        if value.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        value
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the database file and its write-ahead log; of an in-memory database
    /// (`aether classify`'s scratch database, tests), its pages (page_count * page_size).
    pub fn size_bytes(&self) -> u64 {
        if self.path == Path::new(":memory:") {
            let pragma = |name: &str| {
                self.conn
                    .pragma_query_value(None, name, |r| r.get::<_, i64>(0))
                    .unwrap_or(0)
            };
            return u64::try_from(pragma("page_count").saturating_mul(pragma("page_size")))
                .unwrap_or(0);
        }
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        size(&self.path) + size(&wal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_memory_database_reports_the_size_of_its_pages() {
        let st = State::in_memory().expect("db");
        let pages: i64 = st
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .expect("page_count");
        assert!(pages > 0, "the migrations made tables");
        assert_eq!(st.size_bytes() % 512, 0);
        assert!(st.size_bytes() >= pages as u64 * 512, "{}", st.size_bytes());
    }

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

    /// Every row of every table (shadow tables of the full-text index included), by table,
    /// as text: two databases with the same dump hold the same state.
    fn dump(st: &State) -> Vec<(String, Vec<String>)> {
        let mut names = st
            .conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name")
            .expect("prepare");
        let names: Vec<String> = names
            .query_map([], |r| r.get(0))
            .expect("tables")
            .collect::<Result<_, _>>()
            .expect("names");
        names
            .into_iter()
            .map(|name| {
                let mut stmt = st
                    .conn
                    .prepare(&format!("SELECT * FROM \"{name}\""))
                    .expect("select");
                let columns = stmt.column_count();
                let rows = stmt
                    .query_map([], |r| {
                        (0..columns)
                            .map(|i| {
                                r.get::<_, rusqlite::types::Value>(i)
                                    .map(|v| format!("{v:?}"))
                            })
                            .collect::<Result<Vec<_>, _>>()
                            .map(|cols| cols.join("|"))
                    })
                    .expect("rows")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("row");
                (name, rows)
            })
            .collect()
    }

    /// Writes to every table the runtime has, through the runtime where it can; `open`
    /// leaves the last write in an open transaction.
    fn fill(st: &State, open: bool) {
        use aether_vm::Value;
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for i in 0..30 {
            let text = format!("note {i} about disk pressure and queue {}", i % 7);
            crate::memory::store(st, &Value::from(text.as_str()), &tags(&["a", "b"]), "note")
                .expect("store");
        }
        crate::memory::store_unique(st, &Value::from("a log line"), &tags(&["log"]), "log")
            .expect("log");
        crate::homeostasis::insert_metric(st, "queue_depth", 5.0, "2026-01-01T00:00:00Z")
            .expect("metric");
        st.conn
            .execute_batch(
                "INSERT INTO dead_letters (task, data, priority, reason, attempts, at) VALUES ('t', '{}', 'normal', 'r', 3, 'x');
                 INSERT INTO services VALUES ('svc', 'x', 'x');
                 INSERT INTO actuations (action, target, params, ok, reason, at, at_epoch) VALUES ('restart', 'db', '{}', 1, 'allowed', 'x', 1.0);
                 INSERT INTO audit (at, actor, event, detail) VALUES ('x', 'homeostasis', 'e', '{}');
                 INSERT INTO runs (file, started_at, ended_at, code, code_name, message) VALUES ('f', 'x', 'x', 0, 'SUCCESS', '');
                 INSERT INTO durable_runs (id, file, script_sha256, args, status, created_at, updated_at) VALUES ('r1', 'f', 's', '{}', 'running', 'x', 'x');
                 INSERT INTO journal (run_id, fiber, seq, name, digest, kind, started_at) VALUES ('r1', '0', 1, 'n', 'd', 'intent', 'x');
                 INSERT INTO signals (run_id, name, data, sent_at) VALUES ('r1', 'go', '{}', 'x');",
            )
            .expect("rows");
        crate::memory::forget(st, 3).expect("forget");
        if open {
            st.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
            crate::memory::store(st, &Value::from("inside"), &[], "note").expect("store");
        }
    }

    /// What a run sees of memory: ids, ranked recall, counts.
    fn observe(st: &State) -> Vec<String> {
        let mut seen = Vec::new();
        for query in ["disk pressure", "queue 3", "note", "", "nothing matches"] {
            let hits = crate::memory::recall(st, query, 7, &[]).expect("recall");
            seen.push(format!(
                "{query}: {:?}",
                hits.iter()
                    .map(|r| (r.id, r.content.display()))
                    .collect::<Vec<_>>()
            ));
        }
        seen.push(format!(
            "count {}",
            crate::memory::count(st, &[]).expect("count")
        ));
        seen
    }

    #[test]
    fn a_recycled_throwaway_database_is_a_new_one() {
        let first = State::scratch().expect("scratch");
        let empty = dump(&State::in_memory().expect("fresh"));
        assert_eq!(dump(&first), empty);
        for open in [false, true] {
            let st = State::scratch().expect("scratch");
            fill(&st, open);
            assert_ne!(dump(&st), empty);
            st.recycle();
            assert!(
                SCRATCH.with(|s| s.borrow().is_some()),
                "kept for the next run"
            );
            let st = State::scratch().expect("the recycled one");
            assert!(SCRATCH.with(|s| s.borrow().is_none()));
            assert!(st.conn.is_autocommit(), "no transaction left open");
            assert_eq!(dump(&st), empty, "emptied (open transaction: {open})");
            // The next run stores, recalls and counts exactly as on a new database.
            let fresh = State::in_memory().expect("fresh");
            fill(&fresh, false);
            fill(&st, false);
            assert_eq!(observe(&st), observe(&fresh));
            st.recycle();
        }
        drop(first);
    }

    #[test]
    fn only_throwaway_databases_are_recycled() {
        SCRATCH.with(|s| s.borrow_mut().take());
        State::in_memory().expect("db").recycle();
        assert!(SCRATCH.with(|s| s.borrow().is_none()));
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
