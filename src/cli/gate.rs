//! `aether gate`: compare two parse baselines and fail when PARSE_ERROR or VALIDATION_ERROR grew.

use super::stdio::{errln, outln};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Map, Value};

use super::output::timestamp;

/// The codes the gate watches, in the order they appear in its output.
const TARGET_CODES: [&str; 2] = ["PARSE_ERROR", "VALIDATION_ERROR"];

#[derive(Args, Debug)]
pub(crate) struct GateArgs {
    /// The baseline just produced (JSON with a `by_code` object).
    #[arg(long = "new", value_name = "FILE")]
    new_baseline: PathBuf,
    /// The reference baseline to compare against, e.g. main's.
    #[arg(long = "ref", value_name = "FILE")]
    ref_baseline: PathBuf,
    /// A code regresses only if its count grew by more than N.
    #[arg(long, value_name = "N", default_value = "5", allow_hyphen_values = true,
          value_parser = parse_abs_threshold)]
    abs_threshold: u64,
    /// ... and also by more than this fraction of the old count (0.10 = 10%; growth from 0 is 1.0).
    #[arg(long, value_name = "FRACTION", default_value = "0.10", allow_hyphen_values = true,
          value_parser = parse_rel_threshold)]
    rel_threshold: f64,
    /// Exit 2 when the reference file does not exist (default: warn and pass).
    #[arg(long)]
    fail_on_missing_ref: bool,
}

/// A whole number of files, 0 or more: `3` or `3.0` (a float with no fractional part, as a
/// script computing the threshold may print it), never `3.5`, `-1`, NaN or infinity.
fn parse_abs_threshold(s: &str) -> Result<u64, String> {
    let s = s.trim();
    s.parse::<u64>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().and_then(whole_count))
        .ok_or_else(|| "must be a whole number of files, 0 or more".to_string())
}

/// `v` as a count when it is a whole number, 0 or more, that fits a `u64`.
fn whole_count(v: f64) -> Option<u64> {
    // 2^64 is the first float that does not fit; every float below it that is whole does.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    (v.is_finite() && v.fract() == 0.0 && !v.is_sign_negative() && v < LIMIT).then_some(v as u64)
}

fn parse_rel_threshold(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("must be a finite fraction, 0 or more (0.10 = 10%)".to_string()),
    }
}

/// The watched codes' counts in one baseline, in [`TARGET_CODES`] order.
type Counts = [u64; TARGET_CODES.len()];

/// Read the watched counts of a baseline: `by_code` values are `n` or `{"count": n}`; a code
/// that is absent counts 0.
fn counts(text: &str) -> Result<Counts, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let by_code = doc
        .as_object()
        .ok_or("not a JSON object")?
        .get("by_code")
        .ok_or("no `by_code` object")?
        .as_object()
        .ok_or("`by_code` is not an object")?;
    let mut out = [0; TARGET_CODES.len()];
    for (slot, code) in out.iter_mut().zip(TARGET_CODES) {
        let Some(v) = by_code.get(code) else { continue };
        let count = |v: &Value| v.as_u64().or_else(|| v.as_f64().and_then(whole_count));
        let n = match v {
            Value::Object(m) => m.get("count").and_then(count),
            other => count(other),
        };
        *slot = n.ok_or_else(|| {
            format!("`by_code.{code}` must be a count (0 or more) or {{\"count\": n}}, not {v}")
        })?;
    }
    Ok(out)
}

/// Why a baseline could not be used.
enum LoadError {
    Missing,
    Bad(String),
}

fn load(path: &Path) -> Result<Counts, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LoadError::Missing,
        _ => LoadError::Bad(format!("cannot read `{}`: {e}", path.display())),
    })?;
    let bad = |e: String| LoadError::Bad(format!("`{}`: {e}", path.display()));
    counts(&decode(&bytes).map_err(bad)?).map_err(bad)
}

/// A baseline's text: UTF-8, with or without a byte order mark (PowerShell writes one), or
/// UTF-16 with one (Windows PowerShell's `>` and `Out-File` write that).
fn decode(bytes: &[u8]) -> Result<String, String> {
    let utf16 = |bytes: &[u8], from: fn([u8; 2]) -> u16| {
        if bytes.len() % 2 != 0 {
            return Err("not valid UTF-16 (an odd number of bytes)".to_string());
        }
        let units: Vec<u16> = bytes.chunks_exact(2).map(|c| from([c[0], c[1]])).collect();
        String::from_utf16(&units).map_err(|_| "not valid UTF-16".to_string())
    };
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, u16::from_be_bytes);
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let bom = bytes.len() - text.len();
    std::str::from_utf8(text)
        .map(str::to_string)
        .map_err(|e| format!("not valid UTF-8 (byte {})", bom + e.valid_up_to()))
}

/// One watched code that grew past both thresholds.
struct Regression {
    code: &'static str,
    old: u64,
    new: u64,
    delta: u64,
    relative_increase: f64,
}

/// The codes that grew by more than `abs` files and more than `rel` of the old count (growth
/// from 0 counts as 1.0). A growth equal to a threshold is not a regression.
fn regressions(new: &Counts, old: &Counts, abs: u64, rel: f64) -> Vec<Regression> {
    let mut out = Vec::new();
    for ((code, &n), &o) in TARGET_CODES.iter().zip(new).zip(old) {
        let delta = n.saturating_sub(o);
        let relative_increase = if o == 0 {
            if n > 0 {
                1.0
            } else {
                0.0
            }
        } else {
            delta as f64 / o as f64
        };
        if delta > abs && relative_increase > rel {
            out.push(Regression {
                code,
                old: o,
                new: n,
                delta,
                relative_increase,
            });
        }
    }
    out
}

