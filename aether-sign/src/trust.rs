//! What a verification trusts: the keyring of public keys and the revocation list.

use std::collections::{BTreeMap, BTreeSet};

use crate::key::{parse_public_key, KeyError, KeyErrorKind, PublicKey};

/// Trusted public keys, looked up by key id (case-insensitively).
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    /// By lowercase key id: the key and where it came from.
    keys: BTreeMap<String, (PublicKey, Option<String>)>,
}

impl Keyring {
    /// Build a keyring from `(source_name, text)` pairs, one public key file each. Texts that do
    /// not parse, and keys whose id is already taken by a different key, are left out and
    /// returned as errors naming their source; the same key twice is not an error.
    pub fn from_public_keys<S, T>(
        sources: impl IntoIterator<Item = (S, T)>,
    ) -> (Keyring, Vec<KeyError>)
    where
        S: Into<String>,
        T: AsRef<str>,
    {
        let mut ring = Keyring::default();
        let mut errors = Vec::new();
        for (source_name, text) in sources {
            let source_name = source_name.into();
            let added = parse_public_key(text.as_ref())
                .and_then(|key| ring.add_from(key, Some(source_name.clone())));
            if let Err(e) = added {
                errors.push(e.with_source(source_name));
            }
        }
        (ring, errors)
    }

    /// Trust `key`. Fails when a different key already has the same key id (the ids are 64-bit
    /// labels, so a collision can be manufactured; the first key stays).
    pub fn add(&mut self, key: PublicKey) -> Result<(), KeyError> {
        self.add_from(key, None)
    }

    fn add_from(&mut self, key: PublicKey, source_name: Option<String>) -> Result<(), KeyError> {
        match self.keys.get(key.key_id()) {
            Some((kept, _)) if *kept == key => Ok(()),
            Some((_, first)) => Err(KeyError::new(KeyErrorKind::DuplicateKeyId {
                key_id: key.key_id().to_string(),
                first: first.clone(),
            })),
            None => {
                self.keys
                    .insert(key.key_id().to_string(), (key, source_name));
                Ok(())
            }
        }
    }

    /// The trusted key with this id, if any.
    pub fn get(&self, key_id: &str) -> Option<&PublicKey> {
        self.keys
            .get(&key_id.to_ascii_lowercase())
            .map(|(key, _)| key)
    }

    /// Where the key with this id came from, when it was added from a named source.
    pub fn source_name(&self, key_id: &str) -> Option<&str> {
        self.keys
            .get(&key_id.to_ascii_lowercase())
            .and_then(|(_, source)| source.as_deref())
    }

    /// The trusted keys, in key id order.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values().map(|(key, _)| key)
    }

    /// The number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Revoked key ids. A script signed by a revoked key is refused even when its signature is
/// valid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revocations {
    /// Lowercase.
    ids: BTreeSet<String>,
}

impl Revocations {
    /// Parse a revocation list: key ids separated by lines, spaces or commas; `#` starts a
    /// comment; blank lines are skipped. Words that are not key ids are ignored here; the
    /// CLI uses [`Revocations::parse_checked`], which refuses them.
    pub fn parse(text: &str) -> Revocations {
        let (ids, _) = Revocations::scan(text);
        Revocations { ids }
    }

    /// Like [`Revocations::parse`], but a word that is not a 16-hex-digit key id is an error:
    /// a mistyped revocation list must stop verification, not trust the key it meant to revoke.
    pub fn parse_checked(text: &str) -> Result<Revocations, String> {
        let (ids, bad) = Revocations::scan(text);
        match bad.first() {
            None => Ok(Revocations { ids }),
            Some((line, word)) => Err(format!(
                "line {line}: `{word}` is not a key id (16 hex digits; one per line, `#` comments)"
            )),
        }
    }

