//! The compiler, the VM and the stdlib's natives together, on the registry the CLI builds.

use aether_vm::{compile, Budget, FnTable, Vm};

/// The table the CLI builds: intrinsics, stdlib natives, runtime host functions.
fn table() -> FnTable {
    aether_runtime::function_table()
}

fn run(src: &str) -> String {
    let table = table();
    let analysis = aether_check::analyze(src, table.registry());
    let errors: Vec<String> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message().to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let program = compile(&analysis, table.registry()).expect("compiles");
    let mut vm = Vm::new(&program, &table, Vec::new(), Budget::default());
    vm.run().expect("runs");
    String::from_utf8(vm.into_output()).expect("utf-8")
}

#[test]
fn a_latency_report_runs_with_the_real_builtins() {
    let out = run(r#"goal: "Summarise latency samples and flag outliers"
let samples = [120, 130, 125, 128, 122, 900, 127]
let stats = summarize(samples)
print(format("p50={} max={} count={}", stats.p50, stats.max, stats.count))
for a in detect_anomalies(samples, threshold=2.0):
    print("outlier", a.index, a.value)
let names = sorted(keys({zeta: 1, alpha: 2}), reverse=true)
print(join(names, ","), upper("ok"), len(range(1, 10)), round(2.5), max(3, 9, 4))
print(json_encode({ok: check_confidence(0.9), pct: evaluate_confidence([1, 0])}))
"#);
    assert_eq!(
        out,
        "p50=127.0 max=900 count=7\noutlier 5 900\nzeta,alpha OK 9 3 9\n{\"ok\": true, \"pct\": 0.5}\n"
    );
}

#[test]
fn a_builtin_error_is_a_runtime_error_with_its_line() {
    let src = "goal: \"g\"\nlet xs = []\nprint(max(xs))\n";
    let table = table();
    let analysis = aether_check::analyze(src, table.registry());
    let program = compile(&analysis, table.registry()).expect("compiles");
    let mut vm = Vm::new(&program, &table, Vec::new(), Budget::default());
    let err = vm.run().expect_err("max of nothing");
    let line = err.span().map(|s| {
        aether_syntax::LineIndex::new(src)
            .line_col(src, s.start)
            .line
    });
    assert_eq!(line, Some(3));
    assert!(err.message().starts_with("max()"), "{}", err.message());
}

/// `docs/architecture.md`, "Adding a function": one `(FnDecl, implementation)` entry in
/// the table, and the checker accepts the call, the compiler binds its arguments by
/// parameter, and the VM runs it by id.
#[test]
fn a_function_added_to_the_table_is_checked_compiled_and_run() {
    use aether_check::decl::{DefaultValue, FnDecl};
    use aether_vm::{Args, Value, ValueError};

    fn repeat(args: &Args<'_>) -> Result<Value, ValueError> {
        let text = args.get("text")?.display();
        match args.get("times")? {
            Value::Int(n) if *n >= 0 => Ok(Value::from(text.repeat(*n as usize))),
            other => Err(ValueError::new(format!(
                "repeat() times must be a non-negative int, not {}",
                other.type_name()
            ))),
        }
    }

    let mut table = table();
    table.native(
        FnDecl::global("repeat")
            .param("text")
            .opt("times", DefaultValue::Int(2))
            .doc("text repeated times times."),
        repeat,
    );
    let src = "goal: \"g\"\nprint(repeat(\"ab\"), repeat(times=3, text=\"x\"))\n";
    let analysis = aether_check::analyze(src, table.registry());
    let errors: Vec<String> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message().to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let program = compile(&analysis, table.registry()).expect("compiles");
    let mut vm = Vm::new(&program, &table, Vec::new(), Budget::default());
    vm.run().expect("runs");
    assert_eq!(
        String::from_utf8(vm.into_output()).expect("utf-8"),
        "abab xxx\n"
    );
    // Without the entry, the same script does not check.
    let plain = aether_runtime::function_table();
    assert!(aether_check::analyze(src, plain.registry())
        .diagnostics
        .iter()
        .any(|d| d.is_error()));
}
