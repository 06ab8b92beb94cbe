//! `aether migrate`: rewrite legacy forms (`intent:`, unquoted goal text, legacy-dialect constructs with a faithful mapping) and tidy whitespace, as a diff or in place.
//!
//! What to rewrite comes from the lexer, never from text patterns: `intent` is replaced only
//! where the lexer produced the `Intent` keyword token (a top-level `intent:`), goal text is
//! quoted with the fix the lexer's `unquoted-goal` diagnostic carries, and trailing whitespace
//! is kept where it belongs to an unterminated string. The result is parsed again and kept
//! only if it has no more errors of any kind than the original and no unquoted goal left
//! (other than goal text this module refused to quote, see [`line_break_in`]).

use super::stdio::{errln, out};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};

use aether_syntax::lexer::lex;
use aether_syntax::token::Tok;
use aether_syntax::{rules, Span};

mod legacy;

use super::discover::discover;
use super::output::timestamp;
use super::util::md_cell;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("mode").required(true).args(["dry_run", "apply", "check"])))]
pub(crate) struct MigrateArgs {
    /// Files or directories (searched recursively for *.aether).
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<PathBuf>,
    /// Print a unified diff of every file that would change; rewrite nothing.
    #[arg(long)]
    dry_run: bool,
    /// Rewrite the files in place.
    #[arg(long)]
    apply: bool,
    /// Like --dry-run, but exit 1 when any file needs migrating (for CI).
    #[arg(long)]
    check: bool,
    /// Write a markdown report of the changes to FILE [default with more than one file:
    /// migration_report.md]
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write no report, not even the default one for a run over more than one file.
    #[arg(long, conflicts_with = "report")]
    no_report: bool,
    /// Re-sign signed files that change, with this secret key file.
    #[arg(long, value_name = "KEY", conflicts_with = "force")]
    resign: Option<PathBuf>,
    /// Rewrite signed files that change and remove their (no longer valid) signature header;
    /// also rewrite read-only files.
    #[arg(long)]
    force: bool,
}

/// The report a run over more than one file writes when no `--report` is given.
const DEFAULT_REPORT: &str = "migration_report.md";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    DryRun,
    Apply,
    Check,
}

/// How many changes of each kind one file needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Changes {
    /// Top-level `intent:` keywords rewritten to `goal:`.
    intent: usize,
    /// Unquoted goal texts turned into string literals.
    quoted_goal: usize,
    /// Lines whose trailing spaces and tabs were removed.
    trailing_whitespace: usize,
    /// Blank lines removed from runs of more than [`MAX_BLANK_RUN`].
    blank_lines: usize,
    /// Legacy-dialect constructs rewritten ([`legacy`]).
    legacy: usize,
}

/// The longest run of blank lines left in place.
const MAX_BLANK_RUN: usize = 2;

impl Changes {
    fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// The counts in [`KINDS`] order.
    fn counts(&self) -> [usize; 4] {
        [
            self.intent,
            self.quoted_goal,
            self.trailing_whitespace,
            self.blank_lines,
        ]
    }

    /// The non-zero counts by kind name, e.g. `intent 1, trailing-whitespace 3`.
    fn describe(&self) -> String {
        let mut parts: Vec<String> = KINDS
            .iter()
            .zip(self.counts())
            .filter(|(_, n)| *n > 0)
            .map(|((kind, _), n)| format!("{kind} {n}"))
            .collect();
        if self.legacy > 0 {
            parts.insert(0, format!("legacy {}", self.legacy));
        }
        parts.join(", ")
    }
}

/// Each kind of change: its name on stdout and its name in the report.
const KINDS: [(&str, &str); 4] = [
    ("intent", "`intent:` → `goal:`"),
    ("quoted-goal", "goal text quoted"),
    ("trailing-whitespace", "trailing whitespace trimmed (lines)"),
    ("blank-lines", "blank lines removed"),
];

/// A file's text after migration and what changed.
#[derive(Debug)]
struct Migrated {
    text: String,
    changes: Changes,
    /// Unquoted goal texts left as they were, each with the reason (for a person to fix).
    held: Vec<String>,
    /// The legacy constructs found, converted or left alone.
    legacy: Vec<legacy::SiteResult>,
}