    /// Ids and unrecognised words `(line, word)`. A leading byte-order mark is skipped, commas
    /// separate like spaces, and `#` starts a comment even inside a word (`id#note`).
    fn scan(text: &str) -> (BTreeSet<String>, Vec<(usize, String)>) {
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        let mut ids = BTreeSet::new();
        let mut bad = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            for word in line.split(|c: char| c.is_whitespace() || c == ',') {
                if word.is_empty() {
                    continue;
                }
                if word.len() == 16 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
                    ids.insert(word.to_ascii_lowercase());
                } else {
                    bad.push((n + 1, word.to_string()));
                }
            }
        }
        (ids, bad)
    }

    /// Revoke one more key id.
    pub fn insert(&mut self, key_id: &str) {
        self.ids.insert(key_id.to_ascii_lowercase());
    }

    /// Whether `key_id` is revoked (compared case-insensitively).
    pub fn contains(&self, key_id: &str) -> bool {
        self.ids.contains(&key_id.to_ascii_lowercase())
    }

    /// The revoked ids, lowercase, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }

    /// The number of revoked ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SigningKeyPair;

    fn pair() -> SigningKeyPair {
        SigningKeyPair::generate().expect("randomness")
    }

    #[test]
    fn keyring_finds_keys_by_id_in_any_case() {
        let (a, b) = (pair(), pair());
        let (ring, errors) = Keyring::from_public_keys([
            ("a.pub", a.public_file_text()),
            ("b.pub", b.public_file_text()),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.get(&a.key_id()), Some(a.public()));
        assert_eq!(ring.get(&b.key_id().to_uppercase()), Some(b.public()));
        assert_eq!(ring.source_name(&a.key_id()), Some("a.pub"));
        assert_eq!(ring.get("0000000000000000"), None);
        assert_eq!(ring.keys().count(), 2);
    }

    #[test]
    fn bad_key_files_are_reported_with_their_source_and_skipped() {
        let (a, b) = (pair(), pair());
        let (ring, errors) = Keyring::from_public_keys(vec![
            ("a.pub".to_string(), a.public_file_text()),
            ("secret.pub".to_string(), b.secret_file_text()),
            ("empty.pub".to_string(), "# nothing\n".to_string()),
            ("again.pub".to_string(), a.public_file_text()),
        ]);
        assert_eq!(ring.len(), 1);
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "secret.pub: this is a secret key; a keyring holds public `.pub` files only",
                "empty.pub: no key line (only blank lines and comments)",
            ]
        );
        assert_eq!(errors[0].source_name.as_deref(), Some("secret.pub"));
    }

    #[test]
    fn a_different_key_with_a_taken_id_is_refused() {
        let (a, b) = (pair(), pair());
        let mut ring = Keyring::default();
        ring.add(a.public().clone()).expect("first");
        ring.add(a.public().clone()).expect("same key again");
        assert!(ring.add(b.public().clone()).is_ok());
        // A real 64-bit collision is costly to build here; fake one by using a map entry
        // whose id belongs to another key.
        let mut forged = Keyring::default();
        forged
            .keys
            .insert(a.key_id(), (b.public().clone(), Some("b.pub".into())));
        let err = forged.add(a.public().clone()).expect_err("collision");
        assert_eq!(
            err.kind,
            KeyErrorKind::DuplicateKeyId {
                key_id: a.key_id(),
                first: Some("b.pub".into()),
            }
        );
        assert_eq!(
            err.with_source("a.pub").to_string(),
            format!("a.pub: key id {} is already used by b.pub", a.key_id())
        );
    }

    #[test]
    fn revocations_skip_comments_and_blank_lines_and_ignore_case() {
        let list = Revocations::parse(
            "# revoked after the 2024 leak\n\
             \n\
             0123456789ABCDEF   # ci key\r\n\
             \t  fedcba9876543210\n\
             1111222233334444#not-a-comment\n\
             #5555666677778888\n\
               # aaaabbbbccccdddd\n",
        );
        assert!(list.contains("0123456789abcdef"));
        assert!(list.contains("0123456789ABCDEF"));
        assert!(list.contains("FEDCBA9876543210"));
        // `#` starts a comment even inside a word: the id before it is revoked.
        assert!(list.contains("1111222233334444"));
        assert!(!list.contains("5555666677778888"));
        assert!(!list.contains("aaaabbbbccccdddd"));
        assert!(!list.contains("# ci key"));
        assert_eq!(list.len(), 3);
        assert_eq!(
            list.ids().collect::<Vec<_>>(),
            ["0123456789abcdef", "1111222233334444", "fedcba9876543210"]
        );
        assert!(Revocations::parse("").is_empty());
        assert!(Revocations::parse("# none yet\n\n").is_empty());
    }

    #[test]
    fn checked_parsing_refuses_words_that_are_not_key_ids() {
        let list = Revocations::parse_checked("\u{FEFF}0123456789abcdef,fedcba9876543210\n")
            .expect("a BOM and commas are fine");
        assert_eq!(list.len(), 2);
        let err = Revocations::parse_checked("0123456789abcdef\nnot-an-id # typo\n")
            .expect_err("a stray word must not pass");
        assert!(err.starts_with("line 2: `not-an-id`"), "{err}");
    }

    #[test]
    fn several_ids_on_a_line_are_all_revoked() {
        let list = Revocations::parse("0123456789abcdef fedcba9876543210 # both\n");
        assert!(list.contains("0123456789abcdef") && list.contains("fedcba9876543210"));
        let mut list = Revocations::default();
        list.insert("ABCDEF0123456789");
        assert!(list.contains("abcdef0123456789"));
    }
}
