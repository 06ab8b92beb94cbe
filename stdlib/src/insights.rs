//! The pure Aether 1.1 names: `summarize`, `detect_anomalies`, `evaluate_confidence`, `check_confidence`.

use std::cmp::Ordering;

use aether_check::decl::{DefaultValue, FnDecl};
use aether_vm::{Args, Native, Value, ValueError};

use crate::collections::extreme_of;
use crate::helpers::*;

/// The natives of this section, each declared beside its implementation.
pub(crate) fn natives() -> Vec<Native> {
    vec![
        (
            FnDecl::global("summarize")
            .param("x")
            .doc("Numbers: {count, mean, min, max, p50, p95}; strings or records: {count, first, last}; a string: its first 200 characters."),
            summarize,
        ),
        (
            FnDecl::global("detect_anomalies")
            .param("x")
            .opt("threshold", DefaultValue::Float(3.0))
            .doc("The {index, value, z} of the elements whose population z-score exceeds threshold in absolute value."),
            detect_anomalies,
        ),
        (
            FnDecl::global("evaluate_confidence")
            .param("x")
            .doc("A float: a number clamped to [0, 1], a map's confidence key, or a list's mean."),
            evaluate_confidence,
        ),
        (
            FnDecl::global("check_confidence")
            .param("x")
            .opt("threshold", DefaultValue::Float(0.7))
            .doc("Whether evaluate_confidence(x) >= threshold."),
            check_confidence,
        ),
    ]
}

/// The mean of non-empty `xs`: the sum divided by the count (exact for small data),
/// or, when the sum overflows, the sum of each divided by the count.
pub(crate) fn mean_of(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let total: f64 = xs.iter().sum();
    if total.is_finite() {
        total / n
    } else {
        xs.iter().map(|x| x / n).sum()
    }
}

