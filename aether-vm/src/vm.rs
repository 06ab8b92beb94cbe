//! The interpreter: runs a `Program` on a value stack, with call frames, a step budget and
//! a call-depth limit. Output goes to an injected writer, never straight to stdout.

use std::io::Write;

use aether_syntax::ast::BinaryOp;
use aether_syntax::Span;

use crate::program::{Instr, Program};
use crate::value::{Map, Value, ValueError};

/// A native function: one argument per declared parameter, in declaration order, defaults
/// filled in and a variadic rest parameter as one list.
pub type NativeFn = fn(&[Value]) -> Result<Value, ValueError>;

/// Why a run stopped with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmErrorKind {
    /// RUNTIME_ERROR
    Runtime,
    /// TIMEOUT_ERROR: the step budget ran out.
    Budget,
}

/// A run-time error with where it happened and the action frames it unwound.
#[derive(Clone, Debug, PartialEq)]
pub struct VmError(Box<VmErrorData>);

#[derive(Clone, Debug, PartialEq)]
pub struct VmErrorData {
    pub kind: VmErrorKind,
    pub message: String,
    pub span: Option<Span>,
    /// Innermost first: (action name, call site span).
    pub trace: Vec<(String, Option<Span>)>,
}

impl VmError {
    pub fn kind(&self) -> VmErrorKind {
        self.0.kind
    }
    pub fn message(&self) -> &str {
        &self.0.message
    }
    pub fn span(&self) -> Option<Span> {
        self.0.span
    }
    pub fn trace(&self) -> &[(String, Option<Span>)] {
        &self.0.trace
    }
}

/// Limits of one run.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Instructions the run may execute (`policy: max_steps`); `None` is unlimited.
    pub max_steps: Option<u64>,
    /// Nested calls allowed (default 256); every call counts.
    pub max_depth: usize,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            max_steps: None,
            max_depth: 256,
        }
    }
}

struct Frame {
    func: usize,
    ip: usize,
    base: usize,
}

enum Native {
    Print,
    Fn(NativeFn),
    Missing(String),
}

/// One run of a program.
pub struct Vm<'p, W: Write> {
    program: &'p Program,
    natives: Vec<Native>,
    stack: Vec<Value>,
    frames: Vec<Frame>,
    globals: Vec<Option<Value>>,
    out: W,
    budget: Budget,
    steps: u64,
}

impl<'p, W: Write> Vm<'p, W> {
    /// Prepare a run; `natives` maps global function names to implementations (`print`
    /// is built in, writing to `out`).
    pub fn new(program: &'p Program, natives: &[(&str, NativeFn)], out: W, budget: Budget) -> Self {
        let natives = program
            .natives
            .iter()
            .map(|name| match natives.iter().find(|(n, _)| n == name) {
                _ if name == "print" => Native::Print,
                Some((_, f)) => Native::Fn(*f),
                None => Native::Missing(name.clone()),
            })
            .collect();
        Vm {
            program,
            natives,
            stack: Vec::with_capacity(256),
            frames: Vec::new(),
            globals: vec![None; program.globals.len()],
            out,
            budget,
            steps: 0,
        }
    }

    /// The writer, for callers that captured output.
    pub fn into_output(self) -> W {
        self.out
    }

    fn error(&self, kind: VmErrorKind, message: impl Into<String>) -> VmError {
        let span_of = |f: &Frame| self.program.span_at(f.ip.saturating_sub(1) as u32);
        let span = self.frames.last().and_then(span_of);
        let mut trace = Vec::new();
        for (i, f) in self.frames.iter().enumerate().rev() {
            if f.func == 0 {
                continue;
            }
            let call_site = i.checked_sub(1).and_then(|j| span_of(&self.frames[j]));
            trace.push((self.program.functions[f.func].name.clone(), call_site));
        }
        VmError(Box::new(VmErrorData {
            kind,
            message: message.into(),
            span,
            trace,
        }))
    }

    fn pop(&mut self) -> Value {
        self.stack
            .pop()
            .expect("the compiler keeps the stack balanced")
    }

    fn enter(&mut self, func: usize, argc: usize) -> Result<(), VmError> {
        if self.frames.len() > self.budget.max_depth {
            return Err(self.error(
                VmErrorKind::Runtime,
                format!("call depth limit of {} exceeded", self.budget.max_depth),
            ));
        }
        let f = &self.program.functions[func];
        let base = self.stack.len() - argc;
        for _ in argc..f.n_locals as usize {
            self.stack.push(Value::Null);
        }
        self.frames.push(Frame {
            func,
            ip: f.entry as usize,
            base,
        });
        Ok(())
    }

