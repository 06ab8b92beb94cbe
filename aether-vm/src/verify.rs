//! The bytecode verifier: run once per program before any of it executes ([`crate::Vm::new`]
//! runs it; a program it refuses is never executed). What it proves is what the execution
//! loop reads without bounds checks:
//!
//! - every instruction a function can reach from its entry is inside `code`, and so is
//!   every jump target and every instruction a fused instruction reads or skips to (the
//!   `JumpIfFalse` three on from a fused test);
//! - every constant index is below `constants.len()`;
//! - every local slot is below the function's `n_locals`;
//! - the operand stack (the values above the frame's locals) never goes below empty, and
//!   has one depth at each instruction, whatever the path to it: so while a frame runs,
//!   the fiber's stack holds at least `base + n_locals` values and every local slot read
//!   `stack[base + slot]` is in bounds;
//! - every function, global, step and workflow index names one that exists;
//! - a fused `ReturnBinary` is only in a function with a local slot (its result's);
//! - every jump back is a `Jump` or a `JumpBackTest`, which check the step budget and the
//!   clock, so every loop does (a conditional jump back would loop past `max_steps`).
//!
//! It also works out each function's largest operand stack depth.

use std::fmt;

use crate::program::{Instr, Program};

/// Why a program was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The function whose code was being checked, if the problem is in code.
    pub func: Option<u32>,
    /// The instruction, if the problem is in one.
    pub ip: Option<u32>,
    pub kind: VerifyErrorKind,
}

/// What was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyErrorKind {
    /// The program has no function 0 (the main body).
    NoMainFunction,
    /// An instruction index (an entry, a jump target, the next instruction) past the end.
    CodeOutOfRange {
        target: u64,
    },
    /// A fused test not followed, three on, by the `JumpIfFalse` it reads.
    MissingJump,
    ConstantOutOfRange {
        index: u32,
    },
    LocalOutOfRange {
        slot: u16,
        n_locals: u16,
    },
    GlobalOutOfRange {
        slot: u16,
    },
    FunctionOutOfRange {
        func: u32,
    },
    StepOutOfRange {
        step: u32,
    },
    WorkflowOutOfRange {
        workflow: u32,
    },
    /// An instruction pops more values than the operand stack holds there.
    StackUnderflow {
        depth: u32,
        needs: u64,
    },
    /// Two paths reach one instruction with different operand stack depths.
    StackMismatch {
        depth: u32,
        other: u32,
    },
    /// An operand stack deeper than the verifier tracks (`u32::MAX`).
    StackTooDeep,
    /// A jump back (or to itself) by an instruction other than `Jump` and `JumpBackTest`,
    /// the two that check the step budget and the clock.
    BackwardJump {
        target: u64,
    },
    /// A `ReturnBinary` in a function without locals: its result goes to the frame's
    /// first slot, which such a frame does not have.
    NoResultSlot,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid bytecode")?;
        if let Some(func) = self.func {
            write!(f, " in function {func}")?;
        }
        if let Some(ip) = self.ip {
            write!(f, " at instruction {ip}")?;
        }
        write!(f, ": ")?;
        match &self.kind {
            VerifyErrorKind::NoMainFunction => write!(f, "no main function"),
            VerifyErrorKind::CodeOutOfRange { target } => {
                write!(f, "instruction index {target} is past the end of the code")
            }
            VerifyErrorKind::MissingJump => {
                write!(f, "a fused test is not followed by its JumpIfFalse")
            }
            VerifyErrorKind::ConstantOutOfRange { index } => {
                write!(f, "constant {index} does not exist")
            }
            VerifyErrorKind::LocalOutOfRange { slot, n_locals } => {
                write!(f, "local slot {slot} is not below the frame's {n_locals}")
            }
            VerifyErrorKind::GlobalOutOfRange { slot } => write!(f, "global {slot} does not exist"),
            VerifyErrorKind::FunctionOutOfRange { func } => {
                write!(f, "function {func} does not exist")
            }
            VerifyErrorKind::StepOutOfRange { step } => write!(f, "step {step} does not exist"),
            VerifyErrorKind::WorkflowOutOfRange { workflow } => {
                write!(f, "workflow {workflow} does not exist")
            }
            VerifyErrorKind::StackUnderflow { depth, needs } => write!(
                f,
                "the instruction takes {needs} values from an operand stack of {depth}"
            ),
            VerifyErrorKind::StackMismatch { depth, other } => write!(
                f,
                "the operand stack is {depth} deep on one path here and {other} on another"
            ),
            VerifyErrorKind::StackTooDeep => write!(f, "the operand stack is too deep"),
            VerifyErrorKind::BackwardJump { target } => write!(
                f,
                "a jump back to {target} that does not check the step budget"
            ),
            VerifyErrorKind::NoResultSlot => {
                write!(f, "a fused return in a frame without a slot for its result")
            }
        }
    }
}

