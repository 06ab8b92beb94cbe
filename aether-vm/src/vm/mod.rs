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

use aether_syntax::Span;

mod durable;
mod exec;
mod intrinsics;
mod ops;
mod scheduler;
mod steps;
mod tx;

use ops::missing;

pub(crate) use intrinsics::{intrinsics, Intrinsic};

use aether_check::decl::Capability;

use crate::compiler::ARGS_GLOBAL;
use crate::functions::{Args, FnTable, Impl};
use crate::host::{
    ErrorClass, Event, EventSink, Host, HostCall, HostCx, HostError, NoEvents, NoHost,
};
use crate::program::{Instr, Program};
use crate::value::{format_duration, Map, Value, JSON_MAX_DEPTH};

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

/// Limits of one run. The defaults: no step, time or memory budget, call depth 256.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Instructions the run may execute (`policy: max_steps`); `None` is unlimited.
    pub max_steps: Option<u64>,
    /// Nested calls allowed (default 256); every call counts, tail calls included.
    pub max_depth: usize,
    /// Wall-clock time the run may take (`policy: timeout`, `--timeout`).
    pub timeout: Option<Duration>,
    /// Bytes the run may hold (`policy: max_memory`, `--max-memory`): see [`crate::heap`].
    pub max_memory: Option<u64>,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            max_steps: None,
            max_depth: 256,
            timeout: None,
            max_memory: None,
        }
    }
}

/// The longest a `transaction:` may stay open. The outermost block holds the state
/// database's write lock, and another run waits at most the database's busy timeout for it
/// (the runtime sets that to this plus a second), so a bounded transaction never makes a
/// concurrent run fail. A block open longer fails with TIMEOUT_ERROR and is rolled back.
pub const MAX_TRANSACTION: Duration = Duration::from_secs(4);

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

/// An action's frame. Where the frame below it resumes is kept here, in the frame that
/// returns to it (written by the call, read by the return, nothing else touches it); the
/// running frame's own ip is the loop's while it runs and the fiber's `ip` when it stops.
#[derive(Clone, Copy, Debug)]
struct Frame {
    func: u32,
    /// The caller's next instruction (unused in a fiber's first frame).
    ret_ip: u32,
    /// The frame's first slot on the fiber's value stack.
    base: usize,
    /// The caller's `base` (unused in a fiber's first frame).
    ret_base: usize,
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
    /// The current attempt ran past the step's timeout (how a durable run journals its end).
    timed_out: bool,
}

struct Fiber {
    stack: Vec<Value>,
    frames: Vec<Frame>,
    /// The next instruction of the innermost frame, while the fiber is not running.
    ip: usize,
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
    /// The structural path (`0`, `0.1`, `0.1.2`): see [`HostCx::fiber`].
    path: Rc<str>,
    /// How many fibers this one has started.
    children: u32,
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

/// The pending timers, a min-heap on (due time, order of setting): the next due timer is
/// found in O(log n), so 100,000 sleeping fibers cost nothing per scheduler turn (a scan
/// per turn made stopping them quadratic).
#[derive(Default)]
struct Timers {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Queued>>,
    set: u64,
}

struct Queued {
    at: Instant,
    set: u64,
    timer: Timer,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Queued) -> bool {
        (self.at, self.set) == (other.at, other.set)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Queued) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Queued) -> std::cmp::Ordering {
        (self.at, self.set).cmp(&(other.at, other.set))
    }
}

impl Timers {
    fn push(&mut self, timer: Timer) {
        self.set += 1;
        self.heap.push(std::cmp::Reverse(Queued {
            at: timer.at,
            set: self.set,
            timer,
        }));
    }

    fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    fn clear(&mut self) {
        self.heap.clear();
    }

    /// Removes the timers `keep` refuses (O(n): for one fiber stopping early).
    fn retain(&mut self, mut keep: impl FnMut(&Timer) -> bool) {
        self.heap.retain(|q| keep(&q.0.timer));
    }

    /// When the next timer is due.
    fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|q| q.0.at)
    }

    /// The next timer due at or before `now`, taken off the heap.
    fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        if self.next_at()? <= now {
            self.heap.pop().map(|q| q.0.timer)
        } else {
            None
        }
    }
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
    /// The verifier's verdict on `program`, reached in [`Vm::new`]: a program it refused
    /// never runs (the execution loop reads code, constants and local slots without bounds
    /// checks on what the verifier proved).
    verified: Result<(), crate::verify::VerifyError>,
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
    /// Whether the host journals a durable run (set at run start): see [`Host::durable`].
    durable: bool,
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
    timers: Timers,
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
    /// When the owner opened it (for [`MAX_TRANSACTION`]).
    opened: Option<Instant>,
    waiters: Vec<u32>,
}

