//! Key pairs, key ids and the text of `NAME.key` / `NAME.pub` files.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// First field of a secret key file.
pub(crate) const SECRET_TAG: &str = "aether-ed25519-secret-v1";
/// First field of a public key file.
pub(crate) const PUBLIC_TAG: &str = "aether-ed25519-public-v1";

/// The key id of a public key: the first 16 lowercase hex characters of SHA-256 over its 32
/// bytes.
pub fn key_id(public: &[u8; 32]) -> String {
    Sha256::digest(public)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `text` has the shape of a key id: 16 hex digits (either case).
pub(crate) fn is_key_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A problem with a key file, or with generating a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    /// What is wrong.
    pub kind: KeyErrorKind,
    /// Where the key text came from (a file name), when the caller said so.
    pub source_name: Option<String>,
}

/// What is wrong with a key. `Display` gives a lower-case message that never quotes key
/// material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyErrorKind {
    /// The text holds only blank lines and comments.
    NoKeyLine,
    /// More than one line that is not blank or a comment.
    SeveralKeyLines,
    /// A public key file where a secret key was expected.
    PublicNotSecret,
    /// A secret key file where a public key was expected.
    SecretNotPublic,
    /// The key line does not have the fields of the expected format.
    NotAKey {
        /// The expected line, e.g. `aether-ed25519-secret-v1 <base64>`.
        expected: &'static str,
    },
    /// The key field is not canonical standard base64 with padding.
    BadBase64,
    /// The key field decodes to a number of bytes other than 32.
    WrongLength {
        /// The decoded length.
        len: usize,
    },
    /// The public key bytes are not a point on the curve.
    InvalidPublicKey,
    /// The public key has small order: it would accept forged signatures, so it is refused.
    WeakPublicKey,
    /// A public key file's stored key id is not the id of its key.
    KeyIdMismatch {
        /// The id written in the file.
        stored: String,
        /// The id computed from the key.
        computed: String,
    },
    /// Another public key in the same keyring already has this key id.
    DuplicateKeyId {
        /// The shared key id.
        key_id: String,
        /// Where the key that was kept came from.
        first: Option<String>,
    },
    /// The operating system gave no randomness for a new key.
    NoRandomness {
        /// The system's error.
        detail: String,
    },
}

impl KeyError {
    /// An error with no source name.
    pub fn new(kind: KeyErrorKind) -> KeyError {
        KeyError {
            kind,
            source_name: None,
        }
    }

    /// The same error, naming where the key text came from.
    pub fn with_source(mut self, source_name: impl Into<String>) -> KeyError {
        self.source_name = Some(source_name.into());
        self
    }
}

impl fmt::Display for KeyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyErrorKind::NoKeyLine => f.write_str("no key line (only blank lines and comments)"),
            KeyErrorKind::SeveralKeyLines => f.write_str("a key file holds exactly one key line"),
            KeyErrorKind::PublicNotSecret => {
                f.write_str("this is a public key; signing needs the secret `.key` file")
            }
            KeyErrorKind::SecretNotPublic => {
                f.write_str("this is a secret key; a keyring holds public `.pub` files only")
            }
            KeyErrorKind::NotAKey { expected } => {
                write!(f, "not a key line (expected `{expected}`)")
            }
            KeyErrorKind::BadBase64 => f.write_str("the key is not valid base64"),
            KeyErrorKind::WrongLength { len } => {
                write!(f, "the key must be 32 bytes, found {len}")
            }
            KeyErrorKind::InvalidPublicKey => f.write_str("not a valid ed25519 public key"),
            KeyErrorKind::WeakPublicKey => {
                f.write_str("weak ed25519 public key (small order) is refused")
            }
            KeyErrorKind::KeyIdMismatch { stored, computed } => write!(
                f,
                "key id {stored} does not match the key (its id is {computed})"
            ),
            KeyErrorKind::DuplicateKeyId { key_id, first } => match first {
                Some(first) => write!(f, "key id {key_id} is already used by {first}"),
                None => write!(f, "key id {key_id} is already used by another key"),
            },
            KeyErrorKind::NoRandomness { detail } => {
                write!(f, "no randomness from the operating system: {detail}")
            }
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source_name {
            Some(name) => write!(f, "{name}: {}", self.kind),
            None => self.kind.fmt(f),
        }
    }
}

impl std::error::Error for KeyError {}

