//! The intrinsics: functions that need the VM's own streams or state (`print`, `log`,
//! `trace`, `narrate`, `metrics`, `now`, `load_feature_index`), each declared beside its
//! implementation.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use aether_check::decl::{Capability, DefaultValue, FnDecl};
use aether_syntax::Span;

use super::{map_of, Fiber, Vm};
use crate::functions::Args;
use crate::value::{Map, Value, ValueError};

/// Log levels, least first.
pub(super) const LEVELS: &[&str] = &["debug", "info", "warning", "error"];

/// Which intrinsic a table entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Intrinsic {
    Print,
    Log,
    Trace,
    Narrate,
    Metrics,
    Now,
    FeatureIndex,
}

/// The intrinsics, each a declaration with the implementation it selects.
pub(crate) fn intrinsics() -> Vec<(FnDecl, Intrinsic)> {
    vec![
        (
            FnDecl::global("print")
                .rest("args")
                .effectful()
                .doc("Writes the arguments to stdout."),
            Intrinsic::Print,
        ),
        (
            FnDecl::global("now")
                .doc("Seconds since the epoch as a float (nondeterministic, but no side effects)."),
            Intrinsic::Now,
        ),
        (
            FnDecl::global("log")
                .param("message")
                .opt("level", DefaultValue::Str("info"))
                .effectful()
                .doc("Records message at level on stderr and the event stream (and in memory, kind log)."),
            Intrinsic::Log,
        ),
        (
            FnDecl::global("trace")
                .opt("level", DefaultValue::Str("debug"))
                .effectful()
                .doc("Sets the least level recorded in the run's event stream from here on."),
            Intrinsic::Trace,
        ),
        (
            FnDecl::global("narrate")
                .param("text")
                .effectful()
                .doc("Records a narration text on stderr and the event stream."),
            Intrinsic::Narrate,
        ),
        (
            FnDecl::global("metrics")
                .param("map")
                .capability(Capability::HomeostasisRecord)
                .effectful()
                .doc("Records each entry of map as a homeostasis metric."),
            Intrinsic::Metrics,
        ),
        (
            FnDecl::global("load_feature_index")
                .doc("A map of every module to its function names (introspection)."),
            Intrinsic::FeatureIndex,
        ),
    ]
}

fn now_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The index in [`LEVELS`] of a level argument (null is `info`, `warn` is `warning`).
pub(super) fn level_of(v: Option<&Value>) -> Result<usize, String> {
    match v {
        None | Some(Value::Null) => Ok(1),
        Some(Value::Str(s)) => {
            let s = if &**s == "warn" { "warning" } else { s };
            LEVELS.iter().position(|l| *l == s).ok_or_else(|| {
                format!("unknown log level `{s}`: use debug, info, warning or error")
            })
        }
        Some(other) => Err(format!(
            "a log level is a string (debug, info, warning or error), not {}",
            other.type_name()
        )),
    }
}

fn message(e: ValueError) -> String {
    e.message
}

