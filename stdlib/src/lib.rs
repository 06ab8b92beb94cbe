//! Declarations of the global functions of docs/contract/STDLIB.md that need no runtime module, and
//! the implementations of the pure ones ([`natives`]).

pub mod natives;

pub use natives::{natives, Native};

use aether_check::decl::{DefaultValue, FnDecl};

/// The declarations of the Core, Observability and runtime-free Aether 1.1 global functions.
pub fn declarations() -> Vec<FnDecl> {
    let mut decls = core();
    decls.extend(observability());
    decls.extend(aether_1_1());
    decls
}

/// Core: conversions, collections, strings, JSON, time and printing.
fn core() -> Vec<FnDecl> {
    vec![
        FnDecl::global("len")
            .param("x")
            .doc("Number of elements of a list or map, or characters of a string."),
        FnDecl::global("str").param("x").doc("The value converted to a string."),
        FnDecl::global("int").param("x").doc("The value converted to an int."),
        FnDecl::global("float").param("x").doc("The value converted to a float."),
        FnDecl::global("bool").param("x").doc("The truthiness of the value as a bool."),
        FnDecl::global("type").param("x").doc("The name of the value's type."),
        FnDecl::global("range")
            .param("a")
            .opt("b", DefaultValue::Null)
            .opt("step", DefaultValue::Int(1))
            .doc("range(n): 0 up to n (one argument is the stop); range(a, b, step=1): a up to b, exclusive."),
        FnDecl::global("keys").param("m").doc("The keys of map m as a list."),
        FnDecl::global("values").param("m").doc("The values of map m as a list."),
        FnDecl::global("get")
            .param("m")
            .param("k")
            .opt("default", DefaultValue::Null)
            .doc("The value at key k of m, or default when absent."),
        FnDecl::global("contains")
            .param("c")
            .param("x")
            .doc("Whether collection or string c contains x."),
        FnDecl::global("append")
            .param("xs")
            .param("x")
            .doc("A new list: xs followed by x (xs is not mutated)."),
        FnDecl::global("concat")
            .param("a")
            .param("b")
            .doc("A new value: a followed by b (the arguments are not mutated)."),
        FnDecl::global("sorted")
            .param("xs")
            .opt("reverse", DefaultValue::Bool(false))
            .doc("A new sorted list of xs, descending when reverse (xs is not mutated)."),
        FnDecl::global("min")
            .rest("args")
            .doc("The smallest element of one list argument, or of several values."),
        FnDecl::global("max")
            .rest("args")
            .doc("The largest element of one list argument, or of several values."),
        FnDecl::global("sum").param("xs").doc("The sum of the numbers of xs."),
        FnDecl::global("abs").param("x").doc("The absolute value of x."),
        FnDecl::global("round")
            .param("x")
            .opt("digits", DefaultValue::Int(0))
            .doc("x rounded to digits decimal places."),
        FnDecl::global("format")
            .param("template")
            .rest("args")
            .doc("template with each {} placeholder replaced by the next argument."),
        FnDecl::global("split")
            .param("s")
            .param("sep")
            .doc("The parts of string s between occurrences of sep."),
        FnDecl::global("join")
            .param("xs")
            .param("sep")
            .doc("The strings of xs joined with sep between them."),
        FnDecl::global("upper").param("s").doc("String s in upper case."),
        FnDecl::global("lower").param("s").doc("String s in lower case."),
        FnDecl::global("trim")
            .param("s")
            .doc("String s without leading and trailing whitespace."),
        FnDecl::global("startswith")
            .param("s")
            .param("p")
            .doc("Whether string s starts with prefix p."),
        FnDecl::global("endswith")
            .param("s")
            .param("p")
            .doc("Whether string s ends with suffix p."),
        FnDecl::global("json_encode").param("x").doc("The value encoded as a JSON string."),
        FnDecl::global("json_decode").param("s").doc("The value decoded from JSON string s."),
        FnDecl::global("now")
            .doc("Seconds since the epoch as a float (nondeterministic, but no side effects)."),
        FnDecl::global("print")
            .rest("args")
            .effectful()
            .doc("Writes the arguments to stdout."),
    ]
}

/// Observability: writes to stderr and the event stream, never stdout.
fn observability() -> Vec<FnDecl> {
    vec![
        FnDecl::global("log")
            .param("message")
            .opt("level", DefaultValue::Str("info"))
            .effectful()
            .doc("Records message at level on stderr and the event stream (and in memory, kind log)."),
        FnDecl::global("trace")
            .opt("level", DefaultValue::Str("debug"))
            .effectful()
            .doc("Sets the least level recorded in the run's event stream from here on."),
        FnDecl::global("narrate")
            .param("text")
            .effectful()
            .doc("Records a narration text on stderr and the event stream."),
        FnDecl::global("metrics")
            .param("map")
            .effectful()
            .doc("Records each entry of map as a homeostasis metric."),
    ]
}

