//! Plugins: external commands that speak one JSON request and one JSON response over
//! stdin/stdout, found in plugin directories, run with a timeout and guarded by a
//! per-plugin circuit breaker (see docs/plugins.md).
//!
//! A plugin is a directory holding a `plugin.json` manifest. Invoking it runs the manifest's
//! `command` in that directory, writes one request line
//! `{"function":"run","args":[...],"plugin":"name"}` to its stdin, closes stdin and reads the
//! first line of its stdout: `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::{poll_fn, Future};
use std::path::{Component, Path, PathBuf};
use std::pin::{pin, Pin};
use std::process::{ExitStatus, Stdio};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Environment variable: default invocation timeout in seconds.
pub const ENV_INVOKE_TIMEOUT: &str = "AETHERRA_PLUGIN_INVOKE_TIMEOUT_SEC";
/// Environment variable: consecutive failures that open a plugin's circuit.
pub const ENV_CB_THRESHOLD: &str = "AETHERRA_PLUGIN_CB_THRESHOLD";
/// Environment variable: seconds an open circuit waits before letting one trial through.
pub const ENV_CB_COOLDOWN: &str = "AETHERRA_PLUGIN_CB_COOLDOWN_SEC";
/// Environment variable: extra plugin directories, separated by `:`.
pub const ENV_PLUGIN_PATH: &str = "AETHER_PLUGIN_PATH";
/// The manifest file name inside a plugin directory.
pub const MANIFEST_FILE: &str = "plugin.json";

/// The most of a plugin's stdout that is kept (the response is its first line).
const STDOUT_CAP: usize = 16 * 1024 * 1024;
/// The most of a plugin's stderr that is kept (its tail).
const STDERR_KEEP: usize = 8 * 1024;
/// The most of the stderr tail quoted in an error message.
const STDERR_QUOTE: usize = 500;
/// The most of an invalid response quoted in an error message.
const RESPONSE_QUOTE: usize = 200;
/// Linux `ETXTBSY`: the executable is still open for writing somewhere (a race with a
/// concurrent fork); spawning is retried a few times.
const ETXTBSY: i32 = 26;

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
fn positive_secs(secs: f64) -> Result<Duration, String> {
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

/// A parsed `plugin.json`.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub name: String,
    pub version: semver::Version,
    /// The program and its arguments; the program is already resolved (see [`Manifest::parse`]).
    pub command: Vec<String>,
    pub functions: Vec<String>,
    pub capabilities: Vec<String>,
    pub deterministic: bool,
    pub side_effects: bool,
    pub timeout: Option<Duration>,
    /// The plugin directory (absolute when it could be canonicalized).
    pub dir: PathBuf,
}