/// Migrate one source text. Line 1 is left alone when it is a signature header; line endings,
/// indentation and the presence of a final newline are kept. `Err` means the rewrite would not
/// parse as well as the original (a bug in this function, never expected).
fn migrate_text(src: &str) -> Result<Migrated, String> {
    let body_start = aether_sign::split_header(src).body_start();
    let mut changes = Changes::default();
    let mut held = Vec::new();
    let (text, legacy) = legacy::rewrite(src, body_start);
    changes.legacy = legacy.iter().filter(|s| s.left.is_none()).count();
    let text = rewrite_goals(&text, body_start, &mut changes, &mut held);
    let text = tidy_lines(&text, body_start > 0, &mut changes);
    if !changes.is_empty() {
        parses_as_well(src, &text, held.len())?;
    }
    Ok(Migrated {
        text,
        changes,
        held,
        legacy,
    })
}

/// The first character in `text` that some editor or tool shows as a line break (a lone
/// CR, as in old Mac files, above all): the lexer reads such a line as one line, a person
/// reads two, so quoting its goal text would pull what looks like code into the string.
fn line_break_in(text: &str) -> Option<char> {
    text.chars().find(|c| {
        matches!(
            c,
            '\r' | '\u{0B}' | '\u{0C}' | '\u{1C}'..='\u{1E}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
    })
}

/// `intent:` → `goal:` and unquoted goal text → a string literal, where the lexer says so.
/// Goal text that contains a line break ([`line_break_in`]) is left alone, with a note in
/// `held`.
fn rewrite_goals(
    src: &str,
    body_start: usize,
    changes: &mut Changes,
    held: &mut Vec<String>,
) -> String {
    let lexed = lex(src);
    let mut edits: Vec<(Span, String)> = Vec::new();
    for (start, tok, end) in &lexed.tokens {
        if *tok == Tok::Intent && *start >= body_start && src.get(*start..*end) == Some("intent") {
            edits.push((Span::new(*start, *end), "goal".into()));
            changes.intent += 1;
        }
    }
    for d in &lexed.diagnostics {
        if d.rule().id != rules::UNQUOTED_GOAL.id {
            continue;
        }
        if let Some(fix) = d.fix() {
            let start = fix.span.start as usize;
            if start < body_start {
                continue;
            }
            if let Some(c) = src.get(fix.span.range()).and_then(line_break_in) {
                let line = 1 + src[..start].matches('\n').count();
                held.push(format!(
                    "line {line}: goal text not quoted: it contains U+{:04X}, which some editors show as a line break; quote it by hand",
                    c as u32
                ));
                continue;
            }
            edits.push((fix.span, fix.replacement.clone()));
            changes.quoted_goal += 1;
        }
    }
    edits.sort_by_key(|(span, _)| span.start);
    let mut out = String::with_capacity(src.len() + 16);
    let mut at = 0;
    for (span, replacement) in &edits {
        let range = span.range();
        // Edits come from distinct tokens, so they never overlap; check anyway.
        if range.start < at {
            continue;
        }
        out.push_str(&src[at..range.start]);
        out.push_str(replacement);
        at = range.end;
    }
    out.push_str(&src[at..]);
    out
}

/// Trim trailing spaces and tabs (not where an unterminated string runs to the line's end)
/// and cap runs of blank lines, line by line, keeping each line's own ending.
fn tidy_lines(text: &str, has_header: bool, changes: &mut Changes) -> String {
    // An unterminated string runs to the end of its line: its trailing spaces are its text.
    let open_strings: Vec<Span> = lex(text)
        .diagnostics
        .iter()
        .filter(|d| d.rule().id == rules::UNTERMINATED_STRING.id)
        .map(|d| d.span())
        .collect();
    let in_open_string = |from: usize, to: usize| {
        open_strings
            .iter()
            .any(|s| (s.start as usize) < to && (s.end as usize) > from)
    };
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    let mut line_start = 0;
    for (idx, line) in text.split_inclusive('\n').enumerate() {
        let start = line_start;
        line_start += line.len();
        if idx == 0 && has_header {
            out.push_str(line);
            continue;
        }
        let (content, eol) = split_eol(line);
        let trimmed = content.trim_end_matches([' ', '\t']);
        let content = if trimmed.len() < content.len()
            && !in_open_string(start + trimmed.len(), start + content.len())
        {
            changes.trailing_whitespace += 1;
            trimmed
        } else {
            content
        };
        if content.is_empty() && eol.is_empty() {
            // The end of a file whose last line held only whitespace: not a line of its own.
            continue;
        }
        if content.is_empty() {
            blank_run += 1;
            if blank_run > MAX_BLANK_RUN {
                changes.blank_lines += 1;
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(content);
        out.push_str(eol);
    }
    out
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

/// Parse both texts: the migrated one must have no unquoted goal but the `held` ones left on
/// purpose and, rule by rule, no more errors than the original.
fn parses_as_well(before: &str, after: &str, held: usize) -> Result<(), String> {
    let errors = |text: &str| {
        let mut by_rule: BTreeMap<&'static str, usize> = BTreeMap::new();
        for d in aether_syntax::parse(text).diagnostics {
            if d.is_error() {
                *by_rule.entry(d.rule().id).or_default() += 1;
            }
        }
        by_rule
    };
    let (old, new) = (errors(before), errors(after));
    let worse: Vec<String> = new
        .iter()
        .filter(|(id, n)| {
            (**id == rules::UNQUOTED_GOAL.id && **n > held)
                || **n > old.get(*id).copied().unwrap_or(0)
        })
        .map(|(id, n)| format!("{id} x{n}"))
        .collect();
    if worse.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the rewrite would not parse as well as the original ({}); the file was left unchanged",
            worse.join(", ")
        ))
    }
}

/// What happened to a signed file's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Signature {
    /// No `# @signature` header.
    None,
    /// Signed, and either unchanged or skipped: the header stays as it was.
    Kept,
    /// Rewritten and signed again with this key id.
    Resigned(String),
    /// Rewritten with `--force`: the stale header was removed.
    Removed,
}

