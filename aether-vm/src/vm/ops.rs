//! The value operations the execution loop inlines: int fast paths, binary operators,
//! dropping values without the out-of-line drop glue, and small helpers of calls.

use std::rc::Rc;

use aether_syntax::ast::BinaryOp;

use crate::value::{Value, ValueError};

/// `slice[i]` without a bounds check, for an index the verifier proved in bounds (see
/// `crate::verify`: an instruction position, a constant index, a frame's local slot).
/// Debug builds assert it.
///
/// # Safety
///
/// `i < slice.len()`.
#[inline(always)]
pub(super) unsafe fn at<T>(slice: &[T], i: usize) -> &T {
    debug_assert!(i < slice.len(), "verified index {i} past {}", slice.len());
    // SAFETY: the caller's contract.
    unsafe { slice.get_unchecked(i) }
}

/// [`at`] for a mutable slot.
///
/// # Safety
///
/// `i < slice.len()`.
#[inline(always)]
pub(super) unsafe fn at_mut<T>(slice: &mut [T], i: usize) -> &mut T {
    debug_assert!(i < slice.len(), "verified index {i} past {}", slice.len());
    // SAFETY: the caller's contract.
    unsafe { slice.get_unchecked_mut(i) }
}

/// Drop a value, without the out-of-line drop call for the kinds that own nothing.
#[inline(always)]
pub(super) fn discard(v: Value) {
    match v {
        Value::Str(_) | Value::List(_) | Value::Map(_) | Value::Action(_) => drop(v),
        other => std::mem::forget(other),
    }
}

/// `stack.truncate(len)` without the out-of-line drop glue for the values that own
/// nothing (a frame's int locals, a native's scalar arguments).
#[inline(always)]
pub(super) fn truncate(stack: &mut Vec<Value>, len: usize) {
    while stack.len() > len {
        if let Some(v) = stack.pop() {
            discard(v);
        }
    }
}

/// `x op y` for the arithmetic operators on two ints, when the result is an int (no
/// overflow, no zero divisor); `None` for the rest, comparisons included, which the callers
/// leave to [`int_op`] or [`binary`]. An int result alone keeps the fast paths free of the
/// int-or-bool `Value` temporary (its construction and copy cost several instructions).
#[inline(always)]
pub(super) fn int_arith(op: BinaryOp, x: i64, y: i64) -> Option<i64> {
    match op {
        BinaryOp::Add => x.checked_add(y),
        BinaryOp::Sub => x.checked_sub(y),
        BinaryOp::Mul => x.checked_mul(y),
        BinaryOp::Rem if y != 0 => Some(x.wrapping_rem(y)),
        _ => None,
    }
}

/// Store an int in a slot: in place (one store) when the slot already holds an int.
#[inline(always)]
pub(super) fn set_int(slot: &mut Value, v: i64) {
    if let Value::Int(x) = slot {
        *x = v;
    } else {
        discard(std::mem::replace(slot, Value::Int(v)));
    }
}

/// `a op b` for two ints when the result is an int or bool without overflow; `None`
/// leaves the case (and its error message) to [`binary`].
#[inline(always)]
pub(super) fn int_op(op: BinaryOp, x: i64, y: i64) -> Option<Value> {
    match op {
        BinaryOp::Add => x.checked_add(y).map(Value::Int),
        BinaryOp::Sub => x.checked_sub(y).map(Value::Int),
        BinaryOp::Mul => x.checked_mul(y).map(Value::Int),
        BinaryOp::Rem if y != 0 => Some(Value::Int(x.wrapping_rem(y))),
        BinaryOp::Lt => Some(Value::Bool(x < y)),
        BinaryOp::Le => Some(Value::Bool(x <= y)),
        BinaryOp::Gt => Some(Value::Bool(x > y)),
        BinaryOp::Ge => Some(Value::Bool(x >= y)),
        BinaryOp::Eq => Some(Value::Bool(x == y)),
        BinaryOp::NotEq => Some(Value::Bool(x != y)),
        _ => None,
    }
}

/// The truth of `a op b` for two ints when it is a comparison, without making the bool
/// value (a `Value` temporary costs a drop call); `None` for the other operators.
#[inline(always)]
pub(super) fn int_test(op: BinaryOp, x: i64, y: i64) -> Option<bool> {
    match op {
        BinaryOp::Lt => Some(x < y),
        BinaryOp::Le => Some(x <= y),
        BinaryOp::Gt => Some(x > y),
        BinaryOp::Ge => Some(x >= y),
        BinaryOp::Eq => Some(x == y),
        BinaryOp::NotEq => Some(x != y),
        _ => None,
    }
}

