//! Fingerprints of findings (LANGUAGE.md section 8) and the suppression file format.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

/// First 16 hex characters of SHA-256 over `CODE_NAME|LINE|FIRST_LINE_OF_MESSAGE`
/// (`LINE` is `-` when there is none).
pub fn fingerprint(code_name: &str, line: Option<u32>, message: &str) -> String {
    let line = line.map_or_else(|| "-".to_string(), |l| l.to_string());
    let first = message.lines().next().unwrap_or("");
    let digest = Sha256::digest(format!("{code_name}|{line}|{first}").as_bytes());
    hex16(&digest)
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A parsed suppression file: one fingerprint per line, `#` comments, inline comments after whitespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Suppressions {
    entries: BTreeSet<String>,
}

impl Suppressions {
    pub fn parse(text: &str) -> Suppressions {
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        let entries = text
            .lines()
            .filter_map(|line| {
                let token = line.split_whitespace().next()?;
                (!token.starts_with('#')).then(|| token.to_ascii_lowercase())
            })
            .collect();
        Suppressions { entries }
    }

    pub fn contains(&self, fingerprint: &str) -> bool {
        self.entries.contains(&fingerprint.to_ascii_lowercase())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(String::as_str)
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
