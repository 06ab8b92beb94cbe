//! Synced commits that do not grow the write-ahead log (docs/durable.md, "On disk").
//!
//! A synced commit ([`crate::state::State::synced`], a plugin intent's) appends its frames
//! to `aether.db-wal` and syncs the file with `fdatasync` (SQLite is built with
//! `HAVE_FDATASYNC`, see `.cargo/config.toml`). When the frames land past the file's end,
//! its size changes and the sync must also commit the file system's journal: about twice
//! the disk writes of a sync that only overwrites blocks the file already has. So before
//! such a commit, under the database's write lock, the log is kept ahead of SQLite's
//! writing point: when its size shows that SQLite wrote its end (a size that is not a
//! multiple of [`CHUNK`]), zeros are written up to the next multiple and one chunk more.
//!
//! SQLite never reads them as data: recovery stops at the first frame whose salt and running
//! checksum do not match the log's header, and a log restarted after a checkpoint is
//! written from its start over the old frames, so the file keeps its size (SQLite's
//! `journal_size_limit` stays at its default, -1: never truncated while open).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// The log is grown by this much at a time (about 127 plugin intents with their outcomes).
pub(crate) const CHUNK: u64 = 1 << 20;

/// The write-ahead log of one open database, opened when first needed.
#[derive(Default)]
pub(crate) struct WalRoom {
    file: RefCell<Option<File>>,
}

impl WalRoom {
    /// Make room in `db`'s log if SQLite wrote its end. The caller holds the write lock
    /// (`BEGIN IMMEDIATE`), so no other writer appends meanwhile. Returns the bytes of zeros
    /// written. A log that does not exist (an in-memory database) needs no room; failing to
    /// write the zeros only costs speed (the commit then grows the file, as it would have).
    pub(crate) fn make_room(&self, db: &Path) -> std::io::Result<u64> {
        let mut slot = self.file.borrow_mut();
        if slot.is_none() {
            // Never created here: SQLite creates its log when the database opens in WAL mode.
            match OpenOptions::new().write(true).open(wal_path(db)) {
                Ok(f) => *slot = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e),
            }
        }
        let Some(f) = slot.as_mut() else {
            return Ok(0);
        };
        let len = f.metadata()?.len();
        if len != 0 && len.is_multiple_of(CHUNK) {
            return Ok(0);
        }
        let end = len.next_multiple_of(CHUNK) + CHUNK;
        let zeros = vec![0u8; 64 << 10];
        f.seek(SeekFrom::Start(len))?;
        let mut at = len;
        while at < end {
            let n = (end - at).min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            at += n as u64;
        }
        Ok(end - len)
    }
}

/// SQLite's name for a database's write-ahead log.
pub(crate) fn wal_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push("-wal");
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    fn wal_len(st: &State) -> u64 {
        std::fs::metadata(wal_path(st.path())).map_or(0, |m| m.len())
    }

    fn count(st: &State) -> i64 {
        st.conn
            .query_row("SELECT count(*) FROM metrics", [], |r| r.get(0))
            .expect("count")
    }

    fn insert(st: &State, i: i64) {
        st.synced(|c| {
            c.execute(
                "INSERT INTO metrics (name, value, at) VALUES ('m', ?1, 't')",
                [i],
            )
        })
        .expect("synced insert");
    }

    #[test]
    fn a_synced_commit_finds_the_log_grown_ahead_and_keeps_its_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = State::open(dir.path()).expect("open");
        insert(&st, 0);
        let len = wal_len(&st);
        assert!(len.is_multiple_of(CHUNK), "grown to a whole chunk: {len}");
        assert!(len >= CHUNK);
        // Each commit writes into the zeros: the file keeps its size until a commit passes
        // its end (SQLite grows it by its frames), and the next synced commit grows it by a
        // chunk again: never frame by frame two commits in a row.
        let mut sizes = vec![len];
        for i in 1..400 {
            insert(&st, i);
            sizes.push(wal_len(&st));
        }
        for pair in sizes.windows(2) {
            assert!(
                pair[0].is_multiple_of(CHUNK) || pair[1].is_multiple_of(CHUNK),
                "{sizes:?}"
            );
        }
        let grown = sizes.windows(2).filter(|p| p[1] > p[0]).count();
        assert!(
            grown <= 2 * (sizes[sizes.len() - 1] / CHUNK) as usize,
            "{sizes:?}"
        );
        assert_eq!(count(&st), 400);
        let ok: String = st
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(ok, "ok");
    }

    #[test]
    fn the_zeros_are_never_read_as_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = State::open(dir.path()).expect("open");
        for i in 0..50 {
            insert(&st, i);
        }
        // Another connection reads while the log is grown under it.
        let other = State::open(dir.path()).expect("second connection");
        assert_eq!(count(&other), 50);
        for i in 50..200 {
            insert(&st, i);
        }
        assert_eq!(count(&other), 200);
        // What a power loss leaves: the database and its log as synced, no index (`-shm`),
        // no checkpoint. Recovery reads the frames and stops at the zeros.
        let crashed = tempfile::tempdir().expect("tempdir");
        for name in [crate::state::DB_FILE, "aether.db-wal"] {
            std::fs::copy(dir.path().join(name), crashed.path().join(name)).expect("copy");
        }
        assert!(wal_len(&st) > 0 && wal_len(&st).is_multiple_of(CHUNK));
        let recovered = State::open(crashed.path()).expect("recover");
        assert_eq!(count(&recovered), 200);
    }

    #[test]
    fn a_log_cut_to_nothing_is_grown_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = State::open(dir.path()).expect("open");
        insert(&st, 0);
        st.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("truncate");
        assert_eq!(wal_len(&st), 0);
        insert(&st, 1);
        assert_eq!(wal_len(&st), CHUNK);
        assert_eq!(count(&st), 2);
    }

    #[test]
    fn an_in_memory_database_needs_no_room() {
        let st = State::in_memory().expect("memory");
        insert(&st, 1);
        assert_eq!(count(&st), 1);
    }
}
