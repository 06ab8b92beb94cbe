//! The layout pass: turns logos tokens into the parser's stream of `(start, Tok, end)` triples.
//!
//! It groups tokens into logical lines (newlines inside brackets are ignored),
//! synthesises `Indent`/`Dedent`/`Newline`, turns a line-initial `-` into a list-item
//! `Dash`, swallows reserved `agent:`/`visualize:` blocks and unquoted goal text into
//! single tokens, and reports every lexical error as a diagnostic instead of failing.

use logos::Logos;

mod convert;

use crate::diagnostic::Diagnostic;
use crate::rules;
use crate::span::Span;
use crate::token::{NumLit, RawToken, Tok};

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

/// A logical line: being built, or finished and waiting for the next line's indentation.
#[derive(Clone, Copy)]
struct Line {
    indent: usize,
    start: usize,
    end: usize,
    /// Where the line's tokens start in the output; they run to its end.
    toks_start: usize,
    /// The line is in the body of a reserved block: its tokens are dropped when it ends.
    swallowed: bool,
}

/// A reserved `agent:` / `visualize:` block whose body is being swallowed.
struct Reserved<'src> {
    name: &'src str,
    start: usize,
    /// The head line's indentation: the body is every following line indented deeper.
    indent: usize,
    /// The end of the body's last line so far, and whether that line opens a block.
    end: usize,
    last_opens_block: bool,
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

