//! Classification history: one snapshot per `aether classify` run, a rolling `trends.json`
//! (the last 20 runs), `aether trends` to show it, and an SVG line chart of it.

use super::stdio::errln;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

/// How many runs `trends.json` keeps.
pub(crate) const KEEP: usize = 20;

#[derive(Args, Debug)]
pub(crate) struct TrendsArgs {
    /// The history directory `aether classify` writes.
    #[arg(long, value_name = "DIR", default_value = ".aetherra/workflow_history")]
    history_dir: PathBuf,
    /// Draw failures and totals over time as an SVG line chart into FILE.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// Print trends.json's entries as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One entry of `trends.json`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) file: String,
    pub(crate) timestamp: String,
    pub(crate) failed: u64,
    pub(crate) total: u64,
}

impl Entry {
    fn to_json(&self) -> Value {
        json!({"file": self.file, "timestamp": self.timestamp, "failed": self.failed, "total": self.total})
    }

    fn from_json(v: &Value) -> Option<Entry> {
        Some(Entry {
            file: v.get("file")?.as_str()?.to_string(),
            timestamp: v.get("timestamp")?.as_str()?.to_string(),
            failed: v.get("failed")?.as_u64()?,
            total: v.get("total")?.as_u64()?,
        })
    }
}

/// Whether `path` names an already open stream rather than a file: `/dev/stdout`,
/// `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`. Such a path can resolve to a regular file
/// (stdout redirected with `>>`), which must be appended to, never replaced.
fn names_a_stream(path: &Path) -> bool {
    path == Path::new("/dev/stdout")
        || path == Path::new("/dev/stderr")
        || path.starts_with("/dev/fd")
        || path.starts_with("/proc/self/fd")
}

