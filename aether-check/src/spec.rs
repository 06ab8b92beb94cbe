//! Typed settings built once from the AST: workflow step options, the `policy:` block and `require: plugins:` entries.
//!
//! The checker builds them (their diagnostics are the validation rules for these settings)
//! and hands them on in [`Specs`]; the compiler, the runtime and the CLI read the types,
//! never the option text again.

use std::collections::HashMap;

use aether_syntax::ast::{Expr, ExprKind, MapEntry, MapValue, StepOption, UnaryOp};
use aether_syntax::token::parse_duration;
use aether_syntax::{Diagnostic, Span};

use crate::checker::{did_you_mean, int_value, is_constant, suggest};
use crate::codes::*;

/// `policy:` keys the runtime understands.
pub const POLICY_KEYS: &[&str] = &[
    "timeout",
    "max_steps",
    "max_memory",
    "deterministic",
    "seed",
    "mock_io",
    "risk_budget",
    "token_budget",
    "data_class",
];

/// Workflow step options.
pub const STEP_OPTIONS: &[&str] = &["retry", "timeout", "backoff", "requires"];

/// The wait before a step's first retry when it sets no `backoff=` (docs/contract/LANGUAGE.md section 5).
pub const DEFAULT_BACKOFF_MS: f64 = 1000.0;

/// Everything the checker typed for one script.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Specs {
    pub policy: Policy,
    /// `require: plugins:` entries, in file order.
    pub plugins: Vec<PluginRequirement>,
    /// Each workflow step's options, by the span of the step's call.
    steps: HashMap<Span, StepSpec>,
}

impl Specs {
    /// The options of the workflow step whose call is at `span`.
    pub fn step(&self, span: Span) -> Option<&StepSpec> {
        self.steps.get(&span)
    }

    pub(crate) fn add_step(&mut self, span: Span, spec: StepSpec) {
        self.steps.insert(span, spec);
    }
}

/// A workflow step's options (docs/contract/LANGUAGE.md section 5).
#[derive(Clone, Debug, PartialEq)]
pub struct StepSpec {
    /// Further attempts after a failure.
    pub retry: u32,
    /// The wait before the first retry (doubling after each further failure), in ms.
    pub backoff_ms: f64,
    /// The time one attempt may take, in ms.
    pub timeout_ms: Option<f64>,
    /// Capabilities checked before the step runs.
    pub requires: Vec<String>,
}

impl Default for StepSpec {
    fn default() -> StepSpec {
        StepSpec {
            retry: 0,
            backoff_ms: DEFAULT_BACKOFF_MS,
            timeout_ms: None,
            requires: Vec::new(),
        }
    }
}

impl StepSpec {
    /// A step's options; each problem is a diagnostic and leaves that option at its default.
    /// A later option of the same name wins.
    pub(crate) fn build(options: &[StepOption], diags: &mut Vec<Diagnostic>) -> StepSpec {
        let mut spec = StepSpec::default();
        for opt in options {
            constant(&opt.value, "step option", diags);
            match opt.name.text.as_str() {
                "retry" => match opt.value.kind {
                    ExprKind::Int(n) if n >= 0 => spec.retry = u32::try_from(n).unwrap_or(u32::MAX),
                    _ if is_constant(&opt.value) => diags.push(
                        Diagnostic::new(
                            &INVALID_POLICY_VALUE,
                            "step option `retry` must be a whole number of retries",
                        )
                        .with_primary(opt.value.span, "not a non-negative integer")
                        .with_help("write `retry=2` to retry a failed step twice more"),
                    ),
                    _ => {}
                },
                "timeout" => {
                    spec.timeout_ms =
                        duration(&opt.value, "step option `timeout`", diags).or(spec.timeout_ms);
                }
                "backoff" => {
                    if let Some(ms) = duration(&opt.value, "step option `backoff`", diags) {
                        spec.backoff_ms = ms;
                    }
                }
                "requires" => {
                    if let Some(caps) = capabilities(&opt.value) {
                        spec.requires.extend(caps);
                    } else if is_constant(&opt.value) {
                        diags.push(
                            Diagnostic::new(
                                &INVALID_POLICY_VALUE,
                                "step option `requires` must be a capability or a list of capabilities",
                            )
                            .with_primary(opt.value.span, "not a string or a list of strings")
                            .with_help("write `requires=\"memory.write\"` or `requires=[\"memory.write\", \"plugins.invoke\"]`"),
                        );
                    }
                }
                other => {
                    let mut d = Diagnostic::new(
                        &UNKNOWN_STEP_OPTION,
                        format!("unknown step option `{other}`"),
                    )
                    .with_primary(opt.name.span, "not a step option");
                    d = match suggest(other, STEP_OPTIONS.iter().copied()) {
                        Some(s) => did_you_mean(d, opt.name.span, s),
                        None => d.with_help(
                            "step options are `retry=`, `timeout=`, `backoff=` and `requires=`",
                        ),
                    };
                    diags.push(d);
                }
            }
        }
        spec
    }
}