/// The layout pass, driven one logos token at a time: logical lines are built straight
/// into the output, with the indentation tokens before them and their `Newline` after.
struct Layout<'src> {
    src: &'src str,
    lexer: logos::Lexer<'src, RawToken<'src>>,
    /// A token read ahead of the one being processed (one token of look-ahead).
    peeked: Option<(Result<RawToken<'src>, ()>, Span)>,
    /// The current logical line has an unterminated string: brackets it leaves open are
    /// a consequence, not a second error.
    line_has_unterminated_string: bool,
    /// Where the physical line of the token being processed starts: after the last `\n`.
    physical_line_start: usize,
    /// Lexical diagnostics, in source order.
    diags: Vec<Diagnostic>,
    /// Diagnostics of the block structure (indentation, reserved blocks, nesting limits),
    /// reported after the lexical ones.
    layout_diags: Vec<Diagnostic>,
    out: Vec<Spanned<'src>>,
    /// The logical line being built.
    cur: Option<Line>,
    /// Brackets open on the current logical line.
    brackets: Vec<(Tok<'src>, Span)>,
    /// (column, real): a level pushed to recover from a bad dedent is not real and
    /// emits no Dedent when popped, so one mistake gives one error.
    stack: Vec<(usize, bool)>,
    /// Whether the last finished line opens a block.
    prev_opens_block: bool,
    /// A finished `agent:` / `visualize:` line: a reserved block if the next line is
    /// indented deeper. Its `Newline` is not written yet.
    pending_head: Option<Line>,
    reserved: Option<Reserved<'src>>,
}

impl<'src> Layout<'src> {
    /// Indentation width of the line holding `offset` and whether it had a tab (reported).
    fn indentation(&mut self, offset: usize) -> (usize, bool) {
        // Every `\n` before `offset` was a newline token, the last of them seen last.
        let line_start = self.physical_line_start;
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

    /// The next raw token: the one read ahead, or the lexer's next.
    fn next_raw(&mut self) -> Option<(Result<RawToken<'src>, ()>, Span)> {
        if let Some(t) = self.peeked.take() {
            return Some(t);
        }
        let tok = self.lexer.next()?;
        let s = self.lexer.span();
        Some((tok, Span::new(s.start, s.end)))
    }

    /// The raw token after the one being processed.
    fn peek_raw(&mut self) -> Option<&(Result<RawToken<'src>, ()>, Span)> {
        if self.peeked.is_none() {
            self.peeked = self.next_raw();
        }
        self.peeked.as_ref()
    }

    /// The next real token from `offset` on (skipping newlines and errors): a keyword or
    /// name as such, anything else as a `,`. It lexes ahead with a lexer of its own (the
    /// rest of the source lexes the same from any token boundary); its comments are not
    /// recorded.
    fn peek_token(&self, offset: usize) -> Option<(Tok<'src>, usize)> {
        let src: &'src str = self.src;
        let mut ahead = RawToken::lexer_with_extras(&src[offset..], Vec::new());
        while let Some(tok) = ahead.next() {
            let at = offset + ahead.span().start;
            match tok {
                Ok(RawToken::Newline) | Err(()) => {}
                Ok(RawToken::Ident(s)) => {
                    return Some((Tok::keyword(s).unwrap_or(Tok::Ident(s)), at))
                }
                Ok(_) => return Some((Tok::Comma, at)),
            }
        }
        None
    }

    /// Process one raw token.
    fn token(&mut self, raw: Result<RawToken<'src>, ()>, span: Span) {
        let raw = match raw {
            Ok(r) => r,
            Err(()) => {
                self.invalid_char(span);
                return;
            }
        };
        if matches!(raw, RawToken::Newline) {
            self.physical_line_start = span.end as usize;
            self.newline(span);
            return;
        }
        if self.cur.is_none() && self.begin_line(&raw, span) {
            return;
        }
        let Some(line) = self.cur else { return };
        // `-9223372036854775808`: the magnitude alone overflows an i64, but negated it
        // is the smallest int. After a unary minus, the two make one literal.
        if matches!(raw, RawToken::Number(NumLit::IntOverflow))
            && is_min_int_magnitude(&self.src[span.range()])
            && ends_in_unary_minus(&self.out[line.toks_start..])
        {
            let (start, _, _) = self.out.pop().expect("a minus was checked for");
            self.set_line_end(span.end as usize);
            self.out
                .push((start, Tok::Int(i64::MIN), span.end as usize));
            return;
        }
        let mut tok = self.convert(raw, span);
        if self.out.len() == line.toks_start {
            match tok {
                Tok::Minus => tok = Tok::Dash,
                Tok::Ident("intent") if line.indent == 0 => {
                    if matches!(self.peek_raw(), Some((Ok(RawToken::Colon), _))) {
                        tok = Tok::Intent;
                    }
                }
                _ => {}
            }
        }
        match tok {
            Tok::LParen | Tok::LBracket | Tok::LBrace => self.brackets.push((tok.clone(), span)),
            Tok::RParen | Tok::RBracket | Tok::RBrace => {
                if let Some(depth) = self
                    .brackets
                    .iter()
                    .rposition(|(o, _)| closer_for(o) == tok)
                {
                    // Brackets opened after the match were never closed.
                    while self.brackets.len() > depth + 1 {
                        let (open, open_span) = self.brackets.pop().expect("len checked");
                        self.diags.push(unclosed(&open, open_span));
                        let at = span.start as usize;
                        self.out.push((at, closer_for(&open), at));
                    }
                    self.brackets.pop();
                } else {
                    self.diags.push(
                        Diagnostic::new(
                            &rules::UNMATCHED_BRACKET,
                            format!("unmatched closing `{}`", tok.text()),
                        )
                        .with_primary(span, "no opening bracket for this")
                        .with_help("remove it, or add the opening bracket it belongs to"),
                    );
                    return;
                }
            }
            _ => {}
        }
        self.set_line_end(span.end as usize);
        self.out.push((span.start as usize, tok, span.end as usize));
    }

    fn set_line_end(&mut self, end: usize) {
        if let Some(line) = self.cur.as_mut() {
            line.end = end;
        }
    }

    /// A newline: the end of the logical line, unless brackets are open.
    #[inline(never)]
    fn newline(&mut self, span: Span) {
        if self.brackets.is_empty() {
            self.end_line();
            return;
        }
        // Inside brackets a newline is ignored, unless the next line plainly starts a new
        // statement at or left of this line's indentation: then the brackets were never
        // closed.
        let Some(line) = self.cur else { return };
        // A string left open on this line swallowed its closing brackets: the line ends
        // here (the string is already reported).
        if self.line_has_unterminated_string {
            let at = span.start as usize;
            close_unclosed(&mut self.brackets, &mut self.out, at, &mut self.diags, true);
            self.end_line();
            return;
        }
        if let Some((tok, next_start)) = self.peek_token(span.end as usize) {
            let line_start = self.src[..next_start].rfind('\n').map_or(0, |i| i + 1);
            let col = self.src[line_start..next_start].chars().count();
            if starts_statement(&tok) && col <= line.indent {
                let at = span.start as usize;
                close_unclosed(
                    &mut self.brackets,
                    &mut self.out,
                    at,
                    &mut self.diags,
                    false,
                );
                self.end_line();
            }
        }
    }

    /// The first token of a logical line: measure its indentation and write the layout
    /// tokens before it. Returns whether the token was consumed (an unquoted goal line,
    /// taken whole).
    #[inline(never)]
    fn begin_line(&mut self, raw: &RawToken<'src>, span: Span) -> bool {
        self.line_has_unterminated_string = false;
        let start = span.start as usize;
        let (indent, tab_in_indent) = self.indentation(start);
        let swallowed = self.indent_line(indent, tab_in_indent, start);
        let mut line = Line {
            indent,
            start,
            end: span.end as usize,
            toks_start: self.out.len(),
            swallowed,
        };
        if indent == 0 {
            if let RawToken::Ident(word @ ("goal" | "intent")) = *raw {
                if let Some((text_span, line_end)) = self.unquoted_goal(word) {
                    let kw = if word == "goal" {
                        Tok::Goal
                    } else {
                        Tok::Intent
                    };
                    let (_, colon) = self.next_raw().expect("the colon was peeked");
                    self.out.push((start, kw, span.end as usize));
                    self.out
                        .push((colon.start as usize, Tok::Colon, colon.end as usize));
                    self.out.push((
                        text_span.start as usize,
                        Tok::UnquotedText,
                        text_span.end as usize,
                    ));
                    // The rest of the line is the text: its tokens are dropped.
                    while let Some(next) = self.next_raw() {
                        if next.1.start as usize >= line_end {
                            self.peeked = Some(next);
                            break;
                        }
                    }
                    line.end = text_span.end as usize;
                    self.cur = Some(line);
                    self.end_line();
                    return true;
                }
            }
        }
        self.cur = Some(line);
        false
    }

    /// The block structure at the start of a line indented `indent`: a reserved block's
    /// body goes on or ends, `Indent`/`Dedent` tokens are written. Returns whether the
    /// line belongs to a reserved block's body.
    fn indent_line(&mut self, indent: usize, tab_in_indent: bool, start: usize) -> bool {
        if let Some(block) = &self.reserved {
            if indent > block.indent {
                return true;
            }
            self.end_reserved();
        }
        if let Some(head) = self.pending_head.take() {
            if indent > head.indent {
                self.begin_reserved(head);
                return true;
            }
            self.finish_line(head);
        }
        let top = self.stack.last().expect("stack never empty").0;
        if indent > top {
            // Only a line ending in `:` (or an on_error `- when: KIND` line) opens a block.
            if self.prev_opens_block {
                self.stack.push((indent, true));
                self.out.push((start, Tok::Indent, start));
            } else {
                self.stack.push((indent, false));
                if !tab_in_indent {
                    self.layout_diags.push(
                        Diagnostic::new(&rules::SYNTAX_ERROR, "unexpected indentation")
                            .with_primary(Span::new(start, start), "this line is indented")
                            .with_help("only a line ending in `:` opens an indented block; line this up with the line above"),
                    );
                }
            }
        } else if indent < top {
            while self.stack.last().expect("stack never empty").0 > indent {
                let (_, real) = self.stack.pop().expect("stack never empty");
                if real {
                    self.out.push((start, Tok::Dedent, start));
                }
            }
            let matched = self.stack.last().expect("stack never empty").0 == indent;
            if !matched {
                self.stack.push((indent, false));
            }
            if !matched && !tab_in_indent {
                let col = indent + 1;
                self.layout_diags.push(
                    Diagnostic::new(
                        &rules::INCONSISTENT_DEDENT,
                        format!(
                            "unindent to column {col} does not match any outer indentation level"
                        ),
                    )
                    .with_primary(Span::new(start, start), "dedented to here")
                    .with_help("line this up with the block it belongs to"),
                );
            }
        }
        false
    }

    /// The end of the current logical line (if any).
    fn end_line(&mut self) {
        let Some(line) = self.cur.take() else { return };
        let toks = &self.out[line.toks_start..];
        if line.swallowed {
            let opens = opens_block(toks);
            self.out.truncate(line.toks_start);
            let block = self
                .reserved
                .as_mut()
                .expect("a swallowed line is in a block");
            block.end = line.end;
            block.last_opens_block = opens;
            return;
        }
        if let [(_, Tok::Ident("agent" | "visualize"), _), (_, Tok::Colon, _)] = toks {
            // A reserved block if the next line is indented deeper: decided there.
            self.pending_head = Some(line);
            return;
        }
        self.finish_line(line);
    }

    /// A line's checks once its tokens are all written, and its `Newline`.
    fn finish_line(&mut self, line: Line) {
        let toks = &self.out[line.toks_start..];
        self.prev_opens_block = opens_block(toks);
        // A line of at most MAX_LINE_NESTING tokens cannot nest deeper: count only longer ones.
        let nesting = if toks.len() > MAX_LINE_NESTING {
            toks.iter().filter(|(_, t, _)| adds_nesting(t)).count()
        } else {
            0
        };
        // The stack's first level is the file's top level, not a block.
        let depth = self.stack.len() - 1;
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
            self.layout_diags.push(
                Diagnostic::new(
                    &rules::NESTING_TOO_DEEP,
                    format!("this line has more than {limit} {what}"),
                )
                .with_primary(Span::new(line.start, line.end), "too deeply nested")
                .with_help(help),
            );
            // The line is dropped; its Newline keeps the block structure intact.
            self.out.truncate(line.toks_start);
        }
        self.out.push((line.end, Tok::Newline, line.end));
    }

    /// `head` (`agent:` / `visualize:`) is followed by a deeper line: a reserved block.
    fn begin_reserved(&mut self, head: Line) {
        let (start, name, colon_end) = match &self.out[head.toks_start..] {
            [(s, Tok::Ident(name), _), (_, _, e)] => (*s, *name, *e),
            _ => unreachable!("a pending head is `agent:` or `visualize:`"),
        };
        self.layout_diags.push(
            Diagnostic::new(
                &rules::UNSUPPORTED_BLOCK,
                format!("`{name}:` blocks are reserved and not supported"),
            )
            .with_primary(Span::new(start, colon_end), "reserved block")
            .with_help(format!(
                "remove the `{name}:` block; `{name}` is only usable as an ordinary name"
            )),
        );
        self.out.truncate(head.toks_start);
        self.reserved = Some(Reserved {
            name,
            start,
            indent: head.indent,
            end: head.end,
            last_opens_block: false,
        });
    }

    /// The reserved block's body is over: the block is one token.
    fn end_reserved(&mut self) {
        if let Some(block) = self.reserved.take() {
            let end = block.end;
            self.out
                .push((block.start, Tok::ReservedBlock(block.name), end));
            self.out.push((end, Tok::Newline, end));
            self.prev_opens_block = block.last_opens_block;
        }
    }

    /// The end of the file: the last line, then every open block.
    fn finish(&mut self) {
        if let Some(line) = self.cur {
            let quiet = self.line_has_unterminated_string;
            close_unclosed(
                &mut self.brackets,
                &mut self.out,
                line.end,
                &mut self.diags,
                quiet,
            );
            self.end_line();
        }
        self.end_reserved();
        if let Some(head) = self.pending_head.take() {
            self.finish_line(head);
        }
        let end = self.src.len();
        while let Some((_, real)) = self.stack.pop() {
            if real && !self.stack.is_empty() {
                self.out.push((end, Tok::Dedent, end));
            }
        }
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
    let mut layout = Layout {
        src,
        lexer: RawToken::lexer_with_extras(src, Vec::new()),
        peeked: None,
        line_has_unterminated_string: false,
        physical_line_start: 0,
        diags: Vec::new(),
        layout_diags: Vec::new(),
        // About one token per 4.5 bytes of source in the benchmark corpus, layout tokens
        // included: one allocation for nearly every file.
        out: Vec::with_capacity(src.len() / 4 + 16),
        cur: None,
        brackets: Vec::with_capacity(8),
        stack: {
            let mut stack = Vec::with_capacity(16);
            stack.push((0, true));
            stack
        },
        prev_opens_block: false,
        pending_head: None,
        reserved: None,
    };
    while let Some((tok, span)) = layout.next_raw() {
        layout.token(tok, span);
    }
    layout.finish();
    let mut diagnostics = layout.diags;
    diagnostics.append(&mut layout.layout_diags);
    Lexed {
        tokens: layout.out,
        diagnostics,
        comments: layout.lexer.extras,
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
    fn reserved_blocks_end_where_their_indentation_does() {
        // Nested, followed by a line of the enclosing block.
        let src = "if x:\n    agent:\n        a\n            b\n    y = 1\n";
        let lexed = lex(src);
        let b_end = src.find("b\n").expect("b") + 1;
        assert_eq!(
            lexed.tokens,
            vec![
                (0, Tok::If, 2),
                (3, Tok::Ident("x"), 4),
                (4, Tok::Colon, 5),
                (5, Tok::Newline, 5),
                (10, Tok::Indent, 10),
                (10, Tok::ReservedBlock("agent"), b_end),
                (b_end, Tok::Newline, b_end),
                (b_end + 5, Tok::Ident("y"), b_end + 6),
                (b_end + 7, Tok::Assign, b_end + 8),
                (b_end + 9, Tok::Int(1), b_end + 10),
                (b_end + 10, Tok::Newline, b_end + 10),
                (src.len(), Tok::Dedent, src.len()),
            ]
        );
        assert_eq!(codes(src), ["unsupported-block"]);
        // At the end of the file.
        assert_eq!(
            lex("visualize:\n    a(\n  1)\n").tokens,
            vec![
                (0, Tok::ReservedBlock("visualize"), 22),
                (22, Tok::Newline, 22)
            ]
        );
        // Nothing deeper after it: an ordinary line, as at the end of the file.
        assert_eq!(
            toks("agent:\nx\n"),
            [
                Tok::Ident("agent"),
                Tok::Colon,
                Tok::Newline,
                Tok::Ident("x"),
                Tok::Newline
            ]
        );
        assert_eq!(
            toks("agent:"),
            [Tok::Ident("agent"), Tok::Colon, Tok::Newline]
        );
        assert!(codes("agent:\nx\n").is_empty());
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
