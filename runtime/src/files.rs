//! Reading files that must be regular files, with an optional size cap: the one way the
//! toolchain reads a path it was given (scripts, manifests, plugin executables, and
//! `security.verify_signature`'s argument), and hashing them for plugin pins.

use std::io::Read;
use std::path::Path;

/// Read a file, which must be a regular file (after following symbolic links): a FIFO would
/// block until a writer came (forever, in a CI job), and a device such as `/dev/zero` never
/// ends. The file is opened without blocking and its type checked on the open descriptor,
/// so swapping the path for a FIFO after a check cannot slip through. With `max`, a file
/// longer than `max` bytes is refused (`InvalidData`, "over the limit of N bytes") having
/// read at most `max + 1` bytes, even if it grew after its size was read.
pub fn read_regular(path: &Path, max: Option<u64>) -> std::io::Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    let too_large = |max: u64| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("over the limit of {max} bytes"),
        )
    };
    let limit = max.unwrap_or(u64::MAX);
    if len > limit {
        return Err(too_large(limit));
    }
    // O_NONBLOCK does not change how a regular file reads.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 26));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// The SHA-256 of a regular file (read as [`read_regular`] does, in chunks, so a large
/// file takes no more memory than a small one), as 64 lowercase hex digits.
pub fn sha256_regular(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let (mut file, _) = open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Opens `path` without blocking and checks on the descriptor that it is a regular file;
/// returns it with its length.
fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file ({})", kind_of(&meta.file_type())),
        ));
    }
    Ok((file, meta.len()))
}

/// What kind of file a non-regular file is, for messages.
fn kind_of(ty: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ty.is_dir() {
        "a directory"
    } else if ty.is_fifo() {
        "a FIFO"
    } else if ty.is_socket() {
        "a socket"
    } else if ty.is_char_device() {
        "a character device"
    } else if ty.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_within_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_regular(&p, Some(5)).unwrap(), b"hello");
        assert_eq!(read_regular(&p, None).unwrap(), b"hello");
        let e = read_regular(&p, Some(4)).unwrap_err();
        assert!(e.to_string().contains("over the limit of 4 bytes"), "{e}");
    }

    #[test]
    fn hashes_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_regular(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(sha256_regular(Path::new("/dev/zero")).is_err());
    }

    #[test]
    fn refuses_fifos_devices_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (p, kind) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ] {
            let e = read_regular(p, Some(1 << 20)).unwrap_err();
            assert!(e.to_string().contains(kind), "{}: {e}", p.display());
        }
    }
}
