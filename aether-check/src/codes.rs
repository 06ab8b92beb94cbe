//! The rule registry: every rule id, its kebab-case name, result code, default severity and summary.
//!
//! Ids are never reused. Syntax rules (A0xx) live in `aether_syntax::rules`; validation
//! errors are A1xx, warnings A2xx, signature verification A3xx, and legacy dialects and
//! constructs A4xx. `docs/codes/<id>.md`
//! documents each one.

use aether_syntax::Rule;

use aether_syntax::define_rule as rule;

rule!(
    UNKNOWN_FUNCTION,
    "A101",
    "unknown-function",
    ValidationError,
    Error,
    "a call to a name that is neither an action nor a known function"
);
rule!(
    UNKNOWN_MODULE_MEMBER,
    "A102",
    "unknown-module-member",
    ValidationError,
    Error,
    "a call to a function that the module does not have"
);
rule!(
    UNDEFINED_VARIABLE,
    "A103",
    "undefined-variable",
    ValidationError,
    Error,
    "a read of a name that is not declared in any enclosing scope"
);
rule!(
    ASSIGNMENT_TO_UNDECLARED,
    "A104",
    "assignment-to-undeclared",
    ValidationError,
    Error,
    "an `=` assignment to a variable that was never declared"
);
rule!(
    WRONG_ARITY,
    "A105",
    "wrong-arity",
    ValidationError,
    Error,
    "a call with too many or too few arguments"
);
rule!(
    UNKNOWN_KEYWORD_ARGUMENT,
    "A106",
    "unknown-keyword-argument",
    ValidationError,
    Error,
    "a keyword argument that names no parameter"
);
rule!(
    DUPLICATE_ACTION,
    "A107",
    "duplicate-action",
    ValidationError,
    Error,
    "two actions with the same name"
);
rule!(
    BREAK_OUTSIDE_LOOP,
    "A108",
    "break-outside-loop",
    ValidationError,
    Error,
    "`break` outside a `for` or `while` loop"
);
rule!(
    CONTINUE_OUTSIDE_LOOP,
    "A109",
    "continue-outside-loop",
    ValidationError,
    Error,
    "`continue` outside a `for` or `while` loop"
);
rule!(
    RETURN_OUTSIDE_ACTION,
    "A110",
    "return-outside-action",
    ValidationError,
    Error,
    "`return` where it would leave a `transaction:` block half done"
);
rule!(
    PENDING_VALUE_READ_BEFORE_AWAIT,
    "A111",
    "pending-value-read-before-await",
    ValidationError,
    Error,
    "a value started in `parallel:` read before `await`"
);
rule!(
    AWAIT_OF_NON_PENDING,
    "A112",
    "await-of-non-pending",
    ValidationError,
    Error,
    "`await` of something that is not a pending value from `parallel:`"
);
rule!(
    NON_CONSTANT_IN_MAPPING_BLOCK,
    "A113",
    "non-constant-in-mapping-block",
    ValidationError,
    Error,
    "a computed value in a mapping block, workflow setting or step option"
);
rule!(
    INVALID_DURATION,
    "A114",
    "invalid-duration",
    ValidationError,
    Error,
    "a duration setting whose value is not a duration"
);
rule!(
    PARALLEL_NON_DECLARATION,
    "A115",
    "parallel-non-declaration",
    ValidationError,
    Error,
    "a statement in `parallel:` that is not `x: e` or `let x = e`"
);
rule!(
    DUPLICATE_PARAMETER_FORMS,
    "A116",
    "duplicate-parameter-forms",
    ValidationError,
    Error,
    "an action with both `NAME(...)` parameters and an `inputs:` line"
);
rule!(
    INVALID_WORKFLOW_STEP,
    "A117",
    "invalid-workflow-step",
    ValidationError,
    Error,
    "a workflow step that is not a call"
);
rule!(
    TRIGGER_NOT_CALL,
    "A118",
    "trigger-not-call",
    ValidationError,
    Error,
    "`trigger` followed by something other than a call"
);
rule!(
    UNKNOWN_ERROR_KIND,
    "A119",
    "unknown-error-kind",
    ValidationError,
    Error,
    "an `on_error` rule for an error kind that does not exist"
);
rule!(
    DUPLICATE_PARAMETER,
    "A120",
    "duplicate-parameter",
    ValidationError,
    Error,
    "two parameters of one action with the same name"
);
rule!(
    ASSIGNMENT_TO_GLOBAL_IN_ACTION,
    "A121",
    "assignment-to-global-in-action",
    ValidationError,
    Error,
    "an action assigning a top-level variable, which actions may only read"
);
rule!(
    UNKNOWN_MODULE,
    "A122",
    "unknown-module",
    ValidationError,
    Error,
    "a call through a module name that no module has"
);
rule!(
    INVALID_INDEX,
    "A123",
    "invalid-index",
    ValidationError,
    Error,
    "an index with more than one value outside a type hint"
);
rule!(
    UNKNOWN_STEP_OPTION,
    "A124",
    "unknown-step-option",
    ValidationError,
    Error,
    "a workflow step option other than retry, timeout, backoff and requires"
);
rule!(
    INVALID_PLUGIN_REQUIREMENT,
    "A125",
    "invalid-plugin-requirement",
    ValidationError,
    Error,
    "a `require: plugins:` entry that is not `name` plus semver constraints"
);
rule!(
    POSITIONAL_AFTER_KEYWORD,
    "A126",
    "positional-after-keyword",
    ValidationError,
    Error,
    "a positional argument after a keyword argument"
);
rule!(
    DUPLICATE_ARGUMENT,
    "A127",
    "duplicate-argument",
    ValidationError,
    Error,
    "a parameter given a value twice in one call"
);
rule!(
    INVALID_GOAL,
    "A128",
    "invalid-goal",
    ValidationError,
    Error,
    "a goal whose value is not a string"
);
rule!(
    INVALID_POLICY_VALUE,
    "A129",
    "invalid-policy-value",
    ValidationError,
    Error,
    "a policy setting with a value of the wrong kind"
);
rule!(
    HANDLER_NOT_CALL,
    "A130",
    "handler-not-call",
    ValidationError,
    Error,
    "an `on_error` `do:` that is not a call"
);
rule!(
    JUMP_OUT_OF_TRANSACTION,
    "A131",
    "jump-out-of-transaction",
    ValidationError,
    Error,
    "`break` or `continue` that would leave a `transaction:` block half done"
);
rule!(
    STRING_PLUS_NON_STRING,
    "A132",
    "string-plus-non-string",
    ValidationError,
    Error,
    "`+` of a string and a literal that is not a string, which fails at run time"
);
rule!(
    SLEEP_OF_STRING,
    "A133",
    "sleep-of-string",
    ValidationError,
    Error,
    "`sleep` of a string, which fails at run time"
);
rule!(
    INVALID_MEMORY_SIZE,
    "A134",
    "invalid-memory-size",
    ValidationError,
    Error,
    "a `policy: max_memory` that is not a positive size such as \"256MB\""
);
rule!(
    WAIT_IN_TRANSACTION,
    "A137",
    "wait-in-transaction",
    ValidationError,
    Error,
    "a `sleep`, plugin call or `await` inside a `transaction:` block, which would hold the state database's write lock while it waits"
);
rule!(
    INVALID_SIGNATURE,
    "A301",
    "invalid-signature",
    SignatureError,
    Error,
    "in strict signature mode, a script whose signature is missing, malformed, untrusted, revoked or wrong"
);
rule!(
    MISSING_GOAL,
    "A201",
    "missing-goal",
    ValidationError,
    Warning,
    "a script without a `goal:`"
);
rule!(
    LEGACY_INTENT,
    "A202",
    "legacy-intent",
    ValidationError,
    Warning,
    "the legacy `intent:` spelling of `goal:`"
);
rule!(
    UNKNOWN_POLICY_KEY,
    "A203",
    "unknown-policy-key",
    ValidationError,
    Warning,
    "a `policy:` key the runtime does not know"
);
rule!(
    MODULE_NOT_REQUIRED,
    "A204",
    "module-not-required",
    ValidationError,
    Warning,
    "a module used without being declared in `metadata: requires:`"
);
rule!(
    PLUGIN_NOT_REQUIRED,
    "A205",
    "plugin-not-required",
    ValidationError,
    Warning,
    "a plugin invoked by name without being declared in `require: plugins:`"
);
rule!(
    EXPRESSION_STATEMENT_NOT_CALL,
    "A206",
    "expression-statement-not-call",
    ValidationError,
    Warning,
    "an expression statement whose value is thrown away"
);

