//! A reference scanner for the raw token set, by hand over bytes, for the tests only.
//!
//! It spells out what [`RawToken`]'s logos patterns and callbacks mean (the spaces and
//! comments skipped, longest-match operators, one invalid character per error), and the
//! property test below asserts that the logos lexer yields exactly its tokens, spans and
//! comment spans on random text. It was first checked equal to the original all-regex logos
//! patterns the same way.

use crate::span::Span;
use crate::token::{scan_number, scan_string, RawToken};

/// What a byte starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Not the start of any token: an invalid character (or the start of a multi-byte one).
    Other,
    /// Space, tab, `\r`, form feed: skipped.
    Space,
    Newline,
    /// `A-Z`, `a-z`, `_`.
    Name,
    Digit,
    Quote,
    /// `#`: a comment to the end of the line.
    Hash,
    /// A one-byte token, or the first byte of a two-byte one.
    Punct,
    /// `0xEF`: a byte-order mark (skipped), or another character.
    Bom,
}

const CLASS: [Class; 256] = {
    let mut t = [Class::Other; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b' ' | b'\t' | b'\r' | 0x0C => Class::Space,
            b'\n' => Class::Newline,
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => Class::Name,
            b'0'..=b'9' => Class::Digit,
            b'"' | b'\'' => Class::Quote,
            b'#' => Class::Hash,
            b'(' | b')' | b'[' | b']' | b'{' | b'}' | b',' | b':' | b'.' | b'=' | b'+' | b'-'
            | b'*' | b'/' | b'%' | b'!' | b'<' | b'>' | b'&' | b'|' => Class::Punct,
            0xEF => Class::Bom,
            _ => Class::Other,
        };
        b += 1;
    }
    t
};

/// Bytes that continue a name: `A-Z`, `a-z`, `0-9`, `_`.
const NAME_REST: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = matches!(b as u8, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_');
        b += 1;
    }
    t
};

type RawSpanned<'src> = (Result<RawToken<'src>, ()>, Span);

/// Every raw token of `src` with its span, in order; the span of every `#` / `//` comment
/// (from its marker to the end of its line, a `\r` included) goes to `comments`.
fn scan<'src>(src: &'src str, comments: &mut Vec<Span>) -> Vec<RawSpanned<'src>> {
    let bytes = src.as_bytes();
    // About one token per 4.5 bytes of source in the benchmark corpus: one allocation for
    // nearly every file.
    let mut out = Vec::with_capacity(src.len() / 4 + 8);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let start = i;
        let tok = match CLASS[usize::from(b)] {
            Class::Space => {
                i += 1;
                continue;
            }
            Class::Bom if bytes[i..].starts_with(&[0xEF, 0xBB, 0xBF]) => {
                i += 3;
                continue;
            }
            Class::Hash => {
                i = line_end(bytes, i);
                comments.push(Span::new(start, i));
                continue;
            }
            Class::Punct if b == b'/' && bytes.get(i + 1) == Some(&b'/') => {
                i = line_end(bytes, i);
                comments.push(Span::new(start, i));
                continue;
            }
            Class::Newline => {
                i += 1;
                Ok(RawToken::Newline)
            }
            Class::Name => {
                i += 1;
                while bytes.get(i).is_some_and(|&c| NAME_REST[usize::from(c)]) {
                    i += 1;
                }
                Ok(RawToken::Ident(&src[start..i]))
            }
            Class::Digit => {
                let (num, end) = scan_number(src, start);
                i = end;
                Ok(RawToken::Number(num))
            }
            Class::Quote => {
                let (lit, end) = scan_string(src, start);
                i = end;
                Ok(RawToken::Str(lit))
            }
            Class::Punct => {
                let next = bytes.get(i + 1).copied();
                let (tok, len) = punct(b, next);
                i += len;
                tok
            }
            Class::Other | Class::Bom => {
                // One character, however many bytes it takes.
                i += src[i..].chars().next().map_or(1, char::len_utf8);
                Err(())
            }
        };
        out.push((tok, Span::new(start, i)));
    }
    out
}

/// Where the line holding `from` ends: at its `\n` (excluded) or the end of the text.
fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(bytes.len(), |n| from + n)
}

