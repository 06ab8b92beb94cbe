//! `aether worker [--once] [--poll D]`: a loop that resumes the durable runs that are due
//! (waiting runs whose timer came or whose signal arrived) and the interrupted ones
//! (running, owner gone), each in a child `aether runs resume ID`. On SIGTERM it lets the
//! current run finish (or leave to wait), starts no other, and exits 0 (docs/durable.md).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use aether_runtime::durable;
use aether_runtime::state::State;

use super::stdio::errln;

#[derive(Args, Debug)]
pub(crate) struct WorkerArgs {
    /// Resume what is due and interrupted once, then exit.
    #[arg(long)]
    once: bool,
    /// How long to sleep between looks at the state database.
    #[arg(long, value_name = "D", default_value = "5s", value_parser = super::run::parse_timeout)]
    poll: Duration,
    /// Directory of the state database [default: .aetherra].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// Set by SIGTERM: finish the current run, start no other.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn runs_to_resume(dir: &Path) -> Result<Vec<String>, String> {
    if !dir.join(aether_runtime::state::DB_FILE).exists() {
        return Ok(Vec::new());
    }
    let st = State::open(dir).map_err(|e| e.0)?;
    let mut ids = durable::due(&st).map_err(|e| e.0)?;
    ids.extend(durable::interrupted(&st).map_err(|e| e.0)?);
    Ok(ids)
}

pub(crate) fn run(args: WorkerArgs) -> i32 {
    let dir = args.state_dir.unwrap_or_else(|| PathBuf::from(".aetherra"));
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            errln!("error: cannot find the aether binary to run resumes with: {e}");
            return 1;
        }
    };
    loop {
        let ids = match runs_to_resume(&dir) {
            Ok(ids) => ids,
            Err(e) => {
                errln!("error: {e}");
                return 1;
            }
        };
        for id in ids {
            if STOP.load(Ordering::SeqCst) {
                break;
            }
            errln!("worker: resuming run `{id}`");
            // A child of its own: the worker outlives a run that crashes, and SIGTERM to
            // the worker leaves the current run to end on its own terms.
            let status = std::process::Command::new(&exe)
                .args(["runs", "resume", &id, "--state-dir"])
                .arg(&dir)
                .status();
            match status {
                Ok(s) => errln!("worker: run `{id}` exited with {}", s.code().unwrap_or(-1)),
                Err(e) => errln!("worker: cannot start the resume of `{id}`: {e}"),
            }
        }
        if args.once || STOP.load(Ordering::SeqCst) {
            return 0;
        }
        let until = Instant::now() + args.poll;
        while Instant::now() < until {
            if STOP.load(Ordering::SeqCst) {
                return 0;
            }
            std::thread::sleep(Duration::from_millis(50).min(args.poll));
        }
    }
}
