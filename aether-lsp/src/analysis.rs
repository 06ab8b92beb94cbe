//! The adapter onto the front end and the declarations: the only module that calls the
//! parser, the checker and the `Registry`, so a change to their APIs is absorbed here.

use aether_check::decl::{FnDecl, ParamKind, Registry};
use aether_syntax::ast::Script;
use aether_syntax::Diagnostic;

/// One version of a document, analysed: its syntax tree (recovered where it did not parse)
/// and exactly the diagnostics `aether check` reports for the same text.
#[derive(Debug)]
pub(crate) struct Analysis {
    pub(crate) script: Script,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// Parse and check once, keeping the tree for navigation: `aether_check::analyze`'s
/// diagnostics exactly (a test holds the two equal).
pub(crate) fn analyze(text: &str, registry: &Registry) -> Analysis {
    let analysis = aether_check::analyze(text, registry);
    Analysis {
        script: analysis.ast,
        diagnostics: analysis.diagnostics,
    }
}

/// A native function as the editor shows it.
#[derive(Clone, Debug)]
pub(crate) struct NativeFn {
    pub(crate) name: &'static str,
    pub(crate) signature: String,
    /// Parameters that may be passed by keyword (the variadic rest cannot).
    pub(crate) keywords: Vec<&'static str>,
    pub(crate) defaults: Vec<String>,
    pub(crate) capability: Option<&'static str>,
    pub(crate) effectful: bool,
    pub(crate) doc: &'static str,
}

fn native(decl: &FnDecl) -> NativeFn {
    NativeFn {
        name: decl.name,
        signature: decl.signature(),
        keywords: decl
            .params
            .iter()
            .filter(|p| p.kind != ParamKind::Variadic)
            .map(|p| p.name)
            .collect(),
        defaults: decl
            .params
            .iter()
            .filter_map(|p| p.default.as_ref().map(|d| format!("{}={d}", p.name)))
            .collect(),
        capability: decl.capability.map(|c| c.as_str()),
        effectful: decl.effectful,
        doc: decl.doc,
    }
}

/// The global function `name`, or the function `name` of `module`.
pub(crate) fn native_fn(registry: &Registry, module: Option<&str>, name: &str) -> Option<NativeFn> {
    match module {
        None => registry.global(name).map(native),
        Some(m) => registry.module_fn(m, name).map(native),
    }
}

pub(crate) fn is_module(registry: &Registry, name: &str) -> bool {
    registry.has_module(name)
}

pub(crate) fn modules(registry: &Registry) -> Vec<&'static str> {
    registry.module_names().collect()
}

pub(crate) fn module_fns(registry: &Registry, module: &str) -> Vec<NativeFn> {
    registry.module_fns(module).map(native).collect()
}

pub(crate) fn global_fns(registry: &Registry) -> Vec<NativeFn> {
    registry.globals().map(native).collect()
}

/// The keys a `policy:` block knows (the checker's list).
pub(crate) fn policy_keys() -> &'static [&'static str] {
    aether_check::POLICY_KEYS
}

/// Step options (`retry=`, ...), from the checker's list.
pub(crate) fn step_options() -> &'static [&'static str] {
    aether_check::STEP_OPTIONS
}

/// Error kinds after `- when:`, from the checker's list.
pub(crate) fn error_kinds() -> &'static [&'static str] {
    aether_check::ERROR_KINDS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        aether_runtime::function_table().registry().clone()
    }

    /// The editor's diagnostics are `aether check`'s: the same as `analyze` on every
    /// reference workflow and on broken inputs.
    #[test]
    fn diagnostics_equal_the_checkers() {
        let registry = registry();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut texts: Vec<String> = Vec::new();
        for dir in ["workflows", "aether-check/tests/rules"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "aether") {
                    texts.push(std::fs::read_to_string(e.path()).expect("fixture"));
                }
            }
        }
        assert!(texts.len() > 10, "found the fixtures");
        texts.push("goal: \"x\"\nlet x = lenn([1])\nprint(y\n".to_string());
        for text in &texts {
            assert_eq!(
                analyze(text, &registry).diagnostics,
                aether_check::analyze(text, &registry).diagnostics,
                "{text}"
            );
        }
    }

    #[test]
    fn natives_carry_their_declaration() {
        let registry = registry();
        let recall = native_fn(&registry, Some("memory"), "recall").expect("memory.recall");
        assert!(recall.signature.starts_with("memory.recall(query"));
        assert_eq!(recall.capability, Some("memory.read"));
        assert!(recall.keywords.contains(&"limit"));
        assert!(is_module(&registry, "plugins"));
        assert!(!is_module(&registry, "len"));
    }
}
