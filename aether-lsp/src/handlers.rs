//! Request dispatch: decode the parameters, find the document, call the feature.

use lsp_server::{ErrorCode, Request};
use lsp_types::request::{self as req, Request as _};
use lsp_types::Url;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::server::Server;

pub(crate) type Outcome = Result<Value, (ErrorCode, String)>;

fn params<P: DeserializeOwned>(r: Request) -> Result<P, (ErrorCode, String)> {
    serde_json::from_value(r.params)
        .map_err(|e| (ErrorCode::InvalidParams, format!("invalid parameters: {e}")))
}

fn json(value: impl serde::Serialize) -> Outcome {
    serde_json::to_value(value).map_err(|e| (ErrorCode::InternalError, e.to_string()))
}

fn not_open(uri: &Url) -> (ErrorCode, String) {
    (
        ErrorCode::InvalidParams,
        format!("{uri} is not open (send textDocument/didOpen first)"),
    )
}

pub(crate) fn request(server: &mut Server, r: Request) -> Outcome {
    match r.method.as_str() {
        req::HoverRequest::METHOD => {
            let p: lsp_types::HoverParams = params(r)?;
            let uri = p.text_document_position_params.text_document.uri;
            let (a, doc, registry) = server.analysed(&uri).ok_or_else(|| not_open(&uri))?;
            let offset = doc.offset(p.text_document_position_params.position);
            json(crate::hover::hover(registry, &a, doc, offset))
        }
        req::Completion::METHOD => {
            let p: lsp_types::CompletionParams = params(r)?;
            let uri = p.text_document_position.text_document.uri;
            let settings = server.settings.clone();
            let (a, doc, registry) = server.analysed(&uri).ok_or_else(|| not_open(&uri))?;
            let offset = doc.offset(p.text_document_position.position);
            let plugins = || crate::completion::plugin_names(&settings, &uri);
            json(crate::completion::complete(
                registry, &a, doc, offset, &plugins,
            ))
        }
        req::GotoDefinition::METHOD => {
            let p: lsp_types::GotoDefinitionParams = params(r)?;
            let uri = p.text_document_position_params.text_document.uri;
            let (a, doc, _) = server.analysed(&uri).ok_or_else(|| not_open(&uri))?;
            let offset = doc.offset(p.text_document_position_params.position);
            json(crate::navigation::definition(&a, doc, &uri, offset))
        }
        req::References::METHOD => {
            let p: lsp_types::ReferenceParams = params(r)?;
            let uri = p.text_document_position.text_document.uri;
            let (a, doc, _) = server.analysed(&uri).ok_or_else(|| not_open(&uri))?;
            let offset = doc.offset(p.text_document_position.position);
            json(crate::navigation::references(
                &a,
                doc,
                &uri,
                offset,
                p.context.include_declaration,
            ))
        }
        req::PrepareRenameRequest::METHOD => {
            let p: lsp_types::TextDocumentPositionParams = params(r)?;
            let uri = p.text_document.uri;
            let (a, doc, _) = server.analysed(&uri).ok_or_else(|| not_open(&uri))?;
            let offset = doc.offset(p.position);
            json(crate::navigation::prepare_rename(&a, doc, offset))
        }
        req::Rename::METHOD => {
            let p: lsp_types::RenameParams = params(r)?;
            let uri = p.text_document_position.text_document.uri;
            let (a, doc, _) = server.analysed(&uri).ok_or_else(|| not_open(&uri))?;
            let offset = doc.offset(p.text_document_position.position);
            let edit = crate::navigation::rename(&a, doc, &uri, offset, &p.new_name)
                .map_err(|e| (ErrorCode::InvalidParams, e))?;
            json(edit)
        }
        req::DocumentSymbolRequest::METHOD => {
            let p: lsp_types::DocumentSymbolParams = params(r)?;
            let uri = p.text_document.uri;
            let (a, doc, _) = server.analysed(&uri).ok_or_else(|| not_open(&uri))?;
            json(crate::navigation::symbols(&a, doc))
        }
        req::CodeActionRequest::METHOD => {
            let p: lsp_types::CodeActionParams = params(r)?;
            let uri = p.text_document.uri;
            let settings = server.settings.clone();
            let (a, doc, _) = server.analysed(&uri).ok_or_else(|| not_open(&uri))?;
            let start = doc.offset(p.range.start);
            let end = doc.offset(p.range.end);
            json(crate::actions::code_actions(
                &settings, &a, doc, &uri, start, end,
            ))
        }
        req::Formatting::METHOD => {
            let p: lsp_types::DocumentFormattingParams = params(r)?;
            let uri = p.text_document.uri;
            let open = server.docs.get(&uri).ok_or_else(|| not_open(&uri))?;
            let edits = crate::formatting::format(&open.doc, None)
                .map_err(|e| (ErrorCode::RequestFailed, e))?;
            json(edits)
        }
        req::RangeFormatting::METHOD => {
            let p: lsp_types::DocumentRangeFormattingParams = params(r)?;
            let uri = p.text_document.uri;
            let open = server.docs.get(&uri).ok_or_else(|| not_open(&uri))?;
            let edits = crate::formatting::format(&open.doc, Some(p.range))
                .map_err(|e| (ErrorCode::RequestFailed, e))?;
            json(edits)
        }
        req::SemanticTokensFullRequest::METHOD => {
            let p: lsp_types::SemanticTokensParams = params(r)?;
            let uri = p.text_document.uri;
            let (a, doc, _) = server.analysed(&uri).ok_or_else(|| not_open(&uri))?;
            json(crate::semantic::tokens(&a, doc))
        }
        other => Err((
            ErrorCode::MethodNotFound,
            format!("unknown method `{other}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{Open, Settings};
    use serde_json::json;

    /// Every feature answers at many positions of truncated (half-typed) reference
    /// workflows without panicking.
    #[test]
    fn features_answer_on_half_typed_text() {
        let registry = aether_runtime::function_table().registry().clone();
        let mut server = Server {
            registry,
            settings: Settings::default(),
            docs: std::collections::HashMap::new(),
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("workflows")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "aether"))
            .collect();
        files.sort();
        let uri = Url::parse("file:///t.aether").expect("uri");
        let mut answered = 0;
        for path in files.iter().take(3) {
            let full = std::fs::read_to_string(path).expect("read");
            for cut in (0..full.len())
                .step_by(131)
                .filter(|c| full.is_char_boundary(*c))
            {
                let text = full[..cut].to_string();
                let lines = text.lines().count() as u32 + 1;
                server.docs.insert(
                    uri.clone(),
                    Open {
                        doc: crate::document::Document::new(text, 1),
                        cached: None,
                    },
                );
                for line in (0..lines).step_by(3) {
                    for character in [0, 4, 9, 40] {
                        let pos = json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}});
                        for (method, params) in [
                            ("textDocument/hover", pos.clone()),
                            ("textDocument/completion", pos.clone()),
                            ("textDocument/definition", pos.clone()),
                            ("textDocument/prepareRename", pos.clone()),
                            (
                                "textDocument/codeAction",
                                json!({"textDocument": {"uri": uri}, "range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": character}}, "context": {"diagnostics": []}}),
                            ),
                        ] {
                            let r = Request::new(1.into(), method.to_string(), params);
                            assert!(
                                request(&mut server, r).is_ok(),
                                "{method} at {line}:{character}"
                            );
                            answered += 1;
                        }
                    }
                }
                let whole = json!({"textDocument": {"uri": uri}});
                for method in [
                    "textDocument/documentSymbol",
                    "textDocument/semanticTokens/full",
                ] {
                    let r = Request::new(1.into(), method.to_string(), whole.clone());
                    assert!(request(&mut server, r).is_ok(), "{method}");
                }
            }
        }
        assert!(answered > 1000, "{answered}");
    }
}
