//! `aether fmt`: rewrite files in the canonical layout, check them for CI, or format stdin.

use super::stdio::{err, errln};
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use clap::Args;

use aether_syntax::fmt::{format_source, FmtOptions, DEFAULT_LINE_WIDTH};
use aether_syntax::{rules, Diagnostic};

use super::check::{check_all, color_enabled, worker_count};
use super::discover::discover;
use super::migrate::{unified_diff, without_header, write_in_place};
use super::render::render_file;
use super::report::{build_report, panic_message, Options};

#[derive(Args, Debug)]
pub(crate) struct FmtArgs {
    /// Files or directories (searched recursively for *.aether); `-` reads standard input.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Write nothing; exit 1 and list the files that would change.
    #[arg(long)]
    check: bool,
    /// Write nothing; print a unified diff of every file that would change (exit 1 if any).
    #[arg(long)]
    diff: bool,
    /// Format standard input to standard output.
    #[arg(long, conflicts_with = "paths")]
    stdin: bool,
    /// Longest line, in characters, before brackets are broken one item per line.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LINE_WIDTH as u16,
          value_parser = clap::value_parser!(u16).range(20..))]
    line_width: u16,
    /// Format signed files too, removing their (no longer valid) signature header.
    #[arg(long)]
    allow_unsign: bool,
    /// Number of files formatted at once [default: number of CPUs].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
}

/// Stack size of formatting threads, as for checking: parsing recurses over the tree.
const FMT_STACK_BYTES: usize = 64 << 20;

/// What happened to one file.
enum Outcome {
    Unchanged,
    /// Would change (`--check`/`--diff`) or was rewritten.
    Changed {
        old: String,
        new: String,
        unsigned: bool,
    },
    /// Signed, and formatting would change it.
    Signed,
    /// Not formatted: the rendered diagnostics and the result code.
    Failed {
        rendered: String,
        code: i32,
    },
    /// Could not be read or written (IO_ERROR).
    Io(String),
}

impl Outcome {
    fn code(&self) -> i32 {
        match self {
            Outcome::Unchanged => 0,
            Outcome::Changed { .. } | Outcome::Signed => 1,
            Outcome::Failed { code, .. } => *code,
            Outcome::Io(_) => aether_syntax::ResultCode::IoError.number(),
        }
    }
}

pub(crate) fn run(args: FmtArgs) -> i32 {
    let opts = FmtOptions {
        line_width: usize::from(args.line_width),
    };
    let stdin = args.stdin || args.paths.iter().any(|p| p.as_os_str() == "-");
    if stdin {
        if args.paths.len() > 1 {
            errln!("error: `-` (standard input) cannot be combined with other paths");
            return 2;
        }
        return run_stdin(&args, &opts);
    }
    if args.paths.is_empty() {
        errln!("error: give the files or directories to format, or `-` for standard input");
        return 2;
    }
    let files = discover(&args.paths);
    if files.is_empty() {
        errln!("warning: no .aether files found under the given paths");
    }
    let write = !args.check && !args.diff;
    let color = color_enabled();
    let outcomes = check_all(&files, worker_count(args.jobs), FMT_STACK_BYTES, |p| {
        format_file(p, &opts, write, args.allow_unsign, color)
    });

    let mut stdout = super::stdio::Stdout;
    let mut changed = 0;
    for (path, outcome) in files.iter().zip(&outcomes) {
        let shown = path.display().to_string();
        match outcome {
            Outcome::Unchanged => {}
            Outcome::Changed { old, new, unsigned } => {
                changed += 1;
                if args.diff {
                    let _ = stdout.write_all(unified_diff(&shown, old, new).as_bytes());
                } else if args.check {
                    let _ = writeln!(stdout, "would reformat: {shown}");
                }
                if *unsigned {
                    let verb = if write { "removed" } else { "would remove" };
                    errln!(
                        "note: {shown}: {verb} its signature header (formatting changes the signed text); re-sign it with `aether sign {shown} --key SECRET`"
                    );
                }
            }
            Outcome::Signed => {
                if args.check {
                    let _ = writeln!(stdout, "would reformat: {shown}");
                }
                errln!(
                    "error: {shown}: signed, and formatting would invalidate its signature; run `aether fmt --allow-unsign {shown}`, then re-sign it with `aether sign {shown} --key SECRET`"
                );
            }
            Outcome::Failed { rendered, .. } => err!("{rendered}"),
            Outcome::Io(msg) => errln!("error: {shown}: {msg}"),
        }
    }
    let _ = stdout.flush();
    let refused = outcomes.iter().filter(|o| o.code() > 1).count()
        + outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Signed))
            .count();
    let plural = |n: usize| if n == 1 { "file" } else { "files" };
    let unchanged = outcomes.len() - changed - refused;
    let summary = if write {
        format!(
            "{changed} {} reformatted, {unchanged} {} left unchanged",
            plural(changed),
            plural(unchanged)
        )
    } else {
        format!(
            "{changed} {} would be reformatted, {unchanged} {} already formatted",
            plural(changed),
            plural(unchanged)
        )
    };
    if refused > 0 {
        errln!("{summary}, {refused} not formatted");
    } else {
        errln!("{summary}");
    }
    outcomes
        .iter()
        .map(|o| match o {
            // Rewritten as asked: a success.
            Outcome::Changed { .. } if write => 0,
            other => other.code(),
        })
        .find(|&c| c != 0)
        .unwrap_or(0)
}

