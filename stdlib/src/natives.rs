//! Implementations of the pure global functions of STDLIB.md (Core and the pure Aether 1.1 names).
//!
//! A [`Native`] takes the arguments the VM bound against the function's
//! [`FnDecl`](aether_check::decl::FnDecl) from [`crate::declarations`]: one [`Value`]
//! per declared parameter, in declaration order, defaults already filled in, and a
//! variadic `args...` parameter as a single [`Value::List`] of the remaining positional
//! arguments. So `min(3, 1)` arrives as `[[3, 1]]`, `min([3, 1])` as `[[[3, 1]]]` and
//! `format("{}", x)` as `["{}", [x]]`. A native never mutates its arguments.
//!
//! Declared functions that are *not* here, because they need the VM host:
//!
//! - `print`, `log`, `trace`, `narrate`, `metrics`: they write to stdout, stderr, the
//!   run's event stream or the homeostasis metrics, which the host owns;
//! - `now`: it reads the clock (nondeterministic), so the host provides it;
//! - `load_feature_index`: it lists the modules and functions of the registry the CLI
//!   assembles, which this crate cannot see.
//!
//! Decisions where STDLIB.md is silent (each is repeated on the function it concerns):
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

use std::cmp::Ordering;
use std::rc::Rc;

use aether_vm::{format_duration, Map, Value, ValueError};

/// A pure native function: the bound arguments (see the module docs) to a value.
pub type Native = fn(&[Value]) -> Result<Value, ValueError>;

/// The most elements `range` produces.
pub const RANGE_LIMIT: usize = 10_000_000;

/// How many characters `summarize` keeps of a string.
const SUMMARY_CHARS: usize = 200;

/// The pure natives, keyed by their global function name (each is declared in
/// [`crate::declarations`]).
pub fn natives() -> Vec<(&'static str, Native)> {
    vec![
        ("len", len),
        ("str", str_),
        ("int", int),
        ("float", float),
        ("bool", bool_),
        ("type", type_),
        ("range", range),
        ("keys", keys),
        ("values", values),
        ("get", get),
        ("contains", contains),
        ("append", append),
        ("concat", concat),
        ("sorted", sorted),
        ("min", min),
        ("max", max),
        ("sum", sum),
        ("abs", abs),
        ("round", round),
        ("format", format),
        ("split", split),
        ("join", join),
        ("upper", upper),
        ("lower", lower),
        ("trim", trim),
        ("startswith", startswith),
        ("endswith", endswith),
        ("json_encode", json_encode),
        ("json_decode", json_decode),
        ("summarize", summarize),
        ("detect_anomalies", detect_anomalies),
        ("evaluate_confidence", evaluate_confidence),
        ("check_confidence", check_confidence),
    ]
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn fail<T>(message: String) -> Result<T, ValueError> {
    Err(ValueError::new(message))
}

/// The `N` bound arguments of `name`. Any other count is a bug of the caller's binding,
/// reported as an error rather than a panic.
fn take<'a, const N: usize>(name: &str, args: &'a [Value]) -> Result<&'a [Value; N], ValueError> {
    args.try_into().map_err(|_| {
        ValueError::new(format!(
            "{name}() was called with {} bound arguments, but it has {N} parameters",
            args.len()
        ))
    })
}

/// The elements of a variadic parameter (always bound as a list).
fn rest<'a>(name: &str, v: &'a Value) -> Result<&'a [Value], ValueError> {
    match v {
        Value::List(items) => Ok(items),
        other => fail(format!(
            "{name}() received its variadic arguments as {}, not a list",
            other.type_name()
        )),
    }
}

/// `name(): message` for an error of a value operation inside a native.
fn within(name: &str) -> impl Fn(ValueError) -> ValueError + '_ {
    move |e| ValueError::new(format!("{name}(): {}", e.message))
}

fn string_arg<'a>(name: &str, what: &str, v: &'a Value) -> Result<&'a str, ValueError> {
    match v {
        Value::Str(s) => Ok(s),
        other => fail(format!(
            "{name}() {what} must be a str, not {}",
            other.type_name()
        )),
    }
}

/// An int or float as an `f64` (bools are not numbers).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

fn number_arg(name: &str, what: &str, v: &Value) -> Result<f64, ValueError> {
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

fn finite(name: &str, x: f64) -> Result<Value, ValueError> {
    if x.is_finite() {
        Ok(Value::Float(x))
    } else {
        fail(format!("{name}() float result is not finite"))
    }
}

/// A map from `(key, value)` pairs, in that order.
fn record<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::from(entries.into_iter().collect::<Map>())
}

/// A float truncated toward zero to an int, if it fits.
fn trunc_to_int(x: f64) -> Option<i64> {
    // 2^63 is exact as an f64; every i64 lies in [-2^63, 2^63).
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    let t = x.trunc();
    (t.is_finite() && (-TWO_63..TWO_63).contains(&t)).then_some(t as i64)
}

