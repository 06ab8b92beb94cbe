//! Criterion micro-benchmarks of the VM's hot paths: dispatch, local arithmetic, calls, map inserts,
//! string building, and the bytecode verifier every run starts with.
//!
//! Each benchmark compiles a small script once and times whole runs of it, so a
//! regression in one path shows in review (`cargo bench -p aether-vm`). `cargo test` does
//! not build them; `cargo test --all-targets` runs each once as a smoke test.

use aether_check::decl::FnDecl;
use aether_vm::{compile, verify, Args, Budget, FnTable, NativeFn, Program, Value, ValueError, Vm};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

/// The dispatch loop: a `while` loop whose body is a few cheap instructions.
const DISPATCH: &str = "goal: \"dispatch\"
action main():
    let i = 0
    let flag = true
    while i < 20_000:
        flag = not flag
        i = i + 1
    return i
main()
";

/// Local arithmetic: the fused local/constant paths, a modulo and a compare per iteration.
const ARITHMETIC: &str = "goal: \"arithmetic\"
action main():
    let total = 0
    let i = 0
    while i < 20_000:
        total = (total + i * 3) % 1_000_003
        i = i + 1
    return total
main()
";

/// Calls: recursive fib, two calls and a return per step.
const CALL: &str = "goal: \"call\"
action fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)
fib(15)
";

/// Map inserts: a map in a local updated in place, string keys built per insert.
const MAP_INSERT: &str = "goal: \"map insert\"
action main():
    let m = {}
    for i in range(2_000):
        m[\"k\" + str(i % 500)] = i
    return len(m)
main()
";

/// String building: `str(int)` and concatenation onto a string held by one local (grown in
/// place), as `bench/programs/strings.aether` does.
const STR_CONCAT: &str = "goal: \"str concat\"
action main():
    let s = \"\"
    for i in range(2_000):
        s = s + str(i) + \",\"
    return len(s)
main()
";

// The three natives MAP_INSERT and STR_CONCAT need (the real ones live in aether-stdlib, above this
// crate), as plain as the stdlib's.
fn range(args: &Args<'_>) -> Result<Value, ValueError> {
    match args.get("stop")? {
        Value::Int(n) => Ok(Value::from((0..*n).map(Value::Int).collect::<Vec<_>>())),
        _ => Err(ValueError::new("range() takes an int")),
    }
}

fn str_(args: &Args<'_>) -> Result<Value, ValueError> {
    Ok(Value::from(args.get("x")?.display()))
}

fn len(args: &Args<'_>) -> Result<Value, ValueError> {
    match args.get("x")? {
        Value::Map(m) => Ok(Value::Int(m.len() as i64)),
        Value::Str(s) => Ok(Value::Int(s.len() as i64)),
        other => Err(ValueError::new(format!("len() of {}", other.type_name()))),
    }
}

fn table() -> FnTable {
    FnTable::new().with_natives([
        (FnDecl::global("range").param("stop"), range as NativeFn),
        (FnDecl::global("str").param("x"), str_),
        (FnDecl::global("len").param("x"), len),
    ])
}

fn program(src: &str, table: &FnTable) -> Program {
    let analysis = aether_check::analyze(src, table.registry());
    assert!(
        !analysis.diagnostics.iter().any(|d| d.is_error()),
        "a benchmark script does not check"
    );
    compile(&analysis, table.registry()).expect("a benchmark script compiles")
}

fn bench(c: &mut Criterion, name: &str, src: &str, table: &FnTable) {
    let program = program(src, table);
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut vm = Vm::new(&program, table, Vec::new(), Budget::default());
            black_box(vm.run().expect("a benchmark script runs"))
        });
    });
}

/// The verifier (`Vm::new` runs it once per run) over the five scripts above.
fn verify_bench(c: &mut Criterion, table: &FnTable) {
    let programs: Vec<Program> = [DISPATCH, ARITHMETIC, CALL, MAP_INSERT, STR_CONCAT]
        .iter()
        .map(|src| program(src, table))
        .collect();
    c.bench_function("verify", |b| {
        b.iter(|| {
            for p in &programs {
                black_box(verify(p).expect("a benchmark script verifies"));
            }
        });
    });
}

fn vm_benches(c: &mut Criterion) {
    let table = table();
    verify_bench(c, &table);
    bench(c, "dispatch", DISPATCH, &table);
    bench(c, "local_arithmetic", ARITHMETIC, &table);
    bench(c, "call", CALL, &table);
    bench(c, "map_insert", MAP_INSERT, &table);
    bench(c, "str_concat", STR_CONCAT, &table);
}

criterion_group!(benches, vm_benches);
criterion_main!(benches);
