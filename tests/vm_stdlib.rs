//! The compiler, the VM and the stdlib's natives together, on the registry the CLI builds.

use aether_check::decl::Registry;
use aether_vm::{compile, Budget, Vm};

fn registry() -> Registry {
    let mut r = Registry::new();
    r.extend(aether_stdlib::declarations());
    r.extend(aether_runtime::declarations());
    r
}

fn run(src: &str) -> String {
    let reg = registry();
    let analysis = aether_check::analyze(src, &reg);
    let errors: Vec<String> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message().to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let program = compile(&analysis, &reg).expect("compiles");
    let natives = aether_stdlib::natives();
    let mut vm = Vm::new(&program, &natives, Vec::new(), Budget::default());
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
    let reg = registry();
    let program = compile(&aether_check::analyze(src, &reg), &reg).expect("compiles");
    let natives = aether_stdlib::natives();
    let mut vm = Vm::new(&program, &natives, Vec::new(), Budget::default());
    let err = vm.run().expect_err("max of nothing");
    let line = err.span().map(|s| {
        aether_syntax::LineIndex::new(src)
            .line_col(src, s.start)
            .line
    });
    assert_eq!(line, Some(3));
    assert!(err.message().starts_with("max()"), "{}", err.message());
}
