//! The layout pass: turns logos tokens into the parser's stream of `(start, Tok, end)` triples.
//!
//! It groups tokens into logical lines (newlines inside brackets are ignored),
//! synthesises `Indent`/`Dedent`/`Newline`, turns a line-initial `-` into a list-item
//! `Dash`, swallows reserved `agent:`/`visualize:` blocks and unquoted goal text into
//! single tokens, and reports every lexical error as a diagnostic instead of failing.

use logos::Logos;

use crate::diagnostic::{Diagnostic, Fix};
use crate::rules;
use crate::span::Span;
use crate::token::{NumLit, RawToken, StrError, StrLit, Tok};

pub type Spanned<'src> = (usize, Tok<'src>, usize);

/// Most operators, brackets and `.` one logical line may hold: each can add a level to the
/// expression tree, and later stages walk that tree recursively.
pub const MAX_LINE_NESTING: usize = 1000;
/// Most nested indented blocks.
pub const MAX_BLOCK_DEPTH: usize = 100;

/// The token stream and the lexical diagnostics of one file.
#[derive(Debug)]
pub struct Lexed<'src> {
    pub tokens: Vec<Spanned<'src>>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every `#` / `//` comment, in source order: from its marker to the end of its line
    /// (a `\r` of CRLF included). The parser ignores them; the formatter keeps them.
    pub comments: Vec<Span>,
}

struct Line {
    indent: usize,
    /// The indentation had a tab (already reported): skip follow-on dedent errors.
    tab_in_indent: bool,
    start: usize,
    end: usize,
    /// Where the line's tokens start in the layout pass's one token vector; they run to
    /// `toks_end` (to the vector's end while the line is being built).
    toks_start: usize,
    toks_end: usize,
}

impl Line {
    fn toks(&self) -> std::ops::Range<usize> {
        self.toks_start..self.toks_end
    }
}

