//! ed25519 signing and verification of `.aether` sources: keys, key ids, the header format, keyrings, revocations.
//!
//! Works on text only: the CLI reads and writes the files.
//!
//! Formats (docs/signing.md):
//! - key id: the first 16 lowercase hex characters of SHA-256 over the 32-byte public key;
//! - secret key file: `aether-ed25519-secret-v1 <base64 32-byte seed>`;
//! - public key file: `aether-ed25519-public-v1 <base64 32-byte key> <key-id>`;
//! - header, line 1 of a signed script: `# @signature ed25519 <key-id> <base64 64-byte signature>`,
//!   over the rest of the file with `\r\n` read as `\n`; the legacy `# @signature: <hex>` (HMAC)
//!   is recognised and never trusted;
//! - revocation list: one key id per line, `#` comments.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

const SECRET_TAG: &str = "aether-ed25519-secret-v1";
const PUBLIC_TAG: &str = "aether-ed25519-public-v1";
const HEADER_PREFIX: &str = "# @signature";

/// A problem with a key file or key text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    /// Where the key came from (a file name), when known.
    pub source: Option<String>,
    pub message: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{s}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for KeyError {}

fn key_error(message: impl Into<String>) -> KeyError {
    KeyError {
        source: None,
        message: message.into(),
    }
}

/// The key id of a public key.
pub fn key_id(public: &[u8; 32]) -> String {
    Sha256::digest(public)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A secret signing key.
pub struct SecretKey(SigningKey);

impl SecretKey {
    pub fn key_id(&self) -> String {
        key_id(self.0.verifying_key().as_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.key_id())
    }
}

/// A trusted public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: String,
}

impl PublicKey {
    pub fn key_id(&self) -> &str {
        &self.id
    }
}

/// A freshly generated key pair.
pub struct SigningKeyPair(SecretKey);

impl SigningKeyPair {
    /// Generate a key from the operating system's random source.
    pub fn generate() -> Result<SigningKeyPair, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| key_error(format!("no randomness: {e}")))?;
        Ok(SigningKeyPair(SecretKey(SigningKey::from_bytes(&seed))))
    }

    pub fn key_id(&self) -> String {
        self.0.key_id()
    }

    pub fn secret(&self) -> &SecretKey {
        &self.0
    }

    /// The content of `NAME.key`.
    pub fn secret_file_text(&self) -> String {
        format!("{SECRET_TAG} {}\n", B64.encode(self.0 .0.to_bytes()))
    }

    /// The content of `NAME.pub`.
    pub fn public_file_text(&self) -> String {
        let public = self.0 .0.verifying_key();
        format!(
            "{PUBLIC_TAG} {} {}\n",
            B64.encode(public.as_bytes()),
            self.key_id()
        )
    }
}

/// The one meaningful line of a key file (comments and blank lines skipped).
fn key_line(text: &str) -> Result<&str, KeyError> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or_else(|| key_error("empty key file"))?;
    if lines.next().is_some() {
        return Err(key_error("a key file holds one key line"));
    }
    Ok(line)
}

fn decode32(b64: &str, what: &str) -> Result<[u8; 32], KeyError> {
    let bytes = B64
        .decode(b64)
        .map_err(|_| key_error(format!("{what} is not valid base64")))?;
    bytes
        .try_into()
        .map_err(|_| key_error(format!("{what} must be 32 bytes")))
}

/// Parse the text of a secret key file.
pub fn parse_secret_key(text: &str) -> Result<SecretKey, KeyError> {
    let line = key_line(text)?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        [SECRET_TAG, seed] => Ok(SecretKey(SigningKey::from_bytes(&decode32(
            seed,
            "the secret key",
        )?))),
        [PUBLIC_TAG, ..] => Err(key_error(
            "this is a public key; signing needs the secret `.key` file",
        )),
        _ => Err(key_error(format!(
            "not an aether secret key (expected `{SECRET_TAG} <base64>`)"
        ))),
    }
}

/// Parse the text of a public key file; the stored key id must match the key.
pub fn parse_public_key(text: &str) -> Result<PublicKey, KeyError> {
    let line = key_line(text)?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [PUBLIC_TAG, b64, stored_id] = fields.as_slice() else {
        return Err(key_error(format!(
            "not an aether public key (expected `{PUBLIC_TAG} <base64> <key-id>`)"
        )));
    };
    let bytes = decode32(b64, "the public key")?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| key_error("not a valid ed25519 public key"))?;
    let id = key_id(&bytes);
    if !stored_id.eq_ignore_ascii_case(&id) {
        return Err(key_error(format!(
            "key id {stored_id} does not match the key (its id is {id})"
        )));
    }
    Ok(PublicKey { key, id })
}