/// Write a report: `-` and `/dev/stdout` go through stdout (a reader that closed the pipe
/// early is not an error); other stream paths (see [`names_a_stream`]) and existing paths
/// that are not regular files (a FIFO, a device) are written in place; anything else is
/// replaced atomically (a temporary file in the same directory, then a rename), so a reader
/// never sees half a report. Symbolic links are followed (a dangling one is written through
/// to its target), and an existing file keeps its permissions.
pub(crate) fn write_output(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path == Path::new("-") || path == Path::new("/dev/stdout") {
        // A reader that closed the pipe early is not an error (see `stdio`).
        let mut out = super::stdio::Stdout;
        return out.write_all(bytes).and_then(|()| out.flush());
    }
    let target = match fs::metadata(path) {
        Ok(meta) if !meta.is_file() || names_a_stream(path) => {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .append(meta.is_file())
                .open(path)?;
            f.write_all(bytes)?;
            return f.flush();
        }
        // A link to a regular file: replace the file it points to, not the link.
        Ok(meta) => {
            let target = fs::canonicalize(path)?;
            (target, Some(meta.permissions()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A dangling link: create its target, keep the link.
            match fs::read_link(path) {
                Ok(to) => {
                    let base = path.parent().unwrap_or(Path::new("."));
                    (base.join(to), None)
                }
                Err(_) => (path.to_path_buf(), None),
            }
        }
        Err(e) => return Err(e),
    };
    let (target, permissions) = target;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".aether-report-")
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match permissions {
        Some(p) => tmp.as_file().set_permissions(p)?,
        None => set_default_permissions(tmp.as_file())?,
    }
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

/// New reports are readable by everyone (a temporary file starts private).
#[cfg(unix)]
fn set_default_permissions(file: &fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_default_permissions(_file: &fs::File) -> std::io::Result<()> {
    Ok(())
}

/// A holder keeps the lock for milliseconds (one snapshot and one small rewrite), so a lock
/// file older than this was left by a killed run and is taken over...
const LOCK_STALE: Duration = Duration::from_secs(10);
/// ...and a waiter gives up only well after that.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// A lock on the history directory while a snapshot is added and `trends.json` is read and
/// rewritten, so two classify runs sharing a history never lose an entry.
struct HistoryLock(PathBuf);

impl HistoryLock {
    fn take(dir: &Path) -> Result<HistoryLock, String> {
        let path = dir.join("trends.json.lock");
        let started = Instant::now();
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(HistoryLock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > LOCK_STALE);
                    if stale {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if started.elapsed() > LOCK_WAIT {
                        return Err(format!(
                            "`{}` is held by another classify run (remove it if none is running)",
                            path.display()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(format!("cannot lock `{}`: {e}", path.display())),
            }
        }
    }
}

impl Drop for HistoryLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Read `trends.json` (missing: empty). Entries that are not well-formed are skipped.
pub(crate) fn read_trends(dir: &Path) -> Result<Vec<Entry>, String> {
    let path = dir.join("trends.json");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("`{}` is not valid JSON: {e}", path.display()))?;
    let items = v
        .as_array()
        .ok_or_else(|| format!("`{}` is not a JSON array", path.display()))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Entry::from_json(v).ok_or_else(|| {
                format!(
                    "`{}`: entry {} is not {{file, timestamp, failed, total}} with whole counts",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// Keep a run: write its snapshot as `<stamp>_classification.json` (stamp
/// `%Y%m%dT%H%M%S.%6fZ`, `-N` appended on a collision) and add exactly one entry to
/// `trends.json`, which keeps the last [`KEEP`]. Returns the snapshot's file name.
pub(crate) fn record(
    dir: &Path,
    snapshot: &str,
    now: chrono::DateTime<chrono::Utc>,
    failed: usize,
    total: usize,
) -> Result<String, String> {
    fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create history directory `{}`: {e}", dir.display()))?;
    let _lock = HistoryLock::take(dir)?;
    let stamp = now.format("%Y%m%dT%H%M%S%.6fZ").to_string();
    let mut n = 0;
    let name = loop {
        let name = if n == 0 {
            format!("{stamp}_classification.json")
        } else {
            format!("{stamp}-{n}_classification.json")
        };
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(&name))
        {
            Ok(mut f) => {
                if let Err(e) = f.write_all(snapshot.as_bytes()).and_then(|()| f.sync_all()) {
                    // No half snapshot left behind.
                    let _ = fs::remove_file(dir.join(&name));
                    return Err(format!("cannot write `{}`: {e}", dir.join(&name).display()));
                }
                break name;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(format!("cannot write `{}`: {e}", dir.join(&name).display())),
        }
    };
    let trends_path = dir.join("trends.json");
    let mut entries = match read_trends(dir) {
        Ok(e) => e,
        Err(e) => {
            // Never lose data: keep the unreadable file aside and start a new history.
            let aside = dir.join(format!("trends.json.unreadable-{stamp}"));
            let _ = fs::rename(&trends_path, &aside);
            errln!(
                "warning: {e}; kept it as `{}` and started a new trends.json",
                aside.display()
            );
            Vec::new()
        }
    };
    entries.push(Entry {
        file: name.clone(),
        timestamp: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        failed: failed as u64,
        total: total as u64,
    });
    if entries.len() > KEEP {
        entries.drain(..entries.len() - KEEP);
    }
    let text =
        serde_json::to_string_pretty(&Value::Array(entries.iter().map(Entry::to_json).collect()))
            .expect("JSON values always serialise")
            + "\n";
    write_output(&trends_path, text.as_bytes())
        .map_err(|e| format!("cannot write `{}`: {e}", trends_path.display()))?;
    Ok(name)
}

/// Draw the history of `dir` into `chart`.
pub(crate) fn draw(dir: &Path, chart: &Path) -> Result<(), String> {
    let entries = read_trends(dir)?;
    if entries.is_empty() {
        return Err(format!(
            "no history in `{}` yet: run `aether classify` first",
            dir.display()
        ));
    }
    write_output(chart, svg(&entries).as_bytes())
        .map_err(|e| format!("cannot write `{}`: {e}", chart.display()))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step for about five ticks up to `max`.
fn tick_step(max: u64) -> u64 {
    let raw = (max.max(1) as f64 / 5.0).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    step.max(1.0) as u64
}

/// A short label for a timestamp: `HH:MM:SS` when the whole history fits in a day,
/// else `MM-DD HH:MM`; the text itself when it does not parse.
fn short_time(ts: &str, within_a_day: bool) -> String {
    let format = if within_a_day {
        "%H:%M:%S"
    } else {
        "%m-%d %H:%M"
    };
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| t.format(format).to_string())
        .unwrap_or_else(|_| ts.chars().take(16).collect())
}

/// Whether the first and last runs are less than a day apart.
fn within_a_day(entries: &[Entry]) -> bool {
    let parse = |e: &Entry| chrono::DateTime::parse_from_rfc3339(&e.timestamp).ok();
    match (
        entries.first().and_then(parse),
        entries.last().and_then(parse),
    ) {
        (Some(a), Some(b)) => (b - a).num_seconds().abs() < 86_400,
        _ => false,
    }
}

/// An SVG line chart: total and failed workflows per run, oldest on the left, with axes,
/// a legend and a tooltip (`<title>`) on every point.
pub(crate) fn svg(entries: &[Entry]) -> String {
    const W: f64 = 800.0;
    const H: f64 = 420.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 24.0;
    const TOP: f64 = 56.0;
    const BOTTOM: f64 = 84.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let top_value = entries
        .iter()
        .map(|e| e.total.max(e.failed))
        .max()
        .unwrap_or(0);
    let step = tick_step(top_value);
    let y_max = top_value.div_ceil(step).max(1).saturating_mul(step) as f64;
    let n = entries.len();
    let x = |i: usize| {
        if n == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: u64| TOP + plot_h - plot_h * v as f64 / y_max;
    let mut s = String::new();
    s.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\" aria-labelledby=\"title desc\">\n"
    ));
    let last = &entries[n - 1];
    s.push_str(&format!(
        "<title id=\"title\">Workflow failures over time</title>\n<desc id=\"desc\">Failed and total workflows in the last {n} classify run{}; the latest has {} failed of {}.</desc>\n",
        if n == 1 { "" } else { "s" },
        last.failed,
        last.total
    ));
    s.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>\n"
    ));
    s.push_str(&format!(
        "<text x=\"{LEFT}\" y=\"28\" font-size=\"16\" font-weight=\"bold\" fill=\"#222\">Workflow failures over time (last {n} run{})</text>\n",
        if n == 1 { "" } else { "s" }
    ));
    // Horizontal grid lines and y labels.
    let mut v = 0;
    while v as f64 <= y_max {
        let yy = y(v);
        s.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e5e5\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{v}</text>\n",
            LEFT + plot_w,
            LEFT - 8.0,
            yy + 4.0
        ));
        match v.checked_add(step) {
            Some(next) => v = next,
            None => break,
        }
    }
    // Axes.
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"#333\"/>\n<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n",
        TOP + plot_h,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    ));
    s.push_str(&format!(
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\" fill=\"#333\">workflows</text>\n",
        TOP + plot_h / 2.0
    ));
    // X labels: at most about ten, always the first and the last.
    let every = n.div_ceil(10).max(1);
    let same_day = within_a_day(entries);
    for (i, e) in entries.iter().enumerate() {
        if i % every != 0 && i != n - 1 {
            continue;
        }
        let xx = x(i);
        let yy = TOP + plot_h + 16.0;
        s.push_str(&format!(
            "<text x=\"{xx:.1}\" y=\"{yy:.1}\" text-anchor=\"end\" transform=\"rotate(-35 {xx:.1} {yy:.1})\" fill=\"#555\">{}</text>\n",
            xml_escape(&short_time(&e.timestamp, same_day))
        ));
    }
    // The two series.
    for (label, color, value) in [
        (
            "total",
            "#4c72b0",
            (|e: &Entry| e.total) as fn(&Entry) -> u64,
        ),
        ("failed", "#c44e52", |e: &Entry| e.failed),
    ] {
        let points: Vec<String> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{:.1},{:.1}", x(i), y(value(e))))
            .collect();
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"><title>{label}</title></polyline>\n",
            points.join(" ")
        ));
        for (i, e) in entries.iter().enumerate() {
            let rate = if e.total == 0 {
                0.0
            } else {
                e.failed as f64 * 100.0 / e.total as f64
            };
            s.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\"><title>{}: {} failed of {} ({rate:.1}%)</title></circle>\n",
                x(i),
                y(value(e)),
                xml_escape(&e.timestamp),
                e.failed,
                e.total
            ));
        }
    }
    // Legend.
    let lx = W - RIGHT - 150.0;
    for (k, (label, color)) in [("total workflows", "#4c72b0"), ("failed", "#c44e52")]
        .iter()
        .enumerate()
    {
        let ly = 22.0 + 16.0 * k as f64;
        s.push_str(&format!(
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#333\">{label}</text>\n",
            lx + 22.0,
            lx + 28.0,
            ly + 4.0
        ));
    }
    s.push_str("</svg>\n");
    s
}

