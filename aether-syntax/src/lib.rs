//! Front end of the `.aether` toolchain: tokens, layout, grammar, AST, spans and diagnostics.

pub mod ast;
pub mod diagnostic;
pub mod fmt;
pub mod lexer;
mod parser;
#[cfg(test)]
mod reference_scan;
pub mod rules;
pub mod span;
pub mod token;
pub mod visit;

pub use diagnostic::{Diagnostic, Label, ResultCode, Rule, Severity};
pub use parser::{parse, Parsed};
pub use span::{LineCol, LineIndex, Span};
