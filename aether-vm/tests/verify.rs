//! The bytecode verifier (`aether_vm::verify`): it accepts what the compiler emits, refuses
//! each kind of bad bytecode with a structured error before anything runs, and what it
//! accepts runs without a panic: random programs and mutants of compiled ones are verified
//! and, when accepted, run under small budgets in a debug build, where every read the
//! execution loop makes without a bounds check asserts its bound.

use std::path::Path;

use aether_syntax::ast::BinaryOp;
use aether_vm::{
    compile, verify, Budget, FnTable, Function, Instr, Program, Value, VerifyErrorKind, Vm,
};
use proptest::prelude::*;

/// Count live bytes, so the memory budget of the runs below holds (a mutant may build
/// large strings or lists).
#[global_allocator]
static GLOBAL: aether_vm::heap::Counting<std::alloc::System> =
    aether_vm::heap::Counting(std::alloc::System);

fn compiled(src: &str, table: &FnTable) -> Option<Program> {
    compiled_or_why(src, table).ok()
}

fn compiled_or_why(src: &str, table: &FnTable) -> Result<Program, Vec<String>> {
    let analysis = aether_check::analyze(src, table.registry());
    let errors: Vec<String> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message().to_string())
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    compile(&analysis, table.registry()).map_err(|e| vec![e.message])
}

fn budget() -> Budget {
    Budget {
        max_steps: Some(20_000),
        max_depth: 40,
        timeout: Some(std::time::Duration::from_millis(100)),
        max_memory: Some(32 << 20),
    }
}

/// Run `program` (the verdict of `Vm::new`'s verifier included): stdout and whether it
/// ran without error. A panic fails the test.
fn run(program: &Program, table: &FnTable) -> (String, Result<Value, aether_vm::VmError>) {
    let mut vm = Vm::new(program, table, Vec::new(), budget());
    let res = vm.run();
    let steps = vm.steps();
    let out = String::from_utf8_lossy(&vm.into_output()).into_owned();
    if verify(program).is_err() {
        assert_eq!(steps, 0, "a refused program ran");
        assert!(out.is_empty(), "a refused program printed {out:?}");
    }
    (out, res)
}

fn scripts(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.ends_with("target") && !p.ends_with(".git") {
            scripts(&p, out);
        } else if p.extension().is_some_and(|x| x == "aether") {
            if let Ok(s) = std::fs::read_to_string(&p) {
                out.push(s);
            }
        }
    }
}

/// Every script of the repository that checks against the VM's own function table
/// compiles to a program the verifier accepts.
#[test]
fn the_compilers_output_verifies() {
    let table = FnTable::new();
    let mut srcs = Vec::new();
    scripts(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."), &mut srcs);
    srcs.extend(SOURCES.iter().map(|s| s.to_string()));
    let mut verified = 0;
    for src in &srcs {
        let Some(program) = compiled(src, &table) else {
            continue;
        };
        match verify(&program) {
            Ok(v) => {
                assert_eq!(v.max_stack.len(), program.functions.len());
                verified += 1;
            }
            Err(e) => panic!("{e}\n{src}\n{:?}", program.code),
        }
    }
    assert!(verified >= 20, "only {verified} scripts compiled");
}

/// Scripts the mutants start from: loops (every fused form), `for`, calls (direct, by
/// reference, defaults), returns, `and`/`or`, lists, maps, strings, fibers.
const SOURCES: &[&str] = &[
    "goal: \"g\"\naction fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\nprint(fib(12))\n",
    "goal: \"g\"\naction main():\n    let total = 0\n    let i = 0\n    while i < 300:\n        total = (total + i * 3) % 1000003\n        i = i + 1\n    print(total)\n    let j = 10\n    while j > 0:\n        j = j - 1\n        if j == 4:\n            continue\n        if j == 2 and total > 0 or j == 1:\n            break\n    print(j)\nmain()\n",
    "goal: \"g\"\naction main():\n    let m = {\"a\": 1}\n    let xs = [1, 2, 3]\n    let s = \"\"\n    for x in xs:\n        m[\"k\"] = x\n        s = s + \"x\"\n    for k in m:\n        s = s + k\n    print(s, xs[1], m[\"k\"], m.a, 2 in xs)\nmain()\n",
    "goal: \"g\"\naction f(a, b = 2, c = 1):\n    return a * b - c\naction main():\n    let g = f\n    print(f(1), f(1, 5), g(3), g(3, 4, 5))\n    let x = 7\n    return x\nmain()\n",
    "goal: \"g\"\naction w(n):\n    return n * 2\naction main():\n    parallel:\n        a: w(1)\n        b: w(2)\n    await a, b\n    print(a + b)\n    assert a < b, \"order\"\n    let t = not (a == b)\n    print(-a, t, [a, b], {\"x\": a}.x)\nmain()\n",
];

fn op_of(n: u8) -> BinaryOp {
    const OPS: [BinaryOp; 15] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::Eq,
        BinaryOp::NotEq,
        BinaryOp::In,
        BinaryOp::NotIn,
        BinaryOp::And,
        BinaryOp::Or,
    ];
    OPS[n as usize % OPS.len()]
}