fn counts_json(c: &Counts) -> Value {
    let mut m = Map::new();
    for (code, n) in TARGET_CODES.iter().zip(c) {
        m.insert((*code).into(), json!(n));
    }
    Value::Object(m)
}

/// The seed's result object; `ref_counts` is null when the reference was missing.
fn result_json(args: &GateArgs, new: &Counts, old: Option<&Counts>, found: &[Regression]) -> Value {
    let regressions: Vec<Value> = found
        .iter()
        .map(|r| {
            json!({
                "code": r.code,
                "old": r.old,
                "new": r.new,
                "delta": r.delta,
                "relative_increase": r.relative_increase,
            })
        })
        .collect();
    json!({
        "ok": found.is_empty(),
        "timestamp": timestamp(),
        "new_counts": counts_json(new),
        "ref_counts": old.map_or(Value::Null, counts_json),
        "abs_threshold": args.abs_threshold,
        "rel_threshold": args.rel_threshold,
        "regressions": regressions,
    })
}

pub(crate) fn run(args: GateArgs) -> i32 {
    let new = match load(&args.new_baseline) {
        Ok(c) => c,
        Err(LoadError::Missing) => {
            errln!(
                "error: new baseline `{}` does not exist",
                args.new_baseline.display()
            );
            return 2;
        }
        Err(LoadError::Bad(e)) => {
            errln!("error: new baseline {e}");
            return 2;
        }
    };
    let old = match load(&args.ref_baseline) {
        Ok(c) => Some(c),
        Err(LoadError::Missing) if !args.fail_on_missing_ref => {
            errln!(
                "warning: reference baseline `{}` does not exist: nothing to compare, passing (use --fail-on-missing-ref to fail)",
                args.ref_baseline.display()
            );
            None
        }
        Err(LoadError::Missing) => {
            errln!(
                "error: reference baseline `{}` does not exist",
                args.ref_baseline.display()
            );
            return 2;
        }
        Err(LoadError::Bad(e)) => {
            errln!("error: reference baseline {e}");
            return 2;
        }
    };
    let found = old.as_ref().map_or_else(Vec::new, |old| {
        regressions(&new, old, args.abs_threshold, args.rel_threshold)
    });
    let doc = result_json(&args, &new, old.as_ref(), &found);
    let text = serde_json::to_string_pretty(&doc).expect("JSON values always serialise");
    // A closed stdout (`| head`) must not hide the verdict: the exit status still carries it.
    outln!("{text}");
    for r in &found {
        errln!(
            "regression: {} grew from {} to {} (+{}, +{:.1}%)",
            r.code,
            r.old,
            r.new,
            r.delta,
            r.relative_increase * 100.0
        );
    }
    i32::from(!found.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_ints_objects_and_absent_codes() {
        let c = counts(r#"{"by_code": {"SUCCESS": 3, "PARSE_ERROR": {"count": 7}}}"#);
        assert_eq!(c.ok(), Some([7, 0]));
    }

    #[test]
    fn counts_reject_negative_and_fractional_values() {
        for bad in [
            r#"{"by_code": {"PARSE_ERROR": -1}}"#,
            r#"{"by_code": {"PARSE_ERROR": 1.5}}"#,
            r#"{"by_code": {"VALIDATION_ERROR": {"n": 1}}}"#,
            r#"{"by_code": []}"#,
            r#"[]"#,
        ] {
            assert!(counts(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_floats_are_counts() {
        let c = counts(r#"{"by_code": {"PARSE_ERROR": 3.0, "VALIDATION_ERROR": {"count": 1e1}}}"#);
        assert_eq!(c.ok(), Some([3, 10]));
        for bad in ["3.5", "-1", "-0.0", "1e20", "NaN", "inf", "-inf", "x", ""] {
            assert!(parse_abs_threshold(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_abs_threshold("3.0"), Ok(3));
        assert_eq!(parse_abs_threshold(" 7 "), Ok(7));
        assert_eq!(parse_abs_threshold("0.0"), Ok(0));
    }

    #[test]
    fn baselines_may_start_with_a_byte_order_mark() {
        let json = r#"{"by_code": {"PARSE_ERROR": 2}}"#;
        let utf8 = [b"\xEF\xBB\xBF".as_slice(), json.as_bytes()].concat();
        assert_eq!(decode(&utf8).as_deref(), Ok(json));
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(json.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode(&le).as_deref(), Ok(json));
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain(json.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode(&be).as_deref(), Ok(json));
        assert!(decode(b"\xFF\xFE{").is_err());
    }

    #[test]
    fn growth_from_zero_is_relative_one() {
        let found = regressions(&[6, 0], &[0, 0], 5, 0.5);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].relative_increase, 1.0);
    }

    #[test]
    fn equal_to_a_threshold_is_not_a_regression() {
        // delta 5 == abs 5
        assert!(regressions(&[15, 0], &[10, 0], 5, 0.1).is_empty());
        // relative 0.5 == rel 0.5
        assert!(regressions(&[30, 0], &[20, 0], 5, 0.5).is_empty());
        assert_eq!(regressions(&[31, 0], &[20, 0], 5, 0.5).len(), 1);
    }
}
