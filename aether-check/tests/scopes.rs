//! Focused checks of name resolution: block scopes, the 1.1 `x: e` form, actions, workflows, pending values and calls.

mod common;

use aether_check::analyze;
use aether_syntax::LineIndex;

use common::registry;

/// `(rule id, 1-based line)` of every diagnostic of `body`, which is checked after a
/// `goal:` line (line 1) so that A201 missing-goal stays out of the way.
fn diags(body: &str) -> Vec<(&'static str, u32)> {
    let src = format!("goal: \"scope test\"\n{body}");
    let index = LineIndex::new(&src);
    analyze(&src, &registry())
        .diagnostics
        .iter()
        .map(|d| (d.rule().id, index.line_col(&src, d.span().start).line))
        .collect()
}

fn clean(body: &str) {
    assert_eq!(diags(body), vec![], "expected no diagnostics for:\n{body}");
}

#[test]
fn let_in_a_block_is_not_visible_after_it() {
    let body = "\
if true:
    let inner = 1
    print(inner)
print(inner)
";
    assert_eq!(diags(body), vec![("A103", 5)]);
}

#[test]
fn let_in_a_top_level_block_is_not_a_global() {
    let body = "\
if true:
    let hidden = 1
action peek:
    return hidden
print(peek())
";
    assert_eq!(diags(body), vec![("A103", 5)]);
}

#[test]
fn loop_variable_is_not_visible_after_the_loop() {
    let body = "\
for item in [1, 2]:
    print(item)
print(item)
";
    assert_eq!(diags(body), vec![("A103", 4)]);
}

#[test]
fn while_body_is_its_own_scope() {
    let body = "\
let n = 3
while n > 0:
    let step = 1
    n = n - step
print(step)
";
    assert_eq!(diags(body), vec![("A103", 6)]);
}

#[test]
fn top_level_names_exist_from_their_declaration_on() {
    // FIXME: the help says "declare it first with `let later = ...`" although `later`
    // is declared, just one line too late.
    let body = "\
print(later)
let later = 1
print(later)
";
    assert_eq!(diags(body), vec![("A103", 2)]);
}

#[test]
fn declare_form_assigns_a_visible_variable_in_the_same_action() {
    // `total: ...` inside the `if` assigns the action's `total`, so it is still the
    // same variable (and visible) after the block.
    clean(
        "\
action tally(xs):
    let total = 0
    for x in xs:
        if x > 0:
            total: total + x
    return total
print(tally([1, -2, 3]))
",
    );
}

#[test]
fn declare_form_declares_in_the_block_when_nothing_is_visible() {
    let body = "\
if true:
    fresh: 1
    print(fresh)
print(fresh)
";
    assert_eq!(diags(body), vec![("A103", 5)]);
}

#[test]
fn declare_form_in_an_action_shadows_a_top_level_variable() {
    // Actions cannot assign top-level variables, so `limit: 5` declares a local.
    clean(
        "\
let limit = 10
action tighten:
    limit: 5
    limit = limit - 1
    return limit
print(tighten(), limit)
",
    );
}

#[test]
fn assigning_a_top_level_variable_in_an_action_is_an_error() {
    let body = "\
let counter = 0
action bump:
    counter = counter + 1
bump()
";
    assert_eq!(diags(body), vec![("A121", 4)]);
}