/// A binary operator (never `and`/`or`, which compile to jumps). `a` is owned: a string or
/// list nobody else holds grows in place under `+`.
#[inline(always)]
pub(super) fn binary(op: BinaryOp, mut a: Value, b: &Value) -> Result<Value, ValueError> {
    if let (Value::Int(x), Value::Int(y)) = (&a, b) {
        if let Some(v) = int_op(op, *x, *y) {
            return Ok(v);
        }
    }
    if op == BinaryOp::Add {
        match (&mut a, b) {
            (Value::Str(x), Value::Str(y)) => {
                if let Some(buf) = Rc::get_mut(x) {
                    crate::value::reserve_grow(buf.len(), buf.capacity(), y.len(), 1)?;
                    buf.push_str(y);
                    return Ok(a);
                }
            }
            (Value::List(x), Value::List(y)) => {
                if let Some(items) = Rc::get_mut(x) {
                    let (len, cap) = (items.len(), items.capacity());
                    crate::value::reserve_grow(len, cap, y.len(), crate::value::VALUE_BYTES)?;
                    items.extend(y.iter().cloned());
                    return Ok(a);
                }
            }
            _ => {}
        }
    }
    match op {
        BinaryOp::Add => a.add(b),
        BinaryOp::Sub => a.sub(b),
        BinaryOp::Mul => a.mul(b),
        BinaryOp::Div => a.div(b),
        BinaryOp::Rem => a.rem(b),
        BinaryOp::Eq => Ok(Value::Bool(a == *b)),
        BinaryOp::NotEq => Ok(Value::Bool(a != *b)),
        BinaryOp::Lt => a.lt(b).map(Value::Bool),
        BinaryOp::Le => a.le(b).map(Value::Bool),
        BinaryOp::Gt => a.gt(b).map(Value::Bool),
        BinaryOp::Ge => a.ge(b).map(Value::Bool),
        BinaryOp::In => a.is_in(b).map(Value::Bool),
        BinaryOp::NotIn => a.is_in(b).map(|x| Value::Bool(!x)),
        BinaryOp::And | BinaryOp::Or => Err(ValueError::new(
            "internal: `and`/`or` reached the arithmetic instruction",
        )),
    }
}

/// [`binary`] with the right operand owned as well (the `Binary` instruction's slow path):
/// `"k" + str(i)`, a shared left string and a right one nobody else holds, writes the left
/// one in front of the right one's bytes instead of allocating a third string.
#[inline(never)]
pub(super) fn binary_owned(op: BinaryOp, a: Value, mut b: Value) -> Result<Value, ValueError> {
    if let (BinaryOp::Add, Value::Str(x), Value::Str(y)) = (op, &a, &mut b) {
        if Rc::strong_count(x) > 1 {
            if let Some(buf) = Rc::get_mut(y) {
                crate::value::reserve_grow(buf.len(), buf.capacity(), x.len(), 1)?;
                buf.insert_str(0, x);
                discard(a);
                return Ok(b);
            }
        }
    }
    let res = binary(op, a, &b);
    discard(b);
    res
}

/// [`binary`] out of line, for the slow paths of the fused instructions (the strings,
/// lists, floats and errors that miss the int fast path).
#[inline(never)]
pub(super) fn binary_cold(op: BinaryOp, a: Value, b: &Value) -> Result<Value, ValueError> {
    binary(op, a, b)
}

/// The truth of `a op b` (a loop's or an `if`'s test of a local against a constant).
#[inline(always)]
pub(super) fn test(op: BinaryOp, a: &Value, b: &Value) -> Result<bool, ValueError> {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        if let Some(truth) = int_test(op, *x, *y) {
            return Ok(truth);
        }
    }
    binary_cold(op, a.clone(), b).map(|v| v.is_truthy())
}

/// The truth of `a < b` (`LtLocalConst`, and its test after a jump back).
#[inline(always)]
pub(super) fn test_lt(a: &Value, b: &Value) -> Result<bool, ValueError> {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        return Ok(x < y);
    }
    operate_cold(BinaryOp::Lt, a, b).map(|v| v.is_truthy())
}

/// `a op b` of two values read in place (a fused instruction's operands), out of line:
/// the slow path of the int fast paths (comparisons, floats, strings, lists, errors).
#[inline(never)]
pub(super) fn operate_cold(op: BinaryOp, a: &Value, b: &Value) -> Result<Value, ValueError> {
    binary(op, a.clone(), b)
}

/// `LocalBinary`: the value on the top of the stack becomes `stack[slot] op` it.
///
/// # Safety
///
/// `slot < stack.len()` (a verified local slot).
#[inline(always)]
pub(super) unsafe fn local_binary(
    stack: &mut Vec<Value>,
    slot: usize,
    op: BinaryOp,
) -> Result<(), ValueError> {
    // SAFETY: the caller's contract.
    if let Value::Int(x) = *unsafe { at(stack, slot) } {
        if let Some(Value::Int(y)) = stack.last_mut() {
            if let Some(v) = int_arith(op, x, *y) {
                *y = v;
                return Ok(());
            }
        }
    }
    local_binary_cold(stack, slot, op)
}

