//! Bytecode compiler and virtual machine for `.aether` scripts.
//!
//! The compiler turns a checked syntax tree into a `Program` (instructions, constants, a
//! source map, workflow steps and `on_error` rules); the VM runs it as cooperative fibers
//! against a [`Host`] that provides the runtime modules.

// Operands are u16/u32: every narrowing goes through a checked conversion (the compiler
// reports a script too large to run) or states why it cannot truncate.
#![warn(clippy::cast_possible_truncation)]

pub mod compiler;
pub mod functions;
pub mod heap;
pub mod host;
pub mod program;
mod text;
pub mod value;
pub mod verify;
pub mod vm;

/// Unit tests count live bytes as the binary does, so the memory budget is exercised.
#[cfg(test)]
#[global_allocator]
static GLOBAL: heap::Counting<std::alloc::System> = heap::Counting(std::alloc::System);

pub use compiler::{compile, CompileError};
pub use functions::{Args, FnTable, Native, NativeFn};
pub use host::{
    ErrorClass, Event, EventSink, Host, HostCall, HostCx, HostError, HostFuture, NoHost, Task,
    TxFailure,
};
pub use program::{Function, Handler, Instr, Program, Step, WorkflowInfo};
pub use value::{format_duration, format_float, Map, Value, ValueError, JSON_MAX_DEPTH};
pub use verify::{verify, Verified, VerifyError, VerifyErrorKind};
pub use vm::{
    instant_after, wait_of_ms, Budget, Vm, VmError, VmErrorKind, MAX_TRANSACTION, MAX_WAIT,
};