/// An instruction from random fields (every kind but the ones that wait on a clock or a
/// host, or call the function table: `Sleep`, transactions, `Trigger`, `CallNative`).
fn instr_of(kind: u8, a: u16, b: u16, t: u32, op: u8) -> Instr {
    let op = op_of(op);
    let k = u32::from(b);
    match kind % 37 {
        0 => Instr::Const(k),
        1 => Instr::Null,
        2 => Instr::Pop,
        3 => Instr::LoadLocal(a),
        4 => Instr::StoreLocal(a),
        5 => Instr::LoadGlobal(a),
        6 => Instr::StoreGlobal(a),
        7 => Instr::TakeLocal(a),
        8 => Instr::TakeGlobal(a),
        9 => Instr::ListPush,
        10 => Instr::Binary(op),
        11 => Instr::BinLocalConst { slot: a, k, op },
        12 => Instr::BinLocalLocal { a, b, op },
        13 => Instr::BinConst { k, op },
        14 => Instr::LocalConstTest { slot: a, k: b, op },
        15 => Instr::LocalConstStore {
            src: a,
            k: b,
            op,
            dst: a / 2,
        },
        16 => Instr::BinJumpIfFalse { op, target: t },
        17 => Instr::Not,
        18 => Instr::Neg,
        19 => Instr::Jump(t),
        20 => Instr::JumpIfFalse(t),
        21 => Instr::JumpIfFalseKeep(t),
        22 => Instr::JumpIfTrueKeep(t),
        23 => Instr::MakeList(u32::from(a % 4)),
        24 => Instr::MakeMap(u32::from(a % 3)),
        25 => Instr::Index,
        26 => Instr::CallAction {
            func: u32::from(b % 4),
            argc: a % 3,
        },
        27 => Instr::CallValue { argc: a % 3 },
        28 => Instr::JumpIfGiven { slot: a, target: t },
        29 => Instr::Return,
        30 => Instr::IterStart,
        31 => Instr::IterNext(t),
        32 => Instr::LocalBinary { slot: a, op },
        33 => Instr::BinConstStore { k, op, dst: a },
        34 => Instr::JumpBackTest(t),
        35 => Instr::AddLocalConst {
            src: a,
            k: b,
            dst: b,
        },
        _ => match op as u8 % 5 {
            0 => Instr::ReturnLocal(a),
            1 => Instr::ReturnBinary(op),
            2 => Instr::LtLocalConst { slot: a, k: b },
            3 => Instr::Await,
            _ => Instr::Spawn {
                func: u32::from(b % 4),
                argc: a % 3,
            },
        },
    }
}

fn constants() -> Vec<Value> {
    vec![
        Value::Int(3),
        Value::Int(0),
        Value::Int(i64::MAX),
        Value::from("ab"),
        Value::Float(0.5),
        Value::Bool(true),
        Value::Null,
        Value::from(vec![Value::Int(1), Value::from("x")]),
    ]
}

fn function(name: &str, entry: u32, arity: u16, n_locals: u16) -> Function {
    Function {
        name: name.to_string(),
        entry,
        arity,
        required: arity,
        n_locals,
        params: (0..arity).map(|i| format!("p{i}")).collect(),
        is_action: true,
    }
}

/// A program of random instructions with 1 to 3 functions and up to 2 globals.
fn random_program() -> impl Strategy<Value = Program> {
    let instr = (any::<u8>(), 0u16..6, 0u16..10, 0u32..40, any::<u8>())
        .prop_map(|(kind, a, b, t, op)| instr_of(kind, a, b, t, op));
    (
        prop::collection::vec(instr, 1..40),
        prop::collection::vec((0u32..40, 0u16..3, 0u16..5), 1..4),
        0usize..3,
    )
        .prop_map(|(code, funcs, globals)| Program {
            code,
            constants: constants(),
            functions: funcs
                .into_iter()
                .enumerate()
                .map(|(i, (entry, arity, n))| {
                    function(&format!("f{i}"), entry, arity, n.max(arity))
                })
                .collect(),
            globals: (0..globals).map(|i| format!("g{i}")).collect(),
            ..Program::default()
        })
}

