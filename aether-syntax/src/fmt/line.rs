//! One logical line to a layout document: canonical spacing between tokens, bracket groups
//! that break one item per line, trailing commas, and the comments inside brackets.

use std::borrow::Cow;

use super::doc::{self, Doc};
use crate::lexer::Spanned;
use crate::span::Span;
use crate::token::Tok;

/// What a bracket pair holds, which decides `=` spacing and whether a trailing comma is allowed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `f(...)`: keyword arguments are written `name=value`.
    Call,
    /// `action NAME(...)` and `inputs: [...]`: defaults are written `name = value`.
    Params,
    /// `( expr )`: no comma is allowed inside.
    Paren,
    /// Lists, maps and indexing.
    Other,
}

enum Elem {
    Tok(usize),
    Group(Box<Group>),
    /// A comment and whether it ends the line of the token before it.
    Comment(Span, bool),
}

struct Group {
    open: usize,
    close: usize,
    kind: Kind,
    items: Vec<Item>,
}

#[derive(Default)]
struct Item {
    elems: Vec<Elem>,
    comma: bool,
}

impl Item {
    fn has_code(&self) -> bool {
        self.elems.iter().any(|e| !matches!(e, Elem::Comment(..)))
    }
}

/// Lays out one logical line.
pub(super) struct LineFmt<'a, 'src> {
    src: &'a str,
    toks: &'a [Spanned<'src>],
    space_before: Vec<bool>,
    kinds: Vec<Kind>,
}

fn is_opener(t: &Tok<'_>) -> bool {
    matches!(t, Tok::LParen | Tok::LBracket | Tok::LBrace)
}

fn is_closer(t: &Tok<'_>) -> bool {
    matches!(t, Tok::RParen | Tok::RBracket | Tok::RBrace)
}

impl<'a, 'src> LineFmt<'a, 'src> {
    pub(super) fn new(src: &'a str, toks: &'a [Spanned<'src>]) -> Self {
        let mut me = LineFmt {
            src,
            toks,
            space_before: vec![false; toks.len()],
            kinds: vec![Kind::Other; toks.len()],
        };
        me.spacing();
        me
    }

    /// Whether token `i` ends an operand, so that a following `(`/`[` is a call or index
    /// and a following `-` subtracts.
    fn operand_end(&self, i: usize) -> bool {
        if i > 0 && self.toks[i - 1].1 == Tok::Dot {
            return true; // a member name, keywords included
        }
        match &self.toks[i].1 {
            // The event name of `emit "name" payload` is not an operand.
            Tok::Str(_) => !(i > 0 && self.toks[i - 1].1 == Tok::Emit),
            Tok::Ident(_)
            | Tok::Int(_)
            | Tok::Float(_)
            | Tok::Duration(_)
            | Tok::True
            | Tok::False
            | Tok::Null
            | Tok::Policy
            | Tok::Workflow
            | Tok::Memory
            | Tok::RParen
            | Tok::RBracket
            | Tok::RBrace => true,
            _ => false,
        }
    }

    /// Whether token `i` is written with a space before it.
    fn spaced(&self, i: usize, after_unary: bool, tight_eq: bool) -> bool {
        let (p, t) = (&self.toks[i - 1].1, &self.toks[i].1);
        if is_opener(p) || *p == Tok::Dot {
            return false;
        }
        if is_closer(t) || matches!(t, Tok::Comma | Tok::Colon | Tok::Dot) {
            return false;
        }
        if *p == Tok::Dash {
            return true;
        }
        if matches!(t, Tok::LParen | Tok::LBracket) && self.operand_end(i - 1) {
            return false;
        }
        if *t == Tok::Assign || *p == Tok::Assign {
            return !tight_eq && !after_unary;
        }
        !after_unary
    }

    fn spacing(&mut self) {
        let toks = self.toks;
        let dash_line = matches!(toks.first(), Some((_, Tok::Dash, _)));
        let mut stack: Vec<Kind> = Vec::new();
        let mut unary = vec![false; toks.len()];
        for i in 0..toks.len() {
            let t = &toks[i].1;
            // `=` is tight in calls, lists and maps (`f(k=v)`) and in step options
            // (`retry=2`), spaced in assignments and parameter defaults.
            let tight_eq = match stack.last() {
                Some(k) => *k != Kind::Params,
                None => dash_line,
            };
            if i > 0 {
                self.space_before[i] = self.spaced(i, unary[i - 1], tight_eq);
            }
            unary[i] = match t {
                Tok::Minus => i == 0 || !self.operand_end(i - 1),
                Tok::Bang => true,
                _ => false,
            };
            match t {
                Tok::LParen => {
                    let kind = if i >= 2 && toks[i - 2].1 == Tok::Action {
                        Kind::Params
                    } else if i > 0 && self.operand_end(i - 1) {
                        Kind::Call
                    } else {
                        Kind::Paren
                    };
                    self.kinds[i] = kind;
                    stack.push(kind);
                }
                Tok::LBracket => {
                    let kind =
                        if i >= 2 && toks[i - 1].1 == Tok::Colon && toks[i - 2].1 == Tok::Inputs {
                            Kind::Params
                        } else {
                            Kind::Other
                        };
                    self.kinds[i] = kind;
                    stack.push(kind);
                }
                Tok::LBrace => stack.push(Kind::Other),
                t if is_closer(t) => {
                    stack.pop();
                }
                _ => {}
            }
        }
    }

    fn text(&self, i: usize) -> Cow<'a, str> {
        let (s, tok, e) = &self.toks[i];
        let raw = &self.src[*s..*e];
        match tok {
            Tok::Str(_) => requote(raw),
            // `-9223372036854775808` is one token, possibly written with a space.
            Tok::Int(i64::MIN) => {
                Cow::Owned(format!("-{}", raw.trim_start_matches('-').trim_start()))
            }
            _ => Cow::Borrowed(raw),
        }
    }