/// The outcome for one file.
#[derive(Debug)]
enum Outcome {
    Unchanged,
    /// Changed (or, in a dry run, would change).
    Changed,
    /// Needs changes but left alone, with the reason.
    Skipped(String),
    /// Could not be read or written (IO_ERROR).
    Failed(String),
    /// A caught panic (INTERNAL_ERROR).
    Internal(String),
}

struct FileResult {
    shown: String,
    outcome: Outcome,
    changes: Changes,
    /// Goal texts left unquoted on purpose (printed as warnings), when other changes were made.
    held: Vec<String>,
    signature: Signature,
    /// Legacy constructs found, converted or left alone.
    legacy: Vec<legacy::SiteResult>,
}

/// `path` as shown to people: without a leading `./`.
fn shown_path(path: &Path) -> String {
    let shown = path.display().to_string();
    shown.strip_prefix("./").unwrap_or(&shown).to_string()
}

/// A unified diff with `--- a/PATH` and `+++ b/PATH` headers (an absolute path loses its
/// leading `/`, as in git) that `git apply` and `patch -p1` accept.
///
/// Lines end at `\n` only, as for `git apply` and `patch`: a CR not followed by LF is text
/// (`similar`'s own line diff would end a line there and emit a patch they reject), and a
/// last line without `\n` gets the `\ No newline at end of file` marker, even if it ends
/// with a CR.
pub(crate) fn unified_diff(shown: &str, old: &str, new: &str) -> String {
    let name = shown.trim_start_matches('/');
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, &old_lines, &new_lines);
    let mut out = String::new();
    for group in similar::group_diff_ops(ops, 3) {
        if out.is_empty() {
            out.push_str(&format!(
                "--- {}\n+++ {}\n",
                diff_header_path("a", name),
                diff_header_path("b", name)
            ));
        }
        out.push_str(&format!(
            "{}\n",
            similar::udiff::UnifiedHunkHeader::new(&group)
        ));
        for op in &group {
            for change in op.iter_changes(&old_lines, &new_lines) {
                out.push(match change.tag() {
                    similar::ChangeTag::Equal => ' ',
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                });
                let line = change.value();
                out.push_str(line);
                if !line.ends_with('\n') {
                    out.push_str("\n\\ No newline at end of file\n");
                }
            }
        }
    }
    out
}

