//! Small things several commands share: markdown table cells and the trust of signature checks
//! (environment switches are parsed in `switches`).
//!
//! This module depends on no other `cli` module, so any of them can use it without an
//! import cycle (`tests/tidy.rs` rejects cycles between `cli` modules).

use std::path::PathBuf;

/// Text for a markdown table cell, also inside a code span: no pipe, backtick or line
/// break can end the cell or the span, and a backslash stays a backslash.
pub(crate) fn md_cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('`', "'")
        .replace(['\n', '\r'], " ")
}

/// The keys and revocations a verification trusts, and where they were read from.
#[derive(Clone)]
pub(crate) struct Trust {
    /// The runtime's type, so `run` hands it to `security.verify_signature` and the plugin
    /// manifest checks as it is.
    pub(crate) keys: aether_runtime::security::Trust,
    pub(crate) keyring_dir: PathBuf,
    pub(crate) revoked_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md_cells_cannot_break_a_table() {
        assert_eq!(md_cell("a|b"), "a\\|b");
        assert_eq!(md_cell("`x`"), "'x'");
        assert_eq!(md_cell("two\r\nlines"), "two  lines");
        assert_eq!(md_cell("c:\\x|y"), "c:\\\\x\\|y");
    }
}
