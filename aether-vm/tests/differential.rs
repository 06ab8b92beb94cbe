//! Differential test of number arithmetic and comparison against a reference evaluator in i128 and f64.
//!
//! The reference computes int results exactly in `i128` (an `i64` operation overflows
//! exactly when the `i128` result leaves the `i64` range), mixed and float results in
//! `f64`, and compares an int with a float exactly by a different route than the VM.
//! The VM must give the same value (floats bit for bit) or fail exactly when the
//! reference says it must, with the matching kind of error.

use std::cmp::Ordering;

use aether_vm::{Value, ValueError};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

const OPS: [Op; 11] = [
    Op::Add,
    Op::Sub,
    Op::Mul,
    Op::Div,
    Op::Rem,
    Op::Lt,
    Op::Le,
    Op::Gt,
    Op::Ge,
    Op::Eq,
    Op::Ne,
];

#[derive(Clone, Copy, Debug)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn value(self) -> Value {
        match self {
            Num::Int(n) => Value::Int(n),
            Num::Float(x) => Value::Float(x),
        }
    }

    fn to_f64(self) -> f64 {
        match self {
            Num::Int(n) => n as f64,
            Num::Float(x) => x,
        }
    }
}

/// What the reference says an operation must give.
#[derive(Debug, PartialEq)]
enum Expected {
    Int(i64),
    /// Compared by bits.
    Float(u64),
    Bool(bool),
    Overflow,
    DivisionByZero,
    NotFinite,
}

fn float(x: f64) -> Expected {
    if x.is_finite() {
        Expected::Float(x.to_bits())
    } else {
        Expected::NotFinite
    }
}

fn int(n: i128) -> Expected {
    i64::try_from(n).map_or(Expected::Overflow, Expected::Int)
}

/// Exact ordering of an int and a float. Rounding to f64 is monotone, so when `a as f64`
/// differs from `b` it is on the same side as `a`; when it equals `b`, `b` is an integer
/// within ±2^63 and the comparison is exact in i128.
fn cmp_int_float(a: i64, b: f64) -> Ordering {
    let rounded = a as f64;
    if rounded != b {
        rounded.partial_cmp(&b).unwrap()
    } else {
        i128::from(a).cmp(&(b as i128))
    }
}

fn reference_cmp(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => i128::from(x).cmp(&i128::from(y)),
        (Num::Int(x), Num::Float(y)) => cmp_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(y, x).reverse(),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap(),
    }
}

fn reference(op: Op, a: Num, b: Num) -> Expected {
    let cmp = || reference_cmp(a, b);
    match op {
        Op::Lt => return Expected::Bool(cmp() == Ordering::Less),
        Op::Le => return Expected::Bool(cmp() != Ordering::Greater),
        Op::Gt => return Expected::Bool(cmp() == Ordering::Greater),
        Op::Ge => return Expected::Bool(cmp() != Ordering::Less),
        Op::Eq => return Expected::Bool(cmp() == Ordering::Equal),
        Op::Ne => return Expected::Bool(cmp() != Ordering::Equal),
        _ => {}
    }
    if let (Num::Int(x), Num::Int(y)) = (a, b) {
        let (x, y) = (i128::from(x), i128::from(y));
        return match op {
            Op::Add => int(x + y),
            Op::Sub => int(x - y),
            Op::Mul => int(x * y),
            Op::Div if y == 0 => Expected::DivisionByZero,
            Op::Div => float(a.to_f64() / b.to_f64()),
            Op::Rem if y == 0 => Expected::DivisionByZero,
            // i128 `%` truncates like i64 `%`: the sign of the dividend.
            Op::Rem => int(x % y),
            _ => unreachable!(),
        };
    }
    let (x, y) = (a.to_f64(), b.to_f64());
    match op {
        Op::Add => float(x + y),
        Op::Sub => float(x - y),
        Op::Mul => float(x * y),
        Op::Div | Op::Rem if y == 0.0 => Expected::DivisionByZero,
        Op::Div => float(x / y),
        Op::Rem => float(x % y),
        _ => unreachable!(),
    }
}

fn vm(op: Op, a: Num, b: Num) -> Result<Value, ValueError> {
    let (a, b) = (a.value(), b.value());
    match op {
        Op::Add => a.add(&b),
        Op::Sub => a.sub(&b),
        Op::Mul => a.mul(&b),
        Op::Div => a.div(&b),
        Op::Rem => a.rem(&b),
        Op::Lt => a.lt(&b).map(Value::Bool),
        Op::Le => a.le(&b).map(Value::Bool),
        Op::Gt => a.gt(&b).map(Value::Bool),
        Op::Ge => a.ge(&b).map(Value::Bool),
        Op::Eq => Ok(Value::Bool(a == b)),
        Op::Ne => Ok(Value::Bool(a != b)),
    }
}