/// A mutant of a compiled program: one instruction replaced, or one operand moved.
fn mutate(mut program: Program, at: usize, how: u8, x: u16, t: u32, op: u8) -> Program {
    let n = program.code.len();
    if n == 0 {
        return program;
    }
    let at = at % n;
    let t = t % (n as u32 + 2);
    let old = program.code[at];
    let new = match (how % 4, old) {
        // The function table is not the verifier's to check: natives stay as they are.
        (_, Instr::CallNative { .. }) => old,
        (0, _) => instr_of(x as u8, x % 8, x / 8 % 12, t, op),
        (_, Instr::Jump(_)) => Instr::Jump(t),
        (_, Instr::JumpIfFalse(_)) => Instr::JumpIfFalse(t),
        (_, Instr::IterNext(_)) => Instr::IterNext(t),
        (_, Instr::JumpBackTest(_)) => Instr::JumpBackTest(t),
        (_, Instr::LoadLocal(s)) => Instr::LoadLocal(s.wrapping_add(x % 4)),
        (_, Instr::StoreLocal(s)) => Instr::StoreLocal(s.wrapping_add(x % 4)),
        (_, Instr::Const(k)) => Instr::Const(k.wrapping_add(u32::from(x % 4))),
        (_, Instr::CallAction { func, argc }) => Instr::CallAction {
            func,
            argc: argc.wrapping_add(x % 3).wrapping_sub(1),
        },
        (1, _) => {
            // Swap with a neighbour.
            let other = (at + 1) % n;
            program.code.swap(at, other);
            return program;
        }
        (2, _) => Instr::Pop,
        _ => instr_of(op, x % 8, x / 8 % 12, t, x as u8),
    };
    program.code[at] = new;
    program
}

fn sources() -> Vec<(FnTable, Program)> {
    SOURCES
        .iter()
        .map(|src| {
            let table = FnTable::new();
            let program = compiled_or_why(src, &table).unwrap_or_else(|e| panic!("{e:?}\n{src}"));
            (table, program)
        })
        .collect()
}

/// Many mutants are accepted (so the runs below are not vacuous), and all of them run or
/// fail cleanly; the refused ones never start.
#[test]
fn mutants_of_compiled_programs_are_refused_or_run_cleanly() {
    let bases = sources();
    let (mut accepted, mut total) = (0, 0);
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (table, base) in &bases {
        for _ in 0..300 {
            let r = next();
            let m = mutate(
                base.clone(),
                r as usize,
                (r >> 20) as u8,
                (r >> 28) as u16,
                (r >> 44) as u32,
                (r >> 56) as u8,
            );
            total += 1;
            if verify(&m).is_ok() {
                accepted += 1;
            }
            let _ = run(&m, table);
        }
    }
    assert!(accepted * 5 >= total, "{accepted} of {total} accepted");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Random programs: the verifier never panics, and what it accepts runs without one.
    #[test]
    fn random_programs_are_refused_or_run_cleanly(program in random_program()) {
        let table = FnTable::new();
        let _ = verify(&program);
        let _ = run(&program, &table);
    }

    /// Mutants of compiled programs, as above.
    #[test]
    fn mutants_are_refused_or_run_cleanly(
        which in 0usize..SOURCES.len(),
        at in any::<usize>(),
        how in any::<u8>(),
        x in any::<u16>(),
        t in any::<u32>(),
        op in any::<u8>(),
    ) {
        let table = FnTable::new();
        let base = compiled(SOURCES[which], &table).expect("compiles");
        let m = mutate(base, at, how, x, t, op);
        let _ = run(&m, &table);
    }
}

/// A program of `code` with one function of `n_locals` locals, two constants, one global.
fn bad(code: Vec<Instr>, n_locals: u16) -> Program {
    Program {
        code,
        constants: vec![Value::Int(1), Value::Int(2)],
        functions: vec![function("main", 0, 0, n_locals)],
        globals: vec!["g".to_string()],
        ..Program::default()
    }
}

