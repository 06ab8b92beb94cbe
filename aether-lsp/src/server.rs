//! The server loop: initialize, then read batches of messages, answer requests in order
//! (each behind a panic guard), drop cancelled and superseded ones, and publish the
//! diagnostics of every document that changed once the batch is handled.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc::Receiver;

use aether_check::decl::Registry;
use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::Notification as _;
use lsp_types::request::Request as _;
use lsp_types::{notification as notif, request as req, Url};
use serde_json::Value;

use crate::analysis::{analyze, Analysis};
use crate::document::Document;
use crate::index::Index;
use crate::transport::{Incoming, Writer};
use crate::Options;

/// A document's analysis at one version, with its name index.
pub(crate) struct Analysed {
    pub(crate) version: i32,
    pub(crate) analysis: Analysis,
    pub(crate) index: Index,
}

pub(crate) struct Open {
    pub(crate) doc: Document,
    pub(crate) cached: Option<Rc<Analysed>>,
}

/// Settings read at `initialize` (and from the CLI).
#[derive(Clone, Debug, Default)]
pub(crate) struct Settings {
    /// The workspace root: fingerprints are relative to it and `.aetherra/` is read there.
    pub(crate) root: Option<PathBuf>,
    pub(crate) strict: bool,
    /// An explicit suppression file (relative paths against the root).
    pub(crate) suppressions: Option<PathBuf>,
    /// Where `docs/codes/<id>.md` pages are linked from.
    pub(crate) docs_base: String,
}

pub(crate) struct Server {
    pub(crate) registry: Registry,
    pub(crate) settings: Settings,
    pub(crate) docs: HashMap<Url, Open>,
}

impl Server {
    /// The current analysis of an open document (computed once per version).
    pub(crate) fn analysed(&mut self, uri: &Url) -> Option<(Rc<Analysed>, &Document, &Registry)> {
        let registry = &self.registry;
        let open = self.docs.get_mut(uri)?;
        let fresh = open
            .cached
            .as_ref()
            .is_some_and(|c| c.version == open.doc.version);
        if !fresh {
            let analysis = analyze(&open.doc.text, registry);
            let index = Index::build(&analysis.script, &|m| {
                crate::analysis::is_module(registry, m)
            });
            open.cached = Some(Rc::new(Analysed {
                version: open.doc.version,
                analysis,
                index,
            }));
        }
        let cached = open.cached.clone()?;
        Some((cached, &open.doc, registry))
    }
}

