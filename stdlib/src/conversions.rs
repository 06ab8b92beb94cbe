//! Conversions: `len`, `str`, `int`, `float`, `bool`, `type`.

use aether_check::decl::FnDecl;
use aether_vm::{Args, Native, Value, ValueError};

use crate::helpers::*;

/// The natives of this section, each declared beside its implementation.
pub(crate) fn natives() -> Vec<Native> {
    vec![
        (
            FnDecl::global("len")
                .param("x")
                .doc("Number of elements of a list or map, or characters of a string."),
            len,
        ),
        (
            FnDecl::global("str")
                .param("x")
                .doc("The value converted to a string."),
            str_,
        ),
        (
            FnDecl::global("int")
                .param("x")
                .doc("The value converted to an int."),
            int,
        ),
        (
            FnDecl::global("float")
                .param("x")
                .doc("The value converted to a float."),
            float,
        ),
        (
            FnDecl::global("bool")
                .param("x")
                .doc("The truthiness of the value as a bool."),
            bool_,
        ),
        (
            FnDecl::global("type")
                .param("x")
                .doc("The name of the value's type."),
            type_,
        ),
    ]
}

/// `len(x)`: characters of a string (Unicode scalar values), elements of a list,
/// entries of a map.
fn len(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
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
fn str_(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
    Ok(match x {
        Value::Str(_) => x.clone(),
        other => Value::from(other.display_in_budget()?),
    })
}

/// `int(x)`: an int as is, a float truncated toward zero (an error beyond the int
/// range), a bool as 1 or 0, a string holding a number (surrounding whitespace ignored;
/// a non-integer is truncated like a float).
fn int(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
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
fn float(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
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
fn bool_(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
    Ok(Value::Bool(x.is_truthy()))
}

/// `type(x)`: `null`, `bool`, `int`, `float`, `str`, `duration`, `list` or `map`.
fn type_(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
    Ok(Value::from(x.type_name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

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
}
