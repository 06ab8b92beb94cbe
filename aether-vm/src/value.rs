//! Run-time values of `.aether` (docs/contract/LANGUAGE.md section 4): kinds, truthiness, equality, ordering, arithmetic and display.
//!
//! Scalars are stored inline; strings, lists and maps sit behind an [`Rc`], so a
//! clone is cheap and a collection is shared until someone updates it. Updates
//! ([`Value::set_index`], [`Value::set_field`], [`Value::push`]) go through
//! [`Rc::make_mut`]: the holder that updates gets its own copy when the
//! collection is shared, so lists and maps behave as values and other holders
//! never see the change.
//!
//! Decisions where docs/contract/LANGUAGE.md is silent (each is repeated on the item it concerns):
//!
//! - Durations are float milliseconds. `duration + duration`, `duration - duration`,
//!   `duration * number`, `number * duration` and `duration / number` are durations;
//!   `duration / duration` is a float; durations order among themselves. Any other
//!   operator on a duration is an error.
//! - A zero duration is truthy: the contract's falsy list (`null false 0 0.0 "" [] {}`)
//!   does not name it.
//! - Mixed int and float arithmetic converts the int to a float; `%` on floats follows
//!   Rust's `%` (the result has the sign of the dividend).
//! - An int and a float compare exactly (no rounding of the int to a float first).
//! - Two maps are equal when they hold the same keys with equal values, in any order.
//! - `x in map` tests the keys (a non-string `x` is simply not a key); `x in str` needs a
//!   string `x` and tests for a substring.
//! - Reading a missing map key (`m.k` or `m["k"]`) is an error listing the keys present;
//!   a list index must be an int in `0..len` (negative indexes are errors, for now).
//!   `m[k] = v` / `m.k = v` adds a missing key at the end; `xs[i] = v` never extends a
//!   list.
//! - Display rounds durations to whole milliseconds (the value keeps the fraction).

use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;

use indexmap::IndexMap;

use crate::heap;
pub use crate::text::{format_duration, format_float};
use crate::text::{int_digits, push_digits, write_duration, write_float, write_int, write_quoted};

/// The deepest nesting of lists and maps that a value may have where it is carried as JSON
/// (stored in memory or the kernel's queues, sent to a plugin, emitted as an event): the
/// JSON readers of the state, of plugins and of event streams (serde_json's recursion limit)
/// refuse more, so a deeper value is an error where it would be written, never a silent
/// `null` where it is read.
pub const JSON_MAX_DEPTH: usize = 127;

mod arith;
mod nested;

use arith::Arith;

/// A run-time value.
///
/// Lists and maps are immutable once shared: see the module docs for how updates
/// copy on write. `PartialEq` is the language's `==` (structural, with ints and
/// floats compared numerically), so `Value::Int(1) == Value::Float(1.0)`.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A 64-bit signed integer; arithmetic that leaves `i64` is an error.
    Int(i64),
    /// A 64-bit float. Operations never produce an infinite or NaN float: such results
    /// are errors.
    Float(f64),
    /// A UTF-8 string.
    Str(Rc<String>),
    /// A duration in milliseconds (fractions of a millisecond are kept), as the syntax
    /// tree's `ExprKind::Duration` stores it.
    Duration(f64),
    /// A list, shared until updated.
    List(Rc<Vec<Value>>),
    /// A map with string keys in insertion order, shared until updated.
    Map(Rc<Map>),
    /// A value started in a `parallel:` block and not awaited yet (the fiber's id).
    Pending(u32),
    /// A reference to an action, callable as `f(args)`.
    Action(Rc<ActionRef>),
}

/// The error of a value operation: a message in lower case without a trailing period.
///
/// The VM wraps it with the span and frame trace of the instruction that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueError {
    /// What went wrong, e.g. `integer overflow in 9223372036854775807 + 1`.
    pub message: String,
}

impl ValueError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> ValueError {
        ValueError {
            message: message.into(),
        }
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ValueError {}

/// The bytes of one value in a list (a size test keeps `Value` at two words).
pub const VALUE_BYTES: usize = std::mem::size_of::<Value>();

/// Refuse, before it allocates, a growth of a buffer of `len` items (of `item` bytes) in
/// `capacity` by `extra` items the memory budget cannot hold: a full buffer reallocates to
/// at least twice its capacity.
pub fn reserve_grow(
    len: usize,
    capacity: usize,
    extra: usize,
    item: usize,
) -> Result<(), ValueError> {
    if capacity - len >= extra {
        return Ok(());
    }
    heap::reserve_items(
        len.saturating_add(extra).max(capacity.saturating_mul(2)),
        item,
    )
}

/// [`reserve_grow`] for `extra` more items of a list, which is copied first when shared.
pub fn reserve_push(items: &Rc<Vec<Value>>, extra: usize) -> Result<(), ValueError> {
    if Rc::strong_count(items) > 1 {
        heap::reserve_items(items.len().saturating_add(extra), VALUE_BYTES)
    } else {
        reserve_grow(items.len(), items.capacity(), extra, VALUE_BYTES)
    }
}

/// What an action reference points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRef {
    /// The compiled function's index.
    pub func: u32,
    pub name: String,
}

/// A map from string keys to values that keeps insertion order.
///
/// An `IndexMap`: lookups hash (maps used as counters or indexes grow to thousands of
/// keys), iteration follows insertion order, and cloning for copy-on-write is one clone.
#[derive(Clone, Debug, Default)]
pub struct Map {
    entries: IndexMap<Rc<str>, Value, foldhash::fast::RandomState>,
}

impl Map {
    /// An empty map.
    pub fn new() -> Map {
        Map::default()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Stores `value` under `key`. An existing key keeps its position and its old value
    /// is returned; a new key goes at the end.
    pub fn insert(&mut self, key: impl AsRef<str>, value: Value) -> Option<Value> {
        use indexmap::map::raw_entry_v1::{RawEntryApiV1, RawEntryMut};
        use std::hash::BuildHasher;
        let key = key.as_ref();
        // One hash and one probe, whether the key is new or not (an `Rc<str>` hashes as
        // its `str`).
        let hash = self.entries.hasher().hash_one(key);
        match self
            .entries
            .raw_entry_mut_v1()
            .from_key_hashed_nocheck(hash, key)
        {
            RawEntryMut::Occupied(mut slot) => Some(std::mem::replace(slot.get_mut(), value)),
            RawEntryMut::Vacant(slot) => {
                slot.insert_hashed_nocheck(hash, Rc::from(key), value);
                None
            }
        }
    }

    /// Refuse, before it allocates, an insertion the memory budget cannot hold: the copy of
    /// a shared map (copy on write) or the reallocation of a full one.
    pub fn reserve_insert(map: &Rc<Map>) -> Result<(), ValueError> {
        /// An entry: its hash, key and value, and its slot in the hash index.
        const ENTRY: usize = 56;
        let n = map.entries.len();
        if Rc::strong_count(map) > 1 {
            heap::reserve_items(n + 1, ENTRY)
        } else if n == map.entries.capacity() {
            heap::reserve_items(n.max(4) * 2, ENTRY)
        } else {
            Ok(())
        }
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&Rc<str>, &Value)> {
        self.entries.iter()
    }

    /// The keys in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &Rc<str>> {
        self.entries.keys()
    }

