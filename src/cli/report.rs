//! Checking one file: read, analyse (panics become INTERNAL_ERROR), locate, fingerprint, suppress, verdict.

use super::stdio::errln;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use aether_check::decl::Registry;
use aether_check::findings::{place, project_relative};
use aether_check::fingerprint::Suppressions;
use aether_check::{analyze, Analysis, Phase};
use aether_syntax::{rules, Diagnostic, ResultCode, Severity, Span};

pub(crate) use aether_check::findings::Finding;

/// The verdict for one file (docs/contract/LANGUAGE.md section 7).
#[derive(Debug)]
pub(crate) struct Status {
    pub(crate) ok: bool,
    pub(crate) code: ResultCode,
    pub(crate) phase: Phase,
    pub(crate) message: String,
    pub(crate) line: Option<u32>,
    /// When every failure was suppressed: the code the file would otherwise fail with.
    pub(crate) suppressed: Option<ResultCode>,
    /// Index in `findings` of the finding behind the verdict (the first failing one, or the
    /// first suppressed error), so reports describe one finding consistently.
    pub(crate) finding: Option<usize>,
}

impl Status {
    /// `SUCCESS`, a code name, or `Suppressed-<CODE_NAME>` (the classifier's category).
    pub(crate) fn category(&self) -> String {
        match self.suppressed {
            Some(code) => format!("Suppressed-{}", code.name()),
            None => self.code.name().to_string(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct FileReport {
    pub(crate) display: String,
    /// The path relative to the project root, `/`-separated (see [`project_path`]).
    pub(crate) project_path: String,
    /// The text as read (lossily decoded when it is not UTF-8), for rendering snippets.
    pub(crate) source: Option<String>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) status: Status,
    /// The tree and the typed settings, when [`Options::keep_analysis`] asked for them and
    /// the text was analysed (its diagnostics became `findings`), so a run, a risk score or
    /// a compile never parses the file again.
    pub(crate) analysis: Option<Analysis>,
}

#[derive(Default)]
pub(crate) struct Options {
    pub(crate) strict: bool,
    pub(crate) suppressions: Suppressions,
    /// Strict signature mode: verify against these keys before anything else.
    pub(crate) signatures: Option<super::util::Trust>,
    /// Keep each file's [`Analysis`] in its report (`run` and `classify` go on with it;
    /// `check` over many files does not hold every tree).
    pub(crate) keep_analysis: bool,
}

/// The diagnostic for a signature that strict mode refuses.
fn signature_diagnostic(text: &str, failure: &aether_sign::Verification) -> Diagnostic {
    use aether_check::codes::INVALID_SIGNATURE;
    let header_end = text.find('\n').unwrap_or(text.len());
    let header = Span::new(0, header_end.min(text.len()));
    let help = match failure.reason() {
        "missing" => {
            "sign it with `aether sign FILE --key SECRET`; strict mode runs only signed scripts"
        }
        "legacy-hmac" => {
            "HMAC signatures are never trusted: re-sign with `aether sign FILE --key SECRET`"
        }
        "unknown-key" => {
            "add the signer's public key to the keyring (.aetherra/keys/trusted/ or --keyring DIR)"
        }
        "revoked" => "the key was revoked: re-sign with a current key",
        "mismatch" => "the file changed after it was signed: review the change and sign it again",
        _ => "fix the `# @signature ed25519 <key-id> <signature>` header, or sign the file again",
    };
    let label = if failure.reason() == "missing" {
        "no signature header"
    } else {
        "signature header"
    };
    Diagnostic::new(&INVALID_SIGNATURE, failure.message())
        .with_primary(
            if failure.reason() == "missing" {
                Span::new(0, 0)
            } else {
                header
            },
            label,
        )
        .with_help(help)
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// The suppression file in use and its entries: the explicit one (which must be readable),
/// else the default one when it exists; no file and no entries otherwise.
pub(crate) fn load_suppressions(
    explicit: Option<&Path>,
) -> Result<(Option<std::path::PathBuf>, Suppressions), String> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_SUPPRESSIONS));
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((Some(path.to_path_buf()), Suppressions::parse(&text))),
        Err(e) if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
            Ok((None, Suppressions::default()))
        }
        Err(e) => Err(format!(
            "cannot read suppression file `{}`: {e}",
            path.display()
        )),
    }
}

