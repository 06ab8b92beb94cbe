//! Bytecode: the instruction set, and a compiled `Program` with its constant pool and source map.

use aether_syntax::ast::BinaryOp;
use aether_syntax::Span;

use crate::value::{Map, Value};

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
    /// `[] -> [locals[slot]]`, leaving null in the slot: the value on the stack is then
    /// the only reference, so the update that follows (`x = x + s`, `x[k] = v`,
    /// `x = append(x, v)`) happens in place instead of copying
    TakeLocal(u16),
    /// `[] -> [globals[slot]]`, leaving the slot empty (see `TakeLocal`)
    TakeGlobal(u16),
    /// `[list, v] -> [list with v appended]` (`append(list, v)` on an owned list)
    ListPush,
    /// `[a, b] -> [a op b]` (never `and`/`or`, which compile to jumps)
    Binary(BinaryOp),
    /// `[] -> [locals[slot] op constants[k]]`: `LoadLocal; Const; Binary` fused (the
    /// two originals follow it, for jumps that land on them; it skips them)
    BinLocalConst { slot: u16, k: u32, op: BinaryOp },
    /// `[] -> [locals[a] op locals[b]]`: `LoadLocal; LoadLocal; Binary` fused
    BinLocalLocal { a: u16, b: u16, op: BinaryOp },
    /// `[v] -> [v op constants[k]]`: `Const; Binary` fused
    BinConst { k: u32, op: BinaryOp },
    /// `[] -> []`: `LoadLocal; Const; Binary; JumpIfFalse` fused (a loop or `if` test);
    /// the jump target is read from the `JumpIfFalse` three instructions on
    LocalConstTest { slot: u16, k: u16, op: BinaryOp },
    /// `[] -> []`, `locals[dst] = locals[src] op constants[k]`: `LoadLocal; Const; Binary;
    /// StoreLocal` fused (`i = i + 1`)
    LocalConstStore {
        src: u16,
        k: u16,
        op: BinaryOp,
        dst: u16,
    },
    /// `[a, b] -> []`, jump to `target` when `a op b` is falsy: `Binary; JumpIfFalse` fused
    BinJumpIfFalse { op: BinaryOp, target: u32 },
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
    /// `[callee, a1 .. an] -> [result]`: call an action reference with positional
    /// arguments; parameters not given are passed as missing and take their defaults
    CallValue { argc: u16 },
    /// `ip = target` unless local `slot` holds the missing-argument marker (an action's
    /// prologue computes a default after it)
    JumpIfGiven { slot: u16, target: u32 },
    /// `[a1 .. an] -> [result]`: call function `func` of the function table (its
    /// [`FnId`](aether_check::decl::FnId)) with arguments bound in declaration order
    CallNative { func: u32, argc: u16 },
    /// `[v] -> ...`: leave the current action (or the script) with `v`
    Return,
    /// `[iterable] -> [items, 0]`: a list's elements, a map's keys, a string's characters
    IterStart,
    /// `[items, i] -> [items, i + 1, items[i]]`, or pop both and jump when `i` is past the end
    IterNext(u32),
    /// `[c] -> []` or `[c, message] -> []`: fail with a RUNTIME_ERROR when `c` is falsy
    Assert { has_message: bool },
    /// `[a1 .. an] -> [pending]`: start action `func` in a new fiber
    Spawn { func: u32, argc: u16 },
    /// `[v] -> [result]`: wait for a pending value (other values pass through)
    Await,
    /// `[d] -> []`: wait `d` (a duration, or a number of seconds)
    Sleep,
    /// `[] -> []` or `[payload] -> []`: add an `emit` record named `constants[name]`
    Emit { name: u32, has_payload: bool },
    /// `[] -> []`: open a transaction (host `begin`; events held)
    TxBegin,
    /// `[] -> []`: commit the innermost transaction (host `commit`; held events released)
    TxCommit,
    /// `[data] -> []`: submit task `constants[task]` with `data` (a map) to the kernel
    Trigger { task: u32 },
    /// `[a1 .. an] -> [result]`: run workflow step `step` (function `func`) with its
    /// retry, backoff, timeout and capability settings
    RunStep { step: u32, argc: u16 },
    /// `[] -> [result]`: run workflow `workflow`; with `if_not_run`, only when the main
    /// body did not already call it (then `[] -> [null]`)
    CallWorkflow { workflow: u32, if_not_run: bool },
    /// `[v] -> [locals[slot] op v]`: the compiler's form of `x op e` for a local `x` and an
    /// `e` that is neither a constant nor a local (`total + i * 3`). It reads the local
    /// after `e` is evaluated, which cannot change it: an expression never assigns a local
    /// and a call's frame cannot reach its caller's.
    LocalBinary { slot: u16, op: BinaryOp },
    /// `[v] -> []`, `locals[dst] = v op constants[k]`: `Const; Binary; StoreLocal` fused
    /// (`total = (...) % K`)
    BinConstStore { k: u32, op: BinaryOp, dst: u16 },
    /// `ip = target`, a jump back to a `LocalConstTest` or `LtLocalConst` (a `while`
    /// loop's test), and that test at once: `Jump; LocalConstTest` fused (the budget is
    /// checked between the two)
    JumpBackTest(u32),
    /// `[] -> ...`: `LoadLocal(slot); Return` fused (`return n`): leave the current action
    /// with the value of local `slot`, moved rather than copied (the frame ends)
    ReturnLocal(u16),
    /// `LocalConstStore` with `+` (`i = i + 1`, `n = n + K`): the operator is the
    /// instruction's, so the int path has no second match on it (Lua's `OP_ADDK`)
    AddLocalConst { src: u16, k: u16, dst: u16 },
    /// `LocalConstTest` with `<` (`while i < N`), the operator the instruction's: the
    /// jump target is read from the `JumpIfFalse` three instructions on (Lua's `OP_LT`
    /// followed by its jump)
    LtLocalConst { slot: u16, k: u16 },
    /// `[a, b] -> ...`: `Binary(op); Return` fused (`return f(n - 1) + f(n - 2)`): leave
    /// the current action with `a op b` (never `and`/`or`)
    ReturnBinary(BinaryOp),
}

