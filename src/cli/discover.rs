//! Finding `.aether` files under the paths given on the command line, and reading them.

use std::path::{Path, PathBuf};

/// Directories never descended into.
pub(crate) const SKIP_DIRS: &[&str] = &[
    ".git",
    "target",
    "node_modules",
    ".venv",
    "venv",
    "build",
    "dist",
    "__pycache__",
];

/// Expand paths: a file is taken as given (whatever its extension), a directory yields its
/// `*.aether` files recursively in sorted order, a missing path or an unreadable directory is
/// kept so it reports IO_ERROR.
pub(crate) fn discover(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = found(paths);
    // A file named twice (directly and through a directory) is checked once, where first found.
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    out
}

fn found(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            // In file name order. Entries sorted together are one directory's, so their
            // paths share the directory's prefix and compare as their names do (without
            // parsing each path for its last component at every comparison).
            let walker = walkdir::WalkDir::new(p)
                .sort_by(|a, b| a.path().as_os_str().cmp(b.path().as_os_str()))
                .into_iter()
                .filter_entry(|e| {
                    e.depth() == 0
                        || !(e.file_type().is_dir()
                            && e.file_name()
                                .to_str()
                                .is_some_and(|n| SKIP_DIRS.contains(&n)))
                });
            for entry in walker {
                let entry = match entry {
                    Ok(entry) => entry,
                    // A directory that cannot be read is kept as a path, so whoever reads
                    // it reports the I/O error: files must never vanish from a count.
                    Err(e) => {
                        if let Some(path) = e.path() {
                            out.push(path.to_path_buf());
                        }
                        continue;
                    }
                };
                // Everything named *.aether but a directory counts: a symlink to a file, and
                // also a FIFO, a socket, a device or a dangling link, which the reader then
                // reports (IO_ERROR) instead of letting them vanish or hang the walk.
                // Directories behind links are not followed, so a link cycle cannot trap it.
                let is_dir = entry.file_type().is_dir()
                    || (entry.file_type().is_symlink() && entry.path().is_dir());
                if !is_dir && is_aether(entry.path()) {
                    out.push(entry.into_path());
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// The `*.aether` files under `root` (or `root` itself when it is a file), in the order of
/// their shown paths; an error when `root` does not exist.
pub(crate) fn discover_tree(root: &Path) -> Result<Vec<PathBuf>, String> {
    if !root.exists() {
        return Err(format!("`{}` does not exist", root.display()));
    }
    let mut files = discover(&[root.to_path_buf()]);
    files.sort_by_cached_key(|p| shown(&p.display().to_string()));
    Ok(files)
}

/// A path as reports show it: `/`-separated, without `.` components or doubled
/// separators (`.//flows/a.aether` shows as `flows/a.aether`).
pub(crate) fn shown(display: &str) -> String {
    let path = Path::new(display);
    if path.is_absolute() {
        return display.replace('\\', "/");
    }
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Read a file, which must be a regular file ([`aether_runtime::files::read_regular`]: a
/// FIFO or a device is refused without blocking).
pub(crate) fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    aether_runtime::files::read_regular(path, None)
}

/// [`read_regular`] as UTF-8 text.
pub(crate) fn read_regular_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_regular(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
}

fn is_aether(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "aether")
}
