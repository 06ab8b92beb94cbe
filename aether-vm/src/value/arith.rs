//! The numeric and duration arithmetic of `+ - * / %`: the kind dispatch, int overflow,
//! division by zero, non-finite results and their messages.

use super::{Value, ValueError};

/// A numeric operand after the kind dispatch.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn to_f64(self) -> f64 {
        match self {
            Num::Int(n) => n as f64,
            Num::Float(x) => x,
        }
    }
}

/// An arithmetic operator, for shared dispatch and messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl Arith {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            Arith::Add => "+",
            Arith::Sub => "-",
            Arith::Mul => "*",
            Arith::Div => "/",
            Arith::Rem => "%",
        }
    }
}

impl Value {
    /// The numeric and duration arithmetic shared by `+ - * / %`.
    pub(super) fn arith(&self, op: Arith, other: &Value) -> Result<Value, ValueError> {
        let num = |v: &Value| match v {
            Value::Int(n) => Some(Num::Int(*n)),
            Value::Float(x) => Some(Num::Float(*x)),
            _ => None,
        };
        match (self, other) {
            (Value::Duration(a), Value::Duration(b)) => match op {
                Arith::Add => self.finite(op, other, a + b).map(Value::Duration),
                Arith::Sub => self.finite(op, other, a - b).map(Value::Duration),
                Arith::Div => {
                    self.nonzero(op, other, *b)?;
                    self.finite(op, other, a / b).map(Value::Float)
                }
                Arith::Mul | Arith::Rem => Err(self.unsupported(op, other)),
            },
            (Value::Duration(a), _) if matches!(op, Arith::Mul | Arith::Div) => {
                let Some(b) = num(other) else {
                    return Err(self.unsupported(op, other));
                };
                let b = b.to_f64();
                let res = if op == Arith::Mul {
                    a * b
                } else {
                    self.nonzero(op, other, b)?;
                    a / b
                };
                self.finite(op, other, res).map(Value::Duration)
            }
            (_, Value::Duration(b)) if op == Arith::Mul => {
                let Some(a) = num(self) else {
                    return Err(self.unsupported(op, other));
                };
                self.finite(op, other, a.to_f64() * b).map(Value::Duration)
            }
            _ => match (num(self), num(other)) {
                (Some(Num::Int(a)), Some(Num::Int(b))) => self.int_arith(op, other, a, b),
                (Some(a), Some(b)) => {
                    let (x, y) = (a.to_f64(), b.to_f64());
                    let res = match op {
                        Arith::Add => x + y,
                        Arith::Sub => x - y,
                        Arith::Mul => x * y,
                        Arith::Div => {
                            self.nonzero(op, other, y)?;
                            x / y
                        }
                        Arith::Rem => {
                            self.nonzero(op, other, y)?;
                            x % y
                        }
                    };
                    self.finite(op, other, res).map(Value::Float)
                }
                _ => Err(self.unsupported(op, other)),
            },
        }
    }

    pub(super) fn int_arith(
        &self,
        op: Arith,
        other: &Value,
        a: i64,
        b: i64,
    ) -> Result<Value, ValueError> {
        let res = match op {
            Arith::Add => a.checked_add(b),
            Arith::Sub => a.checked_sub(b),
            Arith::Mul => a.checked_mul(b),
            Arith::Div => {
                if b == 0 {
                    return Err(self.op_error("division by zero", op, other));
                }
                return self
                    .finite(op, other, a as f64 / b as f64)
                    .map(Value::Float);
            }
            Arith::Rem => {
                if b == 0 {
                    return Err(self.op_error("division by zero", op, other));
                }
                // `i64::MIN % -1` is 0 mathematically; only `checked_rem` calls it overflow.
                Some(a.wrapping_rem(b))
            }
        };
        res.map(Value::Int)
            .ok_or_else(|| self.op_error("integer overflow", op, other))
    }

    pub(super) fn nonzero(&self, op: Arith, other: &Value, divisor: f64) -> Result<(), ValueError> {
        if divisor == 0.0 {
            Err(self.op_error("division by zero", op, other))
        } else {
            Ok(())
        }
    }

    pub(super) fn finite(&self, op: Arith, other: &Value, res: f64) -> Result<f64, ValueError> {
        if res.is_finite() {
            Ok(res)
        } else {
            Err(self.op_error("float result is not finite", op, other))
        }
    }

    pub(super) fn op_error(&self, what: &str, op: Arith, other: &Value) -> ValueError {
        ValueError::new(format!(
            "{what} in {} {} {}",
            self.repr(),
            op.symbol(),
            other.repr()
        ))
    }

    pub(super) fn unsupported(&self, op: Arith, other: &Value) -> ValueError {
        ValueError::new(format!(
            "cannot apply {} to {} and {}",
            op.symbol(),
            self.type_name(),
            other.type_name()
        ))
    }
}
