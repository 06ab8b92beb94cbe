//! Bytecode compiler and virtual machine for `.aether` scripts; so far the value model (issue 3).

pub mod value;

pub use value::{format_duration, format_float, Map, Value, ValueError};
