//! Tokens: the raw logos token set and the parser's token stream (with layout tokens).

use logos::Logos;

use crate::span::Span;

/// A number literal as lexed: its value, or why it is malformed.
#[derive(Clone, Debug, PartialEq)]
pub enum NumLit {
    Int(i64),
    Float(f64),
    /// Milliseconds.
    Duration(f64),
    /// An integer that does not fit in i64.
    IntOverflow,
    /// A digit run followed by letters that are not a duration unit (`5min`, `3sx`).
    BadSuffix {
        suffix_start: usize,
    },
}

/// A string literal: the decoded value plus the first problem found in it, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct StrLit {
    pub value: String,
    pub error: Option<StrError>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StrError {
    /// The line (or file) ended before the closing quote.
    Unterminated,
    /// An unknown or malformed escape at the given byte range within the token.
    BadEscape { start: usize, end: usize },
}

/// Tokens as logos recognises them. Layout (indent, dedent, logical newlines,
/// list-item dashes) is synthesised from these by [`crate::lexer`].
///
/// Each pattern names only a token's first byte where it can: a callback takes the rest by
/// hand over bytes (a name, a run of spaces, a comment, a number, a string), so logos
/// dispatches once per token instead of stepping its state machine per byte.
#[derive(Logos, Clone, Debug, PartialEq)]
// The span of every comment, in source order (see [`crate::lexer::Lexed::comments`]).
#[logos(extras = Vec<Span>)]
// Spaces, tabs, form feeds, `\r` (of CRLF) and a byte-order mark are not tokens.
#[logos(skip(r"[ \t\r\x0C\u{FEFF}]", skip_spaces))]
// Comments run to the end of the line.
#[logos(skip(r"#|//", skip_comment))]
pub enum RawToken<'src> {
    #[token("\n")]
    Newline,

    #[regex(r"[A-Za-z_]", lex_ident)]
    Ident(&'src str),

    #[regex(r"[0-9]", lex_number)]
    Number(NumLit),

    #[regex(r#"["']"#, lex_string)]
    Str(StrLit),

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token(".")]
    Dot,
    #[token("=")]
    Assign,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("!")]
    Bang,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
}

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

/// How many bytes at the start of `bytes` satisfy `keep`.
fn run_length(bytes: &[u8], keep: impl Fn(u8) -> bool) -> usize {
    bytes.iter().position(|&b| !keep(b)).unwrap_or(bytes.len())
}

fn lex_ident<'src>(lex: &mut logos::Lexer<'src, RawToken<'src>>) -> &'src str {
    let n = run_length(lex.remainder().as_bytes(), |b| NAME_REST[usize::from(b)]);
    lex.bump(n);
    lex.slice()
}

/// A run of spaces, tabs, `\r` and form feeds (a byte-order mark is skipped on its own).
fn skip_spaces<'src>(lex: &mut logos::Lexer<'src, RawToken<'src>>) {
    let n = run_length(lex.remainder().as_bytes(), |b| {
        matches!(b, b' ' | b'\t' | b'\r' | 0x0C)
    });
    lex.bump(n);
}

/// A comment: from its marker to the end of the line (the `\n` excluded), recorded.
fn skip_comment<'src>(lex: &mut logos::Lexer<'src, RawToken<'src>>) {
    let n = run_length(lex.remainder().as_bytes(), |b| b != b'\n');
    lex.bump(n);
    let span = lex.span();
    lex.extras.push(Span::new(span.start, span.end));
}

fn lex_number<'src>(lex: &mut logos::Lexer<'src, RawToken<'src>>) -> NumLit {
    let start = lex.span().start;
    let (num, end) = scan_number(lex.source(), start);
    lex.bump(end - start - 1);
    num
}

