//! The interpreter: runs a `Program` as cooperative fibers, each with its own value stack
//! and call frames, under a scheduler that owns the timers (`sleep`, step timeouts and
//! backoffs) and the host's futures. Budgets (`max_steps`, a wall-clock deadline, call
//! depth) end a run cleanly; output goes to injected writers, never straight to stdout.
//!
//! Concurrency model: a fiber runs until it blocks (`await`, `sleep`, a pending host call,
//! a workflow step) or has run 1024 instructions while another fiber is ready or a timer
//! is due. Fibers share the top-level variables; everything else they see was copied in
//! when they started (values are immutable, so copies are cheap `Rc` clones).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use aether_syntax::ast::BinaryOp;
use aether_syntax::Span;

mod intrinsics;

pub(crate) use intrinsics::{intrinsics, Intrinsic};

use aether_check::decl::Capability;

use crate::compiler::ARGS_GLOBAL;
use crate::functions::{Args, FnTable, Impl};
use crate::host::{
    ErrorClass, Event, EventSink, Host, HostCall, HostCx, HostError, NoEvents, NoHost,
};
use crate::program::{Instr, Program};
use crate::value::{format_duration, Map, Value, ValueError};

/// The kind of a run-time error (the same classes a host error has).
pub type VmErrorKind = ErrorClass;

/// A run-time error with where it happened and the action frames it unwound.
#[derive(Clone, Debug, PartialEq)]
pub struct VmError(Box<VmErrorData>);

#[derive(Clone, Debug, PartialEq)]
pub struct VmErrorData {
    pub kind: ErrorClass,
    pub message: String,
    pub span: Option<Span>,
    /// Innermost first: (action name, call site span).
    pub trace: Vec<(String, Option<Span>)>,
}

impl VmError {
    pub fn new(kind: ErrorClass, message: impl Into<String>, span: Option<Span>) -> VmError {
        VmError(Box::new(VmErrorData {
            kind,
            message: message.into(),
            span,
            trace: Vec::new(),
        }))
    }
    pub fn kind(&self) -> ErrorClass {
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

/// Limits of one run. The defaults: no step or time budget, call depth 256.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Instructions the run may execute (`policy: max_steps`); `None` is unlimited.
    pub max_steps: Option<u64>,
    /// Nested calls allowed (default 256); every call counts, tail calls included.
    pub max_depth: usize,
    /// Wall-clock time the run may take (`policy: timeout`, `--timeout`).
    pub timeout: Option<Duration>,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            max_steps: None,
            max_depth: 256,
            timeout: None,
        }
    }
}

/// How often (in instructions) a running fiber looks at the clock, the budget and the
/// other fibers.
const SLICE: u64 = 1024;

/// The longest wait the VM schedules (about 100 years): a longer `sleep`, timeout or
/// backoff waits this long instead of overflowing the clock.
pub const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A wait of `ms` milliseconds, clamped to `[0, MAX_WAIT]` (NaN is 0).
pub fn wait_of_ms(ms: f64) -> Duration {
    if ms.is_nan() || ms <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(ms / 1000.0).map_or(MAX_WAIT, |d| d.min(MAX_WAIT))
}