#[inline(never)]
fn local_binary_cold(stack: &mut Vec<Value>, slot: usize, op: BinaryOp) -> Result<(), ValueError> {
    let b = stack.pop().expect("the compiler keeps the stack balanced");
    let a = stack[slot].clone();
    let v = binary(op, a, &b)?;
    stack.push(v);
    Ok(())
}

/// `BinConstStore`: pop `v`, store `v op k` in `stack[dst]`.
///
/// # Safety
///
/// `dst < stack.len() - 1` (a verified local slot below the operand `v`).
#[inline(always)]
pub(super) unsafe fn bin_const_store(
    stack: &mut Vec<Value>,
    dst: usize,
    op: BinaryOp,
    k: &Value,
) -> Result<(), ValueError> {
    if let (Some(Value::Int(x)), Value::Int(y)) = (stack.last(), k) {
        if let Some(v) = int_arith(op, *x, *y) {
            if let Some(a) = stack.pop() {
                discard(a);
            }
            // SAFETY: the caller's contract (`dst` is below the value just popped).
            set_int(unsafe { at_mut(stack, dst) }, v);
            return Ok(());
        }
    }
    bin_const_store_cold(stack, dst, op, k)
}

#[inline(never)]
fn bin_const_store_cold(
    stack: &mut Vec<Value>,
    dst: usize,
    op: BinaryOp,
    k: &Value,
) -> Result<(), ValueError> {
    let a = stack.pop().expect("the compiler keeps the stack balanced");
    let v = binary(op, a, k)?;
    discard(std::mem::replace(&mut stack[dst], v));
    Ok(())
}

/// `AddLocalConst`: `stack[dst] = stack[src] + k`.
///
/// # Safety
///
/// `src < stack.len()` and `dst < stack.len()` (verified local slots).
#[inline(always)]
pub(super) unsafe fn add_local_const(
    stack: &mut [Value],
    src: usize,
    k: &Value,
    dst: usize,
) -> Result<(), ValueError> {
    // SAFETY: the caller's contract.
    if let (Value::Int(x), Value::Int(y)) = (unsafe { at(stack, src) }, k) {
        if let Some(v) = x.checked_add(*y) {
            // SAFETY: the caller's contract.
            set_int(unsafe { at_mut(stack, dst) }, v);
            return Ok(());
        }
    }
    let v = operate_cold(BinaryOp::Add, &stack[src], k)?;
    discard(std::mem::replace(&mut stack[dst], v));
    Ok(())
}

/// The milliseconds of a `sleep` operand (a duration, or a number of seconds), or why it
/// is not one.
pub(super) fn sleep_ms(v: &Value) -> Result<f64, String> {
    let ms = match v {
        Value::Duration(ms) => *ms,
        Value::Int(n) => *n as f64 * 1000.0,
        Value::Float(x) => x * 1000.0,
        other => {
            return Err(format!(
                "`sleep` takes a duration or a number of seconds, not {}",
                other.type_name()
            ))
        }
    };
    if !ms.is_finite() || ms < 0.0 {
        return Err(
            "`sleep` takes a duration or a number of seconds that is not negative".to_string(),
        );
    }
    Ok(ms)
}

/// The marker of a parameter a call through an action reference did not give (never
/// visible to scripts: the callee's prologue replaces it with the default).
pub(super) fn missing() -> Value {
    Value::Pending(u32::MAX)
}

pub(super) fn is_missing(v: &Value) -> bool {
    matches!(v, Value::Pending(u32::MAX))
}

/// Elements a native walks in an argument (top level only).
pub(super) fn value_size(v: &Value) -> usize {
    match v {
        Value::List(items) => items.len(),
        Value::Map(m) => m.len(),
        Value::Str(s) => s.len() / 8,
        _ => 0,
    }
}

/// `ip` as a frame's return address. Instruction indexes are `u32` in the code already
/// (jump targets, action entries: the compiler saturates them), so a program whose
/// instructions do not fit in a `u32` cannot run at all; the cast loses nothing in one
/// that can, and costs no check on every call.
#[allow(clippy::cast_possible_truncation)]
#[inline(always)]
pub(super) fn ret_ip(ip: usize) -> u32 {
    ip as u32
}

/// What `for` walks (`IterStart`): a list itself, a map's keys, a string's characters.
pub(super) fn iter_items(v: Value) -> Result<Value, ValueError> {
    Ok(match &v {
        Value::List(_) => v,
        Value::Map(m) => Value::from(m.keys().map(Value::from).collect::<Vec<_>>()),
        Value::Str(s) => Value::from(
            s.chars()
                .map(|c| Value::from(c.to_string()))
                .collect::<Vec<_>>(),
        ),
        other => {
            return Err(ValueError::new(format!(
                "cannot iterate over {}",
                other.type_name()
            )))
        }
    })
}