pub(crate) fn run(args: TrendsArgs) -> i32 {
    let entries = match read_trends(&args.history_dir) {
        Ok(e) => e,
        Err(e) => {
            errln!("error: {e}");
            return 2;
        }
    };
    if entries.is_empty() {
        errln!(
            "error: no history in `{}` yet: run `aether classify` first",
            args.history_dir.display()
        );
        return 2;
    }
    if let Some(chart) = &args.chart {
        if let Err(e) = write_output(chart, svg(&entries).as_bytes()) {
            errln!("error: cannot write `{}`: {e}", chart.display());
            return 26;
        }
    }
    let mut out = super::stdio::Stdout;
    if args.json {
        let v = Value::Array(entries.iter().map(Entry::to_json).collect());
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON values always serialise")
        );
        return 0;
    }
    let _ = writeln!(
        out,
        "{:<32} {:>7} {:>7} {:>8} {:>7}",
        "timestamp", "failed", "total", "rate", "change"
    );
    let mut prev: Option<u64> = None;
    for e in &entries {
        let rate = if e.total == 0 {
            0.0
        } else {
            e.failed as f64 * 100.0 / e.total as f64
        };
        let change = match prev {
            None => "-".to_string(),
            Some(p) => format!("{:+}", i128::from(e.failed) - i128::from(p)),
        };
        let _ = writeln!(
            out,
            "{:<32} {:>7} {:>7} {:>7.2}% {:>7}",
            e.timestamp, e.failed, e.total, rate, change
        );
        prev = Some(e.failed);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64, failed: u64, total: u64) -> Entry {
        Entry {
            file: format!("{i}_classification.json"),
            timestamp: format!("2026-11-{:02}T10:00:00.000000Z", i + 1),
            failed,
            total,
        }
    }

    #[test]
    fn only_open_streams_are_written_in_place() {
        assert!(names_a_stream(Path::new("/dev/stdout")));
        assert!(names_a_stream(Path::new("/dev/fd/3")));
        assert!(names_a_stream(Path::new("/proc/self/fd/1")));
        // A regular file on a tmpfs under /dev is a file like any other: replaced.
        assert!(!names_a_stream(Path::new("/dev/shm/report.json")));
        assert!(!names_a_stream(Path::new("/proc-reports/x.json")));
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let svg = svg(&[entry(0, u64::MAX, u64::MAX), entry(1, 0, u64::MAX)]);
        assert!(svg.contains("</svg>"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(0), 1);
        assert_eq!(tick_step(7), 2);
        assert_eq!(tick_step(40), 10);
        assert_eq!(tick_step(2700), 1000);
    }

    #[test]
    fn chart_has_both_series_and_a_point_per_run() {
        let entries: Vec<Entry> = (0..3).map(|i| entry(i, 10 - i, 12)).collect();
        let svg = svg(&entries);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("8 failed of 12 (66.7%)"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn a_single_run_is_drawn_in_the_middle() {
        let svg = svg(&[entry(0, 0, 0)]);
        assert!(svg.contains("cx=\"420.0\""));
    }
}