/// Where suppressions are read from when `--suppressions` is not given (if the file exists).
pub(crate) use aether_check::findings::DEFAULT_SUPPRESSIONS;

/// Suppression entries no finding of `reports` used (with their line in the file).
pub(crate) fn stale_suppressions<'r>(
    suppressions: &Suppressions,
    used: impl IntoIterator<Item = &'r str>,
) -> Vec<(String, u32)> {
    let used: std::collections::HashSet<String> = used.into_iter().map(str::to_string).collect();
    suppressions.stale(&used)
}

/// Warnings on stderr for stale suppression entries, like ruff's unused-noqa.
/// Without runs (`check`, `classify --check-only`), an entry for a run-time failure can
/// never match: a note says so, so nobody deletes a suppression that is still needed.
pub(crate) fn warn_stale(file: &Path, stale: &[(String, u32)], ran: bool) {
    for (fp, line) in stale {
        errln!(
            "warning: suppression `{fp}` ({}:{line}) matched no finding in the files checked; remove it if it is fixed",
            file.display()
        );
    }
    if !stale.is_empty() && !ran {
        errln!(
            "note: nothing was run, so entries for run-time failures (RUNTIME_ERROR, TIMEOUT_ERROR) cannot match here; `aether classify` without --check-only matches them"
        );
    }
}

