//! Helpers of the natives' unit tests: values from JSON, and calls bound as the VM binds.

use aether_vm::{Args, Value, ValueError};

/// A value from JSON text (the test's own decoder, independent of `json_decode`).
pub(crate) fn v(json: &str) -> Value {
    crate::json::from_json(serde_json::from_str(json).expect("test JSON"))
}

pub(crate) fn s(text: &str) -> Value {
    Value::from(text)
}

pub(crate) fn dur(ms: f64) -> Value {
    Value::Duration(ms)
}

pub(crate) fn list(items: Vec<Value>) -> Value {
    Value::from(items)
}

/// Call native `name` with `args`, one per declared parameter (a variadic as one list).
pub(crate) fn call(name: &str, args: Vec<Value>) -> Result<Value, ValueError> {
    let (decl, f) = crate::natives()
        .into_iter()
        .find(|(d, _)| d.name == name)
        .unwrap_or_else(|| panic!("no native {name}"));
    f(&Args::new(&decl, &args))
}

/// The result's `repr()`: `display()` for everything but a top-level string, which
/// is quoted so that `"1"` and `1` differ.
#[track_caller]
pub(crate) fn ok(name: &str, args: Vec<Value>) -> String {
    match call(name, args) {
        Ok(v) => v.repr(),
        Err(e) => panic!("{name}: unexpected error: {}", e.message),
    }
}

#[track_caller]
pub(crate) fn err(name: &str, args: Vec<Value>) -> String {
    match call(name, args) {
        Ok(v) => panic!("{name}: expected an error, got {}", v.repr()),
        Err(e) => e.message,
    }
}
