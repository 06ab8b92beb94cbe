//! `aether keygen`, `aether sign`, `aether verify`, and the strict signature mode of `check`.

use super::stdio::{errln, outln};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Args;

use aether_check::risk::{assess, RiskReport};
use aether_sign::{Keyring, Revocations, Verification};

use super::discover::{discover, read_regular, read_regular_string};
use super::output::timestamp;
use super::switches::Switches;
use super::util::{md_cell, Trust};

/// Trusted public keys, one `*.pub` file each, unless `--keyring` says otherwise.
pub(crate) const DEFAULT_KEYRING: &str = ".aetherra/keys/trusted";
/// Revoked key ids, one per line, read when present unless `--revoked` says otherwise.
pub(crate) const DEFAULT_REVOKED: &str = ".aetherra/keys/revoked.txt";
/// Where `aether keygen` writes by default.
const DEFAULT_KEY_DIR: &str = ".aetherra/keys";

/// The strict-signature options `check` and `run` share.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct StrictSignatureArgs {
    /// Refuse files whose signature is missing or bad (SIGNATURE_ERROR, 22) [also
    /// AETHERRA_SCRIPT_VERIFY_STRICT=1, AETHERRA_SIGNING_STRICT=1, AETHERRA_PROFILE=prod].
    #[arg(long)]
    pub(crate) strict_signatures: bool,
    /// Trusted public keys for strict signatures [default: .aetherra/keys/trusted].
    #[arg(long, value_name = "DIR")]
    pub(crate) keyring: Option<PathBuf>,
    /// Revoked key ids for strict signatures [default: .aetherra/keys/revoked.txt if present].
    #[arg(long, value_name = "FILE")]
    pub(crate) revoked: Option<PathBuf>,
}

/// Strict signature mode from the environment (docs/contract/LANGUAGE.md section 9); a switch with a
/// value it does not understand is an error (see `switches`).
pub(crate) fn strict_from_env() -> Result<bool, String> {
    let env = Switches::from_env()?;
    Ok(env.strict_signatures(env.profile))
}