/// `PREFIX/NAME` for a `---`/`+++` header line, as git writes it: followed by a tab when the
/// name has a space (so `patch` reads the whole name, not up to the space), and quoted C-style
/// when it has a control character, `"` or `\` (both `git apply` and `patch` unquote it).
fn diff_header_path(prefix: &str, name: &str) -> String {
    let path = format!("{prefix}/{name}");
    if !path
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return if path.contains(' ') {
            format!("{path}\t")
        } else {
            path
        };
    }
    let mut quoted = String::from('"');
    for c in path.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\t' => quoted.push_str("\\t"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    quoted.push_str(&format!("\\{b:03o}"));
                }
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Replace the file `path` names (through symlinks) with `text`, keeping its permissions: a
/// temporary file in the same directory, renamed over the target, so a reader never sees a
/// half-written script. The error is a message for `error: PATH: {message}` that names the
/// file written when `path` is a symlink, and never the temporary file.
pub(crate) fn write_in_place(path: &Path, text: &str) -> Result<(), String> {
    let target = fs::canonicalize(path).map_err(|e| format!("cannot write: {e}"))?;
    let failed = |e: io::Error| {
        let e = io_message(&e);
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            format!(
                "cannot write `{}` (the symlink's target): {e}",
                target.display()
            )
        } else {
            format!("cannot write: {e}")
        }
    };
    let perms = fs::metadata(&target).map_err(failed)?.permissions();
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".aether-migrate-")
        .tempfile_in(dir)
        .map_err(failed)?;
    // Through the `File`: `NamedTempFile`'s own writes add the temporary path to errors.
    tmp.as_file_mut()
        .write_all(text.as_bytes())
        .map_err(failed)?;
    tmp.as_file().sync_all().map_err(failed)?;
    tmp.as_file().set_permissions(perms).map_err(failed)?;
    tmp.persist(&target).map_err(|e| failed(e.error))?;
    Ok(())
}

/// An IO error's message without the ` at path "..."` that `tempfile` appends: the path of
/// a temporary file means nothing to the user, and it is gone by the time they read it.
fn io_message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" at path \"") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A file whose permission bits let nobody write it (`chmod a-w`, mode 0444). The bits are
/// checked, not `access()`: root may write anything, but a read-only file says "leave me".
fn is_read_only(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().readonly())
}

/// The text without its signature header line(s), keeping a byte order mark.
pub(crate) fn without_header(text: &str) -> String {
    let bom = if text.starts_with('\u{FEFF}') {
        "\u{FEFF}"
    } else {
        ""
    };
    let mut rest = text;
    loop {
        let start = aether_sign::split_header(rest).body_start();
        if start == 0 {
            break;
        }
        rest = &rest[start..];
    }
    format!("{bom}{}", rest.strip_prefix('\u{FEFF}').unwrap_or(rest))
}

/// Print a line on stdout; a closed stdout (`| head`) must not stop the batch.
fn say(text: &str) {
    out!("{text}");
}

struct Context<'a> {
    mode: Mode,
    resign: Option<&'a aether_sign::SecretKey>,
    force: bool,
}

