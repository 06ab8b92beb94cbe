//! The discovered plugins: discovery, bookkeeping, `require: plugins:` checks and the
//! admission of an invocation (plugin, function, circuit) before its command runs.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use aether_check::spec::{PluginRequirement, VersionOp};
use serde_json::{json, Value};

use super::breaker::{Breaker, Circuit};
use super::process::run;
use super::{Manifest, PluginError, PluginErrorKind, PluginSettings, MANIFEST_FILE};

/// A discovered plugin and its bookkeeping.
#[derive(Debug)]
pub(super) struct Entry {
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
        match outcome {
            Ok(_) => entry.successes += 1,
            Err(err) => {
                entry.failures += 1;
                entry.last_error = Some(err.message.clone());
            }
        }
        entry.breaker.record(outcome.is_ok(), trial, threshold);
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
            "idempotent": m.idempotent,
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

    /// Checks a `require: plugins:` entry (parsed by the checker, see
    /// [`PluginRequirement`]) against the installed plugins: the plugin must be installed
    /// and its version satisfy every constraint.
    pub fn check_requirement(&self, req: &PluginRequirement) -> Result<(), String> {
        let name = &req.name;
        let state = self.state.borrow();
        let Some(entry) = state.plugins.get(name) else {
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
        if req.constraints.is_empty() {
            return Ok(());
        }
        let version = &entry.manifest.version;
        if version_req(req)?.matches(version) {
            Ok(())
        } else {
            Err(format!(
                "plugin {name:?} is version {version}, which does not satisfy {} \
                 (required by {:?})",
                req.constraint_text(),
                req.text
            ))
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
        self.invoke_keyed(name, function, args, timeout, None)
    }

    /// [`Plugins::invoke`] sending the idempotency key `key` in the request (docs/plugins.md).
    pub fn invoke_keyed(
        &self,
        name: &str,
        function: &str,
        args: Vec<Value>,
        timeout: Option<Duration>,
        key: Option<String>,
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
            let outcome = run(&manifest, &function, &args, timeout, key.as_deref()).await;
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

/// The semver form of a requirement's constraints (`==` is semver's `=`).
fn version_req(req: &PluginRequirement) -> Result<semver::VersionReq, String> {
    let comparators: Vec<String> = req
        .constraints
        .iter()
        .map(|c| {
            let op = match c.op {
                VersionOp::Eq => "=",
                other => other.as_str(),
            };
            format!("{op}{}", c.version)
        })
        .collect();
    semver::VersionReq::parse(&comparators.join(", "))
        .map_err(|e| format!("plugin requirement {:?}: {e}", req.text))
}
