//! A busy state database: who holds its write lock (a note beside the database), and the
//! message a run that waited for it in vain gets instead of SQLite's "database is locked".
//!
//! The run whose `transaction:` holds the lock writes `aether.db-tx` (its pid, command line
//! and start time) once it has the lock, and removes it before it lets go, so the note
//! belongs to the holder. A note of a process that no longer exists is ignored.

use std::path::Path;
use std::time::Duration;

use aether_vm::{format_duration, ErrorClass, HostError, MAX_TRANSACTION};

/// How long a run waits for another run's write before giving up: longer than the
/// longest transaction (so a bounded transaction never makes another run fail).
pub const BUSY_TIMEOUT: Duration = MAX_TRANSACTION.saturating_add(Duration::from_secs(1));

/// How every busy message starts (the host recognises a busy error by it).
pub const BUSY: &str = "the state database is busy";

/// The note of the transaction that holds the write lock, beside the database.
pub const HOLDER_FILE: &str = "aether.db-tx";

/// The longest command line a note keeps.
const MAX_COMMAND: usize = 200;

/// Whether SQLite gave up waiting for another connection's lock.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The message of a busy error when the state directory is not known.
pub fn generic() -> String {
    format!(
        "{BUSY}: another process held its write lock for longer than {}",
        format_duration(BUSY_TIMEOUT.as_secs_f64() * 1000.0)
    )
}

/// This process now holds the write lock for a transaction: leave a note saying so. The
/// note is a courtesy to other runs' messages: failing to write it fails nothing.
pub(crate) fn claim(dir: &Path) {
    let mut command: String = std::env::args().collect::<Vec<_>>().join(" ");
    if command.chars().count() > MAX_COMMAND {
        command = command.chars().take(MAX_COMMAND).collect::<String>() + "…";
    }
    let note = serde_json::json!({
        "pid": std::process::id(),
        "command": command,
        "since": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let _ = std::fs::write(dir.join(HOLDER_FILE), note.to_string());
}

/// Called while the lock is still held, just before it is let go: no other run can have
/// replaced the note yet.
pub(crate) fn release(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(HOLDER_FILE));
}

/// What is known of the holder of the lock, from its note; `None` when there is no note
/// or its process is gone (a run killed inside a transaction leaves its note behind).
fn holder(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(HOLDER_FILE)).ok()?;
    let note: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = note.get("pid")?.as_u64()?;
    if Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    let command = note.get("command").and_then(|c| c.as_str()).unwrap_or("");
    let open_for = note
        .get("since")
        .and_then(|s| s.as_str())
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .and_then(|since| (chrono::Utc::now() - since.to_utc()).to_std().ok())
        .map(|d| {
            format!(
                ", open for {}",
                format_duration((d.as_millis() / 100 * 100) as f64)
            )
        })
        .unwrap_or_default();
    Some(format!("pid {pid}, `{command}`{open_for}"))
}

/// The error of a run that waited [`BUSY_TIMEOUT`] for the lock of the database in `dir`:
/// TIMEOUT_ERROR, naming the holder when its note says who it is.
pub fn error(dir: &Path) -> HostError {
    let waited = format_duration(BUSY_TIMEOUT.as_secs_f64() * 1000.0);
    let message = match holder(dir) {
        Some(who) => format!(
            "{BUSY}: another run holds a transaction on it ({who}); this run waited {waited} for it: try again when that run has finished"
        ),
        None => format!(
            "{BUSY}: another process held its write lock for longer than the {waited} this run waited: try again when it has finished"
        ),
    };
    HostError::new(ErrorClass::Timeout, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_names_a_live_holder_and_a_dead_one_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bare = error(dir.path());
        assert_eq!(bare.class, ErrorClass::Timeout);
        assert!(bare.message.starts_with(BUSY), "{}", bare.message);
        assert!(!bare.message.contains("pid"), "{}", bare.message);

        claim(dir.path());
        let named = error(dir.path()).message;
        let me = format!("pid {}", std::process::id());
        assert!(named.contains(&me), "{named}");
        assert!(named.contains("another run holds a transaction"), "{named}");

        // A pid that cannot be alive (above the kernel's limit) is a stale note.
        let stale =
            r#"{"pid": 4294967295, "command": "aether run x", "since": "2020-01-01T00:00:00Z"}"#;
        std::fs::write(dir.path().join(HOLDER_FILE), stale).expect("write");
        assert!(!error(dir.path()).message.contains("4294967295"));

        release(dir.path());
        assert!(!dir.path().join(HOLDER_FILE).exists());
    }
}
