//! The one diagnostic type of the toolchain, the result codes of docs/contract/LANGUAGE.md section 7 and rule metadata.

use std::fmt::Write;

use crate::span::{LineIndex, Span};

/// Structured result codes (docs/contract/LANGUAGE.md section 7); the process exit status uses the same numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResultCode {
    Success = 0,
    GenericFailure = 1,
    ParseError = 20,
    RuntimeError = 21,
    SignatureError = 22,
    TimeoutError = 23,
    UnsupportedFeature = 24,
    ValidationError = 25,
    IoError = 26,
    InternalError = 27,
    NondeterminismError = 28,
    MemoryLimitError = 29,
}

impl ResultCode {
    pub const ALL: [ResultCode; 12] = [
        ResultCode::Success,
        ResultCode::GenericFailure,
        ResultCode::ParseError,
        ResultCode::RuntimeError,
        ResultCode::SignatureError,
        ResultCode::TimeoutError,
        ResultCode::UnsupportedFeature,
        ResultCode::ValidationError,
        ResultCode::IoError,
        ResultCode::InternalError,
        ResultCode::NondeterminismError,
        ResultCode::MemoryLimitError,
    ];

    pub fn number(self) -> i32 {
        self as i32
    }

    pub fn name(self) -> &'static str {
        match self {
            ResultCode::Success => "SUCCESS",
            ResultCode::GenericFailure => "GENERIC_FAILURE",
            ResultCode::ParseError => "PARSE_ERROR",
            ResultCode::RuntimeError => "RUNTIME_ERROR",
            ResultCode::SignatureError => "SIGNATURE_ERROR",
            ResultCode::TimeoutError => "TIMEOUT_ERROR",
            ResultCode::UnsupportedFeature => "UNSUPPORTED_FEATURE",
            ResultCode::ValidationError => "VALIDATION_ERROR",
            ResultCode::IoError => "IO_ERROR",
            ResultCode::InternalError => "INTERNAL_ERROR",
            ResultCode::NondeterminismError => "NONDETERMINISM_ERROR",
            ResultCode::MemoryLimitError => "MEMORY_LIMIT_ERROR",
        }
    }

    pub fn from_name(name: &str) -> Option<ResultCode> {
        ResultCode::ALL.into_iter().find(|c| c.name() == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// Static metadata of a rule: stable id, kebab-case name, the result code it fails with,
/// its default severity and a one-line summary. The full table is `aether_check::codes`.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub name: &'static str,
    pub code: ResultCode,
    pub severity: Severity,
    pub summary: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub text: String,
    pub primary: bool,
}

/// A machine-applicable edit: replace `span` with `replacement`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    pub description: String,
    pub span: Span,
    pub replacement: String,
}

/// One finding: boxed so that `Vec<Diagnostic>` and results stay small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic(Box<DiagnosticData>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagnosticData {
    pub rule: &'static Rule,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
    pub notes: Vec<String>,
    pub fix: Option<Fix>,
}

impl Diagnostic {
    /// A diagnostic of `rule` with the rule's default severity.
    pub fn new(rule: &'static Rule, message: impl Into<String>) -> Diagnostic {
        Diagnostic(Box::new(DiagnosticData {
            rule,
            severity: rule.severity,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            notes: Vec::new(),
            fix: None,
        }))
    }

    pub fn with_primary(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.0.labels.insert(
            0,
            Label {
                span,
                text: text.into(),
                primary: true,
            },
        );
        self
    }