    /// The values in insertion order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.entries.values()
    }
}

/// Builds a map as a map literal does: a repeated key keeps its first position and
/// takes the last value.
impl<K: AsRef<str>> FromIterator<(K, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Map {
        let mut map = Map::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

/// Maps are equal when they have the same keys with equal values, whatever the
/// insertion order (docs/contract/LANGUAGE.md leaves the order question open).
impl PartialEq for Map {
    fn eq(&self, other: &Map) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(Rc::new(s.to_string()))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Rc::new(s))
    }
}

impl From<Rc<str>> for Value {
    fn from(s: Rc<str>) -> Value {
        Value::Str(Rc::new(s.to_string()))
    }
}

impl From<&Rc<str>> for Value {
    fn from(s: &Rc<str>) -> Value {
        Value::Str(Rc::new(s.to_string()))
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::List(Rc::new(items))
    }
}

impl From<Map> for Value {
    fn from(map: Map) -> Value {
        Value::Map(Rc::new(map))
    }
}

impl Value {
    /// The kind name used in messages and by `type()`: `null`, `bool`, `int`, `float`,
    /// `str`, `duration`, `list` or `map`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Duration(_) => "duration",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Pending(_) => "pending",
            Value::Action(..) => "action",
        }
    }

    /// Truthiness: `null`, `false`, `0`, `0.0` (and `-0.0`), `""`, `[]` and `{}` are
    /// falsy, everything else is truthy.
    ///
    /// Note: a zero duration (`0s`) is truthy, because the contract's falsy list does
    /// not name it; compare explicitly (`d == 0s`).
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            Value::Float(x) => *x != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Duration(_) => true,
            Value::List(items) => !items.is_empty(),
            Value::Map(map) => !map.is_empty(),
            Value::Pending(_) | Value::Action(..) => true,
        }
    }

    /// Ordering for `<`, `<=`, `>`, `>=`: numbers with numbers (ints and floats
    /// compared exactly), strings with strings (by Unicode scalar values), durations
    /// with durations. Any other pair is an error `cannot compare X with Y`.
    pub fn compare(&self, other: &Value) -> Result<Ordering, ValueError> {
        let ord = match (self, other) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
            (Value::Int(a), Value::Float(b)) => cmp_int_float(*a, *b),
            (Value::Float(a), Value::Int(b)) => cmp_int_float(*b, *a).map(Ordering::reverse),
            // UTF-8 byte order is Unicode scalar value order.
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (Value::Duration(a), Value::Duration(b)) => a.partial_cmp(b),
            _ => None,
        };
        ord.ok_or_else(|| {
            ValueError::new(format!(
                "cannot compare {} with {}",
                self.type_name(),
                other.type_name()
            ))
        })
    }

    /// `self < other`; see [`Value::compare`].
    pub fn lt(&self, other: &Value) -> Result<bool, ValueError> {
        Ok(self.compare(other)?.is_lt())
    }

    /// `self <= other`; see [`Value::compare`].
    pub fn le(&self, other: &Value) -> Result<bool, ValueError> {
        Ok(self.compare(other)?.is_le())
    }

    /// `self > other`; see [`Value::compare`].
    pub fn gt(&self, other: &Value) -> Result<bool, ValueError> {
        Ok(self.compare(other)?.is_gt())
    }

    /// `self >= other`; see [`Value::compare`].
    pub fn ge(&self, other: &Value) -> Result<bool, ValueError> {
        Ok(self.compare(other)?.is_ge())
    }

    /// `self + other`: numbers (ints stay ints, overflow is an error; an int with a
    /// float gives a float), two strings or two lists joined, two durations summed.
    /// A string with a non-string is an error that points to `str()`.
    pub fn add(&self, other: &Value) -> Result<Value, ValueError> {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => {
                heap::reserve(a.len().saturating_add(b.len()))?;
                let mut s = String::with_capacity(a.len() + b.len());
                s.push_str(a);
                s.push_str(b);
                Ok(Value::from(s))
            }
            (Value::List(a), Value::List(b)) => {
                heap::reserve_items(a.len().saturating_add(b.len()), VALUE_BYTES)?;
                let mut items = Vec::with_capacity(a.len() + b.len());
                items.extend(a.iter().cloned());
                items.extend(b.iter().cloned());
                Ok(Value::from(items))
            }
            (Value::Str(_), _) | (_, Value::Str(_)) => Err(ValueError::new(format!(
                "cannot add {} and {}: convert with str() first",
                self.type_name(),
                other.type_name()
            ))),
            _ => self.arith(Arith::Add, other),
        }
    }

    /// `self - other`: numbers, or two durations.
    pub fn sub(&self, other: &Value) -> Result<Value, ValueError> {
        self.arith(Arith::Sub, other)
    }

    /// `self * other`: numbers, or a duration and a number (either order) giving a
    /// duration.
    pub fn mul(&self, other: &Value) -> Result<Value, ValueError> {
        self.arith(Arith::Mul, other)
    }

    /// `self / other`: numbers always give a float; `duration / number` is a duration,
    /// `duration / duration` a float. Dividing by zero is an error.
    pub fn div(&self, other: &Value) -> Result<Value, ValueError> {
        self.arith(Arith::Div, other)
    }

    /// `self % other` on numbers, with the sign of the dividend (Rust's `%`, for ints
    /// and floats). `% 0` is an error.
    pub fn rem(&self, other: &Value) -> Result<Value, ValueError> {
        self.arith(Arith::Rem, other)
    }

    /// Unary `-` on an int (overflow for `i64::MIN`), a float or a duration.
    pub fn neg(&self) -> Result<Value, ValueError> {
        match self {
            Value::Int(n) => n
                .checked_neg()
                .map(Value::Int)
                .ok_or_else(|| ValueError::new(format!("integer overflow in -({})", self.repr()))),
            Value::Float(x) => Ok(Value::Float(-x)),
            Value::Duration(ms) => Ok(Value::Duration(-ms)),
            _ => Err(ValueError::new(format!(
                "cannot negate {}",
                self.type_name()
            ))),
        }
    }

    /// `self in container` (`not in` is its negation): an element of a list (by `==`),
    /// a key of a map, a substring of a string. Any other container, or a non-string
    /// looked for in a string, is an error.
    pub fn is_in(&self, container: &Value) -> Result<bool, ValueError> {
        match (container, self) {
            (Value::List(items), _) => Ok(items.iter().any(|it| it == self)),
            (Value::Map(map), Value::Str(key)) => Ok(map.contains_key(key)),
            // Keys are strings: anything else is simply not one of them, as with `==`.
            (Value::Map(_), _) => Ok(false),
            (Value::Str(hay), Value::Str(needle)) => Ok(hay.contains(&**needle)),
            (Value::Str(_), _) => Err(ValueError::new(format!(
                "cannot look for {} in a str: only a str can be in a str",
                self.type_name()
            ))),
            _ => Err(ValueError::new(format!(
                "cannot use in with {}: it needs a list, map or str",
                container.type_name()
            ))),
        }
    }

    /// `self.name` on a map. A missing key is an error listing the keys present.
    pub fn get_field(&self, name: &str) -> Result<Value, ValueError> {
        match self {
            Value::Map(map) => map.get(name).cloned().ok_or_else(|| missing_key(map, name)),
            _ => Err(ValueError::new(format!(
                "cannot read field {name} of {}: only a map has fields",
                self.type_name()
            ))),
        }
    }

    /// `self[index]`: a list with an int in `0..len`, or a map with a string key
    /// (a missing key is an error listing the keys present).
    pub fn get_index(&self, index: &Value) -> Result<Value, ValueError> {
        match (self, index) {
            (Value::List(items), _) => Ok(items[list_slot(items, index)?].clone()),
            (Value::Map(map), Value::Str(key)) => {
                map.get(key).cloned().ok_or_else(|| missing_key(map, key))
            }
            (Value::Map(_), _) => Err(map_key_kind(index)),
            _ => Err(ValueError::new(format!(
                "cannot index {}",
                self.type_name()
            ))),
        }
    }

    /// `self.name = value` on a map held by this owner: replaces the key in place or adds
    /// it at the end. Copies the map first when it is shared.
    pub fn set_field(&mut self, name: &str, value: Value) -> Result<(), ValueError> {
        match self {
            Value::Map(map) => {
                Map::reserve_insert(map)?;
                Rc::make_mut(map).insert(name, value);
                Ok(())
            }
            _ => Err(ValueError::new(format!(
                "cannot set field {name} of {}: only a map has fields",
                self.type_name()
            ))),
        }
    }

    /// `self[index] = value` on a list (an int in `0..len`; a list never grows this way)
    /// or a map (a string key, added at the end when missing). Copies the collection
    /// first when it is shared.
    pub fn set_index(&mut self, index: &Value, value: Value) -> Result<(), ValueError> {
        match (&mut *self, index) {
            (Value::List(items), _) => {
                let slot = list_slot(items, index)?;
                if Rc::strong_count(items) > 1 {
                    heap::reserve_items(items.len(), VALUE_BYTES)?;
                }
                Rc::make_mut(items)[slot] = value;
                Ok(())
            }
            (Value::Map(map), Value::Str(key)) => {
                Map::reserve_insert(map)?;
                Rc::make_mut(map).insert(key.as_str(), value);
                Ok(())
            }
            (Value::Map(_), _) => Err(map_key_kind(index)),
            _ => Err(ValueError::new(format!(
                "cannot index {}",
                self.type_name()
            ))),
        }
    }

    /// Appends `item` to a list held by this owner, copying the list first when it is
    /// shared.
    pub fn push(&mut self, item: Value) -> Result<(), ValueError> {
        match self {
            Value::List(items) => {
                reserve_push(items, 1)?;
                Rc::make_mut(items).push(item);
                Ok(())
            }
            _ => Err(ValueError::new(format!(
                "cannot append to {}",
                self.type_name()
            ))),
        }
    }

    /// The text `print`, `str` and `log` show: a string raw, anything else as
    /// [`Value::repr`].
    pub fn display(&self) -> String {
        match self {
            Value::Str(s) => s.to_string(),
            Value::Int(n) => {
                let mut buf = [0u8; 20];
                let digits = int_digits(&mut buf, n.unsigned_abs());
                let mut out = String::with_capacity(digits.len() + 1);
                if *n < 0 {
                    out.push('-');
                }
                push_digits(&mut out, digits);
                out
            }
            _ => self.repr(),
        }
    }

    /// [`Value::display`] within the run's memory budget (`str`, `print`, `format`,
    /// `join`): the text of a nested value, which may show a shared part many times over,
    /// is refused as it would grow past the budget.
    pub fn display_in_budget(&self) -> Result<String, ValueError> {
        match self {
            Value::Str(s) => {
                heap::reserve(s.len())?;
                Ok(s.to_string())
            }
            Value::List(_) | Value::Map(_) => {
                let mut out = String::new();
                self.write_nested(&mut out, false, true)?;
                Ok(out)
            }
            _ => Ok(self.display()),
        }
    }

    /// [`Value::to_json`] within the run's memory budget (`json_encode`).
    pub fn to_json_in_budget(&self) -> Result<String, ValueError> {
        let mut out = String::new();
        self.write_nested(&mut out, true, true)?;
        Ok(out)
    }

    /// The text of a value inside a collection: JSON-like, strings quoted and escaped,
    /// floats as ECMAScript prints them (plus `.0` when that has no `.` or exponent),
    /// durations in canonical form.
    pub fn repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    /// JSON text of the value: [`Value::repr`] with durations as strings of their canonical
    /// form (and a pending value as `null`), as `json_encode` and the event stream write it.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Whether lists and maps nest more than `limit` levels deep (`1` is 0 levels, `[1]` 1,
    /// `[[1]]` 2). Walked from a worklist on the heap, so any depth is safe to ask about.
    pub fn nests_deeper_than(&self, limit: usize) -> bool {
        let mut todo: Vec<(&Value, usize)> = vec![(self, 0)];
        while let Some((v, depth)) = todo.pop() {
            let inner: Box<dyn Iterator<Item = &Value>> = match v {
                Value::List(items) => Box::new(items.iter()),
                Value::Map(map) => Box::new(map.iter().map(|(_, v)| v)),
                _ => continue,
            };
            if depth + 1 > limit {
                return true;
            }
            todo.extend(inner.filter(|v| v.is_collection()).map(|v| (v, depth + 1)));
        }
        false
    }

    /// Whether the value is a list or a map.
    pub fn is_collection(&self) -> bool {
        matches!(self, Value::List(_) | Value::Map(_))
    }

    fn write_json(&self, out: &mut String) {
        // Without a budget, writing cannot fail.
        let _ = self.write_nested(out, true, false);
    }

    fn write_repr(&self, out: &mut String) {
        let _ = self.write_nested(out, false, false);
    }

    /// Writes the value, lists as `[a, b]` and maps as `{"k": v}`, in JSON form or repr
    /// form. Collections are walked from a worklist on the heap, never by recursion, so
    /// any depth prints. With `budget`, each piece that would make `out` reallocate asks
    /// the memory budget first.
    fn write_nested(&self, out: &mut String, json: bool, budget: bool) -> Result<(), ValueError> {
        enum Piece<'a> {
            Value(&'a Value),
            Text(&'static str),
            Key(&'a str),
        }
        let mut todo = vec![Piece::Value(self)];
        while let Some(piece) = todo.pop() {
            if budget {
                // Quotes and a few escapes around a string; other pieces are short.
                let need = match &piece {
                    Piece::Value(Value::Str(s)) => s.len().saturating_add(s.len() / 8 + 2),
                    Piece::Key(k) => k.len().saturating_add(k.len() / 8 + 4),
                    _ => 32,
                };
                if out.capacity() - out.len() < need {
                    heap::reserve(out.len().saturating_add(need).max(out.capacity() * 2))?;
                }
            }
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Key(key) => {
                    write_quoted(out, key);
                    out.push_str(": ");
                }
                Piece::Value(Value::List(items)) => {
                    out.push('[');
                    todo.push(Piece::Text("]"));
                    for (i, it) in items.iter().enumerate().rev() {
                        todo.push(Piece::Value(it));
                        if i > 0 {
                            todo.push(Piece::Text(", "));
                        }
                    }
                }
                Piece::Value(Value::Map(map)) => {
                    out.push('{');
                    todo.push(Piece::Text("}"));
                    for (i, (k, v)) in map.entries.iter().enumerate().rev() {
                        todo.push(Piece::Value(v));
                        todo.push(Piece::Key(k));
                        if i > 0 {
                            todo.push(Piece::Text(", "));
                        }
                    }
                }
                Piece::Value(scalar) if json => scalar.write_json_scalar(out),
                Piece::Value(scalar) => scalar.write_repr_scalar(out),
            }
        }
        Ok(())
    }

    fn write_json_scalar(&self, out: &mut String) {
        match self {
            Value::Duration(ms) => write_quoted(out, &format_duration(*ms)),
            Value::Pending(_) => out.push_str("null"),
            Value::Action(a) => write_quoted(out, &format!("<action {}>", a.name)),
            other => other.write_repr_scalar(out),
        }
    }

    fn write_repr_scalar(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(n) => write_int(out, *n),
            Value::Float(x) => write_float(out, *x),
            Value::Str(s) => write_quoted(out, s),
            Value::Duration(ms) => write_duration(out, *ms),
            Value::Pending(_) => out.push_str("<pending>"),
            Value::Action(a) => {
                out.push_str("<action ");
                out.push_str(&a.name);
                out.push('>');
            }
            // Collections never reach here: write_nested takes them apart.
            Value::List(_) | Value::Map(_) => {}
        }
    }
}

