//! Human rendering of diagnostics through miette: the only module that knows about miette.
//!
//! What reaches a terminal is bounded and inert whatever the file holds: at most
//! `--max-errors` diagnostics per file (then "... and N more"), a snippet of a few lines
//! around the labels (long lines cut around the label with `…`), and control characters
//! shown as symbols (`␛` for ESC), never sent raw. miette only ever sees that small excerpt,
//! so rendering costs the same for a 40 MB file as for a 40-line one.

use std::borrow::Cow;
use std::fmt;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    Severity as MSeverity, SourceCode, SourceSpan, SpanContents,
};

use super::report::{FileReport, Finding};
use aether_syntax::{LineIndex, Severity, Span};

/// Diagnostics rendered per file when `--max-errors` is not given.
pub(crate) const DEFAULT_MAX_ERRORS: usize = 50;
/// Longest line shown in a snippet, in characters; longer lines are cut around the labels.
const MAX_LINE_CHARS: usize = 120;
/// Characters kept before the primary label when a long line is cut.
const LEAD_CHARS: usize = 40;
/// A label further than this many lines from the primary label is named in a note instead.
const MAX_LABEL_DISTANCE: u32 = 12;
/// A label spanning more lines than this is shown on its first line only.
const MAX_LABEL_LINES: u32 = 6;

/// The character shown for `c` when it must not reach a terminal as itself: C0 controls
/// (but tab and line feed) and DEL as their Unicode control pictures, C1 controls and the
/// bidirectional overrides (which reorder what a reader sees) as U+FFFD.
fn visible(c: char) -> Option<char> {
    match c {
        '\t' | '\n' => None,
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32),
        '\u{7f}' => Some('\u{2421}'),
        '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
            Some(char::REPLACEMENT_CHARACTER)
        }
        _ => None,
    }
}

/// `text` with every control character replaced by a visible symbol (see [`visible`]).
pub(crate) fn inert(text: &str) -> Cow<'_, str> {
    if text.chars().all(|c| visible(c).is_none()) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(|c| visible(c).unwrap_or(c)).collect())
}

/// The lines of a snippet, cut and made inert, with where each original column landed.
struct Excerpt {
    name: String,
    text: String,
    /// 0-based number of the excerpt's first line in the file.
    first_line: usize,
    /// The primary label in excerpt coordinates, and its real 0-based line and byte column
    /// (miette shows them in the `file:line:col` header).
    primary: SourceSpan,
    primary_at: (usize, usize),
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self.text.as_str().read_span(span, before, after)?;
        let (line, column) = if before == 0 && *span == self.primary {
            self.primary_at
        } else {
            (self.first_line + inner.line(), inner.column())
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            line,
            column,
            inner.line_count(),
        )))
    }
}

/// One line of a file as shown: at most [`MAX_LINE_CHARS`] characters from `window_start`
/// (with `…` where it was cut), made inert. `columns[c]` is the byte offset in the shown text
/// of original 0-based column `c` (clamped to what is shown).
struct ShownLine {
    text: String,
    columns: Vec<usize>,
}

impl ShownLine {
    fn new(line: &str, window_start: usize) -> ShownLine {
        let n_chars = line.chars().count();
        let (from, to) = if n_chars <= MAX_LINE_CHARS {
            (0, n_chars)
        } else {
            let from = window_start.min(n_chars - MAX_LINE_CHARS);
            (from, from + MAX_LINE_CHARS)
        };
        let mut text = String::new();
        if from > 0 {
            text.push('…');
        }
        let mut columns = vec![text.len(); from + 1];
        columns.pop();
        for c in line.chars().skip(from).take(to - from) {
            columns.push(text.len());
            text.push(visible(c).unwrap_or(c));
        }
        columns.push(text.len());
        if to < n_chars {
            text.push('…');
        }
        ShownLine { text, columns }
    }

    /// Byte offset in the shown text of original column `col` (0-based).
    fn at(&self, col: usize) -> usize {
        self.columns
            .get(col)
            .or(self.columns.last())
            .copied()
            .unwrap_or(0)
    }
}