/// The trusted public keys, by key id.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: BTreeMap<String, PublicKey>,
}

impl Keyring {
    /// Build from `(source, text)` pairs; keys that do not parse are returned as errors.
    pub fn from_public_keys(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> (Keyring, Vec<KeyError>) {
        let mut ring = Keyring::default();
        let mut errors = Vec::new();
        for (source, text) in sources {
            match parse_public_key(&text) {
                Ok(k) => {
                    ring.keys.insert(k.id.clone(), k);
                }
                Err(mut e) => {
                    e.source = Some(source);
                    errors.push(e);
                }
            }
        }
        (ring, errors)
    }

    pub fn add(&mut self, key: PublicKey) {
        self.keys.insert(key.id.clone(), key);
    }

    pub fn get(&self, key_id: &str) -> Option<&PublicKey> {
        self.keys.get(&key_id.to_ascii_lowercase())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Revoked key ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revocations {
    ids: BTreeSet<String>,
}

impl Revocations {
    pub fn parse(text: &str) -> Revocations {
        let ids = text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|t| !t.starts_with('#'))
            .map(str::to_ascii_lowercase)
            .collect();
        Revocations { ids }
    }

    pub fn contains(&self, key_id: &str) -> bool {
        self.ids.contains(&key_id.to_ascii_lowercase())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// What line 1 of a script says about its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Header {
    /// No `# @signature` line: the whole text is the body.
    None,
    Ed25519 {
        key_id: String,
        signature: [u8; 64],
        body_start: usize,
    },
    /// `# @signature: <64 hex>`: the legacy HMAC form.
    Legacy {
        body_start: usize,
    },
    Malformed {
        reason: String,
        body_start: usize,
    },
}

impl Header {
    /// Byte offset where the signed body starts.
    pub fn body_start(&self) -> usize {
        match self {
            Header::None => 0,
            Header::Ed25519 { body_start, .. }
            | Header::Legacy { body_start }
            | Header::Malformed { body_start, .. } => *body_start,
        }
    }
}

/// Read the signature header on line 1, if any.
pub fn split_header(source: &str) -> Header {
    if !source.starts_with(HEADER_PREFIX) {
        return Header::None;
    }
    let (line, body_start) = match source.find('\n') {
        Some(i) => (&source[..i], i + 1),
        None => (source, source.len()),
    };
    let line = line.strip_suffix('\r').unwrap_or(line);
    let rest = &line[HEADER_PREFIX.len()..];
    if let Some(hex) = rest.strip_prefix(':') {
        let hex = hex.trim();
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Header::Legacy { body_start };
        }
        return Header::Malformed {
            reason: "legacy header without a 64-hex-digit HMAC".into(),
            body_start,
        };
    }
    if !rest.starts_with([' ', '\t']) {
        return Header::Malformed {
            reason: "expected `# @signature ed25519 <key-id> <signature>`".into(),
            body_start,
        };
    }
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let malformed = |reason: &str| Header::Malformed {
        reason: reason.into(),
        body_start,
    };
    match fields.as_slice() {
        ["ed25519", id, sig] => {
            if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return malformed("the key id must be 16 hex digits");
            }
            let Ok(bytes) = B64.decode(sig) else {
                return malformed("the signature is not valid base64");
            };
            let Ok(signature) = <[u8; 64]>::try_from(bytes.as_slice()) else {
                return malformed("the signature must be 64 bytes");
            };
            Header::Ed25519 {
                key_id: id.to_ascii_lowercase(),
                signature,
                body_start,
            }
        }
        [alg, _, _] => malformed(&format!("unsupported algorithm `{alg}` (only ed25519)")),
        _ => malformed("expected `# @signature ed25519 <key-id> <signature>`"),
    }
}

/// `\r\n` read as `\n`: the text a signature covers.
pub fn normalise(body: &str) -> Cow<'_, str> {
    if body.contains("\r\n") {
        Cow::Owned(body.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(body)
    }
}

/// Sign `source`, replacing any existing `# @signature` header. Deterministic, so signing a
/// signed file returns it unchanged.
pub fn sign(source: &str, key: &SecretKey) -> String {
    let body = &source[split_header(source).body_start()..];
    let signature = key.0.sign(normalise(body).as_bytes());
    let eol = match body.find('\n') {
        Some(i) if i > 0 && body.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    };
    format!(
        "{HEADER_PREFIX} ed25519 {} {}{eol}{body}",
        key.key_id(),
        B64.encode(signature.to_bytes())
    )
}

/// Why a verification failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    Missing,
    Malformed,
    LegacyHmac,
    UnknownKey,
    Revoked,
    Mismatch,
    /// The file could not be read as text (set by the caller).
    Unreadable,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Missing => "missing",
            FailReason::Malformed => "malformed",
            FailReason::LegacyHmac => "legacy-hmac",
            FailReason::UnknownKey => "unknown-key",
            FailReason::Revoked => "revoked",
            FailReason::Mismatch => "mismatch",
            FailReason::Unreadable => "unreadable",
        }
    }
}

