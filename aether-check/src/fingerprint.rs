//! Fingerprints of findings (docs/contract/LANGUAGE.md section 8) and the suppression file format.

use std::collections::{BTreeMap, HashSet};

use sha2::{Digest, Sha256};

/// First 16 hex characters of SHA-256 over `CODE_NAME|LINE|FIRST_LINE_OF_MESSAGE`
/// (`LINE` is `-` when there is none).
pub fn fingerprint(code_name: &str, line: Option<u32>, message: &str) -> String {
    let line = line.map_or_else(|| "-".to_string(), |l| l.to_string());
    let first = message.lines().next().unwrap_or("");
    let digest = Sha256::digest(format!("{code_name}|{line}|{first}").as_bytes());
    hex16(&digest)
}

/// A line-independent fingerprint: first 16 hex characters of SHA-256 over
/// `stable/v1|RULE|PATH|SNIPPET|OCCURRENCE`, where PATH is the file's path relative to the
/// project root (with `/` separators), SNIPPET is the source text of the finding's span with
/// every run of whitespace collapsed to one space ([`normalize_snippet`]), and OCCURRENCE
/// counts earlier findings in the same file with the same rule and snippet (from 0). An
/// edit elsewhere in the file leaves it unchanged; editing the flagged text changes it.
pub fn stable_fingerprint(rule: &str, path: &str, snippet: &str, occurrence: usize) -> String {
    let digest =
        Sha256::digest(format!("stable/v1|{rule}|{path}|{snippet}|{occurrence}").as_bytes());
    hex16(&digest)
}

/// The source text of a span as the stable fingerprint sees it: trimmed, with whitespace
/// runs (including line breaks, so CRLF and LF files agree) collapsed to one space.
pub fn normalize_snippet(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// First 16 hex characters of SHA-256 over a file's bytes: equal for identical copies.
pub fn content_hash(bytes: &[u8]) -> String {
    hex16(&Sha256::digest(bytes))
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A parsed suppression file: one fingerprint (line-based or stable) per line, `#`
/// comments, inline comments after whitespace. Each entry remembers the line it is on, so
/// entries that match nothing can be reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Suppressions {
    /// Lower-cased fingerprint -> the 1-based line of its first appearance.
    entries: BTreeMap<String, u32>,
}

impl Suppressions {
    pub fn parse(text: &str) -> Suppressions {
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        let mut entries = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let Some(token) = line.split_whitespace().next() else {
                continue;
            };
            if !token.starts_with('#') {
                entries
                    .entry(token.to_ascii_lowercase())
                    .or_insert(i as u32 + 1);
            }
        }
        Suppressions { entries }
    }

    pub fn contains(&self, fingerprint: &str) -> bool {
        self.entries.contains_key(&fingerprint.to_ascii_lowercase())
    }

    /// Entries (with their line) that are not in `used`, in file order: suppressions that
    /// matched no finding, like ruff's unused-noqa.
    pub fn stale(&self, used: &HashSet<String>) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = self
            .entries
            .iter()
            .filter(|(fp, _)| !used.contains(fp.as_str()))
            .map(|(fp, line)| (fp.clone(), *line))
            .collect();
        out.sort_by_key(|(_, line)| *line);
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_the_recipe() {
        // Expected values from `printf '%s' 'CODE|LINE|MSG' | sha256sum | cut -c1-16`.
        assert_eq!(
            fingerprint(
                "PARSE_ERROR",
                Some(12),
                "Parse error (assignment) line 12: goal\nmore"
            ),
            "5c93e1c62ffe177c"
        );
        assert_eq!(
            fingerprint("VALIDATION_ERROR", None, "x"),
            "5bdd1283e763ba33"
        );
    }

    #[test]
    fn stable_fingerprint_matches_the_recipe_and_ignores_layout() {
        // `printf '%s' 'stable/v1|A101|flows/x.aether|foo(1)|0' | sha256sum | cut -c1-16`
        assert_eq!(
            stable_fingerprint("A101", "flows/x.aether", "foo(1)", 0),
            "c94ba01d97b9111d"
        );
        assert_eq!(normalize_snippet("  foo(\r\n   1)\t"), "foo( 1)");
        assert_ne!(
            stable_fingerprint("A101", "flows/x.aether", "foo(1)", 0),
            stable_fingerprint("A101", "flows/x.aether", "foo(1)", 1)
        );
    }

    #[test]
    fn stale_entries_are_listed_in_file_order() {
        let s = Suppressions::parse("# c\nbbbb\naaaa # x\ncccc\nbbbb\n");
        let used: HashSet<String> = ["cccc".to_string()].into();
        assert_eq!(
            s.stale(&used),
            vec![("bbbb".to_string(), 2), ("aaaa".to_string(), 3)]
        );
    }

    #[test]
    fn suppression_file_format() {
        let s = Suppressions::parse(
            "# Experimental\na1b2c3d4e5f67890 # deprecated goal syntax\n\n  DEADBEEFCAFE1234\t# x\n",
        );
        assert_eq!(s.len(), 2);
        assert!(s.contains("a1b2c3d4e5f67890"));
        assert!(s.contains("deadbeefcafe1234"));
        assert!(!s.contains("# Experimental"));
    }
}
