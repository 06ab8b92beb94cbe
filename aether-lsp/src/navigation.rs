//! Go to definition, find references, rename, and the outline (document symbols).

use std::collections::HashMap;

use aether_syntax::ast::{ExprKind, Item, MapValue};
use aether_syntax::token::Tok;
use aether_syntax::Span;
use lsp_types::{
    DocumentSymbol, GotoDefinitionResponse, Location, PrepareRenameResponse, SymbolKind, TextEdit,
    Url, WorkspaceEdit,
};

use crate::document::Document;
use crate::index::DefKind;
use crate::server::Analysed;

pub(crate) fn definition(
    a: &Analysed,
    doc: &Document,
    uri: &Url,
    offset: usize,
) -> Option<GotoDefinitionResponse> {
    let (def, _) = a.index.def_at(offset as u32)?;
    let d = &a.index.defs[def];
    Some(GotoDefinitionResponse::Scalar(Location::new(
        uri.clone(),
        doc.range(d.span.start as usize, d.span.end as usize),
    )))
}

pub(crate) fn references(
    a: &Analysed,
    doc: &Document,
    uri: &Url,
    offset: usize,
    include_declaration: bool,
) -> Option<Vec<Location>> {
    let (def, _) = a.index.def_at(offset as u32)?;
    let mut spans: Vec<Span> = Vec::new();
    if include_declaration {
        spans.push(a.index.defs[def].span);
    }
    spans.extend(a.index.uses(def));
    Some(
        spans
            .into_iter()
            .map(|s| Location::new(uri.clone(), doc.range(s.start as usize, s.end as usize)))
            .collect(),
    )
}

pub(crate) fn prepare_rename(
    a: &Analysed,
    doc: &Document,
    offset: usize,
) -> Option<PrepareRenameResponse> {
    let (_, span) = a.index.def_at(offset as u32)?;
    Some(PrepareRenameResponse::Range(
        doc.range(span.start as usize, span.end as usize),
    ))
}

/// A valid new name: an identifier that is not a keyword.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && Tok::keyword(name).is_none()
}

pub(crate) fn rename(
    a: &Analysed,
    doc: &Document,
    uri: &Url,
    offset: usize,
    new_name: &str,
) -> Result<Option<WorkspaceEdit>, String> {
    if !valid_name(new_name) {
        return Err(format!(
            "`{new_name}` is not a valid name (letters, digits and `_`, not a keyword)"
        ));
    }
    let Some((def, _)) = a.index.def_at(offset as u32) else {
        return Ok(None);
    };
    let mut spans = vec![a.index.defs[def].span];
    spans.extend(a.index.uses(def));
    let edits = spans
        .into_iter()
        .map(|s| TextEdit::new(doc.range(s.start as usize, s.end as usize), new_name.into()))
        .collect();
    Ok(Some(WorkspaceEdit {
        changes: Some(HashMap::from([(uri.clone(), edits)])),
        ..WorkspaceEdit::default()
    }))
}

#[expect(
    deprecated,
    reason = "DocumentSymbol.deprecated must be set; it is None"
)]
fn symbol(
    doc: &Document,
    name: String,
    detail: Option<String>,
    kind: SymbolKind,
    full: Span,
    selection: Span,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    let range = doc.range(full.start as usize, full.end as usize);
    let mut selection_range = doc.range(selection.start as usize, selection.end as usize);
    // The selection must lie inside the range.
    if selection_range.start < range.start || selection_range.end > range.end {
        selection_range = range;
    }
    DocumentSymbol {
        name: if name.is_empty() { "?".into() } else { name },
        detail,
        kind,
        tags: None,
        deprecated: None,
        range,
        selection_range,
        children: (!children.is_empty()).then_some(children),
    }
}

/// The outline: the goal, actions, workflows with their steps.
pub(crate) fn symbols(a: &Analysed, doc: &Document) -> Vec<DocumentSymbol> {
    let text = &doc.text;
    let src = |s: Span| text.get(s.range()).unwrap_or("").trim().to_string();
    let mut out = Vec::new();
    for item in &a.analysis.script.items {
        match item {
            Item::Goal(g) => {
                let detail = g.value.as_ref().map(|v| match &v.kind {
                    ExprKind::Str(s) => s.clone(),
                    _ => src(v.span),
                });
                out.push(symbol(
                    doc,
                    if g.legacy { "intent" } else { "goal" }.into(),
                    detail,
                    SymbolKind::STRING,
                    g.span,
                    g.keyword_span,
                    Vec::new(),
                ));
            }
            Item::Action(act) => {
                let params: Vec<String> =
                    act.params().iter().map(|p| p.name.text.clone()).collect();
                out.push(symbol(
                    doc,
                    act.name.text.clone(),
                    Some(format!("action({})", params.join(", "))),
                    SymbolKind::FUNCTION,
                    act.span,
                    act.name.span,
                    Vec::new(),
                ));
            }
            Item::Workflow(w) => {
                let steps = w
                    .steps()
                    .iter()
                    .map(|s| {
                        let name = match &s.value.kind {
                            ExprKind::Call { callee, .. } => src(callee.span),
                            _ => src(s.value.span),
                        };
                        let (name, selection) = match &s.binding {
                            Some(b) => (format!("{name} as {}", b.text), s.value.span),
                            None => (name, s.value.span),
                        };
                        symbol(
                            doc,
                            name,
                            Some(src(s.value.span)),
                            SymbolKind::EVENT,
                            s.span,
                            selection,
                            Vec::new(),
                        )
                    })
                    .collect();
                let (name, selection) = match &w.name {
                    Some(n) => (n.text.clone(), n.span),
                    None => ("workflow".to_string(), w.keyword_span),
                };
                let detail =
                    w.entries
                        .iter()
                        .filter(|e| e.key != "steps")
                        .find_map(|e| match &e.value {
                            MapValue::Expr(x) => Some(format!("{}: {}", e.key, src(x.span))),
                            _ => None,
                        });
                out.push(symbol(
                    doc,
                    name,
                    detail,
                    SymbolKind::MODULE,
                    w.span,
                    selection,
                    steps,
                ));
            }
            _ => {}
        }
    }
    out
}

/// How a definition is described in hovers.
pub(crate) fn kind_word(kind: DefKind) -> &'static str {
    match kind {
        DefKind::Action => "action",
        DefKind::Workflow => "workflow",
        DefKind::Step => "step result",
        DefKind::Variable => "variable",
        DefKind::Parameter => "parameter",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_identifiers_and_not_keywords() {
        assert!(valid_name("total_2"));
        assert!(!valid_name("2x"));
        assert!(!valid_name("let"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
