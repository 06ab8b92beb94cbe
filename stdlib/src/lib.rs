//! The pure global functions of docs/contract/STDLIB.md (Core and the pure Aether 1.1 names), each
//! declared beside its implementation, one file per section of the contract.
//!
//! A native is a `(FnDecl, NativeFn)` pair ([`aether_vm::Native`]) in its section's
//! `natives()`; [`natives`] collects them for the function table the CLI assembles. Its
//! implementation reads the arguments the compiler bound against that declaration by
//! parameter name (`args.get("xs")`, `args.rest("args")` for a variadic, which arrives as
//! one list: `min(3, 1)` binds `args` to `[3, 1]`, `min([3, 1])` to `[[3, 1]]`). A native
//! never mutates its arguments.
//!
//! The declared globals that need the VM (`print`, `log`, `trace`, `narrate`,
//! `metrics`, `now`, `load_feature_index`) are its intrinsics, declared in `aether-vm`;
//! those that need a runtime module (`store`, `reflect`, ...) are declared in
//! `aether-runtime`.
//!
//! Decisions where docs/contract/STDLIB.md is silent (each is repeated on the function it concerns):
//!
//! - Errors are `ValueError`s in lower case without a trailing period that name the
//!   function, e.g. `len() takes a str, list or map, not int`. An error of a value
//!   operation inside a native is prefixed with the function: `sorted(): cannot compare
//!   int with str`.
//! - Empty inputs: `min`/`max`/`summarize`/`evaluate_confidence` of an empty list are
//!   errors (there is no answer); `sum([])` is `0` and `detect_anomalies([])` is `[]`
//!   (their natural empty results).
//! - `int("3.7")` is `3`: a string that is not an integer is read as a float and
//!   truncated like `int(3.7)`. Surrounding whitespace is ignored by `int` and `float`;
//!   `"inf"` and `"nan"` are not numbers.
//! - `get` on a map with a non-string key gives the default (a non-string is never a
//!   key, as with `in`); on a list, an index outside `0..len` (negative included) gives
//!   the default and a non-int index is an error.
//! - `sorted`, `min` and `max` need every element to be comparable with the first
//!   (numbers, strings or durations), even for a single element: `sorted([{}])` is an
//!   error. Sorting is stable, also with `reverse=true`. Ties in `min`/`max` give the
//!   first of the equal elements.
//! - `round(x, digits)`: an int stays an int whatever `digits`; negative `digits` is an
//!   error. A float is rounded half away from zero *on the decimal that `display()`
//!   shows* (the shortest text that reads back as the same float), so `round(2.675, 2)`
//!   is `2.68` and `round(1.005, 2)` is `1.01`, as written, not as stored in binary.
//!   `digits=0` then gives an int (an error beyond the int range); `digits>0` a float.
//! - `join` displays each element with `display()` (strings raw), so `join([1, "a"],
//!   "-")` is `1-a`.
//! - `json_encode` writes the separators of `display()` (`{"a": 1, "b": [2, 3]}`, like
//!   Python's `json.dumps`), floats as `display()` does (`3.0`, `1e+21`), durations as
//!   strings of their canonical form, strings with JSON escapes and non-ASCII as is.
//!   `json_decode` keeps object order; a repeated key keeps its first position and last
//!   value.
//! - `summarize` accepts a list mixing strings and maps (`{count, first, last}`); a list
//!   mixing numbers with anything else, or holding another kind (bool, null, list,
//!   duration), is an error, as are maps and other kinds outside a list.
//! - `detect_anomalies`: in a list, every element must be a number or a map whose
//!   `value` is a number (else an error); for a record the output `value` is the whole
//!   record (the element unchanged). In a map, entries whose values are not numbers are
//!   skipped. If all values are equal (or there are none) there are no anomalies.
//! - `evaluate_confidence` is recursive: a map's `confidence` and each list element go
//!   through `evaluate_confidence` again, so a list's mean is the mean of its elements'
//!   clamped confidences and the result is always in `[0, 1]`. A map without
//!   `confidence`, or a bool, string, null or duration, is an error.
//! - Bools are never numbers here (`sum([true])`, `abs(true)` are errors), but `int` and
//!   `float` convert them to `1`/`0`.

mod collections;
mod conversions;
mod helpers;
mod insights;
mod json;
mod numbers;
mod strings;
#[cfg(test)]
mod test_support;

pub use helpers::RANGE_LIMIT;

use aether_vm::Native;