/// A number read from text: an int when it is one, else a float (possibly infinite when
/// out of range); `None` when it is not a number (`inf` and `nan` are not).
fn parse_number(text: &str) -> Option<Value> {
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
fn check_comparable(name: &str, items: &[Value]) -> Result<(), ValueError> {
    if let Some(first) = items.first() {
        for it in items {
            first.compare(it).map_err(within(name))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------

/// `len(x)`: characters of a string (Unicode scalar values), elements of a list,
/// entries of a map.
fn len(args: &[Value]) -> Result<Value, ValueError> {
    let [x] = take("len", args)?;
    let n = match x {
        Value::Str(s) => s.chars().count(),
        Value::List(items) => items.len(),
        Value::Map(map) => map.len(),
        other => {
            return fail(format!(
                "len() takes a str, list or map, not {}",
                other.type_name()
            ))
        }
    };
    Ok(Value::Int(n as i64))
}

/// `str(x)`: the value's `display()` text.
fn str_(args: &[Value]) -> Result<Value, ValueError> {
    let [x] = take("str", args)?;
    Ok(match x {
        Value::Str(_) => x.clone(),
        other => Value::from(other.display()),
    })
}

/// `int(x)`: an int as is, a float truncated toward zero (an error beyond the int
/// range), a bool as 1 or 0, a string holding a number (surrounding whitespace ignored;
/// a non-integer is truncated like a float).
fn int(args: &[Value]) -> Result<Value, ValueError> {
    let [x] = take("int", args)?;
    let float_to_int = |f: f64| {
        trunc_to_int(f).map(Value::Int).ok_or_else(|| {
            ValueError::new(format!(
                "int() of {} is out of range for an int",
                Value::Float(f).display()
            ))
        })
    };
    match x {
        Value::Int(_) => Ok(x.clone()),
        Value::Float(f) => float_to_int(*f),
        Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
        Value::Str(s) => match parse_number(s) {
            Some(Value::Float(f)) if !f.is_finite() => {
                fail(format!("int() of {} is out of range for an int", x.repr()))
            }
            Some(Value::Float(f)) => float_to_int(f),
            Some(n) => Ok(n),
            None => fail(format!("int() cannot read {} as a number", x.repr())),
        },
        other => fail(format!(
            "int() takes an int, float, bool or numeric str, not {}",
            other.type_name()
        )),
    }
}

/// `float(x)`: a number as a float, a bool as 1.0 or 0.0, a string holding a number
/// (surrounding whitespace ignored; an error beyond the float range).
fn float(args: &[Value]) -> Result<Value, ValueError> {
    let [x] = take("float", args)?;
    match x {
        Value::Int(n) => Ok(Value::Float(*n as f64)),
        Value::Float(_) => Ok(x.clone()),
        Value::Bool(b) => Ok(Value::Float(if *b { 1.0 } else { 0.0 })),
        Value::Str(s) => match parse_number(s) {
            Some(Value::Int(n)) => Ok(Value::Float(n as f64)),
            Some(Value::Float(f)) if f.is_finite() => Ok(Value::Float(f)),
            Some(_) => fail(format!(
                "float() of {} is out of range for a float",
                x.repr()
            )),
            None => fail(format!("float() cannot read {} as a number", x.repr())),
        },
        other => fail(format!(
            "float() takes an int, float, bool or numeric str, not {}",
            other.type_name()
        )),
    }
}

/// `bool(x)`: truthiness (`null false 0 0.0 "" [] {}` are false).
fn bool_(args: &[Value]) -> Result<Value, ValueError> {
    let [x] = take("bool", args)?;
    Ok(Value::Bool(x.is_truthy()))
}

/// `type(x)`: `null`, `bool`, `int`, `float`, `str`, `duration`, `list` or `map`.
fn type_(args: &[Value]) -> Result<Value, ValueError> {
    let [x] = take("type", args)?;
    Ok(Value::from(x.type_name()))
}

// ---------------------------------------------------------------------------
// Collections
// ---------------------------------------------------------------------------

/// `range(a, b=null, step=1)`: with `b` null, `0` up to `a`; else `a` up to `b`,
/// exclusive, by `step` (negative steps count down; `0` is an error). All ints. More
/// than [`RANGE_LIMIT`] elements is an error.
fn range(args: &[Value]) -> Result<Value, ValueError> {
    let [a, b, step] = take("range", args)?;
    let int_arg = |what: &str, v: &Value| match v {
        Value::Int(n) => Ok(i128::from(*n)),
        other => fail(format!(
            "range() {what} must be an int, not {}",
            other.type_name()
        )),
    };
    let (start, stop) = match b {
        Value::Null => (0, int_arg("stop", a)?),
        _ => (int_arg("start", a)?, int_arg("stop", b)?),
    };
    let step = int_arg("step", step)?;
    if step == 0 {
        return fail("range() step must not be 0".into());
    }
    let count = range_count(start, stop, step);
    if count > RANGE_LIMIT as i128 {
        return fail(format!(
            "range() would make {count} elements, more than the limit of {RANGE_LIMIT}"
        ));
    }
    // Every element lies between start and stop, so it fits an i64.
    let items = (0..count)
        .map(|i| Value::Int((start + i * step) as i64))
        .collect::<Vec<_>>();
    Ok(Value::from(items))
}

/// The number of elements of `range(start, stop, step)` (`step` non-zero).
fn range_count(start: i128, stop: i128, step: i128) -> i128 {
    if step > 0 && stop > start {
        (stop - start + step - 1) / step
    } else if step < 0 && start > stop {
        (start - stop - step - 1) / -step
    } else {
        0
    }
}

/// `keys(m)`: the keys of a map, in insertion order.
fn keys(args: &[Value]) -> Result<Value, ValueError> {
    let [m] = take("keys", args)?;
    match m {
        Value::Map(map) => Ok(Value::from(map.keys().map(Value::from).collect::<Vec<_>>())),
        other => fail(format!("keys() takes a map, not {}", other.type_name())),
    }
}

/// `values(m)`: the values of a map, in insertion order.
fn values(args: &[Value]) -> Result<Value, ValueError> {
    let [m] = take("values", args)?;
    match m {
        Value::Map(map) => Ok(Value::from(map.values().cloned().collect::<Vec<_>>())),
        other => fail(format!("values() takes a map, not {}", other.type_name())),
    }
}

/// `get(m, k, default=null)`: the value at key `k` of a map, or at index `k` of a list,
/// else `default`. A non-string key of a map is simply absent; a list index outside
/// `0..len` is absent; a non-int list index is an error.
fn get(args: &[Value]) -> Result<Value, ValueError> {
    let [m, k, default] = take("get", args)?;
    let found = match (m, k) {
        (Value::Map(map), Value::Str(key)) => map.get(key),
        (Value::Map(_), _) => None,
        (Value::List(items), Value::Int(i)) => usize::try_from(*i).ok().and_then(|i| items.get(i)),
        (Value::List(_), other) => {
            return fail(format!(
                "get() of a list needs an int index, not {}",
                other.type_name()
            ))
        }
        (other, _) => {
            return fail(format!(
                "get() takes a map or list, not {}",
                other.type_name()
            ))
        }
    };
    Ok(found.unwrap_or(default).clone())
}

/// `contains(c, x)`: `x` is an element of list `c` (by `==`), a key of map `c`, or a
/// substring of string `c` (then `x` must be a string).
fn contains(args: &[Value]) -> Result<Value, ValueError> {
    let [c, x] = take("contains", args)?;
    match (c, x) {
        (Value::List(_) | Value::Map(_), _) | (Value::Str(_), Value::Str(_)) => {
            x.is_in(c).map(Value::Bool).map_err(within("contains"))
        }
        (Value::Str(_), other) => fail(format!(
            "contains() looks for a str in a str, not {}",
            other.type_name()
        )),
        (other, _) => fail(format!(
            "contains() takes a list, map or str, not {}",
            other.type_name()
        )),
    }
}

/// `append(xs, x)`: a new list, `xs` followed by `x`.
fn append(args: &[Value]) -> Result<Value, ValueError> {
    let [xs, x] = take("append", args)?;
    match xs {
        Value::List(items) => {
            let mut out = Vec::with_capacity(items.len() + 1);
            out.extend(items.iter().cloned());
            out.push(x.clone());
            Ok(Value::from(out))
        }
        other => fail(format!("append() takes a list, not {}", other.type_name())),
    }
}

/// `concat(a, b)`: two lists or two strings joined into a new value.
fn concat(args: &[Value]) -> Result<Value, ValueError> {
    let [a, b] = take("concat", args)?;
    match (a, b) {
        (Value::List(_), Value::List(_)) | (Value::Str(_), Value::Str(_)) => {
            a.add(b).map_err(within("concat"))
        }
        _ => fail(format!(
            "concat() takes two lists or two strs, not {} and {}",
            a.type_name(),
            b.type_name()
        )),
    }
}

/// `sorted(xs, reverse=false)`: a new list of the elements of `xs` in ascending order
/// (descending when `reverse`), stable in both directions. The elements must be
/// mutually comparable (numbers, strings or durations).
fn sorted(args: &[Value]) -> Result<Value, ValueError> {
    let [xs, reverse] = take("sorted", args)?;
    let Value::List(items) = xs else {
        return fail(format!("sorted() takes a list, not {}", xs.type_name()));
    };
    let Value::Bool(reverse) = reverse else {
        return fail(format!(
            "sorted() reverse must be a bool, not {}",
            reverse.type_name()
        ));
    };
    check_comparable("sorted", items)?;
    let mut out = items.to_vec();
    // Comparable with the first element means comparable with each other.
    let order = |a: &Value, b: &Value| a.compare(b).unwrap_or(Ordering::Equal);
    if *reverse {
        out.sort_by(|a, b| order(b, a));
    } else {
        out.sort_by(order);
    }
    Ok(Value::from(out))
}

/// The shared body of `min` and `max`.
fn extreme(name: &str, args: &[Value], wanted: Ordering) -> Result<Value, ValueError> {
    let [args] = take(name, args)?;
    match rest(name, args)? {
        [] => fail(format!("{name}() needs one list or at least one value")),
        [Value::List(items)] if items.is_empty() => fail(format!("{name}() of an empty list")),
        [Value::List(items)] => extreme_of(name, items, wanted),
        several => extreme_of(name, several, wanted),
    }
}

/// The first element of non-empty `items` that no other element beats in the `wanted`
/// direction; the elements must be mutually comparable.
fn extreme_of(name: &str, items: &[Value], wanted: Ordering) -> Result<Value, ValueError> {
    check_comparable(name, items)?;
    let mut best = &items[0];
    for it in &items[1..] {
        if it.compare(best).map_err(within(name))? == wanted {
            best = it;
        }
    }
    Ok(best.clone())
}

/// `min(args...)`: the smallest element of one list argument, or of several values.
fn min(args: &[Value]) -> Result<Value, ValueError> {
    extreme("min", args, Ordering::Less)
}

/// `max(args...)`: the largest element of one list argument, or of several values.
fn max(args: &[Value]) -> Result<Value, ValueError> {
    extreme("max", args, Ordering::Greater)
}

/// `sum(xs)`: ints sum to an int (a total beyond the int range is an error, partial
/// sums may leave it), ints with floats to a float
/// (added left to right), durations to a duration; `sum([])` is `0`.
fn sum(args: &[Value]) -> Result<Value, ValueError> {
    let [xs] = take("sum", args)?;
    let Value::List(items) = xs else {
        return fail(format!("sum() takes a list, not {}", xs.type_name()));
    };
    let (mut floats, mut durations) = (0usize, 0usize);
    for (i, it) in items.iter().enumerate() {
        match it {
            Value::Int(_) => {}
            Value::Float(_) => floats += 1,
            Value::Duration(_) => durations += 1,
            other => {
                return fail(format!(
                    "sum() takes numbers or durations, but element {i} is {}",
                    other.type_name()
                ))
            }
        }
    }
    if durations > 0 && durations < items.len() {
        return fail("sum() cannot add durations and numbers".into());
    }
    if durations > 0 {
        let total: f64 = items
            .iter()
            .map(|it| match it {
                Value::Duration(ms) => *ms,
                _ => 0.0,
            })
            .sum();
        return if total.is_finite() {
            Ok(Value::Duration(total))
        } else {
            fail("sum() duration result is not finite".into())
        };
    }
    if floats == 0 {
        // An i128 cannot overflow on fewer than 2^64 i64s; only the total must fit.
        let total: i128 = items
            .iter()
            .map(|it| match it {
                Value::Int(n) => i128::from(*n),
                _ => 0,
            })
            .sum();
        return i64::try_from(total).map(Value::Int).map_err(|_| {
            ValueError::new(format!(
                "sum() integer overflow: the total {total} does not fit an int"
            ))
        });
    }
    let total: f64 = items.iter().filter_map(number).sum();
    finite("sum", total)
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// `abs(x)`: the absolute value of an int (an error for the smallest int), a float or
/// a duration.
fn abs(args: &[Value]) -> Result<Value, ValueError> {
    let [x] = take("abs", args)?;
    match x {
        Value::Int(n) => n
            .checked_abs()
            .map(Value::Int)
            .ok_or_else(|| ValueError::new(format!("abs() integer overflow in abs({n})"))),
        Value::Float(f) => Ok(Value::Float(f.abs())),
        Value::Duration(ms) => Ok(Value::Duration(ms.abs())),
        other => fail(format!(
            "abs() takes a number or duration, not {}",
            other.type_name()
        )),
    }
}

/// `round(x, digits=0)`: an int stays an int. A float is rounded half away from zero
/// at `digits` decimal places of the decimal that `display()` shows (so
/// `round(2.675, 2)` is `2.68`): with `digits=0` the result is an int, otherwise a
/// float. Negative `digits` is an error.
fn round(args: &[Value]) -> Result<Value, ValueError> {
    let [x, digits] = take("round", args)?;
    let digits = match digits {
        Value::Int(d) if *d >= 0 => *d,
        Value::Int(d) => return fail(format!("round() digits must not be negative, got {d}")),
        other => {
            return fail(format!(
                "round() digits must be an int, not {}",
                other.type_name()
            ))
        }
    };
    match x {
        Value::Int(_) => Ok(x.clone()),
        Value::Float(f) => {
            let rounded = round_decimal(*f, digits);
            if digits > 0 {
                return finite("round", rounded);
            }
            trunc_to_int(rounded).map(Value::Int).ok_or_else(|| {
                ValueError::new(format!(
                    "round() of {} is out of range for an int",
                    x.display()
                ))
            })
        }
        other => fail(format!("round() takes a number, not {}", other.type_name())),
    }
}

/// `x` rounded half away from zero at `digits` decimal places of its shortest
/// round-trip decimal text (the digits `display()` shows).
fn round_decimal(x: f64, digits: i64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    // Shortest digits d1 d2 ... dk with x = 0.d1...dk * 10^(exp + 1).
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let mut kept: Vec<u8> = mantissa.bytes().filter(|b| b.is_ascii_digit()).collect();
    let exp: i64 = exp.parse().expect("`{:e}` writes a decimal exponent");
    // Significant digits at or above the rounding place.
    let keep = (exp + 1).saturating_add(digits);
    if keep >= kept.len() as i64 {
        return x;
    }
    let round_up = keep >= 0 && kept[keep as usize] >= b'5';
    kept.truncate(keep.max(0) as usize);
    if round_up {
        // Add one at the last kept place, carrying; a full carry adds a leading 1.
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    if kept.is_empty() {
        return 0.0_f64.copysign(x);
    }
    // The kept digits are an integer in units of 10^-digits.
    let text = format!(
        "{}e-{digits}",
        std::str::from_utf8(&kept).expect("ascii digits")
    );
    let magnitude: f64 = text.parse().expect("digits with an exponent are a float");
    magnitude.copysign(x)
}

// ---------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------

/// `format(template, args...)`: each `{}` replaced by the `display()` of the next
/// argument; `{{` and `}}` are literal braces. Any other brace, or a count of
/// placeholders different from the count of arguments, is an error.
fn format(args: &[Value]) -> Result<Value, ValueError> {
    let [template, fill] = take("format", args)?;
    let template = string_arg("format", "template", template)?;
    let fill = rest("format", fill)?;
    enum Piece<'a> {
        Text(&'a str),
        Slot,
    }
    let mut pieces = Vec::new();
    let mut chars = template.char_indices().peekable();
    let mut start = 0;
    while let Some((i, c)) = chars.next() {
        if c != '{' && c != '}' {
            continue;
        }
        pieces.push(Piece::Text(&template[start..i]));
        let next = chars.peek().map(|&(_, n)| n);
        match (c, next) {
            ('{', Some('}')) => pieces.push(Piece::Slot),
            ('{', Some('{')) => pieces.push(Piece::Text("{")),
            ('}', Some('}')) => pieces.push(Piece::Text("}")),
            _ => {
                let column = template[..i].chars().count() + 1;
                return fail(format!(
                    "format() template has a lone {c} at character {column}: write {c}{c} for a literal {c}"
                ));
            }
        }
        chars.next();
        start = i + 2;
    }
    pieces.push(Piece::Text(&template[start..]));
    let slots = pieces.iter().filter(|p| matches!(p, Piece::Slot)).count();
    if slots != fill.len() {
        return fail(format!(
            "format() template has {slots} placeholder{} but {} argument{} {} given",
            if slots == 1 { "" } else { "s" },
            fill.len(),
            if fill.len() == 1 { "" } else { "s" },
            if fill.len() == 1 { "was" } else { "were" },
        ));
    }
    let mut fill = fill.iter();
    let mut out = String::with_capacity(template.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Slot => {
                let v = fill.next().expect("counted above");
                match v {
                    Value::Str(s) => out.push_str(s),
                    other => out.push_str(&other.display()),
                }
            }
        }
    }
    Ok(Value::from(out))
}

/// `split(s, sep)`: the parts of `s` between occurrences of `sep` (a non-empty
/// string); `split("", ",")` is `[""]`.
fn split(args: &[Value]) -> Result<Value, ValueError> {
    let [s, sep] = take("split", args)?;
    let s = string_arg("split", "s", s)?;
    let sep = string_arg("split", "separator", sep)?;
    if sep.is_empty() {
        return fail("split() separator must not be empty".into());
    }
    Ok(Value::from(
        s.split(sep).map(Value::from).collect::<Vec<_>>(),
    ))
}

/// `join(xs, sep)`: the `display()` of each element of list `xs` with `sep` between.
fn join(args: &[Value]) -> Result<Value, ValueError> {
    let [xs, sep] = take("join", args)?;
    let Value::List(items) = xs else {
        return fail(format!("join() takes a list, not {}", xs.type_name()));
    };
    let sep = string_arg("join", "separator", sep)?;
    let mut out = String::new();
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        match it {
            Value::Str(s) => out.push_str(s),
            other => out.push_str(&other.display()),
        }
    }
    Ok(Value::from(out))
}

fn string_map(name: &str, args: &[Value], f: fn(&str) -> String) -> Result<Value, ValueError> {
    let [s] = take(name, args)?;
    match s {
        Value::Str(s) => Ok(Value::from(f(s))),
        other => fail(format!("{name}() takes a str, not {}", other.type_name())),
    }
}

/// `upper(s)`: Unicode upper case.
fn upper(args: &[Value]) -> Result<Value, ValueError> {
    string_map("upper", args, str::to_uppercase)
}

/// `lower(s)`: Unicode lower case.
fn lower(args: &[Value]) -> Result<Value, ValueError> {
    string_map("lower", args, str::to_lowercase)
}

/// `trim(s)`: without leading and trailing Unicode whitespace.
fn trim(args: &[Value]) -> Result<Value, ValueError> {
    string_map("trim", args, |s| s.trim().to_string())
}

fn string_test(name: &str, args: &[Value], f: fn(&str, &str) -> bool) -> Result<Value, ValueError> {
    let [s, p] = take(name, args)?;
    match (s, p) {
        (Value::Str(s), Value::Str(p)) => Ok(Value::Bool(f(s, p))),
        _ => fail(format!(
            "{name}() takes two strs, not {} and {}",
            s.type_name(),
            p.type_name()
        )),
    }
}

/// `startswith(s, p)`.
fn startswith(args: &[Value]) -> Result<Value, ValueError> {
    string_test("startswith", args, |s, p| s.starts_with(p))
}

/// `endswith(s, p)`.
fn endswith(args: &[Value]) -> Result<Value, ValueError> {
    string_test("endswith", args, |s, p| s.ends_with(p))
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

/// The value with every duration replaced by the string of its canonical form.
fn durations_as_strings(v: &Value) -> Value {
    fn has_duration(v: &Value) -> bool {
        match v {
            Value::Duration(_) => true,
            Value::List(items) => items.iter().any(has_duration),
            Value::Map(map) => map.values().any(has_duration),
            _ => false,
        }
    }
    if !has_duration(v) {
        return v.clone();
    }
    match v {
        Value::Duration(ms) => Value::from(format_duration(*ms)),
        Value::List(items) => {
            Value::from(items.iter().map(durations_as_strings).collect::<Vec<_>>())
        }
        Value::Map(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), durations_as_strings(v)))
                .collect::<Map>(),
        ),
        other => other.clone(),
    }
}

/// `json_encode(x)`: JSON text with the separators and number forms of `display()`
/// (`{"a": 1, "b": [2.5, null]}`); durations as strings of their canonical form.
fn json_encode(args: &[Value]) -> Result<Value, ValueError> {
    let [x] = take("json_encode", args)?;
    // Outside strings, repr() is JSON once durations are strings: JSON escapes, finite
    // floats in ECMAScript form (`3.0`, `1e+21`), `null`, `true`, `[..]`, `{"k": ..}`.
    Ok(Value::from(durations_as_strings(x).repr()))
}

fn from_json(j: serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            // serde_json refuses numbers beyond the f64 range, so this is finite.
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::from(s),
        serde_json::Value::Array(items) => {
            Value::from(items.into_iter().map(from_json).collect::<Vec<_>>())
        }
        serde_json::Value::Object(entries) => Value::from(
            entries
                .into_iter()
                .map(|(k, v)| (Rc::<str>::from(k), from_json(v)))
                .collect::<Map>(),
        ),
    }
}

/// `json_decode(s)`: the value of JSON text `s`. Integers that fit an int are ints,
/// other numbers floats; objects keep their order.
fn json_decode(args: &[Value]) -> Result<Value, ValueError> {
    let [s] = take("json_decode", args)?;
    let text = string_arg("json_decode", "s", s)?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(j) => Ok(from_json(j)),
        Err(e) => fail(format!("json_decode() cannot parse the text: {e}")),
    }
}