/// A secret signing key. `Debug` shows only its key id; the key bytes are wiped on drop.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// The key for a 32-byte seed (the content of a secret key file).
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(seed))
    }

    /// The id of the matching public key.
    pub fn key_id(&self) -> String {
        key_id(self.0.verifying_key().as_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let key = self.0.verifying_key();
        PublicKey {
            id: key_id(key.as_bytes()),
            key,
        }
    }

    /// The text of a secret key file: `aether-ed25519-secret-v1 <base64 seed>` and a newline.
    pub fn file_text(&self) -> String {
        format!("{SECRET_TAG} {}\n", B64.encode(self.0.to_bytes()))
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.key_id())
    }
}

/// A public key with its key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: String,
}

impl PublicKey {
    /// A public key from its 32 bytes; fails on bytes that are not a point or a weak key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| KeyError::new(KeyErrorKind::InvalidPublicKey))?;
        if key.is_weak() {
            return Err(KeyError::new(KeyErrorKind::WeakPublicKey));
        }
        Ok(PublicKey {
            id: key_id(bytes),
            key,
        })
    }

    /// The key id (16 lowercase hex characters).
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The 32 bytes of the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The text of a public key file: `aether-ed25519-public-v1 <base64 key> <key-id>` and a
    /// newline.
    pub fn file_text(&self) -> String {
        format!(
            "{PUBLIC_TAG} {} {}\n",
            B64.encode(self.key.as_bytes()),
            self.id
        )
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// A freshly generated key pair.
#[derive(Debug)]
pub struct SigningKeyPair {
    secret: SecretKey,
    public: PublicKey,
}

impl SigningKeyPair {
    /// Generate a key pair from the operating system's random source.
    pub fn generate() -> Result<SigningKeyPair, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| {
            KeyError::new(KeyErrorKind::NoRandomness {
                detail: e.to_string(),
            })
        })?;
        Ok(SigningKeyPair::from_secret(SecretKey::from_seed(&seed)))
    }

    /// The pair of a known secret key.
    pub fn from_secret(secret: SecretKey) -> SigningKeyPair {
        SigningKeyPair {
            public: secret.public_key(),
            secret,
        }
    }

    /// The key id of the pair.
    pub fn key_id(&self) -> String {
        self.public.id.clone()
    }

    /// The secret half, for signing.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The public half, for a keyring.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The content of `NAME.key`.
    pub fn secret_file_text(&self) -> String {
        self.secret.file_text()
    }

    /// The content of `NAME.pub`.
    pub fn public_file_text(&self) -> String {
        self.public.file_text()
    }
}

/// The fields of the one key line of a key file (blank lines and `#` comments skipped).
fn key_fields(text: &str) -> Result<Vec<&str>, KeyError> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines
        .next()
        .ok_or_else(|| KeyError::new(KeyErrorKind::NoKeyLine))?;
    if lines.next().is_some() {
        return Err(KeyError::new(KeyErrorKind::SeveralKeyLines));
    }
    Ok(line.split([' ', '\t']).filter(|f| !f.is_empty()).collect())
}

/// Decode a base64 field that must hold 32 bytes.
fn decode32(b64: &str) -> Result<[u8; 32], KeyError> {
    let bytes = B64
        .decode(b64)
        .map_err(|_| KeyError::new(KeyErrorKind::BadBase64))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| KeyError::new(KeyErrorKind::WrongLength { len }))
}

/// Parse the text of a secret key file (`aether-ed25519-secret-v1 <base64 seed>`).
pub fn parse_secret_key(text: &str) -> Result<SecretKey, KeyError> {
    match key_fields(text)?.as_slice() {
        [SECRET_TAG, seed] => Ok(SecretKey::from_seed(&decode32(seed)?)),
        [PUBLIC_TAG, ..] => Err(KeyError::new(KeyErrorKind::PublicNotSecret)),
        _ => Err(KeyError::new(KeyErrorKind::NotAKey {
            expected: "aether-ed25519-secret-v1 <base64>",
        })),
    }
}