/// The instant `d` from `from`, or the farthest the clock can represent.
pub fn instant_after(from: Instant, d: Duration) -> Instant {
    from.checked_add(d.min(MAX_WAIT))
        .or_else(|| from.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(from)
}

/// Kernel tasks running at once.
const KERNEL_WORKERS: usize = 4;

#[derive(Clone, Copy, Debug)]
struct Frame {
    func: u32,
    ip: usize,
    base: usize,
}

/// An event waiting for its transaction to commit.
struct HeldEvent {
    kind: String,
    fields: Map,
    span: Option<Span>,
}

/// A workflow step in progress in the fiber that runs the workflow.
struct StepRun {
    step: u32,
    args: Vec<Value>,
    /// Attempts made so far (1 while the first runs).
    attempt: u32,
    /// The fiber running the current attempt.
    child: Option<u32>,
}

struct Fiber {
    stack: Vec<Value>,
    frames: Vec<Frame>,
    /// Calls already open in the fiber that started this one.
    depth_base: usize,
    parent: Option<u32>,
    /// Events of each open transaction, innermost last.
    tx: Vec<Vec<HeldEvent>>,
    /// Set while this fiber waits for a workflow step.
    step: Option<StepRun>,
    /// Set on a fiber that runs an attempt of its parent's step.
    step_of: Option<u32>,
    /// Set on a fiber that runs a kernel task.
    task_of: Option<u64>,
    /// The fiber whose transaction this one was started inside (its writes and events
    /// belong to that transaction).
    in_tx: Option<u32>,
    /// Per open `tx` level: whether it joined another fiber's transaction (no savepoint of
    /// its own) rather than opening one.
    joined: Vec<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerKind {
    Sleep,
    /// The attempt running in `child` took too long.
    StepTimeout {
        child: u32,
    },
    /// Time to start the next attempt of a step.
    Backoff,
    /// A kernel task ran past its deadline.
    TaskDeadline,
}

struct Timer {
    at: Instant,
    owner: u32,
    kind: TimerKind,
}

/// Why a fiber stopped running.
enum Exit {
    Done(Value),
    Failed(VmError),
    Blocked,
    Yield,
}

/// One run of a program. Its state is grouped by who owns it: the settings fixed before
/// the run, the run's counters and outcome, the scheduler's fibers and timers, and the
/// transaction lock.
pub struct Vm<'p, W: Write> {
    program: &'p Program,
    /// The functions the program's `CallNative` ids index.
    functions: &'p FnTable,
    globals: Vec<Option<Value>>,
    out: W,
    err: Box<dyn Write + 'p>,
    events: Box<dyn EventSink + 'p>,
    host: Box<dyn Host + 'p>,
    config: Config,
    run: RunState,
    sched: Scheduler,
    tx: TxLock,
}

/// What is set before the run starts.
struct Config {
    budget: Budget,
    enforce_capabilities: bool,
    deterministic: bool,
    quiet: bool,
    line_starts: Vec<u32>,
    /// Per [`Capability`] (by `as usize`): whether the script declares it (set at run start).
    granted: [bool; Capability::ALL.len()],
    /// Whether the host provides module functions at all (set at run start).
    host_functions: bool,
}

/// The run's counters, clocks and outcome.
struct RunState {
    steps: u64,
    next_check: u64,
    started: Instant,
    started_wall: SystemTime,
    deadline: Option<Instant>,
    min_level: usize,
    seq: u64,
    workflow_ran: Vec<bool>,
    handler_error: Option<VmError>,
    handled_by: Option<String>,
}

/// The fibers, what they wait for, and the timers and futures that wake them.
struct Scheduler {
    fibers: HashMap<u32, Fiber>,
    next_fiber: u32,
    ready: VecDeque<u32>,
    results: HashMap<u32, Result<Value, VmError>>,
    consumed: HashSet<u32>,
    waiters: HashMap<u32, Vec<u32>>,
    timers: Vec<Timer>,
    host_futures: Vec<(u32, crate::host::HostFuture)>,
    runtime: Option<tokio::runtime::Runtime>,
    running_tasks: usize,
    tasks_enabled: bool,
}

/// The fiber whose transaction is open: while it is, other fibers wait before they open
/// one or call a host function that writes (one database connection, one transaction at a
/// time).
#[derive(Default)]
struct TxLock {
    owner: Option<u32>,
    waiters: Vec<u32>,
}

fn map_of(entries: Vec<(&str, Value)>) -> Map {
    entries.into_iter().collect()
}

impl<'p, W: Write> Vm<'p, W> {
    /// Prepare a run of `program`, compiled against `functions.registry()`; `print`
    /// writes to `out`.
    pub fn new(program: &'p Program, functions: &'p FnTable, out: W, budget: Budget) -> Self {
        Vm {
            program,
            functions,
            globals: vec![None; program.globals.len()],
            out,
            err: Box::new(std::io::sink()),
            events: Box::new(NoEvents),
            host: Box::new(NoHost),
            config: Config {
                budget,
                enforce_capabilities: false,
                deterministic: false,
                quiet: false,
                line_starts: Vec::new(),
                granted: [false; Capability::ALL.len()],
                host_functions: false,
            },
            run: RunState {
                steps: 0,
                next_check: 0,
                started: Instant::now(),
                started_wall: SystemTime::now(),
                deadline: None,
                min_level: 1,
                seq: 0,
                workflow_ran: vec![false; program.workflows.len()],
                handler_error: None,
                handled_by: None,
            },
            sched: Scheduler {
                fibers: HashMap::new(),
                next_fiber: 0,
                ready: VecDeque::new(),
                results: HashMap::new(),
                consumed: HashSet::new(),
                waiters: HashMap::new(),
                timers: Vec::new(),
                host_futures: Vec::new(),
                runtime: None,
                running_tasks: 0,
                tasks_enabled: true,
            },
            tx: TxLock::default(),
        }
    }

    /// Where `log`, `narrate` and `trace` write (default: nowhere).
    pub fn with_stderr(mut self, err: impl Write + 'p) -> Self {
        self.err = Box::new(err);
        self
    }

    /// Where the event stream goes (default: nowhere).
    pub fn with_events(mut self, sink: impl EventSink + 'p) -> Self {
        self.events = Box::new(sink);
        self
    }

    /// The runtime host that provides module functions, transactions and kernel tasks.
    pub fn with_host(mut self, host: impl Host + 'p) -> Self {
        self.host = Box::new(host);
        self
    }

    /// Refuse calls that need a capability the script does not declare
    /// (`AETHERRA_REQUIRE_CAPABILITIES=1`, profiles `test` and `prod`).
    pub fn enforce_capabilities(mut self, on: bool) -> Self {
        self.config.enforce_capabilities = on;
        self
    }

    /// `policy: deterministic`: `now()` is frozen at the run's start.
    pub fn deterministic(mut self, on: bool) -> Self {
        self.config.deterministic = on;
        self
    }

    /// `AETHERRA_QUIET`: `log` and `narrate` keep to the event stream, not stderr.
    pub fn quiet(mut self, on: bool) -> Self {
        self.config.quiet = on;
        self
    }

    /// The source text, so `error.line` in `on_error` handlers is the line number.
    pub fn with_source(mut self, text: &str) -> Self {
        self.config.line_starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i as u32 + 1),
            )
            .collect();
        self
    }

    /// The `args` map the script reads (`aether run --arg KEY=VALUE`).
    pub fn set_args(&mut self, args: Map) {
        if let Some(slot) = self.program.global_slot(ARGS_GLOBAL) {
            self.globals[slot] = Some(Value::from(args));
        }
    }

    /// The writer, for callers that captured output.
    pub fn into_output(self) -> W {
        self.out
    }

    /// The instructions executed so far.
    pub fn steps(&self) -> u64 {
        self.run.steps
    }

    /// The `when:` kind of the `on_error` rule that handled the run's failure, if one did.
    pub fn handled_by(&self) -> Option<&str> {
        self.run.handled_by.as_deref()
    }

    /// The failure of the `on_error` handler itself, if it failed.
    pub fn handler_error(&self) -> Option<&VmError> {
        self.run.handler_error.as_ref()
    }

    fn line_of(&self, span: Option<Span>) -> Option<u32> {
        let span = span?;
        if self.config.line_starts.is_empty() {
            return None;
        }
        Some(
            self.config
                .line_starts
                .partition_point(|s| *s <= span.start) as u32,
        )
    }

    /// What calls through the table need to know, worked out once per run.
    fn prepare_calls(&mut self) {
        for cap in Capability::ALL {
            self.config.granted[cap as usize] = self.program.grants(cap.as_str());
        }
        self.config.host_functions = self.host.provides_functions();
    }

    fn error_in(&self, frames: &[Frame], kind: ErrorClass, message: impl Into<String>) -> VmError {
        let span_of = |f: &Frame| self.program.span_at(f.ip.saturating_sub(1) as u32);
        let span = frames.last().and_then(span_of);
        let mut trace = Vec::new();
        for (i, f) in frames.iter().enumerate().rev() {
            if f.func == 0 {
                continue;
            }
            let call_site = i.checked_sub(1).and_then(|j| span_of(&frames[j]));
            trace.push((
                self.program.functions[f.func as usize].name.clone(),
                call_site,
            ));
        }
        VmError(Box::new(VmErrorData {
            kind,
            message: message.into(),
            span,
            trace,
        }))
    }

    fn new_fiber(
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
        self.sched.fibers.insert(
            id,
            Fiber {
                stack: args,
                frames: vec![Frame {
                    func,
                    ip: f.entry as usize,
                    base: 0,
                }],
                depth_base,
                parent,
                tx: Vec::new(),
                step: None,
                step_of: None,
                task_of: None,
                in_tx: None,
                joined: Vec::new(),
            },
        );
        self.sched.ready.push_back(id);
        id
    }

    /// Start the kernel tasks the host has due, up to `KERNEL_WORKERS` at once (none once
    /// the run has failed: what is left is dead-lettered when it ends).
    fn pull_tasks(&mut self) {
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
                    None if i as u16 >= f.required => args.push(missing()),
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
            let id = self.new_fiber(func as u32, args, None, 0);
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

    /// Run the main body, then the workflows it did not call, to the end; the result is
    /// the value of a top-level `return`, or null. A failure runs the first matching
    /// `on_error` rule and is still returned.
    pub fn run(&mut self) -> Result<Value, VmError> {
        self.prepare_calls();
        if let Some(slot) = self.program.global_slot(ARGS_GLOBAL) {
            self.globals[slot].get_or_insert_with(|| Value::from(Map::new()));
        }
        self.run.started = Instant::now();
        self.run.started_wall = SystemTime::now();
        self.run.deadline = self
            .config
            .budget
            .timeout
            .map(|t| instant_after(self.run.started, t));
        self.run.next_check = SLICE;
        let main = self.new_fiber(0, Vec::new(), None, 0);
        let res = self.schedule(main);
        if let Err(e) = &res {
            self.sched.tasks_enabled = false;
            self.cancel_all();
            self.run_handler(e);
        }
        res
    }

    /// Run fibers until `root` and every fiber it left running have finished.
    fn schedule(&mut self, root: u32) -> Result<Value, VmError> {
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

    fn run_handler(&mut self, e: &VmError) {
        let program = self.program;
        let Some(h) = program.handlers.iter().find(|h| e.kind().matches(&h.kind)) else {
            return;
        };
        self.run.handled_by = Some(h.kind.clone());
        let error = map_of(vec![
            ("code", Value::Int(e.kind().code() as i64)),
            ("code_name", Value::from(e.kind().code_name())),
            ("message", Value::from(e.message())),
            (
                "line",
                self.line_of(e.span())
                    .map_or(Value::Null, |l| Value::Int(l as i64)),
            ),
        ]);
        // The handler gets budgets of its own: the run's may be what ran out.
        self.run.steps = 0;
        self.run.next_check = SLICE;
        self.run.deadline = self
            .config
            .budget
            .timeout
            .map(|t| instant_after(Instant::now(), t));
        self.sched.results.clear();
        self.sched.consumed.clear();
        let id = self.new_fiber(h.func, vec![Value::from(error)], None, 0);
        if let Err(he) = self.schedule(id) {
            self.cancel_all();
            self.run.handler_error = Some(he);
        }
    }

    /// Drop every fiber, rolling back their open transactions.
    fn cancel_all(&mut self) {
        let ids: Vec<u32> = self.sched.fibers.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
        self.sched.ready.clear();
        self.sched.timers.clear();
        self.sched.host_futures.clear();
        self.sched.waiters.clear();
    }

    /// Stop fiber `id` and the fibers it started, undoing their open transactions.
    fn kill(&mut self, id: u32) {
        let Some(f) = self.sched.fibers.remove(&id) else {
            return;
        };
        if f.task_of.is_some() {
            // The kernel dead-letters the task when the run ends (`task_finished` never came).
            self.sched.running_tasks = self.sched.running_tasks.saturating_sub(1);
        }
        self.roll_back(id, &f);
        self.tx.waiters.retain(|w| *w != id);
        self.sched.timers.retain(|t| t.owner != id);
        self.sched.host_futures.retain(|(owner, _)| *owner != id);
        self.sched.ready.retain(|r| *r != id);
        self.sched.consumed.insert(id);
        self.kill_children(id);
    }

    /// Stop the fibers `id` started and left running.
    fn kill_children(&mut self, id: u32) {
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

    fn run_fiber(&mut self, id: u32) {
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

    /// Undo the open transactions of a fiber that failed or was stopped, dropping the
    /// events they held, and record that.
    /// The transaction context a fiber started by `parent` (with context `parent_in_tx`)
    /// runs in.
    fn tx_context(&self, parent: u32, parent_in_tx: Option<u32>) -> Option<u32> {
        match self.tx.owner {
            Some(o) if o == parent || parent_in_tx == Some(o) => Some(o),
            _ => None,
        }
    }

    /// Whether fiber `id` (with context `in_tx`) must wait for another fiber's open
    /// transaction before it writes.
    fn must_wait_for_tx(&self, id: u32, in_tx: Option<u32>) -> bool {
        self.tx.owner.is_some_and(|o| o != id && in_tx != Some(o))
    }

    /// The transaction of `owner` has ended: fibers waiting to write go on.
    fn release_tx(&mut self, owner: u32) {
        if self.tx.owner == Some(owner) {
            self.tx.owner = None;
            let waiting: Vec<u32> = self.tx.waiters.drain(..).collect();
            for w in waiting {
                if self.sched.fibers.contains_key(&w) {
                    self.sched.ready.push_back(w);
                }
            }
        }
    }

    fn roll_back(&mut self, id: u32, f: &Fiber) {
        if f.tx.is_empty() {
            return;
        }
        let mut dropped = 0;
        for (held, joined) in f.tx.iter().zip(&f.joined).rev() {
            dropped += held.len();
            if !joined {
                self.host.rollback();
            }
        }
        self.release_tx(id);
        let span = f
            .frames
            .last()
            .and_then(|fr| self.program.span_at(fr.ip.saturating_sub(1) as u32));
        let fields = map_of(vec![
            ("outcome", Value::from("rollback")),
            ("events_dropped", Value::Int(dropped as i64)),
        ]);
        self.publish("transaction", fields, span);
    }

    /// Record a fiber's end and hand its result to whoever waits for it.
    fn finish(&mut self, id: u32, f: Fiber, res: Result<Value, VmError>) {
        if res.is_err() {
            self.roll_back(id, &f);
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
    fn deliver(&mut self, w: u32, res: Result<Value, VmError>) {
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

    fn deliver_host(&mut self, w: u32, res: Result<Value, HostError>) {
        let res = res.map_err(|he| match self.sched.fibers.get(&w) {
            Some(f) => self.error_in(&f.frames, he.class, he.message),
            None => VmError::new(he.class, he.message, None),
        });
        self.deliver(w, res);
    }

    fn fire_due_timers(&mut self) {
        if self.sched.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(i) = self.sched.timers.iter().position(|t| t.at <= now) {
            let t = self.sched.timers.swap_remove(i);
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
    fn wait(&mut self) -> Result<(), VmError> {
        let next_timer = self.sched.timers.iter().map(|t| t.at).min();
        let until = match (next_timer, self.run.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.sched.host_futures.is_empty() {
            // Nothing outside the fibers can wake one: waiting for the deadline would only
            // turn a deadlock into a timeout.
            let (true, Some(until)) = (next_timer.is_some(), until) else {
                let at = self
                    .sched
                    .fibers
                    .get(&0)
                    .map(|f| f.frames.as_slice())
                    .unwrap_or(&[]);
                return Err(self.error_in(
                    at,
                    ErrorClass::Runtime,
                    "every running fiber waits for another: nothing can make progress",
                ));
            };
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        } else {
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
            for (owner, r) in woken.into_iter().rev() {
                self.deliver_host(owner, r);
            }
        }
        if self.run.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(self.timed_out());
        }
        Ok(())
    }

    fn timeout_message(&self) -> String {
        let limit = self.config.budget.timeout.unwrap_or_default();
        format!(
            "the run's time budget of {} ran out (policy timeout or --timeout)",
            format_duration(limit.as_secs_f64() * 1000.0)
        )
    }

    /// The time budget ran out while every fiber waited: the error points where the
    /// main body (or the handler) waits.
    fn timed_out(&self) -> VmError {
        let root = self.sched.fibers.keys().min().copied().unwrap_or(0);
        let at = self
            .sched
            .fibers
            .get(&root)
            .map(|f| f.frames.as_slice())
            .unwrap_or(&[]);
        self.error_in(at, ErrorClass::Timeout, self.timeout_message())
    }

    fn ensure_runtime(&mut self) {
        self.sched.runtime.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread tokio runtime can always be built")
        });
    }

    /// Start (or restart) the attempt of the step fiber `p` waits for.
    fn start_attempt(&mut self, p: u32) {
        let program = self.program;
        let Some(f) = self.sched.fibers.get_mut(&p) else {
            return;
        };
        let depth = f.depth_base + f.frames.len();
        let Some(st) = f.step.as_mut() else {
            return;
        };
        st.attempt += 1;
        let step = &program.steps[st.step as usize];
        let args = st.args.clone();
        let attempt = st.attempt;
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
        if let Some(ms) = step.timeout_ms {
            self.sched.timers.push(Timer {
                at: instant_after(Instant::now(), wait_of_ms(ms)),
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

    fn step_attempt_done(&mut self, p: u32, child: u32, res: Result<Value, VmError>) {
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
        let step = &program.steps[st.step as usize];
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
            Err(e) if attempt <= step.retry => {
                let wait_ms = step.backoff_ms * 2f64.powi(attempt as i32 - 1);
                let fields = map_of(vec![
                    ("step", Value::from(step.label.as_str())),
                    ("status", Value::from("retrying")),
                    ("attempt", Value::Int(attempt as i64)),
                    ("error", Value::from(e.message())),
                    ("backoff", Value::Duration(wait_ms)),
                ]);
                self.publish("step", fields, Some(step.span));
                self.sched.timers.push(Timer {
                    at: instant_after(Instant::now(), wait_of_ms(wait_ms)),
                    owner: p,
                    kind: TimerKind::Backoff,
                });
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
                }
                self.deliver(p, Err(e));
            }
        }
    }

    /// Send a record to the event stream now.
    fn publish(&mut self, kind: &str, fields: Map, span: Option<Span>) {
        self.run.seq += 1;
        let event = Event {
            seq: self.run.seq,
            time: SystemTime::now(),
            kind: kind.to_string(),
            fields,
            span,
        };
        self.events.event(&event);
        self.host.observe(&event);
    }

    /// Send a record to the event stream, or hold it while `f` has a transaction open.
    fn record(&mut self, f: &mut Fiber, kind: &str, fields: Map, span: Option<Span>) {
        let event = HeldEvent {
            kind: kind.to_string(),
            fields,
            span,
        };
        if let Some(held) = f.tx.last_mut() {
            held.push(event);
            return;
        }
        // A fiber started inside another fiber's transaction: its events wait for that
        // transaction's commit too.
        if let Some(o) = f.in_tx.filter(|o| self.tx.owner == Some(*o)) {
            if let Some(held) = self
                .sched
                .fibers
                .get_mut(&o)
                .and_then(|owner| owner.tx.last_mut())
            {
                held.push(event);
                return;
            }
        }
        self.publish(&event.kind, event.fields, event.span);
    }

    fn write_err(&mut self, line: &str) {
        if !self.config.quiet {
            let _ = writeln!(self.err, "{line}");
        }
    }

    /// The budget and clock check every `SLICE` instructions; `Some` when the fiber must stop.
    fn checkpoint(&mut self, f: &Fiber) -> Option<Exit> {
        // The frame's ip is the instruction about to run (after a jump back it is not the
        // one after the last instruction run): the error points at it.
        let mut frames = f.frames.clone();
        if let Some(top) = frames.last_mut() {
            top.ip += 1;
        }
        if let Some(max) = self.config.budget.max_steps {
            if self.run.steps > max {
                return Some(Exit::Failed(self.error_in(
                    &frames,
                    ErrorClass::Timeout,
                    format!("the step budget of {max} instructions ran out (policy max_steps)"),
                )));
            }
        }
        let now = Instant::now();
        if self.run.deadline.is_some_and(|d| now >= d) {
            let e = self.error_in(&frames, ErrorClass::Timeout, self.timeout_message());
            return Some(Exit::Failed(e));
        }
        let next = self.run.steps + SLICE;
        self.run.next_check = match self.config.budget.max_steps {
            Some(max) => next.min(max + 1),
            None => next,
        };
        if !self.sched.ready.is_empty() || self.sched.timers.iter().any(|t| t.at <= now) {
            return Some(Exit::Yield);
        }
        None
    }

    /// Run fiber `id` until it ends, blocks or yields.
    fn exec(&mut self, id: u32, f: &mut Fiber) -> Exit {
        let program = self.program;
        let code = program.code.as_slice();
        let constants = program.constants.as_slice();
        let top = *f.frames.last().expect("a running fiber has a frame");
        let mut ip = top.ip;
        let mut base = top.base;

        // The instruction counter lives in a local while the loop runs; `save_ip!` (called
        // on every way out of the loop) writes it back with the frame's ip.
        let mut steps = self.run.steps;
        let mut next_check = self.run.next_check;
        macro_rules! save_ip {
            () => {
                self.run.steps = steps;
                if let Some(fr) = f.frames.last_mut() {
                    fr.ip = ip;
                }
            };
        }
        macro_rules! fail {
            ($kind:expr, $msg:expr) => {{
                save_ip!();
                return Exit::Failed(self.error_in(&f.frames, $kind, $msg));
            }};
        }
        macro_rules! pop {
            () => {
                f.stack
                    .pop()
                    .expect("the compiler keeps the stack balanced")
            };
        }

        loop {
            steps += 1;
            if steps >= next_check {
                save_ip!();
                if let Some(exit) = self.checkpoint(f) {
                    return exit;
                }
                next_check = self.run.next_check;
            }
            let instr = code[ip];
            ip += 1;
            match instr {
                Instr::Const(k) => f.stack.push(constants[k as usize].clone()),
                Instr::Null => f.stack.push(Value::Null),
                Instr::Pop => discard(pop!()),
                Instr::LoadLocal(slot) => {
                    let v = f.stack[base + slot as usize].clone();
                    f.stack.push(v);
                }
                Instr::StoreLocal(slot) => {
                    let v = pop!();
                    discard(std::mem::replace(&mut f.stack[base + slot as usize], v));
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
                    let v = std::mem::take(&mut f.stack[base + slot as usize]);
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
                    match pop!() {
                        Value::List(mut items) => {
                            Rc::make_mut(&mut items).push(v);
                            f.stack.push(Value::List(items));
                        }
                        other => fail!(
                            ErrorClass::Runtime,
                            format!("append() takes a list, not {}", other.type_name())
                        ),
                    }
                }
                Instr::Binary(op) => {
                    let n = f.stack.len();
                    if let (Value::Int(x), Value::Int(y)) = (&f.stack[n - 2], &f.stack[n - 1]) {
                        if let Some(v) = int_op(op, *x, *y) {
                            f.stack.truncate(n - 1);
                            f.stack[n - 2] = v;
                            continue;
                        }
                    }
                    let b = pop!();
                    let a = pop!();
                    let res = binary(op, a, &b);
                    discard(b);
                    match res {
                        Ok(v) => f.stack.push(v),
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::LocalConstTest { slot, k, op } => {
                    let at = ip - 1;
                    ip += 2;
                    let a = &f.stack[base + slot as usize];
                    let b = &constants[k as usize];
                    let truth = match (a, b) {
                        (Value::Int(x), Value::Int(y)) if int_op(op, *x, *y).is_some() => {
                            int_op(op, *x, *y).is_some_and(|v| v.is_truthy())
                        }
                        _ => match binary(op, a.clone(), b) {
                            Ok(v) => v.is_truthy(),
                            Err(e) => fail!(ErrorClass::Runtime, e.message),
                        },
                    };
                    if truth {
                        ip = at + 4;
                    } else if let Instr::JumpIfFalse(t) = code[at + 3] {
                        ip = t as usize;
                    }
                }
                Instr::LocalConstStore { src, k, op, dst } => {
                    ip += 2;
                    let a = &f.stack[base + src as usize];
                    let b = &constants[k as usize];
                    let v = match (a, b) {
                        (Value::Int(x), Value::Int(y)) if int_op(op, *x, *y).is_some() => {
                            int_op(op, *x, *y).unwrap_or_default()
                        }
                        _ => match binary(op, a.clone(), b) {
                            Ok(v) => v,
                            Err(e) => fail!(ErrorClass::Runtime, e.message),
                        },
                    };
                    ip += 1;
                    discard(std::mem::replace(&mut f.stack[base + dst as usize], v));
                }
                Instr::BinLocalConst { slot, k, op } => {
                    // Fused `LoadLocal; Const; Binary`: the two instructions after this
                    // one are the originals, kept for jumps that land between them.
                    ip += 2;
                    let a = &f.stack[base + slot as usize];
                    let b = &constants[k as usize];
                    if let (Value::Int(x), Value::Int(y)) = (a, b) {
                        if let Some(v) = int_op(op, *x, *y) {
                            f.stack.push(v);
                            continue;
                        }
                    }
                    match binary(op, a.clone(), b) {
                        Ok(v) => f.stack.push(v),
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::BinLocalLocal { a, b, op } => {
                    ip += 2;
                    let x = &f.stack[base + a as usize];
                    let y = &f.stack[base + b as usize];
                    if let (Value::Int(x), Value::Int(y)) = (x, y) {
                        if let Some(v) = int_op(op, *x, *y) {
                            f.stack.push(v);
                            continue;
                        }
                    }
                    let y = y.clone();
                    match binary(op, x.clone(), &y) {
                        Ok(v) => f.stack.push(v),
                        Err(e) => fail!(ErrorClass::Runtime, e.message),
                    }
                }
                Instr::BinConst { k, op } => {
                    ip += 1;
                    let b = &constants[k as usize];
                    // Ints in place on the top of the stack: no pop and push.
                    if let (Some(Value::Int(x)), Value::Int(y)) = (f.stack.last(), b) {
                        if let Some(v) = int_op(op, *x, *y) {
                            if let Some(top) = f.stack.last_mut() {
                                *top = v;
                            }
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
                    let b = pop!();
                    let a = pop!();
                    match binary(op, a, &b) {
                        Ok(v) if v.is_truthy() => ip += 1,
                        Ok(_) => ip = target as usize,
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
                Instr::Jump(t) => ip = t as usize,
                Instr::JumpIfFalse(t) => {
                    if !pop!().is_truthy() {
                        ip = t as usize;
                    }
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
                        if let Value::Str(k) = k {
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
                    let Value::Str(name) = &constants[k as usize] else {
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
                    let Value::Str(name) = &constants[k as usize] else {
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
                    if f.depth_base + f.frames.len() > self.config.budget.max_depth {
                        fail!(
                            ErrorClass::Runtime,
                            format!(
                                "call depth limit of {} exceeded",
                                self.config.budget.max_depth
                            )
                        );
                    }
                    save_ip!();
                    let callee = &program.functions[func as usize];
                    base = f.stack.len() - argc as usize;
                    for _ in argc..callee.n_locals {
                        f.stack.push(Value::Null);
                    }
                    ip = callee.entry as usize;
                    f.frames.push(Frame { func, ip, base });
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
                    save_ip!();
                    base = f.stack.len() - callee.arity as usize;
                    for _ in callee.arity..callee.n_locals {
                        f.stack.push(Value::Null);
                    }
                    ip = callee.entry as usize;
                    f.frames.push(Frame { func, ip, base });
                }
                Instr::JumpIfGiven { slot, target } => {
                    if !is_missing(&f.stack[base + slot as usize]) {
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
                    save_ip!();
                    let callee = &program.functions[info.func as usize];
                    base = f.stack.len();
                    for _ in 0..callee.n_locals {
                        f.stack.push(Value::Null);
                    }
                    ip = callee.entry as usize;
                    f.frames.push(Frame {
                        func: info.func,
                        ip,
                        base,
                    });
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
                        Impl::Intrinsic(which) => {
                            let args: Vec<Value> = f.stack[n..].to_vec();
                            save_ip!();
                            let span = program.span_at(ip as u32 - 1);
                            self.call_intrinsic(f, which, &Args::new(decl, &args), span)
                                .map_err(|m| (ErrorClass::Runtime, m))
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
                                };
                                let answer = self.host.call(hid, args, &mut cx);
                                (answer, cx.cost)
                            };
                            steps = steps.saturating_add(cost);
                            let span = program.span_at(ip as u32 - 1);
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
                    f.stack.truncate(n);
                    match res {
                        Ok(v) => f.stack.push(v),
                        Err((class, msg)) => fail!(class, msg),
                    }
                }
                Instr::Return => {
                    let v = pop!();
                    let frame = f.frames.pop().expect("a frame is running");
                    f.stack.truncate(frame.base);
                    let Some(caller) = f.frames.last() else {
                        self.run.steps = steps;
                        return Exit::Done(v);
                    };
                    f.stack.push(v);
                    ip = caller.ip;
                    base = caller.base;
                }
                Instr::IterStart => {
                    let v = pop!();
                    let items: Value = match &v {
                        Value::List(_) => v,
                        Value::Map(m) => Value::from(m.keys().map(Value::from).collect::<Vec<_>>()),
                        Value::Str(s) => Value::from(
                            s.chars()
                                .map(|c| Value::from(c.to_string()))
                                .collect::<Vec<_>>(),
                        ),
                        other => {
                            let kind = other.type_name();
                            fail!(ErrorClass::Runtime, format!("cannot iterate over {kind}"));
                        }
                    };
                    f.stack.push(items);
                    f.stack.push(Value::Int(0));
                }
                Instr::IterNext(exit) => {
                    let n = f.stack.len();
                    let next = match (&f.stack[n - 2], &f.stack[n - 1]) {
                        (Value::List(items), Value::Int(i)) => {
                            items.get(*i as usize).cloned().map(|item| (item, *i + 1))
                        }
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
                            self.sched.waiters.entry(child).or_default().push(id);
                            return Exit::Blocked;
                        }
                    }
                }
                Instr::Sleep => {
                    let v = pop!();
                    let ms = match v {
                        Value::Duration(ms) => ms,
                        Value::Int(n) => n as f64 * 1000.0,
                        Value::Float(x) => x * 1000.0,
                        other => fail!(
                            ErrorClass::Runtime,
                            format!(
                                "`sleep` takes a duration or a number of seconds, not {}",
                                other.type_name()
                            )
                        ),
                    };
                    if !ms.is_finite() || ms < 0.0 {
                        fail!(
                            ErrorClass::Runtime,
                            "`sleep` takes a duration or a number of seconds that is not negative"
                        );
                    }
                    save_ip!();
                    self.sched.timers.push(Timer {
                        at: instant_after(Instant::now(), wait_of_ms(ms)),
                        owner: id,
                        kind: TimerKind::Sleep,
                    });
                    return Exit::Blocked;
                }
                Instr::Emit { name, has_payload } => {
                    let payload = if has_payload { pop!() } else { Value::Null };
                    let name = constants[name as usize].clone();
                    save_ip!();
                    let span = program.span_at(ip as u32 - 1);
                    let fields = map_of(vec![("name", name), ("payload", payload)]);
                    self.record(f, "emit", fields, span);
                }
                Instr::TxBegin => {
                    if self.must_wait_for_tx(id, f.in_tx) {
                        // Another fiber's transaction is open: wait, then begin again.
                        ip -= 1;
                        save_ip!();
                        self.tx.waiters.push(id);
                        return Exit::Blocked;
                    }
                    let joins = self.tx.owner.is_some_and(|o| o != id);
                    if !joins {
                        if let Err(he) = self.host.begin() {
                            fail!(he.class, he.message);
                        }
                        self.tx.owner = Some(id);
                    }
                    f.tx.push(Vec::new());
                    f.joined.push(joins);
                }
                Instr::TxCommit => {
                    let joined = f.joined.pop().unwrap_or(false);
                    if joined {
                        // A block that joined another fiber's transaction: its events go to
                        // the enclosing level, or to the owner's, and commit with it.
                        let held = f.tx.pop().unwrap_or_default();
                        match f.tx.last_mut() {
                            Some(outer) => outer.extend(held),
                            None => {
                                for e in held {
                                    self.record(f, &e.kind, e.fields, e.span);
                                }
                            }
                        }
                        continue;
                    }
                    let outermost = f.tx.len() == 1;
                    let result = self.host.commit();
                    if outermost {
                        self.release_tx(id);
                    }
                    if let Err(he) = result {
                        // The host undid the writes; the held events go with them.
                        let dropped = f.tx.pop().map_or(0, |h| h.len());
                        let fields = map_of(vec![
                            ("outcome", Value::from("rollback")),
                            ("events_dropped", Value::Int(dropped as i64)),
                        ]);
                        self.publish("transaction", fields, None);
                        fail!(he.class, he.message);
                    }
                    let held = f.tx.pop().unwrap_or_default();
                    save_ip!();
                    let span = program.span_at(ip as u32 - 1);
                    match f.tx.last_mut() {
                        Some(outer) => outer.extend(held),
                        None => {
                            let n = held.len();
                            for e in held {
                                self.publish(&e.kind, e.fields, e.span);
                            }
                            let fields = map_of(vec![
                                ("outcome", Value::from("commit")),
                                ("events", Value::Int(n as i64)),
                            ]);
                            self.publish("transaction", fields, span);
                        }
                    }
                }
                Instr::Trigger { task } => {
                    let data = match pop!() {
                        Value::Map(m) => m.as_ref().clone(),
                        _ => Map::new(),
                    };
                    let Value::Str(task) = &constants[task as usize] else {
                        fail!(ErrorClass::Runtime, "internal: a task name is not a string");
                    };
                    if self.config.enforce_capabilities && !program.grants("kernel.submit") {
                        fail!(
                            ErrorClass::Permission,
                            "`trigger` needs capability `kernel.submit`, which the script does not declare (add it to `require: capabilities:`)"
                        );
                    }
                    if let Err(he) = self.host.trigger(task, data) {
                        fail!(he.class, he.message);
                    }
                }
                Instr::RunStep { step, argc } => {
                    let args = f.stack.split_off(f.stack.len() - argc as usize);
                    let spec = &program.steps[step as usize];
                    if let Some(cap) = spec.requires.iter().find(|c| !program.grants(c)) {
                        fail!(
                            ErrorClass::Permission,
                            format!(
                                "step `{}` requires capability `{cap}`, which the script does not declare (add it to `require: capabilities:`)",
                                spec.label
                            )
                        );
                    }
                    save_ip!();
                    f.step = Some(StepRun {
                        step,
                        args,
                        attempt: 0,
                        child: None,
                    });
                    // The attempt starts once this fiber is parked (start_attempt finds it
                    // in the fiber table through the backoff path with no wait).
                    self.sched.timers.push(Timer {
                        at: Instant::now(),
                        owner: id,
                        kind: TimerKind::Backoff,
                    });
                    return Exit::Blocked;
                }
            }
        }
    }
}

/// Drop a value, without the out-of-line drop call for the kinds that own nothing.
#[inline(always)]
fn discard(v: Value) {
    match v {
        Value::Str(_) | Value::List(_) | Value::Map(_) | Value::Action(_) => drop(v),
        other => std::mem::forget(other),
    }
}

/// `a op b` for two ints when the result is an int or bool without overflow; `None`
/// leaves the case (and its error message) to [`binary`].
#[inline(always)]
fn int_op(op: BinaryOp, x: i64, y: i64) -> Option<Value> {
    match op {
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
    }
}

/// A binary operator (never `and`/`or`, which compile to jumps). `a` is owned: a string or
/// list nobody else holds grows in place under `+`.
#[inline(always)]
fn binary(op: BinaryOp, mut a: Value, b: &Value) -> Result<Value, ValueError> {
    if let (Value::Int(x), Value::Int(y)) = (&a, b) {
        if let Some(v) = int_op(op, *x, *y) {
            return Ok(v);
        }
    }
    if op == BinaryOp::Add {
        match (&mut a, b) {
            (Value::Str(x), Value::Str(y)) => {
                if let Some(buf) = Rc::get_mut(x) {
                    buf.push_str(y);
                    return Ok(a);
                }
            }
            (Value::List(x), Value::List(y)) => {
                if let Some(items) = Rc::get_mut(x) {
                    items.extend(y.iter().cloned());
                    return Ok(a);
                }
            }
            _ => {}
        }
    }
    match op {
        BinaryOp::Add => a.add(b),
        BinaryOp::Sub => a.sub(b),
        BinaryOp::Mul => a.mul(b),
        BinaryOp::Div => a.div(b),
        BinaryOp::Rem => a.rem(b),
        BinaryOp::Eq => Ok(Value::Bool(a == *b)),
        BinaryOp::NotEq => Ok(Value::Bool(a != *b)),
        BinaryOp::Lt => a.lt(b).map(Value::Bool),
        BinaryOp::Le => a.le(b).map(Value::Bool),
        BinaryOp::Gt => a.gt(b).map(Value::Bool),
        BinaryOp::Ge => a.ge(b).map(Value::Bool),
        BinaryOp::In => a.is_in(b).map(Value::Bool),
        BinaryOp::NotIn => a.is_in(b).map(|x| Value::Bool(!x)),
        BinaryOp::And | BinaryOp::Or => Err(ValueError::new(
            "internal: `and`/`or` reached the arithmetic instruction",
        )),
    }
}

/// The marker of a parameter a call through an action reference did not give (never
/// visible to scripts: the callee's prologue replaces it with the default).
fn missing() -> Value {
    Value::Pending(u32::MAX)
}

fn is_missing(v: &Value) -> bool {
    matches!(v, Value::Pending(u32::MAX))
}

/// Elements a native walks in an argument (top level only).
fn value_size(v: &Value) -> usize {
    match v {
        Value::List(items) => items.len(),
        Value::Map(m) => m.len(),
        Value::Str(s) => s.len() / 8,
        _ => 0,
    }
}