/// Each kind of bad bytecode is refused with its structured error, and `Vm::run` reports
/// it without executing an instruction.
#[test]
fn bad_bytecode_is_refused_with_a_structured_error() {
    use Instr::*;
    let cases: Vec<(Program, VerifyErrorKind, Option<u32>)> = vec![
        (
            bad(vec![Const(0), Jump(7)], 0),
            VerifyErrorKind::CodeOutOfRange { target: 7 },
            Some(1),
        ),
        (
            bad(vec![Const(0), Pop], 0),
            VerifyErrorKind::CodeOutOfRange { target: 2 },
            Some(1),
        ),
        (
            bad(vec![Const(2), Return], 0),
            VerifyErrorKind::ConstantOutOfRange { index: 2 },
            Some(0),
        ),
        (
            bad(vec![LoadLocal(1), Return], 1),
            VerifyErrorKind::LocalOutOfRange {
                slot: 1,
                n_locals: 1,
            },
            Some(0),
        ),
        (
            bad(vec![LoadGlobal(1), Return], 0),
            VerifyErrorKind::GlobalOutOfRange { slot: 1 },
            Some(0),
        ),
        (
            bad(vec![Const(0), Binary(BinaryOp::Add), Return], 0),
            VerifyErrorKind::StackUnderflow { depth: 1, needs: 2 },
            Some(1),
        ),
        (
            bad(vec![Pop, Null, Return], 3),
            VerifyErrorKind::StackUnderflow { depth: 0, needs: 1 },
            Some(0),
        ),
        (
            // The two ways into instruction 4 bring 0 and 2 values.
            bad(vec![Const(0), JumpIfFalse(4), Null, Null, Null, Return], 0),
            VerifyErrorKind::StackMismatch { depth: 2, other: 0 },
            Some(4),
        ),
        (
            bad(
                vec![
                    LocalConstTest {
                        slot: 0,
                        k: 0,
                        op: BinaryOp::Lt,
                    },
                    LoadLocal(0),
                    Const(0),
                    Binary(BinaryOp::Lt),
                    Null,
                    Return,
                ],
                1,
            ),
            VerifyErrorKind::MissingJump,
            Some(0),
        ),
        (
            bad(vec![Const(0), Const(1), ReturnBinary(BinaryOp::Add)], 0),
            VerifyErrorKind::NoResultSlot,
            Some(2),
        ),
        (
            // A loop whose jump back does not check the budget.
            bad(vec![Const(0), JumpIfFalse(0), Null, Return], 0),
            VerifyErrorKind::BackwardJump { target: 0 },
            Some(1),
        ),
        (
            bad(vec![JumpIfGiven { slot: 0, target: 0 }, Null, Return], 1),
            VerifyErrorKind::BackwardJump { target: 0 },
            Some(0),
        ),
        (
            bad(vec![CallAction { func: 1, argc: 0 }, Return], 0),
            VerifyErrorKind::FunctionOutOfRange { func: 1 },
            Some(0),
        ),
        (
            bad(vec![MakeList(u32::MAX), Return], 0),
            VerifyErrorKind::StackUnderflow {
                depth: 0,
                needs: u64::from(u32::MAX),
            },
            Some(0),
        ),
        (
            bad(vec![MakeMap(u32::MAX), Return], 0),
            VerifyErrorKind::StackUnderflow {
                depth: 0,
                needs: 2 * u64::from(u32::MAX),
            },
            Some(0),
        ),
    ];
    let table = FnTable::new();
    for (program, kind, ip) in cases {
        let e = verify(&program).expect_err("refused");
        assert_eq!((&e.kind, e.ip, e.func), (&kind, ip, Some(0)), "{e}");
        let (out, res) = run(&program, &table);
        let err = res.expect_err("refused at run");
        assert!(
            err.message().contains("invalid bytecode"),
            "{}",
            err.message()
        );
        assert!(out.is_empty());
    }
    let mut no_main = bad(vec![Null, Return], 0);
    no_main.functions.clear();
    let e = verify(&no_main).expect_err("refused");
    assert_eq!((e.kind, e.func), (VerifyErrorKind::NoMainFunction, None));
    let mut far_entry = bad(vec![Null, Return], 0);
    far_entry.functions[0].entry = 9;
    let e = verify(&far_entry).expect_err("refused");
    assert_eq!(e.kind, VerifyErrorKind::CodeOutOfRange { target: 9 });
}

/// The verifier works out each function's deepest operand stack.
#[test]
fn the_deepest_operand_stack_is_counted_per_function() {
    use Instr::*;
    let mut p = bad(
        vec![
            Const(0),
            Const(1),
            Const(0),
            MakeList(3),
            CallAction { func: 1, argc: 1 },
            Return,
            LoadLocal(0),
            Return,
        ],
        0,
    );
    p.functions.push(function("id", 6, 1, 1));
    let v = verify(&p).expect("valid");
    assert_eq!(v.max_stack, vec![3, 1]);
}
