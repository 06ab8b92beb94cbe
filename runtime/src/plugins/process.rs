//! Running a plugin's command: spawned as the leader of its own process group, fed the
//! request, read with caps, and killed whole on timeout, on drop and at exit.

use std::future::{poll_fn, Future};
use std::path::Path;
use std::pin::pin;
use std::process::Stdio;
use std::task::Poll;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::protocol::{interpret, request_line, stderr_tail, trim_secs};
use super::{Manifest, PluginError, PluginErrorKind};

/// The most of a plugin's stdout that is kept (the response is its first line, which must
/// end within it).
pub(super) const STDOUT_CAP: usize = 16 * 1024 * 1024;
/// The most of a plugin's stderr that is kept (its tail).
const STDERR_KEEP: usize = 8 * 1024;
/// Linux `ETXTBSY`: the executable is still open for writing somewhere (a race with a
/// concurrent fork); spawning is retried a few times.
const ETXTBSY: i32 = 26;

/// Runs the plugin's command once and interprets its answer; `key` is the call's idempotency
/// key, sent in the request.
pub(super) async fn run(
    manifest: &Manifest,
    function: &str,
    args: &[Value],
    timeout: Duration,
    key: Option<&str>,
) -> Result<Value, PluginError> {
    let name = &manifest.name;
    let failed = |msg: String| PluginError::new(PluginErrorKind::Failed, msg);
    let Some((program, program_args)) = manifest.command.split_first() else {
        return Err(failed(format!("plugin {name:?} has no command")));
    };
    let request = request_line(name, function, args, key);
    // The files the signed manifest pins are checked before every start: a file swapped
    // since the plugin was loaded does not run.
    manifest
        .verify_pins()
        .map_err(|e| failed(format!("plugin {name:?} is not started: {e}")))?;

    let mut child = spawn(program, program_args, &manifest.dir)
        .await
        .map_err(|e| failed(format!("plugin {name:?}: cannot start {program:?}: {e}")))?;
    // Declared after `child` so that it is dropped first: if this future is dropped (the
    // caller gave up), the group is killed while the plugin is still unreaped.
    let mut group = ProcessGroup::of(&child);
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let exchange = async {
        // Once the plugin has exited, whatever it left running in its group is killed, which
        // also closes the pipes such leftovers may hold; then the plugin is reaped.
        let (out, err) = communicate(
            stdin,
            stdout,
            stderr,
            request.as_bytes(),
            group.kill_after_exit(),
        )
        .await;
        let status = child.wait().await;
        (out, err, status)
    };
    let (out, err, status) = match tokio::time::timeout(timeout, exchange).await {
        Ok(done) => done,
        Err(_) => {
            group.kill();
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            return Err(PluginError::new(
                PluginErrorKind::Timeout,
                format!(
                    "plugin {name:?} function {function:?} timed out after {}s and was killed",
                    trim_secs(timeout)
                ),
            ));
        }
    };
    let stderr_note = stderr_tail(&err);
    let status = status.map_err(|e| {
        failed(format!(
            "plugin {name:?}: cannot wait for {program:?}: {e}{stderr_note}"
        ))
    })?;
    interpret(name, function, status, &out, &stderr_note)
}