impl std::error::Error for VerifyError {}

/// What a verified program's functions need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// The largest operand stack depth of each function (above its locals).
    pub max_stack: Vec<u32>,
}

/// Check `program` (see the module documentation).
pub fn verify(program: &Program) -> Result<Verified, VerifyError> {
    let top = |kind| VerifyError {
        func: None,
        ip: None,
        kind,
    };
    if program.functions.is_empty() {
        return Err(top(VerifyErrorKind::NoMainFunction));
    }
    let n_funcs = program.functions.len();
    let func_ok = |func: u32| (func as usize) < n_funcs;
    for s in &program.steps {
        if !func_ok(s.func) {
            return Err(top(VerifyErrorKind::FunctionOutOfRange { func: s.func }));
        }
    }
    for w in &program.workflows {
        if !func_ok(w.func) {
            return Err(top(VerifyErrorKind::FunctionOutOfRange { func: w.func }));
        }
    }
    for h in &program.handlers {
        if !func_ok(h.func) {
            return Err(top(VerifyErrorKind::FunctionOutOfRange { func: h.func }));
        }
    }
    // One depth table for all functions: an entry is reset after the function that set it.
    let mut depth: Vec<Option<u32>> = vec![None; program.code.len()];
    let mut max_stack = Vec::with_capacity(n_funcs);
    for func in 0..n_funcs {
        let func = u32::try_from(func).map_err(|_| top(VerifyErrorKind::StackTooDeep))?;
        max_stack.push(Function::new(program, func, &mut depth).run()?);
    }
    Ok(Verified { max_stack })
}

/// The check of one function's reachable code.
struct Function<'a> {
    program: &'a Program,
    func: u32,
    n_locals: u16,
    depth: &'a mut Vec<Option<u32>>,
    visited: Vec<usize>,
    work: Vec<usize>,
    max: u32,
}

impl<'a> Function<'a> {
    fn new(program: &'a Program, func: u32, depth: &'a mut Vec<Option<u32>>) -> Self {
        Function {
            program,
            func,
            n_locals: program.functions[func as usize].n_locals,
            depth,
            visited: Vec::new(),
            work: Vec::new(),
            max: 0,
        }
    }

    fn err(&self, ip: Option<usize>, kind: VerifyErrorKind) -> VerifyError {
        VerifyError {
            func: Some(self.func),
            ip: ip.and_then(|ip| u32::try_from(ip).ok()),
            kind,
        }
    }

    fn run(mut self) -> Result<u32, VerifyError> {
        let entry = self.program.functions[self.func as usize].entry;
        let res = self.flow(None, u64::from(entry), 0);
        let res = res.and_then(|()| {
            while let Some(ip) = self.work.pop() {
                self.step(ip)?;
            }
            Ok(self.max)
        });
        for ip in std::mem::take(&mut self.visited) {
            self.depth[ip] = None;
        }
        res
    }