/// The outcome of verifying one script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    Ok {
        key_id: String,
    },
    Failed {
        reason: FailReason,
        key_id: Option<String>,
        detail: String,
    },
}

impl Verification {
    fn fail(reason: FailReason, key_id: Option<&str>, detail: impl Into<String>) -> Verification {
        Verification::Failed {
            reason,
            key_id: key_id.map(str::to_string),
            detail: detail.into(),
        }
    }

    /// A file that could not be read as text.
    pub fn unreadable(detail: &str) -> Verification {
        Verification::fail(
            FailReason::Unreadable,
            None,
            format!("cannot read the file: {detail}"),
        )
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Verification::Ok { .. })
    }

    /// `ok`, or the failure reason (`missing`, `malformed`, `legacy-hmac`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Verification::Ok { .. } => "ok",
            Verification::Failed { reason, .. } => reason.as_str(),
        }
    }

    pub fn key_id(&self) -> Option<&str> {
        match self {
            Verification::Ok { key_id } => Some(key_id),
            Verification::Failed { key_id, .. } => key_id.as_deref(),
        }
    }

    /// A one-line, lower-case description.
    pub fn message(&self) -> String {
        match self {
            Verification::Ok { key_id } => format!("signed by trusted key {key_id}"),
            Verification::Failed { detail, .. } => detail.clone(),
        }
    }
}

