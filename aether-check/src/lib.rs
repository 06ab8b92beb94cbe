//! Semantic validation of `.aether` scripts: name resolution, rules, the rule registry and fingerprints.

mod checker;
pub mod codes;
pub mod decl;
pub mod dialect;
pub mod findings;
pub mod fingerprint;
mod hints;
pub mod risk;
pub mod spec;
mod tx_waits;

pub use checker::ERROR_KINDS;
pub use spec::{PluginRequirement, Policy, Specs, StepSpec, POLICY_KEYS, STEP_OPTIONS};

use aether_syntax::ast::Script;
use aether_syntax::diagnostic::sort_diagnostics;
use aether_syntax::{parse, Diagnostic, ResultCode};

use crate::decl::Registry;

/// Which stage a file's verdict comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Read,
    Parse,
    Validate,
    Verify,
    Execute,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Read => "read",
            Phase::Parse => "parse",
            Phase::Validate => "validate",
            Phase::Verify => "verify",
            Phase::Execute => "execute",
        }
    }

    /// The phase a diagnostic's result code belongs to.
    pub fn of_code(code: ResultCode) -> Phase {
        match code {
            ResultCode::IoError => Phase::Read,
            ResultCode::ParseError | ResultCode::UnsupportedFeature => Phase::Parse,
            ResultCode::SignatureError => Phase::Verify,
            ResultCode::RuntimeError | ResultCode::TimeoutError => Phase::Execute,
            _ => Phase::Validate,
        }
    }
}

/// A file analysed once: its tree, every diagnostic, and the settings the checker typed.
/// Every command that needs the tree after checking (run, classify, risk) takes it from
/// here instead of parsing the text again.
#[derive(Debug)]
pub struct Analysis {
    pub ast: Script,
    /// Sorted by (span, code).
    pub diagnostics: Vec<Diagnostic>,
    /// Empty (the defaults) when parsing failed and validation did not run.
    pub specs: Specs,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Validate a parsed script: diagnostics sorted by (span, code) and the typed settings.
/// Same input, same output.
pub fn check(script: &Script, registry: &Registry) -> (Vec<Diagnostic>, Specs) {
    let checked = checker::Checker::new(registry).check(script);
    let mut diags = checked.diags;
    // The checker's walk meets every statement: a script without a `transaction:` block
    // has no wait inside one, and needs no second walk.
    if checked.has_transaction {
        diags.extend(tx_waits::check(script, registry));
    }
    sort_diagnostics(&mut diags);
    (diags, checked.specs)
}

/// Parse and, when parsing found no errors, validate (parse errors suppress validation). A
/// file in a legacy dialect gets the dialect's diagnostics instead of the parser's errors.
/// The tree is kept (recovered where it did not parse) for what comes next: the compiler,
/// the risk report, the language server's navigation.
pub fn analyze(src: &str, registry: &Registry) -> Analysis {
    let parsed = parse(src);
    if parsed.has_errors() {
        let diagnostics = match dialect::recognize(src, &parsed.diagnostics) {
            Some(rec) => {
                let mut diags = dialect::diagnostics(&rec);
                sort_diagnostics(&mut diags);
                diags
            }
            None => {
                let diags = dialect::quote_text_values(src, parsed.diagnostics);
                hints::refine(src, diags, registry)
            }
        };
        return Analysis {
            ast: parsed.ast,
            diagnostics,
            specs: Specs::default(),
        };
    }
    let mut diags = parsed.diagnostics;
    let (checked, specs) = check(&parsed.ast, registry);
    diags.extend(checked);
    diags.extend(hints::lint(src, &parsed.ast));
    let mut diags = hints::refine(src, diags, registry);
    sort_diagnostics(&mut diags);
    Analysis {
        ast: parsed.ast,
        diagnostics: diags,
        specs,
    }
}