/// The number literal starting with the ASCII digit at `start`, and where it ends: the
/// first digit and the rest of the word (digits, `_`, letters, a `.` followed by a digit,
/// and a sign right after an exponent).
pub(crate) fn scan_number(src: &str, start: usize) -> (NumLit, usize) {
    let bytes = src.as_bytes();
    let mut i = start + 1;
    let mut plain_digits = true;
    while let Some(&b) = bytes.get(i) {
        if b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let ok = b.is_ascii_alphabetic()
            || b == b'_'
            || (b == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
            || ((b == b'+' || b == b'-')
                && matches!(bytes[i - 1], b'e' | b'E')
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit));
        if !ok {
            break;
        }
        plain_digits = false;
        i += 1;
    }
    let text = &src[start..i];
    // Most literals are plain digits: no copy without underscores.
    let num = if plain_digits {
        text.parse::<i64>()
            .map(NumLit::Int)
            .unwrap_or(NumLit::IntOverflow)
    } else {
        classify_number(text)
    };
    (num, i)
}

/// Classify a number-like word: integer, float, duration, or malformed.
fn classify_number(text: &str) -> NumLit {
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    if plain.bytes().all(|b| b.is_ascii_digit()) {
        return plain
            .parse::<i64>()
            .map(NumLit::Int)
            .unwrap_or(NumLit::IntOverflow);
    }
    let is_float = plain
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if is_float {
        if let Ok(x) = plain.parse::<f64>() {
            return NumLit::Float(x);
        }
    }
    if let Some(ms) = parse_duration(text) {
        return NumLit::Duration(ms);
    }
    let suffix_start = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    NumLit::BadSuffix { suffix_start }
}

/// Parse a duration such as `150ms`, `1.5s`, `5m` or the compound canonical form
/// `1h30m15.5s` (segments of number + unit, `_` allowed in digits) into milliseconds.
pub fn parse_duration(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total = 0.0;
    if bytes.is_empty() {
        return None;
    }
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                i += 1;
            }
        }
        let number: String = text[start..i].chars().filter(|&c| c != '_').collect();
        if number.is_empty() || !number.as_bytes()[0].is_ascii_digit() || number.ends_with('.') {
            return None;
        }
        // Scale as integers and divide once, so `1.001s` is exactly 1001 ms.
        let (whole, frac) = number.split_once('.').unwrap_or((&number, ""));
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let scale: u64 = match &text[unit_start..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        let digits = format!("{whole}{frac}");
        let exact = digits
            .parse::<u128>()
            .ok()
            .filter(|_| frac.len() <= 30)
            .and_then(|n| n.checked_mul(u128::from(scale)))
            .map(|n| n as f64 / 10f64.powi(frac.len() as i32));
        let value = match exact {
            Some(v) => v,
            // Too many digits for exact scaling: fall back to floating point.
            None => number.parse::<f64>().ok()? * scale as f64,
        };
        total += value;
    }
    Some(total)
}

fn lex_string<'src>(lex: &mut logos::Lexer<'src, RawToken<'src>>) -> StrLit {
    let start = lex.span().start;
    let (lit, end) = scan_string(lex.source(), start);
    lex.bump(end - start - 1);
    lit
}

