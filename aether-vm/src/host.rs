//! The host interface: what a runtime plugs into the VM (module functions, transactions,
//! kernel tasks) and what the VM reports back (the run's event stream).
//!
//! The VM implements the pure stdlib natives (as plain function pointers) and the
//! intrinsics that need its own streams (`print`, `log`, `trace`, `narrate`, `metrics`,
//! `now`). Everything else a script calls (`memory.store`, `run_plugin`, ...) is a host
//! function of the [`FnTable`](crate::FnTable), called through [`Host::call`] with the
//! host's own id, which may answer at once or with a future the VM's scheduler waits on
//! without blocking other fibers.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use aether_syntax::Span;

use crate::value::{Map, Value};

/// What kind of failure an error is: it picks the result code and which `on_error` rules
/// match (docs/contract/LANGUAGE.md sections 6 and 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// RUNTIME_ERROR.
    Runtime,
    /// TIMEOUT_ERROR: a step, time or instruction budget ran out.
    Timeout,
    /// RUNTIME_ERROR caused by a capability the script did not declare (`PermissionError`).
    Permission,
    /// RUNTIME_ERROR raised by a plugin (`PluginError`).
    Plugin,
    /// NONDETERMINISM_ERROR: a durable run's replay called something other than what its
    /// journal recorded at that point.
    Nondeterminism,
    /// MEMORY_LIMIT_ERROR: the run's memory budget (`policy: max_memory`, `--max-memory`)
    /// ran out. Only an `on_error` rule for `MEMORY_LIMIT_ERROR` or `Any` handles it (not
    /// `RuntimeError`), a step does not retry it, and the handler runs after the failed
    /// run's fibers are gone, under the same budget.
    Memory,
    /// RUNTIME_ERROR of a durable run: an effect started before a crash and its outcome is
    /// unknown (`IndeterminateError`, alias `Indeterminate`).
    Indeterminate,
    /// Not a failure: a durable run left the process to wait (status `waiting`); no
    /// `on_error` rule matches it, and `aether runs resume --due` continues the run.
    Detached,
}

impl ErrorClass {
    /// The structured result code (docs/contract/LANGUAGE.md section 7).
    pub fn code(self) -> i32 {
        match self {
            ErrorClass::Timeout => 23,
            ErrorClass::Nondeterminism => 28,
            ErrorClass::Memory => 29,
            _ => 21,
        }
    }

    pub fn code_name(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "TIMEOUT_ERROR",
            ErrorClass::Nondeterminism => "NONDETERMINISM_ERROR",
            ErrorClass::Memory => "MEMORY_LIMIT_ERROR",
            _ => "RUNTIME_ERROR",
        }
    }

    /// Whether an `on_error` rule for `kind` (a code name or an alias) matches this class.
    pub fn matches(self, kind: &str) -> bool {
        match kind {
            "Any" => self != ErrorClass::Detached,
            "Timeout" | "TIMEOUT_ERROR" => self == ErrorClass::Timeout,
            "RuntimeError" | "RUNTIME_ERROR" => !matches!(
                self,
                ErrorClass::Timeout
                    | ErrorClass::Nondeterminism
                    | ErrorClass::Detached
                    | ErrorClass::Memory
            ),
            "NONDETERMINISM_ERROR" => self == ErrorClass::Nondeterminism,
            "MEMORY_LIMIT_ERROR" => self == ErrorClass::Memory,
            "Indeterminate" | "IndeterminateError" => self == ErrorClass::Indeterminate,
            "PermissionError" => self == ErrorClass::Permission,
            "PluginError" => self == ErrorClass::Plugin,
            _ => false,
        }
    }
}

/// Why a `transaction:` block is rolled back: the error that failed fiber `fiber` (its
/// structural path) inside it. A durable run's host journals it, so a replay that reaches
/// the same point fails the same way (docs/durable.md, "Transactions").
#[derive(Clone, Copy, Debug)]
pub struct TxFailure<'a> {
    pub fiber: &'a str,
    pub class: ErrorClass,
    pub message: &'a str,
    /// The 1-based line the error was raised at, when known.
    pub line: Option<u32>,
}

/// A failure of a host function.
#[derive(Clone, Debug, PartialEq)]
pub struct HostError {
    pub class: ErrorClass,
    pub message: String,
}

impl HostError {
    pub fn runtime(message: impl Into<String>) -> HostError {
        HostError {
            class: ErrorClass::Runtime,
            message: message.into(),
        }
    }

    pub fn new(class: ErrorClass, message: impl Into<String>) -> HostError {
        HostError {
            class,
            message: message.into(),
        }
    }
}