impl Manifest {
    /// Reads and parses `dir/plugin.json`.
    pub fn load(dir: &Path) -> Result<Manifest, String> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read: {e}"))?;
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Manifest::parse(&text, &dir)
    }

    /// Parses manifest text of the plugin in `dir`. Required: `name` (letters, digits, `_`,
    /// `-`, `.`), `version` (semver), `command` (non-empty array of strings). Optional:
    /// `functions` (default `["run"]`), `capabilities` (default `[]`), `deterministic`
    /// (default false), `side_effects` (default true), `timeout` (seconds > 0). Other fields
    /// are ignored. The program (`command[0]`) is resolved against `dir` when it contains a
    /// `/` or a file of that name exists in `dir`; otherwise it is left for a `PATH` lookup.
    pub fn parse(text: &str, dir: &Path) -> Result<Manifest, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let obj = value
            .as_object()
            .ok_or("the manifest must be a JSON object")?;

        let name = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("name must be a string".into()),
            None => return Err("name is missing".into()),
        };
        if !valid_name(&name) {
            return Err(format!(
                "name {name:?} must be non-empty and use only letters, digits, '_', '-' and '.'"
            ));
        }
        let version = match obj.get("version") {
            Some(Value::String(s)) => semver::Version::parse(s.trim())
                .map_err(|e| format!("version {s:?} is not a semantic version: {e}"))?,
            Some(_) => return Err("version must be a string such as \"1.0.0\"".into()),
            None => return Err("version is missing".into()),
        };
        let mut command = match obj.get("command") {
            Some(v) => string_list(v, "command")?,
            None => return Err("command is missing".into()),
        };
        match command.first() {
            None => return Err("command must name a program".into()),
            Some(program) if program.is_empty() => return Err("command must name a program".into()),
            Some(program) => {
                let relative: PathBuf = Path::new(program)
                    .components()
                    .filter(|c| !matches!(c, Component::CurDir))
                    .collect();
                let local = dir.join(relative);
                if program.contains('/') || local.is_file() {
                    command[0] = local.to_string_lossy().into_owned();
                }
            }
        }
        let functions = match obj.get("functions") {
            Some(v) => string_list(v, "functions")?,
            None => vec!["run".to_string()],
        };
        if functions.iter().any(|f| f.is_empty()) {
            return Err("functions must not contain an empty name".into());
        }
        let capabilities = match obj.get("capabilities") {
            Some(v) => string_list(v, "capabilities")?,
            None => Vec::new(),
        };
        let deterministic = flag(obj, "deterministic", false)?;
        let side_effects = flag(obj, "side_effects", true)?;
        let timeout = match obj.get("timeout") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_f64()
                    .ok_or_else(|| format!("timeout {n} is not a usable number"))
                    .and_then(positive_secs)
                    .map_err(|e| format!("timeout: {e}"))?,
            ),
            Some(_) => return Err("timeout must be a number of seconds".into()),
        };
        Ok(Manifest {
            name,
            version,
            command,
            functions,
            capabilities,
            deterministic,
            side_effects,
            timeout,
            dir: dir.to_path_buf(),
        })
    }
}

/// Whether `name` is a usable plugin name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A JSON array of strings.
fn string_list(value: &Value, field: &str) -> Result<Vec<String>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("{field} must be an array of strings"))?;
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{field} must be an array of strings, found {item}"))
        })
        .collect()
}

/// An optional boolean field.
fn flag(obj: &Map<String, Value>, field: &str, default: bool) -> Result<bool, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{field} must be true or false")),
    }
}

/// The state of a plugin's circuit breaker.
#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    /// When the circuit last opened; `None` while closed.
    opened_at: Option<Instant>,
    /// Whether the half-open trial invocation is under way.
    trial_in_flight: bool,
}

/// The circuit as reported to scripts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Circuit {
    Closed,
    Open,
    HalfOpen,
}

impl Circuit {
    fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half-open",
        }
    }
}

impl Breaker {
    fn circuit(&self, cooldown: Duration) -> Circuit {
        match self.opened_at {
            None => Circuit::Closed,
            Some(at) if at.elapsed() >= cooldown => Circuit::HalfOpen,
            Some(_) => Circuit::Open,
        }
    }
}

/// A discovered plugin and its bookkeeping.
#[derive(Debug)]
struct Entry {
    manifest: Manifest,
    breaker: Breaker,
    invocations: u64,
    successes: u64,
    failures: u64,
    rejected: u64,
    last_error: Option<String>,
    last_duration: Option<Duration>,
}

#[derive(Debug)]
struct State {
    settings: PluginSettings,
    dirs: Vec<PathBuf>,
    plugins: BTreeMap<String, Entry>,
}

impl State {
    /// Records the outcome of an invocation that ran the command.
    fn record(
        &mut self,
        name: &str,
        trial: bool,
        elapsed: Duration,
        outcome: &Result<Value, PluginError>,
    ) {
        let threshold = self.settings.cb_threshold.max(1);
        let Some(entry) = self.plugins.get_mut(name) else {
            return;
        };
        entry.last_duration = Some(elapsed);
        if trial {
            entry.breaker.trial_in_flight = false;
        }
        match outcome {
            Ok(_) => {
                entry.successes += 1;
                entry.breaker.consecutive_failures = 0;
                entry.breaker.opened_at = None;
            }
            Err(err) => {
                entry.failures += 1;
                entry.last_error = Some(err.message.clone());
                let breaker = &mut entry.breaker;
                breaker.consecutive_failures = breaker.consecutive_failures.saturating_add(1);
                // A failed trial re-opens the circuit (restarting the cooldown); otherwise it
                // opens once the failures reach the threshold.
                let reached =
                    breaker.opened_at.is_none() && breaker.consecutive_failures >= threshold;
                if trial || reached {
                    breaker.opened_at = Some(Instant::now());
                }
            }
        }
    }
}

