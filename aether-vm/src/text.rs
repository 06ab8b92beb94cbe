//! How values are written as text: quoted strings with JSON escapes, ints, floats in
//! ECMAScript form and durations in their canonical form (`display()` and `repr()` use
//! these).

use std::fmt::Write as _;

/// Writes `s` in double quotes with JSON escapes: the short forms `\" \\ \n \r \t \b \f`,
/// other control characters as `\u00XX` in lower-case hex (as `JSON.stringify` does),
/// everything else, non-ASCII included, as is.
pub(crate) fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The decimal digits of `m` (no sign), written at the end of `buf`: two digits per step
/// from a table, without the formatting machinery (`str(n)` is a hot path).
// The casts narrow `m % 100` (under 100) and `m` (under 10): nothing is lost.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn int_digits(buf: &mut [u8; 20], mut m: u64) -> &[u8] {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
                                2021222324252627282930313233343536373839\
                                4041424344454647484950515253545556575859\
                                6061626364656667686970717273747576777879\
                                8081828384858687888990919293949596979899";
    let mut i = buf.len();
    while m >= 100 {
        let pair = (m % 100) as usize * 2;
        m /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if m >= 10 {
        let pair = m as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + m as u8;
    }
    &buf[i..]
}

/// Appends ASCII `digits` (from [`int_digits`]) to `out`: one byte each, without the
/// UTF-8 validation of a `&str` conversion (which costs more than the digits).
pub(crate) fn push_digits(out: &mut String, digits: &[u8]) {
    out.extend(digits.iter().map(|&b| char::from(b)));
}

/// An int in decimal.
pub(crate) fn write_int(out: &mut String, n: i64) {
    let mut buf = [0u8; 20];
    if n < 0 {
        out.push('-');
    }
    push_digits(out, int_digits(&mut buf, n.unsigned_abs()));
}

/// A float as ECMAScript's `Number.prototype.toString` prints it, with `.0` appended
/// when that text has neither a `.` nor an exponent: `3.0`, `0.30000000000000004`,
/// `1e+21`, `1.5e-7`. Negative zero prints `0.0` (ECMAScript prints `0`).
///
/// Infinite and NaN floats never reach display (operations refuse to produce them);
/// if one does, it prints as ECMAScript spells it (`Infinity`, `-Infinity`, `NaN`).
pub fn format_float(x: f64) -> String {
    let mut out = String::new();
    write_float(&mut out, x);
    out
}

pub(crate) fn write_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if x == 0.0 {
        out.push_str("0.0");
        return;
    }
    if x < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` gives the shortest digits that round-trip (closest to x when several
    // do), which is what ECMA-262 Number::toString asks for: `d[.ddd]e<exp>`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let exp: i32 = exp.parse().expect("`{:e}` writes a decimal exponent");
    // ECMA-262: digits s of length k, value s * 10^(n - k).
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let n = exp + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
        out.push_str(".0");
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

/// A duration (milliseconds) in canonical form, which is itself a valid duration
/// literal: days, hours, minutes and seconds from largest to smallest with zero parts
/// left out, fractional seconds as a decimal (`1m30.25s`, `1m0.5s`), anything under one
/// second as whole `ms` (`150ms`), zero as `0s`, a negative duration with a leading `-`.
///
/// The text is rounded to whole milliseconds (half away from zero): `0.4ms` prints
/// `0s`, `1.5ms` prints `2ms`, `1000.6ms` prints `1.001s`. Non-finite durations never
/// arise from operations; if one is displayed it prints as `infms` / `NaNms`.
pub fn format_duration(ms: f64) -> String {
    let mut out = String::new();
    write_duration(&mut out, ms);
    out
}

pub(crate) fn write_duration(out: &mut String, ms: f64) {
    const SECOND: f64 = 1_000.0;
    const DAY: f64 = 86_400_000.0;
    if !ms.is_finite() {
        let _ = write!(out, "{ms}ms");
        return;
    }
    let total = ms.abs().round();
    if total == 0.0 {
        out.push_str("0s");
        return;
    }
    if ms < 0.0 {
        out.push('-');
    }
    if total < SECOND {
        let _ = write!(out, "{total}ms");
        return;
    }
    // `%` on integral floats is exact, so the parts below a day are exact; the day count
    // is exact while `total` is below 2^53 ms (285,000 years).
    let below_day = total % DAY;
    let days = (total - below_day) / DAY;
    if days > 0.0 {
        let _ = write!(out, "{days:.0}d");
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "below_day is a whole number of ms in [0, DAY)"
    )]
    let below_day = below_day as u64;
    let hours = below_day / 3_600_000;
    let minutes = below_day / 60_000 % 60;
    let seconds = below_day / 1_000 % 60;
    let millis = below_day % 1_000;
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    if seconds > 0 || millis > 0 {
        let _ = write!(out, "{seconds}");
        if millis > 0 {
            let frac = format!("{millis:03}");
            let _ = write!(out, ".{}", frac.trim_end_matches('0'));
        }
        out.push('s');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_print_as_rust_prints_them() {
        let mut cases = vec![0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 12_345, 100_000];
        cases.extend([
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
            10_i64.pow(18),
            10_i64.pow(18) - 1,
        ]);
        let negatives: Vec<i64> = cases.iter().map(|n| n.saturating_neg()).collect();
        cases.extend(negatives);
        for p in 0..19 {
            cases.extend([10_i64.pow(p), 10_i64.pow(p) - 1, 10_i64.pow(p) + 7]);
        }
        for n in cases {
            let mut out = String::from("x");
            write_int(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }
}