    /// The document for the line's tokens and the comments inside its brackets, or `None`
    /// when the brackets do not pair up (never after a clean parse).
    pub(super) fn doc(&self, comments: &[Span]) -> Option<Doc> {
        // Tokens and comments in source order.
        let mut pieces: Vec<Elem> = Vec::with_capacity(self.toks.len() + comments.len());
        let mut ci = 0;
        let mut prev_end = self.toks.first().map_or(0, |t| t.0);
        for (i, (s, _, e)) in self.toks.iter().enumerate() {
            while ci < comments.len() && (comments[ci].start as usize) < *s {
                let c = comments[ci];
                let trailing = !self.src[prev_end..c.start as usize].contains('\n');
                pieces.push(Elem::Comment(c, trailing));
                prev_end = c.end as usize;
                ci += 1;
            }
            pieces.push(Elem::Tok(i));
            prev_end = *e;
        }
        let mut it = pieces.into_iter();
        let mut top = Vec::new();
        while let Some(p) = it.next() {
            match p {
                Elem::Tok(i) if is_opener(&self.toks[i].1) => {
                    top.push(Elem::Group(Box::new(self.group(i, &mut it)?)));
                }
                Elem::Tok(i) if is_closer(&self.toks[i].1) => return None,
                other => top.push(other),
            }
        }
        Some(Doc::Concat(self.seq(&top)))
    }

    fn group(&self, open: usize, it: &mut impl Iterator<Item = Elem>) -> Option<Group> {
        let mut items = Vec::new();
        let mut cur = Item::default();
        loop {
            match it.next()? {
                Elem::Tok(i) if is_closer(&self.toks[i].1) => {
                    if !cur.elems.is_empty() {
                        items.push(cur);
                    }
                    return Some(Group {
                        open,
                        close: i,
                        kind: self.kinds[open],
                        items,
                    });
                }
                Elem::Tok(i) if is_opener(&self.toks[i].1) => {
                    cur.elems.push(Elem::Group(Box::new(self.group(i, it)?)));
                }
                Elem::Tok(i) if self.toks[i].1 == Tok::Comma => {
                    cur.comma = true;
                    items.push(std::mem::take(&mut cur));
                }
                other => cur.elems.push(other),
            }
        }
    }

    fn first_tok(e: &Elem) -> Option<usize> {
        match e {
            Elem::Tok(i) => Some(*i),
            Elem::Group(g) => Some(g.open),
            Elem::Comment(..) => None,
        }
    }

    /// Elements in a row, spaced as the canonical layout says.
    fn seq(&self, elems: &[Elem]) -> Vec<Doc> {
        let mut out = Vec::new();
        let mut at_start = true;
        for e in elems {
            if let Some(i) = Self::first_tok(e) {
                if !at_start && self.space_before[i] {
                    out.push(Doc::text(" "));
                }
                at_start = false;
            }
            match e {
                Elem::Tok(i) => out.push(Doc::text(self.text(*i))),
                Elem::Group(g) => out.push(self.group_doc(g)),
                Elem::Comment(c, trailing) => {
                    self.comment(*c, *trailing, &mut out);
                    at_start = true;
                }
            }
        }
        out
    }

