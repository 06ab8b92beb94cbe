//! Raw tokens into the parser's tokens, and the lexical diagnostics: malformed numbers
//! and strings, invalid characters, unquoted goal text.

use crate::diagnostic::{Diagnostic, Fix};
use crate::rules;
use crate::span::Span;
use crate::token::{NumLit, RawToken, StrError, StrLit, Tok};

use super::Layout;

fn duration_hint(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "min" | "mins" | "minute" | "minutes" => "m",
        "sec" | "secs" | "second" | "seconds" => "s",
        "hr" | "hrs" | "hour" | "hours" => "h",
        "day" | "days" => "d",
        "msec" | "msecs" | "millis" => "ms",
        _ => return None,
    })
}

impl<'src> Layout<'src> {
    /// The parser's token for a raw token (a malformed literal is reported).
    #[inline]
    pub(super) fn convert(&mut self, raw: RawToken<'src>, span: Span) -> Tok<'src> {
        match raw {
            RawToken::Newline => Tok::Newline,
            RawToken::Ident(s) => Tok::keyword(s).unwrap_or(Tok::Ident(s)),
            RawToken::Number(NumLit::Int(n)) => Tok::Int(n),
            RawToken::Number(NumLit::Float(x)) => Tok::Float(x),
            RawToken::Number(NumLit::Duration(ms)) => Tok::Duration(ms),
            RawToken::Number(bad) => self.bad_number(bad, span),
            RawToken::Str(StrLit { value, error: None }) => Tok::Str(value),
            RawToken::Str(StrLit {
                value,
                error: Some(error),
            }) => self.bad_string(value, error, span),
            RawToken::LParen => Tok::LParen,
            RawToken::RParen => Tok::RParen,
            RawToken::LBracket => Tok::LBracket,
            RawToken::RBracket => Tok::RBracket,
            RawToken::LBrace => Tok::LBrace,
            RawToken::RBrace => Tok::RBrace,
            RawToken::Comma => Tok::Comma,
            RawToken::Colon => Tok::Colon,
            RawToken::Dot => Tok::Dot,
            RawToken::Assign => Tok::Assign,
            RawToken::Plus => Tok::Plus,
            RawToken::Minus => Tok::Minus,
            RawToken::Star => Tok::Star,
            RawToken::Slash => Tok::Slash,
            RawToken::Percent => Tok::Percent,
            RawToken::EqEq => Tok::EqEq,
            RawToken::NotEq => Tok::NotEq,
            RawToken::Lt => Tok::Lt,
            RawToken::Le => Tok::Le,
            RawToken::Gt => Tok::Gt,
            RawToken::Ge => Tok::Ge,
            RawToken::Bang => Tok::Bang,
            RawToken::AndAnd => Tok::AndAnd,
            RawToken::OrOr => Tok::OrOr,
        }
    }

    /// An integer too large or a number with a bad suffix: reported, and a placeholder.
    #[cold]
    #[inline(never)]
    fn bad_number(&mut self, lit: NumLit, span: Span) -> Tok<'src> {
        match lit {
            NumLit::Int(n) => Tok::Int(n),
            NumLit::Float(x) => Tok::Float(x),
            NumLit::Duration(ms) => Tok::Duration(ms),
            NumLit::IntOverflow => {
                self.diags.push(
                Diagnostic::new(
                    &rules::INTEGER_OVERFLOW,
                    "integer literal is too large for a 64-bit integer",
                )
                .with_primary(span, "does not fit in i64")
                .with_help("integers range from -9223372036854775808 to 9223372036854775807; write a float (`1e20`) for larger magnitudes"),
            );
                Tok::Int(0)
            }
            NumLit::BadSuffix { suffix_start } => {
                let text = &self.src[span.range()];
                let (num, suffix) = text.split_at(suffix_start);
                if num == "0" && suffix.starts_with(['x', 'X', 'b', 'B', 'o', 'O']) {
                    self.diags.push(
                    Diagnostic::new(&rules::INVALID_DURATION_UNIT, format!("`{text}`: number literals are decimal"))
                        .with_primary(span, "not a decimal number")
                        .with_help("write the value in decimal; hexadecimal, binary and octal literals are not supported"),
                );
                    return Tok::Int(0);
                }
                if suffix.starts_with(['e', 'E'])
                    && suffix[1..].chars().all(|c| c == '+' || c == '-')
                {
                    self.diags.push(
                        Diagnostic::new(
                            &rules::INVALID_DURATION_UNIT,
                            format!("incomplete exponent in `{text}`"),
                        )
                        .with_primary(span, "no digits after the exponent")
                        .with_help("write the exponent's digits, as in `1e6` or `2.5e-3`"),
                    );
                    return Tok::Float(0.0);
                }
                let mut d = Diagnostic::new(
                    &rules::INVALID_DURATION_UNIT,
                    format!("invalid duration unit `{suffix}` in `{text}`"),
                )
                .with_primary(span, "not a number or duration");
                d = match duration_hint(suffix) {
                Some(unit) => d.with_help(format!("write `{num}{unit}`")).with_fix(Fix {
                    description: format!("use the unit `{unit}`"),
                    span,
                    replacement: format!("{num}{unit}"),
                }),
                None => d.with_help(
                    "a duration is a number followed by one of `ms`, `s`, `m`, `h`, `d` (e.g. `150ms`, `1.5s`, `5m`), with nothing directly after the unit",
                ),
            };
                self.diags.push(d);
                Tok::Duration(0.0)
            }
        }
    }