impl StrictSignatureArgs {
    /// The trust of strict signature mode when it is on (`--strict-signatures` or the
    /// environment switches), else `None`; an unusable keyring is an error.
    pub(crate) fn strict_trust(&self) -> Result<Option<Trust>, String> {
        if self.strict_signatures || strict_from_env()? {
            load_trust(self.keyring.as_deref(), self.revoked.as_deref()).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Load every `*.pub` file of `dir` (a missing directory is an empty keyring) and the
/// revocation list (an explicit file must exist; the default one may be absent).
pub(crate) fn load_trust(dir: Option<&Path>, revoked: Option<&Path>) -> Result<Trust, String> {
    let trust = read_trust(dir, revoked)?;
    if trust.keys.keyring.is_empty() {
        errln!(
            "warning: no trusted keys in `{}`: every signature will be `unknown-key`",
            trust.keyring_dir.display()
        );
    }
    Ok(trust)
}

/// [`load_trust`] without the empty-keyring warning (for `security.verify_signature`).
pub(crate) fn read_trust(dir: Option<&Path>, revoked: Option<&Path>) -> Result<Trust, String> {
    let keyring_dir = dir.map_or_else(|| PathBuf::from(DEFAULT_KEYRING), Path::to_path_buf);
    let mut sources = Vec::new();
    match fs::read_dir(&keyring_dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                .collect();
            paths.sort();
            for p in paths {
                let text = read_regular_string(&p)
                    .map_err(|e| format!("cannot read public key `{}`: {e}", p.display()))?;
                sources.push((p.display().to_string(), text));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.is_none() => {}
        Err(e) => {
            return Err(format!(
                "cannot read keyring `{}`: {e}",
                keyring_dir.display()
            ))
        }
    }
    let (keyring, errors) = Keyring::from_public_keys(sources);
    if let Some(e) = errors.first() {
        return Err(format!("bad public key in keyring: {e}"));
    }
    let (revoked, revoked_file) = match revoked {
        Some(p) => {
            let text = fs::read_to_string(p)
                .map_err(|e| format!("cannot read revocation list `{}`: {e}", p.display()))?;
            let revoked = Revocations::parse_checked(&text)
                .map_err(|e| format!("revocation list `{}`: {e}", p.display()))?;
            (revoked, Some(p.to_path_buf()))
        }
        None => match fs::read_to_string(DEFAULT_REVOKED) {
            Ok(text) => (
                Revocations::parse(&text),
                Some(PathBuf::from(DEFAULT_REVOKED)),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Revocations::default(), None),
            Err(e) => {
                return Err(format!(
                    "cannot read revocation list `{DEFAULT_REVOKED}`: {e}"
                ))
            }
        },
    };
    Ok(Trust {
        keys: aether_runtime::security::Trust { keyring, revoked },
        keyring_dir,
        revoked_file,
    })
}

#[derive(Args, Debug)]
pub(crate) struct KeygenArgs {
    /// Directory for the key files.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_KEY_DIR)]
    out: PathBuf,
    /// Base name: writes NAME.key (secret, mode 0600) and NAME.pub (public, mode 0644).
    #[arg(long, default_value = "signing")]
    name: String,
    /// Overwrite an existing NAME.key.
    #[arg(long)]
    force: bool,
}

/// Write `text` to `path` with `mode`, atomically (temp file + rename) when overwriting.
fn write_private(path: &Path, text: &str, mode: u32, overwrite: bool) -> std::io::Result<()> {
    if !overwrite {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        // The umask may have cleared bits of `mode`; set it exactly.
        return fs::set_permissions(path, fs::Permissions::from_mode(mode));
    }
    let tmp = path.with_extension("tmp-aether");
    let _ = fs::remove_file(&tmp);
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path)
}

pub(crate) fn keygen(args: KeygenArgs) -> i32 {
    if args.name.is_empty() || args.name.contains(['/', '\\']) {
        errln!("error: --name must be a plain file name");
        return 2;
    }
    let secret_path = args.out.join(format!("{}.key", args.name));
    let public_path = args.out.join(format!("{}.pub", args.name));
    if secret_path.exists() && !args.force {
        errln!(
            "error: `{}` exists; refusing to overwrite a secret key (use --force)",
            secret_path.display()
        );
        return 1;
    }
    let pair = match aether_sign::SigningKeyPair::generate() {
        Ok(p) => p,
        Err(e) => {
            errln!("error: cannot generate a key: {e}");
            return 1;
        }
    };
    if let Err(e) = fs::create_dir_all(&args.out) {
        errln!("error: cannot create `{}`: {e}", args.out.display());
        return 1;
    }
    if let Err(e) = write_private(&secret_path, &pair.secret_file_text(), 0o600, args.force) {
        errln!("error: cannot write `{}`: {e}", secret_path.display());
        return 1;
    }
    if let Err(e) = write_private(&public_path, &pair.public_file_text(), 0o644, true) {
        errln!("error: cannot write `{}`: {e}", public_path.display());
        return 1;
    }
    say(format_args!("{}", pair.key_id()));
    errln!(
        "wrote {} (secret, 0600) and {}",
        secret_path.display(),
        public_path.display()
    );
    errln!(
        "to trust it here: cp {} {DEFAULT_KEYRING}/",
        public_path.display()
    );
    0
}

#[derive(Args, Debug)]
pub(crate) struct SignArgs {
    /// Files to sign in place.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Secret key file [default: $AETHER_SIGNING_KEY, a path or the key line itself].
    #[arg(long, value_name = "SECRET")]
    key: Option<PathBuf>,
    /// Sign scripts even when they do not parse (by default such a file is refused: a
    /// signature vouches for a script).
    #[arg(long)]
    allow_parse_errors: bool,
}

pub(crate) fn load_secret(key: Option<&Path>) -> Result<aether_sign::SecretKey, String> {
    let text = match key {
        Some(p) => {
            warn_if_loose(p);
            fs::read_to_string(p)
                .map_err(|e| format!("cannot read secret key `{}`: {e}", p.display()))?
        }
        None => match std::env::var("AETHER_SIGNING_KEY") {
            // The key itself (possibly a whole key file, comments included): never echo it.
            Ok(v) if v.contains("aether-ed25519-") => v,
            Ok(v) if !v.trim().is_empty() => {
                let path = Path::new(v.trim());
                warn_if_loose(path);
                fs::read_to_string(path).map_err(|e| {
                    format!("cannot read the secret key file named by AETHER_SIGNING_KEY: {e}")
                })?
            }
            _ => return Err("no key: pass --key SECRET or set AETHER_SIGNING_KEY".into()),
        },
    };
    aether_sign::parse_secret_key(&text).map_err(|e| format!("bad secret key: {e}"))
}

/// A secret key readable by others is worth a warning (ssh refuses such keys outright).
fn warn_if_loose(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            errln!(
                "warning: secret key `{}` is readable by others (mode {mode:o}); chmod 600 it",
                path.display()
            );
        }
    }
}

/// Print a result line; a closed stdout (`| head`) must not stop the batch.
fn say(line: std::fmt::Arguments<'_>) {
    outln!("{line}");
}

/// The first syntax error of `text` as `line N: message`, if it has one.
fn parse_error(text: &str) -> Option<String> {
    let parsed = aether_syntax::parse(text);
    let first = parsed.diagnostics.iter().find(|d| d.is_error())?;
    let line = aether_syntax::LineIndex::new(text)
        .line_col(text, first.span().start)
        .line;
    Some(format!("line {line}: {}", first.message()))
}

/// Stack size of the thread that signs or verifies: both parse, and parsing recurses over
/// the tree (as in `check`).
const SIGNING_STACK_BYTES: usize = 64 << 20;

/// Run `task` on a thread with room for parsing deep scripts.
fn on_big_stack(task: impl FnOnce() -> i32 + Send + 'static) -> i32 {
    let worker = std::thread::Builder::new().stack_size(SIGNING_STACK_BYTES);
    match worker.spawn(task) {
        Ok(handle) => handle.join().unwrap_or(27),
        Err(e) => {
            errln!("error: cannot start a thread: {e}");
            27
        }
    }
}

pub(crate) fn sign(args: SignArgs) -> i32 {
    on_big_stack(move || sign_files(&args))
}

fn sign_files(args: &SignArgs) -> i32 {
    let key = match load_secret(args.key.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    let mut failed = false;
    for path in &args.files {
        let result = read_regular(path)
            .map_err(|e| e.to_string())
            .and_then(|b| String::from_utf8(b).map_err(|_| "not valid UTF-8".to_string()))
            .and_then(|text| {
                let signed = aether_sign::sign(&text, &key);
                if path.extension().is_some_and(|e| e == "json") {
                    // A plugin manifest cannot hold a comment: its signature goes beside it.
                    let header = signed.lines().next().unwrap_or_default();
                    let mut sig = path.as_os_str().to_owned();
                    sig.push(".sig");
                    return fs::write(PathBuf::from(sig), format!("{header}\n"))
                        .map_err(|e| e.to_string());
                }
                // A signature vouches for a script: one that does not even parse is refused.
                if let Some(e) = parse_error(&text).filter(|_| !args.allow_parse_errors) {
                    return Err(format!(
                        "does not parse ({e}); fix it first (`aether check` shows why) or pass --allow-parse-errors"
                    ));
                }
                if signed == text {
                    return Ok(());
                }
                // Write through a symlink to the file it names, keeping the link.
                let target = fs::canonicalize(path).map_err(|e| e.to_string())?;
                let perms = fs::metadata(&target)
                    .map_err(|e| e.to_string())?
                    .permissions();
                let tmp = target.with_extension("aether-signing");
                fs::write(&tmp, signed.as_bytes()).map_err(|e| e.to_string())?;
                fs::set_permissions(&tmp, perms).map_err(|e| e.to_string())?;
                fs::rename(&tmp, &target).map_err(|e| e.to_string())
            });
        match result {
            Ok(()) => say(format_args!("OK signed: {}", path.display())),
            Err(e) => {
                failed = true;
                errln!("FAIL {}: {e}", path.display());
            }
        }
    }
    i32::from(failed)
}

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// Files or directories (searched recursively for *.aether).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Fail (exit 22) when any signature is missing or bad [also AETHERRA_SCRIPT_VERIFY_STRICT=1,
    /// AETHERRA_SIGNING_STRICT=1, AETHERRA_PROFILE=prod].
    #[arg(long)]
    strict: bool,
    /// Directory of trusted public keys (*.pub) [default: .aetherra/keys/trusted].
    #[arg(long, value_name = "DIR")]
    keyring: Option<PathBuf>,
    /// Revoked key ids, one per line [default: .aetherra/keys/revoked.txt if present].
    #[arg(long, value_name = "FILE")]
    revoked: Option<PathBuf>,
    /// Write a markdown report.
    #[arg(long, value_name = "REPORT.md")]
    output: Option<PathBuf>,
    /// Skip files whose path matches (repeatable), e.g. 'tests/**'.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Fail (exit 1) when a file's risk score is above N.
    #[arg(long, value_name = "N")]
    risk_threshold: Option<u32>,
    /// Fail (exit 1) when any file has any risk finding.
    #[arg(long)]
    fail_on_any_risk: bool,
}

struct Verified {
    path: String,
    outcome: Verification,
    risk: RiskReport,
}

pub(crate) fn verify(args: VerifyArgs) -> i32 {
    on_big_stack(move || verify_files(&args))
}

fn verify_files(args: &VerifyArgs) -> i32 {
    let strict = match strict_from_env() {
        Ok(on) => args.strict || on,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    let trust = match load_trust(args.keyring.as_deref(), args.revoked.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    let mut builder = globset::GlobSetBuilder::new();
    for pattern in &args.exclude {
        match globset::Glob::new(pattern) {
            Ok(g) => {
                builder.add(g);
            }
            Err(e) => {
                errln!("error: bad --exclude pattern `{pattern}`: {e}");
                return 2;
            }
        }
    }
    let excludes = match builder.build() {
        Ok(set) => set,
        Err(e) => {
            errln!("error: bad --exclude patterns: {e}");
            return 2;
        }
    };
    let all = discover(&args.paths);
    let (files, excluded): (Vec<PathBuf>, Vec<PathBuf>) = all.into_iter().partition(|p| {
        let shown = p.display().to_string();
        let rel = shown.strip_prefix("./").unwrap_or(&shown);
        !excludes.is_match(rel)
    });
    let mut results = Vec::new();
    for path in &files {
        let shown = path.display().to_string();
        let (outcome, risk) = match read_regular(path).map(String::from_utf8) {
            Ok(Ok(text)) => {
                let parsed = aether_syntax::parse(&text);
                (
                    aether_sign::verify(&text, &trust.keys.keyring, &trust.keys.revoked),
                    assess(&text, &parsed.ast),
                )
            }
            Ok(Err(_)) => {
                errln!("error: cannot read `{shown}`: not valid UTF-8");
                (
                    Verification::unreadable("not valid UTF-8"),
                    RiskReport::default(),
                )
            }
            Err(e) => {
                errln!("error: cannot read `{shown}`: {e}");
                (
                    Verification::unreadable(&e.to_string()),
                    RiskReport::default(),
                )
            }
        };
        match &outcome {
            Verification::Ok { key_id } => say(format_args!("OK {shown} (key {key_id})")),
            failed => say(format_args!("FAIL {shown} ({})", failed.reason())),
        }
        results.push(Verified {
            path: shown,
            outcome,
            risk,
        });
    }
    let sig_failed = results.iter().filter(|r| !r.outcome.is_ok()).count();
    let over: Vec<&Verified> = results
        .iter()
        .filter(|r| {
            (args.fail_on_any_risk && !r.risk.findings.is_empty())
                || args.risk_threshold.is_some_and(|t| r.risk.score() > t)
        })
        .collect();
    if let Some(out) = &args.output {
        let report = markdown(
            &results,
            excluded.len(),
            strict,
            &trust,
            args.risk_threshold,
        );
        if let Err(e) = super::trends::write_output(out, report.as_bytes()) {
            errln!("error: cannot write `{}`: {e}", out.display());
            return 26;
        }
    }
    errln!(
        "verified {} file{}: {} ok, {} failed{}",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        results.len() - sig_failed,
        sig_failed,
        if strict {
            " (strict)"
        } else {
            " (advisory: use --strict to fail)"
        }
    );
    for r in &over {
        errln!(
            "risk: {} scores {} (over the threshold)",
            r.path,
            r.risk.score()
        );
    }
    let unreadable = results
        .iter()
        .filter(|r| r.outcome.reason() == "unreadable")
        .count();
    if strict && sig_failed > 0 {
        22
    } else if unreadable > 0 {
        // A file that cannot be read (a missing path, a FIFO, not UTF-8) was not verified:
        // even advisory mode must not pass it as if it had been looked at.
        26
    } else if !over.is_empty() {
        1
    } else {
        0
    }
}

fn markdown(
    results: &[Verified],
    excluded: usize,
    strict: bool,
    trust: &Trust,
    threshold: Option<u32>,
) -> String {
    let mut md = String::from("# Aether script verification report\n\n");
    md.push_str(&format!("- Generated: {}\n", timestamp()));
    md.push_str(&format!(
        "- Files found: {} ({} excluded)\n",
        results.len(),
        excluded
    ));
    md.push_str(&format!(
        "- Mode: {}\n",
        if strict { "strict" } else { "advisory" }
    ));
    md.push_str(&format!(
        "- Keyring: `{}` ({} key{}); revocation list: {}\n\n",
        trust.keyring_dir.display(),
        trust.keys.keyring.len(),
        if trust.keys.keyring.len() == 1 {
            ""
        } else {
            "s"
        },
        trust
            .revoked_file
            .as_ref()
            .map_or("none".to_string(), |p| format!("`{}`", p.display()))
    ));
    md.push_str("## Signature results\n\n| Result | Count |\n|---|---|\n");
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for r in results {
        let key = match &r.outcome {
            Verification::Ok { .. } => "OK".to_string(),
            failed => format!("FAIL ({})", failed.reason()),
        };
        *counts.entry(key).or_default() += 1;
    }
    for (k, n) in &counts {
        md.push_str(&format!("| {k} | {n} |\n"));
    }
    md.push_str("\n| File | Signature | Key | Risk |\n|---|---|---|---|\n");
    for r in results {
        let (sig, key) = match &r.outcome {
            Verification::Ok { key_id } => ("OK".to_string(), key_id.clone()),
            failed => (
                format!("FAIL ({})", failed.reason()),
                failed.key_id().unwrap_or("-").to_string(),
            ),
        };
        md.push_str(&format!(
            "| `{}` | {sig} | {key} | {} |\n",
            md_cell(&r.path),
            r.risk.score()
        ));
    }
    let total: u32 = results.iter().map(|r| r.risk.score()).sum();
    md.push_str(&format!(
        "\n## Risk\n\nTotal risk: {total}{}\n\n### Top 5 riskiest\n\n",
        threshold.map_or(String::new(), |t| format!(" (threshold per file: {t})"))
    ));
    let mut ranked: Vec<&Verified> = results.iter().filter(|r| r.risk.score() > 0).collect();
    ranked.sort_by(|a, b| {
        b.risk
            .score()
            .cmp(&a.risk.score())
            .then(a.path.cmp(&b.path))
    });
    if ranked.is_empty() {
        md.push_str("No risk findings.\n");
    } else {
        md.push_str("| File | Score | Findings |\n|---|---|---|\n");
        for r in ranked.iter().take(5) {
            md.push_str(&format!(
                "| `{}` | {} | {} |\n",
                md_cell(&r.path),
                r.risk.score(),
                r.risk.findings.len()
            ));
        }
        md.push_str("\n### Findings\n");
        for r in &ranked {
            md.push_str(&format!("\n#### `{}`\n\n", md_cell(&r.path)));
            for f in &r.risk.findings {
                md.push_str(&format!(
                    "- L{}: [{}] `{}`\n",
                    f.line,
                    f.kind.as_str(),
                    f.snippet.replace('`', "'")
                ));
            }
        }
    }
    md
}