/// The string literal whose quote (`"` or `'`) is at `start`, and where it ends: after the
/// closing quote, or before the end of its line (unterminated).
pub(crate) fn scan_string(src: &str, start: usize) -> (StrLit, usize) {
    let quote = src.as_bytes()[start];
    let rest = &src[start + 1..];
    // Most strings have no escape: their value is their text, copied once.
    if let Some(i) = rest
        .bytes()
        .position(|b| b == quote || matches!(b, b'\\' | b'\n' | b'\r'))
    {
        if rest.as_bytes()[i] == quote {
            let lit = StrLit {
                value: rest[..i].to_owned(),
                error: None,
            };
            return (lit, start + 1 + i + 1);
        }
    }
    let mut value = String::new();
    let mut error = None;
    let mut chars = rest.char_indices().peekable();
    let mut consumed = rest.len();
    let mut closed = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\n' => {
                // A string ends on its own line: stop before the newline.
                consumed = i;
                break;
            }
            '\r' if rest[i + 1..].starts_with('\n') => {
                consumed = i;
                break;
            }
            c if c as u32 == quote as u32 => {
                consumed = i + 1;
                closed = true;
                break;
            }
            '\\' => {
                let esc_start = 1 + i;
                match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, 'r')) => value.push('\r'),
                    Some((_, '0')) => value.push('\0'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, '\'')) => value.push('\''),
                    Some((j, 'u')) => {
                        let body = &rest[j + 1..];
                        let parsed = body
                            .strip_prefix('{')
                            .and_then(|b| b.find('}').map(|end| (&b[..end], end)))
                            .filter(|(hex, _)| !hex.is_empty() && hex.len() <= 6)
                            .and_then(|(hex, end)| {
                                u32::from_str_radix(hex, 16)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .map(|ch| (ch, end))
                            });
                        match parsed {
                            Some((ch, end)) => {
                                value.push(ch);
                                // skip `{hex}`
                                let skip_to = j + 1 + end + 2;
                                while chars.peek().is_some_and(|(k, _)| *k < skip_to) {
                                    chars.next();
                                }
                            }
                            None => {
                                if error.is_none() {
                                    error = Some(StrError::BadEscape {
                                        start: esc_start,
                                        end: esc_start + 2,
                                    });
                                }
                            }
                        }
                    }
                    Some((j, '\n')) | Some((j, '\r')) => {
                        consumed = j;
                        break;
                    }
                    Some((_, other)) if error.is_none() => {
                        error = Some(StrError::BadEscape {
                            start: esc_start,
                            end: esc_start + 1 + other.len_utf8(),
                        });
                    }
                    Some(_) => {}
                    None => {}
                }
            }
            c => value.push(c),
        }
    }
    if !closed {
        error = Some(StrError::Unterminated);
    }
    (StrLit { value, error }, start + 1 + consumed)
}

