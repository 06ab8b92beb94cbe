//! Signing a script and verifying its header against a keyring and a revocation list.

use std::fmt;

use ed25519_dalek::{Signature, Signer};

use crate::header::{header_line, normalise, split_header, strip_headers, Header};
use crate::key::SecretKey;
use crate::trust::{Keyring, Revocations};

/// Sign `source` with `key`: returns the text with line 1 set to
/// `# @signature ed25519 <key-id> <base64 signature>`.
///
/// Every leading `# @signature` line (ed25519, legacy or malformed) is removed first, so headers
/// never stack; a UTF-8 byte order mark stays in front. The body's bytes are kept exactly,
/// `\r\n` included; the signature covers the body with `\r\n` read as `\n`. The header's own
/// line ending is `\r\n` when the body's first line ends in `\r\n`, else `\n`. ed25519 is
/// deterministic, so signing a file signed by the same key returns it unchanged.
pub fn sign(source: &str, key: &SecretKey) -> String {
    let body = strip_headers(source);
    let signature = key.signing_key().sign(normalise(body).as_bytes());
    let eol = match body.find('\n') {
        Some(i) if body[..i].ends_with('\r') => "\r\n",
        _ => "\n",
    };
    let header = header_line(&key.key_id(), &signature.to_bytes());
    format!("{header}{eol}{body}")
}

/// Why a signature is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VerifyErrorKind {
    /// Line 1 is not a `# @signature` header.
    Missing,
    /// A `# @signature` line that cannot be read.
    Malformed,
    /// The legacy `# @signature: <hex>` HMAC header: never trusted.
    LegacyHmac,
    /// Signed by a key that is not in the keyring.
    UnknownKey,
    /// Signed by a revoked key (whether or not the signature is valid).
    Revoked,
    /// The signature does not match the file: it changed after signing, or the header names
    /// the wrong key.
    Mismatch,
}

impl VerifyErrorKind {
    /// Every kind, in the order `verify` tests for them.
    pub const ALL: [VerifyErrorKind; 6] = [
        VerifyErrorKind::Missing,
        VerifyErrorKind::Malformed,
        VerifyErrorKind::LegacyHmac,
        VerifyErrorKind::Revoked,
        VerifyErrorKind::UnknownKey,
        VerifyErrorKind::Mismatch,
    ];

    /// The stable name: `missing`, `malformed`, `legacy-hmac`, `unknown-key`, `revoked` or
    /// `mismatch`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyErrorKind::Missing => "missing",
            VerifyErrorKind::Malformed => "malformed",
            VerifyErrorKind::LegacyHmac => "legacy-hmac",
            VerifyErrorKind::UnknownKey => "unknown-key",
            VerifyErrorKind::Revoked => "revoked",
            VerifyErrorKind::Mismatch => "mismatch",
        }
    }
}

impl fmt::Display for VerifyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// Why it was refused.
    pub kind: VerifyErrorKind,
    /// The key id the header names, when it names one.
    pub key_id: Option<String>,
    /// A one-line, lower-case description for people.
    pub detail: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for VerifyError {}

/// The outcome of verifying one script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// A valid signature by a trusted, unrevoked key.
    Ok {
        /// The signer's key id.
        key_id: String,
    },
    /// The signature is refused.
    Failed(VerifyError),
    /// The caller could not read the file as text, so there was nothing to verify. `verify`
    /// never returns this; it lets the CLI keep one outcome type per file.
    Unreadable {
        /// Why the file could not be read.
        detail: String,
    },
}

impl Verification {
    /// The outcome for a file that could not be read as text.
    pub fn unreadable(detail: &str) -> Verification {
        Verification::Unreadable {
            detail: format!("cannot read the file: {detail}"),
        }
    }

    fn failed(kind: VerifyErrorKind, key_id: Option<&str>, detail: String) -> Verification {
        Verification::Failed(VerifyError {
            kind,
            key_id: key_id.map(str::to_string),
            detail,
        })
    }