/// The text of 1-based `line`, without its line ending.
fn line_text<'t>(text: &'t str, index: &LineIndex, line: u32) -> &'t str {
    let start = index.line_start(line).map_or(text.len(), |s| s as usize);
    let end = index
        .line_start(line + 1)
        .map_or(text.len(), |s| s as usize);
    let s = text.get(start..end).unwrap_or("");
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

/// The excerpt of a finding and its labels in excerpt coordinates; labels far from the
/// primary one come back as notes (`line N: text`).
fn excerpt(
    name: &str,
    text: &str,
    index: &LineIndex,
    finding: &Finding,
) -> (Excerpt, Vec<LabeledSpan>, Vec<String>) {
    let labels = finding.diag.labels();
    let prim_idx = labels.iter().position(|l| l.primary).unwrap_or(0);
    let primary = labels.get(prim_idx).map_or(Span::new(0, 0), |l| l.span);
    let at = |offset: usize| index.line_col(text, offset as u32);
    let prim = at(primary.start as usize);
    let mut far = Vec::new();
    // (first line, first column, last line, last column) of each label kept, 1-based.
    let mut kept = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let a = at(l.span.start as usize);
        let mut b = at(l.span.end.max(l.span.start) as usize);
        if a.line.abs_diff(prim.line) > MAX_LABEL_DISTANCE {
            far.push(format!("line {}: {}", a.line, inert(&l.text)));
            continue;
        }
        if b.line > a.line + MAX_LABEL_LINES {
            let len = line_text(text, index, a.line).chars().count() as u32;
            b.line = a.line;
            b.column = len + 1;
        }
        kept.push((i, l, a, b));
    }
    let lo = kept
        .iter()
        .map(|(_, _, a, _)| a.line)
        .min()
        .unwrap_or(prim.line)
        .saturating_sub(1)
        .max(1);
    let hi = kept
        .iter()
        .map(|(_, _, _, b)| b.line)
        .max()
        .unwrap_or(prim.line)
        .saturating_add(1)
        .min(index.line_count() as u32);
    let window_start = (prim.column as usize)
        .saturating_sub(1)
        .saturating_sub(LEAD_CHARS);
    let mut shown = String::new();
    let mut lines = Vec::new();
    for line in lo..=hi {
        if line > lo {
            shown.push('\n');
        }
        let s = ShownLine::new(line_text(text, index, line), window_start);
        lines.push((shown.len(), s));
        shown.push_str(&lines[lines.len() - 1].1.text);
    }
    let offset_of = |line: u32, column: u32| -> usize {
        let (start, s) = &lines[(line.clamp(lo, hi) - lo) as usize];
        start + s.at(column.saturating_sub(1) as usize)
    };
    let mut spans = Vec::new();
    let mut primary_span = SourceSpan::from((0, 0));
    for (i, l, a, b) in &kept {
        let start = offset_of(a.line, a.column);
        let end = offset_of(b.line, b.column).max(start);
        let span = SourceSpan::from((start, end - start));
        let label = Some(inert(&l.text).into_owned());
        if *i == prim_idx {
            primary_span = span;
        }
        spans.push(if l.primary {
            LabeledSpan::new_primary_with_span(label, span)
        } else {
            LabeledSpan::new_with_span(label, span)
        });
    }
    // The header shows the real place: line, and the byte column as miette counts it.
    let line_start = index.line_start(prim.line).unwrap_or(0) as usize;
    let primary_at = (
        prim.line as usize - 1,
        (primary.start as usize).saturating_sub(line_start),
    );
    let ex = Excerpt {
        name: name.to_string(),
        text: shown,
        first_line: lo as usize - 1,
        primary: primary_span,
        primary_at,
    };
    (ex, spans, far)
}

struct Adapter<'a> {
    finding: &'a Finding,
    message: String,
    source: Excerpt,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl fmt::Debug for Adapter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Adapter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Adapter<'_> {}