/// A compiled action (function 0 is the script's main body).
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub name: String,
    pub entry: u32,
    pub arity: u16,
    /// Parameters up to the last one without a default (a call through a reference must
    /// give at least these).
    pub required: u16,
    pub n_locals: u16,
    /// Parameter names, for calls by keyword at run time (kernel tasks).
    pub params: Vec<String>,
    /// Whether this is a user action (tasks may call actions only).
    pub is_action: bool,
}

/// A workflow step's settings (docs/contract/LANGUAGE.md section 5).
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The function that makes the step's call, given the captured variables.
    pub func: u32,
    /// The call as written, for messages and events (`fetch(url)`).
    pub label: String,
    /// Further attempts after a failure.
    pub retry: u32,
    /// The wait before the first retry (doubling after each further failure), in ms.
    pub backoff_ms: f64,
    /// The time one attempt may take, in ms.
    pub timeout_ms: Option<f64>,
    /// Capabilities checked before the step runs.
    pub requires: Vec<String>,
    pub span: Span,
}

/// A compiled workflow block.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowInfo {
    pub name: Option<String>,
    pub func: u32,
    pub span: Span,
}

/// A compiled `on_error` rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Handler {
    /// The error kind after `when:` (a code name or alias).
    pub kind: String,
    /// A function of one parameter, `error`, that makes the `do:` call.
    pub func: u32,
    pub span: Span,
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
    pub steps: Vec<Step>,
    pub workflows: Vec<WorkflowInfo>,
    pub handlers: Vec<Handler>,
    /// The `policy:` block's settings.
    pub policy: Map,
    /// What the script declares it needs: `require: capabilities:` entries and the module
    /// names of `meta:`/`metadata: requires:` (a module name grants all its capabilities).
    pub capabilities: Vec<String>,
}

