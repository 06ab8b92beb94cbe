//! Bytecode: the instruction set, and a compiled `Program` with its constant pool and source map.

use aether_syntax::ast::BinaryOp;
use aether_syntax::Span;

use crate::value::Value;

/// One instruction. Each doc line gives the stack effect, `[before] -> [after]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Instr {
    /// `[] -> [constants[idx]]`
    Const(u32),
    /// `[] -> [null]`
    Null,
    /// `[v] -> []`
    Pop,
    /// `[] -> [locals[slot]]`
    LoadLocal(u16),
    /// `[v] -> []`, `locals[slot] = v`
    StoreLocal(u16),
    /// `[] -> [globals[slot]]`; reading a global before its initialisation is an error.
    LoadGlobal(u16),
    /// `[v] -> []`, `globals[slot] = v`
    StoreGlobal(u16),
    /// `[a, b] -> [a op b]` (never `and`/`or`, which compile to jumps)
    Binary(BinaryOp),
    /// `[v] -> [not v]`
    Not,
    /// `[v] -> [-v]`
    Neg,
    /// `ip = target`
    Jump(u32),
    /// `[c] -> []`, jump when `c` is falsy
    JumpIfFalse(u32),
    /// `[c] -> [c]` and jump when `c` is falsy, else `[c] -> []` (for `and`)
    JumpIfFalseKeep(u32),
    /// `[c] -> [c]` and jump when `c` is truthy, else `[c] -> []` (for `or`)
    JumpIfTrueKeep(u32),
    /// `[v1 .. vn] -> [list]`
    MakeList(u32),
    /// `[k1, v1 .. kn, vn] -> [map]` (keys are strings)
    MakeMap(u32),
    /// `[target, index] -> [target[index]]`
    Index,
    /// `[target] -> [target.name]`, the name is `constants[idx]`
    GetField(u32),
    /// `[container, index, value] -> [container with container[index] = value]`
    SetIndex,
    /// `[container, value] -> [container with container.name = value]`
    SetField(u32),
    /// `[a1 .. an] -> [result]`: call action `func` with its parameters in order
    CallAction { func: u32, argc: u16 },
    /// `[a1 .. an] -> [result]`: call native `native` with arguments bound in declaration order
    CallNative { native: u32, argc: u16 },
    /// `[v] -> ...`: leave the current action (or the script) with `v`
    Return,
    /// `[iterable] -> [items, 0]`: a list's elements, a map's keys, a string's characters
    IterStart,
    /// `[items, i] -> [items, i + 1, items[i]]`, or pop both and jump when `i` is past the end
    IterNext(u32),
    /// `[c] -> []` or `[c, message] -> []`: fail with a RUNTIME_ERROR when `c` is falsy
    Assert { has_message: bool },
}

/// A compiled action (function 0 is the script's main body).
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub name: String,
    pub entry: u32,
    pub arity: u16,
    pub n_locals: u16,
}

/// A compiled script.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Program {
    pub code: Vec<Instr>,
    pub constants: Vec<Value>,
    /// `(ip, span)` for every instruction that can fail, in ip order.
    pub source_map: Vec<(u32, Span)>,
    pub functions: Vec<Function>,
    /// Names of the top-level variables, by global slot.
    pub globals: Vec<String>,
    /// Names of the native functions the code calls, by native index.
    pub natives: Vec<String>,
}

impl Program {
    /// The span of the instruction at `ip` (the nearest mapped instruction at or before it).
    pub fn span_at(&self, ip: u32) -> Option<Span> {
        let i = match self.source_map.binary_search_by_key(&ip, |(at, _)| *at) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        Some(self.source_map[i].1)
    }
}