impl miette::Diagnostic for Adapter<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        let r = self.finding.diag.rule();
        Some(Box::new(format!("{}({})", r.id, r.name)))
    }

    fn severity(&self) -> Option<MSeverity> {
        Some(match self.finding.diag.severity() {
            Severity::Error => MSeverity::Error,
            Severity::Warning => MSeverity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// Render the findings of a file as a human-readable report: at most `max_errors` of them
/// (0 for all), then a line saying how many more there are.
pub(crate) fn render_file(report: &FileReport, color: bool, max_errors: usize, out: &mut String) {
    if report.findings.iter().all(|f| f.suppressed) {
        // Nothing to show: a clean file costs no line index and no report handler.
        return;
    }
    let text = report.source.as_deref().unwrap_or_default();
    let index = LineIndex::new(text);
    let name = inert(&report.display).into_owned();
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let shown: Vec<&Finding> = report.findings.iter().filter(|f| !f.suppressed).collect();
    let limit = if max_errors == 0 {
        shown.len()
    } else {
        max_errors
    };
    for f in shown.iter().take(limit) {
        let message = inert(f.diag.message()).into_owned();
        let explain = format!("for more, run `aether explain {}`", f.diag.rule().id);
        if f.diag.labels().is_empty() {
            // No position: a file-level problem.
            out.push_str(&format!("error[{}]: {message}\n", f.diag.rule().id));
            if let Some(h) = f.diag.help() {
                out.push_str(&format!("  help: {}\n", inert(h)));
            }
            out.push_str(&format!("  help: {explain}\n"));
            continue;
        }
        let (source, labels, far) = excerpt(&name, text, &index, f);
        let mut help: Vec<String> = f
            .diag
            .help()
            .map(|h| inert(h).into_owned())
            .into_iter()
            .collect();
        help.extend(f.diag.notes().iter().map(|n| format!("note: {}", inert(n))));
        help.extend(far.into_iter().map(|n| format!("note: {n}")));
        if let Some(fix) = f.diag.fix() {
            help.push(format!("fix available: {}", inert(&fix.description)));
        }
        if f.diag.severity() == Severity::Warning {
            help.push("this warning fails the check under `--strict`".to_string());
        }
        help.push(explain);
        let adapter = Adapter {
            finding: f,
            message,
            source,
            labels,
            help: (!help.is_empty()).then(|| help.join("\n")),
        };
        let _ = handler.render_report(out, &adapter);
    }
    if shown.len() > limit {
        let more = shown.len() - limit;
        out.push_str(&format!(
            "... and {more} more diagnostic{} in {name} (`--max-errors 0` shows all; `--format json` lists all)\n",
            if more == 1 { "" } else { "s" }
        ));
    }
}

/// One source line for a run-time error: cut around `column` (1-based, in characters) and
/// made inert; returns the shown text and the 1-based column of `column` in it.
pub(crate) fn snippet_line(line: &str, column: u32) -> (String, u32) {
    let col0 = column.saturating_sub(1) as usize;
    let s = ShownLine::new(line, col0.saturating_sub(LEAD_CHARS));
    let byte = s.at(col0);
    let shown_col = s.text.get(..byte).map_or(0, |t| t.chars().count()) as u32 + 1;
    (s.text, shown_col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_symbols() {
        assert_eq!(inert("a\u{1b}[31mb\u{7}"), "a␛[31mb␇");
        assert_eq!(inert("tab\tand\nnewline stay"), "tab\tand\nnewline stay");
        assert_eq!(inert("\u{202e}evil\u{85}"), "\u{FFFD}evil\u{FFFD}");
        assert!(matches!(inert("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn long_lines_are_cut_around_the_column_with_an_ellipsis() {
        let line = "(".repeat(10_000);
        let (shown, col) = snippet_line(&line, 5_000);
        assert_eq!(shown.chars().count(), MAX_LINE_CHARS + 2, "{shown}");
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!(col, LEAD_CHARS as u32 + 2, "the ellipsis, then the lead");
        // A short line is shown whole.
        assert_eq!(snippet_line("print(1)", 3), ("print(1)".to_string(), 3));
        // Near the start of a long line: no leading ellipsis.
        let (shown, col) = snippet_line(&line, 3);
        assert!(!shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!(col, 3);
    }
}