/// The strings of a `requires=` value: one string or a list of strings.
fn capabilities(v: &Expr) -> Option<Vec<String>> {
    match &v.kind {
        ExprKind::Str(s) => Some(vec![s.clone()]),
        ExprKind::List(items) => items
            .iter()
            .map(|it| match &it.kind {
                ExprKind::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The `policy:` settings the runtime applies (docs/contract/LANGUAGE.md section 6).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// `timeout`: the run's wall-clock budget in ms; a zero duration sets none.
    pub timeout_ms: Option<f64>,
    /// `max_steps`: the instructions the run may execute.
    pub max_steps: Option<u64>,
    /// `max_memory`: the bytes the run may hold (see [`parse_size`]).
    pub max_memory: Option<u64>,
    /// `deterministic: true`: `now()` is frozen and only deterministic plugins run.
    pub deterministic: bool,
    /// `seed`: the seed of the run's random choices.
    pub seed: Option<i64>,
    /// `mock_io: true`: plugin invocations return null without running.
    pub mock_io: bool,
}

impl Policy {
    /// Apply a `policy:` block's entries (a later block's setting wins); each problem is a
    /// diagnostic and leaves that setting as it was.
    pub(crate) fn apply(&mut self, entries: &[MapEntry], diags: &mut Vec<Diagnostic>) {
        for e in entries {
            if !POLICY_KEYS.contains(&e.key.as_str()) {
                let mut d = Diagnostic::new(
                    &UNKNOWN_POLICY_KEY,
                    format!("unknown policy key `{}`", e.key),
                )
                .with_primary(e.key_span, "not a policy the runtime applies");
                d = match suggest(&e.key, POLICY_KEYS.iter().copied()) {
                    Some(s) => did_you_mean(d, e.key_span, s),
                    None => d.with_help(format!(
                        "known keys: {}; other keys are kept but have no effect",
                        POLICY_KEYS.join(", ")
                    )),
                };
                diags.push(d);
                continue;
            }
            let MapValue::Expr(v) = &e.value else {
                if matches!(
                    e.key.as_str(),
                    "timeout" | "max_steps" | "max_memory" | "deterministic" | "seed" | "mock_io"
                ) {
                    diags.push(policy_kind(e.key_span, &e.key, "a single value"));
                }
                continue;
            };
            match (e.key.as_str(), &v.kind) {
                ("timeout", _) => {
                    if let Some(ms) = duration(v, "policy `timeout`", diags) {
                        self.timeout_ms = Some(ms).filter(|ms| *ms > 0.0);
                    }
                }
                ("max_steps", ExprKind::Int(n)) if *n > 0 => self.max_steps = Some(*n as u64),
                ("max_steps", _) if is_constant(v) => {
                    diags.push(policy_kind(v.span, "max_steps", "a positive integer"))
                }
                ("max_memory", _) => {
                    if let Some(bytes) = memory_size(v, diags) {
                        self.max_memory = Some(bytes);
                    }
                }
                ("seed", _) => match int_value(v) {
                    Some(n) => self.seed = Some(n),
                    None if is_constant(v) => diags.push(policy_kind(v.span, "seed", "an integer")),
                    None => {}
                },
                ("deterministic", ExprKind::Bool(b)) => self.deterministic = *b,
                ("mock_io", ExprKind::Bool(b)) => self.mock_io = *b,
                ("deterministic" | "mock_io", _) if is_constant(v) => {
                    diags.push(policy_kind(v.span, &e.key, "`true` or `false`"))
                }
                _ => {}
            }
        }
    }
}

fn policy_kind(span: Span, key: &str, wanted: &str) -> Diagnostic {
    Diagnostic::new(
        &INVALID_POLICY_VALUE,
        format!("policy `{key}` must be {wanted}"),
    )
    .with_primary(span, "wrong kind of value")
    .with_help(format!("set `{key}` to {wanted}"))
}

/// `policy: max_memory`: a size string (`"256MB"`) or a whole number of bytes. A value that
/// is not a positive size is A134; a computed one (A113, already reported) is `None`.
fn memory_size(v: &Expr, diags: &mut Vec<Diagnostic>) -> Option<u64> {
    let parsed = match &v.kind {
        ExprKind::Str(s) => parse_size(s),
        ExprKind::Int(n) => parse_size(&n.to_string()),
        ExprKind::Unary {
            op: UnaryOp::Neg, ..
        } if is_constant(v) => Err("a size must not be negative".to_string()),
        ExprKind::Error => return None,
        _ if !is_constant(v) => return None,
        _ => Err("a size is a string such as \"256MB\" or a number of bytes".to_string()),
    };
    parsed
        .map_err(|why| {
            diags.push(
                Diagnostic::new(
                    &INVALID_MEMORY_SIZE,
                    format!("policy `max_memory` is not a valid size: {why}"),
                )
                .with_primary(v.span, "not a size")
                .with_help(SIZE_HELP),
            )
        })
        .ok()
}

/// How to write a size, for diagnostics and usage errors.
pub const SIZE_HELP: &str = "write a positive size such as \"512MB\", \"1GiB\" or a number of bytes (units B, KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024; any case)";

/// The one parser of a memory size (`policy: max_memory` and `aether run --max-memory`): a
/// positive number, optionally with a fraction, then optionally a unit: `B`, `KB`, `MB`,
/// `GB`, `TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), in any case,
/// with or without a space. A bare number is bytes. Zero, negative numbers, unknown units and
/// sizes past 2^64 bytes are errors (the text says why).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the size is empty".to_string());
    }
    if t.starts_with('-') {
        return Err("a size must not be negative".to_string());
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim_start());
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(format!("`{t}` does not start with a number"));
    }
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(format!("unknown unit `{unit}`")),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{num}` is not a number"))?;
    let bytes = (value * scale as f64).floor();
    if bytes < 1.0 {
        return Err("a size must be at least 1 byte".to_string());
    }
    if bytes >= u64::MAX as f64 {
        return Err("a size must be below 16 EiB".to_string());
    }
    Ok(bytes as u64)
}

/// A size for people: the largest binary unit that keeps it at or above 1 (`256 MiB`,
/// `1.5 GiB`, `900 B`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A constant setting (a mapping block's entry, a step option): a computed value is a
/// diagnostic.
pub(crate) fn constant(v: &Expr, context: &str, diags: &mut Vec<Diagnostic>) {
    if !is_constant(v) {
        diags.push(
            Diagnostic::new(&NON_CONSTANT_IN_MAPPING_BLOCK, format!("{context} values must be constants"))
                .with_primary(v.span, "computed value")
                .with_help("use a literal (number, string, duration, bool, null, or a list or map of them); compute values in statements instead"),
        );
    }
}

/// A duration setting in ms: a duration literal or a string such as `"30s"`. A value of
/// another kind is a diagnostic; a computed one (already reported) or an error node is
/// `None` without one.
fn duration(v: &Expr, what: &str, diags: &mut Vec<Diagnostic>) -> Option<f64> {
    if let ExprKind::Unary {
        op: UnaryOp::Neg,
        operand,
    } = &v.kind
    {
        if matches!(operand.kind, ExprKind::Duration(_)) {
            diags.push(
                Diagnostic::new(&INVALID_DURATION, format!("{what} must not be negative"))
                    .with_primary(v.span, "negative duration")
                    .with_help("write a positive duration such as `30s`"),
            );
            return None;
        }
    }
    let (ms, ok) = match &v.kind {
        ExprKind::Duration(ms) => (Some(*ms), true),
        ExprKind::Error => (None, true),
        ExprKind::Str(s) => {
            let ms = parse_duration(s);
            (ms, ms.is_some())
        }
        _ => (None, !is_constant(v)),
    };
    if !ok {
        diags.push(
            Diagnostic::new(&INVALID_DURATION, format!("{what} must be a duration"))
                .with_primary(v.span, "not a duration")
                .with_help("write a duration such as `30s`, `1.5s`, `150ms`, `5m` or `1h30m` (a string like \"30s\" also works)"),
        );
    }
    ms
}

/// A comparison operator of a plugin version constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionOp {
    Eq,
    Ge,
    Le,
    Gt,
    Lt,
}

impl VersionOp {
    /// The operator as a requirement writes it (`==`, `>=`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            VersionOp::Eq => "==",
            VersionOp::Ge => ">=",
            VersionOp::Le => "<=",
            VersionOp::Gt => ">",
            VersionOp::Lt => "<",
        }
    }
}

/// One `op version` part of a plugin requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionConstraint {
    pub op: VersionOp,
    /// A version like `1`, `1.2` or `1.2.3`, with an optional `-pre` or `+build` suffix.
    pub version: String,
}

/// A `require: plugins:` entry: `name`, `name>=1.2`, `name>=1.0,<2.0.0` (a comma means
/// "and"). The one grammar of plugin requirements: the checker reports an entry that does
/// not parse, the runtime checks a parsed one against the installed plugins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRequirement {
    pub name: String,
    /// Every constraint must hold; none means any version.
    pub constraints: Vec<VersionConstraint>,
    /// The entry as written, trimmed, for messages.
    pub text: String,
}

impl PluginRequirement {
    /// Parse a requirement; the error says what is wrong with it.
    pub fn parse(req: &str) -> Result<PluginRequirement, String> {
        let req = req.trim();
        let name_end = req
            .find(['=', '<', '>', '!', '~', '^'])
            .unwrap_or(req.len());
        let name = req[..name_end].trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err("the plugin name must be letters, digits, `_`, `-` or `.`".into());
        }
        let mut constraints = Vec::new();
        let rest = &req[name_end..];
        if !rest.is_empty() {
            for c in rest.split(',') {
                let c = c.trim();
                if c.is_empty() {
                    return Err("an empty constraint (a stray `,`)".into());
                }
                let op = [
                    VersionOp::Ge,
                    VersionOp::Le,
                    VersionOp::Eq,
                    VersionOp::Gt,
                    VersionOp::Lt,
                ]
                .into_iter()
                .find(|op| c.starts_with(op.as_str()))
                .ok_or_else(|| {
                    format!("`{c}` does not start with one of the operators ==, >=, <=, >, <")
                })?;
                let version = c[op.as_str().len()..].trim();
                if !is_semver_like(version) {
                    return Err(format!("`{version}` is not a version like 1.2.3"));
                }
                constraints.push(VersionConstraint {
                    op,
                    version: version.to_string(),
                });
            }
        }
        Ok(PluginRequirement {
            name: name.to_string(),
            constraints,
            text: req.to_string(),
        })
    }

    /// The constraints as written after the name (`>=1.0,<2`), empty when there are none.
    pub fn constraint_text(&self) -> String {
        self.constraints
            .iter()
            .map(|c| format!("{}{}", c.op.as_str(), c.version))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn is_semver_like(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    !core.is_empty()
        && parts.len() <= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decl::{FnDecl, Registry};

    fn analyze(src: &str) -> crate::Analysis {
        let mut registry = Registry::new();
        registry.declare(FnDecl::global("fetch").param("url"));
        crate::analyze(src, &registry)
    }

    fn rules(a: &crate::Analysis) -> Vec<(&'static str, String)> {
        a.diagnostics
            .iter()
            .map(|d| (d.rule().id, d.message().to_string()))
            .collect()
    }

    #[test]
    fn sizes_parse_in_one_place() {
        assert_eq!(parse_size("256MB"), Ok(256_000_000));
        assert_eq!(parse_size("256 mib"), Ok(256 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 2 kB "), Ok(2000));
        for bad in [
            "",
            "MB",
            "-1MB",
            "0",
            "0.1",
            "12 parsecs",
            "1.2.3MB",
            ".5GB",
            "99999999TB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(format_size(256 << 20), "256 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(900), "900 B");
    }

    #[test]
    fn max_memory_is_a_positive_size() {
        let ok = analyze("goal: \"g\"\npolicy:\n    max_memory: \"64MiB\"\n");
        assert_eq!(rules(&ok), vec![]);
        assert_eq!(ok.specs.policy.max_memory, Some(64 << 20));
        let bytes = analyze("goal: \"g\"\npolicy:\n    max_memory: 1000000\n");
        assert_eq!(bytes.specs.policy.max_memory, Some(1_000_000));
        for bad in ["\"64 furlongs\"", "-5", "\"-5MB\"", "0", "true", "\"\""] {
            let a = analyze(&format!("goal: \"g\"\npolicy:\n    max_memory: {bad}\n"));
            let got = rules(&a);
            assert_eq!(got.len(), 1, "{bad}: {got:?}");
            assert_eq!(got[0].0, "A134", "{bad}: {got:?}");
            assert_eq!(a.specs.policy.max_memory, None);
        }
    }

    #[test]
    fn step_options_are_typed_by_the_check() {
        let src = "goal: \"g\"\nworkflow:\n    steps:\n        - fetch(\"a\") retry=3 backoff=\"250ms\" timeout=2s requires=\"plugins.invoke\"\n        - fetch(\"b\")\n";
        let a = analyze(src);
        assert_eq!(rules(&a), vec![]);
        let first = src.find("fetch(\"a\")").expect("first step");
        let span = |start: usize| Span::new(start, start + "fetch(\"a\")".len());
        assert_eq!(
            a.specs.step(span(first)),
            Some(&StepSpec {
                retry: 3,
                backoff_ms: 250.0,
                timeout_ms: Some(2000.0),
                requires: vec!["plugins.invoke".into()],
            })
        );
        let second = src.find("fetch(\"b\")").expect("second step");
        assert_eq!(a.specs.step(span(second)), Some(&StepSpec::default()));
    }

    #[test]
    fn a_requires_option_that_is_not_strings_is_reported() {
        // The compiler used to refuse this at run time (UNSUPPORTED_FEATURE); the check
        // reports it now, with the other step options' rule.
        let src = "goal: \"g\"\nworkflow:\n    steps:\n        - fetch(\"a\") requires=[1]\n";
        assert_eq!(
            rules(&analyze(src)),
            vec![(
                INVALID_POLICY_VALUE.id,
                "step option `requires` must be a capability or a list of capabilities".into()
            )]
        );
    }

    #[test]
    fn the_policy_is_typed_by_the_check_and_a_later_block_wins() {
        let src = "goal: \"g\"\npolicy:\n    timeout: \"1m\"\n    max_steps: 500\n    deterministic: true\n    seed: -7\npolicy:\n    mock_io: true\n    timeout: 0s\n";
        let a = analyze(src);
        assert_eq!(rules(&a), vec![]);
        assert_eq!(
            a.specs.policy,
            Policy {
                timeout_ms: None,
                max_steps: Some(500),
                max_memory: None,
                deterministic: true,
                seed: Some(-7),
                mock_io: true,
            }
        );
    }

    #[test]
    fn plugin_requirements_are_typed_by_the_check() {
        let src = "goal: \"g\"\nrequire:\n    plugins: [\"weather>=1.2,<2\", \"bad~1\"]\n";
        let a = analyze(src);
        assert_eq!(
            rules(&a),
            vec![(
                INVALID_PLUGIN_REQUIREMENT.id,
                "invalid plugin requirement `bad~1`: `~1` does not start with one of the operators ==, >=, <=, >, <".into()
            )]
        );
        assert_eq!(a.specs.plugins.len(), 1);
        assert_eq!(a.specs.plugins[0].name, "weather");
    }

    fn name(req: &str) -> Result<String, String> {
        PluginRequirement::parse(req).map(|r| r.name)
    }

    #[test]
    fn plugin_requirements() {
        assert_eq!(name("weather"), Ok("weather".into()));
        assert_eq!(name("weather>=1.2.0,<2"), Ok("weather".into()));
        assert_eq!(name("w==1.0.0-beta.1"), Ok("w".into()));
        assert!(name("weather~1").is_err());
        assert!(name(">=1.0").is_err());
        assert!(name("w>=x").is_err());
        assert!(name("w>=1.0,").is_err());
        assert!(name("").is_err());
    }

    #[test]
    fn plugin_requirement_constraints_are_typed() {
        let req = PluginRequirement::parse(" sysinfo >= 1.0, < 2 ").expect("parses");
        assert_eq!(req.name, "sysinfo");
        assert_eq!(req.text, "sysinfo >= 1.0, < 2");
        assert_eq!(
            req.constraints,
            vec![
                VersionConstraint {
                    op: VersionOp::Ge,
                    version: "1.0".into()
                },
                VersionConstraint {
                    op: VersionOp::Lt,
                    version: "2".into()
                },
            ]
        );
        assert_eq!(req.constraint_text(), ">=1.0,<2");
    }
}
