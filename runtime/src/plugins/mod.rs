//! Plugins: external commands that speak one JSON request and one JSON response over
//! stdin/stdout, found in plugin directories, run with a timeout and guarded by a
//! per-plugin circuit breaker (see docs/plugins.md).
//!
//! A plugin is a directory holding a `plugin.json` manifest. Invoking it runs the manifest's
//! `command` in that directory, writes one request line
//! `{"function":"run","args":[...],"plugin":"name"}` to its stdin, closes stdin and reads the
//! first line of its stdout: `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`.//!
//! The module's rooms: `manifest` (reading `plugin.json`), `registry` (discovery, the
//! per-plugin bookkeeping, requirements and admission of an invocation), `breaker` (the
//! circuit breaker), `pins` (the SHA-256 of its files that its manifest pins), `protocol` (the request line and the reading of a response) and
//! `process` (running the command in its own process group, with its timeout).

mod breaker;
mod manifest;
mod pins;
mod process;
mod protocol;
mod registry;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use manifest::{Manifest, MANIFEST_FILE};
pub use pins::{pin_manifest, Pin};
pub use protocol::request_line;
pub use registry::{InvokeFuture, Plugins};

/// Environment variable: default invocation timeout in seconds.
pub const ENV_INVOKE_TIMEOUT: &str = "AETHERRA_PLUGIN_INVOKE_TIMEOUT_SEC";
/// Environment variable: consecutive failures that open a plugin's circuit.
pub const ENV_CB_THRESHOLD: &str = "AETHERRA_PLUGIN_CB_THRESHOLD";
/// Environment variable: seconds an open circuit waits before letting one trial through.
pub const ENV_CB_COOLDOWN: &str = "AETHERRA_PLUGIN_CB_COOLDOWN_SEC";
/// Environment variable: extra plugin directories, separated by `:`.
pub const ENV_PLUGIN_PATH: &str = "AETHER_PLUGIN_PATH";

/// Timeouts and circuit-breaker settings for all plugins.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSettings {
    /// Timeout of an invocation when neither the call nor the manifest gives one.
    pub invoke_timeout: Duration,
    /// Consecutive failures that open a plugin's circuit (at least 1).
    pub cb_threshold: u32,
    /// How long an open circuit rejects invocations before letting one trial through.
    pub cb_cooldown: Duration,
}

impl Default for PluginSettings {
    fn default() -> PluginSettings {
        PluginSettings {
            invoke_timeout: Duration::from_secs(30),
            cb_threshold: 5,
            cb_cooldown: Duration::from_secs(60),
        }
    }
}

impl PluginSettings {
    /// The settings from `AETHERRA_PLUGIN_INVOKE_TIMEOUT_SEC`, `AETHERRA_PLUGIN_CB_THRESHOLD`
    /// and `AETHERRA_PLUGIN_CB_COOLDOWN_SEC`; unset or empty variables keep the defaults, a bad
    /// value is an error naming the variable.
    pub fn from_env() -> Result<PluginSettings, String> {
        PluginSettings::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`PluginSettings::from_env`], reading variables through `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<PluginSettings, String> {
        let mut settings = PluginSettings::default();
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = var(ENV_INVOKE_TIMEOUT) {
            settings.invoke_timeout = v
                .parse::<f64>()
                .map_err(|_| format!("{v:?} is not a number"))
                .and_then(positive_secs)
                .map_err(|e| format!("{ENV_INVOKE_TIMEOUT}: {e}"))?;
        }
        if let Some(v) = var(ENV_CB_THRESHOLD) {
            settings.cb_threshold = match v.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(format!(
                        "{ENV_CB_THRESHOLD}: {v:?} is not a whole number of at least 1"
                    ))
                }
            };
        }
        if let Some(v) = var(ENV_CB_COOLDOWN) {
            settings.cb_cooldown = v
                .parse::<f64>()
                .map_err(|_| format!("{v:?} is not a number"))
                .and_then(|secs| {
                    if secs.is_finite() && secs >= 0.0 {
                        Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
                    } else {
                        Err(format!("{v:?} must be a number of seconds of at least 0"))
                    }
                })
                .map_err(|e| format!("{ENV_CB_COOLDOWN}: {e}"))?;
        }
        Ok(settings)
    }
}

/// A positive, finite number of seconds as a duration.
pub(super) fn positive_secs(secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && secs > 0.0 {
        Duration::try_from_secs_f64(secs).map_err(|e| format!("{secs}: {e}"))
    } else {
        Err(format!("{secs} must be a number of seconds greater than 0"))
    }
}

/// A per-call `timeout` argument: `null` → `None`, a positive number of seconds → `Some`.
pub fn timeout_from_json(value: &Value) -> Result<Option<Duration>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(secs) => positive_secs(secs)
                .map(Some)
                .map_err(|e| format!("timeout: {e}")),
            None => Err(format!("timeout: {n} is not a usable number")),
        },
        other => Err(format!(
            "timeout must be a number of seconds or null, not {other}"
        )),
    }
}

/// The plugin directories in discovery order: `plugins/` beside the script (when there is a
/// script directory), `plugins/` in `cwd`, then each non-empty entry of `plugin_path` (the
/// value of `AETHER_PLUGIN_PATH`) split on `:`.
pub fn search_dirs(
    script_dir: Option<&Path>,
    cwd: &Path,
    plugin_path: Option<&str>,
) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = script_dir {
        dirs.push(dir.join("plugins"));
    }
    dirs.push(cwd.join("plugins"));
    if let Some(path) = plugin_path {
        dirs.extend(
            path.split(':')
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
        );
    }
    dirs
}

/// What went wrong with an invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum PluginErrorKind {
    /// No plugin with that name was discovered.
    NotFound,
    /// The plugin's manifest does not list the function.
    UnknownFunction,
    /// The plugin's circuit is open (or half-open with its trial in progress); nothing was run.
    CircuitOpen,
    /// The plugin did not answer in time and was killed (on Unix with every process it started).
    Timeout,
    /// The plugin could not be started, exited non-zero, answered no or invalid JSON, or
    /// answered `ok: false`.
    Failed,
}

impl PluginErrorKind {
    /// A short snake_case name of the kind.
    pub fn as_str(&self) -> &'static str {
        match self {
            PluginErrorKind::NotFound => "not_found",
            PluginErrorKind::UnknownFunction => "unknown_function",
            PluginErrorKind::CircuitOpen => "circuit_open",
            PluginErrorKind::Timeout => "timeout",
            PluginErrorKind::Failed => "failed",
        }
    }
}

/// An invocation error: its kind and a message for people.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginError {
    pub kind: PluginErrorKind,
    pub message: String,
}

impl PluginError {
    fn new(kind: PluginErrorKind, message: impl Into<String>) -> PluginError {
        PluginError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}