    /// Control reaches `target` with `depth` values on the operand stack.
    fn flow(&mut self, from: Option<usize>, target: u64, depth: u32) -> Result<(), VerifyError> {
        let ip = usize::try_from(target)
            .ok()
            .filter(|ip| *ip < self.program.code.len())
            .ok_or_else(|| self.err(from, VerifyErrorKind::CodeOutOfRange { target }))?;
        match self.depth[ip] {
            Some(d) if d == depth => Ok(()),
            Some(other) => Err(self.err(Some(ip), VerifyErrorKind::StackMismatch { depth, other })),
            None => {
                self.depth[ip] = Some(depth);
                self.visited.push(ip);
                self.work.push(ip);
                self.max = self.max.max(depth);
                Ok(())
            }
        }
    }

    /// An edge from `ip` that does not check the step budget: it must go forward, so that
    /// every loop passes a `Jump` or `JumpBackTest` back (which check it) or a call, and
    /// `max_steps` and the clock stop any program.
    fn edge(&mut self, ip: usize, target: u64, depth: u32) -> Result<(), VerifyError> {
        if target <= ip as u64 {
            return Err(self.err(Some(ip), VerifyErrorKind::BackwardJump { target }));
        }
        self.flow(Some(ip), target, depth)
    }

    fn local(&self, ip: usize, slot: u16) -> Result<(), VerifyError> {
        if slot < self.n_locals {
            Ok(())
        } else {
            let n_locals = self.n_locals;
            Err(self.err(
                Some(ip),
                VerifyErrorKind::LocalOutOfRange { slot, n_locals },
            ))
        }
    }

    fn constant(&self, ip: usize, index: u32) -> Result<(), VerifyError> {
        if (index as usize) < self.program.constants.len() {
            Ok(())
        } else {
            Err(self.err(Some(ip), VerifyErrorKind::ConstantOutOfRange { index }))
        }
    }

    fn function(&self, ip: usize, func: u32) -> Result<(), VerifyError> {
        if (func as usize) < self.program.functions.len() {
            Ok(())
        } else {
            Err(self.err(Some(ip), VerifyErrorKind::FunctionOutOfRange { func }))
        }
    }

    fn global(&self, ip: usize, slot: u16) -> Result<(), VerifyError> {
        if (slot as usize) < self.program.globals.len() {
            Ok(())
        } else {
            Err(self.err(Some(ip), VerifyErrorKind::GlobalOutOfRange { slot }))
        }
    }

    /// The `JumpIfFalse` target three on from the fused test at `at`.
    fn test_exit(&self, at: usize) -> Result<u32, VerifyError> {
        match self.program.code.get(at + 3) {
            Some(Instr::JumpIfFalse(t)) => Ok(*t),
            _ => Err(self.err(Some(at), VerifyErrorKind::MissingJump)),
        }
    }

    /// The operands of the fused test at `at` (a `JumpBackTest` target or the test itself).
    fn fused_test(&self, at: usize, slot: u16, k: u16) -> Result<u32, VerifyError> {
        self.local(at, slot)?;
        self.constant(at, u32::from(k))?;
        self.test_exit(at)
    }