/// The discovered plugins: a cheap-to-clone handle onto shared state (the VM is
/// single-threaded).
#[derive(Clone)]
pub struct Plugins {
    state: Rc<RefCell<State>>,
}

impl fmt::Debug for Plugins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugins")
            .field("names", &self.names())
            .finish()
    }
}

/// The future returned by [`Plugins::invoke`].
pub type InvokeFuture = Pin<Box<dyn Future<Output = Result<Value, PluginError>>>>;

impl Plugins {
    /// Finds plugins in `dirs`, in order: each immediate subdirectory holding a `plugin.json`
    /// is a plugin, and the first plugin found with a name wins. Directories that do not exist
    /// are skipped silently; unreadable directories and malformed manifests are skipped with
    /// a warning in the returned list.
    pub fn discover(dirs: &[PathBuf], settings: PluginSettings) -> (Plugins, Vec<String>) {
        let mut warnings = Vec::new();
        let mut plugins: BTreeMap<String, Entry> = BTreeMap::new();
        let mut seen_dirs = HashSet::new();
        let mut searched = Vec::new();
        for dir in dirs {
            let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            if !seen_dirs.insert(canonical.clone()) {
                continue;
            }
            searched.push(dir.clone());
            if !canonical.is_dir() {
                continue;
            }
            let mut subdirs: Vec<PathBuf> = match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_dir() && p.join(MANIFEST_FILE).is_file())
                    .collect(),
                Err(e) => {
                    warnings.push(format!(
                        "plugins: cannot read plugin directory {}: {e}",
                        dir.display()
                    ));
                    continue;
                }
            };
            subdirs.sort();
            let mut found_here = HashSet::new();
            for sub in subdirs {
                let manifest = match Manifest::load(&sub) {
                    Ok(m) => m,
                    Err(e) => {
                        warnings.push(format!(
                            "plugins: skipping {}: {e}",
                            sub.join(MANIFEST_FILE).display()
                        ));
                        continue;
                    }
                };
                if plugins.contains_key(&manifest.name) {
                    if found_here.contains(&manifest.name) {
                        warnings.push(format!(
                            "plugins: skipping {}: another plugin in {} is also named {:?}",
                            sub.join(MANIFEST_FILE).display(),
                            dir.display(),
                            manifest.name
                        ));
                    }
                    continue;
                }
                found_here.insert(manifest.name.clone());
                plugins.insert(
                    manifest.name.clone(),
                    Entry {
                        manifest,
                        breaker: Breaker::default(),
                        invocations: 0,
                        successes: 0,
                        failures: 0,
                        rejected: 0,
                        last_error: None,
                        last_duration: None,
                    },
                );
            }
        }
        let state = State {
            settings,
            dirs: searched,
            plugins,
        };
        (
            Plugins {
                state: Rc::new(RefCell::new(state)),
            },
            warnings,
        )
    }

    /// Keep only the plugins whose manifest `check` accepts (strict signature mode keeps
    /// signed manifests only); returns a warning per plugin dropped.
    pub fn retain(&self, check: impl Fn(&Manifest) -> Result<(), String>) -> Vec<String> {
        let mut warnings = Vec::new();
        self.state
            .borrow_mut()
            .plugins
            .retain(|name, entry| match check(&entry.manifest) {
                Ok(()) => true,
                Err(e) => {
                    warnings.push(format!("plugin `{name}` is not loaded: {e}"));
                    false
                }
            });
        warnings
    }

    /// The names of the discovered plugins, sorted.
    pub fn names(&self) -> Vec<String> {
        self.state.borrow().plugins.keys().cloned().collect()
    }

    /// The settings in force.
    pub fn settings(&self) -> PluginSettings {
        self.state.borrow().settings.clone()
    }

    /// `[{name, version, capabilities, circuit}]`, sorted by name.
    pub fn list(&self) -> Vec<Value> {
        let state = self.state.borrow();
        let cooldown = state.settings.cb_cooldown;
        state
            .plugins
            .values()
            .map(|e| {
                json!({
                    "name": e.manifest.name,
                    "version": e.manifest.version.to_string(),
                    "capabilities": e.manifest.capabilities,
                    "circuit": e.breaker.circuit(cooldown).as_str(),
                })
            })
            .collect()
    }

    /// The state of the named plugin, or `None` when there is no such plugin.
    pub fn status(&self, name: &str) -> Option<Value> {
        let state = self.state.borrow();
        let cooldown = state.settings.cb_cooldown;
        let e = state.plugins.get(name)?;
        let m = &e.manifest;
        let timeout = m.timeout.unwrap_or(state.settings.invoke_timeout);
        let finished = e.successes + e.failures;
        let success_rate = if finished == 0 {
            Value::Null
        } else {
            json!(e.successes as f64 / finished as f64)
        };
        Some(json!({
            "name": m.name,
            "version": m.version.to_string(),
            "circuit": e.breaker.circuit(cooldown).as_str(),
            "consecutive_failures": e.breaker.consecutive_failures,
            "invocations": e.invocations,
            "successes": e.successes,
            "failures": e.failures,
            "rejected": e.rejected,
            "success_rate": success_rate,
            "last_error": e.last_error,
            "last_duration_ms": e.last_duration.map(|d| d.as_secs_f64() * 1000.0),
            "deterministic": m.deterministic,
            "side_effects": m.side_effects,
            "functions": m.functions,
            "capabilities": m.capabilities,
            "timeout_s": timeout.as_secs_f64(),
            "dir": m.dir.to_string_lossy(),
        }))
    }

    /// The manifest of the named plugin.
    pub fn manifest(&self, name: &str) -> Option<Manifest> {
        self.state
            .borrow()
            .plugins
            .get(name)
            .map(|e| e.manifest.clone())
    }

    /// Checks a `require: plugins:` entry such as `"sysinfo"`, `"sysinfo==1.2.0"` or
    /// `"sysinfo>=1.0,<2"` (operators `==`, `>=`, `<=`, `>`, `<`; a comma means "and").
    pub fn check_requirement(&self, req: &str) -> Result<(), String> {
        let (name, constraint) = parse_requirement(req)?;
        let state = self.state.borrow();
        let Some(entry) = state.plugins.get(&name) else {
            let searched: Vec<String> =
                state.dirs.iter().map(|d| d.display().to_string()).collect();
            let searched = if searched.is_empty() {
                "no directories".to_string()
            } else {
                searched.join(", ")
            };
            return Err(format!(
                "required plugin {name:?} is not installed (searched {searched})"
            ));
        };
        match constraint {
            None => Ok(()),
            Some((text, version_req)) => {
                let version = &entry.manifest.version;
                if version_req.matches(version) {
                    Ok(())
                } else {
                    Err(format!(
                        "plugin {name:?} is version {version}, which does not satisfy {text} \
                         (required by {:?})",
                        req.trim()
                    ))
                }
            }
        }
    }

    /// Invokes `function` of plugin `name` with `args`. The plugin, the function and the
    /// circuit breaker are checked now (their errors come back as an already-failed future,
    /// without running anything); the command runs on the current tokio runtime when the
    /// future is polled, and the outcome is recorded in the breaker when it finishes. The
    /// timeout is `timeout`, else the manifest's, else the settings'.
    pub fn invoke(
        &self,
        name: &str,
        function: &str,
        args: Vec<Value>,
        timeout: Option<Duration>,
    ) -> InvokeFuture {
        let admitted = self.admit(name, function, timeout);
        let (manifest, timeout, trial) = match admitted {
            Ok(a) => a,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let mut guard = TrialGuard {
            state: Rc::clone(&self.state),
            name: name.to_string(),
            trial,
        };
        let function = function.to_string();
        Box::pin(async move {
            let started = Instant::now();
            let outcome = run(&manifest, &function, &args, timeout).await;
            guard.finish(started.elapsed(), &outcome);
            outcome
        })
    }

    /// Checks the plugin, the function and the breaker; counts the invocation.
    fn admit(
        &self,
        name: &str,
        function: &str,
        timeout: Option<Duration>,
    ) -> Result<(Manifest, Duration, bool), PluginError> {
        let mut state = self.state.borrow_mut();
        let settings = state.settings.clone();
        if !state.plugins.contains_key(name) {
            let names: Vec<&str> = state.plugins.keys().map(String::as_str).collect();
            let installed = if names.is_empty() {
                "none installed".to_string()
            } else {
                names.join(", ")
            };
            return Err(PluginError::new(
                PluginErrorKind::NotFound,
                format!("no plugin named {name:?} (installed: {installed})"),
            ));
        }
        let Some(entry) = state.plugins.get_mut(name) else {
            return Err(PluginError::new(
                PluginErrorKind::NotFound,
                format!("no plugin {name:?}"),
            ));
        };
        if !entry.manifest.functions.iter().any(|f| f == function) {
            return Err(PluginError::new(
                PluginErrorKind::UnknownFunction,
                format!(
                    "plugin {name:?} has no function {function:?} (functions: {})",
                    entry.manifest.functions.join(", ")
                ),
            ));
        }
        let mut trial = false;
        match entry.breaker.circuit(settings.cb_cooldown) {
            Circuit::Closed => {}
            Circuit::Open => {
                entry.rejected += 1;
                let wait = entry
                    .breaker
                    .opened_at
                    .map(|at| settings.cb_cooldown.saturating_sub(at.elapsed()))
                    .unwrap_or_default();
                return Err(PluginError::new(
                    PluginErrorKind::CircuitOpen,
                    format!(
                        "plugin {name:?} is unavailable: its circuit is open after {} \
                         consecutive failures (last error: {}); retry in {:.1}s",
                        entry.breaker.consecutive_failures,
                        entry.last_error.as_deref().unwrap_or("none"),
                        wait.as_secs_f64()
                    ),
                ));
            }
            Circuit::HalfOpen if entry.breaker.trial_in_flight => {
                entry.rejected += 1;
                return Err(PluginError::new(
                    PluginErrorKind::CircuitOpen,
                    format!(
                        "plugin {name:?} is unavailable: its circuit is half-open and a trial \
                         invocation is in progress"
                    ),
                ));
            }
            Circuit::HalfOpen => {
                entry.breaker.trial_in_flight = true;
                trial = true;
            }
        }
        entry.invocations += 1;
        let timeout = timeout
            .or(entry.manifest.timeout)
            .unwrap_or(settings.invoke_timeout);
        Ok((entry.manifest.clone(), timeout, trial))
    }
}

