//! Strings: `format`, `split`, `join`, `upper`, `lower`, `trim`, `startswith`, `endswith`.

use aether_check::decl::FnDecl;
use aether_vm::{heap, Args, Native, Value, ValueError};

use crate::helpers::*;

/// The natives of this section, each declared beside its implementation.
pub(crate) fn natives() -> Vec<Native> {
    vec![
        (
            FnDecl::global("format")
                .param("template")
                .rest("args")
                .doc("template with each {} placeholder replaced by the next argument."),
            format,
        ),
        (
            FnDecl::global("split")
                .param("s")
                .param("sep")
                .doc("The parts of string s between occurrences of sep."),
            split,
        ),
        (
            FnDecl::global("join")
                .param("xs")
                .param("sep")
                .doc("The strings of xs joined with sep between them."),
            join,
        ),
        (
            FnDecl::global("upper")
                .param("s")
                .doc("String s in upper case."),
            upper,
        ),
        (
            FnDecl::global("lower")
                .param("s")
                .doc("String s in lower case."),
            lower,
        ),
        (
            FnDecl::global("trim")
                .param("s")
                .doc("String s without leading and trailing whitespace."),
            trim,
        ),
        (
            FnDecl::global("startswith")
                .param("s")
                .param("p")
                .doc("Whether string s starts with prefix p."),
            startswith,
        ),
        (
            FnDecl::global("endswith")
                .param("s")
                .param("p")
                .doc("Whether string s ends with suffix p."),
            endswith,
        ),
    ]
}

/// `format(template, args...)`: each `{}` replaced by the `display()` of the next
/// argument; `{{` and `}}` are literal braces. Any other brace, or a count of
/// placeholders different from the count of arguments, is an error.
fn format(args: &Args<'_>) -> Result<Value, ValueError> {
    let template = string_arg("format", "template", args.get("template")?)?;
    let fill = args.rest("args")?;
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
    // The strings filled in are known; other values' text is short unless nested, and a
    // nested value's text is built (and refused) by display.
    let text_len: usize = fill
        .iter()
        .map(|v| match v {
            Value::Str(s) => s.len(),
            _ => 0,
        })
        .fold(template.len(), usize::saturating_add);
    heap::reserve(text_len)?;
    let mut fill = fill.iter();
    let mut out = String::with_capacity(template.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Slot => {
                let v = fill.next().expect("counted above");
                match v {
                    Value::Str(s) => out.push_str(s),
                    other => out.push_str(&other.display_in_budget()?),
                }
            }
        }
    }
    Ok(Value::from(out))
}

/// `split(s, sep)`: the parts of `s` between occurrences of `sep` (a non-empty
/// string); `split("", ",")` is `[""]`.
fn split(args: &Args<'_>) -> Result<Value, ValueError> {
    let s = args.get("s")?;
    let sep = args.get("sep")?;
    let s = string_arg("split", "s", s)?;
    let sep = string_arg("split", "separator", sep)?;
    if sep.is_empty() {
        return fail("split() separator must not be empty".into());
    }
    // Each part is a string of its own (about 56 bytes besides its text).
    let parts = s.matches(sep).count().saturating_add(1);
    heap::reserve(parts.saturating_mul(56).saturating_add(s.len()))?;
    Ok(Value::from(
        s.split(sep).map(Value::from).collect::<Vec<_>>(),
    ))
}

/// `join(xs, sep)`: the `display()` of each element of list `xs` with `sep` between.
fn join(args: &Args<'_>) -> Result<Value, ValueError> {
    let xs = args.get("xs")?;
    let sep = args.get("sep")?;
    let Value::List(items) = xs else {
        return fail(format!("join() takes a list, not {}", xs.type_name()));
    };
    let sep = string_arg("join", "separator", sep)?;
    let text_len = items
        .iter()
        .map(|it| match it {
            Value::Str(s) => s.len().saturating_add(sep.len()),
            _ => sep.len(),
        })
        .fold(0, usize::saturating_add);
    heap::reserve(text_len)?;
    let mut out = String::new();
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        match it {
            Value::Str(s) => out.push_str(s),
            other => out.push_str(&other.display_in_budget()?),
        }
    }
    Ok(Value::from(out))
}

pub(crate) fn string_map(
    name: &str,
    args: &Args<'_>,
    f: fn(&str) -> String,
) -> Result<Value, ValueError> {
    let s = args.get("s")?;
    match s {
        Value::Str(s) => Ok(Value::from(f(s))),
        other => fail(format!("{name}() takes a str, not {}", other.type_name())),
    }
}

/// `upper(s)`: Unicode upper case.
fn upper(args: &Args<'_>) -> Result<Value, ValueError> {
    string_map("upper", args, str::to_uppercase)
}

/// `lower(s)`: Unicode lower case.
fn lower(args: &Args<'_>) -> Result<Value, ValueError> {
    string_map("lower", args, str::to_lowercase)
}

/// `trim(s)`: without leading and trailing Unicode whitespace.
fn trim(args: &Args<'_>) -> Result<Value, ValueError> {
    string_map("trim", args, |s| s.trim().to_string())
}

pub(crate) fn string_test(
    name: &str,
    args: &Args<'_>,
    f: fn(&str, &str) -> bool,
) -> Result<Value, ValueError> {
    let s = args.get("s")?;
    let p = args.get("p")?;
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
fn startswith(args: &Args<'_>) -> Result<Value, ValueError> {
    string_test("startswith", args, |s, p| s.starts_with(p))
}

/// `endswith(s, p)`.
fn endswith(args: &Args<'_>) -> Result<Value, ValueError> {
    string_test("endswith", args, |s, p| s.ends_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

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
}