/// The Aether 1.1 names that need no runtime module.
fn aether_1_1() -> Vec<FnDecl> {
    vec![
        FnDecl::global("summarize")
            .param("x")
            .doc("Numbers: {count, mean, min, max, p50, p95}; strings or records: {count, first, last}; a string: its first 200 characters."),
        FnDecl::global("detect_anomalies")
            .param("x")
            .opt("threshold", DefaultValue::Float(3.0))
            .doc("The {index, value, z} of the elements whose population z-score exceeds threshold in absolute value."),
        FnDecl::global("evaluate_confidence")
            .param("x")
            .doc("A float: a number clamped to [0, 1], a map's confidence key, or a list's mean."),
        FnDecl::global("check_confidence")
            .param("x")
            .opt("threshold", DefaultValue::Float(0.7))
            .doc("Whether evaluate_confidence(x) >= threshold."),
        FnDecl::global("load_feature_index")
            .doc("A map of every module to its function names (introspection)."),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_check::decl::ParamKind;
    use std::collections::BTreeSet;

    /// Every global of docs/contract/STDLIB.md that needs no runtime module.
    const EXPECTED: &[&str] = &[
        // Core
        "len",
        "str",
        "int",
        "float",
        "bool",
        "type",
        "range",
        "keys",
        "values",
        "get",
        "contains",
        "append",
        "concat",
        "sorted",
        "min",
        "max",
        "sum",
        "abs",
        "round",
        "format",
        "split",
        "join",
        "upper",
        "lower",
        "trim",
        "startswith",
        "endswith",
        "json_encode",
        "json_decode",
        "now",
        "print",
        // Observability
        "log",
        "trace",
        "narrate",
        "metrics",
        // Aether 1.1 (runtime-free)
        "summarize",
        "detect_anomalies",
        "evaluate_confidence",
        "check_confidence",
        "load_feature_index",
    ];

    fn find(name: &str) -> FnDecl {
        declarations()
            .into_iter()
            .find(|d| d.qualified_name() == name)
            .unwrap_or_else(|| panic!("{name} is not declared"))
    }

    #[test]
    fn no_duplicate_names() {
        let mut seen = BTreeSet::new();
        for d in declarations() {
            assert!(
                seen.insert(d.qualified_name()),
                "{} declared twice",
                d.qualified_name()
            );
        }
    }

    #[test]
    fn declares_exactly_the_runtime_free_globals() {
        let declared: BTreeSet<String> =
            declarations().iter().map(FnDecl::qualified_name).collect();
        let expected: BTreeSet<String> = EXPECTED.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            EXPECTED.len(),
            expected.len(),
            "EXPECTED lists a name twice"
        );
        assert_eq!(declared, expected);
    }

    #[test]
    fn all_are_globals_with_docs() {
        for d in declarations() {
            assert_eq!(d.module, None, "{} must be global", d.name);
            assert!(!d.doc.is_empty(), "{} has no doc", d.name);
        }
    }

    #[test]
    fn exact_signatures() {
        let cases = [
            ("get", "get(m, k, default=null)"),
            ("range", "range(a, b=null, step=1)"),
            ("sorted", "sorted(xs, reverse=false)"),
            ("round", "round(x, digits=0)"),
            ("min", "min(args...)"),
            ("max", "max(args...)"),
            ("format", "format(template, args...)"),
            ("print", "print(args...)"),
            ("now", "now()"),
            ("log", "log(message, level=\"info\")"),
            ("trace", "trace(level=\"debug\")"),
            ("metrics", "metrics(map)"),
            ("detect_anomalies", "detect_anomalies(x, threshold=3.0)"),
            ("check_confidence", "check_confidence(x, threshold=0.7)"),
            ("load_feature_index", "load_feature_index()"),
        ];
        for (name, sig) in cases {
            assert_eq!(find(name).signature(), sig);
        }
    }

    #[test]
    fn range_documents_the_one_argument_form() {
        assert!(find("range").doc.contains("one argument is the stop"));
    }

    #[test]
    fn none_needs_a_capability() {
        for d in declarations() {
            assert_eq!(d.capability, None, "{} needs no capability", d.name);
        }
    }

    #[test]
    fn effectful_are_exactly_output_and_observability() {
        let effectful: BTreeSet<&str> = declarations()
            .iter()
            .filter(|d| d.effectful)
            .map(|d| d.name)
            .collect();
        let expected: BTreeSet<&str> = ["print", "log", "trace", "narrate", "metrics"]
            .into_iter()
            .collect();
        assert_eq!(effectful, expected);
        assert!(find("now").doc.contains("nondeterministic"));
    }

    #[test]
    fn parameter_order_is_well_formed() {
        for d in declarations() {
            let mut seen_variadic = false;
            let mut seen_default = false;
            for p in &d.params {
                match p.kind {
                    ParamKind::Normal => {
                        assert!(!seen_variadic, "{}: {} after the variadic", d.name, p.name);
                        if p.default.is_some() {
                            seen_default = true;
                        } else {
                            assert!(
                                !seen_default,
                                "{}: required {} after optional",
                                d.name, p.name
                            );
                        }
                    }
                    ParamKind::Variadic => {
                        assert!(!seen_variadic, "{}: two variadics", d.name);
                        seen_variadic = true;
                    }
                    ParamKind::KeywordOnly => {
                        assert!(
                            seen_variadic,
                            "{}: keyword-only {} without variadic",
                            d.name, p.name
                        );
                        assert!(
                            p.default.is_some(),
                            "{}: keyword-only {} without default",
                            d.name,
                            p.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn variadics_are_declared_where_marked() {
        let variadic: BTreeSet<&str> = declarations()
            .iter()
            .filter(|d| d.is_variadic())
            .map(|d| d.name)
            .collect();
        let expected: BTreeSet<&str> = ["min", "max", "format", "print"].into_iter().collect();
        assert_eq!(variadic, expected);
    }
}
