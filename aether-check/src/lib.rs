//! Semantic validation of `.aether` scripts: name resolution, rules, the rule registry and fingerprints.

mod checker;
pub mod codes;
pub mod decl;
pub mod dialect;
pub mod findings;
pub mod fingerprint;
mod hints;
pub mod risk;

pub use checker::{parse_plugin_requirement, ERROR_KINDS, POLICY_KEYS, STEP_OPTIONS};

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

/// Validate a parsed script: diagnostics sorted by (span, code). Same input, same output.
pub fn check(script: &aether_syntax::ast::Script, registry: &Registry) -> Vec<Diagnostic> {
    let mut diags = checker::Checker::new(registry).check(script);
    sort_diagnostics(&mut diags);
    diags
}

/// Parse and, when parsing found no errors, validate (parse errors suppress validation). A
/// file in a legacy dialect gets the dialect's diagnostics instead of the parser's errors.
pub fn analyze(src: &str, registry: &Registry) -> Vec<Diagnostic> {
    analyze_keeping_tree(src, registry).1
}

/// [`analyze`], also returning the syntax tree (recovered where it did not parse), for
/// tools that navigate it (the language server).
pub fn analyze_keeping_tree(
    src: &str,
    registry: &Registry,
) -> (aether_syntax::ast::Script, Vec<Diagnostic>) {
    let parsed = parse(src);
    if parsed.has_errors() {
        if let Some(rec) = dialect::recognize(src, &parsed.diagnostics) {
            let mut diags = dialect::diagnostics(&rec);
            sort_diagnostics(&mut diags);
            return (parsed.ast, diags);
        }
        let diags = dialect::quote_text_values(src, parsed.diagnostics);
        return (parsed.ast, hints::refine(src, diags, registry));
    }
    let mut diags = parsed.diagnostics;
    diags.extend(check(&parsed.ast, registry));
    diags.extend(hints::lint(src, &parsed.ast));
    let mut diags = hints::refine(src, diags, registry);
    sort_diagnostics(&mut diags);
    (parsed.ast, diags)
}