fn migrate_file(path: &Path, cx: &Context<'_>) -> FileResult {
    let shown = shown_path(path);
    let mut result = FileResult {
        shown: shown.clone(),
        outcome: Outcome::Unchanged,
        changes: Changes::default(),
        held: Vec::new(),
        signature: Signature::None,
        legacy: Vec::new(),
    };
    let src = match super::discover::read_regular(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                result.outcome = Outcome::Failed(format!(
                    "not valid UTF-8 (byte {})",
                    e.utf8_error().valid_up_to()
                ));
                return result;
            }
        },
        Err(e) => {
            result.outcome = Outcome::Failed(format!("cannot read: {e}"));
            return result;
        }
    };
    let signed = aether_sign::split_header(&src) != aether_sign::Header::None;
    if signed {
        result.signature = Signature::Kept;
    }
    let migrated = match catch_unwind(AssertUnwindSafe(|| migrate_text(&src))) {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            result.outcome = Outcome::Internal(e);
            return result;
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            result.outcome = Outcome::Internal(msg);
            return result;
        }
    };
    result.changes = migrated.changes;
    result.legacy = migrated.legacy;
    if migrated.changes.is_empty() {
        if !migrated.held.is_empty() {
            // Nothing else to do, but the file still needs a person's fix.
            result.outcome = Outcome::Skipped(migrated.held.join("; "));
        }
        return result;
    }
    result.held = migrated.held;
    let mut text = migrated.text;
    if signed {
        if let Some(key) = cx.resign {
            text = aether_sign::sign(&text, key);
            result.signature = Signature::Resigned(key.key_id());
        } else if cx.force {
            text = without_header(&text);
            result.signature = Signature::Removed;
        } else {
            result.outcome = Outcome::Skipped(
                "signed: rewriting it would invalidate the signature (use --resign KEY or --force)"
                    .into(),
            );
            return result;
        }
    }
    if is_read_only(path) && !cx.force {
        result.outcome = Outcome::Skipped(if cx.resign.is_some() {
            "read-only: not rewritten; make it writable".into()
        } else {
            "read-only: not rewritten; make it writable or pass --force".into()
        });
        return result;
    }
    match cx.mode {
        Mode::DryRun | Mode::Check => say(&unified_diff(&shown, &src, &text)),
        Mode::Apply => {
            if let Err(e) = write_in_place(path, &text) {
                result.outcome = Outcome::Failed(e);
                return result;
            }
        }
    }
    result.outcome = Outcome::Changed;
    result
}

struct Totals {
    scanned: usize,
    changed: usize,
    unchanged: usize,
    skipped: usize,
    failed: usize,
}

fn totals(results: &[FileResult]) -> Totals {
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    Totals {
        scanned: results.len(),
        changed: count(|o| matches!(o, Outcome::Changed)),
        unchanged: count(|o| matches!(o, Outcome::Unchanged)),
        skipped: count(|o| matches!(o, Outcome::Skipped(_))),
        failed: count(|o| matches!(o, Outcome::Failed(_) | Outcome::Internal(_))),
    }
}

/// `scanned 3 files: 1 changed, 1 unchanged, 1 skipped, 0 failed`.
fn summary(t: &Totals, mode: Mode) -> String {
    let (changed, tail) = match mode {
        Mode::Apply => ("changed", ""),
        Mode::DryRun => ("would change", " (dry run: nothing written)"),
        Mode::Check => ("would change", " (check: nothing written)"),
    };
    format!(
        "scanned {} file{}: {} {changed}, {} unchanged, {} skipped, {} failed{tail}",
        t.scanned,
        if t.scanned == 1 { "" } else { "s" },
        t.changed,
        t.unchanged,
        t.skipped,
        t.failed
    )
}