/// An instruction index or a count the compiler bounded to `u32` (see
/// `Compiler::u32_of`), as an operand; saturates rather than wraps.
fn index_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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
                durable: false,
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
                timers: Timers::default(),
                host_futures: Vec::new(),
                runtime: None,
                running_tasks: 0,
                tasks_enabled: true,
            },
            tx: TxLock::default(),
            verified: crate::verify::verify(program).map(|_| ()),
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
                    .map(|(i, _)| index_u32(i + 1)),
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
        Some(index_u32(
            self.config
                .line_starts
                .partition_point(|s| *s <= span.start),
        ))
    }

    /// What calls through the table need to know, worked out once per run.
    fn prepare_calls(&mut self) {
        for cap in Capability::ALL {
            self.config.granted[cap as usize] = self.program.grants(cap.as_str());
        }
        self.config.host_functions = self.host.provides_functions();
        self.config.durable = self.host.durable();
    }

    /// An error at `ip` (the innermost frame's next instruction) inside `frames`.
    fn error_in(
        &self,
        frames: &[Frame],
        ip: usize,
        kind: ErrorClass,
        message: impl Into<String>,
    ) -> VmError {
        // Frame `i` is at the instruction before its next one: `ip` for the innermost,
        // else where the frame above returns to.
        let ip_of = |i: usize| frames.get(i + 1).map_or(ip, |up| up.ret_ip as usize);
        let span_of = |i: usize| self.program.span_at(index_u32(ip_of(i).saturating_sub(1)));
        let span = frames.len().checked_sub(1).and_then(span_of);
        // A value operation refused by the memory budget reports an ordinary error; the
        // ledger says it was the budget's.
        let kind = if crate::heap::take_refused() {
            ErrorClass::Memory
        } else {
            kind
        };
        let mut trace = Vec::new();
        for (i, f) in frames.iter().enumerate().rev() {
            if f.func == 0 {
                continue;
            }
            let call_site = i.checked_sub(1).and_then(span_of);
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

    /// Run the main body, then the workflows it did not call, to the end; the result is
    /// the value of a top-level `return`, or null. A failure runs the first matching
    /// `on_error` rule and is still returned.
    pub fn run(&mut self) -> Result<Value, VmError> {
        if let Err(e) = &self.verified {
            return Err(VmError::new(
                ErrorClass::Runtime,
                format!("internal: {e}"),
                None,
            ));
        }
        // The budget counts what this thread allocates from here on, handler included.
        let _memory = crate::heap::Scope::start(self.config.budget.max_memory);
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

    /// An error where fiber `f` stopped.
    fn error_at(&self, f: &Fiber, kind: ErrorClass, message: impl Into<String>) -> VmError {
        self.error_in(&f.frames, f.ip, kind, message)
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

    /// `emit NAME with PAYLOAD`: the event, held like every record while a transaction is
    /// open. A payload deeper than an event stream carries is refused.
    fn emit_event(
        &mut self,
        f: &mut Fiber,
        name: Value,
        payload: Value,
        span: Option<Span>,
    ) -> Result<(), String> {
        if payload.nests_deeper_than(JSON_MAX_DEPTH) {
            return Err(format!(
                "the payload of event \"{}\" nests lists and maps more than {JSON_MAX_DEPTH} levels deep, more than an event stream carries (json_encode it to a string)",
                name.display()
            ));
        }
        let fields = map_of(vec![("name", name), ("payload", payload)]);
        self.record(f, "emit", fields, span);
        Ok(())
    }

    /// `trigger TASK with DATA`: submit a kernel task (the data is a map, anything else
    /// submits an empty one). Needs capability `kernel.submit` when capabilities are enforced.
    fn trigger_task(&mut self, task: &Value, data: &Value) -> Result<(), HostError> {
        let data = match data {
            Value::Map(m) => m.as_ref().clone(),
            _ => Map::new(),
        };
        let Value::Str(task) = task else {
            return Err(HostError::runtime("internal: a task name is not a string"));
        };
        if self.config.enforce_capabilities && !self.program.grants("kernel.submit") {
            return Err(HostError {
                class: ErrorClass::Permission,
                message: "`trigger` needs capability `kernel.submit`, which the script does not declare (add it to `require: capabilities:`)".into(),
            });
        }
        self.host.trigger(task, data).map(|_| ())
    }

    fn write_err(&mut self, line: &str) {
        if !self.config.quiet {
            let _ = writeln!(self.err, "{line}");
        }
    }
}