    pub fn with_secondary(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.0.labels.push(Label {
            span,
            text: text.into(),
            primary: false,
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.0.help = Some(help.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.0.notes.push(note.into());
        self
    }

    pub fn with_fix(mut self, fix: Fix) -> Diagnostic {
        self.0.fix = Some(fix);
        self
    }

    pub fn with_severity(mut self, severity: Severity) -> Diagnostic {
        self.0.severity = severity;
        self
    }

    pub fn rule(&self) -> &'static Rule {
        self.0.rule
    }

    pub fn severity(&self) -> Severity {
        self.0.severity
    }

    /// The result code this diagnostic fails with (for a warning: under `--strict`).
    pub fn code(&self) -> ResultCode {
        self.0.rule.code
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn labels(&self) -> &[Label] {
        &self.0.labels
    }

    pub fn help(&self) -> Option<&str> {
        self.0.help.as_deref()
    }

    pub fn notes(&self) -> &[String] {
        &self.0.notes
    }

    pub fn fix(&self) -> Option<&Fix> {
        self.0.fix.as_ref()
    }

    /// The primary span (the first primary label, else the first label, else empty at 0).
    pub fn span(&self) -> Span {
        self.0
            .labels
            .iter()
            .find(|l| l.primary)
            .or(self.0.labels.first())
            .map(|l| l.span)
            .unwrap_or_default()
    }

    pub fn is_error(&self) -> bool {
        self.0.severity == Severity::Error
    }
}

/// Sort diagnostics by (span start, span end, rule id, message): same input, same output.
pub fn sort_diagnostics(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.span().start, a.span().end, a.rule().id, a.message()).cmp(&(
            b.span().start,
            b.span().end,
            b.rule().id,
            b.message(),
        ))
    });
}

/// A source line as shown in snapshots: no line ending, tabs made visible as `→`
/// (one character each, so columns still line up).
fn display_line(line: &str) -> String {
    line.trim_end_matches('\r').replace('\t', "→")
}

/// Plain text for snapshots and debugging (gleam's SOURCE CODE / ERROR layout):
/// the numbered source, then each diagnostic with its position,
/// labels underlined in the source, help, notes and fix. Tabs show as `→`.
///
/// gleam-style text: the numbered source, then each diagnostic with its position,
/// labels underlined in the source, help, notes and fix.
pub fn render_plain(src: &str, diags: &[Diagnostic]) -> String {
    let index = LineIndex::new(src);
    let lines: Vec<&str> = src.split('\n').collect();
    let width = lines.len().to_string().len();
    let mut out = String::from("----- SOURCE CODE\n");
    for (i, line) in lines.iter().enumerate() {
        if i + 1 == lines.len() && line.is_empty() {
            break;
        }
        writeln!(out, "{:>width$} | {}", i + 1, display_line(line))
            .expect("writing to a String cannot fail");
    }
    out.push_str("\n----- DIAGNOSTICS\n");
    for d in diags {
        let at = index.line_col(src, d.span().start);
        writeln!(
            out,
            "{}:{} {} [{} {}] {}",
            at.line,
            at.column,
            d.severity().as_str(),
            d.rule().id,
            d.rule().name,
            d.message()
        )
        .expect("writing to a String cannot fail");
        for label in d.labels() {
            let start = index.line_col(src, label.span.start);
            let end = index.line_col(src, label.span.end);
            let text = display_line(lines.get(start.line as usize - 1).copied().unwrap_or(""));
            let last_col = if end.line == start.line {
                end.column
            } else {
                text.chars().count() as u32 + 1
            };
            let n_marks = last_col.saturating_sub(start.column).max(1) as usize;
            let mark = if label.primary { "^" } else { "-" };
            writeln!(out, "{:>width$} | {}", start.line, text)
                .expect("writing to a String cannot fail");
            writeln!(
                out,
                "{:>width$} | {}{} {}",
                "",
                " ".repeat(start.column as usize - 1),
                mark.repeat(n_marks),
                label.text
            )
            .expect("writing to a String cannot fail");
        }
        if let Some(help) = d.help() {
            writeln!(out, "help: {help}").expect("writing to a String cannot fail");
        }
        for note in d.notes() {
            writeln!(out, "note: {note}").expect("writing to a String cannot fail");
        }
        if let Some(fix) = d.fix() {
            let start = index.line_col(src, fix.span.start);
            let end = index.line_col(src, fix.span.end);
            writeln!(
                out,
                "fix: {} (replace {}:{}-{}:{} with {:?})",
                fix.description, start.line, start.column, end.line, end.column, fix.replacement
            )
            .expect("writing to a String cannot fail");
        }
        out.push('\n');
    }
    out
}
