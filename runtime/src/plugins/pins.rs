//! Pins: the SHA-256 of the plugin's files (its executable, its scripts) written in its
//! manifest, so that a signature of `plugin.json` covers the code that runs too. Checked
//! before every start; required in strict signature mode (see docs/plugins.md, "Pins").

use std::path::{Component, Path};

use serde_json::{Map, Value};

use super::Manifest;

/// One pinned file: its path relative to the plugin directory, as the manifest writes it
/// (without `./`), and its SHA-256 as 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub file: String,
    pub sha256: String,
}

/// The prefix of a pin's value: `"sha256:<64 lowercase hex digits>"`.
const PREFIX: &str = "sha256:";

/// Parses the manifest's `pins` (absent: none): an object of relative file paths inside the
/// plugin directory to `"sha256:<hex>"`.
pub(super) fn parse(value: Option<&Value>) -> Result<Vec<Pin>, String> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err("pins must be an object of file paths to \"sha256:<hex>\"".into()),
    };
    obj.iter()
        .map(|(file, digest)| {
            let file = relative(file)
                .ok_or_else(|| format!("pins: {file:?} is not a path inside the plugin directory"))?;
            let sha256 = digest
                .as_str()
                .and_then(|d| d.strip_prefix(PREFIX))
                .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .ok_or_else(|| {
                    format!("pins: the pin of {file:?} must be \"sha256:\" and 64 lowercase hex digits, not {digest}")
                })?;
            Ok(Pin {
                file,
                sha256: sha256.to_string(),
            })
        })
        .collect()
}

/// `path` as a normal relative path (`./a/b` is `a/b`), or `None` when it is absolute, empty
/// or climbs out with `..`.
fn relative(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl Manifest {
    /// Checks every pinned file against its pin (before each start of the plugin): an error
    /// names the file, with the expected and the actual digest.
    pub fn verify_pins(&self) -> Result<(), String> {
        for pin in &self.pins {
            let actual = crate::files::sha256_regular(&self.dir.join(&pin.file))
                .map_err(|e| format!("cannot read its pinned file {}: {e}", pin.file))?;
            if actual != pin.sha256 {
                return Err(format!(
                    "its file {} does not match the manifest's pin: expected sha256:{}, found sha256:{actual}",
                    pin.file, pin.sha256
                ));
            }
        }
        Ok(())
    }

    /// The files of `command` inside the plugin directory (the program when it is there, and
    /// each argument naming a file there), as pins name them.
    pub fn command_files(&self) -> Vec<String> {
        let mut files = Vec::new();
        for (i, part) in self.command.iter().enumerate() {
            let path = Path::new(part);
            let inside = if i == 0 && path.is_absolute() {
                path.strip_prefix(&self.dir)
                    .ok()
                    .and_then(|p| p.to_str())
                    .and_then(relative)
            } else {
                relative(part).filter(|rel| self.dir.join(rel).is_file())
            };
            if let Some(rel) = inside.filter(|rel| !files.contains(rel)) {
                files.push(rel);
            }
        }
        files
    }

    /// Strict signature mode's rule: at least one pin, and a pin for each of
    /// [`Manifest::command_files`].
    pub fn require_pins(&self) -> Result<(), String> {
        if self.pins.is_empty() {
            return Err("its manifest pins no file (run `aether plugins pin DIR`, then sign plugin.json); strict signature mode runs pinned plugins only".into());
        }
        let unpinned: Vec<String> = self
            .command_files()
            .into_iter()
            .filter(|f| !self.pins.iter().any(|p| &p.file == f))
            .collect();
        if !unpinned.is_empty() {
            return Err(format!(
                "its manifest does not pin {} (run `aether plugins pin DIR`, then sign plugin.json)",
                unpinned.join(", ")
            ));
        }
        Ok(())
    }
}

/// `aether plugins pin DIR`: the manifest text of the plugin in `dir` with `pins` set to the
/// current SHA-256 of its command's files and of the files it already pins (the other
/// fields kept as they are, in their order). Returns the new text and the pins.
pub fn pin_manifest(dir: &Path) -> Result<(String, Vec<Pin>), String> {
    let path = dir.join(super::MANIFEST_FILE);
    let text = crate::files::read_regular(&path, Some(1 << 20))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| format!("cannot read {}", path.display()))?;
    let manifest = Manifest::load(dir)?;
    let mut files = manifest.command_files();
    for pin in &manifest.pins {
        if !files.contains(&pin.file) {
            files.push(pin.file.clone());
        }
    }
    if files.is_empty() {
        return Err(format!(
            "{}: no file of the plugin's command is in its directory; list the files to pin under \"pins\" (any digest, say \"sha256:\" and 64 zeros) and run this again",
            path.display()
        ));
    }
    let mut pins = Vec::new();
    let mut map = Map::new();
    for file in files {
        let sha256 = crate::files::sha256_regular(&manifest.dir.join(&file))
            .map_err(|e| format!("cannot read {file}: {e}"))?;
        map.insert(file.clone(), Value::String(format!("{PREFIX}{sha256}")));
        pins.push(Pin { file, sha256 });
    }
    let mut value: Value = serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = value
        .as_object_mut()
        .ok_or("the manifest must be a JSON object")?;
    obj.insert("pins".into(), Value::Object(map));
    let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())? + "\n";
    Ok((text, pins))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(command: &str, pins: &str) -> (tempfile::TempDir, Result<Manifest, String>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.sh"), "echo hi\n").unwrap();
        std::fs::write(
            dir.path().join("plugin.json"),
            format!(r#"{{"name": "p", "version": "1.0.0", "command": {command}{pins}}}"#),
        )
        .unwrap();
        let m = Manifest::load(dir.path());
        (dir, m)
    }

    #[test]
    fn pins_must_be_relative_paths_and_canonical_digests() {
        for bad in [
            r#", "pins": {"/etc/passwd": "sha256:00"}"#,
            r#", "pins": {"../x": "sha256:00"}"#,
            r#", "pins": {"p.sh": "sha256:ABC"}"#,
            r#", "pins": {"p.sh": 3}"#,
            r#", "pins": ["p.sh"]"#,
        ] {
            let (_d, m) = plugin(r#"["sh", "p.sh"]"#, bad);
            assert!(m.unwrap_err().starts_with("pins"), "{bad}");
        }
    }

    #[test]
    fn pinning_covers_the_command_files_and_a_change_is_named_with_both_digests() {
        let (dir, m) = plugin(r#"["sh", "./p.sh"]"#, "");
        let m = m.unwrap();
        assert_eq!(m.command_files(), vec!["p.sh".to_string()]);
        assert!(m.require_pins().unwrap_err().contains("pins no file"));
        let (text, pins) = pin_manifest(dir.path()).unwrap();
        assert_eq!(pins.len(), 1);
        std::fs::write(dir.path().join("plugin.json"), &text).unwrap();
        let m = Manifest::load(dir.path()).unwrap();
        assert_eq!(m.require_pins(), Ok(()));
        assert_eq!(m.verify_pins(), Ok(()));
        std::fs::write(dir.path().join("p.sh"), "echo evil\n").unwrap();
        let e = m.verify_pins().unwrap_err();
        assert!(e.contains("its file p.sh does not match"), "{e}");
        assert!(
            e.contains(&format!("expected sha256:{}", pins[0].sha256)),
            "{e}"
        );
        assert!(e.contains("found sha256:"), "{e}");
    }
}
