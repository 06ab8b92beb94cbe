//! What the server announces at `initialize`, and the settings it reads from the client.

use std::path::PathBuf;

use lsp_types::{
    CodeActionKind, CodeActionOptions, CodeActionProviderCapability, CompletionOptions,
    HoverProviderCapability, InitializeParams, InitializeResult, OneOf, RenameOptions,
    SemanticTokensFullOptions, SemanticTokensOptions, SemanticTokensServerCapabilities,
    ServerCapabilities, ServerInfo, TextDocumentSyncCapability, TextDocumentSyncKind,
    TextDocumentSyncOptions, WorkDoneProgressOptions,
};
use serde_json::Value;

use crate::server::Settings;

pub(crate) fn initialize_result() -> Value {
    let caps = ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..TextDocumentSyncOptions::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "(".into(), ",".into(), "\"".into()]),
            ..CompletionOptions::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        })),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        document_range_formatting_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
            ..CodeActionOptions::default()
        })),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
            SemanticTokensOptions {
                legend: crate::semantic::legend(),
                full: Some(SemanticTokensFullOptions::Bool(true)),
                range: None,
                work_done_progress_options: WorkDoneProgressOptions::default(),
            },
        )),
        ..ServerCapabilities::default()
    };
    let result = InitializeResult {
        capabilities: caps,
        server_info: Some(ServerInfo {
            name: "aether".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
    };
    serde_json::to_value(result).unwrap_or(Value::Null)
}

/// The settings after `initialize`: the workspace root (first workspace folder, else
/// `rootUri`, else `rootPath`) and `initializationOptions` (`strict`, `suppressions`,
/// `docsBaseUrl`) on top of what the command line gave.
pub(crate) fn settings(params: &Value, mut base: Settings) -> Settings {
    let parsed: Option<InitializeParams> = serde_json::from_value(params.clone()).ok();
    #[expect(
        deprecated,
        reason = "root_uri and root_path are the fallbacks of older clients"
    )]
    let root = parsed.as_ref().and_then(|p| {
        p.workspace_folders
            .as_ref()
            .and_then(|f| f.first())
            .and_then(|f| f.uri.to_file_path().ok())
            .or_else(|| p.root_uri.as_ref().and_then(|u| u.to_file_path().ok()))
            .or_else(|| p.root_path.as_ref().map(PathBuf::from))
    });
    if let Some(root) = root {
        base.root = Some(std::fs::canonicalize(&root).unwrap_or(root));
    }
    let opts = params.get("initializationOptions");
    let opt = |key: &str| opts.and_then(|o| o.get(key));
    if let Some(strict) = opt("strict").and_then(Value::as_bool) {
        base.strict = base.strict || strict;
    }
    if let Some(file) = opt("suppressions").and_then(Value::as_str) {
        base.suppressions = Some(PathBuf::from(file));
    }
    if let Some(url) = opt("docsBaseUrl").and_then(Value::as_str) {
        // A directory: `docs/codes/<id>.md` is joined onto it.
        base.docs_base = format!("{}/", url.trim_end_matches('/'));
    }
    base
}