/// Compares an int with a float exactly. `None` only for NaN.
fn cmp_int_float(a: i64, b: f64) -> Option<Ordering> {
    if b.is_nan() {
        return None;
    }
    // 2^63 is exact as an f64; every i64 lies in [-2^63, 2^63).
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if b >= TWO_63 {
        return Some(Ordering::Less);
    }
    if b < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = b.trunc();
    // In range and integral, so the conversion is exact.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "whole is integral and within the i64 range, checked above"
    )]
    let whole_int = whole as i64;
    match a.cmp(&whole_int) {
        Ordering::Equal => 0.0.partial_cmp(&(b - whole)),
        ord => Some(ord),
    }
}

fn list_slot(items: &[Value], index: &Value) -> Result<usize, ValueError> {
    let Value::Int(i) = index else {
        return Err(ValueError::new(format!(
            "a list index must be an int, not {}",
            index.type_name()
        )));
    };
    usize::try_from(*i)
        .ok()
        .filter(|&slot| slot < items.len())
        .ok_or_else(|| {
            ValueError::new(format!(
                "list index {i} is out of range for a list of length {}",
                items.len()
            ))
        })
}

fn map_key_kind(key: &Value) -> ValueError {
    ValueError::new(format!("a map key must be a str, not {}", key.type_name()))
}

