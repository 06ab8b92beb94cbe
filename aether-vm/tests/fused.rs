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

const FORMS: [Form; 10] = [
    ("z = x OP K\n    print(z)", Use::Print, |i| {
        // `+` has its own instruction.
        matches!(i, Instr::LocalConstStore { .. } | Instr::AddLocalConst { .. })
    }),
    ("print(x OP K)", Use::Print, |i| {
        matches!(i, Instr::BinLocalConst { .. })
    }),
    (
        "if x OP K:\n        print(true)\n    else:\n        print(false)",
        Use::Test,
        // `<` has its own instruction.
        |i| matches!(i, Instr::LocalConstTest { .. } | Instr::LtLocalConst { .. }),
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
    ("print((x + 0) OP (y + 0))", Use::Print, |i| {
        matches!(i, Instr::Binary(_))
    }),
    ("print(x OP (y + 0))", Use::Print, |i| {
        matches!(i, Instr::LocalBinary { .. })
    }),
    ("z = (x + 0) OP K\n    print(z)", Use::Print, |i| {
        matches!(i, Instr::BinConstStore { .. })
    }),
    // The test runs twice: at the loop's head, then fused with the jump back.
    (
        "while x OP K:\n        z = z + 1\n        if z == 2:\n            break\n    print(z == 2)",
        Use::Test,
        |i| matches!(i, Instr::JumpBackTest(_)),
    ),
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

/// Run `src` (a script of `action t()` and its call) with a step budget; stdout, the
/// error (kind, message, line) and the steps counted.
fn run_src(
    src: &str,
    max_steps: Option<u64>,
) -> (String, Result<(), (VmErrorKind, String, u32)>, u64) {
    let table = FnTable::new();
    let analysis = aether_check::analyze(src, table.registry());
    assert!(
        !analysis.diagnostics.iter().any(|d| d.is_error()),
        "does not check:\n{src}"
    );
    let program = compile(&analysis, table.registry()).expect("compiles");
    let budget = Budget {
        max_steps,
        ..Budget::default()
    };
    let mut vm = Vm::new(&program, &table, Vec::new(), budget);
    let res = vm.run();
    let steps = vm.steps();
    let out = String::from_utf8(vm.into_output()).expect("utf-8 output");
    let index = LineIndex::new(src);
    let res = res.map(|_| ()).map_err(|e| {
        let line = e.span().map_or(0, |s| index.line_col(src, s.start).line);
        (e.kind(), e.message().to_string(), line)
    });
    (out, res, steps)
}

/// The test fused with a loop's jump back fails on the `while` line when it is the
/// second test (not the head's) that overflows, and takes the slow path for non-ints.
#[test]
fn the_jump_back_test_fails_on_the_loop_line_and_handles_any_value() {
    let src = "goal: \"g\"\naction t():\n    let x = 9223372036854775805\n    while x + 1:\n        x = x + 1\n    return x\nt()\n";
    let (_, res, _) = run_src(src, None);
    let (kind, message, line) = res.expect_err("overflow on the second test");
    assert_eq!(kind, VmErrorKind::Runtime);
    assert!(message.contains("overflow"), "{message}");
    assert_eq!(line, 4);

    let src = "goal: \"g\"\naction t():\n    let s = \"\"\n    while s != \"aaa\":\n        s = s + \"a\"\n    print(s)\nt()\n";
    let (out, res, _) = run_src(src, None);
    assert_eq!(res, Ok(()));
    assert_eq!(out, "aaa\n");

    let src = "goal: \"g\"\naction t():\n    let x = 1.5\n    while x < 4:\n        x = x + 1\n    print(x)\nt()\n";
    let (out, res, _) = run_src(src, None);
    assert_eq!(res, Ok(()));
    assert_eq!(out, "4.5\n");
}

/// A loop's jump back fused with its test counts as one instruction, like the other fused
/// instructions, and the budget still stops such a loop.
#[test]
fn a_fused_loop_counts_one_step_per_instruction_and_obeys_the_budget() {
    let loop_of = |n: u32| {
        format!("goal: \"g\"\naction t():\n    let i = 0\n    while i < {n}:\n        i = i + 1\n    print(i)\nt()\n")
    };
    let (out, res, ten) = run_src(&loop_of(10), None);
    assert_eq!((out.as_str(), res), ("10\n", Ok(())));
    let (_, _, twenty) = run_src(&loop_of(20), None);
    // Per iteration: the store `i = i + 1`, and the jump back with the test.
    assert_eq!(twenty - ten, 20);

    let (out, res, steps) = run_src(&loop_of(1_000_000), Some(5_000));
    let (kind, _, line) = res.expect_err("budget");
    assert_eq!((kind, out.as_str()), (VmErrorKind::Timeout, ""));
    assert!((4..=5).contains(&line), "line {line}");
    assert!(steps > 5_000 && steps < 5_100, "{steps} steps");
}

/// `x op e` with `e` compound reads `x` after `e` (`LocalBinary`): a call in `e` cannot
/// change it, and the operator keeps its operand order and its error line.
#[test]
fn a_local_operand_read_after_the_right_side_is_the_same_value() {
    let src = "goal: \"g\"\naction bump(v):\n    v = v + 100\n    return v\naction name(v):\n    return \"b\"\naction t():\n    let x = 1\n    let s = \"a\"\n    print(x + bump(x))\n    print(x - bump(x) * 2)\n    print(s + name(x))\n    print(x + (x + 1) * 3)\n    print(x + (9223372036854775807 + 0))\nt()\n";
    let table = FnTable::new();
    let analysis = aether_check::analyze(src, table.registry());
    let program = compile(&analysis, table.registry()).expect("compiles");
    let fused = program
        .code
        .iter()
        .filter(|i| matches!(i, Instr::LocalBinary { .. }))
        .count();
    assert_eq!(fused, 5, "{:?}", program.code);
    let (out, res, _) = run_src(src, None);
    assert_eq!(out, "102\n-201\nab\n7\n");
    let (kind, message, line) = res.expect_err("overflow");
    assert_eq!(kind, VmErrorKind::Runtime);
    assert!(message.contains("overflow"), "{message}");
    assert_eq!(line, 14);
}

/// `i = i + K` and `while i < K` compile (`s = s + "b"` takes its local for an
/// in-place update instead) to the instructions with the operator built in
/// (`AddLocalConst`, `LtLocalConst`, the latter also after the jump back); their int
/// paths, overflow and error line, and their slow paths for other values.
#[test]
fn the_add_and_less_than_instructions_run_like_the_general_ones() {
    let src = "goal: \"g\"\naction t():\n    let i = 0\n    let n = 0\n    while i < 5:\n        i = i + 1\n        n = i + 9223372036854775800\n    print(n)\n    let s = \"a\"\n    s = s + \"b\"\n    let x = 0.5\n    while x < 2:\n        x = x + 1\n    print(s)\n    print(x)\n    n = n + 8\n    return n\nt()\n";
    let table = FnTable::new();
    let analysis = aether_check::analyze(src, table.registry());
    let program = compile(&analysis, table.registry()).expect("compiles");
    let count = |p: fn(&Instr) -> bool| program.code.iter().filter(|i| p(i)).count();
    assert_eq!(
        count(|i| matches!(i, Instr::AddLocalConst { .. })),
        4,
        "{:?}",
        program.code
    );
    assert_eq!(
        count(|i| matches!(i, Instr::LtLocalConst { .. })),
        2,
        "{:?}",
        program.code
    );
    assert_eq!(
        count(|i| matches!(i, Instr::JumpBackTest(_))),
        2,
        "{:?}",
        program.code
    );
    let (out, res, _) = run_src(src, None);
    assert_eq!(out, "9223372036854775805\nab\n2.5\n");
    let (kind, message, line) = res.expect_err("overflow");
    assert_eq!(kind, VmErrorKind::Runtime);
    assert!(message.contains("overflow"), "{message}");
    assert_eq!(line, 16);

    // `<` between kinds that do not compare fails on the loop's line, at the head and
    // after the jump back.
    for start in ["\"a\"", "0"] {
        let src = format!("goal: \"g\"\naction t(v, w):\n    let i = v\n    while i < 3:\n        i = w\n    return i\nt({start}, \"b\")\n");
        let (_, res, _) = run_src(&src, None);
        let (kind, _, line) = res.expect_err("no order between a string and an int");
        assert_eq!((kind, line), (VmErrorKind::Runtime, 4), "{src}");
    }
}