impl<W: Write> Vm<'_, W> {
    pub(super) fn call_intrinsic(
        &mut self,
        f: &mut Fiber,
        which: Intrinsic,
        args: &Args<'_>,
        span: Option<Span>,
    ) -> Result<Value, String> {
        match which {
            Intrinsic::Print => {
                let mut line = String::new();
                for (i, it) in args.rest("args").map_err(message)?.iter().enumerate() {
                    if i > 0 {
                        line.push(' ');
                    }
                    line.push_str(&it.display_in_budget().map_err(message)?);
                }
                line.push('\n');
                self.out
                    .write_all(line.as_bytes())
                    .map_err(|e| format!("cannot write output: {e}"))?;
                Ok(Value::Null)
            }
            Intrinsic::Log => {
                let message = args
                    .get("message")
                    .map_err(message)?
                    .display_in_budget()
                    .map_err(message)?;
                let level = level_of(Some(args.get("level").map_err(self::message)?))?;
                if level >= self.run.min_level {
                    self.write_err(&format!("[{}] {message}", LEVELS[level]));
                    let fields = map_of(vec![
                        ("level", Value::from(LEVELS[level])),
                        ("message", Value::from(message)),
                    ]);
                    self.record(f, "log", fields, span);
                }
                Ok(Value::Null)
            }
            Intrinsic::Trace => {
                let level = level_of(Some(args.get("level").map_err(message)?))?;
                self.run.min_level = level;
                let fields = map_of(vec![("level", Value::from(LEVELS[level]))]);
                self.record(f, "trace", fields, span);
                Ok(Value::Null)
            }
            Intrinsic::Narrate => {
                let text = args
                    .get("text")
                    .map_err(message)?
                    .display_in_budget()
                    .map_err(message)?;
                self.write_err(&format!("[narrate] {text}"));
                self.record(
                    f,
                    "narrate",
                    map_of(vec![("text", Value::from(text))]),
                    span,
                );
                Ok(Value::Null)
            }
            Intrinsic::Metrics => {
                let Value::Map(m) = args.get("map").map_err(message)? else {
                    let kind = args.get("map").map_or("nothing", Value::type_name);
                    return Err(format!(
                        "metrics() takes a map of metric names to numbers, not {kind}"
                    ));
                };
                for (k, v) in m.iter() {
                    if !matches!(v, Value::Int(_) | Value::Float(_) | Value::Duration(_)) {
                        return Err(format!(
                            "metric `{k}` must be a number or a duration, not {}",
                            v.type_name()
                        ));
                    }
                }
                for (k, v) in m.iter() {
                    self.host.metric(k, v);
                    let fields = map_of(vec![("name", Value::from(k)), ("value", v.clone())]);
                    self.record(f, "metric", fields, span);
                }
                Ok(Value::Null)
            }
            Intrinsic::Now => {
                let t = if self.config.deterministic {
                    self.run.started_wall
                } else {
                    SystemTime::now()
                };
                Ok(Value::Float(now_secs(t)))
            }
            Intrinsic::FeatureIndex => {
                // Introspection of this build's modules, as the checker sees them.
                let registry = self.functions.registry();
                let index: Map = registry
                    .module_names()
                    .map(|m| {
                        let fns: Vec<Value> = registry
                            .module_fns(m)
                            .map(|d| Value::from(d.name))
                            .collect();
                        (m, Value::from(fns))
                    })
                    .collect();
                Ok(Value::from(index))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(name: &str) -> FnDecl {
        intrinsics()
            .into_iter()
            .map(|(d, _)| d)
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("{name} is not an intrinsic"))
    }

    #[test]
    fn signatures_follow_the_contract() {
        let cases = [
            ("print", "print(args...)"),
            ("now", "now()"),
            ("log", "log(message, level=\"info\")"),
            ("trace", "trace(level=\"debug\")"),
            ("narrate", "narrate(text)"),
            ("metrics", "metrics(map)"),
            ("load_feature_index", "load_feature_index()"),
        ];
        for (name, sig) in cases {
            assert_eq!(find(name).signature(), sig);
        }
    }

    #[test]
    fn only_now_and_the_index_are_free_of_effects_and_only_metrics_needs_a_capability() {
        for (d, _) in intrinsics() {
            let pure = matches!(d.name, "now" | "load_feature_index");
            assert_eq!(d.effectful, !pure, "{}", d.name);
            let cap = (d.name == "metrics").then_some(Capability::HomeostasisRecord);
            assert_eq!(d.capability, cap, "{}", d.name);
        }
        assert!(find("now").doc.contains("nondeterministic"));
    }

    #[test]
    fn levels_accept_warn_and_refuse_others() {
        assert_eq!(level_of(None), Ok(1));
        assert_eq!(level_of(Some(&Value::from("warn"))), Ok(2));
        assert!(level_of(Some(&Value::from("loud"))).is_err());
    }
}