/// Verify a script's signature against trusted keys. A revoked key is refused even when its
/// signature is valid.
pub fn verify(source: &str, keyring: &Keyring, revoked: &Revocations) -> Verification {
    match split_header(source) {
        Header::None => Verification::fail(FailReason::Missing, None, "script is not signed"),
        Header::Legacy { .. } => Verification::fail(
            FailReason::LegacyHmac,
            None,
            "legacy HMAC signature header is never trusted",
        ),
        Header::Malformed { reason, .. } => Verification::fail(
            FailReason::Malformed,
            None,
            format!("malformed signature header: {reason}"),
        ),
        Header::Ed25519 {
            key_id,
            signature,
            body_start,
        } => {
            let id = Some(key_id.as_str());
            if revoked.contains(&key_id) {
                return Verification::fail(
                    FailReason::Revoked,
                    id,
                    format!("signed by revoked key {key_id}"),
                );
            }
            let Some(public) = keyring.get(&key_id) else {
                return Verification::fail(
                    FailReason::UnknownKey,
                    id,
                    format!("signed by unknown key {key_id}"),
                );
            };
            let body = normalise(&source[body_start..]);
            match public
                .key
                .verify_strict(body.as_bytes(), &Signature::from_bytes(&signature))
            {
                Ok(()) => Verification::Ok { key_id },
                Err(_) => Verification::fail(
                    FailReason::Mismatch,
                    id,
                    format!("signature by key {key_id} does not match the file"),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SigningKeyPair, Keyring) {
        let p = SigningKeyPair::generate().expect("randomness");
        let (ring, errs) = Keyring::from_public_keys([("k.pub".to_string(), p.public_file_text())]);
        assert!(errs.is_empty());
        (p, ring)
    }

    const SCRIPT: &str = "goal: \"g\"\nlet x = 1\nprint(x)\n";

    #[test]
    fn round_trip_and_idempotent() {
        let (p, ring) = pair();
        let signed = sign(SCRIPT, p.secret());
        assert!(signed.starts_with("# @signature ed25519 "));
        assert_eq!(
            verify(&signed, &ring, &Revocations::default()),
            Verification::Ok { key_id: p.key_id() }
        );
        assert_eq!(
            sign(&signed, p.secret()),
            signed,
            "signing twice changes nothing"
        );
        assert_eq!(signed.matches("@signature").count(), 1);
    }

    #[test]
    fn every_single_byte_change_fails() {
        let (p, ring) = pair();
        let signed = sign(SCRIPT, p.secret());
        let start = split_header(&signed).body_start();
        let none = Revocations::default();
        for i in start..signed.len() {
            let mut bytes = signed.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).expect("ascii");
            assert_eq!(
                verify(&changed, &ring, &none).reason(),
                "mismatch",
                "byte {i}"
            );
        }
    }

    #[test]
    fn failures_have_the_right_reason() {
        let (p, ring) = pair();
        let (other, _) = pair();
        let none = Revocations::default();
        assert_eq!(verify(SCRIPT, &ring, &none).reason(), "missing");
        let by_other = sign(SCRIPT, other.secret());
        assert_eq!(verify(&by_other, &ring, &none).reason(), "unknown-key");
        let signed = sign(SCRIPT, p.secret());
        let revoked = Revocations::parse(&format!(
            "# gone\n{}  # leaked\n",
            p.key_id().to_uppercase()
        ));
        assert_eq!(verify(&signed, &ring, &revoked).reason(), "revoked");
        // A signature by another key under this key's id.
        let forged = by_other.replacen(&other.key_id(), &p.key_id(), 1);
        assert_eq!(verify(&forged, &ring, &none).reason(), "mismatch");
        let legacy = format!("# @signature: {}\n{SCRIPT}", "ab".repeat(32));
        assert_eq!(verify(&legacy, &ring, &none).reason(), "legacy-hmac");
        for bad in [
            "# @signature ed25519 xyz AAAA\n",
            "# @signature rsa 0123456789abcdef AAAA\n",
            "# @signature ed25519 0123456789abcdef !!!\n",
            "# @signature ed25519 0123456789abcdef AAAA\n",
            "# @signature\n",
        ] {
            assert_eq!(
                verify(&format!("{bad}{SCRIPT}"), &ring, &none).reason(),
                "malformed",
                "{bad}"
            );
        }
    }

    #[test]
    fn truncated_headers_never_verify() {
        let (p, ring) = pair();
        let signed = sign(SCRIPT, p.secret());
        let header_len = signed.find('\n').expect("header line");
        for cut in 0..header_len {
            let truncated = format!("{}\n{}", &signed[..cut], &signed[header_len + 1..]);
            let outcome = verify(&truncated, &ring, &Revocations::default());
            assert!(
                matches!(outcome.reason(), "malformed" | "missing"),
                "cut {cut}: {outcome:?}"
            );
        }
    }

    #[test]
    fn crlf_and_lf_copies_verify_alike() {
        let (p, ring) = pair();
        let signed = sign(SCRIPT, p.secret());
        let crlf = signed.replace('\n', "\r\n");
        assert!(verify(&crlf, &ring, &Revocations::default()).is_ok());
        let signed_crlf = sign(&SCRIPT.replace('\n', "\r\n"), p.secret());
        assert!(signed_crlf
            .lines()
            .next()
            .is_some_and(|l| !l.ends_with('\r')));
        assert!(
            signed_crlf.contains("\r\n"),
            "keeps the file's line endings"
        );
        assert!(verify(
            &signed_crlf.replace("\r\n", "\n"),
            &ring,
            &Revocations::default()
        )
        .is_ok());
    }

    #[test]
    fn resigning_replaces_legacy_and_other_keys() {
        let (p, ring) = pair();
        let (other, _) = pair();
        let legacy = format!("# @signature: {}\n{SCRIPT}", "cd".repeat(32));
        let signed = sign(&legacy, p.secret());
        assert_eq!(signed.matches("@signature").count(), 1);
        assert!(verify(&signed, &ring, &Revocations::default()).is_ok());
        let resigned = sign(&sign(SCRIPT, other.secret()), p.secret());
        assert_eq!(resigned, sign(SCRIPT, p.secret()));
    }

    #[test]
    fn key_files_round_trip_and_ids_match_sha256() {
        let p = SigningKeyPair::generate().expect("randomness");
        let secret =
            parse_secret_key(&format!("# mine\n{}", p.secret_file_text())).expect("parses");
        assert_eq!(secret.key_id(), p.key_id());
        let public = parse_public_key(&p.public_file_text()).expect("parses");
        let raw = B64
            .decode(
                p.public_file_text()
                    .split_whitespace()
                    .nth(1)
                    .expect("field"),
            )
            .expect("b64");
        let expect: String = Sha256::digest(&raw)
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(public.key_id(), expect);
        assert_eq!(expect.len(), 16);
        assert!(parse_secret_key(&p.public_file_text()).is_err());
        assert!(parse_public_key(&p.secret_file_text()).is_err());
        let wrong_id = p
            .public_file_text()
            .replace(&p.key_id(), "0000000000000000");
        assert!(parse_public_key(&wrong_id).is_err());
        assert!(parse_secret_key("aether-ed25519-secret-v1 AAAA\n").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn verify_never_panics_and_never_trusts_garbage(src in "(# @signature[ -~]{0,120}\n)?[ -~\n]{0,200}") {
            let (p, ring) = pair();
            let outcome = verify(&src, &ring, &Revocations::default());
            proptest::prop_assert!(!outcome.is_ok() || src.contains(&p.key_id()));
            let _ = split_header(&src);
        }
    }
}