/// How the loop ended: `exit` after `shutdown` (0), or anything else (1).
pub(crate) fn run(
    rx: Receiver<Incoming>,
    out: impl Write,
    registry: Registry,
    options: Options,
) -> i32 {
    let mut writer = Writer::new(out);
    let mut server = Server {
        registry,
        settings: Settings {
            strict: options.strict,
            docs_base: crate::diagnostics::DEFAULT_DOCS_BASE.to_string(),
            ..Settings::default()
        },
        docs: HashMap::new(),
    };
    let mut initialized = false;
    let mut shutdown = false;
    let mut queue: VecDeque<Incoming> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv() {
                Ok(m) => queue.push_back(m),
                // End of input without `exit`.
                Err(_) => return 1,
            }
        }
        queue.extend(rx.try_iter());
        let cancelled = cancelled_ids(&queue);
        let mut dirty: HashSet<Url> = HashSet::new();
        while let Some(incoming) = queue.pop_front() {
            let msg = match incoming {
                Incoming::Malformed { id, code, message } => {
                    let _ = writer.send_error(id, code, &message);
                    continue;
                }
                Incoming::Message(m) => m,
            };
            match msg {
                Message::Request(r) => {
                    if !initialized && r.method != req::Initialize::METHOD {
                        let _ = writer.send(
                            error(
                                r.id,
                                ErrorCode::ServerNotInitialized,
                                "the server is not initialized",
                            )
                            .into(),
                        );
                        continue;
                    }
                    if r.method == req::Initialize::METHOD {
                        let resp = if initialized {
                            error(r.id, ErrorCode::InvalidRequest, "already initialized")
                        } else {
                            initialized = true;
                            server.settings =
                                crate::capabilities::settings(&r.params, server.settings.clone());
                            Response::new_ok(r.id, crate::capabilities::initialize_result())
                        };
                        let _ = writer.send(resp.into());
                        continue;
                    }
                    if shutdown {
                        let _ = writer.send(
                            error(
                                r.id,
                                ErrorCode::InvalidRequest,
                                "the server is shutting down",
                            )
                            .into(),
                        );
                        continue;
                    }
                    if r.method == req::Shutdown::METHOD {
                        shutdown = true;
                        let _ = writer.send(Response::new_ok(r.id, Value::Null).into());
                        continue;
                    }
                    if cancelled.contains(&r.id) {
                        let _ = writer.send(
                            error(
                                r.id,
                                ErrorCode::RequestCanceled,
                                "the request was cancelled",
                            )
                            .into(),
                        );
                        continue;
                    }
                    if superseded(&r, &queue) {
                        let _ = writer.send(
                            error(
                                r.id,
                                ErrorCode::ContentModified,
                                "the document changed after the request was sent",
                            )
                            .into(),
                        );
                        continue;
                    }
                    let id = r.id.clone();
                    let method = r.method.clone();
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        crate::handlers::request(&mut server, r)
                    }));
                    let resp = match outcome {
                        Ok(Ok(value)) => Response::new_ok(id, value),
                        Ok(Err((code, msg))) => error(id, code, &msg),
                        Err(payload) => error(
                            id,
                            ErrorCode::InternalError,
                            &format!(
                                "internal error in {method}: {} (this is a bug in aether)",
                                panic_message(payload.as_ref())
                            ),
                        ),
                    };
                    let _ = writer.send(resp.into());
                }
                Message::Notification(n) => {
                    if n.method == notif::Exit::METHOD {
                        return if shutdown { 0 } else { 1 };
                    }
                    if !initialized {
                        continue;
                    }
                    let _ = catch_unwind(AssertUnwindSafe(|| {
                        notification(&mut server, n, &mut dirty);
                    }));
                }
                // Answers to requests this server never sends.
                Message::Response(_) => {}
            }
        }
        for uri in dirty {
            if let Some(params) = crate::diagnostics::publish(&mut server, &uri) {
                let _ = writer.send(
                    Notification::new(notif::PublishDiagnostics::METHOD.to_string(), params).into(),
                );
            }
        }
    }
}

