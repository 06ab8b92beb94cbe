//! The per-plugin circuit breaker: closed, open after consecutive failures, half-open for
//! one trial invocation after the cooldown.

use std::time::{Duration, Instant};

/// The state of a plugin's circuit breaker.
#[derive(Debug, Default)]
pub(super) struct Breaker {
    pub(super) consecutive_failures: u32,
    /// When the circuit last opened; `None` while closed.
    pub(super) opened_at: Option<Instant>,
    /// Whether the half-open trial invocation is under way.
    pub(super) trial_in_flight: bool,
}

/// The circuit as reported to scripts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Circuit {
    Closed,
    Open,
    HalfOpen,
}

impl Circuit {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half-open",
        }
    }
}

impl Breaker {
    pub(super) fn circuit(&self, cooldown: Duration) -> Circuit {
        match self.opened_at {
            None => Circuit::Closed,
            Some(at) if at.elapsed() >= cooldown => Circuit::HalfOpen,
            Some(_) => Circuit::Open,
        }
    }

    /// Counts an invocation that ran: a success closes the circuit; a failure opens it when
    /// the consecutive failures reach `threshold`, and a failed trial re-opens it
    /// (restarting the cooldown).
    pub(super) fn record(&mut self, ok: bool, trial: bool, threshold: u32) {
        if trial {
            self.trial_in_flight = false;
        }
        if ok {
            self.consecutive_failures = 0;
            self.opened_at = None;
            return;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let reached = self.opened_at.is_none() && self.consecutive_failures >= threshold;
        if trial || reached {
            self.opened_at = Some(Instant::now());
        }
    }
}