/// A host function's answer that is not ready yet.
pub type HostFuture = Pin<Box<dyn Future<Output = Result<Value, HostError>>>>;

/// The answer of a host call.
pub enum HostCall {
    Ready(Result<Value, HostError>),
    /// The fiber waits for this future; other fibers keep running. The future runs on the
    /// VM's single-threaded tokio runtime, so it may use tokio's timers and processes.
    Pending(HostFuture),
}

/// What a host function may do besides answering.
pub struct HostCx<'a> {
    pub(crate) cost: u64,
    pub(crate) events: &'a mut Vec<(String, Map)>,
    pub(crate) fiber: &'a str,
}

impl HostCx<'_> {
    /// The calling fiber's structural path: `0` for the main fiber, `0.3` for the third
    /// fiber it started (the key of a durable run's journal entries).
    pub fn fiber(&self) -> &str {
        self.fiber
    }

    /// Charge `steps` more instructions to the run's `max_steps` budget (the call itself
    /// costs one).
    pub fn charge(&mut self, steps: u64) {
        self.cost = self.cost.saturating_add(steps);
    }

    /// Add a record of kind `kind` to the run's event stream (held until commit inside a
    /// transaction, like `emit`).
    pub fn event(&mut self, kind: &str, fields: Map) {
        self.events.push((kind.to_string(), fields));
    }
}

/// A runtime that provides module functions, transactions and kernel tasks.
pub trait Host {
    /// Whether this host implements the host functions of the function table (`false`:
    /// calling one is a `not available` error).
    fn provides_functions(&self) -> bool {
        true
    }

