//! The `# @signature` header on line 1 and the normalised body a signature covers.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::key::is_key_id;

/// How every signature header line starts.
pub(crate) const HEADER_PREFIX: &str = "# @signature";
/// The only algorithm.
pub(crate) const ALGORITHM: &str = "ed25519";
/// A UTF-8 byte order mark: refused before a header (the header must be the file's first
/// bytes, so that one signed file has exactly one encoding), dropped when signing.
const BOM: char = '\u{FEFF}';

/// What line 1 of a script says about its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Header {
    /// Line 1 is not a `# @signature` line: the whole text is the body.
    None,
    /// `# @signature ed25519 <key-id> <base64 signature>`, well formed (not yet verified).
    Ed25519 {
        /// The key id, lowercased.
        key_id: String,
        /// The decoded signature.
        signature: [u8; 64],
        /// Byte offset of the body: just after the header line's `\n`, or the end of the text.
        body_start: usize,
    },
    /// `# @signature: <64 hex>`: the legacy HMAC form, never trusted.
    Legacy {
        /// Byte offset of the body.
        body_start: usize,
    },
    /// A `# @signature` line of any other shape.
    Malformed {
        /// What is wrong, lower case.
        reason: String,
        /// Byte offset of the body.
        body_start: usize,
    },
}

impl Header {
    /// Byte offset where the body starts (0 when there is no header).
    pub fn body_start(&self) -> usize {
        match self {
            Header::None => 0,
            Header::Ed25519 { body_start, .. }
            | Header::Legacy { body_start }
            | Header::Malformed { body_start, .. } => *body_start,
        }
    }
}

/// Read the signature header on line 1 of `source`, if there is one.
///
/// Line 1 is a header when it starts with `# @signature` followed by a space, a tab, `:` or the
/// end of the line. Its line ending (`\n` or `\r\n`) belongs to the header; the body starts
/// after it. A header is accepted in exactly one form, the one [`crate::sign`] writes:
/// `# @signature ed25519 <16 lowercase hex digits> <canonical padded base64>`, single spaces,
/// nothing after; any other spelling (upper-case hex, a tab, a trailing space, base64 with
/// stray bits, a byte order mark in front) is malformed, so a signed file cannot be varied
/// without failing verification. Never panics; every `Header` but `None` has a `body_start`
/// after the header line.
pub fn split_header(source: &str) -> Header {
    let Some(rest) = source.strip_prefix(BOM) else {
        return parse_line_1(source);
    };
    match parse_line_1(rest) {
        Header::None => Header::None,
        header => Header::Malformed {
            reason: "a byte order mark before `# @signature`: the header must start the file \
                     (`aether sign` writes it so)"
                .into(),
            body_start: BOM.len_utf8() + header.body_start(),
        },
    }
}

/// `split_header` without the byte order mark.
fn parse_line_1(text: &str) -> Header {
    let Some(after_prefix) = text.strip_prefix(HEADER_PREFIX) else {
        return Header::None;
    };
    if !matches!(
        after_prefix.bytes().next(),
        None | Some(b' ' | b'\t' | b':' | b'\n' | b'\r')
    ) {
        // `# @signatures ...` and the like are ordinary comments.
        return Header::None;
    }
    let (line, body_start) = match text.find('\n') {
        Some(i) => (&text[..i], i + 1),
        None => (text, text.len()),
    };
    let line = line.strip_suffix('\r').unwrap_or(line);
    let tail = &line[HEADER_PREFIX.len()..];
    if tail.starts_with('\r') {
        // A lone `\r` is not a line ending: this is not the header's end, so not a header.
        return Header::None;
    }
    let malformed = |reason: String| Header::Malformed { reason, body_start };
    if let Some(hmac) = tail.strip_prefix(':') {
        let hmac = hmac.trim_matches([' ', '\t']);
        return if hmac.len() == 64 && hmac.bytes().all(|b| b.is_ascii_hexdigit()) {
            Header::Legacy { body_start }
        } else {
            malformed("legacy `# @signature:` header without a 64-hex-digit hmac".into())
        };
    }
    let fields: Vec<&str> = tail.split([' ', '\t']).filter(|f| !f.is_empty()).collect();
    match fields.as_slice() {
        [ALGORITHM, key_id, signature_b64] => {
            if !is_key_id(key_id) || key_id.bytes().any(|b| b.is_ascii_uppercase()) {
                return malformed("the key id must be 16 lowercase hex digits".into());
            }
            let Ok(bytes) = B64.decode(signature_b64) else {
                return malformed("the signature is not valid base64".into());
            };
            let Ok(signature) = <[u8; 64]>::try_from(bytes.as_slice()) else {
                return malformed(format!(
                    "the signature must be 64 bytes, found {}",
                    bytes.len()
                ));
            };
            if B64.encode(signature) != *signature_b64 {
                return malformed("the signature is not in canonical base64".into());
            }
            if line != header_line(key_id, &signature) {
                return malformed(
                    "fields must be separated by single spaces, with nothing after the signature"
                        .into(),
                );
            }
            Header::Ed25519 {
                key_id: (*key_id).to_string(),
                signature,
                body_start,
            }
        }
        [algorithm, _, _] => {
            let shown = algorithm.len() <= 24
                && algorithm
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            malformed(if shown {
                format!("unsupported algorithm `{algorithm}` (only ed25519)")
            } else {
                "unsupported algorithm (only ed25519)".into()
            })
        }
        _ => malformed(format!(
            "expected `# @signature ed25519 <key-id> <signature>`, found {} field{} after `# @signature`",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" }
        )),
    }
}

