//! Human rendering of diagnostics through miette: the only module that knows about miette.

use std::fmt;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity as MSeverity,
};

use super::report::{FileReport, Finding};
use aether_syntax::Severity;

struct Adapter<'a> {
    finding: &'a Finding,
    source: &'a NamedSource<String>,
    help: Option<String>,
}

impl fmt::Debug for Adapter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.finding.diag.message())
    }
}

impl fmt::Display for Adapter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.finding.diag.message())
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
        Some(self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let labels = self.finding.diag.labels().iter().map(|l| {
            let span = (l.span.start as usize, l.span.len());
            if l.primary {
                LabeledSpan::new_primary_with_span(Some(l.text.clone()), span)
            } else {
                LabeledSpan::new_with_span(Some(l.text.clone()), span)
            }
        });
        Some(Box::new(labels))
    }
}

/// Render every finding of a file as a human-readable report.
pub(crate) fn render_file(report: &FileReport, color: bool, out: &mut String) {
    let source = NamedSource::new(
        report.display.clone(),
        report.source.clone().unwrap_or_default(),
    );
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    for f in &report.findings {
        if f.suppressed {
            continue;
        }
        let mut help: Vec<String> = f.diag.help().map(str::to_string).into_iter().collect();
        help.extend(f.diag.notes().iter().map(|n| format!("note: {n}")));
        if let Some(fix) = f.diag.fix() {
            help.push(format!("fix available: {}", fix.description));
        }
        if f.diag.severity() == Severity::Warning {
            help.push("this warning fails the check under `--strict`".to_string());
        }
        let explain = format!("for more, run `aether explain {}`", f.diag.rule().id);
        help.push(explain.clone());
        let adapter = Adapter {
            finding: f,
            source: &source,
            help: (!help.is_empty()).then(|| help.join("\n")),
        };
        if f.diag.labels().is_empty() {
            // No position: a file-level problem.
            out.push_str(&format!(
                "error[{}]: {}\n",
                f.diag.rule().id,
                f.diag.message()
            ));
            if let Some(h) = f.diag.help() {
                out.push_str(&format!("  help: {h}\n"));
            }
            out.push_str(&format!("  help: {explain}\n"));
            continue;
        }
        let _ = handler.render_report(out, &adapter);
    }
}