    /// Call host function `id` (its position in the declarations the host gave the
    /// function table, see [`FnTable::with_host`](crate::FnTable::with_host)) with one
    /// argument per declared parameter (declaration order, defaults filled in, a variadic
    /// as one list).
    fn call(&mut self, id: u32, args: Vec<Value>, cx: &mut HostCx<'_>) -> HostCall;

    /// A `transaction:` block starts (nested blocks call this once per level).
    fn begin(&mut self) -> Result<(), HostError> {
        Ok(())
    }

    /// The innermost open `transaction:` block of fiber `fiber` (its structural path) ended
    /// without an error: commit it. `Err`: it could not commit (or, replaying a durable run,
    /// the journal records that it failed there); the block is still open and the VM rolls
    /// it back with [`Host::rollback`].
    fn commit(&mut self, fiber: &str) -> Result<(), HostError> {
        let _ = fiber;
        Ok(())
    }

    /// The innermost open `transaction:` block failed: undo its writes. `why`: the error
    /// that failed its fiber (`None` when the fiber was stopped from outside: its step's
    /// timeout, the run's end).
    fn rollback(&mut self, why: Option<&TxFailure<'_>>) {
        let _ = why;
    }

    /// `trigger task(args)`: submit `task` with its arguments by parameter name as a
    /// kernel task; returns the task id.
    fn trigger(&mut self, task: &str, data: Map) -> Result<Value, HostError> {
        let _ = data;
        Err(HostError::runtime(format!(
            "not available yet: `trigger {task}(...)` needs the kernel module, which this build's runtime host does not provide"
        )))
    }

    /// The next kernel task to start, if one is due; the VM runs at most `workers` at once
    /// and asks again when one finishes.
    fn next_task(&mut self) -> Option<Task> {
        None
    }

    /// A task the VM started has ended (its action's result, or the failure's message).
    /// `give_up` says a retry cannot help: the VM stopped it at its deadline, or it names
    /// no action or does not fit the action's parameters.
    fn task_finished(&mut self, id: u64, result: Result<Value, String>, give_up: bool) {
        let _ = (id, result, give_up);
    }

    /// Whether tasks are still queued (the run waits for them before it ends).
    fn tasks_pending(&self) -> bool {
        false
    }

    /// Host futures have just completed and their results were handed to their fibers (a
    /// durable run's host records their outcomes now).
    fn settled(&mut self) {}

    /// Whether this is a durable run: the VM then journals its own non-determinism through
    /// [`Host::journal_value`] (`now()`, `sleep` deadlines, step attempts, backoffs).
    fn durable(&self) -> bool {
        false
    }

    /// A durable run's record of a value the VM chose by itself (the clock, a deadline):
    /// `live` is this execution's value; the host journals it under fiber `fiber`'s next key
    /// with `name` and a digest of `args`, or, replaying, returns the value recorded there
    /// (an error when the replay diverged).
    fn journal_value(
        &mut self,
        fiber: &str,
        name: &str,
        args: &[Value],
        live: Value,
    ) -> Result<Value, HostError> {
        let _ = (fiber, name, args);
        Ok(live)
    }

    /// Add `end` to the last value fiber `fiber` journaled as `name` (how a step attempt
    /// ended).
    fn journal_end(&mut self, fiber: &str, name: &str, end: &str) {
        let _ = (fiber, name, end);
    }

    /// Every fiber waits: a replaying host may let go of an answer it held back to keep the
    /// recorded completion order (the fibers that came earlier are gone).
    fn idle(&mut self) {}

    /// Every fiber of a durable run waits, for nothing sooner than `wake` (unix seconds of
    /// the next timer; `None`: only for host futures): `true` when the host had the run
    /// leave the process (status `waiting`); the VM then ends it with
    /// [`ErrorClass::Detached`].
    fn detach(&mut self, wake: Option<f64>) -> bool {
        let _ = wake;
        false
    }

    /// A metric recorded by `metrics(map)`.
    fn metric(&mut self, name: &str, value: &Value) {
        let _ = (name, value);
    }

    /// Every record of the event stream, after the VM's own sink has it (for hosts that
    /// keep run logs, such as the memory module's `load_logs`).
    fn observe(&mut self, event: &Event) {
        let _ = event;
    }
}

/// A host borrowed for one run, so the caller can use it again afterwards.
impl<H: Host + ?Sized> Host for &mut H {
    fn provides_functions(&self) -> bool {
        (**self).provides_functions()
    }
    fn call(&mut self, id: u32, args: Vec<Value>, cx: &mut HostCx<'_>) -> HostCall {
        (**self).call(id, args, cx)
    }
    fn begin(&mut self) -> Result<(), HostError> {
        (**self).begin()
    }
    fn commit(&mut self, fiber: &str) -> Result<(), HostError> {
        (**self).commit(fiber)
    }
    fn rollback(&mut self, why: Option<&TxFailure<'_>>) {
        (**self).rollback(why)
    }
    fn trigger(&mut self, task: &str, data: Map) -> Result<Value, HostError> {
        (**self).trigger(task, data)
    }
    fn next_task(&mut self) -> Option<Task> {
        (**self).next_task()
    }
    fn task_finished(&mut self, id: u64, result: Result<Value, String>, give_up: bool) {
        (**self).task_finished(id, result, give_up)
    }
    fn tasks_pending(&self) -> bool {
        (**self).tasks_pending()
    }
    fn settled(&mut self) {
        (**self).settled()
    }
    fn durable(&self) -> bool {
        (**self).durable()
    }
    fn journal_value(
        &mut self,
        fiber: &str,
        name: &str,
        args: &[Value],
        live: Value,
    ) -> Result<Value, HostError> {
        (**self).journal_value(fiber, name, args, live)
    }
    fn journal_end(&mut self, fiber: &str, name: &str, end: &str) {
        (**self).journal_end(fiber, name, end)
    }
    fn idle(&mut self) {
        (**self).idle()
    }
    fn detach(&mut self, wake: Option<f64>) -> bool {
        (**self).detach(wake)
    }
    fn metric(&mut self, name: &str, value: &Value) {
        (**self).metric(name, value)
    }
    fn observe(&mut self, event: &Event) {
        (**self).observe(event)
    }
}

/// A kernel task: call action `action` with `data`'s entries as keyword arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: u64,
    pub action: String,
    pub data: Map,
    /// Stop the task (and dead-letter it) if it is still running at this instant.
    pub deadline: Option<std::time::Instant>,
}

/// A host with no module functions: only the VM's own natives are available.
pub struct NoHost;

impl Host for NoHost {
    fn provides_functions(&self) -> bool {
        false
    }

    fn call(&mut self, _id: u32, _args: Vec<Value>, _cx: &mut HostCx<'_>) -> HostCall {
        HostCall::Ready(Err(HostError::runtime("no host functions")))
    }
}

/// One record of the run's event stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// 1, 2, 3, ... in the order records reach the stream (after any transaction commit).
    pub seq: u64,
    pub time: SystemTime,
    /// `emit`, `log`, `narrate`, `trace`, `metric`, `step`, `workflow`, `transaction`,
    /// or a kind a host function chose.
    pub kind: String,
    /// The record's fields (for `emit`: `name` and `payload`; for `log`: `level` and
    /// `message`; ...), in a stable order.
    pub fields: Map,
    /// Where in the script the record came from.
    pub span: Option<Span>,
}

/// Where the event stream goes (`aether run --events FILE` writes JSON lines).
pub trait EventSink {
    fn event(&mut self, event: &Event);
}

/// A sink that keeps nothing.
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&mut self, _event: &Event) {}
}

impl EventSink for Vec<Event> {
    fn event(&mut self, event: &Event) {
        self.push(event.clone());
    }
}