/// Parse the text of a public key file (`aether-ed25519-public-v1 <base64 key> <key-id>`). The
/// stored key id must be the id of the key (compared case-insensitively).
pub fn parse_public_key(text: &str) -> Result<PublicKey, KeyError> {
    match key_fields(text)?.as_slice() {
        [PUBLIC_TAG, b64, stored] => {
            let key = PublicKey::from_bytes(&decode32(b64)?)?;
            if !stored.eq_ignore_ascii_case(&key.id) {
                return Err(KeyError::new(KeyErrorKind::KeyIdMismatch {
                    stored: stored.to_string(),
                    computed: key.id,
                }));
            }
            Ok(key)
        }
        [SECRET_TAG, ..] => Err(KeyError::new(KeyErrorKind::SecretNotPublic)),
        _ => Err(KeyError::new(KeyErrorKind::NotAKey {
            expected: "aether-ed25519-public-v1 <base64> <key-id>",
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 section 7.1, test 1.
    const RFC_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn hex32(hex: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    fn expected_id(public: &[u8]) -> String {
        let digest = Sha256::digest(public);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        hex[..16].to_string()
    }

    #[test]
    fn key_id_is_16_lowercase_hex_of_sha256() {
        let public = hex32(RFC_PUBLIC);
        let id = key_id(&public);
        assert_eq!(id, expected_id(&public));
        assert_eq!(id.len(), 16);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let secret = SecretKey::from_seed(&hex32(RFC_SEED));
        assert_eq!(secret.public_key().to_bytes(), public, "RFC 8032 vector");
        assert_eq!(secret.key_id(), id);
    }

    #[test]
    fn generated_pair_ids_match_sha256_of_the_public_key() {
        let pair = SigningKeyPair::generate().expect("randomness");
        let raw = B64
            .decode(
                pair.public_file_text()
                    .split(' ')
                    .nth(1)
                    .expect("key field"),
            )
            .expect("base64");
        assert_eq!(raw.len(), 32);
        assert_eq!(pair.key_id(), expected_id(&raw));
        assert_eq!(pair.secret().key_id(), pair.key_id());
        assert_ne!(
            SigningKeyPair::generate().expect("randomness").key_id(),
            pair.key_id(),
            "two generated keys differ"
        );
    }

    #[test]
    fn key_files_round_trip() {
        let pair = SigningKeyPair::generate().expect("randomness");
        let secret_text = pair.secret_file_text();
        let public_text = pair.public_file_text();
        assert!(
            secret_text.starts_with("aether-ed25519-secret-v1 ") && secret_text.ends_with('\n')
        );
        assert_eq!(secret_text.lines().count(), 1);
        assert_eq!(
            public_text,
            format!(
                "aether-ed25519-public-v1 {} {}\n",
                B64.encode(pair.public().to_bytes()),
                pair.key_id()
            )
        );
        let secret = parse_secret_key(&secret_text).expect("secret parses");
        assert_eq!(secret.key_id(), pair.key_id());
        assert_eq!(secret.file_text(), secret_text);
        let public = parse_public_key(&public_text).expect("public parses");
        assert_eq!(&public, pair.public());
        assert_eq!(public.file_text(), public_text);
    }

    #[test]
    fn comments_blank_lines_crlf_and_case_are_tolerated() {
        let pair = SigningKeyPair::generate().expect("randomness");
        let secret = format!(
            "# ci release key\r\n\r\n{}  \r\n# end\r\n",
            pair.secret_file_text().trim_end()
        );
        assert_eq!(
            parse_secret_key(&secret).expect("parses").key_id(),
            pair.key_id()
        );
        let public = pair
            .public_file_text()
            .replace(&pair.key_id(), &pair.key_id().to_uppercase())
            .replace(' ', "\t");
        let public = format!("\n#trusted since 2024\n{public}");
        assert_eq!(
            parse_public_key(&public).expect("parses").key_id(),
            pair.key_id()
        );
        assert_eq!(
            parse_secret_key(pair.secret_file_text().trim_end())
                .expect("no final newline")
                .key_id(),
            pair.key_id()
        );
    }

    #[test]
    fn malformed_key_files_are_rejected_with_a_reason() {
        let pair = SigningKeyPair::generate().expect("randomness");
        let secret = pair.secret_file_text();
        let public = pair.public_file_text();
        let seed_b64 = secret
            .split(' ')
            .nth(1)
            .expect("seed")
            .trim_end()
            .to_string();
        let public_b64 = public.split(' ').nth(1).expect("key").to_string();
        let id = pair.key_id();
        let secret_err = |text: &str| parse_secret_key(text).expect_err(text).kind;
        let public_err = |text: &str| parse_public_key(text).expect_err(text).kind;

        assert_eq!(secret_err(""), KeyErrorKind::NoKeyLine);
        assert_eq!(secret_err("# only a comment\n\n"), KeyErrorKind::NoKeyLine);
        assert_eq!(
            secret_err(&format!("{secret}{secret}")),
            KeyErrorKind::SeveralKeyLines
        );
        assert_eq!(secret_err(&public), KeyErrorKind::PublicNotSecret);
        assert_eq!(public_err(&secret), KeyErrorKind::SecretNotPublic);
        let not_secret = KeyErrorKind::NotAKey {
            expected: "aether-ed25519-secret-v1 <base64>",
        };
        let not_public = KeyErrorKind::NotAKey {
            expected: "aether-ed25519-public-v1 <base64> <key-id>",
        };
        for bad in [
            "aether-ed25519-secret-v1\n".to_string(),
            format!("aether-ed25519-secret-v1 {seed_b64} extra\n"),
            format!("aether-ed25519-secret-v2 {seed_b64}\n"),
            format!("{seed_b64}\n"),
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n".to_string(),
            "-----BEGIN PRIVATE KEY-----\n".to_string(),
        ] {
            assert_eq!(secret_err(&bad), not_secret, "{bad}");
        }
        for bad in [
            format!("aether-ed25519-public-v1 {public_b64}\n"),
            format!("aether-ed25519-public-v1 {public_b64} {id} extra\n"),
            format!("{public_b64}\n"),
            format!("{RFC_PUBLIC}\n"),
            format!("ssh-ed25519 {public_b64} {id}\n"),
        ] {
            assert_eq!(public_err(&bad), not_public, "{bad}");
        }
        assert_eq!(
            secret_err("aether-ed25519-secret-v1 !!!!\n"),
            KeyErrorKind::BadBase64
        );
        // Unpadded and non-canonical base64 are refused: one key, one spelling.
        assert_eq!(
            secret_err(&format!(
                "aether-ed25519-secret-v1 {}\n",
                seed_b64.trim_end_matches('=')
            )),
            KeyErrorKind::BadBase64
        );
        assert_eq!(
            secret_err("aether-ed25519-secret-v1 AAAA\n"),
            KeyErrorKind::WrongLength { len: 3 }
        );
        assert_eq!(
            secret_err(&format!(
                "aether-ed25519-secret-v1 {}\n",
                B64.encode([7u8; 64])
            )),
            KeyErrorKind::WrongLength { len: 64 }
        );
        assert_eq!(
            public_err(&format!(
                "aether-ed25519-public-v1 {} {id}\n",
                B64.encode([1u8; 31])
            )),
            KeyErrorKind::WrongLength { len: 31 }
        );
        let wrong_id = public.replace(&id, "0000000000000000");
        assert_eq!(
            public_err(&wrong_id),
            KeyErrorKind::KeyIdMismatch {
                stored: "0000000000000000".into(),
                computed: id.clone(),
            }
        );
        // The identity point has small order: any signature "verifies" under it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = format!(
            "aether-ed25519-public-v1 {} {}\n",
            B64.encode(identity),
            key_id(&identity)
        );
        assert_eq!(public_err(&weak), KeyErrorKind::WeakPublicKey);
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(
            PublicKey::from_bytes(&off_curve)
                .expect_err("not a point")
                .kind,
            KeyErrorKind::InvalidPublicKey
        );
    }

    #[test]
    fn messages_are_lower_case_and_never_quote_the_key() {
        let pair = SigningKeyPair::generate().expect("randomness");
        let seed_b64 = pair
            .secret_file_text()
            .split(' ')
            .nth(1)
            .expect("seed")
            .trim_end()
            .to_string();
        for text in [
            format!("{seed_b64}\n"),
            format!("aether-ed25519-secret-v1 {seed_b64} x\n"),
            format!("aether-ed25519-secret-v1 {seed_b64}\n{seed_b64}\n"),
            format!("aether-ed25519-secret-v1 {}\n", &seed_b64[1..]),
        ] {
            for err in [
                parse_secret_key(&text).expect_err("bad"),
                parse_public_key(&text).expect_err("bad"),
            ] {
                let msg = err.with_source("ci.key").to_string();
                assert!(msg.starts_with("ci.key: "), "{msg}");
                let first = msg["ci.key: ".len()..].chars().next().expect("message");
                assert!(first.is_lowercase(), "{msg}");
                assert!(!msg.ends_with('.'), "{msg}");
                assert!(!msg.contains(&seed_b64[..8]), "leaks the key: {msg}");
            }
        }
        assert_eq!(
            format!("{:?}", pair.secret()),
            format!("SecretKey({})", pair.key_id())
        );
    }
}
