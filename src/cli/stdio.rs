//! The CLI's two streams: everything `aether` prints goes through here, so a closed or full stream never panics.
//!
//! `println!` and `eprintln!` panic when a write fails (`aether status | true` closes the
//! pipe: EPIPE; `2>/dev/full`: ENOSPC), so the CLI never uses them (tests/tidy.rs checks).
//! Instead:
//!
//! - stdout: a reader that went away (EPIPE, `| head`) stops the output quietly, the way
//!   `ls | head` does, and the command finishes with the exit status it would have had.
//!   Any other failure (a full disk) loses output someone wanted: it is reported once on
//!   stderr when the command ends, and a command that would have succeeded exits 26
//!   (IO_ERROR) instead ([`finish`]).
//! - stderr: failures are ignored; there is nowhere left to report them.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The reader of stdout went away: later output is dropped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error on stdout other than a closed pipe.
static STDOUT_FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Exit status when stdout could not be written (other than a closed pipe).
const IO_ERROR: i32 = 26;

/// Note a write error on stdout: a closed pipe closes the stream, anything else is kept for
/// [`finish`].
fn stdout_failed(e: &io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    } else if let Ok(mut first) = STDOUT_FAILED.lock() {
        first.get_or_insert_with(|| e.to_string().to_lowercase());
    }
}

/// Whether the reader of stdout went away (`| head`): long output can stop early.
pub(crate) fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Stdout as a writer that never panics and never fails on a closed pipe: bytes written
/// after the reader went away are dropped and reported as written. Other errors are
/// returned (so a program writing through it, the VM, sees a full disk) and remembered for
/// [`finish`]. The VM's output goes through this, so `aether run x | head -2` keeps the
/// run's own result.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if stdout_closed() {
            return Ok(buf.len());
        }
        match io::stdout().write(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                stdout_failed(&e);
                if stdout_closed() {
                    Ok(buf.len())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if stdout_closed() {
            return Ok(());
        }
        io::stdout().flush().or_else(|e| {
            stdout_failed(&e);
            if stdout_closed() {
                Ok(())
            } else {
                Err(e)
            }
        })
    }
}

/// Stderr as a writer that never fails: errors are dropped.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Write formatted text to stdout (see the module doc for what happens on failure).
pub(crate) fn out_fmt(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if stdout_closed() {
        return;
    }
    if let Err(e) = out.write_fmt(args) {
        stdout_failed(&e);
    }
}

/// Write formatted text to stderr, ignoring failures.
pub(crate) fn err_fmt(args: std::fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Flush stdout and settle the exit status: a write error other than a closed pipe is
/// reported, and turns success into IO_ERROR (26).
pub(crate) fn finish(code: i32) -> i32 {
    if !stdout_closed() {
        if let Err(e) = io::stdout().flush() {
            stdout_failed(&e);
        }
    }
    let failed = STDOUT_FAILED.lock().ok().and_then(|f| f.clone());
    match failed {
        Some(e) => {
            err_fmt(format_args!("error: cannot write to stdout: {e}\n"));
            if code == 0 {
                IO_ERROR
            } else {
                code
            }
        }
        None => code,
    }
}

/// `print!` that cannot panic.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::stdio::out_fmt(format_args!($($arg)*)) };
}

/// `println!` that cannot panic.
macro_rules! outln {
    () => { $crate::cli::stdio::out_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::stdio::out_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that cannot panic.
macro_rules! err {
    ($($arg:tt)*) => { $crate::cli::stdio::err_fmt(format_args!($($arg)*)) };
}

/// `eprintln!` that cannot panic.
macro_rules! errln {
    () => { $crate::cli::stdio::err_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::stdio::err_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {err, errln, out, outln};