/// The punctuation token starting with `b` (and `next` when it makes a two-byte token),
/// and its length; a lone `&` or `|` is an invalid character.
fn punct(b: u8, next: Option<u8>) -> (Result<RawToken<'static>, ()>, usize) {
    let two = |tok| (Ok(tok), 2);
    let one = |tok| (Ok(tok), 1);
    match (b, next) {
        (b'=', Some(b'=')) => two(RawToken::EqEq),
        (b'!', Some(b'=')) => two(RawToken::NotEq),
        (b'<', Some(b'=')) => two(RawToken::Le),
        (b'>', Some(b'=')) => two(RawToken::Ge),
        (b'&', Some(b'&')) => two(RawToken::AndAnd),
        (b'|', Some(b'|')) => two(RawToken::OrOr),
        (b'(', _) => one(RawToken::LParen),
        (b')', _) => one(RawToken::RParen),
        (b'[', _) => one(RawToken::LBracket),
        (b']', _) => one(RawToken::RBracket),
        (b'{', _) => one(RawToken::LBrace),
        (b'}', _) => one(RawToken::RBrace),
        (b',', _) => one(RawToken::Comma),
        (b':', _) => one(RawToken::Colon),
        (b'.', _) => one(RawToken::Dot),
        (b'=', _) => one(RawToken::Assign),
        (b'+', _) => one(RawToken::Plus),
        (b'-', _) => one(RawToken::Minus),
        (b'*', _) => one(RawToken::Star),
        (b'/', _) => one(RawToken::Slash),
        (b'%', _) => one(RawToken::Percent),
        (b'!', _) => one(RawToken::Bang),
        (b'<', _) => one(RawToken::Lt),
        (b'>', _) => one(RawToken::Gt),
        _ => (Err(()), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logos::Logos;
    use proptest::prelude::*;

    /// What the logos lexer yields: the tokens with their spans, and the comments.
    fn logos(src: &str) -> (Vec<RawSpanned<'_>>, Vec<Span>) {
        let mut lexer = RawToken::lexer_with_extras(src, Vec::new());
        let mut toks = Vec::new();
        while let Some(tok) = lexer.next() {
            let s = lexer.span();
            toks.push((tok, Span::new(s.start, s.end)));
        }
        (toks, lexer.extras)
    }

    fn same_as_logos(src: &str) {
        let mut comments = Vec::new();
        let toks = scan(src, &mut comments);
        assert_eq!(logos(src), (toks, comments), "{src:?}");
    }

    #[test]
    fn edge_cases_match_logos() {
        for src in [
            "",
            "a",
            "a_1 + b2",
            "x = 1 // c\n# d\r\ny",
            "\u{FEFF}goal: \"x\"",
            "a \u{FEFE} b \u{FEFF}c",
            "&&& ||| & | ! != == = <= < >= >",
            "é x é",
            "1.5e-3 5min 0x1F 1_000 1e 1. 9223372036854775808 3sx",
            "\"open\n'it\\'s' \"\\q\" \"\\u{1F600}\" \"a\\\r\nb\"",
            "\"\\u{110000}\" \"\\u\" '\\",
            "a/b//c",
            "\u{201C}x\u{201D} ` ; $ \u{A0}",
            "\x00\x7f\x0c\t\r",
            "#",
            "//",
            "/",
        ] {
            same_as_logos(src);
        }
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                " ", "  ", "\t", "\r", "\n", "\r\n", "\x0c", "\u{FEFF}", "\u{FEFE}", "\u{A0}", "é",
                "\u{201C}", "😀", "\x00", "#", "//", "/", "\"", "'", "\\", "\\n", "\\u{", "}", "{",
                "(", ")", "[", "]", ",", ":", ".", "=", "==", "!", "!=", "<", "<=", ">", ">=", "&",
                "&&", "|", "||", "+", "-", "*", "%", "e", "E", "_", "ms", "s", "m", "x", "if",
                "goal", "abc", "0", "1", "9", "123", "1.5", "1e", "$", ";", "`",
            ])
            .prop_map(str::to_owned),
            "[a-z0-9_]{1,6}",
            any::<char>().prop_map(String::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn scan_matches_logos(pieces in prop::collection::vec(piece(), 0..24)) {
            same_as_logos(&pieces.concat());
        }
    }
}
