//! `aether run`'s progress on a terminal: steps, retries and backoff waits on stderr, drawn
//! cargo-style from the VM's event stream (the VM only emits events; this renders them).
//!
//! Shown only when stderr is a terminal and the run is not quiet (`--quiet`,
//! `AETHERRA_QUIET`). A finished, retried or failed step is a plain line that stays; what
//! runs now (and how long a backoff still waits) is one status line at the bottom, redrawn
//! in place with `\r` and erase-line every 100 ms. The script's own output never mixes with
//! it: each write of the script to the terminal clears the status line first, and the line
//! is drawn again only once the output has ended its line (a script that leaves a line
//! unfinished hides the status line until it finishes it).

use std::io::{self, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aether_vm::{format_duration, Event, EventSink, Value};

use super::render::inert;

/// How often the status line is redrawn (elapsed times, a backoff's remaining time).
const TICK: Duration = Duration::from_millis(100);

/// Back to the start of the line and erase it.
const CLEAR: &[u8] = b"\r\x1b[2K";

/// What the terminal shows.
struct Board {
    running: Vec<(String, i64, Instant)>,
    /// Steps waiting out a backoff before their next attempt, until when.
    waiting: Vec<(String, i64, Instant)>,
    /// The status line is on the screen.
    drawn: bool,
    /// The script's output left the cursor inside a line: nothing is drawn there.
    mid_line: bool,
    color: bool,
    width: usize,
}

fn seconds(d: Duration) -> String {
    format_duration((d.as_millis() / 100 * 100) as f64)
}

impl Board {
    /// A verb right-aligned in 12 columns, as cargo writes them, coloured on a colour terminal.
    fn verb(&self, verb: &str, color: &str) -> String {
        if self.color {
            format!("\x1b[1;{color}m{verb:>12}\x1b[0m")
        } else {
            format!("{verb:>12}")
        }
    }

    /// The status line, `None` when nothing runs or waits.
    fn status(&self, now: Instant) -> Option<String> {
        let mut parts = Vec::new();
        if !self.running.is_empty() {
            let steps: Vec<String> = self
                .running
                .iter()
                .map(|(step, attempt, since)| {
                    let took = seconds(now.saturating_duration_since(*since));
                    match attempt {
                        1 => format!("`{step}` ({took})"),
                        n => format!("`{step}` (attempt {n}, {took})"),
                    }
                })
                .collect();
            parts.push(format!(
                "{} {}",
                self.verb("Running", "36"),
                steps.join(", ")
            ));
        }
        for (step, attempt, until) in &self.waiting {
            let left = seconds(until.saturating_duration_since(now));
            parts.push(format!(
                "{} {left} before attempt {attempt} of `{step}`",
                self.verb("Waiting", "36")
            ));
        }
        if parts.is_empty() {
            return None;
        }
        // One terminal row: a wrapped line could not be redrawn in place.
        Some(fit(&parts.join("  "), self.width.saturating_sub(1)))
    }

    fn clear(&mut self) {
        if self.drawn {
            let _ = io::stderr().write_all(CLEAR);
            self.drawn = false;
        }
    }

    fn draw(&mut self) {
        if self.mid_line {
            return;
        }
        let line = self.status(Instant::now());
        let mut err = io::stderr().lock();
        if self.drawn {
            let _ = err.write_all(CLEAR);
        }
        self.drawn = line.is_some();
        if let Some(line) = line {
            let _ = err.write_all(line.as_bytes());
        }
        let _ = err.flush();
    }

    /// A line that stays, above the status line.
    fn say(&mut self, verb: &str, color: &str, text: &str) {
        self.clear();
        if self.mid_line {
            // Never glue a line of ours to the end of the script's unfinished one.
            let _ = io::stderr().write_all(b"\n");
            self.mid_line = false;
        }
        let line = format!("{} {}\n", self.verb(verb, color), inert(text));
        let _ = io::stderr().write_all(line.as_bytes());
        self.draw();
    }

    fn step(&mut self, event: &Event) {
        let text = |k: &str| event.fields.get(k).map(Value::display).unwrap_or_default();
        let step = text("step");
        let attempt = match event.fields.get("attempt") {
            Some(Value::Int(n)) => *n,
            _ => 1,
        };
        let now = Instant::now();
        let ran = self
            .running
            .iter()
            .position(|(s, a, _)| *s == step && *a == attempt)
            .map(|i| self.running.remove(i).2);
        let took = ran.map(|since| seconds(now.saturating_duration_since(since)));
        let took = took.map(|t| format!(" in {t}")).unwrap_or_default();
        // The first line of an error: a message never breaks the layout.
        let error = text("error").lines().next().unwrap_or("").to_string();
        match text("status").as_str() {
            "started" => {
                self.waiting
                    .retain(|(s, a, _)| !(*s == step && *a == attempt));
                self.running.push((step, attempt, now));
                self.draw();
            }
            "succeeded" => {
                let tries = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                self.say("Finished", "32", &format!("`{step}`{tries}{took}"));
            }
            "retrying" => {
                let wait = match event.fields.get("backoff") {
                    Some(Value::Duration(ms)) => aether_vm::wait_of_ms(*ms),
                    _ => Duration::ZERO,
                };
                self.waiting.push((step.clone(), attempt + 1, now + wait));
                self.say(
                    "Retrying",
                    "33",
                    &format!(
                        "`{step}` in {}: attempt {attempt} failed{took}: {error}",
                        seconds(wait)
                    ),
                );
            }
            "failed" => {
                self.say(
                    "Failed",
                    "31",
                    &format!("`{step}` (attempt {attempt}){took}: {error}"),
                );
            }
            _ => {}
        }
    }
}

/// `s` cut to `columns` visible characters; its colour escapes take no room and are kept.
fn fit(s: &str, columns: usize) -> String {
    let mut out = String::new();
    let mut n = 0;
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) if n == columns => continue,
            (false, _) => n += 1,
        }
        out.push(c);
    }
    out
}

fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(|e| e.into_inner())
}

/// The columns of the terminal on stderr (80 when it cannot be asked).
fn terminal_width() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: TIOCGWINSZ writes a `winsize` into the struct it is given, nothing else.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    80
}

/// The progress display of one run (inactive when stderr is not a terminal or the run is
/// quiet: then every method does nothing).
pub(crate) struct Progress {
    board: Option<Arc<Mutex<Board>>>,
    ticker: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Progress {
    /// Start showing progress when `wanted` and stderr is a terminal.
    pub(crate) fn start(wanted: bool, color: bool) -> Progress {
        use std::io::IsTerminal;
        if !wanted || !io::stderr().is_terminal() {
            return Progress {
                board: None,
                ticker: None,
            };
        }
        let board = Arc::new(Mutex::new(Board {
            running: Vec::new(),
            waiting: Vec::new(),
            drawn: false,
            mid_line: false,
            color,
            width: terminal_width(),
        }));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(&board);
        let ticker = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    let mut b = lock(&shared);
                    let now = Instant::now();
                    b.waiting.retain(|(_, _, until)| *until > now);
                    if b.drawn || !b.running.is_empty() || !b.waiting.is_empty() {
                        b.draw();
                    }
                }
            })
            .ok()
            .map(|handle| (stop, handle));
        Progress {
            board: Some(board),
            ticker,
        }
    }

    /// The event sink that feeds the display.
    pub(crate) fn sink(&self) -> Option<ProgressSink> {
        self.board.clone().map(ProgressSink)
    }

    /// `inner`, writing around the status line when it writes to the same terminal (the
    /// VM's stderr; its stdout when that is a terminal too).
    pub(crate) fn guard<W: Write>(&self, inner: W, same_terminal: bool) -> Guarded<W> {
        Guarded {
            inner,
            board: self.board.clone().filter(|_| same_terminal),
        }
    }

    /// Stop redrawing and take the status line away (before the run's result is printed).
    pub(crate) fn finish(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            let _ = stop.send(());
            let _ = handle.join();
        }
        if let Some(board) = &self.board {
            let mut b = lock(board);
            b.running.clear();
            b.waiting.clear();
            b.clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Feeds `step` events to the display.
pub(crate) struct ProgressSink(Arc<Mutex<Board>>);

impl EventSink for ProgressSink {
    fn event(&mut self, event: &Event) {
        if event.kind == "step" {
            lock(&self.0).step(event);
        }
    }
}

/// A writer of the script's output that clears the status line before each write and
/// draws it again after a complete line. Unguarded (no board), it only passes writes on.
pub(crate) struct Guarded<W> {
    inner: W,
    board: Option<Arc<Mutex<Board>>>,
}

impl<W: Write> Write for Guarded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(board) = &self.board else {
            return self.inner.write(buf);
        };
        let mut b = lock(board);
        b.clear();
        let n = self.inner.write(buf)?;
        self.inner.flush()?;
        if n > 0 {
            b.mid_line = buf[n - 1] != b'\n';
        }
        b.draw();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Several event sinks fed the same events (the `--events` stream and the display).
pub(crate) struct Fanout<'a>(pub(crate) Vec<Box<dyn EventSink + 'a>>);

impl EventSink for Fanout<'_> {
    fn event(&mut self, event: &Event) {
        for sink in &mut self.0 {
            sink.event(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board() -> Board {
        Board {
            running: Vec::new(),
            waiting: Vec::new(),
            drawn: false,
            mid_line: false,
            color: false,
            width: 40,
        }
    }

    #[test]
    fn the_status_line_names_running_steps_and_backoffs_and_fits_one_row() {
        let mut b = board();
        let now = Instant::now();
        assert_eq!(b.status(now), None);
        b.running.push(("fetch".into(), 2, now));
        b.waiting
            .push(("store".into(), 3, now + Duration::from_millis(1500)));
        let line = b.status(now).expect("a status line");
        assert!(
            line.starts_with("     Running `fetch` (attempt 2, 0s)"),
            "{line}"
        );
        assert_eq!(line.chars().count(), 39, "{line}");
        b.width = 200;
        let line = b.status(now).expect("a status line");
        assert!(
            line.ends_with("Waiting 1.5s before attempt 3 of `store`"),
            "{line}"
        );
    }

    #[test]
    fn colour_escapes_do_not_count_against_the_width() {
        let mut b = board();
        b.color = true;
        b.width = 22;
        b.running.push(("a".into(), 1, Instant::now()));
        let line = b.status(Instant::now()).expect("a status line");
        assert_eq!(line, "\x1b[1;36m     Running\x1b[0m `a` (0s)");
        assert_eq!(fit("\x1b[1mabc\x1b[0mdef", 4), "\x1b[1mabc\x1b[0md");
    }
}
