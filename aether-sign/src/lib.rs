//! ed25519 signatures over `.aether` sources: keys, key ids, the header format, keyrings, revocations.
//!
//! This crate is a leaf: it depends on no other workspace crate and works on text only. It never
//! reads files, environment variables or the clock; the CLI does that and hands over strings.
//! The only cryptography is ed25519 (`ed25519-dalek`, strict verification) and SHA-256 (`sha2`).
//!
//! # Formats
//!
//! **Key id.** The first 16 lowercase hex characters of SHA-256 over the 32-byte public key
//! ([`key_id`]). It is a label for finding the key: the signature itself is always checked
//! against the full public key, so two keys sharing an id cannot forge each other's signatures.
//! Key ids are compared case-insensitively in keyrings and revocation lists; in a signature
//! header only the lowercase spelling is accepted.
//!
//! **Secret key file** (`NAME.key`), one line:
//!
//! ```text
//! aether-ed25519-secret-v1 <base64 of the 32-byte seed>
//! ```
//!
//! **Public key file** (`NAME.pub`), one line:
//!
//! ```text
//! aether-ed25519-public-v1 <base64 of the 32-byte public key> <key-id>
//! ```
//!
//! Base64 is the standard alphabet with padding, canonical (no stray trailing bits). When a key
//! file is parsed, blank lines and lines starting with `#` are skipped, fields are separated by
//! spaces or tabs, and exactly one key line must remain. A public key's stored key id is
//! recomputed and must match; weak (small-order) public keys are refused. No other key format
//! (bare hex, bare base64, PEM) is accepted.
//!
//! **Signature header**, line 1 of a signed script (docs/contract/LANGUAGE.md section 9):
//!
//! ```text
//! # @signature ed25519 <key-id> <base64 of the 64-byte signature>
//! ```
//!
//! The signed message is the rest of the file after the header line and its line ending
//! (`\n` or `\r\n`), with every `\r\n` replaced by `\n` ([`normalise`]), so an LF and a CRLF
//! checkout of the same script verify alike. The header itself is not signed, so it is
//! accepted in exactly one encoding, the one [`sign`] writes: single spaces, the key id in
//! lowercase hex, the signature in canonical padded base64, nothing after it, and nothing
//! before `#` (a UTF-8 byte order mark there is malformed; [`sign`] drops one). Otherwise a
//! signed file could be varied (a hex letter upper-cased, a tab for a space) and still verify.
//!
//! A line 1 is a header when it starts with `# @signature` followed by a space, a tab, `:` or
//! the end of the line ([`split_header`]); any other comment on line 1 is ordinary text. The
//! legacy form `# @signature: <64 hex>` (an HMAC) is recognised and reported as legacy, never
//! trusted. Any other `# @signature` line (wrong field count, unknown algorithm, key id that is
//! not 16 lowercase hex digits, bad or non-canonical base64, a signature that is not 64 bytes,
//! other spacing, a byte order mark in front) is malformed.
//!
//! **Revocation list**, one key id per line; `#` starts a comment at the start of a line or
//! after whitespace; blank lines are skipped; ids compare case-insensitively. Parsing never
//! fails: every word before a comment is revoked, so a stray word can only revoke more
//! ([`Revocations::parse`]).
//!
//! # Use
//!
//! ```
//! use aether_sign::{sign, verify, Keyring, Revocations, SigningKeyPair};
//!
//! let pair = SigningKeyPair::generate().expect("randomness");
//! let (keyring, errors) =
//!     Keyring::from_public_keys([("ci.pub", pair.public_file_text())]);
//! assert!(errors.is_empty());
//!
//! let signed = sign("goal: \"demo\"\nprint(1)\n", pair.secret());
//! let outcome = verify(&signed, &keyring, &Revocations::default());
//! assert!(outcome.is_ok());
//!
//! let tampered = signed.replace("print(1)", "print(2)");
//! assert_eq!(verify(&tampered, &keyring, &Revocations::default()).reason(), "mismatch");
//! ```

mod header;
mod key;
mod signature;
mod trust;

pub use header::{normalise, split_header, Header};
pub use key::{
    key_id, parse_public_key, parse_secret_key, KeyError, KeyErrorKind, PublicKey, SecretKey,
    SigningKeyPair,
};
pub use signature::{sign, verify, Verification, VerifyError, VerifyErrorKind};
pub use trust::{Keyring, Revocations};