impl Program {
    /// Fuse common instruction sequences into one instruction each. A fused instruction
    /// replaces the first of its sequence and skips the rest, which stay in place, so a
    /// jump into the middle of a sequence still finds the original instructions.
    pub fn fuse(&mut self) {
        let original = self.code.clone();
        let binary = |i: &Instr| match i {
            Instr::Binary(op) if !matches!(op, BinaryOp::And | BinaryOp::Or) => Some(*op),
            _ => None,
        };
        for ip in 0..original.len() {
            let next = |n: usize| original.get(ip + n);
            let small = |k: &u32| u16::try_from(*k).ok();
            let fused = match (next(0), next(1), next(2), next(3)) {
                (
                    Some(Instr::LoadLocal(slot)),
                    Some(Instr::Const(k)),
                    Some(b),
                    Some(Instr::JumpIfFalse(_)),
                ) if binary(b).is_some() && small(k).is_some() => {
                    let (op, k) = (binary(b).expect("checked"), small(k).expect("checked"));
                    Some(match op {
                        BinaryOp::Lt => Instr::LtLocalConst { slot: *slot, k },
                        op => Instr::LocalConstTest { slot: *slot, k, op },
                    })
                }
                (
                    Some(Instr::LoadLocal(src)),
                    Some(Instr::Const(k)),
                    Some(b),
                    Some(Instr::StoreLocal(dst)),
                ) if binary(b).is_some() && small(k).is_some() => {
                    let (op, k) = (binary(b).expect("checked"), small(k).expect("checked"));
                    Some(match op {
                        BinaryOp::Add => Instr::AddLocalConst {
                            src: *src,
                            k,
                            dst: *dst,
                        },
                        op => Instr::LocalConstStore {
                            src: *src,
                            k,
                            op,
                            dst: *dst,
                        },
                    })
                }
                _ => None,
            };
            if let Some(instr) = fused {
                self.code[ip] = instr;
                continue;
            }
            let fused = match (next(0), next(1), next(2)) {
                (Some(Instr::Const(k)), Some(b), Some(Instr::StoreLocal(dst)))
                    if binary(b).is_some() =>
                {
                    binary(b).map(|op| Instr::BinConstStore {
                        k: *k,
                        op,
                        dst: *dst,
                    })
                }
                (Some(Instr::LoadLocal(slot)), Some(Instr::Const(k)), Some(b))
                    if binary(b).is_some() =>
                {
                    binary(b).map(|op| Instr::BinLocalConst {
                        slot: *slot,
                        k: *k,
                        op,
                    })
                }
                (Some(Instr::LoadLocal(a)), Some(Instr::LoadLocal(b)), Some(bin))
                    if binary(bin).is_some() =>
                {
                    binary(bin).map(|op| Instr::BinLocalLocal { a: *a, b: *b, op })
                }
                (Some(Instr::Const(k)), Some(b), _) if binary(b).is_some() => {
                    binary(b).map(|op| Instr::BinConst { k: *k, op })
                }
                (Some(b), Some(Instr::JumpIfFalse(target)), _) if binary(b).is_some() => binary(b)
                    .map(|op| Instr::BinJumpIfFalse {
                        op,
                        target: *target,
                    }),
                _ => None,
            };
            if let Some(instr) = fused {
                self.code[ip] = instr;
            }
        }
        // A jump back to a loop's fused test (its `Jump` is never part of a sequence
        // fused above, so the original is still in place).
        for ip in 0..self.code.len() {
            if let Instr::Jump(t) = self.code[ip] {
                let back = (t as usize) < ip;
                let test = matches!(
                    self.code.get(t as usize),
                    Some(Instr::LocalConstTest { .. } | Instr::LtLocalConst { .. })
                );
                if back && test {
                    self.code[ip] = Instr::JumpBackTest(t);
                }
            }
        }
        self.fuse_returns(&original);
    }

    /// Fuse the call path's sequences (`return local`, `return a op b`), as
    /// [`Program::fuse`] does.
    fn fuse_returns(&mut self, original: &[Instr]) {
        // `ReturnBinary` leaves its result in the frame's first slot after taking both
        // operands: a frame without locals has no such slot (the verifier refuses it there),
        // so the pair stays unfused in an action without parameters or locals.
        let mut entries: Vec<(u32, u16)> = self
            .functions
            .iter()
            .map(|f| (f.entry, f.n_locals))
            .collect();
        entries.sort_unstable();
        let has_locals = |ip: usize| {
            let i = entries.partition_point(|(entry, _)| *entry as usize <= ip);
            i.checked_sub(1).is_some_and(|i| entries[i].1 > 0)
        };
        for (ip, pair) in original.windows(2).enumerate() {
            match pair {
                [Instr::LoadLocal(slot), Instr::Return] => {
                    self.code[ip] = Instr::ReturnLocal(*slot);
                }
                // Only a `Binary` no other sequence starts with (a `Binary` followed by a
                // `Return` never begins one; the check keeps it so).
                [Instr::Binary(op), Instr::Return]
                    if !matches!(op, BinaryOp::And | BinaryOp::Or)
                        && self.code[ip] == Instr::Binary(*op)
                        && has_locals(ip) =>
                {
                    self.code[ip] = Instr::ReturnBinary(*op);
                }
                _ => {}
            }
        }
    }

    /// The global slot of top-level variable `name`, if the script has one.
    pub fn global_slot(&self, name: &str) -> Option<usize> {
        self.globals.iter().position(|g| g == name)
    }

    /// Whether the script's declarations grant `capability` (`memory.write` is granted by
    /// itself or by the module name `memory`).
    pub fn grants(&self, capability: &str) -> bool {
        let module = capability.split('.').next().unwrap_or(capability);
        self.capabilities
            .iter()
            .any(|c| c == capability || c == module)
    }

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