/// Spawns the command in `dir` with piped stdio, retrying briefly on `ETXTBSY`.
async fn spawn(
    program: &str,
    args: &[String],
    dir: &Path,
) -> std::io::Result<tokio::process::Child> {
    let mut attempt = 0;
    loop {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The leader of a new process group (whose id is its pid), so that everything it
        // starts can be killed with it (see `ProcessGroup`).
        #[cfg(unix)]
        command.process_group(0);
        #[cfg(target_os = "linux")]
        {
            let host = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
            // SAFETY: `guard::split` does only async-signal-safe system calls (no allocation,
            // no lock), as a `pre_exec` hook in the child of a multi-threaded process must.
            unsafe {
                command.pre_exec(move || guard::split(host));
            }
        }
        let result = command.spawn();
        match result {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// A guard between `aether` and a plugin, so that a killed `aether` (SIGKILL included,
/// which no handler sees) leaves no plugin behind, nor anything the plugin started in its
/// process group.
///
/// The spawned child (the group leader, whose pid `aether` knows) forks once more before
/// the exec: the new process execs the plugin, the spawned one stays as its guard. The guard
/// asks for `SIGTERM` when its parent thread ends (`PR_SET_PDEATHSIG`), closes every
/// descriptor (the pipes are the plugin's), and waits: when the plugin exits, it exits the
/// same way (status or signal), so `aether` sees the plugin's own end; when `aether` dies,
/// it kills its whole process group, the plugin and its children with it. The plugin in
/// turn asks for `SIGKILL` when the guard dies.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that spawned the guard ends: plugins are
/// started from the thread that runs the script, which outlives them (an invocation is
/// killed when it is dropped). What escapes: a process that leaves the group (`setsid`,
/// `setpgid`, a daemonizing double fork into a new session); docs/plugins.md says so.
#[cfg(target_os = "linux")]
mod guard {
    /// Runs in the spawned child before the exec. Returns in the process that execs the
    /// plugin; the guard never returns.
    pub(super) fn split(host: libc::pid_t) -> std::io::Result<()> {
        // SAFETY: plain system calls on values of ours; all async-signal-safe.
        unsafe {
            let mut signals: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut signals);
            libc::sigaddset(&mut signals, libc::SIGTERM);
            libc::sigaddset(&mut signals, libc::SIGCHLD);
            // Blocked before the death signal is asked for, so it waits for `sigwaitinfo`.
            libc::sigprocmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut());
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != host {
                // `aether` died before the request took hold.
                libc::_exit(1);
            }
            let guard = libc::getpid();
            let plugin = libc::fork();
            if plugin < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if plugin == 0 {
                libc::sigprocmask(libc::SIG_UNBLOCK, &signals, std::ptr::null_mut());
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                if libc::getppid() != guard {
                    libc::_exit(1);
                }
                return Ok(());
            }
            close_all();
            watch(plugin, &signals)
        }
    }

    /// Closes every descriptor of the guard: the plugin's pipes and the exec-status pipe
    /// of the spawn must end with the plugin, not with its guard.
    unsafe fn close_all() {
        // SAFETY: close_range(2) and close(2) take plain integers.
        unsafe {
            if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
                let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(256, 65_536) as libc::c_int;
                for fd in 0..max {
                    libc::close(fd);
                }
            }
        }
    }

    /// The guard's life: wait for the plugin's end or for `aether`'s death.
    unsafe fn watch(plugin: libc::pid_t, signals: &libc::sigset_t) -> ! {
        // SAFETY: async-signal-safe system calls on values of ours.
        unsafe {
            loop {
                let mut status = 0;
                if libc::waitpid(plugin, &mut status, libc::WNOHANG) == plugin {
                    if libc::WIFSIGNALED(status) {
                        let sig = libc::WTERMSIG(status);
                        libc::signal(sig, libc::SIG_DFL);
                        let mut one: libc::sigset_t = std::mem::zeroed();
                        libc::sigemptyset(&mut one);
                        libc::sigaddset(&mut one, sig);
                        libc::sigprocmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
                        libc::kill(libc::getpid(), sig);
                    }
                    libc::_exit(if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        1
                    });
                }
                let mut info: libc::siginfo_t = std::mem::zeroed();
                if libc::sigwaitinfo(signals, &mut info) == libc::SIGTERM {
                    // `aether` is gone (or asks the group to end): the whole group goes.
                    libc::kill(0, libc::SIGKILL);
                }
            }
        }
    }
}

/// The process group of a running plugin. On Unix the plugin is spawned as the leader of a
/// new process group (its id is the plugin's pid), which every process it starts joins unless
/// it moves itself elsewhere (`setsid`, `setpgid`); killing the group (`SIGKILL` to `-pgid`)
/// kills the plugin and all of those, where killing the plugin alone would leave, say, the
/// `sleep` that a shell script started running on.
///
/// Dropping it kills the group unless [`ProcessGroup::kill`] or
/// [`ProcessGroup::kill_after_exit`] already has. The group is only ever signalled while the
/// plugin is not reaped (running, or a zombie): then its pid, and so the group id, cannot have
/// been reused by an unrelated process. `run` keeps to that by killing the group before it
/// reaps the plugin and by dropping this before the `Child`. Elsewhere it does nothing.
struct ProcessGroup {
    /// The group id while it may still need killing.
    #[cfg(unix)]
    pgid: Option<libc::pid_t>,
}

impl ProcessGroup {
    /// The group of a just-spawned (so not yet reaped) plugin.
    fn of(child: &tokio::process::Child) -> ProcessGroup {
        #[cfg(unix)]
        {
            let pgid = child
                .id()
                .and_then(|pid| libc::pid_t::try_from(pid).ok())
                .filter(|&pgid| pgid > 1);
            if let Some(pgid) = pgid {
                interrupts::track(pgid);
            }
            ProcessGroup { pgid }
        }
        #[cfg(not(unix))]
        {
            let _ = child;
            ProcessGroup {}
        }
    }

    /// Sends `SIGKILL` to every process of the group, once. Call only while the plugin is
    /// not reaped.
    fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid.take() {
            interrupts::untrack(pgid);
            // SAFETY: kill(2) takes plain integers and touches no memory of ours. A negative
            // pid addresses the process group; `pgid > 1`, so it is never -1 ("every process").
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    /// Waits until the plugin has exited, without reaping it, then kills what is left of its
    /// group (background processes it did not wait for). Afterwards nothing is left to kill, so
    /// the plugin may be reaped. Finishes at once where there is no group.
    async fn kill_after_exit(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid {
            if leader_exited(pgid).await {
                self.kill();
            } else {
                // Reaped by someone else, so the group id may already be reused: leave it.
                interrupts::untrack(pgid);
                self.pgid = None;
            }
        }
    }
}

/// A plugin runs in its own process group, so a Ctrl-C at the terminal reaches only
/// `aether`. These handlers pass the interrupt on: on SIGINT, SIGTERM or SIGHUP they kill the
/// groups of the plugins running now, then let the signal end `aether` as it would have.
/// The live groups sit in lock-free slots, because a signal handler may only do
/// async-signal-safe things (atomic loads and kill(2) are).
#[cfg(unix)]
mod interrupts {
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::sync::Once;