/// The value at fraction `p` of ascending `xs` (non-empty), interpolating linearly
/// between the two closest ranks (rank `p * (n - 1)`).
pub(crate) fn percentile(xs: &[f64], p: f64) -> f64 {
    let rank = p * (xs.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    if lo == hi || frac == 0.0 {
        return xs[lo];
    }
    let (a, b) = (xs[lo], xs[hi]);
    let v = a + (b - a) * frac;
    if v.is_finite() {
        v
    } else {
        a * (1.0 - frac) + b * frac
    }
}

/// `summarize(x)`: a string's first 200 characters; a list of numbers as `{count,
/// mean, min, max, p50, p95}`; a list of strings and/or maps as `{count, first, last}`.
fn summarize(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
    let items = match x {
        Value::Str(s) => {
            return Ok(match s.char_indices().nth(SUMMARY_CHARS) {
                Some((cut, _)) => Value::from(&s[..cut]),
                None => x.clone(),
            })
        }
        Value::List(items) => items,
        other => {
            return fail(format!(
                "summarize() takes a str or a list, not {}",
                other.type_name()
            ))
        }
    };
    let Some(first) = items.first() else {
        return fail("summarize() of an empty list".into());
    };
    let numeric = number(first).is_some();
    for (i, it) in items.iter().enumerate() {
        let ok = match it {
            Value::Int(_) | Value::Float(_) => numeric,
            Value::Str(_) | Value::Map(_) => !numeric,
            other => {
                return fail(format!(
                    "summarize() takes numbers, strs or maps, but element {i} is {}",
                    other.type_name()
                ))
            }
        };
        if !ok {
            return fail(format!(
                "summarize() cannot mix numbers with strs or maps (element 0 is {}, element {i} is {})",
                first.type_name(),
                it.type_name()
            ));
        }
    }
    let count = Value::Int(items.len() as i64);
    if !numeric {
        let last = items.last().expect("non-empty").clone();
        return Ok(record([
            ("count", count),
            ("first", first.clone()),
            ("last", last),
        ]));
    }
    let n = items.len() as f64;
    let mean = if items.iter().all(|it| matches!(it, Value::Int(_))) {
        let total: i128 = items
            .iter()
            .map(|it| match it {
                Value::Int(v) => i128::from(*v),
                _ => 0,
            })
            .sum();
        total as f64 / n
    } else {
        mean_of(&items.iter().filter_map(number).collect::<Vec<_>>())
    };
    let mut xs: Vec<f64> = items.iter().filter_map(number).collect();
    xs.sort_by(f64::total_cmp);
    let smallest = extreme_of("summarize", items, Ordering::Less)?;
    let largest = extreme_of("summarize", items, Ordering::Greater)?;
    Ok(record([
        ("count", count),
        ("mean", finite("summarize", mean)?),
        ("min", smallest),
        ("max", largest),
        ("p50", finite("summarize", percentile(&xs, 0.5))?),
        ("p95", finite("summarize", percentile(&xs, 0.95))?),
    ]))
}

/// `detect_anomalies(x, threshold=3.0)`: the `{index, value, z}` of the points whose
/// population z-score exceeds `threshold` in absolute value. The points are the
/// numbers of a list (or the numeric `value` of its records; `value` in the output is
/// the element unchanged), or the numeric values of a map (index: the key). No
/// anomalies when all points are equal or there are none.
fn detect_anomalies(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
    let threshold = args.get("threshold")?;
    let threshold = number_arg("detect_anomalies", "threshold", threshold)?;
    // (index, element, number)
    let mut points: Vec<(Value, Value, f64)> = Vec::new();
    match x {
        Value::List(items) => {
            for (i, it) in items.iter().enumerate() {
                let v = match it {
                    Value::Map(m) => m.get("value").and_then(number),
                    other => number(other),
                };
                let Some(v) = v else {
                    return fail(format!(
                        "detect_anomalies() takes numbers or maps with a numeric value key, but element {i} is {}",
                        match it {
                            Value::Map(m) if m.contains_key("value") => "a map whose value is not a number",
                            Value::Map(_) => "a map without a value key",
                            other => other.type_name(),
                        }
                    ));
                };
                points.push((Value::Int(i as i64), it.clone(), v));
            }
        }
        Value::Map(map) => {
            for (k, it) in map.iter() {
                if let Some(v) = number(it) {
                    points.push((Value::from(k), it.clone(), v));
                }
            }
        }
        other => {
            return fail(format!(
                "detect_anomalies() takes a list or map, not {}",
                other.type_name()
            ))
        }
    }
    let Some(&(_, _, first)) = points.first() else {
        return Ok(Value::from(Vec::new()));
    };
    if points.iter().all(|p| p.2 == first) {
        return Ok(Value::from(Vec::new()));
    }
    let xs: Vec<f64> = points.iter().map(|p| p.2).collect();
    let mean = mean_of(&xs);
    let squares: Vec<f64> = xs.iter().map(|x| (x - mean).powi(2)).collect();
    let variance = mean_of(&squares);
    let sd = variance.sqrt();
    if !sd.is_finite() {
        return fail("detect_anomalies() values are too large for a standard deviation".into());
    }
    if sd == 0.0 {
        return Ok(Value::from(Vec::new()));
    }
    let mut out = Vec::new();
    for (index, value, v) in points {
        let z = (v - mean) / sd;
        if z.is_finite() && z.abs() > threshold {
            out.push(record([
                ("index", index),
                ("value", value),
                ("z", Value::Float(z)),
            ]));
        }
    }
    Ok(Value::from(out))
}

pub(crate) fn confidence(x: &Value) -> Result<f64, ValueError> {
    match x {
        Value::Int(_) | Value::Float(_) => Ok(number(x).expect("a number").clamp(0.0, 1.0)),
        Value::Map(map) => match map.get("confidence") {
            Some(c) => confidence(c),
            None => fail("evaluate_confidence() of a map without a confidence key".into()),
        },
        Value::List(items) if items.is_empty() => {
            fail("evaluate_confidence() of an empty list".into())
        }
        Value::List(items) => {
            let n = items.len() as f64;
            let mut total = 0.0;
            for it in items.iter() {
                total += confidence(it)?;
            }
            Ok((total / n).clamp(0.0, 1.0))
        }
        other => fail(format!(
            "evaluate_confidence() takes a number, map or list, not {}",
            other.type_name()
        )),
    }
}

/// `evaluate_confidence(x)`: a float in `[0, 1]`: a number clamped, a map's
/// `confidence` key evaluated, a list's mean of its elements evaluated.
fn evaluate_confidence(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
    confidence(x).map(Value::Float)
}

/// `check_confidence(x, threshold=0.7)`: `evaluate_confidence(x) >= threshold`.
fn check_confidence(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
    let threshold = args.get("threshold")?;
    let threshold = number_arg("check_confidence", "threshold", threshold)?;
    let c = confidence(x).map_err(|e| {
        ValueError::new(
            e.message
                .replacen("evaluate_confidence()", "check_confidence()", 1),
        )
    })?;
    Ok(Value::Bool(c >= threshold))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    fn summary(x: Value) -> String {
        call("summarize", vec![x]).unwrap().repr()
    }

    #[test]
    fn summarize_numbers() {
        assert_eq!(
            summary(v("[3, 1, 2]")),
            r#"{"count": 3, "mean": 2.0, "min": 1, "max": 3, "p50": 2.0, "p95": 2.9}"#
        );
        assert_eq!(
            summary(v("[1, 2, 3, 4]")),
            r#"{"count": 4, "mean": 2.5, "min": 1, "max": 4, "p50": 2.5, "p95": 3.8499999999999996}"#
        );
        let hundred = list((1..=100).map(Value::Int).collect());
        assert_eq!(
            summary(hundred),
            r#"{"count": 100, "mean": 50.5, "min": 1, "max": 100, "p50": 50.5, "p95": 95.05}"#
        );
        assert_eq!(
            summary(v("[5]")),
            r#"{"count": 1, "mean": 5.0, "min": 5, "max": 5, "p50": 5.0, "p95": 5.0}"#
        );
        // min and max are the elements unchanged; the first of equal ones.
        assert_eq!(
            summary(v("[2.5, 1, 1.0, 2.5]")),
            r#"{"count": 4, "mean": 1.75, "min": 1, "max": 2.5, "p50": 1.75, "p95": 2.5}"#
        );
        // The mean of ints is exact before the division.
        assert_eq!(
            summary(list(vec![Value::Int(i64::MAX), Value::Int(i64::MAX)])),
            r#"{"count": 2, "mean": 9223372036854776000.0, "min": 9223372036854775807, "max": 9223372036854775807, "p50": 9223372036854776000.0, "p95": 9223372036854776000.0}"#
        );
        assert_eq!(
            summary(list(vec![Value::Float(f64::MAX), Value::Float(f64::MAX)])),
            r#"{"count": 2, "mean": 1.7976931348623157e+308, "min": 1.7976931348623157e+308, "max": 1.7976931348623157e+308, "p50": 1.7976931348623157e+308, "p95": 1.7976931348623157e+308}"#
        );
    }

    #[test]
    fn summarize_strings_records_and_text() {
        assert_eq!(
            summary(v(r#"["a", "b", "c"]"#)),
            r#"{"count": 3, "first": "a", "last": "c"}"#
        );
        assert_eq!(
            summary(v(r#"[{"id": 1}, {"id": 2}]"#)),
            r#"{"count": 2, "first": {"id": 1}, "last": {"id": 2}}"#
        );
        assert_eq!(
            summary(v(r#"["x", {"id": 2}]"#)),
            r#"{"count": 2, "first": "x", "last": {"id": 2}}"#
        );
        assert_eq!(
            summary(v(r#"["only"]"#)),
            r#"{"count": 1, "first": "only", "last": "only"}"#
        );
        let long: String = "é".repeat(250);
        let cut = call("summarize", vec![s(&long)]).unwrap().display();
        assert_eq!(cut.chars().count(), 200);
        assert_eq!(cut, "é".repeat(200));
        assert_eq!(summary(s("short")), r#""short""#);
        assert_eq!(
            summary(s(&"x".repeat(200))),
            format!("\"{}\"", "x".repeat(200))
        );
        assert_eq!(summary(s("")), r#""""#);
    }

    #[test]
    fn summarize_errors() {
        let e = |x| call("summarize", vec![x]).unwrap_err().message;
        assert_eq!(e(v("[]")), "summarize() of an empty list");
        assert_eq!(
            e(v(r#"[1, "a"]"#)),
            "summarize() cannot mix numbers with strs or maps (element 0 is int, element 1 is str)"
        );
        assert_eq!(
            e(v(r#"["a", 2.5]"#)),
            "summarize() cannot mix numbers with strs or maps (element 0 is str, element 1 is float)"
        );
        assert_eq!(
            e(v("[1, true]")),
            "summarize() takes numbers, strs or maps, but element 1 is bool"
        );
        assert_eq!(
            e(v("[null]")),
            "summarize() takes numbers, strs or maps, but element 0 is null"
        );
        assert_eq!(
            e(list(vec![dur(1.0)])),
            "summarize() takes numbers, strs or maps, but element 0 is duration"
        );
        assert_eq!(e(v("{}")), "summarize() takes a str or a list, not map");
        assert_eq!(
            e(Value::Int(3)),
            "summarize() takes a str or a list, not int"
        );
    }

    fn anomalies(x: Value, threshold: f64) -> Result<Value, ValueError> {
        call("detect_anomalies", vec![x, Value::Float(threshold)])
    }

    #[test]
    fn detect_anomalies_in_numbers() {
        let spike = v("[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 100]");
        // mean 10, population variance 810, so z(100) = 90 / sqrt(810), sqrt(10) in f64 steps.
        assert_eq!(
            anomalies(spike.clone(), 3.0).unwrap().repr(),
            r#"[{"index": 10, "value": 100, "z": 3.162277660168379}]"#
        );
        assert_eq!(anomalies(spike, 3.2).unwrap().repr(), "[]");
        // mean 2.5, sd sqrt(18.75).
        assert_eq!(
            anomalies(v("[0, 0, 0, 10]"), 1.0).unwrap().repr(),
            r#"[{"index": 3, "value": 10, "z": 1.7320508075688772}]"#
        );
        assert_eq!(
            anomalies(v("[0, 0.0, 0, 10]"), 0.5).unwrap().repr(),
            r#"[{"index": 0, "value": 0, "z": -0.5773502691896257}, {"index": 1, "value": 0.0, "z": -0.5773502691896257}, {"index": 2, "value": 0, "z": -0.5773502691896257}, {"index": 3, "value": 10, "z": 1.7320508075688772}]"#
        );
        // Strictly greater than the threshold: z is exactly +-1 here.
        assert_eq!(anomalies(v("[0, 2]"), 1.0).unwrap().repr(), "[]");
        assert_eq!(
            anomalies(v("[0, 2]"), 0.99)
                .unwrap()
                .repr()
                .matches("index")
                .count(),
            2
        );
        // No deviation, no points: no anomalies.
        assert_eq!(anomalies(v("[5, 5, 5]"), 0.0).unwrap().repr(), "[]");
        assert_eq!(anomalies(v("[0.1, 0.1, 0.1]"), 0.0).unwrap().repr(), "[]");
        assert_eq!(anomalies(v("[7]"), 0.0).unwrap().repr(), "[]");
        assert_eq!(anomalies(v("[]"), 0.0).unwrap().repr(), "[]");
        // The default threshold arrives as the declared 3.0; an int threshold works too.
        assert_eq!(
            call("detect_anomalies", vec![v("[0, 0, 0, 10]"), Value::Int(1)])
                .unwrap()
                .repr(),
            r#"[{"index": 3, "value": 10, "z": 1.7320508075688772}]"#
        );
    }

    #[test]
    fn detect_anomalies_in_records_and_maps() {
        let records =
            v(r#"[{"value": 0, "at": "a"}, {"value": 0}, {"value": 0}, {"value": 10, "at": "d"}]"#);
        assert_eq!(
            anomalies(records, 1.0).unwrap().repr(),
            r#"[{"index": 3, "value": {"value": 10, "at": "d"}, "z": 1.7320508075688772}]"#
        );
        let mixed = v(r#"[0, {"value": 0}, 0.0, {"value": 10}]"#);
        assert_eq!(
            anomalies(mixed, 1.0)
                .unwrap()
                .repr()
                .matches("index")
                .count(),
            1
        );
        // A map's numeric values, indexed by key; other values are skipped.
        let m = v(r#"{"a": 0, "b": 0, "label": "x", "c": 0, "d": 10, "ok": true}"#);
        assert_eq!(
            anomalies(m, 1.0).unwrap().repr(),
            r#"[{"index": "d", "value": 10, "z": 1.7320508075688772}]"#
        );
        assert_eq!(anomalies(v(r#"{"x": "y"}"#), 0.0).unwrap().repr(), "[]");
        // A summary map works as input.
        let sm = call("summarize", vec![v("[1, 2, 3, 4, 1000]")]).unwrap();
        let found = anomalies(sm, 1.0).unwrap().repr();
        assert!(found.contains(r#""index": "max""#), "{found}");
    }

    #[test]
    fn detect_anomalies_errors() {
        let e = |x, t: Value| call("detect_anomalies", vec![x, t]).unwrap_err().message;
        assert_eq!(
            e(v(r#"[1, "2"]"#), Value::Float(3.0)),
            "detect_anomalies() takes numbers or maps with a numeric value key, but element 1 is str"
        );
        assert_eq!(
            e(v(r#"[{"v": 1}]"#), Value::Float(3.0)),
            "detect_anomalies() takes numbers or maps with a numeric value key, but element 0 is a map without a value key"
        );
        assert_eq!(
            e(v(r#"[{"value": "1"}]"#), Value::Float(3.0)),
            "detect_anomalies() takes numbers or maps with a numeric value key, but element 0 is a map whose value is not a number"
        );
        assert_eq!(
            e(v("[true]"), Value::Float(3.0)),
            "detect_anomalies() takes numbers or maps with a numeric value key, but element 0 is bool"
        );
        assert_eq!(
            e(v("[1, 2]"), s("3")),
            "detect_anomalies() threshold must be a number, not str"
        );
        assert_eq!(
            e(s("1 2 3"), Value::Float(3.0)),
            "detect_anomalies() takes a list or map, not str"
        );
        assert_eq!(
            e(
                list(vec![Value::Float(-f64::MAX), Value::Float(f64::MAX)]),
                Value::Float(3.0)
            ),
            "detect_anomalies() values are too large for a standard deviation"
        );
    }

    fn confidence_of(x: Value) -> Result<Value, ValueError> {
        call("evaluate_confidence", vec![x])
    }

    #[test]
    fn evaluate_confidence_is_always_a_float_in_range() {
        let show = |x| confidence_of(x).unwrap().repr();
        assert_eq!(show(Value::Float(0.5)), "0.5");
        assert_eq!(show(Value::Int(1)), "1.0");
        assert_eq!(show(Value::Int(0)), "0.0");
        assert_eq!(show(Value::Float(2.5)), "1.0");
        assert_eq!(show(Value::Int(-3)), "0.0");
        assert_eq!(show(v(r#"{"confidence": 0.8, "x": 1}"#)), "0.8");
        assert_eq!(show(v(r#"{"confidence": 5}"#)), "1.0");
        assert_eq!(show(v("[0.5, 1.0]")), "0.75");
        assert_eq!(show(v("[2, 0]")), "0.5");
        assert_eq!(show(v(r#"[{"confidence": 0.25}, 0.75, [1, 0]]"#)), "0.5");
        assert_eq!(show(v(r#"{"confidence": [0.5, 1]}"#)), "0.75");
    }

    #[test]
    fn evaluate_confidence_errors() {
        let e = |x| confidence_of(x).unwrap_err().message;
        assert_eq!(e(v("[]")), "evaluate_confidence() of an empty list");
        assert_eq!(
            e(v(r#"{"score": 1}"#)),
            "evaluate_confidence() of a map without a confidence key"
        );
        assert_eq!(
            e(s("0.5")),
            "evaluate_confidence() takes a number, map or list, not str"
        );
        assert_eq!(
            e(v(r#"[0.5, null]"#)),
            "evaluate_confidence() takes a number, map or list, not null"
        );
        assert_eq!(
            e(Value::Bool(true)),
            "evaluate_confidence() takes a number, map or list, not bool"
        );
    }

    #[test]
    fn check_confidence_against_threshold() {
        let check = |x, t: f64| call("check_confidence", vec![x, Value::Float(t)]);
        assert_eq!(check(Value::Float(0.7), 0.7).unwrap().repr(), "true");
        assert_eq!(check(Value::Float(0.69), 0.7).unwrap().repr(), "false");
        assert_eq!(
            check(v(r#"{"confidence": 0.9}"#), 0.7).unwrap().repr(),
            "true"
        );
        assert_eq!(check(v("[0.6, 0.4]"), 0.5).unwrap().repr(), "true");
        assert_eq!(check(Value::Int(5), 1.0).unwrap().repr(), "true");
        assert_eq!(
            call("check_confidence", vec![Value::Int(1), Value::Int(1)])
                .unwrap()
                .repr(),
            "true"
        );
        assert_eq!(
            call("check_confidence", vec![Value::Float(0.5), s("high")])
                .unwrap_err()
                .message,
            "check_confidence() threshold must be a number, not str"
        );
        assert_eq!(
            check(v("[]"), 0.7).unwrap_err().message,
            "check_confidence() of an empty list"
        );
        assert_eq!(
            check(Value::Null, 0.7).unwrap_err().message,
            "check_confidence() takes a number, map or list, not null"
        );
    }
}
