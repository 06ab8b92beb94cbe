//! The canonical layout of `.aether` files (`aether fmt`, and the editor's formatting).
//!
//! The formatter works on the layout tokens of [`crate::lexer`] and the comments beside
//! them: each logical line is laid out on its own (spacing, bracket groups broken one item
//! per line when the line is too long), blocks are indented 4 spaces per level, blank lines
//! are normalised, and every comment is kept where it stands. Only a file that parses
//! without errors is formatted, and the output is parsed again and compared with the input's
//! syntax tree (spans aside) before it is returned, so formatting never changes what a
//! script means. docs/fmt.md describes the layout.

mod doc;
mod line;

use crate::ast::Script;
use crate::diagnostic::Diagnostic;
use crate::lexer::{lex, Spanned};
use crate::rules;
use crate::span::{LineIndex, Span};
use crate::token::Tok;

use line::{LineFmt, INDENT};

/// The formatter's one option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FmtOptions {
    /// Lines longer than this (in characters) have their brackets broken one item per line.
    pub line_width: usize,
}

/// The default line width.
pub const DEFAULT_LINE_WIDTH: usize = 100;

impl Default for FmtOptions {
    fn default() -> Self {
        FmtOptions {
            line_width: DEFAULT_LINE_WIDTH,
        }
    }
}

/// Format a whole source text.
///
/// Returns the formatted text (line endings as the input's first line ending: CRLF stays
/// CRLF), or the error diagnostics when the text does not parse (nothing is formatted then).
/// A formatted text that would not parse to the same syntax tree is an `internal-error`
/// diagnostic instead of a result: the formatter never changes a script's meaning.
pub fn format_source(src: &str, opts: &FmtOptions) -> Result<String, Vec<Diagnostic>> {
    let parsed = crate::parse(src);
    if parsed.has_errors() {
        return Err(parsed
            .diagnostics
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect());
    }
    let out = layout(src, opts).ok_or_else(|| vec![internal("its brackets do not pair up")])?;
    let again = crate::parse(&out);
    if again.has_errors() || !same_structure(&parsed.ast, &again.ast) {
        return Err(vec![internal("the result would not mean the same")]);
    }
    Ok(out)
}

