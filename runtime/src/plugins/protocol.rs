//! The wire protocol: the one request line written to a plugin, and the reading of its
//! exit status and first stdout line as a result or an error.

use std::process::ExitStatus;
use std::time::Duration;

use serde_json::Value;

use super::process::STDOUT_CAP;
use super::{PluginError, PluginErrorKind};

/// The most of the stderr tail quoted in an error message.
const STDERR_QUOTE: usize = 500;
/// The most of an invalid response quoted in an error message.
const RESPONSE_QUOTE: usize = 200;

/// The request line sent to a plugin: compact JSON, keys in the order function, args, plugin,
/// then `idempotency_key` when the call has one (a call of a durable run: `run_id:fiber:seq`,
/// the same on a retry; older plugins ignore the extra key).
pub fn request_line(plugin: &str, function: &str, args: &[Value], key: Option<&str>) -> String {
    let function = Value::String(function.to_string());
    let args = Value::Array(args.to_vec());
    let plugin = Value::String(plugin.to_string());
    match key {
        Some(k) => {
            let k = Value::String(k.to_string());
            format!("{{\"function\":{function},\"args\":{args},\"plugin\":{plugin},\"idempotency_key\":{k}}}\n")
        }
        None => format!("{{\"function\":{function},\"args\":{args},\"plugin\":{plugin}}}\n"),
    }
}

/// `" (stderr: ...)"` with the trimmed tail of stderr, or nothing when it is empty.
pub(super) fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let start = text.len().saturating_sub(STDERR_QUOTE);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    let ellipsis = if start > 0 { "..." } else { "" };
    format!(" (stderr: {ellipsis}{})", text[start..].trim())
}

/// At most `max` bytes of `text` (on a char boundary), with `...` when cut.
pub(super) fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let end = (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}...", &text[..end])
}

/// Seconds for messages: `0.3`, `5`, `1.25`.
pub(super) fn trim_secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Turns the exit status and stdout of a finished plugin into its result.
pub(super) fn interpret(
    name: &str,
    function: &str,
    status: ExitStatus,
    stdout: &[u8],
    stderr_note: &str,
) -> Result<Value, PluginError> {
    let failed = |msg: String| Err(PluginError::new(PluginErrorKind::Failed, msg));
    // The first line must end within the cap: stdout past it was not kept.
    let too_large = stdout.len() > STDOUT_CAP && {
        let start = stdout.iter().position(|b| !b.is_ascii_whitespace());
        start.is_none_or(|s| !stdout[s.min(STDOUT_CAP)..STDOUT_CAP].contains(&b'\n'))
    };
    let stdout = &stdout[..stdout.len().min(STDOUT_CAP)];
    let text = String::from_utf8_lossy(stdout);
    let first_line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let response: Option<Value> = serde_json::from_str(first_line).ok();
    let reported_error = response
        .as_ref()
        .filter(|r| r.get("ok") == Some(&Value::Bool(false)))
        .map(|r| error_text(r.get("error")));

    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_string(),
        };
        let reported = reported_error.map(|e| format!(": {e}")).unwrap_or_default();
        return failed(format!(
            "plugin {name:?} function {function:?} {how}{reported}{stderr_note}"
        ));
    }
    if too_large {
        return failed(format!(
            "plugin {name:?} function {function:?} wrote a response too large (over {} MiB){stderr_note}",
            STDOUT_CAP >> 20
        ));
    }
    if first_line.is_empty() {
        return failed(format!(
            "plugin {name:?} function {function:?} wrote no response{stderr_note}"
        ));
    }
    let Some(response) = response else {
        return failed(format!(
            "plugin {name:?} function {function:?} wrote a response that is not JSON: {:?}{stderr_note}",
            shorten(first_line, RESPONSE_QUOTE)
        ));
    };
    match response.get("ok") {
        Some(Value::Bool(true)) => Ok(response.get("result").cloned().unwrap_or(Value::Null)),
        Some(Value::Bool(false)) => failed(format!(
            "plugin {name:?} function {function:?} failed: {}{stderr_note}",
            reported_error.unwrap_or_default()
        )),
        _ => failed(format!(
            "plugin {name:?} function {function:?} wrote a response without \"ok\": true or \
             false: {:?}{stderr_note}",
            shorten(first_line, RESPONSE_QUOTE)
        )),
    }
}

/// The `error` of an `ok: false` response as text.
fn error_text(error: Option<&Value>) -> String {
    match error {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        None | Some(Value::Null) | Some(Value::String(_)) => "no error message".to_string(),
        Some(other) => other.to_string(),
    }
}