fn markdown(results: &[FileResult], mode: Mode) -> String {
    let t = totals(results);
    let mut md = String::from("# Aether migration report\n\n");
    md.push_str(&format!("- Generated: {}\n", timestamp()));
    md.push_str(&format!(
        "- Mode: {}\n",
        match mode {
            Mode::Apply => "apply (files rewritten in place)",
            Mode::DryRun => "dry run (nothing written)",
            Mode::Check => "check (nothing written)",
        }
    ));
    md.push_str(&format!("- Result: {}\n\n", summary(&t, mode)));
    md.push_str("## Changes by kind\n\n");
    md.push_str("Counted over the files that changed");
    md.push_str(if mode == Mode::Apply {
        "."
    } else {
        " (would change)."
    });
    md.push_str("\n\n| Kind | Files | Count |\n|---|---|---|\n");
    let applied: Vec<&FileResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Changed))
        .collect();
    for (idx, (_, name)) in KINDS.iter().enumerate() {
        let files = applied
            .iter()
            .filter(|r| r.changes.counts()[idx] > 0)
            .count();
        let count: usize = applied.iter().map(|r| r.changes.counts()[idx]).sum();
        md.push_str(&format!("| {name} | {files} | {count} |\n"));
    }
    md.push_str("\n## Files\n\n");
    if results.is_empty() {
        md.push_str("No files found.\n");
        return md;
    }
    md.push_str("| File | Result | `intent:` → `goal:` | Goal quoted | Trailing whitespace | Blank lines removed | Signature |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    for r in results {
        let mut result = match &r.outcome {
            Outcome::Unchanged => "unchanged".to_string(),
            Outcome::Changed if mode == Mode::Apply => "changed".to_string(),
            Outcome::Changed => "would change".to_string(),
            Outcome::Skipped(why) => format!("skipped: {}", md_cell(why)),
            Outcome::Failed(why) => format!("failed: {}", md_cell(why)),
            Outcome::Internal(why) => format!("internal error: {}", md_cell(why)),
        };
        for note in &r.held {
            result.push_str(&format!("; {}", md_cell(note)));
        }
        let signature = match &r.signature {
            Signature::None => "-".to_string(),
            Signature::Kept => "kept".to_string(),
            Signature::Resigned(id) => format!("re-signed ({id})"),
            Signature::Removed => "removed (--force)".to_string(),
        };
        let c = &r.changes;
        let counts = if matches!(r.outcome, Outcome::Failed(_) | Outcome::Internal(_)) {
            "- | - | - | -".to_string()
        } else {
            format!(
                "{} | {} | {} | {}",
                c.intent, c.quoted_goal, c.trailing_whitespace, c.blank_lines
            )
        };
        md.push_str(&format!(
            "| `{}` | {result} | {counts} | {signature} |\n",
            md_cell(&r.shown)
        ));
    }
    legacy_section(results, mode, &mut md);
    md
}

/// The report's legacy constructs: every site found, converted or left alone with its rule.
fn legacy_section(results: &[FileResult], mode: Mode, md: &mut String) {
    if results.iter().all(|r| r.legacy.is_empty()) {
        return;
    }
    md.push_str("\n## Legacy constructs\n\n");
    md.push_str("Every site of a legacy-dialect construct ([docs/migrate.md](docs/migrate.md#legacy-dialects)). A construct with no faithful Aether mapping is never rewritten: it stays, listed here with its rule id, for a person to rewrite.\n\n");
    md.push_str("| File | Line | Rule | Construct | Result |\n|---|---|---|---|---|\n");
    for r in results {
        for s in &r.legacy {
            let result = match s.left {
                None if mode == Mode::Apply && matches!(r.outcome, Outcome::Changed) => {
                    "converted".to_string()
                }
                None => "would convert".to_string(),
                Some(why) => format!("left as it is: {}", md_cell(why)),
            };
            md.push_str(&format!(
                "| `{}` | {} | {} {} | {} | {result} |\n",
                md_cell(&r.shown),
                s.line,
                s.rule,
                s.name,
                md_cell(s.title)
            ));
        }
    }
}

/// Stack size of the migrating thread: parsing recurses over the tree (as in `check`).
const MIGRATE_STACK_BYTES: usize = 64 << 20;

pub(crate) fn run(args: MigrateArgs) -> i32 {
    let worker = std::thread::Builder::new().stack_size(MIGRATE_STACK_BYTES);
    match worker.spawn(move || migrate_all(&args)) {
        Ok(handle) => handle.join().unwrap_or(27),
        Err(e) => {
            errln!("error: cannot start a thread: {e}");
            27
        }
    }
}