/// Format one source text: `Ok(None)` when it is already formatted, the new text otherwise
/// (with `unsigned` when a signature header was dropped), or the diagnostics.
fn format_text(
    text: &str,
    opts: &FmtOptions,
    allow_unsign: bool,
) -> Result<Option<(String, bool)>, Vec<Diagnostic>> {
    let formatted =
        catch_unwind(AssertUnwindSafe(|| format_source(text, opts))).unwrap_or_else(|payload| {
            Err(vec![Diagnostic::new(
                &rules::INTERNAL_ERROR,
                format!("internal error: {}", panic_message(payload.as_ref())),
            )
            .with_help(
                "this is a bug in aether, not in your script; please report it with the file",
            )])
        })?;
    if formatted == text {
        return Ok(None);
    }
    let signed = aether_sign::split_header(text) != aether_sign::Header::None;
    if signed && allow_unsign {
        let body = without_header(text);
        let new = format_source(&body, opts)?;
        return Ok(Some((new, true)));
    }
    Ok(Some((formatted, signed)))
}

fn format_file(
    path: &Path,
    opts: &FmtOptions,
    write: bool,
    allow_unsign: bool,
    color: bool,
) -> Outcome {
    let text = match super::discover::read_regular(path) {
        Err(e) => return Outcome::Io(format!("cannot read: {}", e.to_string().to_lowercase())),
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                return Outcome::Io(format!(
                    "file is not valid UTF-8: invalid byte at offset {}",
                    e.utf8_error().valid_up_to()
                ))
            }
        },
    };
    match format_text(&text, opts, allow_unsign) {
        Ok(None) => Outcome::Unchanged,
        Ok(Some((_, true))) if !allow_unsign => Outcome::Signed,
        Ok(Some((new, unsigned))) => {
            if write {
                if let Err(e) = write_in_place(path, &new) {
                    return Outcome::Io(e);
                }
            }
            Outcome::Changed {
                old: text,
                new,
                unsigned,
            }
        }
        Err(diags) => failed(path, text, diags, color),
    }
}

fn failed(path: &Path, text: String, diags: Vec<Diagnostic>, color: bool) -> Outcome {
    let code = diags.first().map_or(1, |d| d.code().number());
    let report = build_report(
        path,
        path.display().to_string(),
        Some(text),
        diags,
        &Options::default(),
    );
    let mut rendered = String::new();
    render_file(
        &report,
        color,
        super::render::DEFAULT_MAX_ERRORS,
        &mut rendered,
    );
    Outcome::Failed { rendered, code }
}

fn run_stdin(args: &FmtArgs, opts: &FmtOptions) -> i32 {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        errln!("error: cannot read standard input: {e}");
        return aether_syntax::ResultCode::IoError.number();
    }
    let Ok(text) = String::from_utf8(bytes) else {
        errln!("error: standard input is not valid UTF-8");
        return aether_syntax::ResultCode::IoError.number();
    };
    let path = Path::new("<stdin>");
    let outcome = match format_text(&text, opts, args.allow_unsign) {
        Ok(None) => Outcome::Unchanged,
        Ok(Some((_, true))) if !args.allow_unsign => Outcome::Signed,
        Ok(Some((new, unsigned))) => Outcome::Changed {
            old: text.clone(),
            new,
            unsigned,
        },
        Err(diags) => failed(path, text.clone(), diags, color_enabled()),
    };
    let mut stdout = super::stdio::Stdout;
    match &outcome {
        Outcome::Unchanged if !args.check && !args.diff => {
            let _ = stdout.write_all(text.as_bytes());
        }
        Outcome::Changed { old, new, unsigned } => {
            if args.diff {
                let _ = stdout.write_all(unified_diff("<stdin>", old, new).as_bytes());
            } else if !args.check {
                let _ = stdout.write_all(new.as_bytes());
            }
            if *unsigned {
                errln!("note: removed the signature header (formatting changes the signed text); re-sign the file with `aether sign FILE --key SECRET`");
            }
        }
        Outcome::Signed => errln!(
            "error: the text is signed, and formatting would invalidate its signature; pass `--allow-unsign`, then re-sign the file with `aether sign FILE --key SECRET`"
        ),
        Outcome::Failed { rendered, .. } => err!("{rendered}"),
        _ => {}
    }
    let _ = stdout.flush();
    // Formatting standard input succeeds when it could be formatted; with --check or
    // --diff, a text that would change fails as a file would.
    match outcome {
        Outcome::Changed { .. } if !args.check && !args.diff => 0,
        other => other.code(),
    }
}