// Legacy dialects and constructs (A4xx): reported by `crate::dialect` instead of the
// parser's errors when a file is recognised as written in another dialect.
rule!(
    LEGACY_DIALECT,
    "A401",
    "legacy-dialect",
    ParseError,
    Error,
    "a file written in a legacy dialect (brace plugin module, NeuroCode, YAML plugin manifest)"
);
rule!(
    BRACE_PLUGIN_MODULE,
    "A402",
    "brace-plugin-module",
    ParseError,
    Error,
    "a brace-style `plugin NAME { ... }` module, which has no Aether equivalent"
);
rule!(
    BRACE_FUNCTION,
    "A403",
    "brace-function",
    ParseError,
    Error,
    "a brace-style `fn NAME(...) { ... }` function of a plugin module"
);
rule!(
    YAML_PLUGIN_MANIFEST,
    "A404",
    "yaml-plugin-manifest",
    ParseError,
    Error,
    "a YAML-like `plugin \"NAME\":` manifest with `steps:`, which is not a script"
);
rule!(
    NEUROCODE_THINK,
    "A410",
    "neurocode-think",
    ParseError,
    Error,
    "a NeuroCode `think \"...\"` statement"
);
rule!(
    NEUROCODE_REMEMBER_AS,
    "A411",
    "neurocode-remember-as",
    ParseError,
    Error,
    "a NeuroCode `remember(x) as \"tag\"` statement"
);
rule!(
    NEUROCODE_RECALL,
    "A412",
    "neurocode-recall",
    ParseError,
    Error,
    "a NeuroCode `recall ...` statement"
);
rule!(
    NEUROCODE_LEARN,
    "A413",
    "neurocode-learn",
    ParseError,
    Error,
    "a NeuroCode `learn ...` statement, which has no Aether equivalent"
);
rule!(
    NEUROCODE_SUGGEST,
    "A414",
    "neurocode-suggest",
    ParseError,
    Error,
    "a NeuroCode `suggest ...` statement, which has no Aether equivalent"
);
rule!(
    NEUROCODE_WHEN,
    "A415",
    "neurocode-when",
    ParseError,
    Error,
    "a NeuroCode `when COND:` block"
);
rule!(
    NEUROCODE_DEFINE,
    "A416",
    "neurocode-define",
    ParseError,
    Error,
    "a NeuroCode `define NAME(args) ... end` function"
);
rule!(
    GOAL_WITH_PRIORITY,
    "A417",
    "goal-with-priority",
    ParseError,
    Error,
    "a NeuroCode `goal: TEXT priority: LEVEL` line"
);
rule!(
    NEUROCODE_AGENT_SWITCH,
    "A418",
    "neurocode-agent-switch",
    ParseError,
    Error,
    "a NeuroCode `agent: on` switch, which has no Aether equivalent"
);
rule!(
    UNQUOTED_TEXT_VALUE,
    "A420",
    "unquoted-text-value",
    ParseError,
    Error,
    "a mapping value or key that is plain text written without quotes"
);

