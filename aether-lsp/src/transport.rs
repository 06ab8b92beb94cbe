//! JSON-RPC framing over stdio: a reader thread that survives malformed input, and the writer.
//!
//! lsp-server's own stdio reader thread stops at the first payload that is not a valid
//! message, which would end the session; this reader answers such a payload with a protocol
//! error (parse error, invalid request) and keeps reading. Messages themselves are
//! lsp-server's types, written with its framing.

use std::io::{BufRead, Write};
use std::sync::mpsc::{Receiver, Sender};

use lsp_server::{ErrorCode, Message};
use serde_json::{json, Value};

/// What the reader hands to the server loop.
#[derive(Debug)]
pub(crate) enum Incoming {
    Message(Message),
    /// A payload that could not be used: answer it with this error (id null when unknown).
    Malformed {
        id: Value,
        code: i32,
        message: String,
    },
}

/// The largest message body accepted (a 20,000-line file is about 1 MB).
const MAX_BODY: usize = 64 << 20;

/// Read framed messages from `input` until end of input (or an unrecoverable read error).
pub(crate) fn read_loop(mut input: impl BufRead, tx: Sender<Incoming>) {
    loop {
        let incoming = match read_frame(&mut input) {
            Ok(Some(Frame::Body(body))) => decode(&body),
            Ok(Some(Frame::BadHeader(why))) => Incoming::Malformed {
                id: Value::Null,
                code: ErrorCode::ParseError as i32,
                message: why,
            },
            Ok(None) | Err(_) => return,
        };
        if tx.send(incoming).is_err() {
            return;
        }
    }
}

enum Frame {
    Body(Vec<u8>),
    BadHeader(String),
}

fn read_frame(input: &mut impl BufRead) -> std::io::Result<Option<Frame>> {
    let mut length: Option<usize> = None;
    let mut saw_header = false;
    let mut bad: Option<String> = None;
    loop {
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if saw_header {
                break;
            }
            continue;
        }
        saw_header = true;
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                match value.trim().parse::<usize>() {
                    Ok(n) if n <= MAX_BODY => length = Some(n),
                    _ => bad = Some(format!("invalid Content-Length header `{}`", value.trim())),
                }
            }
            Some(_) => {}
            None => bad = Some(format!("malformed header line `{line}`")),
        }
    }
    if let Some(why) = bad {
        return Ok(Some(Frame::BadHeader(why)));
    }
    let Some(n) = length else {
        return Ok(Some(Frame::BadHeader(
            "missing Content-Length header".into(),
        )));
    };
    let mut body = vec![0; n];
    input.read_exact(&mut body)?;
    Ok(Some(Frame::Body(body)))
}

fn decode(body: &[u8]) -> Incoming {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Incoming::Malformed {
                id: Value::Null,
                code: ErrorCode::ParseError as i32,
                message: format!("parse error: {e}"),
            }
        }
    };
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let valid_id = matches!(id, Value::Null | Value::Number(_) | Value::String(_));
    // A request or notification has a method; a response has a result or an error.
    let shaped = value.get("method").is_some_and(Value::is_string)
        || (value.get("id").is_some()
            && (value.get("result").is_some() || value.get("error").is_some()));
    if !shaped {
        return Incoming::Malformed {
            id: if valid_id { id } else { Value::Null },
            code: ErrorCode::InvalidRequest as i32,
            message: "invalid request: a message needs a method (or, for a response, a result or an error)".into(),
        };
    }
    match serde_json::from_value::<Message>(value) {
        Ok(msg) if valid_id => Incoming::Message(msg),
        Ok(_) => Incoming::Malformed {
            id: Value::Null,
            code: ErrorCode::InvalidRequest as i32,
            message: "invalid request: id must be a number or a string".into(),
        },
        Err(e) => Incoming::Malformed {
            id: if valid_id { id } else { Value::Null },
            code: ErrorCode::InvalidRequest as i32,
            message: format!("invalid request: {e}"),
        },
    }
}

/// Spawn the reader thread over stdin.
pub(crate) fn stdin_reader() -> std::io::Result<Receiver<Incoming>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("lsp-reader".into())
        .spawn(move || read_loop(std::io::stdin().lock(), tx))?;
    Ok(rx)
}

/// Writes messages, framed, to the client.
pub(crate) struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    pub(crate) fn new(out: W) -> Writer<W> {
        Writer { out }
    }

    pub(crate) fn send(&mut self, msg: Message) -> std::io::Result<()> {
        msg.write(&mut self.out)
    }

    /// An error response with a raw id (null when the request's id could not be read).
    pub(crate) fn send_error(
        &mut self,
        id: Value,
        code: i32,
        message: &str,
    ) -> std::io::Result<()> {
        let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            .to_string();
        write!(self.out, "Content-Length: {}\r\n\r\n{body}", body.len())?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &str) -> Vec<Incoming> {
        let (tx, rx) = std::sync::mpsc::channel();
        read_loop(std::io::Cursor::new(input.as_bytes().to_vec()), tx);
        rx.into_iter().collect()
    }

    fn framed(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[test]
    fn malformed_payloads_become_errors_and_reading_goes_on() {
        let input = [
            framed("{not json"),
            framed(r#"{"jsonrpc":"2.0","id":7,"params":1}"#),
            "Content-Length: x\r\n\r\n".to_string(),
            framed(r#"{"jsonrpc":"2.0","id":1,"method":"shutdown"}"#),
        ]
        .concat();
        let got = frames(&input);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(matches!(&got[0], Incoming::Malformed { code: -32700, .. }));
        assert!(matches!(&got[1], Incoming::Malformed { code: -32600, id, .. } if *id == json!(7)));
        assert!(matches!(&got[2], Incoming::Malformed { code: -32700, .. }));
        assert!(
            matches!(&got[3], Incoming::Message(Message::Request(r)) if r.method == "shutdown")
        );
    }
}
