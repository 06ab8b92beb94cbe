//! `plugin.json`: the manifest of a plugin directory, parsed and validated.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::positive_secs;

/// The manifest file name inside a plugin directory.
pub const MANIFEST_FILE: &str = "plugin.json";

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
    /// A repeated call with the same idempotency key has no further effect: in a durable run
    /// an interrupted call is retried with its key instead of stopping (docs/durable.md).
    pub idempotent: bool,
    pub timeout: Option<Duration>,
    /// The SHA-256 pins of its files (`pins`, see [`super::pins`]).
    pub pins: Vec<super::Pin>,
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
    /// (default false), `side_effects` (default true), `idempotent` (default false), `timeout`
    /// (seconds > 0), `pins` (file path to `"sha256:<hex>"`). Other fields
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
        let idempotent = flag(obj, "idempotent", false)?;
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
        let pins = super::pins::parse(obj.get("pins"))?;
        Ok(Manifest {
            name,
            version,
            command,
            functions,
            capabilities,
            deterministic,
            side_effects,
            idempotent,
            timeout,
            pins,
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
