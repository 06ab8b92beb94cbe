//! Compile and run scripts through the library: exact output, errors with positions, budgets.

use aether_check::decl::{DefaultValue, FnDecl, Registry};
use aether_syntax::LineIndex;
use aether_vm::{compile, Args, Budget, FnTable, NativeFn, Value, ValueError, Vm, VmErrorKind};

fn len(args: &Args<'_>) -> Result<Value, ValueError> {
    match args.get("x")? {
        Value::List(l) => Ok(Value::Int(l.len() as i64)),
        Value::Str(s) => Ok(Value::Int(s.chars().count() as i64)),
        other => Err(ValueError::new(format!("len() of {}", other.type_name()))),
    }
}

fn str_(args: &Args<'_>) -> Result<Value, ValueError> {
    Ok(Value::from(args.get("x")?.display()))
}

fn range(args: &Args<'_>) -> Result<Value, ValueError> {
    let (a, b) = match (args.get("a")?, args.get("b")?) {
        (Value::Int(stop), Value::Null) => (0, *stop),
        (Value::Int(a), Value::Int(b)) => (*a, *b),
        _ => return Err(ValueError::new("range() takes ints")),
    };
    Ok(Value::from((a..b).map(Value::Int).collect::<Vec<_>>()))
}

fn pair(args: &Args<'_>) -> Result<Value, ValueError> {
    Ok(Value::from(args.values().to_vec()))
}

/// The VM's intrinsics (`print`, ...) and a few test natives, each declared beside its
/// implementation.
fn table() -> FnTable {
    FnTable::new().with_natives([
        (FnDecl::global("len").param("x"), len as NativeFn),
        (FnDecl::global("str").param("x"), str_),
        (
            FnDecl::global("range")
                .param("a")
                .opt("b", DefaultValue::Null),
            range,
        ),
        (
            FnDecl::global("pair")
                .param("a")
                .opt("b", DefaultValue::Int(2))
                .opt("c", DefaultValue::Int(3)),
            pair,
        ),
    ])
}

fn registry() -> Registry {
    table().registry().clone()
}

/// Run a script that must check clean; returns (stdout, result or (kind, message, line)).
fn run_with(src: &str, budget: Budget) -> (String, Result<Value, (VmErrorKind, String, u32)>) {
    let analysis = aether_check::analyze(src, &registry());
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message().to_string())
        .collect();
    assert!(errors.is_empty(), "script does not check: {errors:?}");
    let table = table();
    let program = compile(&analysis, table.registry()).expect("compiles");
    let mut vm = Vm::new(&program, &table, Vec::new(), budget);
    let res = vm.run();
    let index = LineIndex::new(src);
    let res = res.map_err(|e| {
        let line = e.span().map_or(0, |s| index.line_col(src, s.start).line);
        (e.kind(), e.message().to_string(), line)
    });
    (
        String::from_utf8(vm.into_output()).expect("utf-8 output"),
        res,
    )
}

fn run(src: &str) -> String {
    let (out, res) = run_with(src, Budget::default());
    res.expect("runs without error");
    out
}

#[test]
fn arithmetic_and_display() {
    let out = run("goal: \"g\"\nprint(1 + 2 * 3, \"a\" + \"b\", 7 / 2, 1500ms, 0.1 + 0.2, [1, \"x\", null], {k: 90s})\n");
    assert_eq!(
        out,
        "7 ab 3.5 1.5s 0.30000000000000004 [1, \"x\", null] {\"k\": 1m30s}\n"
    );
}

