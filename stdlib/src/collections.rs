//! Collections: `range`, `keys`, `values`, `get`, `contains`, `append`, `concat`, `sorted`, `min`, `max`, `sum`.

use std::cmp::Ordering;

use aether_check::decl::{DefaultValue, FnDecl};
use aether_vm::value::VALUE_BYTES;
use aether_vm::{heap, Args, Native, Value, ValueError};

use crate::helpers::*;

/// The natives of this section, each declared beside its implementation.
pub(crate) fn natives() -> Vec<Native> {
    vec![
        (
            FnDecl::global("range")
            .param("a")
            .opt("b", DefaultValue::Null)
            .opt("step", DefaultValue::Int(1))
            .doc("range(n): 0 up to n (one argument is the stop); range(a, b, step=1): a up to b, exclusive."),
            range,
        ),
        (
            FnDecl::global("keys").param("m").doc("The keys of map m as a list."),
            keys,
        ),
        (
            FnDecl::global("values").param("m").doc("The values of map m as a list."),
            values,
        ),
        (
            FnDecl::global("get")
            .param("m")
            .param("k")
            .opt("default", DefaultValue::Null)
            .doc("The value at key k of m, or default when absent."),
            get,
        ),
        (
            FnDecl::global("contains")
            .param("c")
            .param("x")
            .doc("Whether collection or string c contains x."),
            contains,
        ),
        (
            FnDecl::global("append")
            .param("xs")
            .param("x")
            .doc("A new list: xs followed by x (xs is not mutated)."),
            append,
        ),
        (
            FnDecl::global("concat")
            .param("a")
            .param("b")
            .doc("A new value: a followed by b (the arguments are not mutated)."),
            concat,
        ),
        (
            FnDecl::global("sorted")
            .param("xs")
            .opt("reverse", DefaultValue::Bool(false))
            .doc("A new sorted list of xs, descending when reverse (xs is not mutated)."),
            sorted,
        ),
        (
            FnDecl::global("min")
            .rest("args")
            .doc("The smallest element of one list argument, or of several values."),
            min,
        ),
        (
            FnDecl::global("max")
            .rest("args")
            .doc("The largest element of one list argument, or of several values."),
            max,
        ),
        (
            FnDecl::global("sum").param("xs").doc("The sum of the numbers of xs."),
            sum,
        ),
    ]
}

/// `range(a, b=null, step=1)`: with `b` null, `0` up to `a`; else `a` up to `b`,
/// exclusive, by `step` (negative steps count down; `0` is an error). All ints. More
/// than [`RANGE_LIMIT`] elements is an error.
fn range(args: &Args<'_>) -> Result<Value, ValueError> {
    let a = args.get("a")?;
    let b = args.get("b")?;
    let step = args.get("step")?;
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
    // Below RANGE_LIMIT, so it fits a usize.
    heap::reserve_items(count as usize, VALUE_BYTES)?;
    // Every element lies between start and stop, so it fits an i64.
    let items = (0..count)
        .map(|i| Value::Int((start + i * step) as i64))
        .collect::<Vec<_>>();
    Ok(Value::from(items))
}

/// The number of elements of `range(start, stop, step)` (`step` non-zero).
pub(crate) fn range_count(start: i128, stop: i128, step: i128) -> i128 {
    if step > 0 && stop > start {
        (stop - start + step - 1) / step
    } else if step < 0 && start > stop {
        (start - stop - step - 1) / -step
    } else {
        0
    }
}

/// `keys(m)`: the keys of a map, in insertion order.
fn keys(args: &Args<'_>) -> Result<Value, ValueError> {
    let m = args.get("m")?;
    match m {
        Value::Map(map) => Ok(Value::from(map.keys().map(Value::from).collect::<Vec<_>>())),
        other => fail(format!("keys() takes a map, not {}", other.type_name())),
    }
}

/// `values(m)`: the values of a map, in insertion order.
fn values(args: &Args<'_>) -> Result<Value, ValueError> {
    let m = args.get("m")?;
    match m {
        Value::Map(map) => Ok(Value::from(map.values().cloned().collect::<Vec<_>>())),
        other => fail(format!("values() takes a map, not {}", other.type_name())),
    }
}

/// `get(m, k, default=null)`: the value at key `k` of a map, or at index `k` of a list,
/// else `default`. A non-string key of a map is simply absent; a list index outside
/// `0..len` is absent; a non-int list index is an error.
fn get(args: &Args<'_>) -> Result<Value, ValueError> {
    let m = args.get("m")?;
    let k = args.get("k")?;
    let default = args.get("default")?;
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
fn contains(args: &Args<'_>) -> Result<Value, ValueError> {
    let c = args.get("c")?;
    let x = args.get("x")?;
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
fn append(args: &Args<'_>) -> Result<Value, ValueError> {
    let xs = args.get("xs")?;
    let x = args.get("x")?;
    match xs {
        Value::List(items) => {
            heap::reserve_items(items.len() + 1, VALUE_BYTES)?;
            let mut out = Vec::with_capacity(items.len() + 1);
            out.extend(items.iter().cloned());
            out.push(x.clone());
            Ok(Value::from(out))
        }
        other => fail(format!("append() takes a list, not {}", other.type_name())),
    }
}

/// `concat(a, b)`: two lists or two strings joined into a new value.
fn concat(args: &Args<'_>) -> Result<Value, ValueError> {
    let a = args.get("a")?;
    let b = args.get("b")?;
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
fn sorted(args: &Args<'_>) -> Result<Value, ValueError> {
    let xs = args.get("xs")?;
    let reverse = args.get("reverse")?;
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
pub(crate) fn extreme(name: &str, args: &Args<'_>, wanted: Ordering) -> Result<Value, ValueError> {
    match args.rest("args")? {
        [] => fail(format!("{name}() needs one list or at least one value")),
        [Value::List(items)] if items.is_empty() => fail(format!("{name}() of an empty list")),
        [Value::List(items)] => extreme_of(name, items, wanted),
        several => extreme_of(name, several, wanted),
    }
}

/// The first element of non-empty `items` that no other element beats in the `wanted`
/// direction; the elements must be mutually comparable.
pub(crate) fn extreme_of(
    name: &str,
    items: &[Value],
    wanted: Ordering,
) -> Result<Value, ValueError> {
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
fn min(args: &Args<'_>) -> Result<Value, ValueError> {
    extreme("min", args, Ordering::Less)
}

/// `max(args...)`: the largest element of one list argument, or of several values.
fn max(args: &Args<'_>) -> Result<Value, ValueError> {
    extreme("max", args, Ordering::Greater)
}

/// `sum(xs)`: ints sum to an int (a total beyond the int range is an error, partial
/// sums may leave it), ints with floats to a float
/// (added left to right), durations to a duration; `sum([])` is `0`.
fn sum(args: &Args<'_>) -> Result<Value, ValueError> {
    let xs = args.get("xs")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

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
}