#[test]
fn index_assignment_to_a_top_level_variable_in_an_action_is_an_error() {
    let body = "\
let seen = {}
action mark(key):
    seen[key] = true
mark(\"a\")
";
    assert_eq!(diags(body), vec![("A121", 4)]);
}

#[test]
fn a_local_that_went_out_of_scope_does_not_shadow_the_global() {
    let body = "\
let level = 1
action raise_level:
    if true:
        let level = 2
    level = 3
raise_level()
";
    assert_eq!(diags(body), vec![("A121", 6)]);
}

#[test]
fn parameters_shadow_top_level_variables() {
    clean(
        "\
let value = 1
action double(value):
    value = value * 2
    return value
print(double(4), value)
",
    );
}

#[test]
fn assignment_to_an_undeclared_variable() {
    assert_eq!(diags("missing = 1\n"), vec![("A104", 2)]);
    assert_eq!(diags("missing[0] = 1\n"), vec![("A104", 2)]);
    assert_eq!(diags("missing.field = 1\n"), vec![("A104", 2)]);
}

#[test]
fn actions_are_hoisted() {
    clean(
        "\
print(later(2))
action later(x):
    return helper(x) + 1
action helper(x):
    return x * 2
",
    );
}

#[test]
fn actions_read_top_level_variables_declared_anywhere() {
    // Reading before initialisation is a run-time error, not a check-time one.
    clean(
        "\
action show:
    print(banner)
let banner = \"hello\"
show()
",
    );
}

#[test]
fn parallel_and_transaction_open_no_scope() {
    clean(
        "\
metadata:
    requires: [\"memory\"]
transaction:
    let note = \"saved\"
    - memory.store(note)
parallel:
    count: len([1, 2])
await count
print(note, count)
",
    );
}

#[test]
fn workflow_bindings_are_visible_to_later_steps_only() {
    let body = "\
action load(path):
    return {path: path}
action render(doc):
    return doc
workflow build:
    steps:
        - render(parsed)
        - load(\"design.json\") as parsed
        - render(parsed) as page
        - print(page)
";
    assert_eq!(diags(body), vec![("A103", 8)]);
}

#[test]
fn workflow_steps_see_top_level_variables_and_settings() {
    clean(
        "\
let target = \"rbxmx\"
workflow export:
    input: \"design.json\"
    steps:
        - print(workflow.input, target)
",
    );
}

#[test]
fn named_workflows_are_callable_without_arguments() {
    let body = "\
workflow nightly:
    steps:
        - print(\"nightly\")
nightly()
nightly(1)
";
    assert_eq!(diags(body), vec![("A105", 6)]);
}

#[test]
fn pending_value_read_before_await() {
    let body = "\
parallel:
    first: len([1])
    second: len([first])
print(first)
await first, second
print(first, second)
";
    // Reported once per name, at the first read.
    assert_eq!(diags(body), vec![("A111", 4)]);
}

#[test]
fn pending_value_read_after_await_is_fine() {
    clean(
        "\
parallel:
    first: len([1])
    let second = len([2])
await first, second
print(first + second)
",
    );
}

#[test]
fn pending_values_inside_an_action() {
    let body = "\
action fan_out:
    parallel:
        a: len([1])
    let early = a
    await a
    return early
print(fan_out())
";
    assert_eq!(diags(body), vec![("A111", 5)]);
}

#[test]
fn awaiting_twice_is_an_error() {
    let body = "\
parallel:
    job: len([1])
await job
await job
";
    assert_eq!(diags(body), vec![("A112", 5)]);
}

#[test]
fn awaiting_a_plain_value_or_an_expression_is_an_error() {
    assert_eq!(diags("let total = 3\nawait total\n"), vec![("A112", 3)]);
    assert_eq!(diags("await len([1])\n"), vec![("A112", 2)]);
}

#[test]
fn awaiting_an_unknown_name_is_an_undefined_variable() {
    assert_eq!(diags("await nothing\n"), vec![("A103", 2)]);
}

#[test]
fn an_await_on_one_branch_leaves_the_value_pending_on_the_other() {
    let body = "\
parallel:
    job: len([1])
if len([2]) > 1:
    await job
print(job)
";
    assert_eq!(diags(body), vec![("A111", 6)]);
}

#[test]
fn an_await_on_every_branch_clears_the_value() {
    clean(
        "\
parallel:
    job: len([1])
if len([2]) > 1:
    await job
else:
    await job
print(job)
",
    );
}

#[test]
fn an_await_inside_a_loop_body_may_not_have_run() {
    let body = "\
parallel:
    job: len([1])
for i in range(3):
    await job
print(job)
";
    assert!(diags(body).contains(&("A111", 6)), "{:?}", diags(body));
}

#[test]
fn error_is_bound_in_on_error_handlers_only() {
    clean(
        "\
on_error:
    - when: Any
      do: log(format(\"failed at line {}: {}\", error.line, error.message), level=\"error\")
print(\"running\")
",
    );
    let body = "\
on_error:
    - when: Any
      do: print(error.code_name)
print(error)
";
    assert_eq!(diags(body), vec![("A103", 5)]);
}

#[test]
fn on_error_handlers_can_call_actions_and_read_globals() {
    clean(
        "\
let team = \"ops\"
on_error:
    - when: Timeout
      do: page(team, error.message)
action page(who, text):
    print(who, text)
",
    );
}

#[test]
fn memory_statement_calls_the_memory_module() {
    // `kind=` exists on memory.store, not on the global store(x, tag=null).
    clean(
        "\
metadata:
    requires: [\"memory\"]
memory: store(\"fact\", kind=\"observation\")
memory: recall(\"fact\", limit=2)
",
    );
    // ...and `tag=` exists only on the global, so it is unknown here.
    let body = "\
metadata:
    requires: [\"memory\"]
memory: store(\"fact\", tag=\"x\")
";
    assert_eq!(diags(body), vec![("A106", 4)]);
}

#[test]
fn memory_statement_falls_back_to_a_global_function() {
    clean("memory: print(\"not a memory function\")\n");
    assert_eq!(diags("memory: nothing_here(1)\n"), vec![("A101", 2)]);
}

#[test]
fn memory_statement_counts_as_a_use_of_the_memory_module() {
    assert_eq!(diags("memory: store(\"fact\")\n"), vec![("A204", 2)]);
}

#[test]
fn top_level_return_is_fine() {
    clean("let status = \"ok\"\nreturn status\n");
    clean("return\n");
}

#[test]
fn return_inside_a_transaction_is_an_error() {
    let top = "\
transaction:
    - print(\"one\")
    return 1
";
    assert_eq!(diags(top), vec![("A110", 4)]);
    let in_action = "\
action save:
    transaction:
        if true:
            return 1
    return 2
print(save())
";
    assert_eq!(diags(in_action), vec![("A110", 5)]);
}

#[test]
fn return_after_a_transaction_is_fine() {
    clean(
        "\
action save:
    let result = 1
    transaction:
        - print(\"one\")
    return result
print(save())
",
    );
}

#[test]
fn break_and_continue_need_an_enclosing_loop_in_the_same_action() {
    clean("for i in [1, 2]:\n    if i > 1:\n        break\n    continue\n");
    let body = "\
action stop:
    break
for i in [1]:
    stop()
";
    assert_eq!(diags(body), vec![("A108", 3)]);
}

#[test]
fn unknown_keyword_argument() {
    assert_eq!(diags("log(\"x\", levle=\"warn\")\n"), vec![("A106", 2)]);
    assert_eq!(
        diags(
            "action scale(value, factor = 2):\n    return value * factor\nprint(scale(1, by=3))\n"
        ),
        vec![("A106", 4)]
    );
    // The variadic rest parameter cannot be given by keyword.
    assert_eq!(diags("print(args=1)\n"), vec![("A106", 2)]);
}

#[test]
fn positional_after_keyword() {
    assert_eq!(diags("print(get({}, k=\"a\", null))\n"), vec![("A126", 2)]);
}

#[test]
fn duplicate_argument_by_position_and_keyword() {
    assert_eq!(diags("print(get({}, \"a\", k=\"b\"))\n"), vec![("A127", 2)]);
    assert_eq!(
        diags("log(\"x\", level=\"a\", level=\"b\")\n"),
        vec![("A127", 2)]
    );
}

#[test]
fn action_arity_with_defaults() {
    let actions = "\
action scale:
    inputs: [value, factor = 2]
    return value * factor
action offset(value, by = 10):
    return value + by
";
    clean(&format!(
        "{actions}print(scale(1), scale(1, 3), scale(value=1, factor=3), offset(1, by=2))\n"
    ));
    // Too many positional arguments: reported at the first extra one.
    assert_eq!(
        diags(&format!("{actions}print(scale(1, 2, 3))\n")),
        vec![("A105", 7)]
    );
    // Missing the required one, with or without the optional one.
    assert_eq!(
        diags(&format!("{actions}print(offset())\n")),
        vec![("A105", 7)]
    );
    assert_eq!(
        diags(&format!("{actions}print(offset(by=1))\n")),
        vec![("A105", 7)]
    );
}

#[test]
fn native_arity_with_defaults() {
    clean("print(range(3), range(1, 5), range(1, 10, 2), range(1, step=2))\n");
    assert_eq!(diags("print(range(1, 2, 3, 4))\n"), vec![("A105", 2)]);
    assert_eq!(diags("print(range())\n"), vec![("A105", 2)]);
    assert_eq!(diags("print(get({}))\n"), vec![("A105", 2)]);
}

#[test]
fn variadic_functions_accept_any_count() {
    clean(
        "\
metadata:
    requires: [\"plugins\"]
require:
    plugins: [\"weather>=1.0.0\"]
print()
print(1)
print(1, 2, 3, 4, 5, 6, 7, 8)
print(format(\"{} {} {}\", 1, 2, 3))
plugins.invoke(\"weather\")
plugins.invoke(\"weather\", \"Berlin\", 3, true, function=\"forecast\", timeout=5s)
",
    );
    // The parameters before the rest are still required.
    assert_eq!(diags("print(format())\n"), vec![("A105", 2)]);
}

#[test]
fn a_variable_holding_a_function_is_not_checked_as_a_call() {
    clean("let measure = len\nprint(measure([1], 2))\n");
}

#[test]
fn a_variable_named_like_a_module_shadows_it() {
    clean("let kernel = {submit: len}\nprint(kernel.submit)\n");
}

#[test]
fn builtin_values_are_readable() {
    clean("print(args, policy, workflow)\n");
}

#[test]
fn break_inside_a_transaction_inside_a_loop_jumps_out_of_it() {
    let body = "\
for i in [1, 2]:
    transaction:
        if i > 1:
            continue
";
    assert_eq!(diags(body), vec![("A131", 5)]);
}

#[test]
fn a_loop_entirely_inside_a_transaction_may_break() {
    clean(
        "\
transaction:
    for i in [1, 2]:
        if i > 1:
            break
",
    );
}

#[test]
fn awaiting_a_function_or_action_is_an_error() {
    assert_eq!(diags("await print\n"), vec![("A112", 2)]);
    assert_eq!(
        diags("action job:\n    print(1)\nawait job\n"),
        vec![("A112", 4)]
    );
}

#[test]
fn a_misspelt_keyword_reports_the_spelling_not_a_missing_argument() {
    let body = "\
action deploy(build, percent = 10):
    return [build, percent]
print(deploy(bild=\"v1\"))
";
    assert_eq!(diags(body), vec![("A106", 4)]);
}

#[test]
fn a_parameter_declared_twice_is_one_parameter_to_a_caller() {
    let body = "\
action f(a, a):
    return a
print(f(1))
print(f(1, a=2))
";
    assert_eq!(diags(body), vec![("A120", 2), ("A127", 5)]);
}

#[test]
fn calls_of_an_action_with_more_than_64_parameters_are_checked_like_short_ones() {
    let params: Vec<String> = (0..70).map(|i| format!("p{i}")).collect();
    let positional =
        |n: usize| -> String { (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ") };
    let body = format!(
        "action big({}):\n    return p0\nprint(big({}, p69=1))\nprint(big({}, p68=1))\nprint(big({}))\n",
        params.join(", "),
        positional(69),
        positional(69),
        positional(68),
    );
    // Line 5 also leaves `p69` out; its call starts before the repeated keyword.
    assert_eq!(diags(&body), vec![("A105", 5), ("A127", 5), ("A105", 6)]);
}