    /// Whether the signature is valid and trusted.
    pub fn is_ok(&self) -> bool {
        matches!(self, Verification::Ok { .. })
    }

    /// The refusal, if the signature was refused.
    pub fn error(&self) -> Option<&VerifyError> {
        match self {
            Verification::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// `ok`, `unreadable`, or the refusal's [`VerifyErrorKind::as_str`].
    pub fn reason(&self) -> &'static str {
        match self {
            Verification::Ok { .. } => "ok",
            Verification::Failed(e) => e.kind.as_str(),
            Verification::Unreadable { .. } => "unreadable",
        }
    }

    /// The key id the header names, when it names one.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Verification::Ok { key_id } => Some(key_id),
            Verification::Failed(e) => e.key_id.as_deref(),
            Verification::Unreadable { .. } => None,
        }
    }

    /// A one-line, lower-case description.
    pub fn message(&self) -> String {
        match self {
            Verification::Ok { key_id } => format!("signed by trusted key {key_id}"),
            Verification::Failed(e) => e.detail.clone(),
            Verification::Unreadable { detail } => detail.clone(),
        }
    }
}

/// Verify the signature header of `source` against the trusted keys.
///
/// Checks, in order: the header is present (`missing`), readable (`malformed`) and not the
/// legacy HMAC form (`legacy-hmac`); its key is not revoked (`revoked`, even when the signature
/// is valid); its key is in the keyring (`unknown-key`); the signature matches the normalised
/// body under ed25519's strict rules (`mismatch`). Never panics.
pub fn verify(source: &str, keyring: &Keyring, revoked: &Revocations) -> Verification {
    let (key_id, signature, body_start) = match split_header(source) {
        Header::None => {
            return Verification::failed(
                VerifyErrorKind::Missing,
                None,
                "script is not signed (no `# @signature` header on line 1)".into(),
            )
        }
        Header::Legacy { .. } => {
            return Verification::failed(
                VerifyErrorKind::LegacyHmac,
                None,
                "legacy hmac signature header is never trusted".into(),
            )
        }
        Header::Malformed { reason, .. } => {
            return Verification::failed(
                VerifyErrorKind::Malformed,
                None,
                format!("malformed signature header: {reason}"),
            )
        }
        Header::Ed25519 {
            key_id,
            signature,
            body_start,
        } => (key_id, signature, body_start),
    };
    let id = Some(key_id.as_str());
    if revoked.contains(&key_id) {
        return Verification::failed(
            VerifyErrorKind::Revoked,
            id,
            format!("signed by revoked key {key_id}"),
        );
    }
    let Some(public) = keyring.get(&key_id) else {
        return Verification::failed(
            VerifyErrorKind::UnknownKey,
            id,
            format!("signed by key {key_id}, which is not in the keyring"),
        );
    };
    let body = normalise(&source[body_start..]);
    let signature = Signature::from_bytes(&signature);
    match public
        .verifying_key()
        .verify_strict(body.as_bytes(), &signature)
    {
        Ok(()) => Verification::Ok { key_id },
        Err(_) => Verification::failed(
            VerifyErrorKind::Mismatch,
            id,
            format!("signature by key {key_id} does not match the file"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;

    use super::*;
    use crate::key::SigningKeyPair;

    /// A script with LF endings, a comment, non-ASCII text and no header.
    const SCRIPT: &str = "goal: \"rotate logs → archive\"\n# café\nlet n = 3\nprint(n)\n";

    fn pair(seed: u8) -> SigningKeyPair {
        SigningKeyPair::from_secret(SecretKey::from_seed(&[seed; 32]))
    }

    fn ring(pairs: &[&SigningKeyPair]) -> Keyring {
        let (ring, errors) = Keyring::from_public_keys(
            pairs
                .iter()
                .map(|p| (format!("{}.pub", p.key_id()), p.public_file_text())),
        );
        assert!(errors.is_empty(), "{errors:?}");
        ring
    }

    fn reason(source: &str, keyring: &Keyring) -> &'static str {
        verify(source, keyring, &Revocations::default()).reason()
    }

    #[test]
    fn signed_script_verifies_with_its_key() {
        let a = pair(1);
        let signed = sign(SCRIPT, a.secret());
        let (line_1, body) = signed.split_once('\n').expect("header line");
        assert_eq!(body, SCRIPT, "the body is kept byte for byte");
        let fields: Vec<&str> = line_1.split(' ').collect();
        assert_eq!(fields[..3], ["#", "@signature", "ed25519"]);
        assert_eq!(fields[3], a.key_id());
        assert_eq!(fields[4].len(), 88, "base64 of 64 bytes");
        assert_eq!(fields.len(), 5);
        assert_eq!(
            verify(&signed, &ring(&[&a]), &Revocations::default()),
            Verification::Ok { key_id: a.key_id() }
        );
    }

    #[test]
    fn signature_matches_rfc_8032_test_1() {
        // RFC 8032 section 7.1, test 1: this seed signs the empty message as below.
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let expected = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                        5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        let hex = |h: &str| -> Vec<u8> {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
                .collect()
        };
        let key = SecretKey::from_seed(&hex(seed).try_into().expect("32 bytes"));
        let signed = sign("", &key);
        assert_eq!(
            signed,
            format!(
                "# @signature ed25519 {} {}\n",
                key.key_id(),
                B64.encode(hex(expected))
            )
        );
        let keyring = ring(&[&SigningKeyPair::from_secret(key)]);
        assert!(verify(&signed, &keyring, &Revocations::default()).is_ok());
    }

    #[test]
    fn signing_twice_gives_the_same_text_with_one_header() {
        let a = pair(1);
        let once = sign(SCRIPT, a.secret());
        let twice = sign(&once, a.secret());
        assert_eq!(twice, once);
        assert_eq!(
            twice
                .lines()
                .filter(|l| l.starts_with("# @signature"))
                .count(),
            1
        );
        let crlf = sign(&SCRIPT.replace('\n', "\r\n"), a.secret());
        assert_eq!(sign(&crlf, a.secret()), crlf);
    }

    #[test]
    fn resigning_replaces_any_existing_header() {
        let (a, b) = (pair(1), pair(2));
        let expected = sign(SCRIPT, a.secret());
        let hmac = "0f".repeat(32);
        for existing in [
            sign(SCRIPT, b.secret()),
            format!("# @signature: {hmac}\n{SCRIPT}"),
            format!("# @signature: {hmac}\r\n{SCRIPT}"),
            format!("# @signature ed25519 nonsense\n{SCRIPT}"),
            format!("# @signature\n{SCRIPT}"),
            // Stacked by some other tool: all of them go.
            format!("# @signature: {hmac}\n{}", sign(SCRIPT, b.secret())),
        ] {
            assert_eq!(sign(&existing, a.secret()), expected, "{existing}");
        }
        // Legacy header replaced, and the result verifies.
        let from_legacy = sign(&format!("# @signature: {hmac}\n{SCRIPT}"), a.secret());
        assert!(!from_legacy.contains(&hmac));
        assert_eq!(reason(&from_legacy, &ring(&[&a])), "ok");
        // A later `# @signature` line that is not on line 1 is body, not header.
        let later = format!("{SCRIPT}# @signature: {hmac}\n");
        let signed = sign(&later, a.secret());
        assert!(signed.ends_with(&later));
        assert_eq!(reason(&signed, &ring(&[&a])), "ok");
    }

    /// Every single-byte replacement in the body is caught. Normalisation cannot hide one:
    /// it only deletes a `\r` right before `\n`, and a one-byte replacement either changes a
    /// kept byte or changes how many bytes are deleted (so the length), so no replacement is
    /// skipped as a no-op; the test still checks that claim (`normalise` differs) each time.
    /// Replacements that make the text invalid UTF-8 are skipped: `verify` takes `&str`, and
    /// the CLI refuses such a file before verifying.
    #[test]
    fn every_single_byte_change_of_a_signed_body_fails() {
        let a = pair(1);
        let keyring = ring(&[&a]);
        let none = Revocations::default();
        for script in [SCRIPT.to_string(), SCRIPT.replace('\n', "\r\n")] {
            let signed = sign(&script, a.secret());
            let start = split_header(&signed).body_start();
            let original = normalise(&signed[start..]).into_owned();
            let (mut n_checked, mut n_invalid_utf8) = (0, 0);
            for byte_idx in start..signed.len() {
                for value in 0..=u8::MAX {
                    let mut bytes = signed.clone().into_bytes();
                    if bytes[byte_idx] == value {
                        continue;
                    }
                    bytes[byte_idx] = value;
                    let Ok(changed) = String::from_utf8(bytes) else {
                        n_invalid_utf8 += 1;
                        continue;
                    };
                    assert_ne!(
                        normalise(&changed[start..]),
                        original,
                        "no-op at {byte_idx}"
                    );
                    assert_eq!(
                        verify(&changed, &keyring, &none).reason(),
                        "mismatch",
                        "byte {byte_idx} set to {value:#04x}"
                    );
                    n_checked += 1;
                }
            }
            let n_body = signed.len() - start;
            assert_eq!(n_checked + n_invalid_utf8, n_body * 255);
            assert!(n_checked > n_body * 120, "{n_checked} of {n_body} bytes");
        }
    }

    /// No one-byte change to the header is accepted: the header has one encoding only (an
    /// upper-cased hex letter of the key id or a tab for a space used to verify).
    #[test]
    fn single_byte_changes_of_the_header_are_all_refused() {
        let a = pair(1);
        let keyring = ring(&[&a]);
        let none = Revocations::default();
        let signed = sign(SCRIPT, a.secret());
        let header_len = split_header(&signed).body_start();
        let mut n_tried = 0;
        for byte_idx in 0..header_len {
            for value in 0..=0x7f_u8 {
                let mut bytes = signed.clone().into_bytes();
                if bytes[byte_idx] == value {
                    continue;
                }
                bytes[byte_idx] = value;
                let changed = String::from_utf8(bytes).expect("ascii");
                assert!(
                    !verify(&changed, &keyring, &none).is_ok(),
                    "byte {byte_idx} set to {value:#04x}"
                );
                n_tried += 1;
            }
        }
        assert_eq!(n_tried, header_len * 127);
    }

    #[test]
    fn a_key_outside_the_keyring_is_unknown() {
        let (a, b) = (pair(1), pair(2));
        let signed = sign(SCRIPT, b.secret());
        let outcome = verify(&signed, &ring(&[&a]), &Revocations::default());
        assert_eq!(outcome.reason(), "unknown-key");
        assert_eq!(outcome.key_id(), Some(b.key_id().as_str()));
        assert_eq!(reason(&signed, &Keyring::default()), "unknown-key");
    }

    #[test]
    fn a_signature_by_one_key_under_another_keys_id_is_a_mismatch() {
        let (a, b) = (pair(1), pair(2));
        let by_a = sign(SCRIPT, a.secret());
        let claims_b = by_a.replacen(&a.key_id(), &b.key_id(), 1);
        assert_ne!(claims_b, by_a);
        let outcome = verify(&claims_b, &ring(&[&a, &b]), &Revocations::default());
        assert_eq!(outcome.reason(), "mismatch");
        assert_eq!(outcome.key_id(), Some(b.key_id().as_str()));
    }

    #[test]
    fn a_revoked_key_is_refused_even_with_a_valid_signature() {
        let (a, b) = (pair(1), pair(2));
        let keyring = ring(&[&a]);
        let revoked = Revocations::parse(&format!(
            "# leaked\n{}  # ci key\n{}\n",
            a.key_id().to_uppercase(),
            b.key_id()
        ));
        let signed = sign(SCRIPT, a.secret());
        assert_eq!(
            verify(&signed, &keyring, &Revocations::default()).reason(),
            "ok"
        );
        let outcome = verify(&signed, &keyring, &revoked);
        assert_eq!(outcome.reason(), "revoked");
        assert_eq!(
            outcome.message(),
            format!("signed by revoked key {}", a.key_id())
        );
        // Revoked wins over unknown and over mismatch too.
        assert_eq!(
            verify(&sign(SCRIPT, b.secret()), &keyring, &revoked).reason(),
            "revoked"
        );
        let tampered = signed.replace("let n = 3", "let n = 4");
        assert_eq!(verify(&tampered, &keyring, &revoked).reason(), "revoked");
    }

    #[test]
    fn every_truncation_of_the_header_is_malformed_or_missing() {
        let a = pair(1);
        let keyring = ring(&[&a]);
        let signed = sign(SCRIPT, a.secret());
        let line_len = signed.find('\n').expect("header line");
        for cut in 0..line_len {
            let prefix = &signed[..cut];
            for source in [
                format!("{prefix}\n{SCRIPT}"),
                format!("{prefix}\r\n{SCRIPT}"),
                prefix.to_string(),
            ] {
                let outcome = verify(&source, &keyring, &Revocations::default());
                assert!(
                    matches!(outcome.reason(), "malformed" | "missing"),
                    "cut {cut}: {outcome:?}"
                );
            }
        }
        // Cutting the signed file anywhere never leaves a valid signature either.
        for cut in 0..signed.len() {
            if signed.is_char_boundary(cut) {
                assert!(!verify(&signed[..cut], &keyring, &Revocations::default()).is_ok());
            }
        }
    }

    #[test]
    fn bad_base64_and_wrong_lengths_are_malformed() {
        let a = pair(1);
        let keyring = ring(&[&a]);
        let id = a.key_id();
        let good = sign(SCRIPT, a.secret());
        let sig = good
            .split(' ')
            .nth(4)
            .expect("signature")
            .split('\n')
            .next()
            .expect("line");
        for header in [
            format!("# @signature ed25519 {id} !!{}", &sig[2..]),
            format!("# @signature ed25519 {id} {}", &sig[..sig.len() - 1]),
            format!("# @signature ed25519 {id} {}", sig.trim_end_matches('=')),
            format!("# @signature ed25519 {id} {}", B64.encode([1u8; 63])),
            format!("# @signature ed25519 {id} {}", B64.encode([1u8; 65])),
            format!("# @signature ed25519 {id} {}", B64.encode([1u8; 128])),
            format!("# @signature ed25519 {id}"),
            format!("# @signature ed25519 {sig}"),
            format!("# @signature ed25519 {} {sig}", &id[..15]),
            format!("# @signature ed25519 {id} {sig} {sig}"),
            format!("# @signature ed448 {id} {sig}"),
            "# @signature".to_string(),
            "# @signature: not-hex".to_string(),
        ] {
            let outcome = verify(
                &format!("{header}\n{SCRIPT}"),
                &keyring,
                &Revocations::default(),
            );
            assert_eq!(outcome.reason(), "malformed", "{header}");
            assert!(outcome
                .message()
                .starts_with("malformed signature header: "));
        }
    }

    #[test]
    fn a_non_canonical_signature_is_a_mismatch() {
        let a = pair(1);
        let signed = sign(SCRIPT, a.secret());
        let header = split_header(&signed);
        let Header::Ed25519 { mut signature, .. } = header else {
            panic!("signed: {header:?}")
        };
        // S + L encodes the same scalar as S: strict verification must refuse it.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (s, l) in signature[32..].iter_mut().zip(L) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        let forged = format!(
            "{}\n{SCRIPT}",
            crate::header::header_line(&a.key_id(), &signature)
        );
        assert_eq!(reason(&forged, &ring(&[&a])), "mismatch");
    }

    #[test]
    fn a_legacy_hmac_header_is_never_trusted() {
        let a = pair(1);
        let legacy = format!("# @signature: {}\n{SCRIPT}", "ab".repeat(32));
        let outcome = verify(&legacy, &ring(&[&a]), &Revocations::default());
        assert_eq!(outcome.reason(), "legacy-hmac");
        assert_eq!(outcome.key_id(), None);
        assert_eq!(reason(SCRIPT, &ring(&[&a])), "missing");
    }

    #[test]
    fn crlf_and_lf_copies_verify_alike() {
        let a = pair(1);
        let keyring = ring(&[&a]);
        let signed_lf = sign(SCRIPT, a.secret());
        let as_crlf = signed_lf.replace('\n', "\r\n");
        assert_eq!(reason(&as_crlf, &keyring), "ok");
        let signed_crlf = sign(&SCRIPT.replace('\n', "\r\n"), a.secret());
        assert_eq!(
            signed_crlf, as_crlf,
            "same signature, header ending follows the body"
        );
        assert_eq!(reason(&signed_crlf.replace("\r\n", "\n"), &keyring), "ok");
        // Mixed endings: the header follows the body's first line; all copies agree.
        let mixed = "goal: \"g\"\r\nlet n = 1\nprint(n)\r\n";
        let signed_mixed = sign(mixed, a.secret());
        assert!(signed_mixed.ends_with(mixed));
        assert_eq!(
            signed_mixed.lines().next().map(|l| l.ends_with('\r')),
            Some(false)
        );
        assert!(signed_mixed
            .split('\n')
            .next()
            .expect("line")
            .ends_with('\r'));
        assert_eq!(reason(&signed_mixed, &keyring), "ok");
        assert_eq!(reason(&signed_mixed.replace("\r\n", "\n"), &keyring), "ok");
        // A lone `\r` is not a line ending: adding one is a change.
        let lone_cr = signed_lf.replacen("let n", "let\rn", 1);
        assert_eq!(reason(&lone_cr, &keyring), "mismatch");
    }

    #[test]
    fn a_byte_order_mark_is_dropped_when_signing_and_refused_before_a_header() {
        let a = pair(1);
        let keyring = ring(&[&a]);
        let with_bom = format!("\u{FEFF}{SCRIPT}");
        let signed = sign(&with_bom, a.secret());
        assert_eq!(signed, sign(SCRIPT, a.secret()));
        assert!(signed.starts_with("# @signature ed25519 "));
        assert_eq!(reason(&signed, &keyring), "ok");
        assert_eq!(reason(&format!("\u{FEFF}{signed}"), &keyring), "malformed");
        // Signing the refused file again repairs it.
        assert_eq!(sign(&format!("\u{FEFF}{signed}"), a.secret()), signed);
    }

    #[test]
    fn outcomes_name_their_reason_and_read_as_lower_case() {
        let (a, b) = (pair(1), pair(2));
        let keyring = ring(&[&a]);
        let revoked = Revocations::parse(&pair(3).key_id());
        let signed = sign(SCRIPT, a.secret());
        let cases = [
            (SCRIPT.to_string(), VerifyErrorKind::Missing),
            (
                format!("# @signature\n{SCRIPT}"),
                VerifyErrorKind::Malformed,
            ),
            (
                format!("# @signature: {}\n{SCRIPT}", "0".repeat(64)),
                VerifyErrorKind::LegacyHmac,
            ),
            (sign(SCRIPT, pair(3).secret()), VerifyErrorKind::Revoked),
            (sign(SCRIPT, b.secret()), VerifyErrorKind::UnknownKey),
            (format!("{signed}\n"), VerifyErrorKind::Mismatch),
        ];
        for ((source, kind), listed) in cases.iter().zip(VerifyErrorKind::ALL) {
            assert_eq!(*kind, listed);
            let outcome = verify(source, &keyring, &revoked);
            let err = outcome.error().expect("refused");
            assert_eq!(err.kind, *kind);
            assert_eq!(outcome.reason(), kind.as_str());
            assert_eq!(err.to_string(), outcome.message());
            let msg = outcome.message();
            assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
        let names: Vec<&str> = VerifyErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "missing",
                "malformed",
                "legacy-hmac",
                "revoked",
                "unknown-key",
                "mismatch"
            ]
        );
        let ok = verify(&signed, &keyring, &revoked);
        assert_eq!(
            ok.message(),
            format!("signed by trusted key {}", a.key_id())
        );
        assert_eq!(ok.error(), None);
        let unreadable = Verification::unreadable("not valid UTF-8");
        assert_eq!(unreadable.reason(), "unreadable");
        assert!(!unreadable.is_ok());
        assert_eq!(
            unreadable.message(),
            "cannot read the file: not valid UTF-8"
        );
    }

    /// A signed script and its header line (without the line ending).
    fn signed_script(seed: u8) -> (String, String) {
        let signed = sign(SCRIPT, pair(seed).secret());
        let header = signed.lines().next().expect("a header line").to_string();
        (signed, header)
    }

    /// The base64 alphabet's index of `c`.
    fn b64_index(c: u8) -> u8 {
        match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        }
    }

    #[test]
    fn stray_bits_in_the_last_base64_character_are_refused() {
        // 64 bytes are 85 full characters and one carrying 4 bits, then `==`: the 2 low
        // bits of that character are zero in canonical base64. Setting them decodes to the
        // same bytes with a lenient decoder, so it must be refused.
        let (signed, header) = signed_script(4);
        let keyring = ring(&[&pair(4)]);
        let last = header.len() - 3;
        let c = header.as_bytes()[last];
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for low in 1..4u8 {
            let other = ALPHABET[usize::from(b64_index(c) | low)];
            let variant = format!(
                "{}{}{}",
                &header[..last],
                other as char,
                &signed[last + 1..]
            );
            assert_ne!(reason(&variant, &keyring), "ok", "{variant}");
        }
        // Without padding, or with one `=` only.
        for cut in [1, 2] {
            let variant = format!(
                "{}{}",
                &header[..header.len() - cut],
                &signed[header.len()..]
            );
            assert_ne!(reason(&variant, &keyring), "ok", "{variant}");
        }
    }

    proptest::proptest! {
        /// Every change to the header line of a valid signed file fails verification: the
        /// header has exactly one accepted encoding (upper-case hex, extra or other spaces,
        /// a byte order mark or any other character in front, a character removed or added
        /// anywhere, the case of any letter flipped).
        #[test]
        fn every_non_canonical_variant_of_a_valid_header_fails(
            seed in 1u8..4,
            pos in 0usize..200,
            edit in 0usize..4,
            inserted in proptest::sample::select(vec![
                " ", "\t", "\u{FEFF}", "\u{A0}", "\u{200B}", "=", "0", "A", "a", "#", "\r\n", "\n",
            ]),
        ) {
            let (signed, header) = signed_script(seed);
            let keyring = ring(&[&pair(seed)]);
            proptest::prop_assert_eq!(reason(&signed, &keyring), "ok");
            // Positions in the header line and its `\n`.
            let at = pos % (header.len() + 1);
            let variant = match edit {
                // Insert a character before position `at` (the start of the file included).
                0 => format!("{}{inserted}{}", &signed[..at], &signed[at..]),
                // Remove the character at `at` (the header's `\n` included).
                1 => format!("{}{}", &signed[..at], &signed[at + 1..]),
                // Flip the case of a letter at or after `at` in the header.
                2 => {
                    let Some(i) = (at..header.len()).chain(0..at)
                        .find(|&i| header.as_bytes()[i].is_ascii_alphabetic()) else {
                        return Ok(());
                    };
                    let c = header.as_bytes()[i] as char;
                    let flipped = if c.is_ascii_lowercase() { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
                    format!("{}{flipped}{}", &signed[..i], &signed[i + 1..])
                }
                // A byte order mark, or whitespace, in front of the header.
                _ => format!("{inserted}{signed}"),
            };
            // `\r\n` in place of the header's `\n` is the CRLF form of the same file.
            let same_file = variant.replacen("\r\n", "\n", 1) == signed
                && variant.find("\r\n") == Some(header.len());
            if !same_file && variant != signed {
                proptest::prop_assert_ne!(reason(&variant, &keyring), "ok", "{:?}", variant);
            }
        }
    }
}