    /// A string literal with an error: reported; its value so far is the token.
    #[cold]
    #[inline(never)]
    fn bad_string(&mut self, value: String, error: StrError, span: Span) -> Tok<'src> {
        match error {
            StrError::Unterminated => {
                self.line_has_unterminated_string = true;
                self.diags.push(
                    Diagnostic::new(&rules::UNTERMINATED_STRING, "unterminated string literal")
                        .with_primary(span, "this string is not closed on its line")
                        .with_help(
                            "close the string with a matching quote on the same line; to span lines, join strings with `+` or write `\\n`",
                        ),
                    )
            }
            StrError::BadEscape { start, end } => {
                let at = Span::new(span.start as usize + start, span.start as usize + end);
                let esc = &self.src[at.range()];
                if esc == "\\u" {
                    self.diags.push(
                            Diagnostic::new(&rules::INVALID_ESCAPE, "invalid unicode escape")
                                .with_primary(at, "not `\\u{XXXX}` with a valid code point")
                                .with_help("write 1 to 6 hex digits in braces, naming a Unicode scalar value: `\\u{1F600}`"),
                        );
                    return Tok::Str(value);
                }
                self.diags.push(
                        Diagnostic::new(
                            &rules::INVALID_ESCAPE,
                            format!("unknown escape sequence `{esc}`"),
                        )
                        .with_primary(at, "not a valid escape")
                        .with_help(
                            "valid escapes are \\n \\t \\r \\0 \\\\ \\\" \\' and \\u{XXXX}; write `\\\\` for a literal backslash",
                        ),
                    );
            }
        }
        Tok::Str(value)
    }

    /// A character that starts no token: reported.
    #[cold]
    #[inline(never)]
    pub(super) fn invalid_char(&mut self, span: Span) {
        let raw = &self.src[span.range()];
        let shown: String = raw
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    format!("U+{:04X}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect();
        let text = shown.as_str();
        let help = match raw {
            "\u{201C}" | "\u{201D}" | "\u{2018}" | "\u{2019}" => {
                "this is a typographic quote: use a straight `\"` or `'`"
            }
            s if s.chars().all(char::is_whitespace) => {
                "an invisible space character: replace it with a plain space"
            }
            "&" => "write `&&` or `and`",
            "|" => "write `||` or `or`",
            ";" => "statements end at the end of the line: remove the `;`",
            "`" => "strings are quoted with `\"` or `'`",
            _ => "remove it, or put it inside a string",
        };
        self.diags.push(
            Diagnostic::new(
                &rules::INVALID_CHARACTER,
                format!("unexpected character `{text}`"),
            )
            .with_primary(span, "not valid here")
            .with_help(help),
        );
    }

    /// If the keyword just read and the next tokens are a top-level `goal:`/`intent:`
    /// with unquoted text, report it and return the text's span and where its line ends.
    pub(super) fn unquoted_goal(&mut self, keyword: &str) -> Option<(Span, usize)> {
        let (Ok(RawToken::Colon), colon) = self.peek_raw()? else {
            return None;
        };
        let colon = *colon;
        let line_end = self.src[colon.end as usize..]
            .find('\n')
            .map_or(self.src.len(), |i| colon.end as usize + i);
        let rest = &self.src[colon.end as usize..line_end];
        let trimmed = rest.trim_start();
        if trimmed.is_empty()
            || trimmed.starts_with(['"', '\'', '#'])
            || trimmed.starts_with("//")
            || trimmed.trim_end().is_empty()
        {
            return None;
        }
        // The text starts after spaces and tabs only: another space character (U+00A0, ...)
        // is part of the text and goes inside the quotes of the fix.
        let trimmed = rest.trim_start_matches([' ', '\t']);
        let text_start = colon.end as usize + (rest.len() - trimmed.len());
        // The text ends before a trailing comment (` //` or ` #`) or at the line end.
        let mut text = trimmed.trim_end_matches(['\r', ' ', '\t']);
        for marker in [" //", " #", "\t//", "\t#"] {
            if let Some(i) = text.find(marker) {
                // Only spaces and tabs: other whitespace (U+00A0, ...) is part of the text,
                // and trimming it would leave it outside the quotes of the fix.
                text = text[..i].trim_end_matches([' ', '\t']);
            }
        }
        let span = Span::new(text_start, text_start + text.len());
        let quoted = format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
        self.diags.push(
            Diagnostic::new(
                &rules::UNQUOTED_GOAL,
                format!("{keyword} text must be a quoted string"),
            )
            .with_primary(span, "unquoted text")
            .with_help(format!(
                "write `{keyword}: {quoted}`; `aether migrate --apply` quotes goal text for you"
            ))
            .with_fix(Fix {
                description: "quote the goal text".into(),
                span,
                replacement: quoted,
            }),
        );
        Some((span, line_end))
    }
}
