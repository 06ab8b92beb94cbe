//! Workflow steps: attempts in child fibers, timeouts, retries with backoff.

use super::*;

impl<'p, W: Write> Vm<'p, W> {
    /// `RunStep` (fiber `id`'s ip saved): take the step's arguments and park the fiber
    /// until its attempts end, or fail when the script lacks a capability the step needs.
    #[inline(always)]
    pub(super) fn run_step(&mut self, id: u32, f: &mut Fiber, step: u32, argc: u16) -> Exit {
        let program = self.program;
        let args = f.stack.split_off(f.stack.len() - argc as usize);
        let spec = &program.steps[step as usize];
        if let Some(cap) = spec.requires.iter().find(|c| !program.grants(c)) {
            let msg = format!(
                "step `{}` requires capability `{cap}`, which the script does not declare (add it to `require: capabilities:`)",
                spec.label
            );
            return Exit::Failed(self.error_at(f, ErrorClass::Permission, msg));
        }
        f.step = Some(StepRun {
            step,
            args,
            attempt: 0,
            child: None,
            timed_out: false,
        });
        // The attempt starts once this fiber is parked (start_attempt finds it in the fiber
        // table through the backoff path with no wait).
        self.sched.timers.push(Timer {
            at: Instant::now(),
            owner: id,
            kind: TimerKind::Backoff,
        });
        Exit::Blocked
    }

    /// Start (or restart) the attempt of the step fiber `p` waits for.
    pub(super) fn start_attempt(&mut self, p: u32) {
        let program = self.program;
        let Some(f) = self.sched.fibers.get_mut(&p) else {
            return;
        };
        let depth = f.depth_base + f.frames.len();
        let Some(st) = f.step.as_mut() else {
            return;
        };
        st.attempt += 1;
        st.timed_out = false;
        let step = &program.steps[st.step as usize];
        let args = st.args.clone();
        let attempt = st.attempt;
        let path = Rc::clone(&f.path);
        let timeout_at = match self.durable_attempt(&path, &step.label, attempt, step.timeout_ms) {
            Ok(at) => at,
            Err(he) => {
                if let Some(f) = self.sched.fibers.get_mut(&p) {
                    f.step = None;
                }
                let e = VmError::new(he.class, he.message, Some(step.span));
                self.deliver(p, Err(e));
                return;
            }
        };
        let parent_in_tx = self.sched.fibers.get(&p).and_then(|f| f.in_tx);
        let context = self.tx_context(p, parent_in_tx);
        let child = self.new_fiber(step.func, args, Some(p), depth);
        if let Some(c) = self.sched.fibers.get_mut(&child) {
            c.step_of = Some(p);
            c.in_tx = context;
        }
        if let Some(st) = self.sched.fibers.get_mut(&p).and_then(|f| f.step.as_mut()) {
            st.child = Some(child);
        }
        if let Some(at) = timeout_at {
            self.sched.timers.push(Timer {
                at,
                owner: p,
                kind: TimerKind::StepTimeout { child },
            });
        }
        let fields = map_of(vec![
            ("step", Value::from(step.label.as_str())),
            ("status", Value::from("started")),
            ("attempt", Value::Int(attempt as i64)),
        ]);
        self.publish("step", fields, Some(step.span));
    }

    pub(super) fn step_attempt_done(&mut self, p: u32, child: u32, res: Result<Value, VmError>) {
        let program = self.program;
        let Some(f) = self.sched.fibers.get_mut(&p) else {
            return;
        };
        let Some(st) = f.step.as_mut() else {
            return;
        };
        if st.child != Some(child) {
            return;
        }
        st.child = None;
        let attempt = st.attempt;
        let end = match (&res, st.timed_out) {
            (_, true) => "timeout",
            (Ok(_), _) => "ok",
            (Err(_), _) => "error",
        };
        let step = &program.steps[st.step as usize];
        let path = Rc::clone(&f.path);
        // A retry waits out its backoff first: never inside a transaction.
        let in_tx = self
            .sched
            .fibers
            .get(&p)
            .is_some_and(|pf| self.in_open_tx(pf));
        self.durable_attempt_end(&path, end);
        self.sched
            .timers
            .retain(|t| !(t.owner == p && matches!(t.kind, TimerKind::StepTimeout { .. })));
        match res {
            Ok(v) => {
                if let Some(f) = self.sched.fibers.get_mut(&p) {
                    f.step = None;
                }
                let fields = map_of(vec![
                    ("step", Value::from(step.label.as_str())),
                    ("status", Value::from("succeeded")),
                    ("attempt", Value::Int(attempt as i64)),
                ]);
                self.publish("step", fields, Some(step.span));
                self.deliver(p, Ok(v));
            }
            // The memory budget is the run's: a retry would only run out again.
            Err(e) if attempt <= step.retry && !in_tx && e.kind() != ErrorClass::Memory => {
                let wait_ms = step.backoff_ms * 2f64.powi(attempt as i32 - 1);
                let fields = map_of(vec![
                    ("step", Value::from(step.label.as_str())),
                    ("status", Value::from("retrying")),
                    ("attempt", Value::Int(attempt as i64)),
                    ("error", Value::from(e.message())),
                    ("backoff", Value::Duration(wait_ms)),
                ]);
                self.publish("step", fields, Some(step.span));
                let args = vec![Value::from(step.label.as_str()), Value::Int(attempt as i64)];
                match self.deadline_of(&path, "backoff", args, wait_ms) {
                    Ok(at) => self.sched.timers.push(Timer {
                        at,
                        owner: p,
                        kind: TimerKind::Backoff,
                    }),
                    Err(he) => {
                        if let Some(f) = self.sched.fibers.get_mut(&p) {
                            f.step = None;
                        }
                        self.deliver(p, Err(VmError::new(he.class, he.message, Some(step.span))));
                    }
                }
            }
            Err(mut e) => {
                if let Some(f) = self.sched.fibers.get_mut(&p) {
                    f.step = None;
                }
                let fields = map_of(vec![
                    ("step", Value::from(step.label.as_str())),
                    ("status", Value::from("failed")),
                    ("attempt", Value::Int(attempt as i64)),
                    ("error", Value::from(e.message())),
                ]);
                self.publish("step", fields, Some(step.span));
                if attempt > 1 {
                    e.0.message = format!(
                        "step `{}` failed after {attempt} attempts: {}",
                        step.label, e.0.message
                    );
                } else if attempt <= step.retry {
                    e.0.message = format!(
                        "step `{}` failed and is not retried inside a `transaction:` block (its backoff would wait with the state database locked): {}",
                        step.label, e.0.message
                    );
                }
                self.deliver(p, Err(e));
            }
        }
    }
}