// ---------------------------------------------------------------------------
// Aether 1.1
// ---------------------------------------------------------------------------

/// The mean of non-empty `xs`: the sum divided by the count (exact for small data),
/// or, when the sum overflows, the sum of each divided by the count.
fn mean_of(xs: &[f64]) -> f64 {
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
fn percentile(xs: &[f64], p: f64) -> f64 {
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
fn summarize(args: &[Value]) -> Result<Value, ValueError> {
    let [x] = take("summarize", args)?;
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
fn detect_anomalies(args: &[Value]) -> Result<Value, ValueError> {
    let [x, threshold] = take("detect_anomalies", args)?;
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

fn confidence(x: &Value) -> Result<f64, ValueError> {
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
fn evaluate_confidence(args: &[Value]) -> Result<Value, ValueError> {
    let [x] = take("evaluate_confidence", args)?;
    confidence(x).map(Value::Float)
}

/// `check_confidence(x, threshold=0.7)`: `evaluate_confidence(x) >= threshold`.
fn check_confidence(args: &[Value]) -> Result<Value, ValueError> {
    let [x, threshold] = take("check_confidence", args)?;
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
    use crate::declarations;
    use aether_check::decl::ParamKind;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A value from JSON text (the test's own decoder, independent of `json_decode`).
    fn v(json: &str) -> Value {
        from_json(serde_json::from_str(json).expect("test JSON"))
    }

    fn s(text: &str) -> Value {
        Value::from(text)
    }

    fn dur(ms: f64) -> Value {
        Value::Duration(ms)
    }

    fn list(items: Vec<Value>) -> Value {
        Value::from(items)
    }

    fn native(name: &str) -> Native {
        natives()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no native {name}"))
            .1
    }

    fn call(name: &str, args: Vec<Value>) -> Result<Value, ValueError> {
        native(name)(&args)
    }

    /// The result's `repr()`: `display()` for everything but a top-level string, which
    /// is quoted so that `"1"` and `1` differ.
    #[track_caller]
    fn ok(name: &str, args: Vec<Value>) -> String {
        match call(name, args) {
            Ok(v) => v.repr(),
            Err(e) => panic!("{name}: unexpected error: {}", e.message),
        }
    }

    #[track_caller]
    fn err(name: &str, args: Vec<Value>) -> String {
        match call(name, args) {
            Ok(v) => panic!("{name}: expected an error, got {}", v.repr()),
            Err(e) => e.message,
        }
    }

    // --- registry -------------------------------------------------------------

    /// Declared, but implemented by the VM host (see the module docs).
    const HOST_ONLY: &[&str] = &[
        "print",
        "log",
        "trace",
        "narrate",
        "metrics",
        "now",
        "load_feature_index",
    ];

    #[test]
    fn every_native_is_declared_once() {
        let declared: BTreeSet<String> =
            declarations().iter().map(|d| d.qualified_name()).collect();
        let mut seen = BTreeSet::new();
        for (name, _) in natives() {
            assert!(declared.contains(name), "{name} is not declared");
            assert!(seen.insert(name), "{name} implemented twice");
        }
    }

    #[test]
    fn only_the_host_functions_are_missing() {
        let implemented: BTreeSet<&str> = natives().iter().map(|(n, _)| *n).collect();
        let missing: BTreeSet<&str> = declarations()
            .iter()
            .map(|d| d.name)
            .filter(|n| !implemented.contains(n))
            .collect();
        assert_eq!(missing, HOST_ONLY.iter().copied().collect());
        // The module docs say why each one is missing.
        let source = include_str!("natives.rs");
        let docs = &source[..source.find("\nuse ").expect("a use after the docs")];
        for name in HOST_ONLY {
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} is not in the docs"
            );
        }
    }

    /// Arguments shaped as the VM binds them: one per parameter, a variadic as a list.
    fn bound(name: &str, fill: &Value) -> Vec<Value> {
        let decl = declarations()
            .into_iter()
            .find(|d| d.name == name)
            .expect("declared");
        decl.params
            .iter()
            .map(|p| match p.kind {
                ParamKind::Variadic => list(vec![]),
                _ => fill.clone(),
            })
            .collect()
    }

    #[test]
    fn natives_accept_the_declared_binding_shape() {
        for (name, f) in natives() {
            for fill in [Value::Null, Value::Int(1), s("x"), list(vec![])] {
                let args = bound(name, &fill);
                if let Err(e) = f(&args) {
                    assert!(
                        !e.message.contains("bound arguments"),
                        "{name}: {}",
                        e.message
                    );
                    assert!(e.message.starts_with(name), "{name}: {}", e.message);
                    assert!(!e.message.ends_with('.'), "{name}: {}", e.message);
                }
                let mut more = args.clone();
                more.push(Value::Null);
                assert_eq!(
                    f(&more).unwrap_err().message,
                    format!(
                        "{name}() was called with {} bound arguments, but it has {} parameters",
                        more.len(),
                        args.len()
                    )
                );
            }
        }
    }

    // --- conversions ------------------------------------------------------------

    #[test]
    fn len_counts_chars_elements_and_entries() {
        assert_eq!(ok("len", vec![s("héllo😀")]), "6");
        assert_eq!(ok("len", vec![s("")]), "0");
        assert_eq!(ok("len", vec![v("[1, [2, 3]]")]), "2");
        assert_eq!(ok("len", vec![v(r#"{"a": 1, "b": 2}"#)]), "2");
        assert_eq!(
            err("len", vec![Value::Int(3)]),
            "len() takes a str, list or map, not int"
        );
        assert_eq!(
            err("len", vec![dur(1.0)]),
            "len() takes a str, list or map, not duration"
        );
        assert_eq!(
            err("len", vec![Value::Null]),
            "len() takes a str, list or map, not null"
        );
    }

    #[test]
    fn str_is_display() {
        assert_eq!(ok("str", vec![Value::Int(42)]), r#""42""#);
        assert_eq!(ok("str", vec![Value::Float(3.0)]), r#""3.0""#);
        assert_eq!(ok("str", vec![s("raw \"x\"")]), r#""raw \"x\"""#);
        assert_eq!(ok("str", vec![Value::Null]), r#""null""#);
        assert_eq!(ok("str", vec![dur(90_000.0)]), r#""1m30s""#);
        assert_eq!(
            call("str", vec![v(r#"[1, "a", {"k": null}]"#)])
                .unwrap()
                .display(),
            r#"[1, "a", {"k": null}]"#
        );
    }

    #[test]
    fn int_conversions() {
        assert_eq!(ok("int", vec![Value::Int(-7)]), "-7");
        assert_eq!(ok("int", vec![Value::Float(3.9)]), "3");
        assert_eq!(ok("int", vec![Value::Float(-3.9)]), "-3");
        assert_eq!(ok("int", vec![Value::Float(-0.5)]), "0");
        assert_eq!(
            ok("int", vec![Value::Float(-9_223_372_036_854_775_808.0)]),
            "-9223372036854775808"
        );
        assert_eq!(ok("int", vec![Value::Bool(true)]), "1");
        assert_eq!(ok("int", vec![Value::Bool(false)]), "0");
        assert_eq!(ok("int", vec![s(" 42\n")]), "42");
        assert_eq!(ok("int", vec![s("+5")]), "5");
        assert_eq!(ok("int", vec![s("3.7")]), "3");
        assert_eq!(ok("int", vec![s("-2.5e1")]), "-25");
        assert_eq!(
            ok("int", vec![s("9223372036854775807")]),
            "9223372036854775807"
        );
        assert_eq!(
            err("int", vec![Value::Float(1e30)]),
            "int() of 1e+30 is out of range for an int"
        );
        assert_eq!(
            err("int", vec![Value::Float(9_223_372_036_854_775_808.0)]),
            "int() of 9223372036854776000.0 is out of range for an int"
        );
        assert_eq!(
            err("int", vec![s("9223372036854775808")]),
            "int() of 9223372036854776000.0 is out of range for an int"
        );
        assert_eq!(
            err("int", vec![s("1e400")]),
            r#"int() of "1e400" is out of range for an int"#
        );
        assert_eq!(
            err("int", vec![s("abc")]),
            r#"int() cannot read "abc" as a number"#
        );
        assert_eq!(
            err("int", vec![s("")]),
            r#"int() cannot read "" as a number"#
        );
        assert_eq!(
            err("int", vec![s("inf")]),
            r#"int() cannot read "inf" as a number"#
        );
        assert_eq!(
            err("int", vec![s("-NaN")]),
            r#"int() cannot read "-NaN" as a number"#
        );
        assert_eq!(
            err("int", vec![s("0x10")]),
            r#"int() cannot read "0x10" as a number"#
        );
        assert_eq!(
            err("int", vec![s("1_000")]),
            r#"int() cannot read "1_000" as a number"#
        );
        assert_eq!(
            err("int", vec![Value::Null]),
            "int() takes an int, float, bool or numeric str, not null"
        );
        assert_eq!(
            err("int", vec![dur(5.0)]),
            "int() takes an int, float, bool or numeric str, not duration"
        );
    }

    #[test]
    fn float_conversions() {
        assert_eq!(ok("float", vec![Value::Int(3)]), "3.0");
        assert_eq!(ok("float", vec![Value::Float(0.5)]), "0.5");
        assert_eq!(ok("float", vec![Value::Bool(true)]), "1.0");
        assert_eq!(ok("float", vec![Value::Bool(false)]), "0.0");
        assert_eq!(ok("float", vec![s(" 2.5 ")]), "2.5");
        assert_eq!(ok("float", vec![s("7")]), "7.0");
        assert_eq!(ok("float", vec![s("1e21")]), "1e+21");
        assert_eq!(ok("float", vec![s("-.5")]), "-0.5");
        assert_eq!(
            ok("float", vec![s("123456789012345678901234567890")]),
            "1.2345678901234568e+29"
        );
        assert_eq!(
            err("float", vec![s("nan")]),
            r#"float() cannot read "nan" as a number"#
        );
        assert_eq!(
            err("float", vec![s("Infinity")]),
            r#"float() cannot read "Infinity" as a number"#
        );
        assert_eq!(
            err("float", vec![s("1e400")]),
            r#"float() of "1e400" is out of range for a float"#
        );
        assert_eq!(
            err("float", vec![s("1.2.3")]),
            r#"float() cannot read "1.2.3" as a number"#
        );
        assert_eq!(
            err("float", vec![v("[]")]),
            "float() takes an int, float, bool or numeric str, not list"
        );
    }

    #[test]
    fn bool_is_truthiness() {
        for (x, want) in [
            (Value::Null, "false"),
            (Value::Int(0), "false"),
            (Value::Float(0.0), "false"),
            (s(""), "false"),
            (v("[]"), "false"),
            (v("{}"), "false"),
            (Value::Bool(false), "false"),
            (Value::Int(-1), "true"),
            (s("0"), "true"),
            (v("[null]"), "true"),
            (dur(0.0), "true"),
        ] {
            assert_eq!(ok("bool", vec![x.clone()]), want, "{x:?}");
        }
    }

    #[test]
    fn type_names() {
        let names: Vec<String> = [
            Value::Null,
            Value::Bool(true),
            Value::Int(1),
            Value::Float(1.0),
            s("x"),
            dur(1.0),
            v("[]"),
            v("{}"),
        ]
        .into_iter()
        .map(|x| call("type", vec![x]).unwrap().display())
        .collect();
        assert_eq!(
            names,
            ["null", "bool", "int", "float", "str", "duration", "list", "map"]
        );
    }

    // --- collections -------------------------------------------------------------

    fn range_of(a: i64, b: Option<i64>, step: i64) -> Result<Value, ValueError> {
        call(
            "range",
            vec![
                Value::Int(a),
                b.map_or(Value::Null, Value::Int),
                Value::Int(step),
            ],
        )
    }

    #[test]
    fn range_forms() {
        let show = |a, b, step| range_of(a, b, step).unwrap().display();
        assert_eq!(show(5, None, 1), "[0, 1, 2, 3, 4]");
        assert_eq!(show(0, None, 1), "[]");
        assert_eq!(show(-3, None, 1), "[]");
        assert_eq!(show(2, Some(5), 1), "[2, 3, 4]");
        assert_eq!(show(5, Some(2), 1), "[]");
        assert_eq!(show(0, Some(10), 3), "[0, 3, 6, 9]");
        assert_eq!(show(0, Some(9), 3), "[0, 3, 6]");
        assert_eq!(show(10, Some(0), -3), "[10, 7, 4, 1]");
        assert_eq!(show(3, Some(-3), -2), "[3, 1, -1]");
        assert_eq!(show(0, Some(5), -1), "[]");
        assert_eq!(show(5, None, -1), "[]");
        assert_eq!(show(0, Some(i64::MAX), i64::MAX), "[0]");
        assert_eq!(
            show(i64::MAX - 2, Some(i64::MAX), 1),
            "[9223372036854775805, 9223372036854775806]"
        );
        assert_eq!(
            show(i64::MIN + 1, Some(i64::MIN), -1),
            "[-9223372036854775807]"
        );
        assert_eq!(
            show(i64::MIN, Some(i64::MAX), i64::MAX),
            "[-9223372036854775808, -1, 9223372036854775806]"
        );
    }

    #[test]
    fn range_errors() {
        let e = |a, b, step| range_of(a, b, step).unwrap_err().message;
        assert_eq!(e(0, Some(5), 0), "range() step must not be 0");
        assert_eq!(
            e(0, Some(10_000_001), 1),
            "range() would make 10000001 elements, more than the limit of 10000000"
        );
        assert_eq!(
            e(i64::MIN, Some(i64::MAX), 1),
            "range() would make 18446744073709551615 elements, more than the limit of 10000000"
        );
        assert_eq!(
            err("range", vec![Value::Float(5.0), Value::Null, Value::Int(1)]),
            "range() stop must be an int, not float"
        );
        assert_eq!(
            err("range", vec![Value::Int(0), s("5"), Value::Int(1)]),
            "range() stop must be an int, not str"
        );
        assert_eq!(
            err(
                "range",
                vec![Value::Bool(true), Value::Int(5), Value::Int(1)]
            ),
            "range() start must be an int, not bool"
        );
        assert_eq!(
            err(
                "range",
                vec![Value::Int(0), Value::Int(5), Value::Float(1.0)]
            ),
            "range() step must be an int, not float"
        );
    }

    #[test]
    fn range_count_at_the_limit() {
        assert_eq!(range_count(0, 10_000_000, 1), RANGE_LIMIT as i128);
        assert_eq!(range_count(0, 20_000_000, 2), RANGE_LIMIT as i128);
        assert_eq!(range_count(0, 20_000_001, 2), RANGE_LIMIT as i128 + 1);
        assert_eq!(range_count(10, 0, -3), 4);
        assert_eq!(range_count(0, 0, 1), 0);
    }

    #[test]
    fn keys_and_values_in_insertion_order() {
        let m = v(r#"{"z": 1, "a": [2], "m": null}"#);
        assert_eq!(ok("keys", vec![m.clone()]), r#"["z", "a", "m"]"#);
        assert_eq!(ok("values", vec![m]), "[1, [2], null]");
        assert_eq!(ok("keys", vec![v("{}")]), "[]");
        assert_eq!(err("keys", vec![v("[1]")]), "keys() takes a map, not list");
        assert_eq!(
            err("values", vec![s("ab")]),
            "values() takes a map, not str"
        );
    }

    #[test]
    fn get_with_defaults() {
        let m = v(r#"{"a": 1, "n": null}"#);
        assert_eq!(ok("get", vec![m.clone(), s("a"), Value::Null]), "1");
        assert_eq!(ok("get", vec![m.clone(), s("n"), Value::Int(0)]), "null");
        assert_eq!(ok("get", vec![m.clone(), s("b"), Value::Null]), "null");
        assert_eq!(ok("get", vec![m.clone(), s("b"), s("dflt")]), r#""dflt""#);
        assert_eq!(ok("get", vec![m, Value::Int(1), Value::Int(7)]), "7");
        let xs = v(r#"["x", "y"]"#);
        assert_eq!(
            ok("get", vec![xs.clone(), Value::Int(1), Value::Null]),
            r#""y""#
        );
        assert_eq!(
            ok("get", vec![xs.clone(), Value::Int(2), Value::Int(-1)]),
            "-1"
        );
        assert_eq!(
            ok("get", vec![xs.clone(), Value::Int(-1), Value::Null]),
            "null"
        );
        assert_eq!(
            err("get", vec![xs, s("0"), Value::Null]),
            "get() of a list needs an int index, not str"
        );
        assert_eq!(
            err("get", vec![Value::Null, s("a"), Value::Null]),
            "get() takes a map or list, not null"
        );
    }

    #[test]
    fn contains_elements_keys_and_substrings() {
        let xs = v(r#"[1, "a", [null]]"#);
        assert_eq!(ok("contains", vec![xs.clone(), Value::Float(1.0)]), "true");
        assert_eq!(ok("contains", vec![xs.clone(), v("[null]")]), "true");
        assert_eq!(ok("contains", vec![xs, s("b")]), "false");
        let m = v(r#"{"k": "v"}"#);
        assert_eq!(ok("contains", vec![m.clone(), s("k")]), "true");
        assert_eq!(ok("contains", vec![m.clone(), s("v")]), "false");
        assert_eq!(ok("contains", vec![m, Value::Int(1)]), "false");
        assert_eq!(ok("contains", vec![s("hello"), s("ell")]), "true");
        assert_eq!(ok("contains", vec![s("hello"), s("")]), "true");
        assert_eq!(ok("contains", vec![s("hello"), s("L")]), "false");
        assert_eq!(
            err("contains", vec![s("a1"), Value::Int(1)]),
            "contains() looks for a str in a str, not int"
        );
        assert_eq!(
            err("contains", vec![Value::Int(1), Value::Int(1)]),
            "contains() takes a list, map or str, not int"
        );
    }

    #[test]
    fn append_and_concat_return_new_values() {
        let xs = v("[1, 2]");
        assert_eq!(ok("append", vec![xs.clone(), v("[3]")]), "[1, 2, [3]]");
        assert_eq!(ok("append", vec![v("[]"), Value::Null]), "[null]");
        assert_eq!(xs.display(), "[1, 2]");
        assert_eq!(
            err("append", vec![s("ab"), s("c")]),
            "append() takes a list, not str"
        );
        assert_eq!(
            ok("concat", vec![xs.clone(), v(r#"[3, "x"]"#)]),
            r#"[1, 2, 3, "x"]"#
        );
        assert_eq!(xs.display(), "[1, 2]");
        assert_eq!(ok("concat", vec![s("ab"), s("cd")]), r#""abcd""#);
        assert_eq!(ok("concat", vec![v("[]"), v("[]")]), "[]");
        assert_eq!(
            err("concat", vec![xs, s("x")]),
            "concat() takes two lists or two strs, not list and str"
        );
        assert_eq!(
            err("concat", vec![v("{}"), v("{}")]),
            "concat() takes two lists or two strs, not map and map"
        );
    }

    fn sorted_of(xs: Value, reverse: bool) -> Result<Value, ValueError> {
        call("sorted", vec![xs, Value::Bool(reverse)])
    }

    #[test]
    fn sorted_orders_numbers_strings_and_durations() {
        let show = |xs: Value, r| sorted_of(xs, r).unwrap().display();
        assert_eq!(show(v("[3, 1.5, -2, 10]"), false), "[-2, 1.5, 3, 10]");
        assert_eq!(show(v("[3, 1.5, -2, 10]"), true), "[10, 3, 1.5, -2]");
        assert_eq!(
            show(v(r#"["b", "B", "a", "é"]"#), false),
            r#"["B", "a", "b", "é"]"#
        );
        assert_eq!(
            show(list(vec![dur(2000.0), dur(150.0)]), false),
            "[150ms, 2s]"
        );
        assert_eq!(show(v("[]"), false), "[]");
        assert_eq!(show(v("[1]"), true), "[1]");
        // Stable in both directions: equal elements keep their order.
        assert_eq!(show(v("[1, 1.0, 0]"), false), "[0, 1, 1.0]");
        assert_eq!(show(v("[1, 1.0, 2]"), true), "[2, 1, 1.0]");
        let xs = v("[2, 1]");
        sorted_of(xs.clone(), false).unwrap();
        assert_eq!(xs.display(), "[2, 1]");
    }

    #[test]
    fn sorted_errors() {
        assert_eq!(
            sorted_of(v(r#"[1, "a"]"#), false).unwrap_err().message,
            "sorted(): cannot compare int with str"
        );
        assert_eq!(
            sorted_of(v("[{}]"), false).unwrap_err().message,
            "sorted(): cannot compare map with map"
        );
        assert_eq!(
            sorted_of(v("[null, null]"), false).unwrap_err().message,
            "sorted(): cannot compare null with null"
        );
        assert_eq!(
            sorted_of(s("cba"), false).unwrap_err().message,
            "sorted() takes a list, not str"
        );
        assert_eq!(
            err("sorted", vec![v("[1]"), Value::Int(1)]),
            "sorted() reverse must be a bool, not int"
        );
    }

    #[test]
    fn min_and_max() {
        let several = |xs: &str| vec![v(xs)];
        let one_list = |xs: &str| vec![list(vec![v(xs)])];
        assert_eq!(ok("min", several("[3, 1, 2]")), "1");
        assert_eq!(ok("max", several("[3, 1, 2]")), "3");
        assert_eq!(ok("min", one_list("[3, 1.5, 2]")), "1.5");
        assert_eq!(ok("max", one_list(r#"["a", "c", "b"]"#)), r#""c""#);
        assert_eq!(ok("min", several("[5]")), "5");
        assert_eq!(ok("max", one_list("[7]")), "7");
        // Ties give the first of the equal elements.
        assert_eq!(ok("min", several("[1, 1.0]")), "1");
        assert_eq!(ok("min", several("[1.0, 1]")), "1.0");
        assert_eq!(ok("max", several("[2.0, 2, 1]")), "2.0");
        assert_eq!(ok("max", vec![list(vec![dur(10.0), dur(1000.0)])]), "1s");
        assert_eq!(
            err("min", several("[]")),
            "min() needs one list or at least one value"
        );
        assert_eq!(err("max", one_list("[]")), "max() of an empty list");
        assert_eq!(
            err("min", several(r#"[1, "a"]"#)),
            "min(): cannot compare int with str"
        );
        assert_eq!(
            err("max", several("[1, [2]]")),
            "max(): cannot compare int with list"
        );
        assert_eq!(
            err("max", several("[null]")),
            "max(): cannot compare null with null"
        );
        assert_eq!(
            err("min", several("[[1], [2]]")),
            "min(): cannot compare list with list"
        );
    }

    #[test]
    fn sum_kinds() {
        let sum_of = |xs: Value| call("sum", vec![xs]);
        assert_eq!(sum_of(v("[]")).unwrap().repr(), "0");
        assert_eq!(sum_of(v("[1, 2, 3]")).unwrap().repr(), "6");
        assert_eq!(sum_of(v("[1, 2.5]")).unwrap().repr(), "3.5");
        assert_eq!(
            sum_of(v("[0.1, 0.2]")).unwrap().repr(),
            "0.30000000000000004"
        );
        assert_eq!(sum_of(v("[1.0, 2.0]")).unwrap().repr(), "3.0");
        assert_eq!(
            sum_of(list(vec![dur(1000.0), dur(500.0)])).unwrap().repr(),
            "1.5s"
        );
        assert_eq!(
            sum_of(list(vec![
                Value::Int(i64::MAX),
                Value::Int(1),
                Value::Int(-1)
            ]))
            .unwrap()
            .repr(),
            "9223372036854775807"
        );
        assert_eq!(
            sum_of(list(vec![Value::Int(i64::MAX), Value::Int(1)]))
                .unwrap_err()
                .message,
            "sum() integer overflow: the total 9223372036854775808 does not fit an int"
        );
        assert_eq!(
            sum_of(list(vec![Value::Float(1e308), Value::Float(1e308)]))
                .unwrap_err()
                .message,
            "sum() float result is not finite"
        );
        assert_eq!(
            sum_of(list(vec![dur(1.0), Value::Int(1)]))
                .unwrap_err()
                .message,
            "sum() cannot add durations and numbers"
        );
        assert_eq!(
            sum_of(v(r#"[1, "2"]"#)).unwrap_err().message,
            "sum() takes numbers or durations, but element 1 is str"
        );
        assert_eq!(
            sum_of(v("[true]")).unwrap_err().message,
            "sum() takes numbers or durations, but element 0 is bool"
        );
        assert_eq!(
            sum_of(v("{}")).unwrap_err().message,
            "sum() takes a list, not map"
        );
    }

    // --- numbers -------------------------------------------------------------------

    #[test]
    fn abs_values() {
        assert_eq!(ok("abs", vec![Value::Int(-5)]), "5");
        assert_eq!(ok("abs", vec![Value::Int(5)]), "5");
        assert_eq!(ok("abs", vec![Value::Float(-2.5)]), "2.5");
        assert_eq!(ok("abs", vec![dur(-1500.0)]), "1.5s");
        assert_eq!(
            err("abs", vec![Value::Int(i64::MIN)]),
            "abs() integer overflow in abs(-9223372036854775808)"
        );
        assert_eq!(
            err("abs", vec![s("-1")]),
            "abs() takes a number or duration, not str"
        );
        assert_eq!(
            err("abs", vec![Value::Bool(true)]),
            "abs() takes a number or duration, not bool"
        );
    }

    fn round_of(x: Value, digits: i64) -> Result<Value, ValueError> {
        call("round", vec![x, Value::Int(digits)])
    }

    #[test]
    fn round_to_int_half_away_from_zero() {
        let show = |x: f64| round_of(Value::Float(x), 0).unwrap().repr();
        assert_eq!(show(2.5), "3");
        assert_eq!(show(-2.5), "-3");
        assert_eq!(show(2.4), "2");
        assert_eq!(show(0.5), "1");
        assert_eq!(show(-0.4), "0");
        assert_eq!(show(99.5), "100");
        assert_eq!(show(0.49999999999999994), "0");
        assert_eq!(show(1e18), "1000000000000000000");
        assert_eq!(round_of(Value::Int(7), 0).unwrap().repr(), "7");
        assert_eq!(
            round_of(Value::Float(1e300), 0).unwrap_err().message,
            "round() of 1e+300 is out of range for an int"
        );
    }

    #[test]
    fn round_to_digits_on_the_displayed_decimal() {
        let show = |x: f64, d| round_of(Value::Float(x), d).unwrap().repr();
        assert_eq!(show(2.675, 2), "2.68");
        assert_eq!(show(1.005, 2), "1.01");
        assert_eq!(show(-1.005, 2), "-1.01");
        assert_eq!(show(0.125, 2), "0.13");
        assert_eq!(show(123.456, 1), "123.5");
        assert_eq!(show(1.0 / 3.0, 3), "0.333");
        assert_eq!(show(2.0 / 3.0, 3), "0.667");
        assert_eq!(show(9.995, 2), "10.0");
        assert_eq!(show(-9.995, 2), "-10.0");
        assert_eq!(show(0.0005, 3), "0.001");
        assert_eq!(show(0.00049, 3), "0.0");
        assert_eq!(show(0.00005, 3), "0.0");
        assert_eq!(show(0.00001234, 6), "0.000012");
        assert_eq!(show(1.5, 5), "1.5");
        assert_eq!(show(0.1 + 0.2, 16), "0.3");
        assert_eq!(show(0.1 + 0.2, 17), "0.30000000000000004");
        assert_eq!(show(1e300, 2), "1e+300");
        assert_eq!(show(1.5e-7, 7), "2e-7");
        assert_eq!(show(0.0, 3), "0.0");
        assert_eq!(show(-1.25, i64::MAX), "-1.25");
        assert_eq!(show(1e-300, i64::MAX), "1e-300");
        // An int stays an int whatever the digits.
        assert_eq!(round_of(Value::Int(5), 2).unwrap().repr(), "5");
    }

    #[test]
    fn round_errors() {
        assert_eq!(
            round_of(Value::Float(1.5), -1).unwrap_err().message,
            "round() digits must not be negative, got -1"
        );
        assert_eq!(
            err("round", vec![Value::Float(1.5), Value::Float(1.0)]),
            "round() digits must be an int, not float"
        );
        assert_eq!(
            round_of(s("1.5"), 0).unwrap_err().message,
            "round() takes a number, not str"
        );
        assert_eq!(
            round_of(dur(1.5), 0).unwrap_err().message,
            "round() takes a number, not duration"
        );
    }

    // --- strings -------------------------------------------------------------------

    fn format_of(template: &str, fill: Vec<Value>) -> Result<Value, ValueError> {
        call("format", vec![s(template), list(fill)])
    }

    #[test]
    fn format_fills_placeholders_with_display() {
        let show = |t: &str, fill| format_of(t, fill).unwrap().display();
        assert_eq!(show("{} of {}", vec![Value::Int(1), s("a")]), "1 of a");
        assert_eq!(show("no slots", vec![]), "no slots");
        assert_eq!(show("", vec![]), "");
        assert_eq!(show("{{}}", vec![]), "{}");
        assert_eq!(show("{{{}}}", vec![Value::Int(5)]), "{5}");
        assert_eq!(show("é{}ü", vec![Value::Float(2.0)]), "é2.0ü");
        assert_eq!(
            show(
                "{} {} {}",
                vec![v(r#"[1, "a"]"#), Value::Null, dur(90_000.0)]
            ),
            r#"[1, "a"] null 1m30s"#
        );
        assert_eq!(show("{}{}", vec![s("{}"), s("}")]), "{}}");
    }

    #[test]
    fn format_errors() {
        let e = |t: &str, fill| format_of(t, fill).unwrap_err().message;
        assert_eq!(
            e("{} and {}", vec![Value::Int(1)]),
            "format() template has 2 placeholders but 1 argument was given"
        );
        assert_eq!(
            e("{}", vec![Value::Int(1), Value::Int(2)]),
            "format() template has 1 placeholder but 2 arguments were given"
        );
        assert_eq!(
            e("none", vec![Value::Int(1)]),
            "format() template has 0 placeholders but 1 argument was given"
        );
        assert_eq!(
            e("é{0}", vec![Value::Int(1)]),
            "format() template has a lone { at character 2: write {{ for a literal {"
        );
        assert_eq!(
            e("a}", vec![]),
            "format() template has a lone } at character 2: write }} for a literal }"
        );
        assert_eq!(
            e("{", vec![]),
            "format() template has a lone { at character 1: write {{ for a literal {"
        );
        assert_eq!(
            e("{}}", vec![Value::Int(1)]),
            "format() template has a lone } at character 3: write }} for a literal }"
        );
        assert_eq!(
            err("format", vec![Value::Int(1), list(vec![])]),
            "format() template must be a str, not int"
        );
    }

    #[test]
    fn split_and_join() {
        let split_of = |a: &str, b: &str| call("split", vec![s(a), s(b)]);
        assert_eq!(
            split_of("a,b,,c", ",").unwrap().repr(),
            r#"["a", "b", "", "c"]"#
        );
        assert_eq!(split_of("", ",").unwrap().repr(), r#"[""]"#);
        assert_eq!(split_of("a--b-c", "--").unwrap().repr(), r#"["a", "b-c"]"#);
        assert_eq!(split_of("abc", ",").unwrap().repr(), r#"["abc"]"#);
        assert_eq!(
            split_of("abc", "").unwrap_err().message,
            "split() separator must not be empty"
        );
        assert_eq!(
            err("split", vec![Value::Int(1), s(",")]),
            "split() s must be a str, not int"
        );
        assert_eq!(
            err("split", vec![s("a"), Value::Null]),
            "split() separator must be a str, not null"
        );
        assert_eq!(
            ok("join", vec![v(r#"[1, "a", null, [2, "b"], 1.0]"#), s("-")]),
            r#""1-a-null-[2, \"b\"]-1.0""#
        );
        assert_eq!(ok("join", vec![v("[]"), s(",")]), r#""""#);
        assert_eq!(ok("join", vec![v(r#"["x"]"#), s(", ")]), r#""x""#);
        assert_eq!(
            err("join", vec![s("ab"), s(",")]),
            "join() takes a list, not str"
        );
        assert_eq!(
            err("join", vec![v("[]"), Value::Int(0)]),
            "join() separator must be a str, not int"
        );
    }

    #[test]
    fn case_trim_and_affixes() {
        assert_eq!(ok("upper", vec![s("straße é")]), r#""STRASSE É""#);
        assert_eq!(ok("lower", vec![s("ÀB c")]), r#""àb c""#);
        assert_eq!(ok("trim", vec![s(" \t a b \n\u{3000}")]), r#""a b""#);
        assert_eq!(
            err("upper", vec![Value::Int(1)]),
            "upper() takes a str, not int"
        );
        assert_eq!(
            err("lower", vec![Value::Null]),
            "lower() takes a str, not null"
        );
        assert_eq!(err("trim", vec![v("[]")]), "trim() takes a str, not list");
        assert_eq!(ok("startswith", vec![s("hello"), s("he")]), "true");
        assert_eq!(ok("startswith", vec![s("hello"), s("")]), "true");
        assert_eq!(ok("startswith", vec![s("hello"), s("lo")]), "false");
        assert_eq!(ok("endswith", vec![s("hello"), s("lo")]), "true");
        assert_eq!(ok("endswith", vec![s("hello"), s("hello!")]), "false");
        assert_eq!(
            err("startswith", vec![s("a"), Value::Int(1)]),
            "startswith() takes two strs, not str and int"
        );
        assert_eq!(
            err("endswith", vec![v("[]"), s("a")]),
            "endswith() takes two strs, not list and str"
        );
    }

    // --- JSON ------------------------------------------------------------------------

    fn encode(x: Value) -> String {
        call("json_encode", vec![x]).unwrap().display()
    }

    #[test]
    fn json_encode_forms() {
        assert_eq!(encode(Value::Null), "null");
        assert_eq!(encode(Value::Bool(true)), "true");
        assert_eq!(encode(Value::Int(-42)), "-42");
        assert_eq!(encode(Value::Float(3.0)), "3.0");
        assert_eq!(encode(Value::Float(1e21)), "1e+21");
        assert_eq!(encode(Value::Float(1.5e-7)), "1.5e-7");
        assert_eq!(encode(s("a\"b\\\n\u{1}é")), r#""a\"b\\\n\u0001é""#);
        assert_eq!(encode(dur(90_000.0)), r#""1m30s""#);
        assert_eq!(
            encode(v(r#"{"k": [1, "x", null], "e": {}, "l": []}"#)),
            r#"{"k": [1, "x", null], "e": {}, "l": []}"#
        );
        let mut m = Map::new();
        m.insert("d", list(vec![dur(150.0), Value::Int(1)]));
        m.insert("q\"", Value::Float(0.5));
        assert_eq!(encode(Value::from(m)), r#"{"d": ["150ms", 1], "q\"": 0.5}"#);
        // Every output is JSON.
        for x in [
            v(r#"{"a": [1.5, -0.0, 1e300]}"#),
            dur(1.0),
            s("\u{7f}\u{2028}"),
        ] {
            let text = encode(x);
            serde_json::from_str::<serde_json::Value>(&text).expect(&text);
        }
    }

    #[test]
    fn json_decode_forms() {
        let dec = |text: &str| call("json_decode", vec![s(text)]);
        assert_eq!(
            dec(r#" {"b": 1, "a": [1.5, "x", null, true, 1.0]} "#)
                .unwrap()
                .repr(),
            r#"{"b": 1, "a": [1.5, "x", null, true, 1.0]}"#
        );
        assert_eq!(
            dec("9223372036854775807").unwrap().repr(),
            "9223372036854775807"
        );
        assert_eq!(
            dec("-9223372036854775808").unwrap().repr(),
            "-9223372036854775808"
        );
        assert_eq!(
            dec("9223372036854775808").unwrap().repr(),
            "9223372036854776000.0"
        );
        assert_eq!(dec("1e2").unwrap().repr(), "100.0");
        assert_eq!(dec("0.1").unwrap().repr(), "0.1");
        assert_eq!(dec(r#""\u00e9\n""#).unwrap().repr(), "\"é\\n\"");
        assert_eq!(
            dec(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap().repr(),
            r#"{"a": 3, "b": 2}"#
        );
        assert_eq!(
            dec("[1,").unwrap_err().message,
            "json_decode() cannot parse the text: EOF while parsing a value at line 1 column 3"
        );
        assert_eq!(
            dec("").unwrap_err().message,
            "json_decode() cannot parse the text: EOF while parsing a value at line 1 column 0"
        );
        assert_eq!(
            dec("1e400").unwrap_err().message,
            "json_decode() cannot parse the text: number out of range at line 1 column 5"
        );
        assert_eq!(
            dec("[1] x").unwrap_err().message,
            "json_decode() cannot parse the text: trailing characters at line 1 column 5"
        );
        assert_eq!(
            err("json_decode", vec![Value::Int(1)]),
            "json_decode() s must be a str, not int"
        );
    }

    // --- Aether 1.1 --------------------------------------------------------------------

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

    // --- properties ---------------------------------------------------------------------

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
            let Value::List(out) = out else { panic!("not a list") };
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
            for (name, f) in natives() {
                let decl = declarations().into_iter().find(|d| d.name == name).unwrap();
                let mut pool = [a.clone(), b.clone(), c.clone()].into_iter();
                let args: Vec<Value> = decl
                    .params
                    .iter()
                    .map(|p| match p.kind {
                        ParamKind::Variadic => list(rest.clone()),
                        _ => pool.next().unwrap_or(Value::Null),
                    })
                    .collect();
                if let Err(e) = f(&args) {
                    prop_assert!(e.message.starts_with(name), "{}: {}", name, e.message);
                }
            }
        }
    }
}
