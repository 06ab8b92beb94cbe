//! JSON: `json_encode`, `json_decode`.

use std::rc::Rc;

use aether_check::decl::FnDecl;
use aether_vm::{heap, Args, Map, Native, Value, ValueError};

use crate::helpers::*;

/// The natives of this section, each declared beside its implementation.
pub(crate) fn natives() -> Vec<Native> {
    vec![
        (
            FnDecl::global("json_encode")
                .param("x")
                .doc("The value encoded as a JSON string."),
            json_encode,
        ),
        (
            FnDecl::global("json_decode")
                .param("s")
                .doc("The value decoded from JSON string s."),
            json_decode,
        ),
    ]
}

/// `json_encode(x)`: JSON text with the separators and number forms of `display()`
/// (`{"a": 1, "b": [2.5, null]}`); durations as strings of their canonical form.
fn json_encode(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
    // to_json() is repr() with durations (and action references) as strings: JSON
    // escapes, finite floats in ECMAScript form (`3.0`, `1e+21`), `null`, `true`, `[..]`,
    // `{"k": ..}`, written without recursion whatever the depth.
    Ok(Value::from(x.to_json_in_budget()?))
}

pub(crate) fn from_json(j: serde_json::Value) -> Value {
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

/// `json_decode(s)`: the value of JSON text `s`. Integers are ints, numbers with a
/// fraction or an exponent floats; objects keep their order. An integer beyond the
/// 64-bit int range is an error, never silently a float that has lost its digits.
fn json_decode(args: &Args<'_>) -> Result<Value, ValueError> {
    let s = args.get("s")?;
    let text = string_arg("json_decode", "s", s)?;
    if let Some(big) = integer_beyond_i64(text) {
        return fail(format!(
            "json_decode() cannot decode {big}: an integer beyond the 64-bit int range (write it as a string, or with a fraction or exponent for a float)"
        ));
    }
    // The decoded value takes a few times the text's bytes; what it took is checked after
    // each stage (no check can run while serde_json parses).
    heap::reserve(text.len().saturating_mul(4))?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(j) => {
            heap::check()?;
            let v = from_json(j);
            heap::check()?;
            Ok(v)
        }
        Err(e) => fail(format!("json_decode() cannot parse the text: {e}")),
    }
}

/// The first integer literal of JSON text `text` (outside strings, without a fraction or
/// an exponent) that does not fit an `i64`, cut to 40 characters. serde_json reads such a
/// literal as a float, which cannot be told from a float literal afterwards.
fn integer_beyond_i64(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let literal = &text[start..i];
                let digits = literal.strip_prefix('-').unwrap_or(literal);
                let integer = !digits.is_empty() && digits.bytes().all(|d| d.is_ascii_digit());
                if integer && literal.parse::<i64>().is_err() {
                    return Some(literal.chars().take(40).collect());
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

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
        for big in [
            "9223372036854775808",
            "99999999999999999999999",
            "[1, {\"k\": -9223372036854775809}]",
        ] {
            let e = dec(big).unwrap_err().message;
            assert!(e.contains("beyond the 64-bit int range"), "{big}: {e}");
        }
        // Digits inside strings, and floats, are not integers.
        assert_eq!(
            dec(r#"["99999999999999999999999", 1e30]"#).unwrap().repr(),
            r#"["99999999999999999999999", 1e+30]"#
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
}