/// The parser's tokens: keywords are split out of identifiers and layout is explicit.
///
/// An explicit one-byte tag: without it the tag hides in a niche of `Str`'s `String`, and
/// every match on a token (the layout pass's, LALRPOP's terminal lookup) decodes it first.
#[derive(Clone, Debug, PartialEq)]
#[repr(u8)]
pub enum Tok<'src> {
    Ident(&'src str),
    Int(i64),
    Float(f64),
    Duration(f64),
    Str(String),
    /// The rest of a `goal:` line that is not a single string (already reported).
    UnquotedText,
    /// A reserved `agent:` / `visualize:` block, swallowed whole (already reported).
    ReservedBlock(&'src str),

    Newline,
    Indent,
    Dedent,
    /// A `-` that starts a logical line: a list item.
    Dash,

    // Keywords naming blocks.
    Goal,
    Intent,
    Meta,
    Metadata,
    Policy,
    Require,
    PluginContract,
    OnError,
    Workflow,
    Parallel,
    Transaction,
    Action,
    Inputs,
    Memory,
    // Statement keywords.
    Let,
    If,
    Elif,
    Else,
    For,
    In,
    While,
    Break,
    Continue,
    Return,
    Emit,
    Trigger,
    Sleep,
    Await,
    Assert,
    As,
    And,
    Or,
    Not,
    True,
    False,
    Null,

    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Dot,
    Assign,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Bang,
    AndAnd,
    OrOr,
}

impl<'src> Tok<'src> {
    /// The keyword token for an identifier, if it is one.
    pub fn keyword(ident: &str) -> Option<Tok<'static>> {
        // Dispatch on the first byte, then compare the few keywords starting with it.
        let first = *ident.as_bytes().first()?;
        Some(match (first, ident) {
            (b'a', "action") => Tok::Action,
            (b'a', "await") => Tok::Await,
            (b'a', "assert") => Tok::Assert,
            (b'a', "as") => Tok::As,
            (b'a', "and") => Tok::And,
            (b'b', "break") => Tok::Break,
            (b'c', "continue") => Tok::Continue,
            (b'e', "elif") => Tok::Elif,
            (b'e', "else") => Tok::Else,
            (b'e', "emit") => Tok::Emit,
            (b'f', "for") => Tok::For,
            (b'f', "false") => Tok::False,
            (b'g', "goal") => Tok::Goal,
            (b'i', "inputs") => Tok::Inputs,
            (b'i', "if") => Tok::If,
            (b'i', "in") => Tok::In,
            (b'l', "let") => Tok::Let,
            (b'm', "meta") => Tok::Meta,
            (b'm', "metadata") => Tok::Metadata,
            (b'm', "memory") => Tok::Memory,
            (b'n', "not") => Tok::Not,
            (b'n', "null") => Tok::Null,
            (b'o', "on_error") => Tok::OnError,
            (b'o', "or") => Tok::Or,
            (b'p', "policy") => Tok::Policy,
            (b'p', "plugin_contract") => Tok::PluginContract,
            (b'p', "parallel") => Tok::Parallel,
            (b'r', "require") => Tok::Require,
            (b'r', "return") => Tok::Return,
            (b's', "sleep") => Tok::Sleep,
            (b't', "transaction") => Tok::Transaction,
            (b't', "trigger") => Tok::Trigger,
            (b't', "true") => Tok::True,
            (b'w', "workflow") => Tok::Workflow,
            (b'w', "while") => Tok::While,
            _ => return None,
        })
    }

    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("name `{s}`"),
            Tok::Int(n) => format!("number `{n}`"),
            Tok::Float(x) => format!("number `{x}`"),
            Tok::Duration(_) => "duration".to_string(),
            Tok::Str(_) => "string".to_string(),
            Tok::UnquotedText => "unquoted text".to_string(),
            Tok::ReservedBlock(name) => format!("`{name}:` block"),
            Tok::Newline => "end of line".to_string(),
            Tok::Indent => "indentation".to_string(),
            Tok::Dedent => "end of block".to_string(),
            Tok::Dash => "list item `-`".to_string(),
            other => format!("`{}`", other.text()),
        }
    }

    /// Source text of fixed tokens (keywords and punctuation).
    pub fn text(&self) -> &'static str {
        match self {
            Tok::Goal => "goal",
            Tok::Intent => "intent",
            Tok::Meta => "meta",
            Tok::Metadata => "metadata",
            Tok::Policy => "policy",
            Tok::Require => "require",
            Tok::PluginContract => "plugin_contract",
            Tok::OnError => "on_error",
            Tok::Workflow => "workflow",
            Tok::Parallel => "parallel",
            Tok::Transaction => "transaction",
            Tok::Action => "action",
            Tok::Inputs => "inputs",
            Tok::Memory => "memory",
            Tok::Let => "let",
            Tok::If => "if",
            Tok::Elif => "elif",
            Tok::Else => "else",
            Tok::For => "for",
            Tok::In => "in",
            Tok::While => "while",
            Tok::Break => "break",
            Tok::Continue => "continue",
            Tok::Return => "return",
            Tok::Emit => "emit",
            Tok::Trigger => "trigger",
            Tok::Sleep => "sleep",
            Tok::Await => "await",
            Tok::Assert => "assert",
            Tok::As => "as",
            Tok::And => "and",
            Tok::Or => "or",
            Tok::Not => "not",
            Tok::True => "true",
            Tok::False => "false",
            Tok::Null => "null",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::Dot => ".",
            Tok::Assign => "=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Bang => "!",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::Dash => "-",
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(src: &str) -> Vec<RawToken<'_>> {
        RawToken::lexer(src)
            .map(|t| t.expect("valid token"))
            .collect()
    }

    #[test]
    fn keywords_are_found_by_their_text_and_nothing_else_is() {
        let all = [
            Tok::Goal,
            Tok::Meta,
            Tok::Metadata,
            Tok::Policy,
            Tok::Require,
            Tok::PluginContract,
            Tok::OnError,
            Tok::Workflow,
            Tok::Parallel,
            Tok::Transaction,
            Tok::Action,
            Tok::Inputs,
            Tok::Memory,
            Tok::Let,
            Tok::If,
            Tok::Elif,
            Tok::Else,
            Tok::For,
            Tok::In,
            Tok::While,
            Tok::Break,
            Tok::Continue,
            Tok::Return,
            Tok::Emit,
            Tok::Trigger,
            Tok::Sleep,
            Tok::Await,
            Tok::Assert,
            Tok::As,
            Tok::And,
            Tok::Or,
            Tok::Not,
            Tok::True,
            Tok::False,
            Tok::Null,
        ];
        for tok in all {
            assert_eq!(Tok::keyword(tok.text()), Some(tok.clone()), "{tok:?}");
        }
        // `intent` is a keyword only where the layout pass says so.
        for word in [
            "", "intent", "agent", "Goal", "goals", "i", "_", "a", "null_", "asx",
        ] {
            assert_eq!(Tok::keyword(word), None, "{word}");
        }
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(
            raw("50_000 1.5 150ms 1.5s 5m 2h 1d 1e3 1m30s 1.5e-3"),
            vec![
                RawToken::Number(NumLit::Int(50_000)),
                RawToken::Number(NumLit::Float(1.5)),
                RawToken::Number(NumLit::Duration(150.0)),
                RawToken::Number(NumLit::Duration(1500.0)),
                RawToken::Number(NumLit::Duration(300_000.0)),
                RawToken::Number(NumLit::Duration(7_200_000.0)),
                RawToken::Number(NumLit::Duration(86_400_000.0)),
                RawToken::Number(NumLit::Float(1000.0)),
                RawToken::Number(NumLit::Duration(90_000.0)),
                RawToken::Number(NumLit::Float(0.0015)),
            ]
        );
    }

    #[test]
    fn bad_duration_suffixes() {
        assert_eq!(
            raw("5min"),
            vec![RawToken::Number(NumLit::BadSuffix { suffix_start: 1 })]
        );
        assert_eq!(
            raw("1m30"),
            vec![RawToken::Number(NumLit::BadSuffix { suffix_start: 1 })]
        );
        assert_eq!(
            raw("3sx"),
            vec![RawToken::Number(NumLit::BadSuffix { suffix_start: 1 })]
        );
        assert_eq!(
            raw("99999999999999999999"),
            vec![RawToken::Number(NumLit::IntOverflow)]
        );
    }

    #[test]
    fn duration_strings() {
        assert_eq!(parse_duration("30s"), Some(30_000.0));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000.0));
        assert_eq!(parse_duration("1.001s"), Some(1_001.0));
        assert_eq!(parse_duration("1m0.5s"), Some(60_500.0));
        assert_eq!(parse_duration("1_000ms"), Some(1_000.0));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("30x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn strings_escape_and_stop_at_newline() {
        let toks = raw(r#""a\n\u{1F600}" 'it\'s'"#);
        assert_eq!(
            toks,
            vec![
                RawToken::Str(StrLit {
                    value: "a\n😀".into(),
                    error: None
                }),
                RawToken::Str(StrLit {
                    value: "it's".into(),
                    error: None
                }),
            ]
        );
        let toks = raw("\"open\nx");
        assert_eq!(
            toks,
            vec![
                RawToken::Str(StrLit {
                    value: "open".into(),
                    error: Some(StrError::Unterminated)
                }),
                RawToken::Newline,
                RawToken::Ident("x"),
            ]
        );
        let toks = raw(r#""\q""#);
        assert_eq!(
            toks,
            vec![RawToken::Str(StrLit {
                value: String::new(),
                error: Some(StrError::BadEscape { start: 1, end: 3 })
            })]
        );
    }

    #[test]
    fn comments_are_skipped_but_division_is_not() {
        assert_eq!(
            raw("a / b // c\n# d"),
            vec![
                RawToken::Ident("a"),
                RawToken::Slash,
                RawToken::Ident("b"),
                RawToken::Newline
            ]
        );
    }
}
