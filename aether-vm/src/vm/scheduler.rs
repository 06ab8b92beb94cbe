//! The scheduler: fibers, the ready queue, timers and host futures, kernel tasks pulled
//! into fibers, and the budget checks between slices.

use super::*;

impl<'p, W: Write> Vm<'p, W> {
    /// `Sleep` (fiber `id`'s ip saved): pop the wait and park the fiber on a timer, or fail
    /// (not a duration, inside a transaction, a durable run's journal refused it).
    #[inline(always)]
    pub(super) fn sleep(&mut self, id: u32, f: &mut Fiber) -> Exit {
        let v = f
            .stack
            .pop()
            .expect("the compiler keeps the stack balanced");
        let ms = match super::ops::sleep_ms(&v) {
            Ok(ms) => ms,
            Err(msg) => return Exit::Failed(self.error_at(f, ErrorClass::Runtime, msg)),
        };
        if let Some(msg) = self.wait_refused(f, "`sleep` inside a `transaction:` block") {
            return Exit::Failed(self.error_at(f, ErrorClass::Runtime, msg));
        }
        let at = match self.deadline_of(&f.path, "sleep", vec![Value::Duration(ms)], ms) {
            Ok(at) => at,
            Err(he) => return Exit::Failed(self.error_at(f, he.class, he.message)),
        };
        self.sched.timers.push(Timer {
            at,
            owner: id,
            kind: TimerKind::Sleep,
        });
        Exit::Blocked
    }

    pub(super) fn new_fiber(
        &mut self,
        func: u32,
        mut args: Vec<Value>,
        parent: Option<u32>,
        depth_base: usize,
    ) -> u32 {
        let f = &self.program.functions[func as usize];
        for _ in args.len()..f.n_locals as usize {
            args.push(Value::Null);
        }
        let id = self.sched.next_fiber;
        self.sched.next_fiber += 1;
        // The path comes from structure, not from the id: the n-th fiber a fiber starts is
        // `PARENT.n`, so a replay names fibers the same way whatever ran in between.
        let path: Rc<str> = match parent.and_then(|p| self.sched.fibers.get_mut(&p)) {
            Some(p) => {
                p.children += 1;
                format!("{}.{}", p.path, p.children).into()
            }
            None if id == 0 => Rc::from("0"),
            None => format!("k{id}").into(),
        };
        self.sched.fibers.insert(
            id,
            Fiber {
                stack: args,
                frames: vec![Frame {
                    func,
                    ret_ip: 0,
                    base: 0,
                    ret_base: 0,
                }],
                ip: f.entry as usize,
                depth_base,
                parent,
                tx: Vec::new(),
                step: None,
                step_of: None,
                task_of: None,
                in_tx: None,
                joined: Vec::new(),
                path,
                children: 0,
            },
        );
        self.sched.ready.push_back(id);
        id
    }

    /// Start the kernel tasks the host has due, up to `KERNEL_WORKERS` at once (none once
    /// the run has failed: what is left is dead-lettered when it ends).
    pub(super) fn pull_tasks(&mut self) {
        while self.sched.tasks_enabled && self.sched.running_tasks < KERNEL_WORKERS {
            let Some(task) = self.host.next_task() else {
                return;
            };
            let program = self.program;
            let found = program
                .functions
                .iter()
                .position(|f| f.is_action && f.name == task.action);
            let Some(func) = found else {
                self.host.task_finished(
                    task.id,
                    Err(format!("no action named `{}`", task.action)),
                    true,
                );
                continue;
            };
            let f = &program.functions[func];
            let mut args = Vec::with_capacity(f.params.len());
            let mut problem = task
                .data
                .keys()
                .find(|k| !f.params.iter().any(|p| p.as_str() == &***k))
                .map(|k| format!("action `{}` has no parameter `{k}`", f.name));
            for (i, p) in f.params.iter().enumerate() {
                match task.data.get(p) {
                    Some(v) => args.push(v.clone()),
                    None if i >= usize::from(f.required) => args.push(missing()),
                    None => {
                        problem.get_or_insert_with(|| {
                            format!("action `{}` needs argument `{p}`", f.name)
                        });
                    }
                }
            }
            if let Some(p) = problem {
                self.host.task_finished(task.id, Err(p), true);
                continue;
            }
            let id = self.new_fiber(index_u32(func), args, None, 0);
            if let Some(fb) = self.sched.fibers.get_mut(&id) {
                fb.task_of = Some(task.id);
            }
            if let Some(at) = task.deadline {
                self.sched.timers.push(Timer {
                    at,
                    owner: id,
                    kind: TimerKind::TaskDeadline,
                });
            }
            self.sched.running_tasks += 1;
        }
    }

