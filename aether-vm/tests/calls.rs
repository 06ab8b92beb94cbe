//! The call path: calls of actions (direct and through references), returns (the fused
//! `return local` included), and what a call can fail with: the call depth limit, a wrong
//! number of arguments, an error inside the called action (its line and the call site).

use aether_syntax::LineIndex;
use aether_vm::{
    compile, Budget, FnTable, Instr, Program, Value, ValueError, Vm, VmError, VmErrorKind,
};
use proptest::prelude::*;

fn program(src: &str) -> (FnTable, Program) {
    let table = FnTable::new();
    let analysis = aether_check::analyze(src, table.registry());
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message().to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "script does not check: {errors:?}\n{src}"
    );
    let program = compile(&analysis, table.registry()).expect("compiles");
    (table, program)
}

/// Run `src` under `budget`: (stdout, the result, the compiled code).
fn run_with(src: &str, budget: Budget) -> (String, Result<Value, VmError>, Vec<Instr>) {
    let (table, program) = program(src);
    let mut vm = Vm::new(&program, &table, Vec::new(), budget);
    let res = vm.run();
    let out = String::from_utf8(vm.into_output()).expect("utf-8 output");
    (out, res, program.code.clone())
}

fn line(src: &str, e: &VmError) -> u32 {
    let index = LineIndex::new(src);
    e.span().map_or(0, |s| index.line_col(src, s.start).line)
}

fn has_return_local(code: &[Instr]) -> bool {
    code.iter().any(|i| matches!(i, Instr::ReturnLocal(_)))
}

