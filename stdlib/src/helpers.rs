//! Helpers shared by the natives: argument checks, numbers, errors.

use aether_vm::{Map, Value, ValueError};

/// The most elements `range` produces.
pub const RANGE_LIMIT: usize = 10_000_000;

/// How many characters `summarize` keeps of a string.
pub(crate) const SUMMARY_CHARS: usize = 200;

pub(crate) fn fail<T>(message: String) -> Result<T, ValueError> {
    Err(ValueError::new(message))
}

/// `name(): message` for an error of a value operation inside a native.
pub(crate) fn within(name: &str) -> impl Fn(ValueError) -> ValueError + '_ {
    move |e| ValueError::new(format!("{name}(): {}", e.message))
}

pub(crate) fn string_arg<'a>(name: &str, what: &str, v: &'a Value) -> Result<&'a str, ValueError> {
    match v {
        Value::Str(s) => Ok(s),
        other => fail(format!(
            "{name}() {what} must be a str, not {}",
            other.type_name()
        )),
    }
}

/// An int or float as an `f64` (bools are not numbers).
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

pub(crate) fn number_arg(name: &str, what: &str, v: &Value) -> Result<f64, ValueError> {
    number(v).map_or_else(
        || {
            fail(format!(
                "{name}() {what} must be a number, not {}",
                v.type_name()
            ))
        },
        Ok,
    )
}

pub(crate) fn finite(name: &str, x: f64) -> Result<Value, ValueError> {
    if x.is_finite() {
        Ok(Value::Float(x))
    } else {
        fail(format!("{name}() float result is not finite"))
    }
}

/// A map from `(key, value)` pairs, in that order.
pub(crate) fn record<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::from(entries.into_iter().collect::<Map>())
}

/// A float truncated toward zero to an int, if it fits.
pub(crate) fn trunc_to_int(x: f64) -> Option<i64> {
    // 2^63 is exact as an f64; every i64 lies in [-2^63, 2^63).
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    let t = x.trunc();
    (t.is_finite() && (-TWO_63..TWO_63).contains(&t)).then_some(t as i64)
}

/// A number read from text: an int when it is one, else a float (possibly infinite when
/// out of range); `None` when it is not a number (`inf` and `nan` are not).
pub(crate) fn parse_number(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Some(Value::Int(n));
    }
    let unsigned = text.trim_start_matches(['+', '-']);
    if unsigned
        .chars()
        .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
    {
        return None;
    }
    text.parse::<f64>().ok().map(Value::Float)
}

/// Every element comparable with the first (so with each other), for sorted/min/max.
pub(crate) fn check_comparable(name: &str, items: &[Value]) -> Result<(), ValueError> {
    if let Some(first) = items.first() {
        for it in items {
            first.compare(it).map_err(within(name))?;
        }
    }
    Ok(())
}