    /// Run fibers until `root` and every fiber it left running have finished.
    pub(super) fn schedule(&mut self, root: u32) -> Result<Value, VmError> {
        loop {
            self.fire_due_timers();
            self.pull_tasks();
            if let Some(id) = self.sched.ready.pop_front() {
                self.run_fiber(id);
                if let Some(Err(e)) = self.sched.results.get(&root) {
                    return Err(e.clone());
                }
                continue;
            }
            if self.sched.fibers.is_empty() {
                if self.sched.tasks_enabled && self.host.tasks_pending() {
                    // Queued tasks that could not start (all workers were busy) start now.
                    if self.run.deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(self.timed_out());
                    }
                    continue;
                }
                break;
            }
            self.wait()?;
        }
        self.sched.consumed.insert(root);
        let res = self.sched.results.remove(&root).unwrap_or(Ok(Value::Null));
        // Structured concurrency: a failure of a fiber nobody awaited is the run's failure.
        let mut unawaited: Vec<u32> = self
            .sched
            .results
            .iter()
            .filter(|(id, r)| r.is_err() && !self.sched.consumed.contains(id))
            .map(|(id, _)| *id)
            .collect();
        unawaited.sort_unstable();
        if let Some(id) = unawaited.first() {
            if let Some(Err(e)) = self.sched.results.remove(id) {
                return Err(e);
            }
        }
        res
    }

    /// Drop every fiber, rolling back their open transactions.
    ///
    /// In one pass, O(fibers): stopping them one by one with [`Vm::kill`] scans the
    /// timers, the ready queue and the other fibers for each (100,000 sleeping fibers
    /// took 39 s to stop after a 5 s budget).
    pub(super) fn cancel_all(&mut self) {
        let mut fibers: Vec<(u32, Fiber)> = self.sched.fibers.drain().collect();
        // Roll back in the order the fibers started, whatever the map's order.
        fibers.sort_unstable_by_key(|(id, _)| *id);
        for (id, f) in &fibers {
            if f.task_of.is_some() {
                self.sched.running_tasks = self.sched.running_tasks.saturating_sub(1);
            }
            self.roll_back(*id, f, None);
            self.sched.consumed.insert(*id);
        }
        self.tx.waiters.clear();
        self.sched.ready.clear();
        self.sched.timers.clear();
        self.sched.host_futures.clear();
        self.sched.waiters.clear();
    }

    /// Stop fiber `id` and the fibers it started, undoing their open transactions.
    pub(super) fn kill(&mut self, id: u32) {
        let Some(f) = self.sched.fibers.remove(&id) else {
            return;
        };
        if f.task_of.is_some() {
            // The kernel dead-letters the task when the run ends (`task_finished` never came).
            self.sched.running_tasks = self.sched.running_tasks.saturating_sub(1);
        }
        self.roll_back(id, &f, None);
        self.tx.waiters.retain(|w| *w != id);
        self.sched.timers.retain(|t| t.owner != id);
        self.sched.host_futures.retain(|(owner, _)| *owner != id);
        self.sched.ready.retain(|r| *r != id);
        self.sched.consumed.insert(id);
        self.kill_children(id);
    }

    /// Stop the fibers `id` started and left running.
    pub(super) fn kill_children(&mut self, id: u32) {
        let children: Vec<u32> = self
            .sched
            .fibers
            .iter()
            .filter(|(_, c)| c.parent == Some(id))
            .map(|(cid, _)| *cid)
            .collect();
        for c in children {
            self.kill(c);
        }
    }

    pub(super) fn run_fiber(&mut self, id: u32) {
        let Some(mut f) = self.sched.fibers.remove(&id) else {
            return;
        };
        match self.exec(id, &mut f) {
            Exit::Blocked => {
                self.sched.fibers.insert(id, f);
            }
            Exit::Yield => {
                self.sched.fibers.insert(id, f);
                self.sched.ready.push_back(id);
            }
            Exit::Done(v) => self.finish(id, f, Ok(v)),
            Exit::Failed(e) => self.finish(id, f, Err(e)),
        }
    }

    /// Record a fiber's end and hand its result to whoever waits for it.
    pub(super) fn finish(&mut self, id: u32, f: Fiber, res: Result<Value, VmError>) {
        if let Err(e) = &res {
            self.roll_back(id, &f, Some(e));
            // Work it started and left running dies with it.
            self.kill_children(id);
        }
        if let Some(parent) = f.step_of {
            self.sched.consumed.insert(id);
            self.step_attempt_done(parent, id, res);
            return;
        }
        if let Some(task) = f.task_of {
            // A task's failure goes to the kernel (retry, dead letter), not to the run.
            self.sched.consumed.insert(id);
            self.sched.timers.retain(|t| t.owner != id);
            self.sched.running_tasks = self.sched.running_tasks.saturating_sub(1);
            self.host
                .task_finished(task, res.map_err(|e| e.message().to_string()), false);
            return;
        }
        if let Some(ws) = self.sched.waiters.remove(&id) {
            self.sched.consumed.insert(id);
            for w in ws {
                self.deliver(w, res.clone());
            }
        }
        self.sched.results.insert(id, res);
    }

    /// Resume fiber `w` with a value, or end it with an error.
    pub(super) fn deliver(&mut self, w: u32, res: Result<Value, VmError>) {
        match res {
            Ok(v) => {
                if let Some(f) = self.sched.fibers.get_mut(&w) {
                    f.stack.push(v);
                    self.sched.ready.push_back(w);
                }
            }
            Err(e) => {
                if let Some(f) = self.sched.fibers.remove(&w) {
                    self.finish(w, f, Err(e));
                }
            }
        }
    }

    pub(super) fn deliver_host(&mut self, w: u32, res: Result<Value, HostError>) {
        let res = res.map_err(|he| match self.sched.fibers.get(&w) {
            Some(f) => self.error_at(f, he.class, he.message),
            None => VmError::new(he.class, he.message, None),
        });
        self.deliver(w, res);
    }

    pub(super) fn fire_due_timers(&mut self) {
        if self.sched.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(t) = self.sched.timers.pop_due(now) {
            match t.kind {
                TimerKind::Sleep => {
                    if self.sched.fibers.contains_key(&t.owner) {
                        self.sched.ready.push_back(t.owner);
                    }
                }
                TimerKind::Backoff => self.start_attempt(t.owner),
                TimerKind::TaskDeadline => {
                    if let Some(task) = self.sched.fibers.get(&t.owner).and_then(|f| f.task_of) {
                        self.kill(t.owner);
                        self.sched.running_tasks = self.sched.running_tasks.saturating_sub(1);
                        self.host.task_finished(
                            task,
                            Err("the task ran past its deadline and was stopped".into()),
                            true,
                        );
                    }
                }
                TimerKind::StepTimeout { child } => {
                    if let Some(st) = self
                        .sched
                        .fibers
                        .get_mut(&t.owner)
                        .and_then(|f| f.step.as_mut())
                    {
                        st.timed_out = true;
                    }
                    self.kill(child);
                    let Some(st) = self
                        .sched
                        .fibers
                        .get(&t.owner)
                        .and_then(|f| f.step.as_ref())
                    else {
                        continue;
                    };
                    let step = &self.program.steps[st.step as usize];
                    let limit = format_duration(step.timeout_ms.unwrap_or_default());
                    let e = VmError::new(
                        ErrorClass::Timeout,
                        format!("step `{}` timed out after {limit}", step.label),
                        Some(step.span),
                    );
                    self.step_attempt_done(t.owner, child, Err(e));
                }
            }
        }
    }

    /// Block until a timer is due, a host future is ready or the run's deadline passes.
    pub(super) fn wait(&mut self) -> Result<(), VmError> {
        let next_timer = self.sched.timers.next_at();
        if self.config.durable && self.detached(next_timer) {
            return Err(VmError::new(
                ErrorClass::Detached,
                "the run left the process to wait (status `waiting`)",
                None,
            ));
        }
        let until = match (next_timer, self.run.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.sched.host_futures.is_empty() {
            // Nothing outside the fibers can wake one: waiting for the deadline would only
            // turn a deadlock into a timeout.
            let (true, Some(until)) = (next_timer.is_some(), until) else {
                let message = "every running fiber waits for another: nothing can make progress";
                return Err(match self.sched.fibers.get(&0) {
                    Some(f) => self.error_at(f, ErrorClass::Runtime, message),
                    None => self.error_in(&[], 0, ErrorClass::Runtime, message),
                });
            };
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        } else {
            // A replaying host may hold answers back to keep the recorded order.
            self.host.idle();
            self.ensure_runtime();
            let Some(rt) = self.sched.runtime.as_ref() else {
                return Ok(());
            };
            let futures = &mut self.sched.host_futures;
            let ready = rt.block_on(async {
                let poll_all = std::future::poll_fn(|cx| {
                    let mut done = Vec::new();
                    for (i, (_, fut)) in futures.iter_mut().enumerate() {
                        if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                            done.push((i, r));
                        }
                    }
                    if done.is_empty() {
                        Poll::Pending
                    } else {
                        Poll::Ready(done)
                    }
                });
                match until {
                    Some(u) => tokio::time::timeout_at(tokio::time::Instant::from_std(u), poll_all)
                        .await
                        .unwrap_or_default(),
                    None => poll_all.await,
                }
            });
            let mut ready = ready;
            ready.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
            let mut woken = Vec::new();
            for (i, r) in ready {
                let (owner, _) = self.sched.host_futures.remove(i);
                woken.push((owner, r));
            }
            let settled = !woken.is_empty();
            for (owner, r) in woken.into_iter().rev() {
                self.deliver_host(owner, r);
            }
            if settled {
                self.host.settled();
            }
        }
        if self.run.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(self.timed_out());
        }
        Ok(())
    }

    pub(super) fn timeout_message(&self) -> String {
        let limit = self.config.budget.timeout.unwrap_or_default();
        format!(
            "the run's time budget of {} ran out (policy timeout or --timeout)",
            format_duration(limit.as_secs_f64() * 1000.0)
        )
    }

    /// The time budget ran out while every fiber waited: the error points where the
    /// main body (or the handler) waits.
    pub(super) fn timed_out(&self) -> VmError {
        let root = self.sched.fibers.keys().min().copied().unwrap_or(0);
        match self.sched.fibers.get(&root) {
            Some(f) => self.error_at(f, ErrorClass::Timeout, self.timeout_message()),
            None => self.error_in(&[], 0, ErrorClass::Timeout, self.timeout_message()),
        }
    }

    pub(super) fn ensure_runtime(&mut self) {
        self.sched.runtime.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread tokio runtime can always be built")
        });
    }

    /// The budget and clock check (on back jumps and action entries, once `SLICE` instructions
    /// have run since the last one); `Some` when the fiber must stop.
    pub(super) fn checkpoint(&mut self, f: &Fiber) -> Option<Exit> {
        // The fiber's ip is the instruction about to run (after a jump back it is not the
        // one after the last instruction run): the error points at it.
        let (frames, ip) = (f.frames.as_slice(), f.ip + 1);
        if let Some(max) = self.config.budget.max_steps {
            if self.run.steps > max {
                return Some(Exit::Failed(self.error_in(
                    frames,
                    ip,
                    ErrorClass::Timeout,
                    format!("the step budget of {max} instructions ran out (policy max_steps)"),
                )));
            }
        }
        if let Some(message) = crate::heap::over_budget() {
            return Some(Exit::Failed(self.error_in(
                frames,
                ip,
                ErrorClass::Memory,
                message,
            )));
        }
        let now = Instant::now();
        if self.run.deadline.is_some_and(|d| now >= d) {
            let e = self.error_in(frames, ip, ErrorClass::Timeout, self.timeout_message());
            return Some(Exit::Failed(e));
        }
        if let Some(msg) = self.tx_overran(f, now) {
            return Some(Exit::Failed(self.error_in(
                frames,
                ip,
                ErrorClass::Timeout,
                msg,
            )));
        }
        let next = self.run.steps + SLICE;
        self.run.next_check = match self.config.budget.max_steps {
            Some(max) => next.min(max + 1),
            None => next,
        };
        if !self.sched.ready.is_empty() || self.sched.timers.next_at().is_some_and(|at| at <= now) {
            return Some(Exit::Yield);
        }
        None
    }
}