    /// More plugins running at once than this are not tracked (their groups are still
    /// killed on timeout and when the invocation ends; only an interrupt misses them).
    const SLOTS: usize = 64;
    static LIVE: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
    static INSTALL: Once = Once::new();

    pub(super) fn track(pgid: libc::pid_t) {
        INSTALL.call_once(install);
        for slot in &LIVE {
            if slot
                .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
        }
    }

    pub(super) fn untrack(pgid: libc::pid_t) {
        for slot in &LIVE {
            let _ = slot.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    extern "C" fn on_terminate(sig: libc::c_int) {
        for slot in &LIVE {
            let pgid = slot.load(Ordering::SeqCst);
            if pgid > 1 {
                // SAFETY: kill(2) is async-signal-safe and takes plain integers.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
        // SAFETY: signal(2) and raise(3) are async-signal-safe: restore the default action
        // and deliver the signal again, so `aether` ends the way it would have.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    fn install() {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: installs a handler that only does async-signal-safe work. A signal the
            // process was told to ignore (`nohup`, a background job) stays ignored.
            unsafe {
                let handler =
                    on_terminate as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t;
                let previous = libc::signal(sig, handler);
                if previous == libc::SIG_IGN {
                    libc::signal(sig, libc::SIG_IGN);
                }
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until our child `pid` has exited and is a zombie, leaving it for `Child::wait` to
/// reap (`waitid` with `WNOWAIT`); wakes on `SIGCHLD` (polls every 10 ms if that cannot be
/// watched). False if the child cannot be waited for: someone else reaped it.
#[cfg(unix)]
async fn leader_exited(pid: libc::pid_t) -> bool {
    use tokio::signal::unix::{signal, SignalKind};
    // Watching starts before the first check, so an exit in between is not missed.
    let mut sigchld = signal(SignalKind::child()).ok();
    loop {
        // SAFETY: `siginfo_t` is plain data, for which all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable `siginfo_t`; `WNOWAIT` leaves the child waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc != 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        // SAFETY: after a successful `waitid`, `si_pid` is set (0: nothing has exited yet).
        if unsafe { info.si_pid() } != 0 {
            return true;
        }
        match sigchld.as_mut() {
            Some(signals) => {
                if signals.recv().await.is_none() {
                    sigchld = None;
                }
            }
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Writes the request (then closes stdin) while reading stdout and stderr to their ends, and
/// runs `exited` (the plugin exited and what it left in its group was killed) alongside, to
/// its end too: the pipes that leftovers hold open end with them, so the reads end as well.
async fn communicate(
    stdin: Option<tokio::process::ChildStdin>,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    request: &[u8],
    exited: impl Future<Output = ()>,
) -> (Vec<u8>, Vec<u8>) {
    let write = async move {
        if let Some(mut stdin) = stdin {
            // A plugin may exit without reading its input; its answer decides the outcome.
            let _ = stdin.write_all(request).await;
            let _ = stdin.shutdown().await;
        }
    };
    // One byte over the cap is kept, so a response that does not end within it shows.
    let read_out = read_capped(stdout, STDOUT_CAP + 1, false);
    let read_err = read_capped(stderr, STDERR_KEEP, true);
    let mut write = pin!(write);
    let mut read_out = pin!(read_out);
    let mut read_err = pin!(read_err);
    let mut exited = pin!(exited);
    let mut written = false;
    let mut cleaned_up = false;
    let mut out = None;
    let mut err = None;
    poll_fn(|cx| {
        if !written && write.as_mut().poll(cx).is_ready() {
            written = true;
        }
        if !cleaned_up && exited.as_mut().poll(cx).is_ready() {
            cleaned_up = true;
        }
        if out.is_none() {
            if let Poll::Ready(v) = read_out.as_mut().poll(cx) {
                out = Some(v);
            }
        }
        if err.is_none() {
            if let Poll::Ready(v) = read_err.as_mut().poll(cx) {
                err = Some(v);
            }
        }
        if written && cleaned_up && out.is_some() && err.is_some() {
            Poll::Ready((
                out.take().unwrap_or_default(),
                err.take().unwrap_or_default(),
            ))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Reads `reader` to its end, keeping its first `cap` bytes (or its last `cap` with `tail`).
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize, tail: bool) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return kept;
    };
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = &buf[..n];
                if tail {
                    kept.extend_from_slice(chunk);
                    if kept.len() > cap {
                        let excess = kept.len() - cap;
                        kept.drain(..excess);
                    }
                } else if kept.len() < cap {
                    let room = cap - kept.len();
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    }
    kept
}