    fn step(&mut self, ip: usize) -> Result<(), VerifyError> {
        let d = self.depth[ip].expect("queued instructions have a depth");
        let instr = self.program.code[ip];
        let next = ip as u64 + 1;
        // The values `instr` takes: more than the operand stack holds is refused.
        let pop = |this: &Self, n: u64| -> Result<u32, VerifyError> {
            u32::try_from(n)
                .ok()
                .and_then(|n| d.checked_sub(n))
                .ok_or_else(|| {
                    this.err(
                        Some(ip),
                        VerifyErrorKind::StackUnderflow { depth: d, needs: n },
                    )
                })
        };
        let push = |this: &Self, base: u32, n: u32| -> Result<u32, VerifyError> {
            base.checked_add(n)
                .ok_or_else(|| this.err(Some(ip), VerifyErrorKind::StackTooDeep))
        };
        match instr {
            Instr::Const(k) => {
                self.constant(ip, k)?;
                let d = push(self, d, 1)?;
                self.edge(ip, next, d)
            }
            Instr::Null => {
                let d = push(self, d, 1)?;
                self.edge(ip, next, d)
            }
            Instr::Pop | Instr::Sleep => {
                let d = pop(self, 1)?;
                self.edge(ip, next, d)
            }
            Instr::Trigger { task } => {
                self.constant(ip, task)?;
                let d = pop(self, 1)?;
                self.edge(ip, next, d)
            }
            Instr::LoadLocal(slot) | Instr::TakeLocal(slot) => {
                self.local(ip, slot)?;
                let d = push(self, d, 1)?;
                self.edge(ip, next, d)
            }
            Instr::StoreLocal(slot) => {
                self.local(ip, slot)?;
                let d = pop(self, 1)?;
                self.edge(ip, next, d)
            }
            Instr::LoadGlobal(slot) | Instr::TakeGlobal(slot) => {
                self.global(ip, slot)?;
                let d = push(self, d, 1)?;
                self.edge(ip, next, d)
            }
            Instr::StoreGlobal(slot) => {
                self.global(ip, slot)?;
                let d = pop(self, 1)?;
                self.edge(ip, next, d)
            }
            Instr::ListPush | Instr::Binary(_) | Instr::Index | Instr::SetField(_) => {
                if let Instr::SetField(k) = instr {
                    self.constant(ip, k)?;
                }
                let d = push(self, pop(self, 2)?, 1)?;
                self.edge(ip, next, d)
            }
            Instr::SetIndex => {
                let d = push(self, pop(self, 3)?, 1)?;
                self.edge(ip, next, d)
            }
            Instr::Not | Instr::Neg | Instr::Await | Instr::GetField(_) => {
                if let Instr::GetField(k) = instr {
                    self.constant(ip, k)?;
                }
                let d = push(self, pop(self, 1)?, 1)?;
                self.edge(ip, next, d)
            }
            Instr::BinLocalConst { slot, k, .. } => {
                self.local(ip, slot)?;
                self.constant(ip, k)?;
                let d = push(self, d, 1)?;
                self.edge(ip, next + 2, d)
            }
            Instr::BinLocalLocal { a, b, .. } => {
                self.local(ip, a)?;
                self.local(ip, b)?;
                let d = push(self, d, 1)?;
                self.edge(ip, next + 2, d)
            }
            Instr::BinConst { k, .. } => {
                self.constant(ip, k)?;
                let d = push(self, pop(self, 1)?, 1)?;
                self.edge(ip, next + 1, d)
            }
            Instr::LocalConstTest { slot, k, .. } | Instr::LtLocalConst { slot, k } => {
                let exit = self.fused_test(ip, slot, k)?;
                self.edge(ip, next + 3, d)?;
                self.edge(ip, u64::from(exit), d)
            }
            Instr::LocalConstStore { src, k, dst, .. } | Instr::AddLocalConst { src, k, dst } => {
                self.local(ip, src)?;
                self.local(ip, dst)?;
                self.constant(ip, u32::from(k))?;
                self.edge(ip, next + 3, d)
            }
            Instr::BinJumpIfFalse { target, .. } => {
                let d = pop(self, 2)?;
                self.edge(ip, next + 1, d)?;
                self.edge(ip, u64::from(target), d)
            }
            Instr::LocalBinary { slot, .. } => {
                self.local(ip, slot)?;
                let d = push(self, pop(self, 1)?, 1)?;
                self.edge(ip, next, d)
            }
            Instr::BinConstStore { k, dst, .. } => {
                self.constant(ip, k)?;
                self.local(ip, dst)?;
                let d = pop(self, 1)?;
                self.edge(ip, next + 2, d)
            }
            Instr::JumpBackTest(t) => {
                let at = t as usize;
                match self.program.code.get(at) {
                    Some(
                        Instr::LocalConstTest { slot, k, .. } | Instr::LtLocalConst { slot, k },
                    ) => {
                        let exit = self.fused_test(at, *slot, *k)?;
                        // The test itself is where the budget check may stop the fiber.
                        self.flow(Some(ip), u64::from(t), d)?;
                        self.flow(Some(ip), u64::from(t) + 4, d)?;
                        self.flow(Some(ip), u64::from(exit), d)
                    }
                    _ => self.flow(Some(ip), u64::from(t), d),
                }
            }
            Instr::Jump(t) => self.flow(Some(ip), u64::from(t), d),
            Instr::JumpIfFalse(t) => {
                let d = pop(self, 1)?;
                self.edge(ip, next, d)?;
                self.edge(ip, u64::from(t), d)
            }
            Instr::JumpIfFalseKeep(t) | Instr::JumpIfTrueKeep(t) => {
                let rest = pop(self, 1)?;
                self.edge(ip, next, rest)?;
                self.edge(ip, u64::from(t), d)
            }
            Instr::JumpIfGiven { slot, target } => {
                self.local(ip, slot)?;
                self.edge(ip, next, d)?;
                self.edge(ip, u64::from(target), d)
            }
            Instr::MakeList(n) => {
                let d = push(self, pop(self, u64::from(n))?, 1)?;
                self.edge(ip, next, d)
            }
            Instr::MakeMap(n) => {
                let d = push(self, pop(self, 2 * u64::from(n))?, 1)?;
                self.edge(ip, next, d)
            }
            Instr::CallAction { func, argc } | Instr::Spawn { func, argc } => {
                self.function(ip, func)?;
                let d = push(self, pop(self, u64::from(argc))?, 1)?;
                self.edge(ip, next, d)
            }
            Instr::CallValue { argc } => {
                let d = push(self, pop(self, u64::from(argc) + 1)?, 1)?;
                self.edge(ip, next, d)
            }
            // The function id is checked against the run's table when it is called.
            Instr::CallNative { argc, .. } => {
                let d = push(self, pop(self, u64::from(argc))?, 1)?;
                self.edge(ip, next, d)
            }
            Instr::RunStep { step, argc } => {
                if step as usize >= self.program.steps.len() {
                    return Err(self.err(Some(ip), VerifyErrorKind::StepOutOfRange { step }));
                }
                let d = push(self, pop(self, u64::from(argc))?, 1)?;
                self.edge(ip, next, d)
            }
            Instr::CallWorkflow { workflow, .. } => {
                if workflow as usize >= self.program.workflows.len() {
                    let kind = VerifyErrorKind::WorkflowOutOfRange { workflow };
                    return Err(self.err(Some(ip), kind));
                }
                let d = push(self, d, 1)?;
                self.edge(ip, next, d)
            }
            Instr::Return => pop(self, 1).map(|_| ()),
            Instr::ReturnBinary(_) if self.n_locals == 0 => {
                Err(self.err(Some(ip), VerifyErrorKind::NoResultSlot))
            }
            Instr::ReturnBinary(_) => pop(self, 2).map(|_| ()),
            Instr::ReturnLocal(slot) => self.local(ip, slot),
            Instr::IterStart => {
                let d = push(self, pop(self, 1)?, 2)?;
                self.edge(ip, next, d)
            }
            Instr::IterNext(exit) => {
                let rest = pop(self, 2)?;
                self.edge(ip, next, push(self, d, 1)?)?;
                self.edge(ip, u64::from(exit), rest)
            }
            Instr::Assert { has_message } => {
                let d = pop(self, 1 + u64::from(has_message))?;
                self.edge(ip, next, d)
            }
            Instr::Emit { name, has_payload } => {
                self.constant(ip, name)?;
                let d = pop(self, u64::from(has_payload))?;
                self.edge(ip, next, d)
            }
            Instr::TxBegin | Instr::TxCommit => self.edge(ip, next, d),
        }
    }
}