/// Records an invocation's outcome; if the future is dropped before finishing, releases the
/// half-open trial slot so that another invocation may try.
struct TrialGuard {
    state: Rc<RefCell<State>>,
    name: String,
    trial: bool,
}

impl TrialGuard {
    fn finish(&mut self, elapsed: Duration, outcome: &Result<Value, PluginError>) {
        if let Ok(mut state) = self.state.try_borrow_mut() {
            state.record(&self.name, self.trial, elapsed, outcome);
        }
        self.trial = false;
    }
}

impl Drop for TrialGuard {
    fn drop(&mut self) {
        if !self.trial {
            return;
        }
        if let Ok(mut state) = self.state.try_borrow_mut() {
            if let Some(entry) = state.plugins.get_mut(&self.name) {
                entry.breaker.trial_in_flight = false;
            }
        }
    }
}

/// Splits a requirement into the plugin name and its version constraint.
fn parse_requirement(req: &str) -> Result<(String, Option<(String, semver::VersionReq)>), String> {
    let req = req.trim();
    let split = req.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')));
    let (name, rest) = match split {
        Some(i) => (&req[..i], req[i..].trim()),
        None => (req, ""),
    };
    if name.is_empty() {
        return Err(format!(
            "plugin requirement {req:?} does not start with a plugin name"
        ));
    }
    if rest.is_empty() {
        return Ok((name.to_string(), None));
    }
    let mut comparators = Vec::new();
    for part in rest.split(',') {
        let part = part.trim();
        let (op, version) = ["==", ">=", "<=", ">", "<"]
            .iter()
            .find_map(|op| part.strip_prefix(op).map(|v| (*op, v.trim())))
            .ok_or_else(|| {
                format!(
                    "plugin requirement {req:?}: {part:?} must start with one of ==, >=, <=, >, <"
                )
            })?;
        if version.is_empty()
            || !version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        {
            return Err(format!(
                "plugin requirement {req:?}: {part:?} needs a version number"
            ));
        }
        let op = if op == "==" { "=" } else { op };
        comparators.push(format!("{op}{version}"));
    }
    let version_req = semver::VersionReq::parse(&comparators.join(", "))
        .map_err(|e| format!("plugin requirement {req:?}: {e}"))?;
    Ok((name.to_string(), Some((rest.to_string(), version_req))))
}

