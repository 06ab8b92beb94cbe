//! Formatting (whole document and range) through the formatter `aether fmt` uses.

use aether_syntax::fmt::{format_source, FmtOptions};
use lsp_types::{Range, TextEdit};

use crate::document::Document;

/// The edits that format the whole document: none when it is already formatted or does
/// not parse (its diagnostics say why); an error for a signed file, which formatting would
/// invalidate (`aether fmt` refuses it too).
pub(crate) fn format(doc: &Document, range: Option<Range>) -> Result<Vec<TextEdit>, String> {
    if aether_sign::split_header(&doc.text) != aether_sign::Header::None {
        return Err("the file is signed and formatting would invalidate its signature; run `aether fmt --allow-unsign FILE`, then re-sign it".into());
    }
    let Ok(formatted) = format_source(&doc.text, &FmtOptions::default()) else {
        return Ok(Vec::new());
    };
    let Some(range) = range else {
        return Ok(aether_syntax::fmt::minimal_edit(&doc.text, &formatted)
            .map(|(span, text)| {
                vec![TextEdit::new(
                    doc.range(span.start as usize, span.end as usize),
                    text,
                )]
            })
            .unwrap_or_default());
    };
    // A range: the changed line groups that touch the requested lines.
    let (first, last) = (range.start.line as usize, range.end.line as usize);
    let diff = similar::TextDiff::from_lines(doc.text.as_str(), formatted.as_str());
    let mut edits = Vec::new();
    let old_starts: Vec<usize> = line_offsets(&doc.text);
    let new_lines: Vec<&str> = formatted.split_inclusive('\n').collect();
    // Changed line groups; a group that replaces as many lines as it has is taken line by
    // line, so a range picks out just its own lines.
    let mut groups: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> = Vec::new();
    for op in diff.ops() {
        let (old, new) = (op.old_range(), op.new_range());
        match op.tag() {
            similar::DiffTag::Equal => {}
            similar::DiffTag::Replace if old.len() == new.len() => {
                groups.extend(old.zip(new).map(|(o, n)| (o..o + 1, n..n + 1)));
            }
            _ => groups.push((old, new)),
        }
    }
    for (old, new) in groups {
        // An insertion touches the line it is inserted before.
        let last_old = old.end.max(old.start + 1) - 1;
        if !(old.start <= last && first <= last_old) {
            continue;
        }
        let start = old_starts.get(old.start).copied().unwrap_or(doc.text.len());
        let end = old_starts.get(old.end).copied().unwrap_or(doc.text.len());
        let text: String = new_lines[new].concat();
        edits.push(TextEdit::new(doc.range(start, end), text));
    }
    Ok(edits)
}

fn line_offsets(text: &str) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_files_are_refused_and_broken_ones_left_alone() {
        let signed = Document::new("# @signature ed25519 abcd 1234\nlet   x = 1\n".into(), 1);
        assert!(format(&signed, None).is_err());
        let broken = Document::new("let x = (\n".into(), 1);
        assert_eq!(format(&broken, None), Ok(Vec::new()));
        let crlf = Document::new("goal: \"g\"\r\nlet   x = 1\r\n".into(), 1);
        let edits = format(&crlf, None).expect("formats");
        assert_eq!(edits.len(), 1);
        assert!(!edits[0].new_text.contains("  x"), "{edits:?}");
    }
}