/// The body of `source` without a leading byte order mark and every leading `# @signature`
/// line, so that signing never stacks headers (and never leaves a mark before one).
pub(crate) fn strip_headers(source: &str) -> &str {
    let mut body = source.strip_prefix(BOM).unwrap_or(source);
    loop {
        match parse_line_1(body) {
            Header::None => return body,
            // Every header has a body_start past its prefix, so this loop ends.
            header => body = &body[header.body_start()..],
        }
    }
}

/// The header line (without line ending) for a signature by `key_id`.
pub(crate) fn header_line(key_id: &str, signature: &[u8; 64]) -> String {
    format!(
        "{HEADER_PREFIX} {ALGORITHM} {key_id} {}",
        B64.encode(signature)
    )
}

/// The text a signature covers: `body` with every `\r\n` read as `\n`. A lone `\r` is kept.
pub fn normalise(body: &str) -> Cow<'_, str> {
    if body.contains("\r\n") {
        Cow::Owned(body.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef";

    fn sig_b64() -> String {
        B64.encode([7u8; 64])
    }

    fn reason(source: &str) -> String {
        match split_header(source) {
            Header::Malformed { reason, .. } => reason,
            other => panic!("expected malformed for {source:?}, got {other:?}"),
        }
    }

    #[test]
    fn well_formed_header_splits_off_the_body() {
        let line = format!("# @signature ed25519 {ID} {}", sig_b64());
        for (eol, body) in [
            ("\n", "goal: \"g\"\n"),
            ("\r\n", "goal: \"g\"\r\n"),
            ("\n", ""),
        ] {
            let source = format!("{line}{eol}{body}");
            let header = split_header(&source);
            assert_eq!(
                header,
                Header::Ed25519 {
                    key_id: ID.into(),
                    signature: [7u8; 64],
                    body_start: line.len() + eol.len(),
                }
            );
            assert_eq!(&source[header.body_start()..], body);
        }
        assert_eq!(
            split_header(&line).body_start(),
            line.len(),
            "no line ending at all"
        );
    }

    #[test]
    fn only_the_canonical_spelling_is_a_header() {
        let sig = sig_b64();
        let canonical = format!("# @signature ed25519 {ID} {sig}\nbody\n");
        assert!(matches!(split_header(&canonical), Header::Ed25519 { .. }));
        for (source, why) in [
            (
                format!("\u{FEFF}# @signature ed25519 {ID} {sig}\nbody\n"),
                "a byte order mark before `# @signature`",
            ),
            (
                format!("# @signature ed25519 {} {sig}\nbody\n", ID.to_uppercase()),
                "the key id must be 16 lowercase hex digits",
            ),
            (
                format!("# @signature\ted25519 {ID} {sig}\nbody\n"),
                "fields must be separated by single spaces",
            ),
            (
                format!("# @signature ed25519  {ID} {sig}\nbody\n"),
                "fields must be separated by single spaces",
            ),
            (
                format!("# @signature ed25519 {ID} {sig} \r\nbody\n"),
                "fields must be separated by single spaces",
            ),
        ] {
            assert!(
                reason(&source).starts_with(why),
                "{source:?}: {}",
                reason(&source)
            );
            assert_eq!(&source[split_header(&source).body_start()..], "body\n");
        }
        // Base64 whose last character carries stray bits decodes to the same bytes.
        let stray = format!("{}B==", &sig[..sig.len() - 3]);
        assert_eq!(B64.decode(&sig[..]).ok().map(|b| b.len()), Some(64));
        let r = reason(&format!("# @signature ed25519 {ID} {stray}\n"));
        assert!(
            r == "the signature is not in canonical base64"
                || r == "the signature is not valid base64",
            "{r}"
        );
    }

    #[test]
    fn other_first_lines_are_not_headers() {
        for source in [
            "",
            "goal: \"g\"\n# @signature ed25519 0123456789abcdef AAAA\n",
            "# a comment\n",
            "#@signature ed25519 0123456789abcdef AAAA\n",
            " # @signature ed25519 0123456789abcdef AAAA\n",
            "// @signature ed25519 0123456789abcdef AAAA\n",
            "# @signatures are checked in prod\n",
            "# @signature\rfoo\n",
            "# @signaturé\n",
            "# @signatur",
            "\u{FEFF}# hello\n",
        ] {
            assert_eq!(split_header(source), Header::None, "{source:?}");
        }
    }

    #[test]
    fn legacy_hmac_header_is_recognised() {
        let hmac = "ab12".repeat(16);
        for source in [
            format!("# @signature: {hmac}\nbody"),
            format!("# @signature:{}\r\nbody", hmac.to_uppercase()),
        ] {
            let header = split_header(&source);
            assert!(matches!(header, Header::Legacy { .. }), "{source}");
            assert_eq!(&source[header.body_start()..], "body");
        }
        assert!(reason("# @signature: abcd\n").contains("64-hex-digit"));
        assert!(reason(&format!("# @signature: {}\n", "g".repeat(64))).contains("64-hex-digit"));
        assert!(reason("# @signature:\n").contains("64-hex-digit"));
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let sig = sig_b64();
        assert_eq!(
            reason("# @signature\n"),
            "expected `# @signature ed25519 <key-id> <signature>`, found 0 fields after `# @signature`"
        );
        assert!(reason(&format!("# @signature ed25519 {ID}\n"))
            .ends_with("found 2 fields after `# @signature`"));
        assert!(
            reason(&format!("# @signature ed25519 {ID} {sig} extra\n")).contains("found 4 fields")
        );
        assert_eq!(
            reason(&format!("# @signature rsa {ID} {sig}\n")),
            "unsupported algorithm `rsa` (only ed25519)"
        );
        assert_eq!(
            reason(&format!("# @signature {} {ID} {sig}\n", "x".repeat(500))),
            "unsupported algorithm (only ed25519)"
        );
        assert_eq!(
            reason(&format!("# @signature ED25519 {ID} {sig}\n")),
            "unsupported algorithm `ED25519` (only ed25519)"
        );
        for id in [
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789abcdeg",
            "é123456789abcde",
        ] {
            assert_eq!(
                reason(&format!("# @signature ed25519 {id} {sig}\n")),
                "the key id must be 16 lowercase hex digits",
                "{id}"
            );
        }
        for bad in ["!!!!", "AAAA=", &sig[..sig.len() - 2], &format!("{sig}=")] {
            assert_eq!(
                reason(&format!("# @signature ed25519 {ID} {bad}\n")),
                "the signature is not valid base64",
                "{bad}"
            );
        }
        assert_eq!(
            reason(&format!("# @signature ed25519 {ID} AAAA\n")),
            "the signature must be 64 bytes, found 3"
        );
        assert_eq!(
            reason(&format!(
                "# @signature ed25519 {ID} {}\n",
                B64.encode([0u8; 65])
            )),
            "the signature must be 64 bytes, found 65"
        );
        // A lone `\r` inside the line is not a separator.
        assert_eq!(
            reason(&format!("# @signature ed25519 {ID} {sig}\r\r\n")),
            "the signature is not valid base64"
        );
    }

    #[test]
    fn malformed_headers_still_split_off_the_header_line() {
        let source = "# @signature ed25519 nope\r\nbody\n";
        assert_eq!(&source[split_header(source).body_start()..], "body\n");
    }

    #[test]
    fn strip_headers_removes_every_leading_header_line() {
        let hmac = "ab".repeat(32);
        let source = format!(
            "\u{FEFF}# @signature: {hmac}\n# @signature ed25519 {ID} AAAA\r\n# @signature\n# note\n# @signature: {hmac}\n"
        );
        assert_eq!(
            strip_headers(&source),
            format!("# note\n# @signature: {hmac}\n").as_str()
        );
        assert_eq!(strip_headers("body"), "body");
        assert_eq!(strip_headers("\u{FEFF}body"), "body");
        assert_eq!(strip_headers("# @signature"), "");
    }

    #[test]
    fn normalise_reads_crlf_as_lf_only() {
        assert_eq!(normalise("a\r\nb\r\n"), "a\nb\n");
        assert_eq!(normalise("a\rb\r\r\n"), "a\rb\r\n");
        assert!(matches!(normalise("a\nb\n"), Cow::Borrowed("a\nb\n")));
    }

    #[test]
    fn header_line_round_trips() {
        let line = header_line(ID, &[9u8; 64]);
        assert_eq!(
            split_header(&line),
            Header::Ed25519 {
                key_id: ID.into(),
                signature: [9u8; 64],
                body_start: line.len(),
            }
        );
    }
}