/// Rules of legacy dialects and constructs (`crate::dialect`), in id order.
pub static LEGACY_RULES: &[&Rule] = &[
    &LEGACY_DIALECT,
    &BRACE_PLUGIN_MODULE,
    &BRACE_FUNCTION,
    &YAML_PLUGIN_MANIFEST,
    &NEUROCODE_THINK,
    &NEUROCODE_REMEMBER_AS,
    &NEUROCODE_RECALL,
    &NEUROCODE_LEARN,
    &NEUROCODE_SUGGEST,
    &NEUROCODE_WHEN,
    &NEUROCODE_DEFINE,
    &GOAL_WITH_PRIORITY,
    &NEUROCODE_AGENT_SWITCH,
    &UNQUOTED_TEXT_VALUE,
];
rule!(
    ENDLESS_LOOP,
    "A207",
    "endless-loop",
    ValidationError,
    Warning,
    "a `while true:` loop with no `break`, no `return` and no time or step budget"
);
rule!(
    CALL_OF_WAITING_ACTION_IN_TRANSACTION,
    "A208",
    "call-of-waiting-action-in-transaction",
    ValidationError,
    Warning,
    "a call inside a `transaction:` block of an action that can wait (the run fails if it does)"
);

/// Rules of the checker, in id order.
pub static CHECK_RULES: &[&Rule] = &[
    &UNKNOWN_FUNCTION,
    &UNKNOWN_MODULE_MEMBER,
    &UNDEFINED_VARIABLE,
    &ASSIGNMENT_TO_UNDECLARED,
    &WRONG_ARITY,
    &UNKNOWN_KEYWORD_ARGUMENT,
    &DUPLICATE_ACTION,
    &BREAK_OUTSIDE_LOOP,
    &CONTINUE_OUTSIDE_LOOP,
    &RETURN_OUTSIDE_ACTION,
    &PENDING_VALUE_READ_BEFORE_AWAIT,
    &AWAIT_OF_NON_PENDING,
    &NON_CONSTANT_IN_MAPPING_BLOCK,
    &INVALID_DURATION,
    &PARALLEL_NON_DECLARATION,
    &DUPLICATE_PARAMETER_FORMS,
    &INVALID_WORKFLOW_STEP,
    &TRIGGER_NOT_CALL,
    &UNKNOWN_ERROR_KIND,
    &DUPLICATE_PARAMETER,
    &ASSIGNMENT_TO_GLOBAL_IN_ACTION,
    &UNKNOWN_MODULE,
    &INVALID_INDEX,
    &UNKNOWN_STEP_OPTION,
    &INVALID_PLUGIN_REQUIREMENT,
    &POSITIONAL_AFTER_KEYWORD,
    &DUPLICATE_ARGUMENT,
    &INVALID_GOAL,
    &INVALID_POLICY_VALUE,
    &HANDLER_NOT_CALL,
    &JUMP_OUT_OF_TRANSACTION,
    &STRING_PLUS_NON_STRING,
    &SLEEP_OF_STRING,
    &INVALID_MEMORY_SIZE,
    &WAIT_IN_TRANSACTION,
    &MISSING_GOAL,
    &LEGACY_INTENT,
    &UNKNOWN_POLICY_KEY,
    &MODULE_NOT_REQUIRED,
    &PLUGIN_NOT_REQUIRED,
    &EXPRESSION_STATEMENT_NOT_CALL,
    &ENDLESS_LOOP,
    &CALL_OF_WAITING_ACTION_IN_TRANSACTION,
    &INVALID_SIGNATURE,
];