/// The VM's answer in the reference's terms.
fn observed(res: Result<Value, ValueError>) -> Result<Expected, String> {
    match res {
        Ok(Value::Int(n)) => Ok(Expected::Int(n)),
        Ok(Value::Float(x)) => Ok(Expected::Float(x.to_bits())),
        Ok(Value::Bool(b)) => Ok(Expected::Bool(b)),
        Ok(other) => Err(format!("unexpected value {other:?}")),
        Err(err) if err.message.starts_with("integer overflow in ") => Ok(Expected::Overflow),
        Err(err) if err.message.starts_with("division by zero in ") => Ok(Expected::DivisionByZero),
        Err(err) if err.message.starts_with("float result is not finite in ") => {
            Ok(Expected::NotFinite)
        }
        Err(err) => Err(format!("unexpected error {}", err.message)),
    }
}

fn ints() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        prop::sample::select(special_ints()),
        -100i64..100,
        (i64::MAX - 1000)..=i64::MAX,
        i64::MIN..(i64::MIN + 1000),
    ]
}

fn special_ints() -> Vec<i64> {
    vec![
        i64::MIN,
        i64::MIN + 1,
        i64::MAX,
        i64::MAX - 1,
        0,
        -1,
        1,
        2,
        -2,
        // Around the square root of i64::MAX, where products start to overflow.
        3_037_000_499,
        3_037_000_500,
        -3_037_000_500,
        // Around 2^53, where ints stop being exact floats.
        (1 << 53) - 1,
        1 << 53,
        (1 << 53) + 1,
    ]
}

fn floats() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        prop::sample::select(special_floats()),
        -100.0f64..100.0,
        // Integral floats, equal or next to some int.
        ints().prop_map(|n| n as f64),
    ]
}

fn special_floats() -> Vec<f64> {
    vec![
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.0,
        -1.0,
        1e308,
        -1e308,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        9_223_372_036_854_775_808.0,
        -9_223_372_036_854_775_808.0,
        9_007_199_254_740_992.0,
    ]
}

fn nums() -> impl Strategy<Value = Num> {
    prop_oneof![ints().prop_map(Num::Int), floats().prop_map(Num::Float)]
}

fn ops() -> impl Strategy<Value = Op> {
    prop::sample::select(OPS.to_vec())
}

/// Every operator on every pair of special values, which random draws rarely combine
/// (`i64::MIN % -1`, for one).
#[test]
fn special_values_match_the_reference() {
    let specials: Vec<Num> = special_ints()
        .into_iter()
        .map(Num::Int)
        .chain(special_floats().into_iter().map(Num::Float))
        .collect();
    for &op in &OPS {
        for &a in &specials {
            for &b in &specials {
                let expected = reference(op, a, b);
                assert_eq!(observed(vm(op, a, b)), Ok(expected), "{a:?} {op:?} {b:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any two numbers, any operator.
    #[test]
    fn numbers_match_the_reference(op in ops(), a in nums(), b in nums()) {
        let expected = reference(op, a, b);
        prop_assert_eq!(observed(vm(op, a, b)), Ok(expected), "{:?} {:?} {:?}", a, op, b);
    }

    /// Two ints: the overflow boundaries get hit far more often than with mixed operands.
    #[test]
    fn ints_match_the_reference(op in ops(), a in ints(), b in ints()) {
        let (a, b) = (Num::Int(a), Num::Int(b));
        let expected = reference(op, a, b);
        prop_assert_eq!(observed(vm(op, a, b)), Ok(expected), "{:?} {:?} {:?}", a, op, b);
    }

    /// An int and an integral float near it: exact mixed comparison.
    #[test]
    fn int_and_nearby_float_compare_exactly(op in ops(), a in ints(), delta in -2i64..=2) {
        let b = Num::Float(a.saturating_add(delta) as f64);
        for (a, b) in [(Num::Int(a), b), (b, Num::Int(a))] {
            let expected = reference(op, a, b);
            prop_assert_eq!(observed(vm(op, a, b)), Ok(expected), "{:?} {:?} {:?}", a, op, b);
        }
    }
}