    fn comment(&self, c: Span, trailing: bool, out: &mut Vec<Doc>) {
        let text = self.src[c.range()].trim_end();
        if trailing {
            out.push(Doc::text(format!("  {text}")));
        } else {
            out.push(Doc::HardLine);
            out.push(Doc::text(text));
        }
        out.push(Doc::HardLine);
    }

    /// Comments at the start of `elems` that end the previous token's line, and the rest.
    fn split_leading(elems: &[Elem]) -> (&[Elem], &[Elem]) {
        let n = elems
            .iter()
            .take_while(|e| matches!(e, Elem::Comment(_, true)))
            .count();
        elems.split_at(n)
    }

    /// The rest and the comments at the end of `elems` that end the line of its last token.
    fn split_trailing(elems: &[Elem]) -> (&[Elem], &[Elem]) {
        let n = elems
            .iter()
            .rev()
            .take_while(|e| matches!(e, Elem::Comment(_, true)))
            .count();
        elems.split_at(elems.len() - n)
    }

    fn comments(&self, elems: &[Elem], out: &mut Vec<Doc>) {
        for e in elems {
            if let Elem::Comment(c, trailing) = e {
                self.comment(*c, *trailing, out);
            }
        }
    }

    fn group_doc(&self, g: &Group) -> Doc {
        let mut head = Vec::new();
        let mut inside = Vec::new();
        let n_code = g.items.iter().filter(|it| it.has_code()).count();
        let magic = g.kind != Kind::Paren && g.items.last().is_some_and(|it| it.comma);
        let mut code_idx = 0;
        for it in &g.items {
            if !it.has_code() {
                // Comments after the last comma (or in an empty pair of brackets).
                let (lead, rest) = Self::split_leading(&it.elems);
                if n_code == 0 {
                    self.comments(lead, &mut head);
                    inside.push(Doc::SoftLine);
                } else {
                    self.comments(lead, &mut inside);
                }
                self.comments(rest, &mut inside);
                continue;
            }
            let (lead, body) = Self::split_leading(&it.elems);
            let (body, tail) = Self::split_trailing(body);
            if code_idx == 0 {
                self.comments(lead, &mut head);
                inside.push(Doc::SoftLine);
            } else {
                self.comments(lead, &mut inside);
                inside.push(Doc::Line);
            }
            inside.extend(self.seq(body));
            code_idx += 1;
            if code_idx < n_code {
                inside.push(Doc::text(","));
            } else if g.kind != Kind::Paren {
                inside.push(Doc::IfBreak(","));
            }
            self.comments(tail, &mut inside);
        }
        let mut parts = vec![Doc::text(self.text(g.open))];
        parts.extend(head);
        parts.push(Doc::Indent(Box::new(Doc::Concat(inside))));
        parts.push(Doc::SoftLine);
        parts.push(Doc::text(self.text(g.close)));
        Doc::group(parts, magic)
    }
}

/// A string literal in the canonical quotes: double quotes, unless the text holds more
/// double quotes than a single-quoted spelling escapes.
fn requote(raw: &str) -> Cow<'_, str> {
    let Some(body) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) else {
        return Cow::Borrowed(raw);
    };
    let doubles = body.matches('"').count();
    let escaped_singles = body.matches("\\'").count();
    if doubles > escaped_singles {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len() + doubles);
    out.push('"');
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\'') => out.push('\''),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// Width of one indentation step, re-exported for the block layout.
pub(super) const INDENT: usize = doc::INDENT;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_quotes_become_double_unless_that_needs_more_escapes() {
        assert_eq!(requote("'abc'"), "\"abc\"");
        assert_eq!(requote(r#"'it\'s "x"'"#), r#"'it\'s "x"'"#);
        assert_eq!(requote(r"'it\'s'"), "\"it's\"");
        assert_eq!(requote(r#"'a"b\'c\'d'"#), r#""a\"b'c'd""#);
        assert_eq!(requote(r#""as is\n""#), r#""as is\n""#);
        assert_eq!(requote(r"'\\'"), r#""\\""#);
    }
}
