//! Bytecode compiler and virtual machine for `.aether` scripts (issue 3, in increments).
//!
//! So far: the value model, the compiler for expressions, variables, control flow and
//! actions, and the interpreter loop. Not yet: workflows, `on_error`, concurrency, events,
//! modules; the compiler refuses those with a `not available yet` error.

pub mod compiler;
pub mod program;
pub mod value;
pub mod vm;

pub use compiler::{compile, CompileError};
pub use program::{Function, Instr, Program};
pub use value::{format_duration, format_float, Map, Value, ValueError};
pub use vm::{Budget, NativeFn, Vm, VmError, VmErrorKind};