#[test]
fn variables_and_value_semantics() {
    let out = run("goal: \"g\"
let m = {a: 1, b: [1, 2]}
m.a = 5
m[\"b\"][0] = 9
let copy = m
copy.a = 6
total: 1
total: total + 1
print(m, copy, total)
");
    assert_eq!(
        out,
        "{\"a\": 5, \"b\": [9, 2]} {\"a\": 6, \"b\": [9, 2]} 2\n"
    );
}

#[test]
fn control_flow() {
    let out = run("goal: \"g\"
let n = 0
while true:
    n = n + 1
    if n < 3:
        continue
    elif n == 5:
        break
    print(\"n\", n)
for c in \"abc\":
    if c == \"b\":
        continue
    print(c)
for k in {x: 1, y: 2}:
    for i in range(10):
        if i == 1:
            break
        print(k, i)
print(\"done\", n)
");
    assert_eq!(out, "n 3\nn 4\na\nc\nx 0\ny 0\ndone 5\n");
}

#[test]
fn actions_recursion_defaults_and_keywords() {
    let out = run("goal: \"g\"
let base = 100
action fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)
action add(a, b = 10):
    return a + b + base
action shout:
    inputs: [word, times = 2]
    let out = \"\"
    for i in range(times):
        out = out + word
    return out
print(fib(20), add(1), add(1, b=2), shout(\"ha\"), shout(times=3, word=\"yo\"))
print(pair(1, c=9), len([1, 2, 3]), str(1.0))
");
    assert_eq!(out, "6765 111 103 haha yoyoyo\n[1, 2, 9] 3 1.0\n");
}

#[test]
fn keyword_arguments_are_evaluated_in_written_order() {
    let out = run("goal: \"g\"
action note(x):
    print(x)
    return x
print(pair(c=note(\"first\"), a=note(\"second\")))
");
    assert_eq!(out, "first\nsecond\n[\"second\", 2, \"first\"]\n");
}

#[test]
fn top_level_return_ends_the_script_with_its_value() {
    let (out, res) = run_with("goal: \"g\"\nprint(1)\nreturn 42\n", Budget::default());
    assert_eq!(out, "1\n");
    assert_eq!(res, Ok(Value::Int(42)));
}

#[test]
fn runtime_errors_carry_kind_message_and_line() {
    let (_, res) = run_with("goal: \"g\"\nlet a = 1\nprint(a / 0)\n", Budget::default());
    assert_eq!(
        res,
        Err((VmErrorKind::Runtime, "division by zero in 1 / 0".into(), 3))
    );
    let (_, res) = run_with(
        "goal: \"g\"\nlet x = 9223372036854775807\nprint(x + 1)\n",
        Budget::default(),
    );
    let (kind, message, line) = res.expect_err("overflow");
    assert_eq!((kind, line), (VmErrorKind::Runtime, 3));
    assert!(message.contains("integer overflow"), "{message}");
    let (_, res) = run_with(
        "goal: \"g\"\nlet ok = false\nassert ok, \"not ready\"\n",
        Budget::default(),
    );
    assert_eq!(res, Err((VmErrorKind::Runtime, "not ready".into(), 3)));
}

#[test]
fn deep_recursion_hits_the_call_depth_limit_not_the_host_stack() {
    let src = "goal: \"g\"\naction down(n):\n    return down(n + 1)\nprint(down(0))\n";
    let (_, res) = run_with(src, Budget::default());
    let (kind, message, _) = res.expect_err("depth limit");
    assert_eq!(kind, VmErrorKind::Runtime);
    assert_eq!(message, "call depth limit of 256 exceeded");
}

#[test]
fn the_step_budget_stops_an_endless_loop() {
    let src = "goal: \"g\"\nlet i = 0\nwhile true:\n    i = i + 1\n";
    let (_, res) = run_with(
        src,
        Budget {
            max_steps: Some(10_000),
            ..Budget::default()
        },
    );
    assert_eq!(res.expect_err("budget").0, VmErrorKind::Timeout);
}

/// The budget is checked on jumps back and on entering an action: recursion without a
/// loop (depth stays low, calls multiply) must stop too, inside the action.
#[test]
fn the_step_budget_stops_recursion_without_a_loop() {
    let src = "goal: \"g\"\naction fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\nprint(fib(40))\n";
    let (out, res) = run_with(
        src,
        Budget {
            max_steps: Some(10_000),
            ..Budget::default()
        },
    );
    let (kind, message, line) = res.expect_err("budget");
    assert_eq!(kind, VmErrorKind::Timeout);
    assert_eq!(
        message,
        "the step budget of 10000 instructions ran out (policy max_steps)"
    );
    assert!((3..=5).contains(&line), "line {line}");
    assert_eq!(out, "");
}

/// A budget that runs out in a loop stops at the loop's jump back: at most one loop body
/// past the budget, whatever the budget (above 1,024: the first check comes after 1,024
/// instructions).
#[test]
fn the_step_budget_overshoots_by_at_most_one_loop_body() {
    let src = "goal: \"g\"\nlet i = 0\nwhile true:\n    i = i + 1\n    i = i - 1\n    i = i + 1\n";
    for max in 3000..3012 {
        let analysis = aether_check::analyze(src, &registry());
        let table = table();
        let program = compile(&analysis, table.registry()).expect("compiles");
        let budget = Budget {
            max_steps: Some(max),
            ..Budget::default()
        };
        let mut vm = Vm::new(&program, &table, Vec::new(), budget);
        let err = vm.run().expect_err("budget");
        assert_eq!(err.kind(), VmErrorKind::Timeout);
        let body = program.code.len() as u64;
        assert!(
            vm.steps() > max && vm.steps() <= max + body,
            "max {max}: stopped after {} steps",
            vm.steps()
        );
    }
}

#[test]
fn reading_a_top_level_variable_before_it_is_set_is_an_error() {
    let src = "goal: \"g\"\naction show():\n    return late\nprint(show())\nlet late = 1\n";
    let (_, res) = run_with(src, Budget::default());
    let (_, message, _) = res.expect_err("uninitialised");
    assert_eq!(
        message,
        "top-level variable `late` is read before it is initialised"
    );
}

#[test]
fn action_references_are_values_called_with_their_defaults() {
    let src = "goal: \"g\"\naction add(a, b = 10):\n    return a + b\nlet f = add\nprint(f(1), f(1, 2), f)\nlet g = 1\ng()\n";
    let (out, res) = run_with(src, Budget::default());
    assert_eq!(out, "11 3 <action add>\n");
    let (kind, message, line) = res.expect_err("an int is not callable");
    assert_eq!(kind, VmErrorKind::Runtime);
    assert_eq!(message, "a value of type int is not callable");
    assert_eq!(line, 7);
}

#[test]
fn keyword_arguments_through_a_variable_are_refused_at_compile_time() {
    let src = "goal: \"g\"\naction add(a, b = 10):\n    return a + b\nlet f = add\nf(1, b=2)\n";
    let err = compile(&aether_check::analyze(src, &registry()), &registry()).expect_err("not yet");
    assert_eq!(
        err.message,
        "not available yet: keyword arguments in a call through a variable"
    );
}

#[test]
fn a_module_function_without_a_host_is_not_available() {
    let table = table().with_host([FnDecl::in_module("memory", "count")]);
    let src = "goal: \"g\"\nprint(\"before\")\nmemory.count()\n";
    let analysis = aether_check::analyze(src, table.registry());
    let program = compile(&analysis, table.registry()).expect("compiles");
    let mut vm = Vm::new(&program, &table, Vec::new(), Budget::default());
    let err = vm.run().expect_err("no host");
    assert_eq!(
        err.message(),
        "not available yet: `memory.count()` is not provided by this build's runtime host"
    );
    assert_eq!(
        String::from_utf8(vm.into_output()).expect("utf-8"),
        "before\n"
    );
}

/// A script past a 16-bit operand (top-level variables, locals of one action) is a compile
/// error at the statement that went past it, never a wrapped slot or a panic.
#[test]
fn a_script_past_the_slot_limits_is_a_compile_error_with_a_span() {
    let n = usize::from(u16::MAX) + 2;
    let mut globals = String::from("goal: \"g\"\n");
    for i in 0..n {
        globals.push_str(&format!("let v{i} = {i}\n"));
    }
    let err = compile(&aether_check::analyze(&globals, &registry()), &registry())
        .expect_err("too many globals");
    assert_eq!(
        err.message,
        "this script is too large to run: more than 65535 top-level variables"
    );
    let line = LineIndex::new(&globals)
        .line_col(&globals, err.span.start)
        .line;
    assert_eq!(line, 65_537, "the first variable past the limit");

    let mut locals = String::from("goal: \"g\"\naction big():\n");
    for i in 0..n {
        locals.push_str(&format!("    let v{i} = {i}\n"));
    }
    locals.push_str("big()\n");
    let err = compile(&aether_check::analyze(&locals, &registry()), &registry())
        .expect_err("too many locals");
    assert_eq!(
        err.message,
        "this script is too large to run: more than 65535 local variables and temporaries in one action"
    );
    assert!(err.span.start > 0);
}

#[test]
fn a_break_outside_a_loop_that_skipped_the_check_is_not_called_unavailable() {
    // The checker rejects this (break-outside-loop); compiling it anyway says so instead of
    // calling `break` a feature that is not available yet.
    let src = "goal: \"g\"\nbreak\n";
    let analysis = aether_check::analyze(src, &registry());
    assert!(analysis.has_errors());
    let err = compile(&analysis, &registry()).expect_err("break outside a loop");
    assert_eq!(
        err.message,
        "`break` outside a loop (the check rejects this script)"
    );
}
