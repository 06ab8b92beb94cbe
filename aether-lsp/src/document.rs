//! Open documents: their text, incremental edits, and LSP positions (UTF-16 columns) <-> byte offsets.

use lsp_types::{Position, Range, TextDocumentContentChangeEvent};

/// The text of an open document and the start of each of its lines.
#[derive(Clone, Debug)]
pub(crate) struct Document {
    pub(crate) text: String,
    pub(crate) version: i32,
    line_starts: Vec<usize>,
}

impl Document {
    pub(crate) fn new(text: String, version: i32) -> Document {
        let line_starts = line_starts(&text);
        Document {
            text,
            version,
            line_starts,
        }
    }

    /// Apply the changes of one `didChange`, in order (each range is in the text as the
    /// previous change left it).
    pub(crate) fn apply(&mut self, changes: Vec<TextDocumentContentChangeEvent>, version: i32) {
        for change in changes {
            match change.range {
                Some(range) => {
                    let start = self.offset(range.start);
                    let end = self.offset(range.end).max(start);
                    self.text.replace_range(start..end, &change.text);
                }
                None => self.text = change.text,
            }
            self.line_starts = line_starts(&self.text);
        }
        self.version = version;
    }

    /// The byte offset of an LSP position: columns count UTF-16 code units; a column past
    /// the end of its line (or inside a surrogate pair) is clamped; a line past the end is
    /// the end of the text. A `\r` of a CRLF line end is not part of the line.
    pub(crate) fn offset(&self, pos: Position) -> usize {
        let Some(&start) = self.line_starts.get(pos.line as usize) else {
            return self.text.len();
        };
        let line = self.line_text(start);
        let mut units = 0u32;
        for (i, c) in line.char_indices() {
            if units >= pos.character {
                return start + i;
            }
            units += c.len_utf16() as u32;
            if units > pos.character {
                // Inside a surrogate pair: stay before the character.
                return start + i;
            }
        }
        start + line.len()
    }

    /// The LSP position of a byte offset (clamped to the text and to a char boundary).
    pub(crate) fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let content_end = start + self.line_text(start).len();
        let end = offset.min(content_end);
        let character = self.text[start..end].encode_utf16().count() as u32;
        Position::new(line as u32, character)
    }

    pub(crate) fn range(&self, start: usize, end: usize) -> Range {
        Range::new(self.position(start), self.position(end.max(start)))
    }

    /// The text of the line starting at `start`, without its line end.
    fn line_text(&self, start: usize) -> &str {
        let rest = &self.text[start..];
        let line = rest.split('\n').next().unwrap_or("");
        line.strip_suffix('\r').unwrap_or(line)
    }

    /// The byte offset where the line holding `offset` starts.
    pub(crate) fn line_start_of(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => self.line_starts[i],
            Err(i) => self.line_starts[i - 1],
        }
    }

    #[cfg(test)]
    fn line_count(&self) -> usize {
        self.line_starts.len()
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        text.bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i + 1),
    );
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(range: Option<Range>, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range,
            range_length: None,
            text: text.to_string(),
        }
    }

    #[test]
    fn utf16_columns_and_crlf() {
        // `é` is one UTF-16 unit (two bytes), `😀` two units (four bytes).
        let doc = Document::new("aé😀b\r\nxy".to_string(), 1);
        assert_eq!(doc.offset(Position::new(0, 2)), 3);
        assert_eq!(doc.offset(Position::new(0, 4)), 7);
        // Inside the surrogate pair: before the emoji.
        assert_eq!(doc.offset(Position::new(0, 3)), 3);
        // Past the end of the line: before the `\r`.
        assert_eq!(doc.offset(Position::new(0, 99)), 8);
        assert_eq!(doc.offset(Position::new(1, 1)), 11);
        assert_eq!(doc.offset(Position::new(7, 0)), doc.text.len());
        assert_eq!(doc.position(7), Position::new(0, 4));
        assert_eq!(doc.position(8), Position::new(0, 5));
        // The `\n` of a CRLF: still the end of line 0.
        assert_eq!(doc.position(9), Position::new(0, 5));
        assert_eq!(doc.position(11), Position::new(1, 1));
        // Inside a multi-byte character: its start.
        assert_eq!(doc.position(5), Position::new(0, 2));
    }

    #[test]
    fn incremental_edits_apply_in_order() {
        let mut doc = Document::new("let x = 1\r\nprint(x)\r\n".to_string(), 1);
        doc.apply(
            vec![
                change(
                    Some(Range::new(Position::new(0, 4), Position::new(0, 5))),
                    "total",
                ),
                change(
                    Some(Range::new(Position::new(1, 6), Position::new(1, 7))),
                    "total",
                ),
                change(
                    Some(Range::new(Position::new(2, 0), Position::new(2, 0))),
                    "😀",
                ),
            ],
            2,
        );
        assert_eq!(doc.text, "let total = 1\r\nprint(total)\r\n😀");
        assert_eq!(doc.version, 2);
        assert_eq!(doc.line_count(), 3);
        doc.apply(vec![change(None, "goal: \"x\"\n")], 3);
        assert_eq!(doc.text, "goal: \"x\"\n");
    }
}
