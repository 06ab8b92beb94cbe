//! The execution loop: one fiber's instructions until it ends, blocks or yields. The
//! arithmetic fast paths it inlines are in `ops.rs`.

use super::ops::{
    add_local_const, at, at_mut, bin_const_store, binary, binary_cold, binary_owned, discard,
    int_arith, int_op, int_test, is_missing, iter_items, local_binary, operate_cold, ret_ip,
    set_int, test, test_lt, truncate, value_size,
};
use super::*;

impl<'p, W: Write> Vm<'p, W> {
    /// Run fiber `id` until it ends, blocks or yields.
    pub(super) fn exec(&mut self, id: u32, f: &mut Fiber) -> Exit {
        let program = self.program;
        let code = program.code.as_slice();
        let constants = program.constants.as_slice();
        let mut ip = f.ip;
        let mut base = f.frames.last().expect("a running fiber has a frame").base;
        // The most frames this fiber may hold below a new call: a call with more open
        // (counting the calls open in the fibers that started it) is over the depth limit.
        let max_frames = self.config.budget.max_depth.saturating_sub(f.depth_base);

        // The instruction counter lives in a local while the loop runs; `save_ip!` (called
        // on every way out of the loop) writes it back with the frame's ip.
        let mut steps = self.run.steps;
        let mut next_check = self.run.next_check;
        macro_rules! save_ip {
            () => {
                self.run.steps = steps;
                f.ip = ip;
            };
        }
        macro_rules! fail {
            ($kind:expr, $msg:expr) => {{
                save_ip!();
                return Exit::Failed(self.error_at(f, $kind, $msg));
            }};
        }
        macro_rules! pop {
            () => {
                f.stack
                    .pop()
                    .expect("the compiler keeps the stack balanced")
            };
        }

        // The end of a frame whose result is in its first slot: the locals above it go
        // (without drop calls for scalars) and the caller resumes, or the fiber ends.
        macro_rules! leave_frame {
            () => {
                truncate(&mut f.stack, base + 1);
                match f.frames.pop() {
                    Some(fr) if !f.frames.is_empty() => {
                        ip = fr.ret_ip as usize;
                        base = fr.ret_base;
                    }
                    _ => {
                        let v = pop!();
                        self.run.steps = steps;
                        return Exit::Done(v);
                    }
                }
            };
        }

        // The budget and the clock are checked only where control can repeat: on a jump
        // back (every loop's back edge) and on entering an action (recursion). Between two
        // checks runs at most one loop body or one action's straight-line code, so a run
        // stops at most that far past `max_steps` (counted exactly, one per instruction),
        // always at the same place for the same script.
        macro_rules! check_budget {
            () => {
                if steps >= next_check {
                    save_ip!();
                    if let Some(exit) = self.checkpoint(f) {
                        return exit;
                    }
                    next_check = self.run.next_check;
                }
            };
        }

        // A call's new frame: its locals past the arguments start as null, it keeps where
        // the caller comes back to (and the call site, for an error's trace), and the
        // callee runs from its entry; the budget is checked (recursion repeats). The steps
        // are saved by the checks that leave.
        macro_rules! enter_frame {
            ($func:expr, $callee:expr, $callee_base:expr, $from:expr) => {
                for _ in $from..$callee.n_locals {
                    f.stack.push(Value::Null);
                }
                f.frames.push(Frame {
                    func: $func,
                    ret_ip: ret_ip(ip),
                    base: $callee_base,
                    ret_base: base,
                });
                base = $callee_base;
                ip = $callee.entry as usize;
                check_budget!();
            };
        }

        // SAFETY, for the three macros below: `run` refuses a program `verify` did not
        // accept, and `verify` proved for every instruction a frame can reach that `ip`
        // (and the `JumpIfFalse` a fused test reads) is inside `code`, that `k` is below
        // `constants.len()`, that `slot` is below the frame's `n_locals`, and that the
        // operand stack never drops below the locals: `base + slot < f.stack.len()`.
        macro_rules! code_at {
            ($i:expr) => {
                unsafe { *at(code, $i) }
            };
        }
        macro_rules! constant {
            ($k:expr) => {
                unsafe { at(constants, $k as usize) }
            };
        }
        macro_rules! local {
            ($slot:expr) => {
                unsafe { at(&f.stack, base + $slot as usize) }
            };
            (mut $slot:expr) => {
                unsafe { at_mut(&mut f.stack, base + $slot as usize) }
            };
        }

        loop {
            steps += 1;
            let instr = code_at!(ip);
            ip += 1;
            match instr {
                Instr::Const(k) => f.stack.push(constant!(k).clone()),
                Instr::Null => f.stack.push(Value::Null),
                Instr::Pop => discard(pop!()),
                Instr::LoadLocal(slot) => {
                    let v = local!(slot).clone();
                    f.stack.push(v);
                }
                Instr::StoreLocal(slot) => {
                    let v = pop!();
                    discard(std::mem::replace(local!(mut slot), v));
                }
                Instr::LoadGlobal(slot) => match &self.globals[slot as usize] {
                    Some(v) => f.stack.push(v.clone()),
                    None => {
                        let name = &program.globals[slot as usize];
                        fail!(
                            ErrorClass::Runtime,
                            format!("top-level variable `{name}` is read before it is initialised")
                        );
                    }
                },
                Instr::StoreGlobal(slot) => {
                    let v = pop!();
                    self.globals[slot as usize] = Some(v);
                }
                Instr::TakeLocal(slot) => {
                    let v = std::mem::take(local!(mut slot));
                    f.stack.push(v);
                }
                Instr::TakeGlobal(slot) => match self.globals[slot as usize].take() {
                    Some(v) => f.stack.push(v),
                    None => {
                        let name = &program.globals[slot as usize];
                        fail!(
                            ErrorClass::Runtime,
                            format!("top-level variable `{name}` is read before it is initialised")
                        );
                    }
                },
                Instr::ListPush => {
                    let v = pop!();
                    let top = f
                        .stack
                        .last_mut()
                        .expect("the compiler keeps the stack balanced");
                    if let Value::List(items) = top {
                        if let Err(e) = crate::value::reserve_push(items, 1) {
                            fail!(ErrorClass::Runtime, e.message);
                        }
                        Rc::make_mut(items).push(v);
                    } else {
                        let kind = top.type_name();
                        fail!(
                            ErrorClass::Runtime,
                            format!("append() takes a list, not {kind}")
                        );
                    }
                }
                Instr::Binary(op) => {
                    if let [.., Value::Int(x), Value::Int(y)] = f.stack.as_mut_slice() {
                        if let Some(v) = int_arith(op, *x, *y) {
                            // Two ints: the result in place, nothing to drop.
                            *x = v;
                            discard(pop!());
                            continue;
                        }
                    }
                    let b = pop!();
                    let a = pop!();
                    match binary_owned(op, a, b) {
                        Ok(v) => f.stack.push(v),
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::LocalConstTest { slot, k, op } => {
                    let at = ip - 1;
                    ip += 2;
                    let a = local!(slot);
                    let b = constant!(k);
                    let fast = match (a, b) {
                        (Value::Int(x), Value::Int(y)) => int_test(op, *x, *y),
                        _ => None,
                    };
                    let truth = match fast {
                        Some(t) => t,
                        None => match operate_cold(op, a, b) {
                            Ok(v) => v.is_truthy(),
                            Err(e) => fail!(ErrorClass::Runtime, e.message),
                        },
                    };
                    if truth {
                        ip = at + 4;
                    } else if let Instr::JumpIfFalse(t) = code_at!(at + 3) {
                        ip = t as usize;
                    }
                }
                Instr::LocalConstStore { src, k, op, dst } => {
                    ip += 2;
                    let a = local!(src);
                    let b = constant!(k);
                    if let (Value::Int(x), Value::Int(y)) = (a, b) {
                        if let Some(v) = int_arith(op, *x, *y) {
                            ip += 1;
                            set_int(local!(mut dst), v);
                            continue;
                        }
                    }
                    let v = match operate_cold(op, a, b) {
                        Ok(v) => v,
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    };
                    ip += 1;
                    discard(std::mem::replace(local!(mut dst), v));
                }
                Instr::LtLocalConst { slot, k } => {
                    // `LocalConstTest` with `<`: one compare, no match on the operator.
                    let at = ip - 1;
                    ip += 2;
                    match test_lt(local!(slot), constant!(k)) {
                        Ok(true) => ip = at + 4,
                        Ok(false) => {
                            if let Instr::JumpIfFalse(t) = code_at!(at + 3) {
                                ip = t as usize;
                            }
                        }
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::AddLocalConst { src, k, dst } => {
                    // `LocalConstStore` with `+`: the int path without a match on the operator.
                    ip += 2;
                    let (src, dst, k) = (base + src as usize, base + dst as usize, constant!(k));
                    // SAFETY: verified slots (see the macros above).
                    if let Err(e) = unsafe { add_local_const(&mut f.stack, src, k, dst) } {
                        fail!(ErrorClass::Runtime, e.message);
                    }
                    ip += 1;
                }
                Instr::BinLocalConst { slot, k, op } => {
                    // Fused `LoadLocal; Const; Binary`: the two instructions after this
                    // one are the originals, kept for jumps that land between them.
                    ip += 2;
                    let a = local!(slot);
                    let b = constant!(k);
                    if let (Value::Int(x), Value::Int(y)) = (a, b) {
                        if let Some(v) = int_arith(op, *x, *y) {
                            f.stack.push(Value::Int(v));
                            continue;
                        }
                        if let Some(t) = int_test(op, *x, *y) {
                            f.stack.push(Value::Bool(t));
                            continue;
                        }
                    }
                    match operate_cold(op, a, b) {
                        Ok(v) => f.stack.push(v),
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::BinLocalLocal { a, b, op } => {
                    ip += 2;
                    let x = local!(a);
                    let y = local!(b);
                    if let (Value::Int(x), Value::Int(y)) = (x, y) {
                        if let Some(v) = int_arith(op, *x, *y) {
                            f.stack.push(Value::Int(v));
                            continue;
                        }
                        if let Some(t) = int_test(op, *x, *y) {
                            f.stack.push(Value::Bool(t));
                            continue;
                        }
                    }
                    match operate_cold(op, x, y) {
                        Ok(v) => f.stack.push(v),
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::BinConst { k, op } => {
                    ip += 1;
                    let b = constant!(k);
                    // Ints in place on the top of the stack: no pop and push.
                    if let (Some(Value::Int(x)), Value::Int(y)) = (f.stack.last_mut(), b) {
                        if let Some(v) = int_arith(op, *x, *y) {
                            *x = v;
                            continue;
                        }
                    }
                    let a = pop!();
                    match binary(op, a, b) {
                        Ok(v) => f.stack.push(v),
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::BinJumpIfFalse { op, target } => {
                    let n = f.stack.len();
                    if let (Value::Int(x), Value::Int(y)) = (&f.stack[n - 2], &f.stack[n - 1]) {
                        if let Some(truth) = int_test(op, *x, *y) {
                            discard(pop!());
                            discard(pop!());
                            ip = if truth { ip + 1 } else { target as usize };
                            continue;
                        }
                    }
                    let b = pop!();
                    let a = pop!();
                    match binary(op, a, &b) {
                        Ok(v) if v.is_truthy() => ip += 1,
                        Ok(_) => ip = target as usize,
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::LocalBinary { slot, op } => {
                    // SAFETY: a verified slot (see the macros above).
                    if let Err(e) = unsafe { local_binary(&mut f.stack, base + slot as usize, op) }
                    {
                        fail!(ErrorClass::Runtime, e.message);
                    }
                }
                Instr::BinConstStore { k, op, dst } => {
                    ip += 1;
                    let (dst, k) = (base + dst as usize, constant!(k));
                    // SAFETY: a verified slot below the operand (see the macros above).
                    if let Err(e) = unsafe { bin_const_store(&mut f.stack, dst, op, k) } {
                        fail!(ErrorClass::Runtime, e.message);
                    }
                    ip += 1;
                }
                Instr::JumpBackTest(t) => {
                    ip = t as usize;
                    check_budget!();
                    // The loop's test, run here instead of dispatched.
                    let truth = match code_at!(ip) {
                        Instr::LtLocalConst { slot, k } => test_lt(local!(slot), constant!(k)),
                        Instr::LocalConstTest { slot, k, op } => {
                            test(op, local!(slot), constant!(k))
                        }
                        _ => continue,
                    };
                    ip += 3;
                    match truth {
                        Ok(true) => ip += 1,
                        Ok(false) => {
                            if let Instr::JumpIfFalse(exit) = code_at!(ip) {
                                ip = exit as usize;
                            }
                        }
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::Not => {
                    let v = pop!();
                    f.stack.push(Value::Bool(!v.is_truthy()));
                }
                Instr::Neg => {
                    let v = pop!();
                    match v.neg() {
                        Ok(v) => f.stack.push(v),
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::Jump(t) => {
                    let back = (t as usize) < ip;
                    ip = t as usize;
                    if back {
                        check_budget!();
                    }
                }
                Instr::JumpIfFalse(t) => {
                    let c = pop!();
                    if !c.is_truthy() {
                        ip = t as usize;
                    }
                    discard(c);
                }
                Instr::JumpIfFalseKeep(t) => {
                    if f.stack.last().is_some_and(|v| !v.is_truthy()) {
                        ip = t as usize;
                    } else {
                        pop!();
                    }
                }
                Instr::JumpIfTrueKeep(t) => {
                    if f.stack.last().is_some_and(Value::is_truthy) {
                        ip = t as usize;
                    } else {
                        pop!();
                    }
                }
                Instr::MakeList(n) => {
                    let items = f.stack.split_off(f.stack.len() - n as usize);
                    f.stack.push(Value::from(items));
                }
                Instr::MakeMap(n) => {
                    let flat = f.stack.split_off(f.stack.len() - 2 * n as usize);
                    let mut map = Map::new();
                    let mut it = flat.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        if let Value::Str(k) = &k {
                            map.insert(k.as_str(), v);
                        }
                    }
                    f.stack.push(Value::from(map));
                }
                Instr::Index => {
                    let i = pop!();
                    let t = pop!();
                    match t.get_index(&i) {
                        Ok(v) => f.stack.push(v),
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::GetField(k) => {
                    let t = pop!();
                    let Value::Str(name) = constant!(k) else {
                        fail!(
                            ErrorClass::Runtime,
                            "internal: a field name is not a string"
                        );
                    };
                    match t.get_field(name) {
                        Ok(v) => f.stack.push(v),
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::SetIndex => {
                    let v = pop!();
                    let i = pop!();
                    let mut t = pop!();
                    if let Err(e) = t.set_index(&i, v) {
                        fail!(ErrorClass::Runtime, e.message);
                    }
                    f.stack.push(t);
                }
                Instr::SetField(k) => {
                    let v = pop!();
                    let mut t = pop!();
                    let Value::Str(name) = constant!(k) else {
                        fail!(
                            ErrorClass::Runtime,
                            "internal: a field name is not a string"
                        );
                    };
                    if let Err(e) = t.set_field(name, v) {
                        fail!(ErrorClass::Runtime, e.message);
                    }
                    f.stack.push(t);
                }
                Instr::CallAction { func, argc } => {
                    if f.frames.len() > max_frames {
                        fail!(
                            ErrorClass::Runtime,
                            format!(
                                "call depth limit of {} exceeded",
                                self.config.budget.max_depth
                            )
                        );
                    }
                    // SAFETY: a verified function index.
                    let callee = unsafe { at(&program.functions, func as usize) };
                    let callee_base = f.stack.len() - argc as usize;
                    enter_frame!(func, callee, callee_base, argc);
                }
                Instr::CallValue { argc } => {
                    let at = f.stack.len() - argc as usize - 1;
                    let (func, name) = match &f.stack[at] {
                        Value::Action(a) => (a.func, a.name.clone()),
                        other => {
                            let kind = other.type_name();
                            fail!(
                                ErrorClass::Runtime,
                                format!("a value of type {kind} is not callable")
                            );
                        }
                    };
                    let callee = &program.functions[func as usize];
                    if argc > callee.arity || argc < callee.required {
                        let want = if callee.required == callee.arity {
                            format!("{}", callee.arity)
                        } else {
                            format!("{} to {}", callee.required, callee.arity)
                        };
                        fail!(
                            ErrorClass::Runtime,
                            format!("action `{name}` takes {want} arguments, not {argc}")
                        );
                    }
                    if f.depth_base + f.frames.len() > self.config.budget.max_depth {
                        fail!(
                            ErrorClass::Runtime,
                            format!(
                                "call depth limit of {} exceeded",
                                self.config.budget.max_depth
                            )
                        );
                    }
                    f.stack.remove(at);
                    for _ in argc..callee.arity {
                        f.stack.push(missing());
                    }
                    let callee_base = f.stack.len() - callee.arity as usize;
                    enter_frame!(func, callee, callee_base, callee.arity);
                }
                Instr::JumpIfGiven { slot, target } => {
                    if !is_missing(local!(slot)) {
                        ip = target as usize;
                    }
                }
                Instr::CallWorkflow {
                    workflow,
                    if_not_run,
                } => {
                    let w = workflow as usize;
                    if if_not_run && self.run.workflow_ran[w] {
                        f.stack.push(Value::Null);
                        continue;
                    }
                    if f.depth_base + f.frames.len() > self.config.budget.max_depth {
                        fail!(
                            ErrorClass::Runtime,
                            format!(
                                "call depth limit of {} exceeded",
                                self.config.budget.max_depth
                            )
                        );
                    }
                    self.run.workflow_ran[w] = true;
                    let info = &program.workflows[w];
                    let name = info.name.as_deref().unwrap_or("workflow");
                    let fields = map_of(vec![("workflow", Value::from(name))]);
                    self.record(f, "workflow", fields, Some(info.span));
                    let callee = &program.functions[info.func as usize];
                    let callee_base = f.stack.len();
                    for _ in 0..callee.n_locals {
                        f.stack.push(Value::Null);
                    }
                    f.frames.push(Frame {
                        func: info.func,
                        ret_ip: ret_ip(ip),
                        base: callee_base,
                        ret_base: base,
                    });
                    base = callee_base;
                    ip = callee.entry as usize;
                    check_budget!();
                }
                Instr::CallNative { func, argc } => {
                    let n = f.stack.len() - argc as usize;
                    let functions = self.functions;
                    let Some((decl, imp)) = functions.get(func) else {
                        fail!(
                            ErrorClass::Runtime,
                            format!("internal: no function has id {func} in this build's table")
                        );
                    };
                    if let Some(cap) = decl.capability {
                        if self.config.enforce_capabilities && !self.config.granted[cap as usize] {
                            fail!(
                                ErrorClass::Permission,
                                format!(
                                    "`{}` needs capability `{}`, which the script does not declare (add it to `require: capabilities:`)",
                                    decl.qualified_name(),
                                    cap.as_str()
                                )
                            );
                        }
                    }
                    let res = match imp {
                        Impl::Native(nf) => {
                            let r = nf(&Args::new(decl, &f.stack[n..]));
                            // Natives charge for the elements they walk, so `max_steps`
                            // bounds their work too.
                            let walked: usize = f.stack[n..].iter().map(value_size).sum();
                            steps += (walked / 16) as u64;
                            r.map_err(|e| (ErrorClass::Runtime, e.message))
                        }
                        Impl::Intrinsic(Intrinsic::Now)
                            if self.config.durable && !self.config.deterministic =>
                        {
                            // The clock of a durable run is journaled (replay reads it back).
                            let path = Rc::clone(&f.path);
                            self.durable_now(&path).map_err(|he| (he.class, he.message))
                        }
                        Impl::Intrinsic(which) => {
                            save_ip!();
                            let span = program.span_at(index_u32(ip) - 1);
                            // The arguments stay where they are: the stack is lent out for
                            // the call (an intrinsic reads the fiber's transactions, never
                            // its stack), so no copy of them is made.
                            let stack = std::mem::take(&mut f.stack);
                            let r =
                                self.call_intrinsic(f, which, &Args::new(decl, &stack[n..]), span);
                            f.stack = stack;
                            r.map_err(|m| (ErrorClass::Runtime, m))
                        }
                        Impl::Host(_) if !self.config.host_functions => {
                            fail!(
                                ErrorClass::Runtime,
                                format!(
                                    "not available yet: `{}()` is not provided by this build's runtime host",
                                    decl.qualified_name()
                                )
                            );
                        }
                        Impl::Host(hid) => {
                            if decl.waits {
                                let what = format!(
                                    "a call of `{}` inside a `transaction:` block",
                                    decl.qualified_name()
                                );
                                if let Some(msg) = self.wait_refused(f, &what) {
                                    fail!(ErrorClass::Runtime, msg);
                                }
                            }
                            if decl.effectful && self.must_wait_for_tx(id, f.in_tx) {
                                // Another fiber's transaction is open on the one database
                                // connection: this write waits until it ends.
                                ip -= 1;
                                save_ip!();
                                self.tx.waiters.push(id);
                                return Exit::Blocked;
                            }
                            let args = f.stack.split_off(n);
                            save_ip!();
                            let mut events = Vec::new();
                            let (answer, cost) = {
                                self.ensure_runtime();
                                let _guard = self.sched.runtime.as_ref().map(|rt| rt.enter());
                                let mut cx = HostCx {
                                    cost: 0,
                                    events: &mut events,
                                    fiber: &f.path,
                                };
                                let answer = self.host.call(hid, args, &mut cx);
                                (answer, cx.cost)
                            };
                            steps = steps.saturating_add(cost);
                            let span = program.span_at(index_u32(ip) - 1);
                            for (kind, fields) in events {
                                self.record(f, &kind, fields, span);
                            }
                            match answer {
                                HostCall::Ready(r) => r.map_err(|he| (he.class, he.message)),
                                HostCall::Pending(fut) => {
                                    self.sched.host_futures.push((id, fut));
                                    return Exit::Blocked;
                                }
                            }
                        }
                    };
                    truncate(&mut f.stack, n);
                    match res {
                        Ok(v) => f.stack.push(v),
                        Err((class, msg)) => fail!(class, msg),
                    }
                }
                Instr::Return => {
                    // The value moves to the frame's first slot, where the caller finds
                    // it; the locals above it go without drop calls for scalars.
                    let top = f.stack.len() - 1;
                    f.stack.swap(base, top);
                    leave_frame!();
                }
                Instr::IterStart => match iter_items(pop!()) {
                    Ok(items) => {
                        f.stack.push(items);
                        f.stack.push(Value::Int(0));
                    }
                    Err(e) => fail!(ErrorClass::Runtime, e.message),
                },
                Instr::IterNext(exit) => {
                    let n = f.stack.len();
                    let next = match (&f.stack[n - 2], &f.stack[n - 1]) {
                        (Value::List(items), Value::Int(i)) => usize::try_from(*i)
                            .ok()
                            .and_then(|at| items.get(at))
                            .cloned()
                            .map(|item| (item, *i + 1)),
                        _ => None,
                    };
                    match next {
                        Some((item, i)) => {
                            f.stack[n - 1] = Value::Int(i);
                            f.stack.push(item);
                        }
                        None => {
                            f.stack.truncate(n - 2);
                            ip = exit as usize;
                        }
                    }
                }
                Instr::Assert { has_message } => {
                    let message = if has_message { Some(pop!()) } else { None };
                    let cond = pop!();
                    if !cond.is_truthy() {
                        let text =
                            message.map_or_else(|| "assertion failed".to_string(), |m| m.display());
                        fail!(ErrorClass::Runtime, text);
                    }
                }
                Instr::Spawn { func, argc } => {
                    let args = f.stack.split_off(f.stack.len() - argc as usize);
                    let depth = f.depth_base + f.frames.len();
                    if depth > self.config.budget.max_depth {
                        fail!(
                            ErrorClass::Runtime,
                            format!(
                                "call depth limit of {} exceeded",
                                self.config.budget.max_depth
                            )
                        );
                    }
                    let child = self.new_fiber(func, args, Some(id), depth);
                    let context = self.tx_context(id, f.in_tx);
                    if let Some(c) = self.sched.fibers.get_mut(&child) {
                        c.in_tx = context;
                    }
                    f.stack.push(Value::Pending(child));
                }
                Instr::Await => {
                    let v = pop!();
                    let Value::Pending(child) = v else {
                        f.stack.push(v);
                        continue;
                    };
                    match self.sched.results.get(&child) {
                        Some(res) => {
                            let res = res.clone();
                            self.sched.consumed.insert(child);
                            match res {
                                Ok(v) => f.stack.push(v),
                                Err(e) => {
                                    save_ip!();
                                    return Exit::Failed(e);
                                }
                            }
                        }
                        None => {
                            save_ip!();
                            if !self.sched.fibers.contains_key(&child) {
                                fail!(ErrorClass::Runtime, "the awaited work was cancelled");
                            }
                            // Work started inside this transaction cannot wait, so awaiting
                            // it is quick; other work could wait for anything.
                            let inside = self
                                .sched
                                .fibers
                                .get(&child)
                                .is_some_and(|c| c.in_tx.is_some() && c.in_tx == self.tx.owner);
                            if !inside {
                                if let Some(msg) =
                                    self.wait_refused(
                                    f,
                                    "`await` inside a `transaction:` block of work started outside it",
                                )
                                {
                                    fail!(ErrorClass::Runtime, msg);
                                }
                            }
                            self.sched.waiters.entry(child).or_default().push(id);
                            return Exit::Blocked;
                        }
                    }
                }
                Instr::Sleep => {
                    save_ip!();
                    return self.sleep(id, f);
                }
                Instr::Emit { name, has_payload } => {
                    let payload = if has_payload { pop!() } else { Value::Null };
                    let name = constant!(name).clone();
                    save_ip!();
                    let span = program.span_at(index_u32(ip) - 1);
                    if let Err(msg) = self.emit_event(f, name, payload, span) {
                        fail!(ErrorClass::Runtime, msg);
                    }
                }
                Instr::TxBegin => {
                    if self.must_wait_for_tx(id, f.in_tx) {
                        // Another fiber's transaction is open: wait, then begin again.
                        ip -= 1;
                        save_ip!();
                        self.tx.waiters.push(id);
                        return Exit::Blocked;
                    }
                    if let Err(he) = self.begin_block(id, f) {
                        fail!(he.class, he.message);
                    }
                }
                Instr::TxCommit => {
                    save_ip!();
                    let span = program.span_at(index_u32(ip) - 1);
                    if let Err(he) = self.commit_block(id, f, span) {
                        fail!(he.class, he.message);
                    }
                }
                Instr::Trigger { task } => {
                    let data = pop!();
                    if let Err(he) = self.trigger_task(constant!(task), &data) {
                        fail!(he.class, he.message);
                    }
                }
                Instr::RunStep { step, argc } => {
                    save_ip!();
                    return self.run_step(id, f, step, argc);
                }
                Instr::ReturnLocal(slot) => {
                    // `LoadLocal; Return` fused: the local moves to the frame's first slot.
                    f.stack.swap(base, base + slot as usize);
                    leave_frame!();
                }
                Instr::ReturnBinary(op) => {
                    // `Binary; Return` fused: `a op b` goes to the frame's first slot.
                    let n = f.stack.len();
                    let fast = match (&f.stack[n - 2], &f.stack[n - 1]) {
                        (Value::Int(x), Value::Int(y)) => int_op(op, *x, *y),
                        _ => None,
                    };
                    if let Some(v) = fast {
                        // Two ints (they own nothing: no drop), and the result replaces
                        // the frame's first slot (the verifier refuses this instruction in
                        // a frame without locals, which has none below the operands).
                        std::mem::forget(pop!());
                        std::mem::forget(pop!());
                        discard(std::mem::replace(&mut f.stack[base], v));
                    } else {
                        let b = pop!();
                        let a = pop!();
                        let res = binary_cold(op, a, &b);
                        discard(b);
                        match res {
                            Ok(v) => {
                                f.stack.push(v);
                                let top = f.stack.len() - 1;
                                f.stack.swap(base, top);
                            }
                            Err(e) => fail!(ErrorClass::Runtime, e.message),
                        }
                    }
                    leave_frame!();
                }
            }
        }
    }
}