/// The request line sent to a plugin: compact JSON, keys in the order function, args, plugin.
pub fn request_line(plugin: &str, function: &str, args: &[Value]) -> String {
    let function = Value::String(function.to_string());
    let args = Value::Array(args.to_vec());
    let plugin = Value::String(plugin.to_string());
    format!("{{\"function\":{function},\"args\":{args},\"plugin\":{plugin}}}\n")
}

/// Runs the plugin's command once and interprets its answer.
async fn run(
    manifest: &Manifest,
    function: &str,
    args: &[Value],
    timeout: Duration,
) -> Result<Value, PluginError> {
    let name = &manifest.name;
    let failed = |msg: String| PluginError::new(PluginErrorKind::Failed, msg);
    let Some((program, program_args)) = manifest.command.split_first() else {
        return Err(failed(format!("plugin {name:?} has no command")));
    };
    let request = request_line(name, function, args);

    let mut child = spawn(program, program_args, &manifest.dir)
        .await
        .map_err(|e| failed(format!("plugin {name:?}: cannot start {program:?}: {e}")))?;
    // Declared after `child` so that it is dropped first: if this future is dropped (the
    // caller gave up), the group is killed while the plugin is still unreaped.
    let mut group = ProcessGroup::of(&child);
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let exchange = async {
        // Once the plugin has exited, whatever it left running in its group is killed, which
        // also closes the pipes such leftovers may hold; then the plugin is reaped.
        let (out, err) = communicate(
            stdin,
            stdout,
            stderr,
            request.as_bytes(),
            group.kill_after_exit(),
        )
        .await;
        let status = child.wait().await;
        (out, err, status)
    };
    let (out, err, status) = match tokio::time::timeout(timeout, exchange).await {
        Ok(done) => done,
        Err(_) => {
            group.kill();
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            return Err(PluginError::new(
                PluginErrorKind::Timeout,
                format!(
                    "plugin {name:?} function {function:?} timed out after {}s and was killed",
                    trim_secs(timeout)
                ),
            ));
        }
    };
    let stderr_note = stderr_tail(&err);
    let status = status.map_err(|e| {
        failed(format!(
            "plugin {name:?}: cannot wait for {program:?}: {e}{stderr_note}"
        ))
    })?;
    interpret(name, function, status, &out, &stderr_note)
}