/// The edit that turns `old` into `new`: the byte range of `old` to replace and its
/// replacement, with the common prefix and suffix left out (`None` when they are equal).
/// An editor applies it as one text edit after [`format_source`].
pub fn minimal_edit(old: &str, new: &str) -> Option<(Span, String)> {
    if old == new {
        return None;
    }
    let mut prefix = old
        .bytes()
        .zip(new.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !old.is_char_boundary(prefix) || !new.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let max_suffix = old.len().min(new.len()) - prefix;
    let mut suffix = old
        .bytes()
        .rev()
        .zip(new.bytes().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    while !old.is_char_boundary(old.len() - suffix) || !new.is_char_boundary(new.len() - suffix) {
        suffix -= 1;
    }
    Some((
        Span::new(prefix, old.len() - suffix),
        new[prefix..new.len() - suffix].to_string(),
    ))
}

/// Whether two syntax trees are the same apart from their spans (and so from layout,
/// comments, parentheses and quote style).
pub fn same_structure(a: &Script, b: &Script) -> bool {
    without_spans(&format!("{a:?}")) == without_spans(&format!("{b:?}"))
}

/// The `Debug` text of a tree with every `Span { start: .., end: .. }` left out.
fn without_spans(debug: &str) -> String {
    const OPEN: &str = "Span { start: ";
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let end = after.find('}').map_or(after.len(), |i| i + 1);
        out.push('_');
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn internal(why: &str) -> Diagnostic {
    Diagnostic::new(
        &rules::INTERNAL_ERROR,
        format!("the formatter could not lay this file out: {why}"),
    )
    .with_help("the file was left as it is; please report this as a bug with the file attached")
}

/// A logical line: its tokens, block level, and the comments inside and after it.
struct CodeLine<'a, 'src> {
    toks: &'a [Spanned<'src>],
    level: usize,
    start: usize,
    end: usize,
    inner: Vec<Span>,
    trailing: Option<Span>,
}

impl CodeLine<'_, '_> {
    fn first(&self) -> &Tok<'_> {
        &self.toks[0].1
    }
}

enum Event {
    Code(usize),
    /// An own-line comment and its block level.
    Comment(Span, usize),
}

fn column(src: &str, offset: usize) -> usize {
    let start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    src[start..offset]
        .chars()
        .filter(|&c| c != '\u{FEFF}')
        .count()
}

/// Lay out a text that parses without errors.
fn layout(src: &str, opts: &FmtOptions) -> Option<String> {
    let lexed = lex(src);
    let mut lines: Vec<CodeLine<'_, '_>> = Vec::new();
    let mut level = 0usize;
    let mut begin: Option<usize> = None;
    for (i, (_, tok, _)) in lexed.tokens.iter().enumerate() {
        match tok {
            Tok::Indent => level += 1,
            Tok::Dedent => level = level.saturating_sub(1),
            Tok::Newline => {
                if let Some(b) = begin.take() {
                    let toks = &lexed.tokens[b..i];
                    lines.push(CodeLine {
                        toks,
                        level,
                        start: toks[0].0,
                        end: toks[toks.len() - 1].2,
                        inner: Vec::new(),
                        trailing: None,
                    });
                }
            }
            _ => {
                begin.get_or_insert(i);
            }
        }
    }

    // Place every comment: inside a line, at the end of one, or on a line of its own.
    let mut events: Vec<Event> = Vec::new();
    let mut li = 0;
    // Block columns of the source, per level, as of the last line placed.
    let mut cols: Vec<usize> = Vec::new();
    for &c in &lexed.comments {
        let at = c.start as usize;
        while li < lines.len() && lines[li].end <= at {
            let l = &lines[li];
            cols.truncate(l.level);
            cols.resize(l.level, 0);
            cols.push(column(src, l.start));
            events.push(Event::Code(li));
            li += 1;
        }
        if li < lines.len() && lines[li].start < at {
            lines[li].inner.push(c);
            continue;
        }
        if li > 0 && !src[lines[li - 1].end..at].contains('\n') {
            lines[li - 1].trailing = Some(c);
            continue;
        }
        let prev_level = if li > 0 { lines[li - 1].level } else { 0 };
        let next_level = lines.get(li).map_or(0, |l| l.level);
        let level = if next_level >= prev_level {
            next_level
        } else {
            let col = column(src, at);
            (next_level..=prev_level)
                .rev()
                .find(|&l| cols.get(l).is_some_and(|&bc| bc <= col))
                .unwrap_or(next_level)
        };
        events.push(Event::Comment(c, level));
    }
    events.extend((li..lines.len()).map(Event::Code));

    let index = LineIndex::new(src);
    let line_of = |offset: usize| index.line_col(src, offset as u32).line as usize;
    let level_of = |e: &Event| match e {
        Event::Code(i) => lines[*i].level,
        Event::Comment(_, l) => *l,
    };
    let span_of = |e: &Event| match e {
        Event::Code(i) => (lines[*i].start, lines[*i].end),
        Event::Comment(c, _) => (c.start as usize, c.end as usize),
    };
    let opens_block = |i: usize| lines.get(i + 1).is_some_and(|n| n.level > lines[i].level);
    let continues = |i: usize| matches!(lines[i].first(), Tok::Elif | Tok::Else);

    // Blank lines before each event.
    let mut blanks: Vec<usize> = Vec::with_capacity(events.len());
    for (k, e) in events.iter().enumerate() {
        if k == 0 {
            blanks.push(0);
            continue;
        }
        let prev = &events[k - 1];
        let gap = line_of(span_of(e).0).saturating_sub(line_of(span_of(prev).1) + 1);
        let mut blank = gap.min(1);
        if level_of(e) > level_of(prev) {
            blank = 0; // the first line of a block
        } else if level_of(e) == 0 && level_of(prev) > 0 {
            blank = 1; // after a top-level block
        }
        if let Event::Code(i) = e {
            if continues(*i) {
                blank = 0;
            }
        }
        blanks.push(blank);
    }
    // One blank line before a top-level block, above the comments that lead into it.
    for (k, e) in events.iter().enumerate() {
        let Event::Code(i) = e else { continue };
        if lines[*i].level != 0 || !opens_block(*i) || continues(*i) {
            continue;
        }
        let mut head = k;
        while head > 0 && blanks[head] == 0 && matches!(events[head - 1], Event::Comment(_, 0)) {
            head -= 1;
        }
        if head > 0 {
            blanks[head] = 1;
        }
    }

    // Print. Output columns per level: a block under a `- when:` list item lines up with
    // the text after the `- ` (YAML style), any other block is 4 columns in.
    let mut out = String::with_capacity(src.len() + src.len() / 8);
    if src.starts_with('\u{FEFF}') {
        out.push('\u{FEFF}');
    }
    let mut out_cols: Vec<usize> = vec![0];
    let mut last_code: Option<usize> = None;
    for (k, e) in events.iter().enumerate() {
        for _ in 0..blanks[k] {
            out.push('\n');
        }
        let level = level_of(e);
        if level >= out_cols.len() {
            let step = match last_code {
                Some(i) if *lines[i].first() == Tok::Dash => 2,
                _ => INDENT,
            };
            let base = *out_cols.last().expect("never empty");
            while out_cols.len() <= level {
                out_cols.push(base + step);
            }
        }
        out_cols.truncate(level + 1);
        let indent = out_cols[level];
        match e {
            Event::Comment(c, _) => {
                out.push_str(&" ".repeat(indent));
                out.push_str(src[c.range()].trim_end());
            }
            Event::Code(i) => {
                let l = &lines[*i];
                let doc = LineFmt::new(src, l.toks).doc(&l.inner)?;
                out.push_str(&doc::print(&doc, indent, opts.line_width));
                if let Some(c) = l.trailing {
                    out.push_str("  ");
                    out.push_str(src[c.range()].trim_end());
                }
                last_code = Some(*i);
            }
        }
        out.push('\n');
    }
    let crlf = src
        .find('\n')
        .is_some_and(|i| i > 0 && src.as_bytes()[i - 1] == b'\r');
    if crlf {
        out = out.replace('\n', "\r\n");
    }
    Some(out)
}

#[cfg(test)]
mod tests;
