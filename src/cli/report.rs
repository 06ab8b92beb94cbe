//! Checking one file: read, analyse (panics become INTERNAL_ERROR), locate, fingerprint, suppress, verdict.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use aether_check::decl::Registry;
use aether_check::fingerprint::{fingerprint, Suppressions};
use aether_check::{analyze, Phase};
use aether_syntax::{rules, Diagnostic, LineIndex, ResultCode, Severity, Span};

/// A diagnostic placed in its file.
#[derive(Debug)]
pub(crate) struct Finding {
    pub(crate) diag: Diagnostic,
    /// 1-based start and end positions; `None` for file-level problems with no position.
    pub(crate) start: Option<(u32, u32)>,
    pub(crate) end: Option<(u32, u32)>,
    pub(crate) fingerprint: String,
    pub(crate) suppressed: bool,
    /// Counts toward the file's failure: an error (or a warning under `--strict`), not suppressed.
    pub(crate) fails: bool,
}

impl Finding {
    pub(crate) fn line(&self) -> Option<u32> {
        self.start.map(|s| s.0)
    }
}

/// The verdict for one file (LANGUAGE.md section 7).
#[derive(Debug)]
pub(crate) struct Status {
    pub(crate) ok: bool,
    pub(crate) code: ResultCode,
    pub(crate) phase: Phase,
    pub(crate) message: String,
    pub(crate) line: Option<u32>,
    /// When every failure was suppressed: the code the file would otherwise fail with.
    pub(crate) suppressed: Option<ResultCode>,
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
    /// The text as read (lossily decoded when it is not UTF-8), for rendering snippets.
    pub(crate) source: Option<String>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) status: Status,
}

#[derive(Default)]
pub(crate) struct Options {
    pub(crate) strict: bool,
    pub(crate) suppressions: Suppressions,
    /// Strict signature mode: verify against these keys before anything else.
    pub(crate) signatures: Option<super::signing::Trust>,
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

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Read and check one file.
pub(crate) fn check_file(path: &Path, registry: &Registry, opts: &Options) -> FileReport {
    let display = path.display().to_string();
    let (source, diags) = match std::fs::read(path) {
        Err(e) => {
            let msg = format!("cannot read `{display}`: {}", e.to_string().to_lowercase());
            let d = Diagnostic::new(&rules::UNREADABLE_FILE, msg)
                .with_help("check the path and its permissions");
            (None, vec![d])
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
                (Some(text), vec![d])
            }
            Ok(text) => {
                if let Some(trust) = &opts.signatures {
                    let outcome = aether_sign::verify(&text, &trust.keyring, &trust.revoked);
                    if !outcome.is_ok() {
                        let d = signature_diagnostic(&text, &outcome);
                        return build_report(display, Some(text), vec![d], opts);
                    }
                }
                let diags = catch_unwind(AssertUnwindSafe(|| analyze(&text, registry)))
                    .unwrap_or_else(|payload| {
                        vec![Diagnostic::new(
                            &rules::INTERNAL_ERROR,
                            format!("internal error: {}", panic_message(payload.as_ref())),
                        )
                        .with_help("this is a bug in aether, not in your script; please report it with the file")]
                    });
                (Some(text), diags)
            }
        },
    };
    build_report(display, source, diags, opts)
}

fn build_report(
    display: String,
    source: Option<String>,
    diags: Vec<Diagnostic>,
    opts: &Options,
) -> FileReport {
    let index = source.as_deref().map(LineIndex::new);
    let findings: Vec<Finding> = diags
        .into_iter()
        .map(|diag| {
            let has_span = !diag.labels().is_empty();
            let (start, end) = match (&source, &index, has_span) {
                (Some(text), Some(idx), true) => {
                    let span = diag.span();
                    let a = idx.line_col(text, span.start);
                    let b = idx.line_col(text, span.end.max(span.start));
                    (Some((a.line, a.column)), Some((b.line, b.column)))
                }
                _ => (None, None),
            };
            let fp = fingerprint(diag.code().name(), start.map(|s| s.0), diag.message());
            let suppressed = opts.suppressions.contains(&fp);
            let failing = diag.severity() == Severity::Error || opts.strict;
            Finding {
                diag,
                start,
                end,
                fingerprint: fp,
                suppressed,
                fails: failing && !suppressed,
            }
        })
        .collect();
    let phase_of = |f: &Finding| Phase::of_code(f.diag.code());
    let status = if let Some(first) = findings.iter().find(|f| f.fails) {
        Status {
            ok: false,
            code: first.diag.code(),
            phase: phase_of(first),
            message: first.diag.message().to_string(),
            line: first.line(),
            suppressed: None,
        }
    } else if let Some(first) = findings
        .iter()
        .find(|f| f.suppressed && (f.diag.severity() == Severity::Error || opts.strict))
    {
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
        }
    } else {
        Status {
            ok: true,
            code: ResultCode::Success,
            phase: Phase::Validate,
            message: String::new(),
            line: None,
            suppressed: None,
        }
    };
    FileReport {
        display,
        source,
        findings,
        status,
    }
}
