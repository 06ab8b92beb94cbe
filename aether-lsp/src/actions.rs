//! Code actions: the machine-applicable fixes the front end attaches to its diagnostics
//! (quote goal text, `intent:` to `goal:`, remove quotes, duration units, did-you-mean).

use std::collections::HashMap;

use lsp_types::{CodeAction, CodeActionKind, CodeActionOrCommand, TextEdit, Url, WorkspaceEdit};

use crate::document::Document;
use crate::server::{Analysed, Settings};

pub(crate) fn code_actions(
    settings: &Settings,
    a: &Analysed,
    doc: &Document,
    uri: &Url,
    start: usize,
    end: usize,
) -> Vec<CodeActionOrCommand> {
    // The same findings as the published diagnostics: suppressed ones offer nothing.
    let findings = crate::diagnostics::findings(settings, uri, doc, a.analysis.diagnostics.clone());
    let mut out = Vec::new();
    for f in findings.iter().filter(|f| !f.suppressed) {
        let Some(fix) = f.diag.fix() else { continue };
        let span = f.diag.span();
        let touches = (span.start as usize) <= end && start <= (span.end as usize)
            || (fix.span.start as usize) <= end && start <= (fix.span.end as usize);
        if !touches {
            continue;
        }
        let edit = TextEdit::new(
            doc.range(fix.span.start as usize, fix.span.end as usize),
            fix.replacement.clone(),
        );
        out.push(CodeActionOrCommand::CodeAction(CodeAction {
            title: fix.description.clone(),
            kind: Some(CodeActionKind::QUICKFIX),
            is_preferred: Some(true),
            edit: Some(WorkspaceEdit {
                changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                ..WorkspaceEdit::default()
            }),
            ..CodeAction::default()
        }));
    }
    out
}