/// Spawns the command in `dir` with piped stdio, retrying briefly on `ETXTBSY`.
async fn spawn(
    program: &str,
    args: &[String],
    dir: &Path,
) -> std::io::Result<tokio::process::Child> {
    let mut attempt = 0;
    loop {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The leader of a new process group (whose id is its pid), so that everything it
        // starts can be killed with it (see `ProcessGroup`).
        #[cfg(unix)]
        command.process_group(0);
        let result = command.spawn();
        match result {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// The process group of a running plugin. On Unix the plugin is spawned as the leader of a
/// new process group (its id is the plugin's pid), which every process it starts joins unless
/// it moves itself elsewhere (`setsid`, `setpgid`); killing the group (`SIGKILL` to `-pgid`)
/// kills the plugin and all of those, where killing the plugin alone would leave, say, the
/// `sleep` that a shell script started running on.
///
/// Dropping it kills the group unless [`ProcessGroup::kill`] or
/// [`ProcessGroup::kill_after_exit`] already has. The group is only ever signalled while the
/// plugin is not reaped (running, or a zombie): then its pid, and so the group id, cannot have
/// been reused by an unrelated process. `run` keeps to that by killing the group before it
/// reaps the plugin and by dropping this before the `Child`. Elsewhere it does nothing.
struct ProcessGroup {
    /// The group id while it may still need killing.
    #[cfg(unix)]
    pgid: Option<libc::pid_t>,
}

impl ProcessGroup {
    /// The group of a just-spawned (so not yet reaped) plugin.
    fn of(child: &tokio::process::Child) -> ProcessGroup {
        #[cfg(unix)]
        {
            let pgid = child
                .id()
                .and_then(|pid| libc::pid_t::try_from(pid).ok())
                .filter(|&pgid| pgid > 1);
            if let Some(pgid) = pgid {
                interrupts::track(pgid);
            }
            ProcessGroup { pgid }
        }
        #[cfg(not(unix))]
        {
            let _ = child;
            ProcessGroup {}
        }
    }

    /// Sends `SIGKILL` to every process of the group, once. Call only while the plugin is
    /// not reaped.
    fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid.take() {
            interrupts::untrack(pgid);
            // SAFETY: kill(2) takes plain integers and touches no memory of ours. A negative
            // pid addresses the process group; `pgid > 1`, so it is never -1 ("every process").
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    /// Waits until the plugin has exited, without reaping it, then kills what is left of its
    /// group (background processes it did not wait for). Afterwards nothing is left to kill, so
    /// the plugin may be reaped. Finishes at once where there is no group.
    async fn kill_after_exit(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid {
            if leader_exited(pgid).await {
                self.kill();
            } else {
                // Reaped by someone else, so the group id may already be reused: leave it.
                interrupts::untrack(pgid);
                self.pgid = None;
            }
        }
    }
}

/// A plugin runs in its own process group, so a Ctrl-C at the terminal reaches only
/// `aether`. These handlers pass the interrupt on: on SIGINT, SIGTERM or SIGHUP they kill the
/// groups of the plugins running now, then let the signal end `aether` as it would have.
/// The live groups sit in lock-free slots, because a signal handler may only do
/// async-signal-safe things (atomic loads and kill(2) are).
#[cfg(unix)]
mod interrupts {
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::sync::Once;

    /// More plugins running at once than this are not tracked (their groups are still
    /// killed on timeout and when the invocation ends; only an interrupt misses them).
    const SLOTS: usize = 64;
    static LIVE: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
    static INSTALL: Once = Once::new();

    pub(super) fn track(pgid: libc::pid_t) {
        INSTALL.call_once(install);
        for slot in &LIVE {
            if slot
                .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
        }
    }

    pub(super) fn untrack(pgid: libc::pid_t) {
        for slot in &LIVE {
            let _ = slot.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    extern "C" fn on_terminate(sig: libc::c_int) {
        for slot in &LIVE {
            let pgid = slot.load(Ordering::SeqCst);
            if pgid > 1 {
                // SAFETY: kill(2) is async-signal-safe and takes plain integers.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
        // SAFETY: signal(2) and raise(3) are async-signal-safe: restore the default action
        // and deliver the signal again, so `aether` ends the way it would have.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    fn install() {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: installs a handler that only does async-signal-safe work. A signal the
            // process was told to ignore (`nohup`, a background job) stays ignored.
            unsafe {
                let handler =
                    on_terminate as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t;
                let previous = libc::signal(sig, handler);
                if previous == libc::SIG_IGN {
                    libc::signal(sig, libc::SIG_IGN);
                }
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until our child `pid` has exited and is a zombie, leaving it for `Child::wait` to
/// reap (`waitid` with `WNOWAIT`); wakes on `SIGCHLD` (polls every 10 ms if that cannot be
/// watched). False if the child cannot be waited for: someone else reaped it.
#[cfg(unix)]
async fn leader_exited(pid: libc::pid_t) -> bool {
    use tokio::signal::unix::{signal, SignalKind};
    // Watching starts before the first check, so an exit in between is not missed.
    let mut sigchld = signal(SignalKind::child()).ok();
    loop {
        // SAFETY: `siginfo_t` is plain data, for which all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable `siginfo_t`; `WNOWAIT` leaves the child waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc != 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        // SAFETY: after a successful `waitid`, `si_pid` is set (0: nothing has exited yet).
        if unsafe { info.si_pid() } != 0 {
            return true;
        }
        match sigchld.as_mut() {
            Some(signals) => {
                if signals.recv().await.is_none() {
                    sigchld = None;
                }
            }
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Writes the request (then closes stdin) while reading stdout and stderr to their ends, and
/// runs `exited` (the plugin exited and what it left in its group was killed) alongside, to
/// its end too: the pipes that leftovers hold open end with them, so the reads end as well.
async fn communicate(
    stdin: Option<tokio::process::ChildStdin>,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    request: &[u8],
    exited: impl Future<Output = ()>,
) -> (Vec<u8>, Vec<u8>) {
    let write = async move {
        if let Some(mut stdin) = stdin {
            // A plugin may exit without reading its input; its answer decides the outcome.
            let _ = stdin.write_all(request).await;
            let _ = stdin.shutdown().await;
        }
    };
    let read_out = read_capped(stdout, STDOUT_CAP, false);
    let read_err = read_capped(stderr, STDERR_KEEP, true);
    let mut write = pin!(write);
    let mut read_out = pin!(read_out);
    let mut read_err = pin!(read_err);
    let mut exited = pin!(exited);
    let mut written = false;
    let mut cleaned_up = false;
    let mut out = None;
    let mut err = None;
    poll_fn(|cx| {
        if !written && write.as_mut().poll(cx).is_ready() {
            written = true;
        }
        if !cleaned_up && exited.as_mut().poll(cx).is_ready() {
            cleaned_up = true;
        }
        if out.is_none() {
            if let Poll::Ready(v) = read_out.as_mut().poll(cx) {
                out = Some(v);
            }
        }
        if err.is_none() {
            if let Poll::Ready(v) = read_err.as_mut().poll(cx) {
                err = Some(v);
            }
        }
        if written && cleaned_up && out.is_some() && err.is_some() {
            Poll::Ready((
                out.take().unwrap_or_default(),
                err.take().unwrap_or_default(),
            ))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Reads `reader` to its end, keeping its first `cap` bytes (or its last `cap` with `tail`).
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize, tail: bool) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return kept;
    };
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = &buf[..n];
                if tail {
                    kept.extend_from_slice(chunk);
                    if kept.len() > cap {
                        let excess = kept.len() - cap;
                        kept.drain(..excess);
                    }
                } else if kept.len() < cap {
                    let room = cap - kept.len();
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    }
    kept
}

/// `" (stderr: ...)"` with the trimmed tail of stderr, or nothing when it is empty.
fn stderr_tail(stderr: &[u8]) -> String {
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
fn shorten(text: &str, max: usize) -> String {
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
fn trim_secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Turns the exit status and stdout of a finished plugin into its result.
fn interpret(
    name: &str,
    function: &str,
    status: ExitStatus,
    stdout: &[u8],
    stderr_note: &str,
) -> Result<Value, PluginError> {
    let failed = |msg: String| Err(PluginError::new(PluginErrorKind::Failed, msg));
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
