//! Numbers: `abs`, `round`.

use aether_check::decl::{DefaultValue, FnDecl};
use aether_vm::{Args, Native, Value, ValueError};

use crate::helpers::*;

/// The natives of this section, each declared beside its implementation.
pub(crate) fn natives() -> Vec<Native> {
    vec![
        (
            FnDecl::global("abs")
                .param("x")
                .doc("The absolute value of x."),
            abs,
        ),
        (
            FnDecl::global("round")
                .param("x")
                .opt("digits", DefaultValue::Int(0))
                .doc("x rounded to digits decimal places."),
            round,
        ),
    ]
}

/// `abs(x)`: the absolute value of an int (an error for the smallest int), a float or
/// a duration.
fn abs(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
    match x {
        Value::Int(n) => n
            .checked_abs()
            .map(Value::Int)
            .ok_or_else(|| ValueError::new(format!("abs() integer overflow in abs({n})"))),
        Value::Float(f) => Ok(Value::Float(f.abs())),
        Value::Duration(ms) => Ok(Value::Duration(ms.abs())),
        other => fail(format!(
            "abs() takes a number or duration, not {}",
            other.type_name()
        )),
    }
}

/// `round(x, digits=0)`: an int stays an int. A float is rounded half away from zero
/// at `digits` decimal places of the decimal that `display()` shows (so
/// `round(2.675, 2)` is `2.68`): with `digits=0` the result is an int, otherwise a
/// float. Negative `digits` is an error.
fn round(args: &Args<'_>) -> Result<Value, ValueError> {
    let x = args.get("x")?;
    let digits = args.get("digits")?;
    let digits = match digits {
        Value::Int(d) if *d >= 0 => *d,
        Value::Int(d) => return fail(format!("round() digits must not be negative, got {d}")),
        other => {
            return fail(format!(
                "round() digits must be an int, not {}",
                other.type_name()
            ))
        }
    };
    match x {
        Value::Int(_) => Ok(x.clone()),
        Value::Float(f) => {
            let rounded = round_decimal(*f, digits);
            if digits > 0 {
                return finite("round", rounded);
            }
            trunc_to_int(rounded).map(Value::Int).ok_or_else(|| {
                ValueError::new(format!(
                    "round() of {} is out of range for an int",
                    x.display()
                ))
            })
        }
        other => fail(format!("round() takes a number, not {}", other.type_name())),
    }
}

/// `x` rounded half away from zero at `digits` decimal places of its shortest
/// round-trip decimal text (the digits `display()` shows).
pub(crate) fn round_decimal(x: f64, digits: i64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    // Shortest digits d1 d2 ... dk with x = 0.d1...dk * 10^(exp + 1).
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let mut kept: Vec<u8> = mantissa.bytes().filter(|b| b.is_ascii_digit()).collect();
    let exp: i64 = exp.parse().expect("`{:e}` writes a decimal exponent");
    // Significant digits at or above the rounding place.
    let keep = (exp + 1).saturating_add(digits);
    if keep >= kept.len() as i64 {
        return x;
    }
    let round_up = keep >= 0 && kept[keep as usize] >= b'5';
    kept.truncate(keep.max(0) as usize);
    if round_up {
        // Add one at the last kept place, carrying; a full carry adds a leading 1.
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    if kept.is_empty() {
        return 0.0_f64.copysign(x);
    }
    // The kept digits are an integer in units of 10^-digits.
    let text = format!(
        "{}e-{digits}",
        std::str::from_utf8(&kept).expect("ascii digits")
    );
    let magnitude: f64 = text.parse().expect("digits with an exponent are a float");
    magnitude.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn abs_values() {
        assert_eq!(ok("abs", vec![Value::Int(-5)]), "5");
        assert_eq!(ok("abs", vec![Value::Int(5)]), "5");
        assert_eq!(ok("abs", vec![Value::Float(-2.5)]), "2.5");
        assert_eq!(ok("abs", vec![dur(-1500.0)]), "1.5s");
        assert_eq!(
            err("abs", vec![Value::Int(i64::MIN)]),
            "abs() integer overflow in abs(-9223372036854775808)"
        );
        assert_eq!(
            err("abs", vec![s("-1")]),
            "abs() takes a number or duration, not str"
        );
        assert_eq!(
            err("abs", vec![Value::Bool(true)]),
            "abs() takes a number or duration, not bool"
        );
    }

    fn round_of(x: Value, digits: i64) -> Result<Value, ValueError> {
        call("round", vec![x, Value::Int(digits)])
    }

    #[test]
    fn round_to_int_half_away_from_zero() {
        let show = |x: f64| round_of(Value::Float(x), 0).unwrap().repr();
        assert_eq!(show(2.5), "3");
        assert_eq!(show(-2.5), "-3");
        assert_eq!(show(2.4), "2");
        assert_eq!(show(0.5), "1");
        assert_eq!(show(-0.4), "0");
        assert_eq!(show(99.5), "100");
        assert_eq!(show(0.49999999999999994), "0");
        assert_eq!(show(1e18), "1000000000000000000");
        assert_eq!(round_of(Value::Int(7), 0).unwrap().repr(), "7");
        assert_eq!(
            round_of(Value::Float(1e300), 0).unwrap_err().message,
            "round() of 1e+300 is out of range for an int"
        );
    }

    #[test]
    fn round_to_digits_on_the_displayed_decimal() {
        let show = |x: f64, d| round_of(Value::Float(x), d).unwrap().repr();
        assert_eq!(show(2.675, 2), "2.68");
        assert_eq!(show(1.005, 2), "1.01");
        assert_eq!(show(-1.005, 2), "-1.01");
        assert_eq!(show(0.125, 2), "0.13");
        assert_eq!(show(123.456, 1), "123.5");
        assert_eq!(show(1.0 / 3.0, 3), "0.333");
        assert_eq!(show(2.0 / 3.0, 3), "0.667");
        assert_eq!(show(9.995, 2), "10.0");
        assert_eq!(show(-9.995, 2), "-10.0");
        assert_eq!(show(0.0005, 3), "0.001");
        assert_eq!(show(0.00049, 3), "0.0");
        assert_eq!(show(0.00005, 3), "0.0");
        assert_eq!(show(0.00001234, 6), "0.000012");
        assert_eq!(show(1.5, 5), "1.5");
        assert_eq!(show(0.1 + 0.2, 16), "0.3");
        assert_eq!(show(0.1 + 0.2, 17), "0.30000000000000004");
        assert_eq!(show(1e300, 2), "1e+300");
        assert_eq!(show(1.5e-7, 7), "2e-7");
        assert_eq!(show(0.0, 3), "0.0");
        assert_eq!(show(-1.25, i64::MAX), "-1.25");
        assert_eq!(show(1e-300, i64::MAX), "1e-300");
        // An int stays an int whatever the digits.
        assert_eq!(round_of(Value::Int(5), 2).unwrap().repr(), "5");
    }

    #[test]
    fn round_errors() {
        assert_eq!(
            round_of(Value::Float(1.5), -1).unwrap_err().message,
            "round() digits must not be negative, got -1"
        );
        assert_eq!(
            err("round", vec![Value::Float(1.5), Value::Float(1.0)]),
            "round() digits must be an int, not float"
        );
        assert_eq!(
            round_of(s("1.5"), 0).unwrap_err().message,
            "round() takes a number, not str"
        );
        assert_eq!(
            round_of(dur(1.5), 0).unwrap_err().message,
            "round() takes a number, not duration"
        );
    }
}
