//! Legacy constructs in `aether migrate`: applies the faithful rewrites `aether_check::dialect` finds, and lists the sites it leaves alone with their rule ids.
//!
//! Only a file with parse errors is touched (an Aether 1.2 file that parses is never
//! rewritten by these transforms). Rewrites work on whole lines: the code between a line's
//! indentation and its trailing comment is replaced, so comments, indentation and line
//! endings stay as they were; `define ... end` bodies are indented when they were flat.

use aether_check::dialect::{self, Rewrite};

/// One legacy site and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SiteResult {
    /// 1-based line in the original file.
    pub(crate) line: usize,
    pub(crate) rule: &'static str,
    pub(crate) name: &'static str,
    pub(crate) title: &'static str,
    /// `None`: converted; `Some(reason)`: left alone.
    pub(crate) left: Option<&'static str>,
}

/// Rewrite the legacy constructs of `src` that have a faithful mapping. Lines before
/// `body_start` (a signature header) are never touched.
pub(crate) fn rewrite(src: &str, body_start: usize) -> (String, Vec<SiteResult>) {
    let parsed = aether_syntax::parse(src);
    if !parsed.has_errors() {
        return (src.to_string(), Vec::new());
    }
    let errors = dialect::error_lines(src, &parsed.diagnostics);
    let first_line = src[..body_start.min(src.len())].matches('\n').count();
    let sites: Vec<_> = dialect::scan(src, &errors)
        .into_iter()
        .filter(|s| s.line >= first_line)
        .collect();
    if sites.is_empty() {
        return (src.to_string(), Vec::new());
    }
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    let bare: Vec<&str> = src.split('\n').collect();
    let mut code: Vec<Option<String>> = vec![None; lines.len()];
    let mut delete = vec![false; lines.len()];
    let mut shift = vec![0usize; lines.len()];
    let mut after: Vec<Vec<String>> = vec![Vec::new(); lines.len()];
    let meta = dialect::meta_block(&bare);
    let mut results = Vec::new();
    for s in &sites {
        let rule = s.construct.rule();
        results.push(SiteResult {
            line: s.line + 1,
            rule: rule.id,
            name: rule.name,
            title: s.construct.title(),
            left: s.rewrite.as_ref().err().copied(),
        });
        let Ok(rw) = &s.rewrite else { continue };
        match rw {
            Rewrite::Code(text) => code[s.line] = Some(text.clone()),
            Rewrite::Define {
                header,
                end_line,
                body,
                shift: by,
            } => {
                code[s.line] = Some(header.clone());
                delete[*end_line] = true;
                for k in body.clone() {
                    shift[k] += by;
                }
            }
            Rewrite::GoalPriority { goal, priority } => {
                code[s.line] = Some(goal.clone());
                let value = dialect::quote(priority);
                match &meta {
                    Some((header, _)) => {
                        let indent = bare[header + 1..]
                            .iter()
                            .map(|l| dialect::split(l))
                            .find(|sp| sp.code_end > sp.indent)
                            .map_or(4, |sp| sp.indent.max(1));
                        after[*header].push(format!("{}priority: {value}", " ".repeat(indent)));
                    }
                    None => {
                        after[s.line].push("meta:".into());
                        after[s.line].push(format!("    priority: {value}"));
                    }
                }
            }
        }
    }
    let mut out = String::with_capacity(src.len() + 64);
    for (k, line) in lines.iter().enumerate() {
        let (content, eol) = split_eol(line);
        let sp = dialect::split(content);
        let (indent, rest) = (&content[..sp.indent], &content[sp.code_end..]);
        if delete[k] {
            // An `end` line goes; a comment on it stays, as its own line.
            let comment = rest.trim();
            if !comment.is_empty() {
                out.push_str(indent);
                out.push_str(comment);
                out.push_str(eol);
            }
            continue;
        }
        let has_code = sp.code_end > sp.indent;
        if shift[k] > 0 && has_code {
            out.push_str(&" ".repeat(shift[k]));
        }
        out.push_str(indent);
        match &code[k] {
            Some(new) => out.push_str(new),
            None => out.push_str(&content[sp.indent..sp.code_end]),
        }
        out.push_str(rest);
        let eol = if eol.is_empty() && !after[k].is_empty() {
            "\n"
        } else {
            eol
        };
        out.push_str(eol);
        for extra in &after[k] {
            out.push_str(extra);
            out.push_str(if eol == "\r\n" { "\r\n" } else { "\n" });
        }
    }
    (out, results)
}

/// A line's text and its ending (`\r\n`, `\n` or none).
fn split_eol(line: &str) -> (&str, &str) {
    if let Some(content) = line.strip_suffix("\r\n") {
        (content, "\r\n")
    } else if let Some(content) = line.strip_suffix('\n') {
        (content, "\n")
    } else {
        (line, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neurocode_converts_with_comments_kept() {
        let src = "goal: ship it priority: high # why\nthink \"a\" # note\nremember(x) as \"t\"\ndefine f(a)\nthink a\nend # done\nlearn \"z\"\n";
        let (out, res) = rewrite(src, 0);
        assert_eq!(
            out,
            "goal: \"ship it\" # why\nmeta:\n    priority: \"high\"\nnarrate(\"a\") # note\nmemory.store(x, tags=[\"t\"])\naction f(a):\n    narrate(a)\n# done\nlearn \"z\"\n"
        );
        let left: Vec<_> = res
            .iter()
            .filter(|r| r.left.is_some())
            .map(|r| r.rule)
            .collect();
        assert_eq!(left, ["A413"]);
        let (again, _) = rewrite(&out, 0);
        assert_eq!(again, out, "idempotent");
    }

    #[test]
    fn priority_goes_under_an_existing_meta_block() {
        let src = "goal: fix it priority: low\nmeta:\n  owner: \"ops\"\nthink \"x\"\n";
        let (out, _) = rewrite(src, 0);
        assert_eq!(
            out,
            "goal: \"fix it\"\nmeta:\n  priority: \"low\"\n  owner: \"ops\"\nnarrate(\"x\")\n"
        );
    }

    #[test]
    fn a_file_that_parses_is_never_touched() {
        let src = "goal: \"x\"\nnarrate(\"a\")\n";
        assert_eq!(rewrite(src, 0), (src.to_string(), Vec::new()));
    }
}
