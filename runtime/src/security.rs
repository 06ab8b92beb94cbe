//! The `security` module: signature verification of files, capability checks against what
//! the script declares, and the network allowlist (`AETHERRA_NET_STRICT`,
//! `AETHERRA_NETWORK_ALLOWLIST`).

use std::path::Path;

use aether_sign::{Keyring, Revocations};
use aether_vm::{Map, Value};

/// The keys a verification trusts (loaded by the CLI from `.aetherra/keys/trusted/` or
/// `--keyring`).
#[derive(Clone, Debug)]
pub struct Trust {
    pub keyring: Keyring,
    pub revoked: Revocations,
}

/// The most `security.verify_signature` reads: a signed script or manifest is text far
/// smaller than this; a larger file is refused unread past this many bytes.
pub const VERIFY_MAX_BYTES: u64 = 4 << 20;

/// `security.verify_signature(path)`: `{ok, reason, key_id}`; `reason` is `ok` or one of
/// the reasons of `aether verify` (`missing`, `mismatch`, `unknown-key`, ...), plus
/// `no-keyring` (the keyring could not be loaded) and `unreadable`. It reads at most
/// [`VERIFY_MAX_BYTES`] (4 MiB) of a regular file, opened without blocking: a path that does
/// not exist, cannot be opened, is not a regular file (FIFO, device, directory), is larger
/// than that or is not UTF-8 is `unreadable`, one reason for all, so the call tells a
/// script nothing about files it cannot read.
pub fn verify_signature(path: &Path, trust: Option<&Trust>) -> Value {
    let result = |ok: bool, reason: &str, key_id: Option<&str>| {
        let m: Map = [
            ("ok", Value::Bool(ok)),
            ("reason", Value::from(reason)),
            ("key_id", key_id.map_or(Value::Null, Value::from)),
        ]
        .into_iter()
        .collect();
        Value::from(m)
    };
    let Some(trust) = trust else {
        return result(false, "no-keyring", None);
    };
    let text = match crate::files::read_regular(path, Some(VERIFY_MAX_BYTES))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    {
        Some(t) => t,
        None => return result(false, "unreadable", None),
    };
    let v = aether_sign::verify(&text, &trust.keyring, &trust.revoked);
    if v.is_ok() {
        result(true, "ok", v.key_id())
    } else {
        result(false, v.reason(), v.key_id())
    }
}

/// The detached signature file of a plugin manifest: `plugin.json.sig`.
pub const MANIFEST_SIGNATURE: &str = "plugin.json.sig";

/// Verify a plugin manifest against its detached signature: the `.sig` file holds the
/// `# @signature ed25519 <key-id> <base64>` line that `aether sign plugin.json` writes,
/// over the manifest's text (CRLF normalised), exactly as a script's header covers its
/// body.
pub fn verify_manifest(dir: &Path, trust: &Trust) -> Result<(), String> {
    let manifest = std::fs::read_to_string(dir.join("plugin.json"))
        .map_err(|e| format!("cannot read plugin.json: {e}"))?;
    let sig = match std::fs::read_to_string(dir.join(MANIFEST_SIGNATURE)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "its manifest is not signed (no {MANIFEST_SIGNATURE}); strict signature mode loads signed plugins only"
            ))
        }
        Err(e) => return Err(format!("cannot read {MANIFEST_SIGNATURE}: {e}")),
    };
    let header = sig.lines().next().unwrap_or("").trim_end();
    let v = aether_sign::verify(
        &format!("{header}\n{manifest}"),
        &trust.keyring,
        &trust.revoked,
    );
    if v.is_ok() {
        Ok(())
    } else {
        Err(format!("manifest signature: {}", v.message()))
    }
}

/// The network policy: when strict, only hosts on the allowlist.
#[derive(Clone, Debug, Default)]
pub struct NetworkPolicy {
    pub strict: bool,
    /// Exact host names, `.suffix` rules (the domain and every subdomain), or `*`.
    pub allow: Vec<String>,
}

impl NetworkPolicy {
    /// `strict` as the CLI decided it (profiles test and prod, or `AETHERRA_NET_STRICT`,
    /// which the CLI parses with its other switches so that a value it does not understand
    /// is an error, never "off"), and the allowlist from `AETHERRA_NETWORK_ALLOWLIST`
    /// (comma-separated).
    pub fn from_env(strict: bool) -> NetworkPolicy {
        let allow = std::env::var("AETHERRA_NETWORK_ALLOWLIST")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        NetworkPolicy { strict, allow }
    }

    /// `security.check_network_policy(host)`.
    pub fn allows(&self, host: &str) -> bool {
        if !self.strict {
            return true;
        }
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        // A URL or host:port names the same host.
        let host = host
            .split_once("://")
            .map_or(host.as_str(), |(_, rest)| rest)
            .split(['/', ':'])
            .next()
            .unwrap_or_default()
            .to_string();
        if host.is_empty() {
            return false;
        }
        self.allow.iter().any(|rule| {
            rule == "*"
                || *rule == host
                || rule
                    .strip_prefix('.')
                    .is_some_and(|domain| host == domain || host.ends_with(rule.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_rules() {
        let p = NetworkPolicy {
            strict: true,
            allow: vec![".example.dev".into(), "api.other.io".into()],
        };
        assert!(p.allows("example.dev"));
        assert!(p.allows("a.b.example.dev"));
        assert!(p.allows("https://x.example.dev:8443/path"));
        assert!(p.allows("API.other.io"));
        assert!(!p.allows("other.io"));
        assert!(!p.allows("badexample.dev"));
        assert!(!p.allows(""));
        assert!(NetworkPolicy::default().allows("anything.at.all"));
    }
}