    /// Run the main body to its end; the result is the value of a top-level `return`, or null.
    pub fn run(&mut self) -> Result<Value, VmError> {
        self.enter(0, 0)?;
        loop {
            self.steps += 1;
            if self.budget.max_steps.is_some_and(|max| self.steps > max) {
                return Err(self.error(
                    VmErrorKind::Budget,
                    "step budget exhausted (policy max_steps)",
                ));
            }
            let frame = self.frames.last_mut().expect("a frame is running");
            let instr = self.program.code[frame.ip];
            frame.ip += 1;
            let base = frame.base;
            let fail = |vm: &Self, e: ValueError| vm.error(VmErrorKind::Runtime, e.message);
            match instr {
                Instr::Const(k) => self.stack.push(self.program.constants[k as usize].clone()),
                Instr::Null => self.stack.push(Value::Null),
                Instr::Pop => {
                    self.pop();
                }
                Instr::LoadLocal(slot) => self.stack.push(self.stack[base + slot as usize].clone()),
                Instr::StoreLocal(slot) => {
                    let v = self.pop();
                    self.stack[base + slot as usize] = v;
                }
                Instr::LoadGlobal(slot) => match &self.globals[slot as usize] {
                    Some(v) => self.stack.push(v.clone()),
                    None => {
                        let name = &self.program.globals[slot as usize];
                        return Err(self.error(
                            VmErrorKind::Runtime,
                            format!("top-level variable `{name}` is read before it is initialised"),
                        ));
                    }
                },
                Instr::StoreGlobal(slot) => {
                    let v = self.pop();
                    self.globals[slot as usize] = Some(v);
                }
                Instr::Binary(op) => {
                    let b = self.pop();
                    let a = self.pop();
                    // Fast path: int with int, the common case of loops and counters. An
                    // overflow falls through to `Value`'s checked operations for its message.
                    if let (Value::Int(x), Value::Int(y)) = (&a, &b) {
                        let (x, y) = (*x, *y);
                        let quick = match op {
                            BinaryOp::Add => x.checked_add(y).map(Value::Int),
                            BinaryOp::Sub => x.checked_sub(y).map(Value::Int),
                            BinaryOp::Mul => x.checked_mul(y).map(Value::Int),
                            BinaryOp::Rem if y != 0 => Some(Value::Int(x.wrapping_rem(y))),
                            BinaryOp::Lt => Some(Value::Bool(x < y)),
                            BinaryOp::Le => Some(Value::Bool(x <= y)),
                            BinaryOp::Gt => Some(Value::Bool(x > y)),
                            BinaryOp::Ge => Some(Value::Bool(x >= y)),
                            BinaryOp::Eq => Some(Value::Bool(x == y)),
                            BinaryOp::NotEq => Some(Value::Bool(x != y)),
                            _ => None,
                        };
                        if let Some(v) = quick {
                            self.stack.push(v);
                            continue;
                        }
                    }
                    let res = match op {
                        BinaryOp::Add => a.add(&b),
                        BinaryOp::Sub => a.sub(&b),
                        BinaryOp::Mul => a.mul(&b),
                        BinaryOp::Div => a.div(&b),
                        BinaryOp::Rem => a.rem(&b),
                        BinaryOp::Eq => Ok(Value::Bool(a == b)),
                        BinaryOp::NotEq => Ok(Value::Bool(a != b)),
                        BinaryOp::Lt => a.lt(&b).map(Value::Bool),
                        BinaryOp::Le => a.le(&b).map(Value::Bool),
                        BinaryOp::Gt => a.gt(&b).map(Value::Bool),
                        BinaryOp::Ge => a.ge(&b).map(Value::Bool),
                        BinaryOp::In => a.is_in(&b).map(Value::Bool),
                        BinaryOp::NotIn => a.is_in(&b).map(|x| Value::Bool(!x)),
                        BinaryOp::And | BinaryOp::Or => unreachable!("compiled to jumps"),
                    };
                    self.stack.push(res.map_err(|e| fail(self, e))?);
                }
                Instr::Not => {
                    let v = self.pop();
                    self.stack.push(Value::Bool(!v.is_truthy()));
                }
                Instr::Neg => {
                    let v = self.pop();
                    self.stack.push(v.neg().map_err(|e| fail(self, e))?);
                }
                Instr::Jump(t) => self.jump(t),
                Instr::JumpIfFalse(t) => {
                    if !self.pop().is_truthy() {
                        self.jump(t);
                    }
                }
                Instr::JumpIfFalseKeep(t) => {
                    if self.stack.last().is_some_and(|v| !v.is_truthy()) {
                        self.jump(t);
                    } else {
                        self.pop();
                    }
                }
                Instr::JumpIfTrueKeep(t) => {
                    if self.stack.last().is_some_and(Value::is_truthy) {
                        self.jump(t);
                    } else {
                        self.pop();
                    }
                }
                Instr::MakeList(n) => {
                    let items = self.stack.split_off(self.stack.len() - n as usize);
                    self.stack.push(Value::from(items));
                }
                Instr::MakeMap(n) => {
                    let flat = self.stack.split_off(self.stack.len() - 2 * n as usize);
                    let mut map = Map::new();
                    let mut it = flat.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        if let Value::Str(k) = k {
                            map.insert(k, v);
                        }
                    }
                    self.stack.push(Value::from(map));
                }
                Instr::Index => {
                    let i = self.pop();
                    let t = self.pop();
                    self.stack.push(t.get_index(&i).map_err(|e| fail(self, e))?);
                }
                Instr::GetField(k) => {
                    let t = self.pop();
                    let name = self.const_str(k);
                    self.stack
                        .push(t.get_field(&name).map_err(|e| fail(self, e))?);
                }
                Instr::SetIndex => {
                    let v = self.pop();
                    let i = self.pop();
                    let mut t = self.pop();
                    t.set_index(&i, v).map_err(|e| fail(self, e))?;
                    self.stack.push(t);
                }
                Instr::SetField(k) => {
                    let v = self.pop();
                    let mut t = self.pop();
                    let name = self.const_str(k);
                    t.set_field(&name, v).map_err(|e| fail(self, e))?;
                    self.stack.push(t);
                }
                Instr::CallAction { func, argc } => self.enter(func as usize, argc as usize)?,
                Instr::CallNative { native, argc } => {
                    let args = self.stack.split_off(self.stack.len() - argc as usize);
                    let res = match &self.natives[native as usize] {
                        Native::Print => self.print(&args),
                        Native::Fn(f) => f(&args).map_err(|e| fail(self, e)),
                        Native::Missing(name) => Err(self.error(
                            VmErrorKind::Runtime,
                            format!("not available yet: `{name}()` cannot run in this build"),
                        )),
                    }?;
                    self.stack.push(res);
                }
                Instr::Return => {
                    let v = self.pop();
                    let frame = self.frames.pop().expect("a frame is running");
                    self.stack.truncate(frame.base);
                    if self.frames.is_empty() {
                        return Ok(v);
                    }
                    self.stack.push(v);
                }
                Instr::IterStart => {
                    let v = self.pop();
                    let items: Vec<Value> = match &v {
                        Value::List(items) => items.as_ref().clone(),
                        Value::Map(m) => m.keys().map(|k| Value::Str(k.clone())).collect(),
                        Value::Str(s) => s.chars().map(|c| Value::from(c.to_string())).collect(),
                        other => {
                            let kind = other.type_name();
                            return Err(self.error(
                                VmErrorKind::Runtime,
                                format!("cannot iterate over {kind}"),
                            ));
                        }
                    };
                    self.stack.push(Value::from(items));
                    self.stack.push(Value::Int(0));
                }
                Instr::IterNext(exit) => {
                    let n = self.stack.len();
                    let (Value::List(items), Value::Int(i)) =
                        (&self.stack[n - 2], &self.stack[n - 1])
                    else {
                        unreachable!("IterStart pushed a list and an index")
                    };
                    let i = *i as usize;
                    if let Some(item) = items.get(i).cloned() {
                        self.stack[n - 1] = Value::Int(i as i64 + 1);
                        self.stack.push(item);
                    } else {
                        self.stack.truncate(n - 2);
                        self.jump(exit);
                    }
                }
                Instr::Assert { has_message } => {
                    let message = if has_message { Some(self.pop()) } else { None };
                    let cond = self.pop();
                    if !cond.is_truthy() {
                        let text =
                            message.map_or_else(|| "assertion failed".to_string(), |m| m.display());
                        return Err(self.error(VmErrorKind::Runtime, text));
                    }
                }
            }
        }
    }

    fn jump(&mut self, target: u32) {
        self.frames.last_mut().expect("a frame is running").ip = target as usize;
    }

    fn const_str(&self, k: u32) -> std::rc::Rc<str> {
        match &self.program.constants[k as usize] {
            Value::Str(s) => s.clone(),
            _ => unreachable!("field names are string constants"),
        }
    }

    fn print(&mut self, args: &[Value]) -> Result<Value, VmError> {
        let items = match args.first() {
            Some(Value::List(items)) => items.clone(),
            _ => return Ok(Value::Null),
        };
        let line: Vec<String> = items.iter().map(Value::display).collect();
        writeln!(self.out, "{}", line.join(" "))
            .map_err(|e| self.error(VmErrorKind::Runtime, format!("cannot write output: {e}")))?;
        Ok(Value::Null)
    }
}
