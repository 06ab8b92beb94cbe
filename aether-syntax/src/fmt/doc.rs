//! The formatter's layout documents and their printer (Wadler/Prettier style): a group prints
//! flat when it fits the line, otherwise its line breaks become newlines.

/// A layout document.
#[derive(Debug)]
pub(super) enum Doc {
    Text(String),
    /// A space when flat, a newline when broken.
    Line,
    /// Nothing when flat, a newline when broken.
    SoftLine,
    /// Always a newline (after a comment); forces every enclosing group to break.
    HardLine,
    /// Text printed only when the enclosing group is broken (a trailing comma).
    IfBreak(&'static str),
    Concat(Vec<Doc>),
    /// One more indentation step for the newlines inside.
    Indent(Box<Doc>),
    /// `hard`: the group holds a `HardLine` (or a magic trailing comma) and always breaks.
    Group {
        doc: Box<Doc>,
        hard: bool,
    },
}

/// Indentation of one step, in columns.
pub(super) const INDENT: usize = 4;

impl Doc {
    pub(super) fn text(s: impl Into<String>) -> Doc {
        Doc::Text(s.into())
    }

    /// Whether the document must break wherever it stands.
    pub(super) fn is_hard(&self) -> bool {
        match self {
            Doc::HardLine => true,
            Doc::Group { hard, .. } => *hard,
            Doc::Concat(v) => v.iter().any(Doc::is_hard),
            Doc::Indent(d) => d.is_hard(),
            Doc::Text(_) | Doc::Line | Doc::SoftLine | Doc::IfBreak(_) => false,
        }
    }

    pub(super) fn group(parts: Vec<Doc>, force: bool) -> Doc {
        let doc = Doc::Concat(parts);
        let hard = force || doc.is_hard();
        Doc::Group {
            doc: Box::new(doc),
            hard,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Flat,
    Break,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Print `doc` starting at column `indent` (the indentation is written too).
pub(super) fn print(doc: &Doc, indent: usize, line_width: usize) -> String {
    let mut out = " ".repeat(indent);
    let mut line_start = 0;
    let mut pos = indent;
    let mut stack: Vec<(usize, Mode, &Doc)> = vec![(indent, Mode::Break, doc)];
    while let Some((ind, mode, d)) = stack.pop() {
        match d {
            Doc::Text(s) => {
                out.push_str(s);
                pos += width(s);
            }
            Doc::Concat(parts) => {
                for p in parts.iter().rev() {
                    stack.push((ind, mode, p));
                }
            }
            Doc::Indent(inner) => stack.push((ind + INDENT, mode, inner)),
            Doc::Group { doc: inner, hard } => {
                let m = if *hard {
                    Mode::Break
                } else if mode == Mode::Flat
                    || fits(inner, &stack, line_width as isize - pos as isize)
                {
                    Mode::Flat
                } else {
                    Mode::Break
                };
                stack.push((ind, m, inner));
            }
            Doc::Line | Doc::SoftLine if mode == Mode::Flat => {
                if matches!(d, Doc::Line) {
                    out.push(' ');
                    pos += 1;
                }
            }
            Doc::Line | Doc::SoftLine | Doc::HardLine => {
                // Two line breaks in a row make one: nothing but indentation since the last.
                if out[line_start..].bytes().all(|b| b == b' ') && line_start > 0 {
                    out.truncate(line_start);
                } else {
                    let trimmed = out.trim_end_matches(' ').len();
                    out.truncate(trimmed);
                    out.push('\n');
                    line_start = out.len();
                }
                out.push_str(&" ".repeat(ind));
                pos = ind;
            }
            Doc::IfBreak(s) => {
                if mode == Mode::Break {
                    out.push_str(s);
                    pos += width(s);
                }
            }
        }
    }
    out
}

/// Whether `doc` printed flat, followed by the rest of the line, fits in `remaining` columns.
fn fits(doc: &Doc, rest: &[(usize, Mode, &Doc)], mut remaining: isize) -> bool {
    let mut stack: Vec<(Mode, &Doc)> = vec![(Mode::Flat, doc)];
    let mut rest_idx = rest.len();
    loop {
        let (mode, d) = match stack.pop() {
            Some(x) => x,
            None => {
                if rest_idx == 0 {
                    return true;
                }
                rest_idx -= 1;
                (rest[rest_idx].1, rest[rest_idx].2)
            }
        };
        match d {
            Doc::Text(s) => remaining -= width(s) as isize,
            Doc::Concat(parts) => {
                for p in parts.iter().rev() {
                    stack.push((mode, p));
                }
            }
            Doc::Indent(inner) => stack.push((mode, inner)),
            Doc::Group { doc: inner, hard } => {
                stack.push((if *hard { Mode::Break } else { mode }, inner));
            }
            Doc::Line | Doc::SoftLine | Doc::HardLine if mode == Mode::Break => return true,
            Doc::HardLine => return true,
            Doc::Line => remaining -= 1,
            Doc::SoftLine => {}
            Doc::IfBreak(s) => {
                if mode == Mode::Break {
                    remaining -= width(s) as isize;
                }
            }
        }
        if remaining < 0 {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Doc {
        let mut inner = vec![Doc::SoftLine];
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                inner.push(Doc::text(","));
                inner.push(Doc::Line);
            }
            inner.push(Doc::text(*it));
        }
        inner.push(Doc::IfBreak(","));
        Doc::group(
            vec![
                Doc::text("["),
                Doc::Indent(Box::new(Doc::Concat(inner))),
                Doc::SoftLine,
                Doc::text("]"),
            ],
            false,
        )
    }

    #[test]
    fn a_group_is_flat_when_it_fits_and_broken_otherwise() {
        let doc = Doc::Concat(vec![Doc::text("x = "), list(&["aa", "bb"])]);
        assert_eq!(print(&doc, 0, 100), "x = [aa, bb]");
        assert_eq!(
            print(&doc, 4, 12),
            "    x = [\n        aa,\n        bb,\n    ]"
        );
    }

    #[test]
    fn consecutive_line_breaks_make_one() {
        let doc = Doc::group(
            vec![
                Doc::text("["),
                Doc::Indent(Box::new(Doc::Concat(vec![
                    Doc::SoftLine,
                    Doc::HardLine,
                    Doc::text("# c"),
                    Doc::HardLine,
                    Doc::text("a"),
                ]))),
                Doc::SoftLine,
                Doc::text("]"),
            ],
            false,
        );
        assert_eq!(print(&doc, 0, 100), "[\n    # c\n    a\n]");
    }
}