/// Every rule of the toolchain (syntax and checker), in id order.
pub fn all() -> impl Iterator<Item = &'static Rule> {
    aether_syntax::rules::ALL
        .iter()
        .chain(CHECK_RULES.iter())
        .chain(LEGACY_RULES.iter())
        .copied()
}

/// Where the rule pages live, relative to the repository root: `docs/codes/<id>.md` is the
/// page of rule `<id>` (the page `aether explain <id>` prints). JSON diagnostics carry it as
/// `url`, SARIF rules as `helpUri`.
pub const DOCS_BASE: &str = "docs/codes/";

/// The page of a rule: [`DOCS_BASE`] + `<id>.md`.
pub fn doc_url(id: &str) -> String {
    format!("{DOCS_BASE}{id}.md")
}

/// Look a rule up by id (`A101`) or name (`unknown-function`).
pub fn find(id_or_name: &str) -> Option<&'static Rule> {
    all().find(|r| r.id == id_or_name || r.name == id_or_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_syntax::{ResultCode, Severity};
    use std::collections::HashSet;

    #[test]
    fn ids_and_names_are_unique_and_well_formed() {
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for r in all() {
            assert!(ids.insert(r.id), "duplicate id {}", r.id);
            assert!(names.insert(r.name), "duplicate name {}", r.name);
            assert!(r.id.len() == 4 && r.id.starts_with('A'), "bad id {}", r.id);
            assert!(
                r.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "name not kebab-case: {}",
                r.name
            );
            assert!(
                !r.summary.ends_with('.'),
                "summary ends with a period: {}",
                r.id
            );
        }
    }

    #[test]
    fn warnings_are_a2xx_and_codes_follow_the_id_range() {
        for r in CHECK_RULES {
            assert_eq!(
                r.severity == Severity::Warning,
                r.id.starts_with("A2"),
                "{}",
                r.id
            );
            let expected = if r.id.starts_with("A3") {
                ResultCode::SignatureError
            } else {
                ResultCode::ValidationError
            };
            assert_eq!(r.code, expected, "{}", r.id);
        }
    }
}