/// Every pure native, each a declaration with its implementation, in docs/contract/STDLIB.md order.
pub fn natives() -> Vec<Native> {
    let mut all = conversions::natives();
    all.extend(collections::natives());
    all.extend(numbers::natives());
    all.extend(strings::natives());
    all.extend(json::natives());
    all.extend(insights::natives());
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpers::number;
    use crate::test_support::*;
    use aether_check::decl::ParamKind;
    use aether_vm::{Args, Map, Value, ValueError};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn find(name: &str) -> aether_check::decl::FnDecl {
        natives()
            .into_iter()
            .map(|(d, _)| d)
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("{name} is not declared"))
    }

    #[test]
    fn pure_globals_with_docs_and_no_capability_or_effect() {
        let mut seen = BTreeSet::new();
        for (d, _) in natives() {
            assert!(seen.insert(d.name), "{} declared twice", d.name);
            assert_eq!(d.module, None, "{} must be global", d.name);
            assert!(!d.doc.is_empty(), "{} has no doc", d.name);
            assert_eq!(d.capability, None, "{} needs no capability", d.name);
            assert!(!d.effectful, "{} is pure", d.name);
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
            ("detect_anomalies", "detect_anomalies(x, threshold=3.0)"),
            ("check_confidence", "check_confidence(x, threshold=0.7)"),
        ];
        for (name, sig) in cases {
            assert_eq!(find(name).signature(), sig);
        }
        assert!(find("range").doc.contains("one argument is the stop"));
    }

    /// Arguments shaped as the VM binds them: one per parameter, a variadic as a list.
    fn bound(decl: &aether_check::decl::FnDecl, fill: &Value) -> Vec<Value> {
        decl.params
            .iter()
            .map(|p| match p.kind {
                ParamKind::Variadic => list(vec![]),
                _ => fill.clone(),
            })
            .collect()
    }

    #[test]
    fn natives_read_only_their_declared_parameters() {
        for (decl, f) in natives() {
            let name = decl.name;
            for fill in [Value::Null, Value::Int(1), s("x"), list(vec![])] {
                let args = bound(&decl, &fill);
                if let Err(e) = f(&Args::new(&decl, &args)) {
                    assert!(!e.message.contains("internal"), "{name}: {}", e.message);
                    assert!(e.message.starts_with(name), "{name}: {}", e.message);
                    assert!(!e.message.ends_with('.'), "{name}: {}", e.message);
                }
            }
        }
    }

    fn sorted_of(xs: Value, reverse: bool) -> Result<Value, ValueError> {
        call("sorted", vec![xs, Value::Bool(reverse)])
    }

    fn round_of(x: Value, digits: i64) -> Result<Value, ValueError> {
        call("round", vec![x, Value::Int(digits)])
    }

    fn number_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            (-1000i64..1000).prop_map(Value::Int),
            any::<i64>().prop_map(Value::Int),
            (-1e6f64..1e6).prop_map(Value::Float),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::Float),
        ]
    }

    /// Any value without durations (JSON can carry them only as strings).
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number_value(),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|es| Value::from(es.into_iter().collect::<Map>())),
            ]
        })
    }

    /// Any value, with small ints (so `range` stays small) and durations.
    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-20i64..20).prop_map(Value::Int),
            prop_oneof![Just(i64::MIN), Just(i64::MAX)].prop_map(Value::Int),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::Float),
            (-1e7f64..1e7).prop_map(Value::Duration),
            "[a-z{} ,.0-9]{0,6}".prop_map(Value::from),
            Just(Value::from("value")),
            Just(Value::from("confidence")),
        ];
        leaf.prop_recursive(2, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("value".to_string()),
                            Just("confidence".to_string()),
                            "[a-z]{1,3}"
                        ],
                        inner
                    ),
                    0..4
                )
                .prop_map(|es| Value::from(es.into_iter().collect::<Map>())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn sorted_is_an_ordered_permutation(
            xs in proptest::collection::vec(number_value(), 0..20),
            reverse in any::<bool>(),
        ) {
            let out = sorted_of(list(xs.clone()), reverse).unwrap();
            let Value::List(out) = &out else { panic!("not a list") };
            for pair in out.windows(2) {
                let ord = pair[0].compare(&pair[1]).unwrap();
                let in_order = if reverse { ord.is_ge() } else { ord.is_le() };
                prop_assert!(in_order);
            }
            let mut before: Vec<String> = xs.iter().map(Value::repr).collect();
            let mut after: Vec<String> = out.iter().map(Value::repr).collect();
            before.sort();
            after.sort();
            prop_assert_eq!(before, after);
            if !xs.is_empty() {
                let lo = call("min", vec![list(vec![list(xs.clone())])]).unwrap();
                let hi = call("max", vec![list(xs.clone())]).unwrap();
                let (smallest, largest) = if reverse {
                    (&out[out.len() - 1], &out[0])
                } else {
                    (&out[0], &out[out.len() - 1])
                };
                prop_assert!(lo.compare(smallest).unwrap().is_eq());
                prop_assert!(hi.compare(largest).unwrap().is_eq());
            }
        }

        #[test]
        fn json_round_trips(x in json_value()) {
            let text = call("json_encode", vec![x.clone()]).unwrap();
            let back = call("json_decode", vec![text.clone()]).unwrap();
            prop_assert_eq!(back.repr(), x.repr(), "through {}", text.display());
        }

        #[test]
        fn round_stays_within_half_a_unit(x in -1e12f64..1e12, digits in 0i64..8) {
            let r = round_of(Value::Float(x), digits).unwrap();
            let r = number(&r).unwrap();
            let unit = 10f64.powi(-(digits as i32));
            prop_assert!((r - x).abs() <= unit / 2.0 + x.abs() * 1e-15, "{} -> {}", x, r);
            prop_assert_eq!(matches!(round_of(Value::Float(x), digits).unwrap(), Value::Int(_)), digits == 0);
        }

        #[test]
        fn natives_never_panic(a in any_value(), b in any_value(), c in any_value(), rest in proptest::collection::vec(any_value(), 0..3)) {
            for (decl, f) in natives() {
                let name = decl.name;
                let mut pool = [a.clone(), b.clone(), c.clone()].into_iter();
                let args: Vec<Value> = decl
                    .params
                    .iter()
                    .map(|p| match p.kind {
                        ParamKind::Variadic => list(rest.clone()),
                        _ => pool.next().unwrap_or(Value::Null),
                    })
                    .collect();
                if let Err(e) = f(&Args::new(&decl, &args)) {
                    prop_assert!(e.message.starts_with(name), "{}: {}", name, e.message);
                }
            }
        }
    }
}
