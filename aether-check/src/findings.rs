//! Diagnostics placed in their file: 1-based positions, fingerprints, suppression and whether each fails.
//!
//! The one place that decides what `aether check` (and every other front end: the language
//! server, `classify`) shows and fails on, so the editor and CI never disagree. Pure: the
//! caller reads the suppression file and works out the project path.

use std::collections::HashMap;

use aether_syntax::{Diagnostic, LineIndex, Severity};

use crate::fingerprint::{fingerprint, normalize_snippet, stable_fingerprint, Suppressions};

/// Where suppressions are read from, relative to the project root, when no other file is named.
pub const DEFAULT_SUPPRESSIONS: &str = ".aetherra/workflow_suppressions.txt";

/// A diagnostic placed in its file.
#[derive(Debug)]
pub struct Finding {
    pub diag: Diagnostic,
    /// 1-based start and end positions; `None` for file-level problems with no position.
    pub start: Option<(u32, u32)>,
    pub end: Option<(u32, u32)>,
    pub fingerprint: String,
    /// The line-independent fingerprint (rule, project path, snippet, occurrence).
    pub stable_fingerprint: String,
    pub suppressed: bool,
    /// The suppression entry that matched (the line-based fingerprint wins when both do).
    pub suppressed_by: Option<String>,
    /// Counts toward the file's failure: an error (or a warning under `--strict`), not suppressed.
    pub fails: bool,
}

impl Finding {
    pub fn line(&self) -> Option<u32> {
        self.start.map(|s| s.0)
    }
}

/// Place and fingerprint `diags` of the file whose text is `source` (`None` when it could
/// not be read) and whose project-relative path is `project_path`; apply `suppressions`;
/// under `strict` a warning fails too.
pub fn place(
    source: Option<&str>,
    diags: Vec<Diagnostic>,
    project_path: &str,
    suppressions: &Suppressions,
    strict: bool,
) -> Vec<Finding> {
    // Only a diagnostic with a position needs the line index (a clean file builds none).
    let index = source
        .filter(|_| diags.iter().any(|d| !d.labels().is_empty()))
        .map(LineIndex::new);
    let mut seen: HashMap<(&'static str, String), usize> = HashMap::new();
    diags
        .into_iter()
        .map(|diag| {
            let has_span = !diag.labels().is_empty();
            let (start, end) = match (source, &index, has_span) {
                (Some(text), Some(idx), true) => {
                    let span = diag.span();
                    let a = idx.line_col(text, span.start);
                    let b = idx.line_col(text, span.end.max(span.start));
                    (Some((a.line, a.column)), Some((b.line, b.column)))
                }
                _ => (None, None),
            };
            let fp = fingerprint(diag.code().name(), start.map(|s| s.0), diag.message());
            let snippet = match (source, has_span) {
                (Some(text), true) => {
                    let span = diag.span();
                    text.get(span.start as usize..span.end.max(span.start) as usize)
                        .map(normalize_snippet)
                        .unwrap_or_default()
                }
                _ => String::new(),
            };
            let rule = diag.rule().id;
            let occurrence = seen.entry((rule, snippet.clone())).or_insert(0);
            let stable = stable_fingerprint(rule, project_path, &snippet, *occurrence);
            *occurrence += 1;
            let suppressed_by = [&fp, &stable]
                .into_iter()
                .find(|f| suppressions.contains(f))
                .cloned();
            let suppressed = suppressed_by.is_some();
            let failing = diag.severity() == Severity::Error || strict;
            Finding {
                diag,
                start,
                end,
                fingerprint: fp,
                stable_fingerprint: stable,
                suppressed,
                suppressed_by,
                fails: failing && !suppressed,
            }
        })
        .collect()
}

/// A path as stable fingerprints see it, from the resolved project root and the resolved
/// file path (symbolic links and `..` already followed by the caller): relative to the root,
/// `/`-separated; a path outside the root stays absolute.
pub fn project_relative(root: &std::path::Path, file: &std::path::Path) -> String {
    use std::path::Component;
    let shown = file.strip_prefix(root).unwrap_or(file);
    // The kept components joined by `/` (the root directory is an empty first part, so an
    // absolute path keeps its leading `/`), written into one string.
    let mut joined = String::with_capacity(shown.as_os_str().len());
    let mut first = true;
    for c in shown.components() {
        let part = match c {
            Component::RootDir => std::borrow::Cow::Borrowed(""),
            Component::Prefix(p) => p.as_os_str().to_string_lossy(),
            Component::Normal(n) => n.to_string_lossy(),
            Component::CurDir | Component::ParentDir => continue,
        };
        if !first {
            joined.push('/');
        }
        first = false;
        joined.push_str(&part);
    }
    if joined.is_empty() {
        joined.push('/');
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn project_relative_paths() {
        assert_eq!(
            project_relative(Path::new("/w"), Path::new("/w/flows/a.aether")),
            "flows/a.aether"
        );
        assert_eq!(
            project_relative(Path::new("/w"), Path::new("/x/a.aether")),
            "/x/a.aether"
        );
    }

    #[test]
    fn suppressed_and_strict() {
        use aether_syntax::{rules, Span};
        let text = "x\n";
        let d = || {
            Diagnostic::new(&rules::INTERNAL_ERROR, "boom")
                .with_primary(Span::new(0, 1), "here")
                .with_severity(Severity::Warning)
        };
        let f = place(
            Some(text),
            vec![d()],
            "a.aether",
            &Suppressions::default(),
            false,
        );
        assert_eq!(f[0].start, Some((1, 1)));
        assert!(!f[0].fails);
        let f = place(
            Some(text),
            vec![d()],
            "a.aether",
            &Suppressions::default(),
            true,
        );
        assert!(f[0].fails);
        let s = Suppressions::parse(&f[0].stable_fingerprint);
        let f = place(Some(text), vec![d()], "a.aether", &s, true);
        assert!(f[0].suppressed && !f[0].fails);
    }
}
