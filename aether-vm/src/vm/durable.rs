//! What a durable run journals of the VM's own non-determinism (docs/durable.md): the
//! clock read by `now()`, the absolute deadlines of `sleep`, step timeouts and backoffs,
//! and each step attempt's start and end. The host keeps the journal
//! ([`Host::journal_value`]); on replay it hands back the recorded values, so a resumed
//! run waits only what is left of a deadline and takes the same branches it took.

use super::*;

/// Seconds since the epoch now.
pub(super) fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The instant of wall-clock time `at` (seconds since the epoch). A time already past maps
/// to an instant as far in the past (when the clock can represent it), so deadlines that
/// passed while the run was down still come due in the order they were set.
pub(super) fn instant_of_wall(at: f64) -> Instant {
    let now = Instant::now();
    let ahead = at - wall_now();
    if ahead >= 0.0 {
        return instant_after(now, wait_of_ms(ahead * 1000.0));
    }
    now.checked_sub(wait_of_ms(-ahead * 1000.0)).unwrap_or(now)
}

impl<W: Write> Vm<'_, W> {
    /// The instant a wait of `ms` milliseconds set by fiber `path` ends: in a durable run,
    /// its absolute deadline is journaled as `name` (or, on replay, read back).
    pub(super) fn deadline_of(
        &mut self,
        path: &str,
        name: &str,
        args: Vec<Value>,
        ms: f64,
    ) -> Result<Instant, HostError> {
        if !self.config.durable {
            return Ok(instant_after(Instant::now(), wait_of_ms(ms)));
        }
        let live = wall_now() + wait_of_ms(ms).as_secs_f64();
        match self
            .host
            .journal_value(path, name, &args, Value::Float(live))?
        {
            Value::Float(at) => Ok(instant_of_wall(at)),
            Value::Int(at) => Ok(instant_of_wall(at as f64)),
            other => Err(HostError::runtime(format!(
                "journal: the recorded deadline of `{name}` is {}, not a time",
                other.type_name()
            ))),
        }
    }

    /// `now()` in a durable run: the journaled clock.
    pub(super) fn durable_now(&mut self, path: &str) -> Result<Value, HostError> {
        self.host
            .journal_value(path, "now", &[], Value::Float(wall_now()))
    }

    /// A step attempt of fiber `path` starts: journal when (and, with a timeout, its
    /// deadline). `Ok(Some(at))`: arm the timeout at `at`; `Ok(None)`: no timeout, or, on
    /// replay, the attempt is recorded as ended some other way than by its timeout (its
    /// calls replay to the same end, so the deadline, long past, must not cut it short).
    pub(super) fn durable_attempt(
        &mut self,
        path: &str,
        label: &str,
        attempt: u32,
        timeout_ms: Option<f64>,
    ) -> Result<Option<Instant>, HostError> {
        if !self.config.durable {
            return Ok(timeout_ms.map(|ms| instant_after(Instant::now(), wait_of_ms(ms))));
        }
        let now = wall_now();
        let deadline = timeout_ms.map_or(Value::Null, |ms| {
            Value::Float(now + wait_of_ms(ms).as_secs_f64())
        });
        let live = map_of(vec![
            ("started", Value::Float(now)),
            ("timeout_at", deadline),
        ]);
        let args = [Value::from(label), Value::Int(i64::from(attempt))];
        let rec = self
            .host
            .journal_value(path, "step", &args, Value::from(live))?;
        let Value::Map(rec) = &rec else {
            return Err(HostError::runtime(
                "journal: a recorded step attempt is not a map",
            ));
        };
        let ended_otherwise = rec
            .get("end")
            .is_some_and(|e| !matches!(e, Value::Str(s) if &**s == "timeout"));
        Ok(match rec.get("timeout_at") {
            Some(Value::Float(at)) if !ended_otherwise => Some(instant_of_wall(*at)),
            _ => None,
        })
    }

    /// Every fiber waits (the next timer is due at `next`): whether the host had the run
    /// leave the process. Only when something outside the run can end the wait: a timer
    /// or a host future (a deadlock stays an error).
    pub(super) fn detached(&mut self, next: Option<Instant>) -> bool {
        if next.is_none() && self.sched.host_futures.is_empty() {
            return false;
        }
        let wake = next.map(|at| {
            let now = Instant::now();
            let ahead = at.saturating_duration_since(now).as_secs_f64();
            wall_now() + ahead
        });
        self.host.detach(wake)
    }

    /// A step attempt of fiber `path` ended (`ok`, `error` or `timeout`).
    pub(super) fn durable_attempt_end(&mut self, path: &str, end: &str) {
        if self.config.durable {
            self.host.journal_end(path, "step", end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_times_map_to_instants_in_order() {
        let now = wall_now();
        let past_far = instant_of_wall(now - 20.0);
        let past_near = instant_of_wall(now - 10.0);
        let future = instant_of_wall(now + 5.0);
        assert!(past_far <= past_near, "earlier deadlines come due first");
        assert!(past_near <= Instant::now());
        let ahead = future.saturating_duration_since(Instant::now());
        assert!(ahead > Duration::from_secs(4) && ahead <= Duration::from_secs(5));
    }
}