#[test]
fn return_of_a_local_moves_it_out_and_keeps_value_semantics() {
    // `return xs` (a local list) and `return n` (a parameter), with heap values in the
    // other locals of the frame that ends: the caller's copy is its own.
    let src = "goal: \"g\"
action make(n):
    let label = \"item\" + \"s\"
    let xs = [n, n + 1]
    let other = {\"k\": [1, 2]}
    return xs
action same(n):
    return n
let keep = [0]
action grow(base):
    let ys = base + [9]
    return ys
let a = make(1)
let b = a + [3]
let c = grow(keep)
print(a, b, c, keep, same(\"s\"), same(7))
";
    let (out, res, code) = run_with(src, Budget::default());
    res.expect("runs");
    assert!(has_return_local(&code), "{code:?}");
    assert_eq!(out, "[1, 2] [1, 2, 3] [0, 9] [0] s 7\n");
}

#[test]
fn recursion_through_return_local_gives_the_same_results() {
    let src = "goal: \"g\"
action fib(n):
    if n < 2:
        return n
    let a = fib(n - 1)
    let b = fib(n - 2)
    let r = a + b
    return r
action count(n):
    let s = \"\"
    if n == 0:
        return s
    let rest = count(n - 1)
    let out = rest + str(n)
    return out
print(fib(15), count(5))
";
    let table = aether_stdlib_free_table();
    let (out, res) = run_in(&table, src, Budget::default());
    res.expect("runs");
    assert_eq!(out, "610 12345\n");
}

/// `str` is a stdlib native (above this crate): a one-function table for the test.
fn aether_stdlib_free_table() -> FnTable {
    use aether_check::decl::FnDecl;
    use aether_vm::{Args, NativeFn, ValueError};
    fn str_(args: &Args<'_>) -> Result<Value, ValueError> {
        Ok(Value::from(args.get("x")?.display()))
    }
    FnTable::new().with_natives([(FnDecl::global("str").param("x"), str_ as NativeFn)])
}

/// `"k" + str(i)`: a shared left string in front of a right one nobody else holds is
/// written into the right one's buffer; neither the constant, nor a variable holding the
/// left string, nor a right string someone else holds changes.
#[test]
fn concatenation_in_front_of_an_unshared_string_leaves_the_shared_ones_alone() {
    let src = "goal: \"g\"
action t():
    let prefix = \"k\"
    let keep = str(7)
    let m = {}
    let i = 0
    while i < 3:
        m[\"k\" + str(i)] = i
        m[prefix + str(i * 10)] = i
        i = i + 1
    let a = \"k\" + keep
    let b = prefix + keep
    let c = str(1) + str(2)
    let d = \"\" + str(3)
    print(m, prefix, keep, a, b, c, d, \"k\" + \"\")
t()
";
    let table = aether_stdlib_free_table();
    let analysis = aether_check::analyze(src, table.registry());
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let program = compile(&analysis, table.registry()).expect("compiles");
    let mut vm = Vm::new(&program, &table, Vec::new(), Budget::default());
    vm.run().expect("runs");
    let out = String::from_utf8(vm.into_output()).expect("utf-8");
    assert_eq!(
        out,
        "{\"k0\": 0, \"k1\": 1, \"k10\": 1, \"k2\": 2, \"k20\": 2} k 7 k7 k7 12 3 k\n",
    );
}

fn run_in(table: &FnTable, src: &str, budget: Budget) -> (String, Result<Value, VmError>) {
    let analysis = aether_check::analyze(src, table.registry());
    assert!(
        !analysis.diagnostics.iter().any(|d| d.is_error()),
        "does not check:\n{src}"
    );
    let program = compile(&analysis, table.registry()).expect("compiles");
    assert!(has_return_local(&program.code), "{:?}", program.code);
    let mut vm = Vm::new(&program, table, Vec::new(), budget);
    let res = vm.run();
    (String::from_utf8(vm.into_output()).expect("utf-8"), res)
}

#[test]
fn an_error_in_a_called_action_has_its_line_and_the_call_site_in_the_trace() {
    let src = "goal: \"g\"
action inner(x):
    let y = x + 1
    let z = y / 0
    return z
action outer(x):
    let r = inner(x)
    return r
print(\"start\")
print(outer(1))
";
    let (out, res, code) = run_with(src, Budget::default());
    assert!(has_return_local(&code));
    assert_eq!(out, "start\n");
    let e = res.expect_err("division by zero");
    assert_eq!(e.kind(), VmErrorKind::Runtime);
    assert_eq!(e.message(), "division by zero in 2 / 0");
    assert_eq!(line(src, &e), 4);
    let index = LineIndex::new(src);
    let trace: Vec<(String, u32)> = e
        .trace()
        .iter()
        .map(|(name, span)| {
            let l = span.map_or(0, |s| index.line_col(src, s.start).line);
            (name.clone(), l)
        })
        .collect();
    assert_eq!(
        trace,
        vec![("inner".to_string(), 7), ("outer".to_string(), 10)]
    );
}

#[test]
fn an_error_after_returns_is_reported_on_its_own_line() {
    // Returns (fused and not) restore the caller's position: an error after them in the
    // caller points at the caller's line, not into the action that returned.
    let src = "goal: \"g\"
action one():
    let v = 1
    return v
action two():
    return 2
let a = one() + two()
let b = a - 3
print(a / b)
";
    let (_, res, _) = run_with(src, Budget::default());
    let e = res.expect_err("division by zero");
    assert_eq!(e.message(), "division by zero in 3 / 0");
    assert_eq!(line(src, &e), 9);
    assert!(e.trace().is_empty(), "{:?}", e.trace());
}

#[test]
fn recursion_past_the_depth_limit_is_a_structured_error_on_every_call_path() {
    let budget = Budget {
        max_depth: 40,
        ..Budget::default()
    };
    // A direct call whose result is returned from a local, a call through a reference,
    // and plain `return call(...)`.
    let direct =
        "goal: \"g\"\naction down(n):\n    let r = down(n + 1)\n    return r\nprint(down(0))\n";
    let by_ref = "goal: \"g\"\naction down(n, f):\n    let r = f(n + 1, f)\n    return r\nprint(down(0, down))\n";
    let tail = "goal: \"g\"\naction down(n):\n    return down(n + 1)\nprint(down(0))\n";
    for src in [direct, by_ref, tail] {
        let (out, res, _) = run_with(src, budget);
        let e = res.expect_err("depth limit");
        assert_eq!(e.kind(), VmErrorKind::Runtime, "{src}");
        assert_eq!(e.message(), "call depth limit of 40 exceeded", "{src}");
        assert_eq!(line(src, &e), 3, "{src}");
        assert_eq!(e.trace().len(), 40, "{src}");
        assert_eq!(out, "");
    }
    // The default limit on a deep but bounded recursion is no error.
    let ok = "goal: \"g\"\naction down(n):\n    if n == 0:\n        return n\n    let r = down(n - 1)\n    return r\nprint(down(200))\n";
    let (out, res, _) = run_with(ok, Budget::default());
    res.expect("within the limit");
    assert_eq!(out, "0\n");
}

#[test]
fn a_wrong_number_of_arguments_through_a_reference_is_an_error_on_the_call_line() {
    let src = "goal: \"g\"\naction add(a, b = 10):\n    let s = a + b\n    return s\nlet f = add\nprint(f(1))\nprint(f(1, 2, 3))\n";
    let (out, res, _) = run_with(src, Budget::default());
    assert_eq!(out, "11\n");
    let e = res.expect_err("too many arguments");
    assert_eq!(e.kind(), VmErrorKind::Runtime);
    assert_eq!(e.message(), "action `add` takes 1 to 2 arguments, not 3");
    assert_eq!(line(src, &e), 7);
    let src = "goal: \"g\"\naction add(a, b = 10):\n    return a + b\nlet f = add\nprint(f())\n";
    let (_, res, _) = run_with(src, Budget::default());
    let e = res.expect_err("too few arguments");
    assert_eq!(e.message(), "action `add` takes 1 to 2 arguments, not 0");
    assert_eq!(line(src, &e), 5);
}

#[test]
fn the_step_budget_stops_recursion_that_returns_locals() {
    let src = "goal: \"g\"\naction fib(n):\n    if n < 2:\n        return n\n    let r = fib(n - 1) + fib(n - 2)\n    return r\nprint(fib(40))\n";
    let budget = Budget {
        max_steps: Some(20_000),
        ..Budget::default()
    };
    let (out, res, code) = run_with(src, budget);
    assert!(has_return_local(&code));
    let e = res.expect_err("budget");
    assert_eq!(e.kind(), VmErrorKind::Timeout);
    assert!((3..=6).contains(&line(src, &e)), "line {}", line(src, &e));
    assert_eq!(out, "");
}

fn has_return_binary(code: &[Instr]) -> bool {
    code.iter().any(|i| matches!(i, Instr::ReturnBinary(_)))
}

const OPS: [&str; 11] = ["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!="];

/// `a op b` by the value operations (what the unfused `Binary` computes).
fn apply(op: &str, a: &Value, b: &Value) -> Result<Value, ValueError> {
    match op {
        "+" => a.add(b),
        "-" => a.sub(b),
        "*" => a.mul(b),
        "/" => a.div(b),
        "%" => a.rem(b),
        "<" => a.lt(b).map(Value::Bool),
        "<=" => a.le(b).map(Value::Bool),
        ">" => a.gt(b).map(Value::Bool),
        ">=" => a.ge(b).map(Value::Bool),
        "==" => Ok(Value::Bool(a == b)),
        "!=" => Ok(Value::Bool(a != b)),
        _ => unreachable!("not an operator of OPS"),
    }
}

/// `return (x + 0) OP (y + 0)` (a `Binary; Return` pair, fused) in an action called from
/// another one with a local of its own: stdout, or the error's kind, message, line and
/// trace (action names with their call sites' lines).
#[allow(clippy::type_complexity)]
fn run_return_binary(
    op: &str,
    x: &str,
    y: &str,
) -> Result<String, (VmErrorKind, String, u32, Vec<(String, u32)>)> {
    let src = format!(
        "goal: \"g\"\naction t(x, y):\n    let keep = [x, \"s\"]\n    return (x + 0) {op} (y + 0)\naction u(x, y):\n    let r = t(x, y)\n    return r\nprint(u({x}, {y}))\n"
    );
    let (out, res, code) = run_with(&src, Budget::default());
    assert!(has_return_binary(&code), "{code:?}");
    let index = LineIndex::new(&src);
    let line_of =
        |span: Option<aether_syntax::Span>| span.map_or(0, |s| index.line_col(&src, s.start).line);
    match res {
        Ok(_) => Ok(out),
        Err(e) => Err((
            e.kind(),
            e.message().to_string(),
            line_of(e.span()),
            e.trace()
                .iter()
                .map(|(name, span)| (name.clone(), line_of(*span)))
                .collect(),
        )),
    }
}

#[allow(clippy::type_complexity)]
fn expected_return_binary(
    op: &str,
    a: i64,
    b: i64,
) -> Result<String, (VmErrorKind, String, u32, Vec<(String, u32)>)> {
    match apply(op, &Value::Int(a), &Value::Int(b)) {
        Ok(v) => Ok(format!("{}\n", v.display())),
        Err(e) => Err((
            VmErrorKind::Runtime,
            e.message,
            4,
            vec![("t".to_string(), 6), ("u".to_string(), 8)],
        )),
    }
}

/// The edges of the fused `return a op b`: overflow of each operator, division by zero;
/// the error is on the `return` line with the trace through both calls.
#[test]
fn return_binary_matches_the_value_operations_at_the_edges() {
    let edges = [i64::MIN, -1, 0, 1, 2, 3_037_000_500, i64::MAX];
    for op in OPS {
        for a in edges {
            for b in edges {
                assert_eq!(
                    run_return_binary(op, &literal(a), &literal(b)),
                    expected_return_binary(op, a, b),
                    "{a} {op} {b}"
                );
            }
        }
    }
}

/// The fused return off the int path: strings and lists joined (the caller's copies stay
/// their own), floats, and a type error on the `return` line.
#[test]
fn return_binary_of_strings_lists_floats_and_errors() {
    let cases: [(&str, &str, &str); 6] = [
        ("+", "\"ab\"", "\"cd\""),
        ("+", "[1]", "[2, 3]"),
        ("*", "1.5", "2"),
        ("<", "\"a\"", "\"b\""),
        ("==", "[1]", "[1]"),
        ("-", "1.5", "(-2)"),
    ];
    for (op, x, y) in &cases {
        // `x + 0` is not defined on strings and lists: their cases return `x op y` through
        // the locals directly, which is a `Binary; Return` pair too when not fused with
        // the loads (`BinLocalLocal` is not, since a call's result is no local).
        let src = format!(
            "goal: \"g\"\naction id(v):\n    return v\naction t(x, y):\n    return id(x) {op} id(y)\nlet a = {x}\nlet b = {y}\nprint(t(a, b), a, b)\n"
        );
        let (out, res, code) = run_with(&src, Budget::default());
        res.expect("runs");
        assert!(has_return_binary(&code), "{code:?}");
        let (table, program) = program(&format!(
            "goal: \"g\"\nlet a = {x}\nlet b = {y}\nlet r = a {op} b\nprint(r, a, b)\n"
        ));
        let mut vm = Vm::new(&program, &table, Vec::new(), Budget::default());
        vm.run().expect("runs");
        let plain = String::from_utf8(vm.into_output()).expect("utf-8");
        assert_eq!(out, plain, "{x} {op} {y}");
    }
    let src = "goal: \"g\"\naction id(v):\n    return v\naction t(x, y):\n    return id(x) + id(y)\nprint(t(\"a\", 1))\n";
    let (out, res, code) = run_with(src, Budget::default());
    assert!(has_return_binary(&code));
    let e = res.expect_err("str + int");
    assert_eq!(
        e.message(),
        "cannot add str and int: convert with str() first"
    );
    assert_eq!(line(src, &e), 5);
    assert_eq!(out, "");
}

fn literal(n: i64) -> String {
    match n {
        i64::MIN => "(-9223372036854775807 - 1)".to_string(),
        n if n < 0 => format!("(-{})", n.unsigned_abs()),
        n => n.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Returning local `which` of three (ints, a string, a list) gives that value, as
    /// returning it through an expression (`[v][0]`, not fused) does.
    #[test]
    fn return_local_matches_the_unfused_return(
        x in any::<i64>(), s in "[a-z]{0,6}", which in 0usize..4
    ) {
        let locals = ["a", "b", "c", "d"];
        let name = locals[which];
        let body = format!(
            "    let a = {x}\n    let b = \"{s}\"\n    let c = [a, b]\n    let d = {{\"k\": c}}\n",
            x = literal(x)
        );
        let fused = format!("goal: \"g\"\naction pick():\n{body}    return {name}\nprint(pick())\n");
        let plain = format!("goal: \"g\"\naction pick():\n{body}    return [{name}][0]\nprint(pick())\n");
        let (out_fused, res_fused, code) = run_with(&fused, Budget::default());
        let (out_plain, res_plain, _) = run_with(&plain, Budget::default());
        prop_assert!(has_return_local(&code));
        prop_assert!(res_fused.is_ok() && res_plain.is_ok());
        prop_assert_eq!(out_fused, out_plain);
    }

    /// The fused `return a op b` on ints gives what the value operation gives, or fails
    /// with its message on the `return` line.
    #[test]
    fn return_binary_matches_the_value_operations(
        op in prop::sample::select(OPS.to_vec()),
        a in prop_oneof![any::<i64>(), -100i64..100, (i64::MAX - 100)..=i64::MAX, i64::MIN..(i64::MIN + 100)],
        b in prop_oneof![any::<i64>(), -3i64..3, (i64::MAX - 100)..=i64::MAX],
    ) {
        prop_assert_eq!(
            run_return_binary(op, &literal(a), &literal(b)),
            expected_return_binary(op, a, b)
        );
    }
}

/// `return a op b` in a frame without locals (an action without parameters, the main
/// body): the fused form would leave its result in a first slot such a frame does not
/// have, so the pair stays unfused there (this panicked with an index out of bounds before
/// session 8) and is fused in a frame with a local.
#[test]
fn return_binary_in_a_frame_without_locals() {
    let src = "goal: \"g\"\naction g():\n    return 2\naction h():\n    return g() + g()\naction c():\n    return g() < g() + 1\nprint(h())\nprint(c())\nreturn g() * g()\n";
    let (out, res, code) = run_with(src, Budget::default());
    assert!(!has_return_binary(&code), "{code:?}");
    assert_eq!(out, "4\ntrue\n");
    assert_eq!(res.expect("runs"), Value::Int(4));
    let src =
        "goal: \"g\"\naction g():\n    return 2\naction h(x):\n    return g() + x\nprint(h(3))\n";
    let (out, res, code) = run_with(src, Budget::default());
    assert!(has_return_binary(&code), "{code:?}");
    assert_eq!(out, "5\n");
    assert!(res.is_ok());
}