fn missing_key(map: &Map, key: &str) -> ValueError {
    let mut message = String::from("map has no key ");
    write_quoted(&mut message, key);
    if map.is_empty() {
        message.push_str(" (the map is empty)");
    } else {
        message.push_str(" (keys present: ");
        for (i, k) in map.keys().enumerate() {
            if i > 0 {
                message.push_str(", ");
            }
            write_quoted(&mut message, k);
        }
        message.push(')');
    }
    ValueError::new(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::from(text)
    }

    fn list(items: Vec<Value>) -> Value {
        Value::from(items)
    }

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::from(entries.into_iter().collect::<Map>())
    }

    fn dur(ms: f64) -> Value {
        Value::Duration(ms)
    }

    fn err(res: Result<Value, ValueError>) -> String {
        res.expect_err("expected an error").message
    }

    fn ok(res: Result<Value, ValueError>) -> Value {
        res.expect("expected a value")
    }

    /// Same kind and same payload (floats by bits), unlike the language's `==`.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) | (Value::Duration(x), Value::Duration(y)) => {
                x.to_bits() == y.to_bits()
            }
            _ => a.type_name() == b.type_name() && a == b,
        }
    }

    #[track_caller]
    fn assert_same(a: Value, b: Value) {
        assert!(same(&a, &b), "{a:?} is not {b:?}");
    }

    #[test]
    fn type_names() {
        let names: Vec<_> = [
            Value::Null,
            Value::Bool(true),
            Value::Int(1),
            Value::Float(1.0),
            s("x"),
            dur(1.0),
            list(vec![]),
            map(vec![]),
        ]
        .iter()
        .map(Value::type_name)
        .collect();
        assert_eq!(
            names,
            ["null", "bool", "int", "float", "str", "duration", "list", "map"]
        );
    }

    #[test]
    fn falsy_values_are_exactly_the_contract_list() {
        let falsy = [
            Value::Null,
            Value::Bool(false),
            Value::Int(0),
            Value::Float(0.0),
            Value::Float(-0.0),
            s(""),
            list(vec![]),
            map(vec![]),
        ];
        for v in &falsy {
            assert!(!v.is_truthy(), "{v:?} should be falsy");
        }
        let truthy = [
            Value::Bool(true),
            Value::Int(-1),
            Value::Float(0.5),
            s("0"),
            s(" "),
            list(vec![Value::Null]),
            map(vec![("k", Value::Null)]),
            dur(1.0),
            // Not in the contract's list, so truthy.
            dur(0.0),
        ];
        for v in &truthy {
            assert!(v.is_truthy(), "{v:?} should be truthy");
        }
    }

    #[test]
    fn equality_is_structural_and_numeric() {
        assert_eq!(Value::Int(1), Value::Float(1.0));
        assert_eq!(Value::Float(1.0), Value::Int(1));
        assert_ne!(Value::Int(1), Value::Float(1.5));
        assert_eq!(Value::Float(0.0), Value::Float(-0.0));
        // Exact: 2^53 + 1 is not the float 2^53.
        assert_ne!(
            Value::Int((1 << 53) + 1),
            Value::Float(9_007_199_254_740_992.0)
        );
        assert_eq!(Value::Int(1 << 53), Value::Float(9_007_199_254_740_992.0));
        assert_ne!(
            Value::Int(i64::MAX),
            Value::Float(9_223_372_036_854_775_808.0)
        );
        assert_eq!(
            Value::Int(i64::MIN),
            Value::Float(-9_223_372_036_854_775_808.0)
        );
        assert_eq!(
            list(vec![Value::Int(1), s("a")]),
            list(vec![Value::Float(1.0), s("a")])
        );
        assert_ne!(
            list(vec![Value::Int(1)]),
            list(vec![Value::Int(1), Value::Int(2)])
        );
        assert_eq!(
            map(vec![("a", Value::Int(1)), ("b", list(vec![]))]),
            map(vec![("a", Value::Int(1)), ("b", list(vec![]))])
        );
        // Insertion order does not matter for equality.
        assert_eq!(
            map(vec![("a", Value::Int(1)), ("b", Value::Int(2))]),
            map(vec![("b", Value::Int(2)), ("a", Value::Int(1))])
        );
        assert_ne!(
            map(vec![("a", Value::Int(1))]),
            map(vec![("a", Value::Int(2))])
        );
        assert_ne!(
            map(vec![("a", Value::Int(1))]),
            map(vec![("b", Value::Int(1))])
        );
        assert_eq!(dur(1500.0), dur(1500.0));
        assert_eq!(Value::Null, Value::Null);
        assert_eq!(s("é"), s("é"));
    }

    #[test]
    fn different_kinds_are_unequal_without_error() {
        let values = [
            Value::Null,
            Value::Bool(false),
            Value::Int(0),
            s(""),
            dur(0.0),
            list(vec![]),
            map(vec![]),
        ];
        for (i, a) in values.iter().enumerate() {
            for (j, b) in values.iter().enumerate() {
                assert_eq!(a == b, i == j, "{a:?} == {b:?}");
            }
        }
        assert_ne!(Value::Int(1), Value::Bool(true));
        assert_ne!(s("1"), Value::Int(1));
        assert_ne!(dur(1000.0), Value::Int(1000));
    }

    #[test]
    fn ordering() {
        assert_eq!(Value::Int(1).compare(&Value::Int(2)), Ok(Ordering::Less));
        assert_eq!(
            Value::Int(2).compare(&Value::Float(2.5)),
            Ok(Ordering::Less)
        );
        assert_eq!(
            Value::Float(2.5).compare(&Value::Int(2)),
            Ok(Ordering::Greater)
        );
        assert_eq!(
            Value::Float(-0.5).compare(&Value::Int(0)),
            Ok(Ordering::Less)
        );
        assert_eq!(
            Value::Float(-0.5).compare(&Value::Int(-1)),
            Ok(Ordering::Greater)
        );
        assert_eq!(
            Value::Int(3).compare(&Value::Float(3.0)),
            Ok(Ordering::Equal)
        );
        assert_eq!(
            Value::Int(i64::MAX).compare(&Value::Float(1e19)),
            Ok(Ordering::Less)
        );
        assert_eq!(
            Value::Int(i64::MIN).compare(&Value::Float(-1e19)),
            Ok(Ordering::Greater)
        );
        assert_eq!(s("abc").compare(&s("abd")), Ok(Ordering::Less));
        assert_eq!(s("Z").compare(&s("a")), Ok(Ordering::Less));
        assert_eq!(s("ab").compare(&s("a")), Ok(Ordering::Greater));
        // Scalar value order: U+FFFF < U+10000 (UTF-16 order would say otherwise).
        assert_eq!(s("\u{ffff}").compare(&s("\u{10000}")), Ok(Ordering::Less));
        assert_eq!(dur(500.0).compare(&dur(1000.0)), Ok(Ordering::Less));
        assert_eq!(Value::Int(1).lt(&Value::Int(2)), Ok(true));
        assert_eq!(Value::Int(2).le(&Value::Float(2.0)), Ok(true));
        assert_eq!(Value::Int(2).gt(&Value::Float(2.0)), Ok(false));
        assert_eq!(s("b").ge(&s("a")), Ok(true));
    }

    #[test]
    fn ordering_mixed_kinds_is_an_error() {
        let cases = [
            (s("3"), Value::Int(4), "cannot compare str with int"),
            (Value::Null, Value::Null, "cannot compare null with null"),
            (
                Value::Bool(true),
                Value::Bool(false),
                "cannot compare bool with bool",
            ),
            (dur(1.0), Value::Int(1), "cannot compare duration with int"),
            (
                Value::Float(1.0),
                dur(1.0),
                "cannot compare float with duration",
            ),
            (list(vec![]), list(vec![]), "cannot compare list with list"),
            (map(vec![]), s("a"), "cannot compare map with str"),
        ];
        for (a, b, message) in cases {
            assert_eq!(a.compare(&b).unwrap_err().message, message);
            assert_eq!(a.lt(&b).unwrap_err().message, message);
        }
    }

    #[test]
    fn int_arithmetic_stays_int() {
        assert_same(ok(Value::Int(2).add(&Value::Int(3))), Value::Int(5));
        assert_same(ok(Value::Int(2).sub(&Value::Int(3))), Value::Int(-1));
        assert_same(ok(Value::Int(4).mul(&Value::Int(-3))), Value::Int(-12));
        assert_same(ok(Value::Int(-7).rem(&Value::Int(3))), Value::Int(-1));
        assert_same(ok(Value::Int(7).rem(&Value::Int(-3))), Value::Int(1));
        assert_same(ok(Value::Int(i64::MIN).rem(&Value::Int(-1))), Value::Int(0));
    }

    #[test]
    fn division_always_gives_a_float() {
        assert_same(ok(Value::Int(4).div(&Value::Int(2))), Value::Float(2.0));
        assert_same(ok(Value::Int(7).div(&Value::Int(2))), Value::Float(3.5));
        assert_same(
            ok(Value::Float(1.0).div(&Value::Int(4))),
            Value::Float(0.25),
        );
        assert_same(
            ok(Value::Int(i64::MIN).div(&Value::Int(-1))),
            Value::Float(9.223372036854776e18),
        );
    }

    #[test]
    fn integer_overflow_is_an_error() {
        assert_eq!(
            err(Value::Int(i64::MAX).add(&Value::Int(1))),
            "integer overflow in 9223372036854775807 + 1"
        );
        assert_eq!(
            err(Value::Int(i64::MIN).sub(&Value::Int(1))),
            "integer overflow in -9223372036854775808 - 1"
        );
        assert_eq!(
            err(Value::Int(1 << 32).mul(&Value::Int(1 << 31))),
            "integer overflow in 4294967296 * 2147483648"
        );
        assert_eq!(
            err(Value::Int(i64::MIN).neg()),
            "integer overflow in -(-9223372036854775808)"
        );
    }

    #[test]
    fn mixed_int_float_gives_float() {
        assert_same(ok(Value::Int(1).add(&Value::Float(0.5))), Value::Float(1.5));
        assert_same(
            ok(Value::Float(0.5).sub(&Value::Int(1))),
            Value::Float(-0.5),
        );
        assert_same(ok(Value::Int(3).mul(&Value::Float(0.5))), Value::Float(1.5));
        assert_same(
            ok(Value::Float(0.1).add(&Value::Float(0.2))),
            Value::Float(0.30000000000000004),
        );
    }

    #[test]
    fn float_remainder_has_the_sign_of_the_dividend() {
        assert_same(
            ok(Value::Float(-7.5).rem(&Value::Int(2))),
            Value::Float(-1.5),
        );
        assert_same(
            ok(Value::Float(7.5).rem(&Value::Float(-2.0))),
            Value::Float(1.5),
        );
        assert_same(ok(Value::Int(7).rem(&Value::Float(2.5))), Value::Float(2.0));
    }

    #[test]
    fn division_by_zero_is_an_error() {
        assert_eq!(
            err(Value::Int(1).div(&Value::Int(0))),
            "division by zero in 1 / 0"
        );
        assert_eq!(
            err(Value::Int(1).rem(&Value::Int(0))),
            "division by zero in 1 % 0"
        );
        assert_eq!(
            err(Value::Float(1.5).div(&Value::Float(0.0))),
            "division by zero in 1.5 / 0.0"
        );
        assert_eq!(
            err(Value::Float(1.5).div(&Value::Float(-0.0))),
            "division by zero in 1.5 / 0.0"
        );
        assert_eq!(
            err(Value::Int(1).rem(&Value::Float(0.0))),
            "division by zero in 1 % 0.0"
        );
        assert_eq!(
            err(Value::Float(0.0).div(&Value::Int(0))),
            "division by zero in 0.0 / 0"
        );
        assert_eq!(
            err(dur(1000.0).div(&Value::Int(0))),
            "division by zero in 1s / 0"
        );
        assert_eq!(
            err(dur(1000.0).div(&dur(0.0))),
            "division by zero in 1s / 0s"
        );
    }

    #[test]
    fn non_finite_float_results_are_errors() {
        assert_eq!(
            err(Value::Float(1e308).mul(&Value::Int(10))),
            "float result is not finite in 1e+308 * 10"
        );
        assert_eq!(
            err(Value::Float(f64::MAX).add(&Value::Float(f64::MAX))),
            "float result is not finite in 1.7976931348623157e+308 + 1.7976931348623157e+308"
        );
        assert_eq!(
            err(Value::Float(1e300).div(&Value::Float(1e-300))),
            "float result is not finite in 1e+300 / 1e-300"
        );
        let message = err(dur(1e308).mul(&Value::Float(10.0)));
        assert!(
            message.starts_with("float result is not finite in "),
            "{message}"
        );
        assert!(message.ends_with("s * 10.0"), "{message}");
    }

    #[test]
    fn plus_joins_strings_and_lists() {
        assert_same(ok(s("ab").add(&s("cd"))), s("abcd"));
        assert_same(ok(s("").add(&s(""))), s(""));
        let joined = ok(list(vec![Value::Int(1)]).add(&list(vec![s("a"), Value::Null])));
        assert_eq!(joined.display(), r#"[1, "a", null]"#);
    }

    #[test]
    fn plus_of_str_and_non_str_suggests_str() {
        assert_eq!(
            err(s("n = ").add(&Value::Int(1))),
            "cannot add str and int: convert with str() first"
        );
        assert_eq!(
            err(Value::Float(1.5).add(&s("x"))),
            "cannot add float and str: convert with str() first"
        );
        assert_eq!(
            err(s("x").add(&list(vec![]))),
            "cannot add str and list: convert with str() first"
        );
    }

    #[test]
    fn unsupported_operand_kinds_are_errors() {
        assert_eq!(err(s("a").sub(&s("b"))), "cannot apply - to str and str");
        assert_eq!(
            err(s("a").mul(&Value::Int(3))),
            "cannot apply * to str and int"
        );
        assert_eq!(
            err(list(vec![]).add(&map(vec![]))),
            "cannot apply + to list and map"
        );
        assert_eq!(
            err(Value::Null.add(&Value::Int(1))),
            "cannot apply + to null and int"
        );
        assert_eq!(
            err(Value::Bool(true).add(&Value::Int(1))),
            "cannot apply + to bool and int"
        );
        assert_eq!(
            err(dur(1.0).add(&Value::Int(1))),
            "cannot apply + to duration and int"
        );
        assert_eq!(
            err(Value::Int(1).sub(&dur(1.0))),
            "cannot apply - to int and duration"
        );
        assert_eq!(
            err(dur(1.0).mul(&dur(1.0))),
            "cannot apply * to duration and duration"
        );
        assert_eq!(
            err(dur(1.0).rem(&dur(1.0))),
            "cannot apply % to duration and duration"
        );
        assert_eq!(
            err(Value::Int(1).div(&dur(1.0))),
            "cannot apply / to int and duration"
        );
        assert_eq!(
            err(dur(1.0).mul(&s("x"))),
            "cannot apply * to duration and str"
        );
        assert_eq!(err(s("x").neg()), "cannot negate str");
        assert_eq!(err(Value::Null.neg()), "cannot negate null");
    }

    #[test]
    fn duration_arithmetic() {
        assert_same(ok(dur(1000.0).add(&dur(500.0))), dur(1500.0));
        assert_same(ok(dur(1000.0).sub(&dur(1500.0))), dur(-500.0));
        assert_same(ok(dur(150.0).mul(&Value::Int(4))), dur(600.0));
        assert_same(ok(Value::Float(1.5).mul(&dur(1000.0))), dur(1500.0));
        assert_same(ok(dur(90_000.0).div(&Value::Int(2))), dur(45_000.0));
        assert_same(ok(dur(90_000.0).div(&dur(60_000.0))), Value::Float(1.5));
        assert_same(ok(dur(1500.0).neg()), dur(-1500.0));
        assert_eq!(ok(dur(1000.0).add(&dur(500.0))).display(), "1.5s");
        assert_eq!(ok(dur(150.0).mul(&Value::Int(4))).display(), "600ms");
    }

    #[test]
    fn negation() {
        assert_same(ok(Value::Int(5).neg()), Value::Int(-5));
        assert_same(ok(Value::Int(i64::MAX).neg()), Value::Int(-i64::MAX));
        assert_same(ok(Value::Float(0.5).neg()), Value::Float(-0.5));
        assert_same(ok(Value::Float(0.0).neg()), Value::Float(-0.0));
    }

    #[test]
    fn membership() {
        let xs = list(vec![Value::Int(1), s("a"), list(vec![Value::Null])]);
        assert_eq!(Value::Float(1.0).is_in(&xs), Ok(true));
        assert_eq!(s("a").is_in(&xs), Ok(true));
        assert_eq!(list(vec![Value::Null]).is_in(&xs), Ok(true));
        assert_eq!(s("b").is_in(&xs), Ok(false));
        assert_eq!(Value::Int(1).is_in(&list(vec![])), Ok(false));
        let m = map(vec![("k", Value::Int(1))]);
        assert_eq!(s("k").is_in(&m), Ok(true));
        assert_eq!(s("x").is_in(&m), Ok(false));
        // Values are not keys; a non-string is never a key.
        assert_eq!(Value::Int(1).is_in(&m), Ok(false));
        assert_eq!(s("ell").is_in(&s("hello")), Ok(true));
        assert_eq!(s("").is_in(&s("hello")), Ok(true));
        assert_eq!(s("xyz").is_in(&s("hello")), Ok(false));
        assert_eq!(
            Value::Int(1).is_in(&s("a1")).unwrap_err().message,
            "cannot look for int in a str: only a str can be in a str"
        );
        assert_eq!(
            Value::Int(1).is_in(&Value::Int(1)).unwrap_err().message,
            "cannot use in with int: it needs a list, map or str"
        );
        assert_eq!(
            Value::Int(1).is_in(&dur(1.0)).unwrap_err().message,
            "cannot use in with duration: it needs a list, map or str"
        );
    }

    #[test]
    fn display_scalars() {
        assert_eq!(Value::Null.display(), "null");
        assert_eq!(Value::Bool(true).display(), "true");
        assert_eq!(Value::Bool(false).display(), "false");
        assert_eq!(Value::Int(42).display(), "42");
        assert_eq!(Value::Int(-7).display(), "-7");
        assert_eq!(Value::Int(i64::MIN).display(), "-9223372036854775808");
        assert_eq!(s("a \"raw\"\nstring").display(), "a \"raw\"\nstring");
        assert_eq!(s("a \"raw\"\nstring").repr(), r#""a \"raw\"\nstring""#);
    }

    #[test]
    fn display_floats_like_ecmascript() {
        let cases = [
            (3.0, "3.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e+21"),
            (-0.5, "-0.5"),
            (1.5e-7, "1.5e-7"),
            (3.5, "3.5"),
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (100.0, "100.0"),
            (-42.0, "-42.0"),
            (1e20, "100000000000000000000.0"),
            (123456789012345680000.0, "123456789012345680000.0"),
            (1.2345678901234567e21, "1.2345678901234568e+21"),
            (1e-6, "0.000001"),
            (1.5e-6, "0.0000015"),
            (1e-7, "1e-7"),
            (-1e-7, "-1e-7"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (2f64.powi(53), "9007199254740992.0"),
            (1.0 / 3.0, "0.3333333333333333"),
            (-1e300, "-1e+300"),
        ];
        for (x, text) in cases {
            assert_eq!(Value::Float(x).display(), text, "{x:e}");
            assert_eq!(format_float(x), text);
        }
        assert_eq!(format_float(f64::INFINITY), "Infinity");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(format_float(f64::NAN), "NaN");
    }

    #[test]
    fn display_strings_in_collections_with_json_escapes() {
        let v = list(vec![
            s("q\"b\\n\nr\rt\tb\u{8}f\u{c}"),
            s("\u{1}\u{1f}\u{7f}"),
            s("é😀"),
        ]);
        assert_eq!(
            v.display(),
            r#"["q\"b\\n\nr\rt\tb\bf\f", "\u0001\u001f"#.to_string() + "\u{7f}\", \"é😀\"]"
        );
        assert_eq!(list(vec![s("\u{1b}")]).display(), r#"["\u001b"]"#);
    }

    #[test]
    fn display_collections() {
        assert_eq!(
            list(vec![Value::Int(1), s("a"), Value::Null]).display(),
            r#"[1, "a", null]"#
        );
        assert_eq!(list(vec![]).display(), "[]");
        assert_eq!(map(vec![]).display(), "{}");
        assert_eq!(
            map(vec![("k", Value::Int(1)), ("n", list(vec![Value::Int(2)]))]).display(),
            r#"{"k": 1, "n": [2]}"#
        );
        // Insertion order, not key order.
        assert_eq!(
            map(vec![
                ("z", Value::Int(1)),
                ("a", Value::Float(2.0)),
                ("m", Value::Bool(false))
            ])
            .display(),
            r#"{"z": 1, "a": 2.0, "m": false}"#
        );
        assert_eq!(
            map(vec![("a\"b", Value::Null)]).display(),
            r#"{"a\"b": null}"#
        );
        assert_eq!(
            list(vec![dur(90_000.0), s("x")]).display(),
            r#"[1m30s, "x"]"#
        );
        assert_eq!(
            list(vec![
                list(vec![]),
                map(vec![("d", dur(150.0))]),
                Value::Float(0.5)
            ])
            .display(),
            r#"[[], {"d": 150ms}, 0.5]"#
        );
    }

    #[test]
    fn display_durations_canonically() {
        let cases = [
            (1500.0, "1.5s"),
            (90_000.0, "1m30s"),
            (3_600_000.0, "1h"),
            (150.0, "150ms"),
            (26.0 * 3_600_000.0, "1d2h"),
            (0.0, "0s"),
            (-0.0, "0s"),
            (1_000.0, "1s"),
            (999.0, "999ms"),
            (1.0, "1ms"),
            (61_500.0, "1m1.5s"),
            (90_250.0, "1m30.25s"),
            (60_500.0, "1m0.5s"),
            (3_600_001.0, "1h0.001s"),
            (86_400_000.0, "1d"),
            (86_400_000.0 + 60_000.0, "1d1m"),
            (93_784_005.0, "1d2h3m4.005s"),
            (30_000.0, "30s"),
            (300_000.0, "5m"),
            (7_200_000.0, "2h"),
            (-1500.0, "-1.5s"),
            (-150.0, "-150ms"),
            (-90_000.0, "-1m30s"),
            // Rounded to whole milliseconds.
            (0.4, "0s"),
            (-0.4, "0s"),
            (0.5, "1ms"),
            (1.5, "2ms"),
            (150.25, "150ms"),
            (999.6, "1s"),
            (1000.6, "1.001s"),
            (59_999.9, "1m"),
            (1e10, "115d17h46m40s"),
        ];
        for (ms, text) in cases {
            assert_eq!(dur(ms).display(), text, "{ms}ms");
            assert_eq!(dur(ms).repr(), text);
            assert_eq!(format_duration(ms), text);
        }
    }

    #[test]
    fn fields_and_indexes() {
        let m = map(vec![("a", Value::Int(1)), ("c", Value::Int(3))]);
        assert_same(m.get_field("a").unwrap(), Value::Int(1));
        assert_same(m.get_index(&s("c")).unwrap(), Value::Int(3));
        assert_eq!(
            m.get_field("b").unwrap_err().message,
            r#"map has no key "b" (keys present: "a", "c")"#
        );
        assert_eq!(
            m.get_index(&s("b")).unwrap_err().message,
            r#"map has no key "b" (keys present: "a", "c")"#
        );
        assert_eq!(
            map(vec![]).get_field("b").unwrap_err().message,
            r#"map has no key "b" (the map is empty)"#
        );
        assert_eq!(
            m.get_index(&Value::Int(0)).unwrap_err().message,
            "a map key must be a str, not int"
        );
        assert_eq!(
            Value::Int(1).get_field("a").unwrap_err().message,
            "cannot read field a of int: only a map has fields"
        );
        let xs = list(vec![s("x"), s("y")]);
        assert_same(xs.get_index(&Value::Int(1)).unwrap(), s("y"));
        assert_eq!(
            xs.get_index(&Value::Int(2)).unwrap_err().message,
            "list index 2 is out of range for a list of length 2"
        );
        assert_eq!(
            xs.get_index(&Value::Int(-1)).unwrap_err().message,
            "list index -1 is out of range for a list of length 2"
        );
        assert_eq!(
            xs.get_index(&Value::Float(0.0)).unwrap_err().message,
            "a list index must be an int, not float"
        );
        assert_eq!(
            s("ab").get_index(&Value::Int(0)).unwrap_err().message,
            "cannot index str"
        );
    }

    #[test]
    fn updates_copy_on_write() {
        let original = map(vec![("count", Value::Int(1))]);
        let mut a = original.clone();
        a.set_field("count", Value::Int(2)).unwrap();
        a.set_field("new", Value::Bool(true)).unwrap();
        assert_eq!(a.display(), r#"{"count": 2, "new": true}"#);
        assert_eq!(original.display(), r#"{"count": 1}"#);

        let mut b = original.clone();
        b.set_index(&s("count"), Value::Int(5)).unwrap();
        b.set_index(&s("z"), Value::Null).unwrap();
        assert_eq!(b.display(), r#"{"count": 5, "z": null}"#);
        assert_eq!(original.display(), r#"{"count": 1}"#);

        let xs = list(vec![Value::Int(1), Value::Int(2)]);
        let mut ys = xs.clone();
        ys.set_index(&Value::Int(0), s("a")).unwrap();
        ys.push(Value::Int(3)).unwrap();
        assert_eq!(ys.display(), r#"["a", 2, 3]"#);
        assert_eq!(xs.display(), "[1, 2]");

        // Nested: updating an inner copy and storing it back leaves the outer original.
        let outer = list(vec![xs.clone()]);
        let mut inner = outer.get_index(&Value::Int(0)).unwrap();
        inner.push(Value::Int(9)).unwrap();
        let mut outer2 = outer.clone();
        outer2.set_index(&Value::Int(0), inner).unwrap();
        assert_eq!(outer.display(), "[[1, 2]]");
        assert_eq!(outer2.display(), "[[1, 2, 9]]");
    }

    #[test]
    fn unshared_updates_do_not_copy() {
        let mut xs = list(vec![Value::Int(1)]);
        let before = match &xs {
            Value::List(items) => Rc::as_ptr(items),
            _ => unreachable!(),
        };
        xs.push(Value::Int(2)).unwrap();
        xs.set_index(&Value::Int(0), Value::Int(0)).unwrap();
        let Value::List(items) = &xs else {
            unreachable!()
        };
        assert_eq!(Rc::as_ptr(items), before);
    }

    #[test]
    fn update_errors() {
        let mut xs = list(vec![Value::Int(1)]);
        assert_eq!(
            xs.set_index(&Value::Int(1), Value::Null)
                .unwrap_err()
                .message,
            "list index 1 is out of range for a list of length 1"
        );
        assert_eq!(
            xs.set_index(&s("a"), Value::Null).unwrap_err().message,
            "a list index must be an int, not str"
        );
        assert_eq!(
            xs.set_field("a", Value::Null).unwrap_err().message,
            "cannot set field a of list: only a map has fields"
        );
        let mut m = map(vec![]);
        assert_eq!(
            m.set_index(&Value::Int(1), Value::Null)
                .unwrap_err()
                .message,
            "a map key must be a str, not int"
        );
        assert_eq!(
            m.push(Value::Null).unwrap_err().message,
            "cannot append to map"
        );
        assert_eq!(
            Value::Int(1)
                .set_index(&Value::Int(0), Value::Null)
                .unwrap_err()
                .message,
            "cannot index int"
        );
    }

    #[test]
    fn map_keeps_insertion_order_and_replaces_in_place() {
        let mut m = Map::new();
        assert!(m.is_empty());
        assert_eq!(m.insert("b", Value::Int(1)), None);
        assert_eq!(m.insert("a", Value::Int(2)), None);
        assert_eq!(m.insert("b", Value::Int(3)), Some(Value::Int(1)));
        assert_eq!(m.len(), 2);
        assert!(m.contains_key("a"));
        assert!(!m.contains_key("c"));
        let keys: Vec<&str> = m.keys().map(|k| &**k).collect();
        assert_eq!(keys, ["b", "a"]);
        let values: Vec<String> = m.values().map(Value::display).collect();
        assert_eq!(values, ["3", "2"]);
        // A repeated key in a literal keeps its first position and takes the last value.
        let lit: Map = [
            ("x", Value::Int(1)),
            ("y", Value::Int(2)),
            ("x", Value::Int(3)),
        ]
        .into_iter()
        .collect();
        assert_eq!(Value::from(lit).display(), r#"{"x": 3, "y": 2}"#);
        // Inserted keys are found by lookups (one hash of the `str` for both), across
        // the map's growths, and a second insert replaces without adding.
        let mut big = Map::new();
        for i in 0..2000 {
            assert_eq!(big.insert(format!("k{i}"), Value::Int(i)), None);
        }
        for i in 0..2000 {
            assert_eq!(big.get(&format!("k{i}")), Some(&Value::Int(i)));
            assert_eq!(
                big.insert(format!("k{i}"), Value::Null),
                Some(Value::Int(i))
            );
        }
        assert_eq!(big.len(), 2000);
        assert_eq!(big.keys().nth(1999).map(|k| &**k), Some("k1999"));
    }

    /// Lexes a canonical duration (with its optional leading `-`) back to milliseconds.
    fn lex_duration(text: &str) -> f64 {
        let (sign, body) = match text.strip_prefix('-') {
            Some(body) => (-1.0, body),
            None => (1.0, text),
        };
        let ms = aether_syntax::token::parse_duration(body)
            .unwrap_or_else(|| panic!("{text} does not lex as a duration"));
        sign * ms
    }

    #[test]
    fn canonical_durations_lex_back() {
        for ms in [
            0.0,
            1.0,
            150.0,
            999.0,
            1000.0,
            1500.0,
            61_500.0,
            90_250.0,
            93_784_005.0,
        ] {
            for ms in [ms, -ms] {
                let text = format_duration(ms);
                assert_eq!(lex_duration(&text), ms, "{text}");
            }
        }
    }

    #[test]
    fn lexer_reads_fractional_seconds_exactly() {
        assert_eq!(lex_duration("1.001s"), 1001.0);
        assert_eq!(format_duration(1001.0), "1.001s");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Every canonical form lexes back to exactly the same duration.
        #[test]
        fn canonical_duration_is_a_literal_of_the_same_duration(ms in 0u64..10_000_000_000) {
            for ms in [ms as f64, -(ms as f64)] {
                let text = format_duration(ms);
                let back = lex_duration(&text);
                proptest::prop_assert_eq!(back, ms, "{} lexes as {}", text, back);
            }
        }
    }
}

#[cfg(test)]
mod size {
    /// Values are copied on every stack operation: keep them two words.
    #[test]
    fn a_value_is_two_words() {
        assert_eq!(std::mem::size_of::<super::Value>(), 16);
    }
}

#[cfg(test)]
mod json {
    use super::*;

    #[test]
    fn json_text_quotes_durations_and_action_references() {
        let a = Value::Action(Rc::new(ActionRef {
            func: 1,
            name: "job".into(),
        }));
        let v = Value::from(vec![Value::Duration(90_000.0), a, Value::Pending(3)]);
        assert_eq!(v.to_json(), r#"["1m30s", "<action job>", null]"#);
        assert_eq!(v.repr(), "[1m30s, <action job>, <pending>]");
    }
}

#[cfg(test)]
mod deep {
    use super::*;

    fn nested(depth: usize, map: bool) -> Value {
        let mut v = Value::Null;
        for _ in 0..depth {
            v = if map {
                Value::from(Map::from_iter([("k", v)]))
            } else {
                Value::from(vec![v])
            };
        }
        v
    }

    #[test]
    fn deep_values_drop_compare_and_print_without_recursion() {
        for map in [false, true] {
            let a = nested(300_000, map);
            let b = nested(300_000, map);
            assert!(a == b);
            assert!(a != nested(299_999, map));
            assert!(a.repr().len() > 300_000);
            assert!(a.to_json().len() > 300_000);
            drop(a);
            // A shared inner collection survives its outer holder.
            let inner = nested(10, map);
            let outer = Value::from(vec![inner.clone()]);
            drop(outer);
            assert_eq!(inner, nested(10, map));
        }
    }
}
