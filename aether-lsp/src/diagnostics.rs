//! `aether check`'s findings as LSP diagnostics: same rule ids, severities, spans, related
//! labels, the same suppressions and `--strict`, each linked to its `docs/codes/` page.

use std::path::{Path, PathBuf};

use aether_check::findings::{place, project_relative, Finding, DEFAULT_SUPPRESSIONS};
use aether_check::fingerprint::Suppressions;
use aether_syntax::Severity;
use lsp_types::{
    CodeDescription, Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location,
    NumberOrString, PublishDiagnosticsParams, Range, Url,
};
use serde_json::Value;

use crate::document::Document;
use crate::server::{Server, Settings};

/// The rule pages of the source tree this binary was built from (overridable with the
/// `docsBaseUrl` initialization option, e.g. to a hosted copy of `docs/codes`).
pub(crate) const DEFAULT_DOCS_BASE: &str =
    concat!("file://", env!("CARGO_MANIFEST_DIR"), "/../docs/codes");

/// The diagnostics to publish for `uri` (empty when it is no longer open).
pub(crate) fn publish(server: &mut Server, uri: &Url) -> Option<Value> {
    let settings = server.settings.clone();
    let diagnostics = match server.analysed(uri) {
        Some((analysed, doc, _)) => {
            let findings = findings(&settings, uri, doc, analysed.analysis.diagnostics.clone());
            findings
                .iter()
                .filter(|f| !f.suppressed)
                .map(|f| to_lsp(f, doc, uri, &settings))
                .collect()
        }
        None => Vec::new(),
    };
    let version = server.docs.get(uri).map(|o| o.doc.version);
    serde_json::to_value(PublishDiagnosticsParams {
        uri: uri.clone(),
        diagnostics,
        version,
    })
    .ok()
}

/// The project root of a document: the workspace root, else the nearest directory above the
/// file holding `.aetherra/`, else the file's directory.
pub(crate) fn project_root(settings: &Settings, file: Option<&Path>) -> Option<PathBuf> {
    if let Some(root) = &settings.root {
        return Some(root.clone());
    }
    let dir = file?.parent()?;
    dir.ancestors()
        .find(|d| d.join(".aetherra").is_dir())
        .or(Some(dir))
        .map(Path::to_path_buf)
}

/// Place, fingerprint and suppress `diags` as `aether check` run from the project root does.
pub(crate) fn findings(
    settings: &Settings,
    uri: &Url,
    doc: &Document,
    diags: Vec<aether_syntax::Diagnostic>,
) -> Vec<Finding> {
    let file = uri.to_file_path().ok();
    let root = project_root(settings, file.as_deref());
    let project = match (&root, &file) {
        (Some(root), Some(file)) => {
            let resolved = match (file.parent(), file.file_name()) {
                (Some(dir), Some(name)) => std::fs::canonicalize(dir)
                    .map(|d| d.join(name))
                    .unwrap_or_else(|_| file.clone()),
                _ => file.clone(),
            };
            project_relative(root, &resolved)
        }
        _ => uri.path().to_string(),
    };
    let suppressions = root
        .map(|root| {
            let path = match &settings.suppressions {
                Some(p) => root.join(p),
                None => root.join(DEFAULT_SUPPRESSIONS),
            };
            std::fs::read_to_string(path)
                .map(|t| Suppressions::parse(&t))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    place(
        Some(&doc.text),
        diags,
        &project,
        &suppressions,
        settings.strict,
    )
}

/// The page of rule `id` (`aether_check::codes::doc_url`, relative to the repository root)
/// under the configured base.
pub(crate) fn code_url(settings: &Settings, id: &str) -> Option<Url> {
    Url::parse(&settings.docs_base)
        .ok()?
        .join(&aether_check::codes::doc_url(id))
        .ok()
}

fn to_lsp(f: &Finding, doc: &Document, uri: &Url, settings: &Settings) -> Diagnostic {
    let d = &f.diag;
    let range = if d.labels().is_empty() {
        Range::default()
    } else {
        let span = d.span();
        doc.range(span.start as usize, span.end as usize)
    };
    // Under `--strict` a warning fails the check, so it is shown as an error (as SARIF does).
    let severity = if f.fails || d.severity() == Severity::Error {
        DiagnosticSeverity::ERROR
    } else {
        DiagnosticSeverity::WARNING
    };
    let mut message = d.message().to_string();
    if let Some(h) = d.help() {
        message.push_str(&format!("\nhelp: {h}"));
    }
    for n in d.notes() {
        message.push_str(&format!("\nnote: {n}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .labels()
        .iter()
        .filter(|l| !l.primary)
        .map(|l| DiagnosticRelatedInformation {
            location: Location::new(
                uri.clone(),
                doc.range(l.span.start as usize, l.span.end as usize),
            ),
            message: l.text.clone(),
        })
        .collect();
    let rule = d.rule();
    Diagnostic {
        range,
        severity: Some(severity),
        code: Some(NumberOrString::String(rule.id.to_string())),
        code_description: code_url(settings, rule.id).map(|href| CodeDescription { href }),
        source: Some("aether".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: None,
        data: Some(serde_json::json!({"name": rule.name, "code": d.code().name()})),
    }
}
