//! Differential test of the VM's fused and fast-path instructions against the plain value operations.
//!
//! Each form below puts one operator in a position the compiler fuses (`x op K` stored,
//! pushed or tested, `x op y` of two locals, a comparison feeding a jump, ...). Run
//! through the whole VM, it must print what `Value`'s own operation gives (which
//! `tests/differential.rs` checks against an exact reference), or fail with the same
//! message, as a runtime error, on the line of the operator: overflow, division by zero
//! and the rest included. Every form also checks that the compiled code really holds the
//! instruction it is meant to exercise.

use aether_syntax::LineIndex;
use aether_vm::{compile, Budget, FnTable, Instr, Value, ValueError, Vm, VmErrorKind};
use proptest::prelude::*;

const OPS: [&str; 11] = ["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!="];

fn apply(op: &str, a: i64, b: i64) -> Result<Value, ValueError> {
    let (a, b) = (Value::Int(a), Value::Int(b));
    match op {
        "+" => a.add(&b),
        "-" => a.sub(&b),
        "*" => a.mul(&b),
        "/" => a.div(&b),
        "%" => a.rem(&b),
        "<" => a.lt(&b).map(Value::Bool),
        "<=" => a.le(&b).map(Value::Bool),
        ">" => a.gt(&b).map(Value::Bool),
        ">=" => a.ge(&b).map(Value::Bool),
        "==" => Ok(Value::Bool(a == b)),
        "!=" => Ok(Value::Bool(a != b)),
        _ => unreachable!("not an operator of OPS"),
    }
}

/// An int as source text (`i64::MIN` has no literal).
fn literal(n: i64) -> String {
    match n {
        i64::MIN => "(-9223372036854775807 - 1)".to_string(),
        n if n < 0 => format!("(-{})", n.unsigned_abs()),
        n => n.to_string(),
    }
}

/// How a form uses the result of `x op y`.
#[derive(Clone, Copy, Debug)]
enum Use {
    /// Prints the value.
    Print,
    /// Prints whether it is truthy (an `if` on it).
    Test,
}

/// `(statement on line 4, use, does the code hold the instruction meant)`; `K` is the
/// constant operand (a literal, so never negative), `x` and `y` are parameters.
type Form = (&'static str, Use, fn(&Instr) -> bool);

const FORMS: [Form; 7] = [
    ("z = x OP K\n    print(z)", Use::Print, |i| {
        matches!(i, Instr::LocalConstStore { .. })
    }),
    ("print(x OP K)", Use::Print, |i| {
        matches!(i, Instr::BinLocalConst { .. })
    }),
    (
        "if x OP K:\n        print(true)\n    else:\n        print(false)",
        Use::Test,
        |i| matches!(i, Instr::LocalConstTest { .. }),
    ),
    ("print(x OP y)", Use::Print, |i| {
        matches!(i, Instr::BinLocalLocal { .. })
    }),
    (
        "if (x + 0) OP y:\n        print(true)\n    else:\n        print(false)",
        Use::Test,
        |i| matches!(i, Instr::BinJumpIfFalse { .. }),
    ),
    ("print((x + 0) OP K)", Use::Print, |i| {
        matches!(i, Instr::BinConst { .. })
    }),
    ("print(x OP (y + 0))", Use::Print, |i| {
        matches!(i, Instr::Binary(_))
    }),
];

/// Run `form` with operator `op`, `x`, and `k` as both the constant and `y`; returns
/// stdout, or the error's kind, message and line.
fn run_form(form: &Form, op: &str, x: i64, k: i64) -> Result<String, (VmErrorKind, String, u32)> {
    let stmt = form.0.replace("OP", op).replace('K', &literal(k));
    let src = format!(
        "goal: \"fused\"\naction t(x, y):\n    let z = 0\n    {stmt}\n    return z\nt({}, {})\n",
        literal(x),
        literal(k)
    );
    let table = FnTable::new();
    let analysis = aether_check::analyze(&src, table.registry());
    assert!(
        !analysis.diagnostics.iter().any(|d| d.is_error()),
        "does not check:\n{src}"
    );
    let program = compile(&analysis, table.registry()).expect("compiles");
    assert!(
        program.code.iter().any(form.2),
        "the form does not hold its instruction:\n{src}\n{:?}",
        program.code
    );
    let mut vm = Vm::new(&program, &table, Vec::new(), Budget::default());
    let res = vm.run();
    let out = String::from_utf8(vm.into_output()).expect("utf-8 output");
    let index = LineIndex::new(&src);
    match res {
        Ok(_) => Ok(out),
        Err(e) => {
            let line = e.span().map_or(0, |s| index.line_col(&src, s.start).line);
            Err((e.kind(), e.message().to_string(), line))
        }
    }
}

fn expected(form: &Form, op: &str, x: i64, k: i64) -> Result<String, (VmErrorKind, String, u32)> {
    match apply(op, x, k) {
        Ok(v) => Ok(match form.1 {
            Use::Print => format!("{}\n", v.display()),
            Use::Test => format!("{}\n", v.is_truthy()),
        }),
        Err(e) => Err((VmErrorKind::Runtime, e.message, 4)),
    }
}

fn check(op: &str, x: i64, k: i64) {
    for form in &FORMS {
        assert_eq!(
            run_form(form, op, x, k),
            expected(form, op, x, k),
            "form {:?} with {x} {op} {k}",
            form.0
        );
    }
}

fn ints() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        -100i64..100,
        (i64::MAX - 1000)..=i64::MAX,
        i64::MIN..(i64::MIN + 1000),
    ]
}

/// The edges random draws rarely hit: overflow of each operator, division by zero.
#[test]
fn edge_values_match_the_value_operations() {
    let edges = [i64::MIN, i64::MIN + 1, -1, 0, 1, 2, 3_037_000_500, i64::MAX];
    for op in OPS {
        for x in edges {
            for k in [0, 1, 2, 3_037_000_500, i64::MAX] {
                check(op, x, k);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fused_paths_match_the_value_operations(
        op in prop::sample::select(OPS.to_vec()),
        x in ints(),
        k in ints().prop_map(|k| k.checked_abs().unwrap_or(i64::MAX)),
    ) {
        check(op, x, k);
    }
}