fn migrate_all(args: &MigrateArgs) -> i32 {
    let mode = if args.apply {
        Mode::Apply
    } else if args.check {
        Mode::Check
    } else {
        Mode::DryRun
    };
    let key = match &args.resign {
        Some(path) => match super::signing::load_secret(Some(path)) {
            Ok(k) => Some(k),
            Err(e) => {
                errln!("error: --resign: {e}");
                return 2;
            }
        },
        None => None,
    };
    let cx = Context {
        mode,
        resign: key.as_ref(),
        force: args.force,
    };
    let mut results = Vec::new();
    for path in discover(&args.targets) {
        let r = migrate_file(&path, &cx);
        match &r.outcome {
            Outcome::Changed if mode == Mode::Apply => {
                let mut line = format!("migrated {} ({})", r.shown, r.changes.describe());
                match &r.signature {
                    Signature::Resigned(id) => line.push_str(&format!("; re-signed with {id}")),
                    Signature::Removed => line.push_str("; signature removed"),
                    _ => {}
                }
                say(&format!("{line}\n"));
            }
            Outcome::Skipped(why) => errln!("skipped {}: {why}", r.shown),
            Outcome::Failed(why) => errln!("error: {}: {why}", r.shown),
            Outcome::Internal(why) => errln!(
                "error[INTERNAL_ERROR]: {}: internal error: {why}\n  = help: this is a bug in aether, not in your script; please report it with the file",
                r.shown
            ),
            _ => {}
        }
        for note in &r.held {
            errln!("warning: {}: {note}", r.shown);
        }
        for s in r.legacy.iter().filter(|s| s.left.is_some()) {
            errln!(
                "note: {}:{}: {} {} left as it is: {}",
                r.shown,
                s.line,
                s.rule,
                s.name,
                s.left.unwrap_or_default()
            );
        }
        if r.signature == Signature::Removed {
            let what = if mode == Mode::Apply {
                "the rewrite invalidated its signature, so the header was removed"
            } else {
                "the rewrite would invalidate its signature, so the header would be removed"
            };
            errln!(
                "warning: {}: {what}; sign it again with `aether sign`",
                r.shown
            );
        }
        results.push(r);
    }
    let t = totals(&results);
    let mut report_failed = false;
    // A run over several files leaves a report behind unless told otherwise.
    let default_report = args.report.is_none() && !args.no_report && results.len() > 1;
    let report = match &args.report {
        Some(path) if !args.no_report => Some(path.as_path()),
        _ if default_report => Some(Path::new(DEFAULT_REPORT)),
        _ => None,
    };
    if let Some(out) = report {
        match super::trends::write_output(out, markdown(&results, mode).as_bytes()) {
            Ok(()) if default_report => errln!(
                "report written to {} (a run over more than one file writes one; --no-report to skip it)",
                out.display()
            ),
            Ok(()) => {}
            Err(e) => {
                errln!(
                    "error: cannot write report `{}`: {}",
                    out.display(),
                    io_message(&e)
                );
                report_failed = true;
            }
        }
    }
    errln!("{}", summary(&t, mode));
    let needs_migrating = results
        .iter()
        .any(|r| !r.changes.is_empty() || matches!(r.outcome, Outcome::Skipped(_)));
    if results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Internal(_)))
    {
        27
    } else if t.failed > 0 || report_failed {
        26
    } else if mode == Mode::Check && needs_migrating {
        1
    } else if mode == Mode::Apply
        && results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Skipped(_)))
    {
        // `--apply` left work undone (a signed file without --resign/--force, a read-only
        // file, goal text to quote by hand): the tree is not migrated, so not a success.
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated(src: &str) -> (String, Changes) {
        let m = migrate_text(src).expect("migrates");
        (m.text, m.changes)
    }

    #[test]
    fn intent_becomes_goal_only_as_the_top_level_keyword() {
        let src = "intent: \"x\"\n# intent: in a comment\nprint(\"intent: in a string\")\n";
        let (text, c) = migrated(src);
        assert_eq!(
            text,
            "goal: \"x\"\n# intent: in a comment\nprint(\"intent: in a string\")\n"
        );
        assert_eq!(c.intent, 1);
    }

    #[test]
    fn unquoted_goal_text_is_quoted_with_escapes() {
        let (text, c) = migrated("goal: say \"hi\" \\ bye # note\nprint(1)\n");
        assert_eq!(text, "goal: \"say \\\"hi\\\" \\\\ bye\" # note\nprint(1)\n");
        assert_eq!(c.quoted_goal, 1);
        assert!(!aether_syntax::parse(&text).has_errors());
    }

    #[test]
    fn whitespace_is_tidied_but_line_endings_and_final_newline_kept() {
        let (text, c) = migrated("goal: \"x\"  \r\n\r\n\r\n\r\n\r\nprint(1)\t");
        assert_eq!(text, "goal: \"x\"\r\n\r\n\r\nprint(1)");
        assert_eq!(c.trailing_whitespace, 2);
        assert_eq!(c.blank_lines, 2);
    }

    #[test]
    fn an_unterminated_string_keeps_its_trailing_spaces() {
        let src = "goal: \"x\"\nlet s = \"open   \nprint(1)  \n";
        let (text, c) = migrated(src);
        assert_eq!(text, "goal: \"x\"\nlet s = \"open   \nprint(1)\n");
        assert_eq!(c.trailing_whitespace, 1);
    }

    #[test]
    fn the_signature_header_line_is_never_edited() {
        let src = "# @signature ed25519 0123456789abcdef AAAA  \nintent: x\n";
        let (text, c) = migrated(src);
        assert_eq!(
            text,
            "# @signature ed25519 0123456789abcdef AAAA  \ngoal: \"x\"\n"
        );
        assert_eq!(c.trailing_whitespace, 0);
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let src = "intent: a \"b\"   \n\n\n\n\nprint(1)  \n";
        let (once, _) = migrated(src);
        let (twice, c) = migrated(&once);
        assert_eq!(once, twice);
        assert!(c.is_empty());
    }

    #[test]
    fn a_rewrite_with_more_parse_errors_is_refused() {
        assert!(parses_as_well("goal: \"x\"\n", "goal: \"x\"\nprint(\n", 0).is_err());
        assert!(
            parses_as_well("goal: x\n", "goal: x\n", 0).is_err(),
            "unquoted goal left"
        );
        assert!(
            parses_as_well("goal: x\n", "goal: x\n", 1).is_ok(),
            "held on purpose"
        );
        assert!(parses_as_well("goal: x\nlet = 1\n", "goal: \"x\"\nlet = 1\n", 0).is_ok());
    }

    #[test]
    fn goal_text_with_a_line_break_is_left_unquoted() {
        // CR-only line endings: the lexer reads one line, a person two.
        let m = migrate_text("goal: Keep it\rprint(1)\r").expect("migrates");
        assert_eq!(m.text, "goal: Keep it\rprint(1)\r");
        assert!(m.changes.is_empty());
        assert_eq!(m.held.len(), 1);
        assert!(
            m.held[0].starts_with("line 1: goal text not quoted"),
            "{:?}",
            m.held
        );
        // The other rewrites still happen.
        let m = migrate_text("goal: a\u{2028}b\nprint(1)  \n").expect("migrates");
        assert_eq!(m.text, "goal: a\u{2028}b\nprint(1)\n");
        assert_eq!(m.changes.trailing_whitespace, 1);
        assert_eq!(m.changes.quoted_goal, 0);
        assert!(m.held[0].contains("U+2028"), "{:?}", m.held);
    }

    #[test]
    fn diff_lines_end_at_lf_only() {
        let diff = unified_diff("x.aether", "a\rb\nc  \n", "a\rb\nc\n");
        assert_eq!(
            diff,
            "--- a/x.aether\n+++ b/x.aether\n@@ -1,2 +1,2 @@\n a\rb\n-c  \n+c\n"
        );
        let diff = unified_diff("x.aether", "a \r", "a\r");
        assert_eq!(
            diff,
            "--- a/x.aether\n+++ b/x.aether\n@@ -1 +1 @@\n-a \r\n\\ No newline at end of file\n+a\r\n\\ No newline at end of file\n"
        );
    }

    #[test]
    fn diff_header_paths_follow_git() {
        assert_eq!(diff_header_path("a", "d/x.aether"), "a/d/x.aether");
        assert_eq!(
            diff_header_path("a", "d d/x y.aether"),
            "a/d d/x y.aether\t"
        );
        assert_eq!(
            diff_header_path("b", "q\"\\\t\u{1}.aether"),
            "\"b/q\\\"\\\\\\t\\001.aether\""
        );
    }

    #[test]
    fn io_messages_lose_the_temporary_path() {
        let e = io::Error::new(
            io::ErrorKind::PermissionDenied,
            "Permission denied (os error 13) at path \"/d/.aether-migrate-AbC\"",
        );
        assert_eq!(io_message(&e), "Permission denied (os error 13)");
    }

    #[test]
    fn header_removal_keeps_a_byte_order_mark() {
        let text = "\u{FEFF}# @signature: abc\r\n# @signature ed25519 x y\ngoal: \"x\"\n";
        assert_eq!(without_header(text), "\u{FEFF}goal: \"x\"\n");
    }
}
