//! Values nested to any depth without recursion on the host stack: `==` and `Drop` walk
//! nested lists and maps from a worklist on the heap (issue #12: `l = [l]` repeated 200,000
//! times overflowed the stack when dropped).

use std::cmp::Ordering;
use std::rc::Rc;

use super::{cmp_int_float, Value};

/// `==` of the language: structural, ints and floats compared numerically (exactly),
/// values of different kinds unequal.
///
/// Nested collections are compared from a worklist on the heap, never by recursion, so a
/// list nested 200,000 deep compares like a flat one.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        let mut todo: Vec<(&Value, &Value)> = Vec::new();
        let (mut a, mut b) = (self, other);
        loop {
            if !shallow_eq(a, b, &mut todo) {
                return false;
            }
            match todo.pop() {
                Some((x, y)) => (a, b) = (x, y),
                None => return true,
            }
        }
    }
}

/// `a == b` for scalars; for two collections, whether their shapes agree, with their
/// children left on `todo` to be compared.
fn shallow_eq<'a>(a: &'a Value, b: &'a Value, todo: &mut Vec<(&'a Value, &'a Value)>) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::Float(a), Value::Float(b)) => a == b,
        (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
            cmp_int_float(*a, *b) == Some(Ordering::Equal)
        }
        (Value::Str(a), Value::Str(b)) => a == b,
        (Value::Duration(a), Value::Duration(b)) => a == b,
        (Value::List(a), Value::List(b)) => {
            if Rc::ptr_eq(a, b) {
                return true;
            }
            if a.len() != b.len() {
                return false;
            }
            for (x, y) in a.iter().zip(b.iter()) {
                if x.is_collection() || y.is_collection() {
                    todo.push((x, y));
                } else if !shallow_eq(x, y, todo) {
                    return false;
                }
            }
            true
        }
        (Value::Map(a), Value::Map(b)) => {
            if Rc::ptr_eq(a, b) {
                return true;
            }
            if a.len() != b.len() {
                return false;
            }
            for (k, x) in a.iter() {
                let Some(y) = b.get(k) else {
                    return false;
                };
                if x.is_collection() || y.is_collection() {
                    todo.push((x, y));
                } else if !shallow_eq(x, y, todo) {
                    return false;
                }
            }
            true
        }
        (Value::Pending(a), Value::Pending(b)) => a == b,
        (Value::Action(a), Value::Action(b)) => a.func == b.func,
        _ => false,
    }
}

/// Dropping a value frees nested collections from a worklist on the heap: a list or map
/// whose last holder drops it hands its nested collections to the worklist instead of
/// dropping them in place, so `l = [l]` repeated 200,000 times is freed without
/// recursion (the default drop would overflow the host stack).
impl Drop for Value {
    #[inline]
    fn drop(&mut self) {
        // Scalars, strings and collections someone else still holds (a list read from a
        // local, a map passed to a native: the hot paths) leave at once: only the last
        // holder frees the nested values.
        let last = match self {
            Value::List(rc) => Rc::strong_count(rc) == 1,
            Value::Map(rc) => Rc::strong_count(rc) == 1,
            _ => false,
        };
        if last {
            drop_nested(self);
        }
    }
}

#[inline(never)]
fn drop_nested(v: &mut Value) {
    let mut todo: Vec<Value> = Vec::new();
    take_nested(v, &mut todo);
    while let Some(mut it) = todo.pop() {
        take_nested(&mut it, &mut todo);
    }
}

/// Moves the nested collections of `v` onto `todo` when `v` holds the last reference to
/// its collection (a shared one is only released: the other holder keeps it alive).
fn take_nested(v: &mut Value, todo: &mut Vec<Value>) {
    match v {
        Value::List(rc) => {
            if let Some(items) = Rc::get_mut(rc) {
                if items.iter().any(Value::is_collection) {
                    todo.extend(items.drain(..).filter(Value::is_collection));
                }
            }
        }
        Value::Map(rc) => {
            if let Some(map) = Rc::get_mut(rc) {
                if map.values().any(Value::is_collection) {
                    todo.extend(
                        map.entries
                            .drain(..)
                            .map(|(_, it)| it)
                            .filter(Value::is_collection),
                    );
                }
            }
        }
        _ => {}
    }
}