/// A path as stable fingerprints see it: relative to the project root (the working
/// directory, which holds `.aetherra/`), `/`-separated, so `./flows/a.aether`,
/// `flows//a.aether`, `sub/../flows/a.aether`, `/abs/cwd/flows/a.aether` and the same path
/// through a symlinked working directory all agree. The file's directory is resolved
/// (symbolic links, `..`); the file name is kept as written, so a linked workflow keeps its
/// own name. A path outside the working directory is absolute.
///
/// The working directory and the last file's directory are resolved once per thread and
/// reused while they stay the same: a corpus of files in a few directories costs two
/// `realpath` calls per directory instead of per file.
pub(crate) fn project_path(path: &Path) -> String {
    use std::path::PathBuf;
    /// (working directory, resolved), (a file's directory, resolved or `None` when it
    /// could not be resolved).
    type Resolved = (
        Option<(PathBuf, PathBuf)>,
        Option<(PathBuf, Option<PathBuf>)>,
    );
    thread_local! {
        static RESOLVED: std::cell::RefCell<Resolved> = const { std::cell::RefCell::new((None, None)) };
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    RESOLVED.with_borrow_mut(|(cwd_cache, dir_cache)| {
        if cwd_cache.as_ref().is_none_or(|(c, _)| *c != cwd) {
            let resolved = std::fs::canonicalize(&cwd).unwrap_or_else(|_| lexical(&cwd));
            *cwd_cache = Some((cwd.clone(), resolved));
            // A file's directory may be relative to the old working directory's resolution.
            *dir_cache = None;
        }
        let resolved_cwd = &cwd_cache.as_ref().expect("set above").1;
        let resolved = match (absolute.parent(), absolute.file_name()) {
            (Some(dir), Some(name)) => {
                if dir_cache.as_ref().is_none_or(|(d, _)| d != dir) {
                    *dir_cache = Some((dir.to_path_buf(), std::fs::canonicalize(dir).ok()));
                }
                match &dir_cache.as_ref().expect("set above").1 {
                    Some(d) => d.join(name),
                    None => lexical(&absolute),
                }
            }
            _ => lexical(&absolute),
        };
        project_relative(resolved_cwd, &resolved)
    })
}

/// `path` with `.` and `..` folded away without touching the file system.
fn lexical(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Read and check one file.
pub(crate) fn check_file(path: &Path, registry: &Registry, opts: &Options) -> FileReport {
    let display = path.display().to_string();
    let (source, diags, analysis) = match super::discover::read_regular(path) {
        Err(e) => {
            let msg = format!("cannot read `{display}`: {}", e.to_string().to_lowercase());
            let d = Diagnostic::new(&rules::UNREADABLE_FILE, msg)
                .with_help("check the path and its permissions");
            (None, vec![d], None)
        }
        Ok(bytes) => match String::from_utf8(bytes) {
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let d = Diagnostic::new(
                    &rules::INVALID_UTF8,
                    format!("file is not valid UTF-8: invalid byte at offset {offset}"),
                )
                // In the lossy text the bad byte became U+FFFD: label that whole character.
                .with_primary(
                    Span::new(offset, offset + char::REPLACEMENT_CHARACTER.len_utf8()),
                    "invalid byte here",
                )
                .with_help("save the file as UTF-8");
                (Some(text), vec![d], None)
            }
            Ok(text) => {
                if let Some(trust) = &opts.signatures {
                    let outcome =
                        aether_sign::verify(&text, &trust.keys.keyring, &trust.keys.revoked);
                    if !outcome.is_ok() {
                        let d = signature_diagnostic(&text, &outcome);
                        return build_report(path, display, Some(text), vec![d], opts);
                    }
                }
                match catch_unwind(AssertUnwindSafe(|| analyze(&text, registry))) {
                    Ok(mut analysis) => {
                        let diags = std::mem::take(&mut analysis.diagnostics);
                        (
                            Some(text),
                            diags,
                            Some(analysis).filter(|_| opts.keep_analysis),
                        )
                    }
                    Err(payload) => {
                        let d = Diagnostic::new(
                            &rules::INTERNAL_ERROR,
                            format!("internal error: {}", panic_message(payload.as_ref())),
                        )
                        .with_help("this is a bug in aether, not in your script; please report it with the file");
                        (Some(text), vec![d], None)
                    }
                }
            }
        },
    };
    let mut report = build_report(path, display, source, diags, opts);
    report.analysis = analysis;
    report
}

/// Place and fingerprint diagnostics, apply suppressions, decide the file's verdict.
pub(crate) fn build_report(
    path: &Path,
    display: String,
    source: Option<String>,
    diags: Vec<Diagnostic>,
    opts: &Options,
) -> FileReport {
    let project = project_path(path);
    let findings = place(
        source.as_deref(),
        diags,
        &project,
        &opts.suppressions,
        opts.strict,
    );
    let phase_of = |f: &Finding| Phase::of_code(f.diag.code());
    let failing = findings.iter().position(|f| f.fails);
    let suppressed = findings
        .iter()
        .position(|f| f.suppressed && (f.diag.severity() == Severity::Error || opts.strict));
    let status = if let Some(i) = failing {
        let first = &findings[i];
        Status {
            ok: false,
            code: first.diag.code(),
            phase: phase_of(first),
            message: first.diag.message().to_string(),
            line: first.line(),
            suppressed: None,
            finding: Some(i),
        }
    } else if let Some(i) = suppressed {
        let first = &findings[i];
        Status {
            ok: true,
            code: ResultCode::Success,
            phase: phase_of(first),
            message: format!(
                "suppressed {}: {}",
                first.diag.code().name(),
                first.diag.message()
            ),
            line: first.line(),
            suppressed: Some(first.diag.code()),
            finding: Some(i),
        }
    } else {
        Status {
            ok: true,
            code: ResultCode::Success,
            phase: Phase::Validate,
            message: String::new(),
            line: None,
            suppressed: None,
            finding: None,
        }
    };
    FileReport {
        display,
        project_path: project,
        source,
        findings,
        status,
        analysis: None,
    }
}