fn error(id: RequestId, code: ErrorCode, message: &str) -> Response {
    Response::new_err(id, code as i32, message.to_string())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Ids named by `$/cancelRequest` notifications already waiting.
fn cancelled_ids(queue: &VecDeque<Incoming>) -> HashSet<RequestId> {
    queue
        .iter()
        .filter_map(|m| match m {
            Incoming::Message(Message::Notification(n)) if n.method == notif::Cancel::METHOD => {
                match n.params.get("id") {
                    Some(Value::Number(x)) => x.as_i64().map(|i| RequestId::from(i as i32)),
                    Some(Value::String(s)) => Some(RequestId::from(s.clone())),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

/// A request about a document whose change is already waiting behind it: its answer would
/// be for text the client no longer has.
fn superseded(r: &Request, queue: &VecDeque<Incoming>) -> bool {
    let Some(uri) = r
        .params
        .get("textDocument")
        .and_then(|t| t.get("uri"))
        .and_then(Value::as_str)
    else {
        return false;
    };
    queue.iter().any(|m| match m {
        Incoming::Message(Message::Notification(n))
            if n.method == notif::DidChangeTextDocument::METHOD =>
        {
            n.params
                .get("textDocument")
                .and_then(|t| t.get("uri"))
                .and_then(Value::as_str)
                == Some(uri)
        }
        _ => false,
    })
}

fn notification(server: &mut Server, n: Notification, dirty: &mut HashSet<Url>) {
    match n.method.as_str() {
        notif::DidOpenTextDocument::METHOD => {
            if let Ok(p) = serde_json::from_value::<lsp_types::DidOpenTextDocumentParams>(n.params)
            {
                let uri = p.text_document.uri;
                server.docs.insert(
                    uri.clone(),
                    Open {
                        doc: Document::new(p.text_document.text, p.text_document.version),
                        cached: None,
                    },
                );
                dirty.insert(uri);
            }
        }
        notif::DidChangeTextDocument::METHOD => {
            if let Ok(p) =
                serde_json::from_value::<lsp_types::DidChangeTextDocumentParams>(n.params)
            {
                if let Some(open) = server.docs.get_mut(&p.text_document.uri) {
                    open.doc.apply(p.content_changes, p.text_document.version);
                    dirty.insert(p.text_document.uri);
                }
            }
        }
        notif::DidCloseTextDocument::METHOD => {
            if let Ok(p) = serde_json::from_value::<lsp_types::DidCloseTextDocumentParams>(n.params)
            {
                // Published once more, empty: a closed file shows no diagnostics.
                server.docs.remove(&p.text_document.uri);
                dirty.insert(p.text_document.uri);
            }
        }
        notif::DidChangeConfiguration::METHOD => {
            if let Some(strict) = n
                .params
                .get("settings")
                .and_then(|s| s.get("aether").or(Some(s)))
                .and_then(|s| s.get("strict"))
                .and_then(Value::as_bool)
            {
                server.settings.strict = strict;
                dirty.extend(server.docs.keys().cloned());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(v: Value) -> Incoming {
        Incoming::Message(serde_json::from_value(v).expect("message"))
    }

    /// Run the loop over one batch of messages (all queued before it starts) and return
    /// what it wrote, as JSON values.
    fn run_batch(messages: Vec<Incoming>) -> (i32, Vec<Value>) {
        let (tx, rx) = std::sync::mpsc::channel();
        for m in messages {
            tx.send(m).expect("send");
        }
        drop(tx);
        let mut out = Vec::new();
        let registry = aether_runtime::function_table().registry().clone();
        let code = run(rx, &mut out, registry, Options::default());
        let mut values = Vec::new();
        let mut rest = out.as_slice();
        while let Some(body_at) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let header = std::str::from_utf8(&rest[..body_at]).expect("header");
            let len: usize = header
                .trim_start_matches("Content-Length:")
                .trim()
                .parse()
                .expect("length");
            let body = &rest[body_at + 4..body_at + 4 + len];
            values.push(serde_json::from_slice(body).expect("json"));
            rest = &rest[body_at + 4 + len..];
        }
        (code, values)
    }

    #[test]
    fn cancelled_and_superseded_requests_are_answered_not_queued() {
        let uri = "file:///t.aether";
        let hover = |id: i32| {
            msg(
                json!({"jsonrpc": "2.0", "id": id, "method": "textDocument/hover",
                "params": {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}}}),
            )
        };
        let (code, out) = run_batch(vec![
            msg(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}),
            ),
            msg(
                json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument":
                {"uri": uri, "languageId": "aether", "version": 1, "text": "print(1)\n"}}}),
            ),
            hover(2),
            msg(json!({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 2}})),
            hover(3),
            msg(
                json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
                "textDocument": {"uri": uri, "version": 2},
                "contentChanges": [{"text": "print(2)\n"}]}}),
            ),
            hover(4),
            msg(json!({"jsonrpc": "2.0", "id": 5, "method": "shutdown"})),
            msg(json!({"jsonrpc": "2.0", "method": "exit"})),
        ]);
        assert_eq!(code, 0);
        let by_id = |id: i32| {
            out.iter()
                .find(|m| m["id"] == json!(id))
                .unwrap_or_else(|| panic!("no answer to {id}: {out:?}"))
        };
        assert_eq!(by_id(2)["error"]["code"], ErrorCode::RequestCanceled as i32);
        assert_eq!(by_id(3)["error"]["code"], ErrorCode::ContentModified as i32);
        // On the current version: answered (`print` is a built-in).
        assert!(by_id(4)["result"]["contents"]["value"]
            .as_str()
            .is_some_and(|s| s.contains("print(")));
        assert_eq!(by_id(5)["result"], Value::Null);
    }

    #[test]
    fn exit_without_shutdown_is_status_1_and_end_of_input_too() {
        let (code, _) = run_batch(vec![msg(json!({"jsonrpc": "2.0", "method": "exit"}))]);
        assert_eq!(code, 1);
        let (code, _) = run_batch(Vec::new());
        assert_eq!(code, 1);
    }
}