/// A finished line: its tokens run to the end of `toks` so far.
fn finish_line(lines: &mut Vec<Line>, line: Option<Line>, toks: &[Spanned<'_>]) {
    if let Some(mut line) = line {
        line.toks_end = toks.len();
        lines.push(line);
    }
}

/// Whether a line with these tokens opens an indented block below it: it ends in `:` (or
/// is an on_error `- when: KIND` line), or starts with a block keyword (even when its `:`
/// is missing: the parser reports the missing `:` once and skips the block).
fn opens_block(toks: &[Spanned<'_>]) -> bool {
    matches!(toks.last(), Some((_, Tok::Colon, _)))
        || matches!(
            toks,
            [
                (_, Tok::Dash, _),
                (_, Tok::Ident(_), _),
                (_, Tok::Colon, _),
                _
            ]
        )
        || matches!(
            toks.first(),
            Some((
                _,
                Tok::If
                    | Tok::Elif
                    | Tok::Else
                    | Tok::For
                    | Tok::While
                    | Tok::Action
                    | Tok::Workflow
                    | Tok::Parallel
                    | Tok::Transaction
                    | Tok::OnError
                    | Tok::Meta
                    | Tok::Metadata
                    | Tok::Policy
                    | Tok::Require
                    | Tok::PluginContract,
                _
            ))
        )
}

/// Keywords that start a statement or block: a line starting with one of these at the
/// indentation of an open bracket's line means that bracket was never closed.
fn starts_statement(tok: &Tok<'_>) -> bool {
    matches!(
        tok,
        Tok::Let
            | Tok::If
            | Tok::Elif
            | Tok::Else
            | Tok::For
            | Tok::While
            | Tok::Return
            | Tok::Action
            | Tok::Goal
            | Tok::Emit
            | Tok::Trigger
            | Tok::Sleep
            | Tok::Await
            | Tok::Assert
            | Tok::Parallel
            | Tok::Transaction
            | Tok::OnError
            | Tok::Meta
            | Tok::Metadata
            | Tok::Require
            | Tok::PluginContract
            | Tok::Break
            | Tok::Continue
    )
}

/// Tokens that can deepen the expression tree: operators, opening brackets and `.`.
fn adds_nesting(tok: &Tok<'_>) -> bool {
    matches!(
        tok,
        Tok::LParen
            | Tok::LBracket
            | Tok::LBrace
            | Tok::Dot
            | Tok::Plus
            | Tok::Minus
            | Tok::Star
            | Tok::Slash
            | Tok::Percent
            | Tok::EqEq
            | Tok::NotEq
            | Tok::Lt
            | Tok::Le
            | Tok::Gt
            | Tok::Ge
            | Tok::Bang
            | Tok::AndAnd
            | Tok::OrOr
            | Tok::And
            | Tok::Or
            | Tok::Not
            | Tok::In
    )
}

fn closer_for(open: &Tok<'_>) -> Tok<'static> {
    match open {
        Tok::LParen => Tok::RParen,
        Tok::LBracket => Tok::RBracket,
        _ => Tok::RBrace,
    }
}

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

struct Layout<'src> {
    src: &'src str,
    /// The current logical line has an unterminated string: brackets it leaves open are
    /// a consequence, not a second error.
    line_has_unterminated_string: bool,
    raw: Vec<(Result<RawToken<'src>, ()>, Span)>,
    pos: usize,
    diags: Vec<Diagnostic>,
}

impl<'src> Layout<'src> {
    /// Indentation width of the line holding `offset` and whether it had a tab (reported).
    fn indentation(&mut self, offset: usize) -> (usize, bool) {
        let line_start = self.src[..offset].rfind('\n').map_or(0, |i| i + 1);
        let lead = &self.src[line_start..offset];
        // Spaces only (nearly every line): the width is the byte count, and nothing to report.
        if lead.bytes().all(|b| b == b' ') {
            return (lead.len(), false);
        }
        if let Some(tab) = lead.find('\t') {
            let at = line_start + tab;
            self.diags.push(
                Diagnostic::new(
                    &rules::TAB_INDENTATION,
                    "tabs are not allowed for indentation",
                )
                .with_primary(Span::new(at, at + 1), "tab here")
                .with_help("indent with spaces only (4 per level is the convention)"),
            );
        }
        // A byte-order mark at the start of the file is not indentation, and neither is an
        // invalid character (`$x = 1`, already reported) before the line's first token.
        (
            lead.chars()
                .take_while(|c| c.is_whitespace() || *c == '\u{FEFF}')
                .filter(|&c| c != '\u{FEFF}')
                .count(),
            lead.contains('\t'),
        )
    }

    /// Peek at the next real token after `pos` (skipping newlines and errors).
    fn peek_token(&self, mut pos: usize) -> Option<(Tok<'src>, Span)> {
        while let Some((tok, span)) = self.raw.get(pos) {
            match tok {
                Ok(RawToken::Newline) | Err(()) => pos += 1,
                Ok(RawToken::Ident(s)) => {
                    return Some((Tok::keyword(s).unwrap_or(Tok::Ident(s)), *span))
                }
                Ok(_) => return Some((Tok::Comma, *span)),
            }
        }
        None
    }

    fn convert(&mut self, raw: RawToken<'src>, span: Span) -> Tok<'src> {
        match raw {
            RawToken::Newline => Tok::Newline,
            RawToken::Ident(s) => Tok::keyword(s).unwrap_or(Tok::Ident(s)),
            RawToken::Number(NumLit::Int(n)) => Tok::Int(n),
            RawToken::Number(NumLit::Float(x)) => Tok::Float(x),
            RawToken::Number(NumLit::Duration(ms)) => Tok::Duration(ms),
            RawToken::Number(NumLit::IntOverflow) => {
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
            RawToken::Number(NumLit::BadSuffix { suffix_start }) => {
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
            RawToken::Str(StrLit { value, error }) => {
                match error {
                    None => {}
                    Some(StrError::Unterminated) => {
                        self.line_has_unterminated_string = true;
                        self.diags.push(
                        Diagnostic::new(&rules::UNTERMINATED_STRING, "unterminated string literal")
                            .with_primary(span, "this string is not closed on its line")
                            .with_help(
                                "close the string with a matching quote on the same line; to span lines, join strings with `+` or write `\\n`",
                            ),
                        )
                    }
                    Some(StrError::BadEscape { start, end }) => {
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

    fn invalid_char(&mut self, span: Span) {
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

    /// If the tokens at `pos` are a top-level `goal:`/`intent:` with unquoted text,
    /// report it and return the text's span and the raw position after its line.
    fn unquoted_goal(&mut self, pos: usize, keyword: &str) -> Option<(Span, usize)> {
        let (Ok(RawToken::Colon), colon) = self.raw.get(pos + 1)? else {
            return None;
        };
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
        let mut next = pos + 2;
        while let Some((_, s)) = self.raw.get(next) {
            if s.start as usize >= line_end {
                break;
            }
            next += 1;
        }
        Some((span, next))
    }

    /// The logical lines and, in one vector, their tokens (each line holds a range of it).
    fn lines(&mut self) -> (Vec<Line>, Vec<Spanned<'src>>) {
        let mut lines: Vec<Line> = Vec::with_capacity(self.src.len() / 24);
        let mut toks: Vec<Spanned<'src>> = Vec::with_capacity(self.raw.len());
        let mut cur: Option<Line> = None;
        let mut brackets: Vec<(Tok<'src>, Span)> = Vec::new();
        while self.pos < self.raw.len() {
            // Look-ahead only reads tokens after `pos`, so this one can be moved out.
            let span = self.raw[self.pos].1;
            let raw = std::mem::replace(&mut self.raw[self.pos].0, Err(()));
            self.pos += 1;
            let raw = match raw {
                Ok(r) => r,
                Err(()) => {
                    self.invalid_char(span);
                    continue;
                }
            };
            if matches!(raw, RawToken::Newline) {
                if brackets.is_empty() {
                    finish_line(&mut lines, cur.take(), &toks);
                    continue;
                }
                // Inside brackets a newline is ignored, unless the next line plainly starts
                // a new statement at or left of this line's indentation: then the
                // brackets were never closed.
                let Some(line) = cur.as_mut() else { continue };
                // A string left open on this line swallowed its closing brackets: the
                // line ends here (the string is already reported).
                if self.line_has_unterminated_string {
                    close_unclosed(
                        &mut brackets,
                        &mut toks,
                        span.start as usize,
                        &mut self.diags,
                        true,
                    );
                    finish_line(&mut lines, cur.take(), &toks);
                    continue;
                }
                let next = self.peek_token(self.pos);
                if let Some((tok, next_span)) = next {
                    let line_start = self.src[..next_span.start as usize]
                        .rfind('\n')
                        .map_or(0, |i| i + 1);
                    let col = self.src[line_start..next_span.start as usize]
                        .chars()
                        .count();
                    if starts_statement(&tok) && col <= line.indent {
                        let quiet = self.line_has_unterminated_string;
                        close_unclosed(
                            &mut brackets,
                            &mut toks,
                            span.start as usize,
                            &mut self.diags,
                            quiet,
                        );
                        finish_line(&mut lines, cur.take(), &toks);
                    }
                }
                continue;
            }
            if cur.is_none() {
                self.line_has_unterminated_string = false;
                let (indent, tab_in_indent) = self.indentation(span.start as usize);
                let mut line = Line {
                    indent,
                    tab_in_indent,
                    start: span.start as usize,
                    end: span.end as usize,
                    toks_start: toks.len(),
                    toks_end: toks.len(),
                };
                if indent == 0 {
                    if let RawToken::Ident(word @ ("goal" | "intent")) = raw {
                        if let Some((text_span, next)) = self.unquoted_goal(self.pos - 1, word) {
                            let kw = if word == "goal" {
                                Tok::Goal
                            } else {
                                Tok::Intent
                            };
                            let colon = self.raw[self.pos].1;
                            toks.push((span.start as usize, kw, span.end as usize));
                            toks.push((colon.start as usize, Tok::Colon, colon.end as usize));
                            toks.push((
                                text_span.start as usize,
                                Tok::UnquotedText,
                                text_span.end as usize,
                            ));
                            line.end = text_span.end as usize;
                            self.pos = next;
                            finish_line(&mut lines, Some(line), &toks);
                            continue;
                        }
                    }
                }
                cur = Some(line);
            }
            let line = cur.as_mut().expect("line started above");
            // `-9223372036854775808`: the magnitude alone overflows an i64, but negated it
            // is the smallest int. After a unary minus, the two make one literal.
            if matches!(raw, RawToken::Number(NumLit::IntOverflow))
                && is_min_int_magnitude(&self.src[span.range()])
                && ends_in_unary_minus(&toks[line.toks_start..])
            {
                let (start, _, _) = toks.pop().expect("a minus was checked for");
                line.end = span.end as usize;
                toks.push((start, Tok::Int(i64::MIN), span.end as usize));
                continue;
            }
            let mut tok = self.convert(raw, span);
            if toks.len() == line.toks_start {
                match tok {
                    Tok::Minus => tok = Tok::Dash,
                    Tok::Ident("intent") if line.indent == 0 => {
                        if matches!(self.raw.get(self.pos), Some((Ok(RawToken::Colon), _))) {
                            tok = Tok::Intent;
                        }
                    }
                    _ => {}
                }
            }
            match tok {
                Tok::LParen | Tok::LBracket | Tok::LBrace => brackets.push((tok.clone(), span)),
                Tok::RParen | Tok::RBracket | Tok::RBrace => {
                    if let Some(depth) = brackets.iter().rposition(|(o, _)| closer_for(o) == tok) {
                        // Brackets opened after the match were never closed.
                        while brackets.len() > depth + 1 {
                            let (open, open_span) = brackets.pop().expect("len checked");
                            self.diags.push(unclosed(&open, open_span));
                            let at = span.start as usize;
                            toks.push((at, closer_for(&open), at));
                        }
                        brackets.pop();
                    } else {
                        self.diags.push(
                            Diagnostic::new(
                                &rules::UNMATCHED_BRACKET,
                                format!("unmatched closing `{}`", tok.text()),
                            )
                            .with_primary(span, "no opening bracket for this")
                            .with_help("remove it, or add the opening bracket it belongs to"),
                        );
                        continue;
                    }
                }
                _ => {}
            }
            line.end = span.end as usize;
            toks.push((span.start as usize, tok, span.end as usize));
        }
        if let Some(line) = cur.take() {
            let at = line.end;
            let quiet = self.line_has_unterminated_string;
            close_unclosed(&mut brackets, &mut toks, at, &mut self.diags, quiet);
            finish_line(&mut lines, Some(line), &toks);
        }
        (lines, toks)
    }
}

/// Whether a number's text (underscores allowed) is 9223372036854775808, the magnitude of
/// `i64::MIN`.
fn is_min_int_magnitude(text: &str) -> bool {
    text.chars()
        .filter(|&c| c != '_')
        .eq("9223372036854775808".chars())
}

/// Whether the line so far ends in a `-` that negates what follows (not one that
/// subtracts it from an operand before it).
fn ends_in_unary_minus(toks: &[Spanned<'_>]) -> bool {
    match toks {
        [.., before, (_, Tok::Minus, _)] => !matches!(
            before.1,
            Tok::Ident(_)
                | Tok::Int(_)
                | Tok::Float(_)
                | Tok::Duration(_)
                | Tok::Str(_)
                | Tok::UnquotedText
                | Tok::True
                | Tok::False
                | Tok::Null
                | Tok::RParen
                | Tok::RBracket
                | Tok::RBrace
        ),
        [(_, Tok::Minus, _)] => true,
        _ => false,
    }
}

fn unclosed(open: &Tok<'_>, span: Span) -> Diagnostic {
    Diagnostic::new(
        &rules::UNCLOSED_BRACKET,
        format!("`{}` was never closed", open.text()),
    )
    .with_primary(span, "opened here")
    .with_help(format!("add the closing `{}`", closer_for(open).text()))
}

fn close_unclosed<'src>(
    brackets: &mut Vec<(Tok<'src>, Span)>,
    toks: &mut Vec<Spanned<'src>>,
    at: usize,
    diags: &mut Vec<Diagnostic>,
    quiet: bool,
) {
    while let Some((open, span)) = brackets.pop() {
        if !quiet {
            diags.push(unclosed(&open, span));
        }
        toks.push((at, closer_for(&open), at));
    }
}

/// Lex a whole source text into the parser's token stream.
pub fn lex(src: &str) -> Lexed<'_> {
    let mut lexer = RawToken::lexer_with_extras(src, Vec::new());
    // About one token per 4.5 bytes of source in the benchmark corpus: one allocation for
    // nearly every file.
    let mut raw = Vec::with_capacity(src.len() / 4 + 8);
    while let Some(tok) = lexer.next() {
        let s = lexer.span();
        raw.push((tok, Span::new(s.start, s.end)));
    }
    let comments = lexer.extras;
    let mut layout = Layout {
        src,
        line_has_unterminated_string: false,
        raw,
        pos: 0,
        diags: Vec::new(),
    };
    let (lines, mut line_toks) = layout.lines();
    let mut diags = layout.diags;

    let mut tokens = Vec::with_capacity(line_toks.len() + 2 * lines.len());
    // Whether the line before this one opens a block (computed before its tokens move
    // into `tokens`).
    let mut prev_opens_block = false;
    // (column, real): a level pushed to recover from a bad dedent is not real and
    // emits no Dedent when popped, so one mistake gives one error.
    let mut stack: Vec<(usize, bool)> = vec![(0, true)];
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        let top = stack.last().expect("stack never empty").0;
        if line.indent > top {
            // Only a line ending in `:` (or an on_error `- when: KIND` line) opens a block.
            if prev_opens_block {
                stack.push((line.indent, true));
                tokens.push((line.start, Tok::Indent, line.start));
            } else {
                stack.push((line.indent, false));
                if !line.tab_in_indent {
                    diags.push(
                        Diagnostic::new(&rules::SYNTAX_ERROR, "unexpected indentation")
                            .with_primary(Span::new(line.start, line.start), "this line is indented")
                            .with_help("only a line ending in `:` opens an indented block; line this up with the line above"),
                    );
                }
            }
        } else if line.indent < top {
            while stack.last().expect("stack never empty").0 > line.indent {
                let (_, real) = stack.pop().expect("stack never empty");
                if real {
                    tokens.push((line.start, Tok::Dedent, line.start));
                }
            }
            let matched = stack.last().expect("stack never empty").0 == line.indent;
            if !matched {
                stack.push((line.indent, false));
            }
            if !matched && !line.tab_in_indent {
                let col = line.indent + 1;
                diags.push(
                    Diagnostic::new(
                        &rules::INCONSISTENT_DEDENT,
                        format!(
                            "unindent to column {col} does not match any outer indentation level"
                        ),
                    )
                    .with_primary(Span::new(line.start, line.start), "dedented to here")
                    .with_help("line this up with the block it belongs to"),
                );
            }
        }
        // A reserved block: `agent:` / `visualize:` with an indented body.
        let toks = &line_toks[line.toks()];
        if let [(s, Tok::Ident(name @ ("agent" | "visualize")), _), (_, Tok::Colon, _)] = toks {
            if lines
                .get(i + 1)
                .is_some_and(|next| next.indent > line.indent)
            {
                let mut j = i + 1;
                while lines.get(j).is_some_and(|next| next.indent > line.indent) {
                    j += 1;
                }
                let end = lines[j - 1].end;
                diags.push(
                    Diagnostic::new(
                        &rules::UNSUPPORTED_BLOCK,
                        format!("`{name}:` blocks are reserved and not supported"),
                    )
                    .with_primary(Span::new(*s, toks[1].2), "reserved block")
                    .with_help(format!(
                        "remove the `{name}:` block; `{name}` is only usable as an ordinary name"
                    )),
                );
                tokens.push((*s, Tok::ReservedBlock(name), end));
                tokens.push((end, Tok::Newline, end));
                prev_opens_block = opens_block(&line_toks[lines[j - 1].toks()]);
                i = j;
                continue;
            }
        }
        prev_opens_block = opens_block(toks);
        // A line of at most MAX_LINE_NESTING tokens cannot nest deeper: count only longer ones.
        let nesting = if toks.len() > MAX_LINE_NESTING {
            toks.iter().filter(|(_, t, _)| adds_nesting(t)).count()
        } else {
            0
        };
        // The stack's first level is the file's top level, not a block.
        let depth = stack.len() - 1;
        if nesting > MAX_LINE_NESTING || depth > MAX_BLOCK_DEPTH {
            let (what, limit, help) = if nesting > MAX_LINE_NESTING {
                (
                    "operators, brackets and `.`",
                    MAX_LINE_NESTING,
                    "split the expression over several statements with intermediate variables",
                )
            } else {
                (
                    "nested blocks",
                    MAX_BLOCK_DEPTH,
                    "move the inner blocks into an action and call it",
                )
            };
            diags.push(
                Diagnostic::new(
                    &rules::NESTING_TOO_DEEP,
                    format!("this line has more than {limit} {what}"),
                )
                .with_primary(Span::new(line.start, line.end), "too deeply nested")
                .with_help(help),
            );
            // The line is dropped; its Newline keeps the block structure intact.
            tokens.push((line.end, Tok::Newline, line.end));
            i += 1;
            continue;
        }
        // Each line's tokens move once (a string's text is not copied).
        tokens.extend(
            line_toks[line.toks()]
                .iter_mut()
                .map(|(s, t, e)| (*s, std::mem::replace(t, Tok::Newline), *e)),
        );
        tokens.push((line.end, Tok::Newline, line.end));
        i += 1;
    }
    let end = src.len();
    while let Some((_, real)) = stack.pop() {
        if real && !stack.is_empty() {
            tokens.push((end, Tok::Dedent, end));
        }
    }
    Lexed {
        tokens,
        diagnostics: diags,
        comments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok<'_>> {
        lex(src).tokens.into_iter().map(|(_, t, _)| t).collect()
    }

    fn codes(src: &str) -> Vec<&'static str> {
        lex(src).diagnostics.iter().map(|d| d.rule().name).collect()
    }

    fn parse_codes(src: &str) -> Vec<&'static str> {
        crate::parse(src)
            .diagnostics
            .iter()
            .map(|d| d.rule().name)
            .collect()
    }

    #[test]
    fn indentation_makes_blocks() {
        assert_eq!(
            toks("if x:\n    y\n\n  # c\nz\n"),
            vec![
                Tok::If,
                Tok::Ident("x"),
                Tok::Colon,
                Tok::Newline,
                Tok::Indent,
                Tok::Ident("y"),
                Tok::Newline,
                Tok::Dedent,
                Tok::Ident("z"),
                Tok::Newline,
            ]
        );
    }

    #[test]
    fn brackets_join_lines_and_dash_starts_items() {
        assert_eq!(
            toks("x = [1,\n  2]\n- f()\ny = -1"),
            vec![
                Tok::Ident("x"),
                Tok::Assign,
                Tok::LBracket,
                Tok::Int(1),
                Tok::Comma,
                Tok::Int(2),
                Tok::RBracket,
                Tok::Newline,
                Tok::Dash,
                Tok::Ident("f"),
                Tok::LParen,
                Tok::RParen,
                Tok::Newline,
                Tok::Ident("y"),
                Tok::Assign,
                Tok::Minus,
                Tok::Int(1),
                Tok::Newline,
            ]
        );
    }

    #[test]
    fn comments_are_kept_beside_the_tokens() {
        let src = "# head\r\nx = [1, // one\n  2] # tail\n\"# not\" // end";
        let texts: Vec<&str> = lex(src).comments.iter().map(|c| &src[c.range()]).collect();
        assert_eq!(texts, ["# head\r", "// one", "# tail", "// end"]);
        // The tokens are the same as without the comments.
        assert_eq!(toks(src), toks("\nx = [1,\n  2]\n\"# not\""));
    }

    #[test]
    fn crlf_is_a_newline() {
        assert_eq!(toks("a\r\nb\r\n"), toks("a\nb\n"));
    }

    #[test]
    fn the_smallest_int_can_be_written_after_a_unary_minus() {
        for src in [
            "x = -9223372036854775808\n",
            "print(-9_223_372_036_854_775_808)\n",
            "x = 1 - -9223372036854775808\n",
            "x = [-9223372036854775808]\n",
        ] {
            assert!(codes(src).is_empty(), "{src}: {:?}", codes(src));
            assert!(toks(src).contains(&Tok::Int(i64::MIN)), "{src}");
            assert!(!toks(src).contains(&Tok::Int(0)), "{src}");
        }
        // The literal's span covers the minus too.
        let lexed = lex("x = -9223372036854775808\n");
        let (start, _, end) = lexed
            .tokens
            .iter()
            .find(|(_, t, _)| *t == Tok::Int(i64::MIN))
            .expect("the literal")
            .clone();
        assert_eq!((start, end), (4, 24));
        // A binary minus subtracts the magnitude, which does not fit.
        for src in [
            "x = y -9223372036854775808\n",
            "x = 9223372036854775808\n",
            "x = (2) - 9223372036854775808\n",
        ] {
            assert_eq!(codes(src), ["integer-overflow"], "{src}");
        }
    }

    #[test]
    fn lexical_errors_are_reported() {
        assert_eq!(codes("if x:\n\ty\n"), vec!["tab-indentation"]);
        assert_eq!(codes("if x:\n    y\n\tz\n"), vec!["tab-indentation"]);
        assert_eq!(codes("if x:\n    y\n  z\n"), vec!["inconsistent-dedent"]);
        // One bad dedent is one error, however many lines follow at that column.
        assert_eq!(
            parse_codes("if x:\n    y = 1\n  z = 2\n  w = 3\nv = 4\n"),
            vec!["inconsistent-dedent"]
        );
        assert_eq!(codes("x = 5min\n"), vec!["invalid-duration-unit"]);
        assert_eq!(codes("x = \"abc\n"), vec!["unterminated-string"]);
        // The call's `)` was inside the open string: one error, not a cascade.
        assert_eq!(
            parse_codes("log(\"starting run)\nprint(\"done\")\n"),
            vec!["unterminated-string"]
        );
        assert_eq!(codes("x = $\n"), vec!["invalid-character"]);
        assert_eq!(codes("goal: Keep it healthy\n"), vec!["unquoted-goal"]);
        assert_eq!(codes("x = f(1\nlet y = 2\n"), vec!["unclosed-bracket"]);
        assert_eq!(codes("x = 1)\n"), vec!["unmatched-bracket"]);
    }

    #[test]
    fn unquoted_goal_fix_keeps_unicode_spaces_inside_the_quotes() {
        // Regression: the text before a trailing comment was trimmed of all Unicode
        // whitespace, so the fix left a U+00A0 outside the string (an invalid character).
        let src = "goal: hello \u{A0} # c\nprint(1)\n";
        let lexed = lex(src);
        let fix = lexed
            .diagnostics
            .iter()
            .find_map(|d| d.fix())
            .expect("unquoted-goal carries a fix");
        assert_eq!(fix.replacement, "\"hello \u{A0}\"");
        let mut fixed = src.to_string();
        fixed.replace_range(fix.span.range(), &fix.replacement);
        assert_eq!(fixed, "goal: \"hello \u{A0}\" # c\nprint(1)\n");
        assert_eq!(parse_codes(&fixed), Vec::<&str>::new());
        // The same at the start of the text.
        let src = "goal: \u{A0}hello\n";
        let fix = lex(src)
            .diagnostics
            .iter()
            .find_map(|d| d.fix().cloned())
            .expect("unquoted-goal carries a fix");
        assert_eq!(&src[fix.span.range()], "\u{A0}hello");
        assert_eq!(fix.replacement, "\"\u{A0}hello\"");
    }

    #[test]
    fn reserved_blocks_are_swallowed() {
        let lexed = lex("agent:\n    anything here\n    more\nx = 1\n");
        assert_eq!(lexed.diagnostics.len(), 1);
        assert_eq!(lexed.diagnostics[0].rule().name, "unsupported-block");
        assert!(matches!(lexed.tokens[0].1, Tok::ReservedBlock("agent")));
        // `agent` alone is an ordinary name.
        assert_eq!(codes("agent: 1\n"), Vec::<&str>::new());
    }
}
