//! The `homeostasis` module: recorded metrics, SLOs with setpoints, a health score, a PID
//! controller proposing corrective actions, and rate-limited actuation decisions.
//!
//! Everything durable lives in the state database (`metrics`, `actuations`, `audit`); a
//! [`Homeostasis`] value holds only the [`Setpoints`] and the controller's memory, and every
//! call takes the [`State`] it works on. `docs/homeostasis.md` is the reference: the default
//! SLO table, the `setpoints.json` format, the health formula, the controller and the
//! actuation rules.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, OptionalExtension};
use serde_json::{json, Map, Value};

use crate::state::State;

mod setpoints;

pub use setpoints::{Aggregate, Setpoints, Slo};

/// The file in the state directory that overrides the default setpoints.
pub const SETPOINTS_FILE: &str = "setpoints.json";
/// How many of the newest samples of a metric a `mean` or percentile SLO looks at.
pub const DEFAULT_SAMPLES: usize = 100;
/// The cooldown of an action no SLO and no `cooldowns` entry names (the seed's 5 minutes).
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(300);
/// Allowed actuations per component in any 60-second window (the seed's 1 per minute).
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 1;
/// A controller output above this proposes the SLO's breach action.
pub const DEFAULT_ACTION_THRESHOLD: f64 = 1.0;
/// The controller's integral term is kept within `[0, INTEGRAL_LIMIT]` (anti-windup).
pub const INTEGRAL_LIMIT: f64 = 10.0;
/// The seed's controller gains, the default of every SLO.
pub const DEFAULT_GAINS: (f64, f64, f64) = (1.0, 0.1, 0.05);
/// The window of `status().actuations.recent`, `allowed` and `refused`.
pub const RECENT_WINDOW: Duration = Duration::from_secs(3600);
/// The rate-limit window, seconds.
const RATE_WINDOW_S: f64 = 60.0;
/// The `audit.actor` of every row this module writes.
const ACTOR: &str = "homeostasis";

/// One SLO's reading by the controller.
#[derive(Clone, Debug, PartialEq)]
pub struct Correction {
    /// The SLO's name.
    pub slo: String,
    /// Its current value.
    pub value: f64,
    /// Its target.
    pub target: f64,
    /// The normalised deviation ([`Slo::error`]) the controller acted on.
    pub error: f64,
    /// The controller output: `kp·e + ki·∫e + kd·Δe`; positive means worse than target.
    pub output: f64,
    /// The component a corrective action would target.
    pub component: String,
    /// The SLO's breach action when `output` exceeds the action threshold.
    pub action: Option<String>,
}

impl Correction {
    /// `{slo, value, target, error, output, component, action}` (`action` null when none).
    pub fn to_json(&self) -> Value {
        json!({
            "slo": self.slo,
            "value": self.value,
            "target": self.target,
            "error": self.error,
            "output": self.output,
            "component": self.component,
            "action": self.action,
        })
    }
}

/// The controller's memory of one SLO.
#[derive(Clone, Copy, Debug, Default)]
struct PidState {
    integral: f64,
    previous: Option<f64>,
}

/// The homeostasis module: setpoints plus the controller's memory. The database is passed
/// into every call.
#[derive(Debug)]
pub struct Homeostasis {
    setpoints: Setpoints,
    pid: BTreeMap<String, PidState>,
    evaluations: u64,
}

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn rfc3339(epoch: f64) -> String {
    let micros = (epoch * 1e6).round() as i64;
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Store one measurement: the only place a metric row is written (by
/// `homeostasis.record`, `metrics(map)` and the host's own measurements).
pub fn insert_metric(state: &State, name: &str, value: f64, at: &str) -> rusqlite::Result<()> {
    state.conn.execute(
        "INSERT INTO metrics (name, value, at) VALUES (?1, ?2, ?3)",
        params![name, value, at],
    )?;
    Ok(())
}

fn db(e: rusqlite::Error) -> String {
    format!("state database: {e}")
}

/// The percentile `p` (0..=100) of `xs` by linear interpolation between closest ranks.
fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let (a, b) = (v.get(lo)?, v.get(hi)?);
    Some(a + (b - a) * (rank - lo as f64))
}

impl Default for Homeostasis {
    /// The default setpoints and a fresh controller.
    fn default() -> Homeostasis {
        Homeostasis::new(Setpoints::defaults())
    }
}

impl Homeostasis {
    /// A module with these setpoints and a fresh controller.
    pub fn new(setpoints: Setpoints) -> Homeostasis {
        Homeostasis {
            setpoints,
            pid: BTreeMap::new(),
            evaluations: 0,
        }
    }

    /// The setpoints in force.
    pub fn setpoints(&self) -> &Setpoints {
        &self.setpoints
    }

    /// Records a measurement of `metric` (a non-empty name, a finite value).
    pub fn record(&mut self, state: &State, metric: &str, value: f64) -> Result<(), String> {
        if metric.is_empty() {
            return Err("homeostasis.record: the metric name must not be empty".into());
        }
        if !value.is_finite() {
            return Err(format!(
                "homeostasis.record: metric `{metric}` must be a finite number, not {value}"
            ));
        }
        insert_metric(state, metric, value, &rfc3339(now_epoch())).map_err(db)
    }

    /// The newest recorded value of `metric`.
    pub fn latest(&self, state: &State, metric: &str) -> Result<Option<f64>, String> {
        Ok(samples(state, metric, 1)?.first().map(|(_, v)| *v))
    }

    /// The current value of `slo`: a health SLO's is the health score; any other's is its
    /// aggregate over the newest samples of its metric, unless a value recorded under the
    /// SLO's own name or an alias is newer (an externally computed value wins while it is the
    /// freshest).
    pub fn current(&self, state: &State, slo: &Slo) -> Result<Option<f64>, String> {
        if slo.aggregate == Aggregate::Health {
            return self.health(state).map(Some);
        }
        self.metric_value(state, slo)
    }

    fn metric_value(&self, state: &State, slo: &Slo) -> Result<Option<f64>, String> {
        let n = match slo.aggregate {
            Aggregate::Latest | Aggregate::Health => 1,
            Aggregate::Mean | Aggregate::Percentile(_) => self.setpoints.samples,
        };
        let source = samples(state, &slo.metric, n)?;
        // The newest value recorded under the SLO's own name or an alias.
        let mut own: Option<(i64, f64)> = None;
        for name in std::iter::once(&slo.name).chain(&slo.aliases) {
            if *name == slo.metric {
                continue;
            }
            if let Some(&(id, v)) = samples(state, name, 1)?.first() {
                if own.is_none_or(|(best, _)| id > best) {
                    own = Some((id, v));
                }
            }
        }
        if let Some((own_id, v)) = own {
            if source.first().is_none_or(|(id, _)| own_id > *id) {
                return Ok(Some(v));
            }
        }
        if source.is_empty() {
            return Ok(None);
        }
        let values: Vec<f64> = source.iter().map(|(_, v)| *v).collect();
        Ok(match slo.aggregate {
            Aggregate::Latest | Aggregate::Health => values.first().copied(),
            Aggregate::Mean => Some(values.iter().sum::<f64>() / values.len() as f64),
            Aggregate::Percentile(p) => percentile(&values, p),
        })
    }

    /// The current values of the non-health SLOs, then of the health SLOs.
    fn snapshot(&self, state: &State) -> Result<Vec<(&Slo, Option<f64>)>, String> {
        let mut values = Vec::with_capacity(self.setpoints.slos.len());
        for slo in &self.setpoints.slos {
            let v = if slo.aggregate == Aggregate::Health {
                None
            } else {
                self.metric_value(state, slo)?
            };
            values.push((slo, v));
        }
        let health = health_of(&values);
        for (slo, v) in &mut values {
            if slo.aggregate == Aggregate::Health {
                *v = Some(health);
            }
        }
        Ok(values)
    }

    /// The health score in [0, 1]: the mean of [`Slo::score`] over the non-health SLOs that
    /// have a value; 1.0 when none has.
    pub fn health(&self, state: &State) -> Result<f64, String> {
        let mut values = Vec::new();
        for slo in &self.setpoints.slos {
            if slo.aggregate != Aggregate::Health {
                values.push((slo, self.metric_value(state, slo)?));
            }
        }
        Ok(health_of(&values))
    }

    /// `{target, minimum?, maximum?, breach_action}` of the SLO named `name`.
    pub fn get_slo(&self, name: &str) -> Option<Value> {
        self.setpoints.slo(name).map(Slo::to_json)
    }

    /// Whether the SLO named `name` is met by `value`, or (when `None`) by its current value.
    /// With no value recorded the SLO counts as met (no evidence of a breach). An unknown name
    /// is an error.
    pub fn check_slo(&self, state: &State, name: &str, value: Option<f64>) -> Result<bool, String> {
        let slo = self
            .setpoints
            .slo(name)
            .ok_or_else(|| unknown_slo(self, name))?;
        let value = match value {
            Some(v) if !v.is_finite() => {
                return Err(format!(
                    "homeostasis.check_slo: the value must be a finite number, not {v}"
                ))
            }
            Some(v) => Some(v),
            None => self.current(state, slo)?,
        };
        Ok(value.is_none_or(|v| slo.met(v)))
    }

    /// Decides on running `action` on `target` now; see [`Homeostasis::actuate_at`].
    pub fn actuate(
        &mut self,
        state: &State,
        action: &str,
        target: &str,
        params: &Value,
    ) -> Result<Value, String> {
        self.actuate_at(state, action, target, params, now_epoch())
    }

    /// Decides on running `action` on `target` at `now` (seconds since the epoch) and records
    /// the decision in `actuations` and `audit`. Nothing is run: an actuation is a recorded,
    /// rate-limited decision that an operator or an external agent acts on. The answer is
    /// `{ok, reason}`: `ok` true means allowed and recorded (`reason` "allowed"); otherwise
    /// `reason` says why not (`actuators disabled by setpoints`, `cooldown: 42s left`,
    /// `rate limit: 1 per minute per component`). Only allowed actuations count towards
    /// cooldowns and rate limits. An empty action or params that are not a map are errors.
    pub fn actuate_at(
        &mut self,
        state: &State,
        action: &str,
        target: &str,
        params: &Value,
        now: f64,
    ) -> Result<Value, String> {
        if action.is_empty() {
            return Err("homeostasis.actuate: the action must not be empty".into());
        }
        if !now.is_finite() {
            return Err(format!("homeostasis.actuate: bad time {now}"));
        }
        let params = match params {
            Value::Null => Value::Object(Map::new()),
            Value::Object(_) => params.clone(),
            other => {
                return Err(format!(
                    "homeostasis.actuate: params must be a map, not {other}"
                ))
            }
        };
        let refusal = self.refusal(state, action, target, now)?;
        let ok = refusal.is_none();
        let reason = refusal.unwrap_or_else(|| "allowed".to_string());
        let at = rfc3339(now);
        let detail = json!({
            "action": action,
            "target": target,
            "params": params,
            "ok": ok,
            "reason": reason,
        });
        let write = || -> rusqlite::Result<()> {
            state.conn.execute(
                "INSERT INTO actuations (action, target, params, ok, reason, at, at_epoch)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![action, target, params.to_string(), ok, reason, at, now],
            )?;
            state.conn.execute(
                "INSERT INTO audit (at, actor, event, detail) VALUES (?1, ?2, ?3, ?4)",
                params![at, ACTOR, "actuate", detail.to_string()],
            )?;
            Ok(())
        };
        state
            .conn
            .execute_batch("SAVEPOINT homeostasis_actuate")
            .map_err(db)?;
        if let Err(e) = write() {
            let _ = state
                .conn
                .execute_batch("ROLLBACK TO homeostasis_actuate; RELEASE homeostasis_actuate");
            return Err(db(e));
        }
        state
            .conn
            .execute_batch("RELEASE homeostasis_actuate")
            .map_err(db)?;
        Ok(json!({"ok": ok, "reason": reason}))
    }

    /// Why `action` on `target` may not run at `now`, or `None` when it may.
    fn refusal(
        &self,
        state: &State,
        action: &str,
        target: &str,
        now: f64,
    ) -> Result<Option<String>, String> {
        let sp = &self.setpoints;
        if !sp.actuators_enabled {
            return Ok(Some("actuators disabled by setpoints".into()));
        }
        let cooldown = sp.cooldown_for(action, target).as_secs_f64();
        if cooldown > 0.0 {
            let last: Option<f64> = state
                .conn
                .query_row(
                    "SELECT MAX(at_epoch) FROM actuations
                     WHERE action = ?1 AND target = ?2 AND ok = 1",
                    params![action, target],
                    |r| r.get(0),
                )
                .map_err(db)?;
            if let Some(last) = last {
                let left = last + cooldown - now;
                if left > 0.0 {
                    return Ok(Some(format!("cooldown: {}s left", left.ceil() as u64)));
                }
            }
        }
        let recent: i64 = state
            .conn
            .query_row(
                "SELECT COUNT(*) FROM actuations WHERE target = ?1 AND ok = 1 AND at_epoch > ?2",
                params![target, now - RATE_WINDOW_S],
                |r| r.get(0),
            )
            .map_err(db)?;
        if recent >= i64::from(sp.rate_limit_per_minute) {
            return Ok(Some(format!(
                "rate limit: {} per minute per component",
                sp.rate_limit_per_minute
            )));
        }
        Ok(None)
    }

    /// Runs the controller once over every SLO that has a value. For each, the error `e` is
    /// [`Slo::error`] of the current value; the integral adds `e` per evaluation and is kept in
    /// `[0, INTEGRAL_LIMIT]`; the derivative is the change of `e` since the last evaluation (0
    /// the first time). `output = kp·e + ki·integral + kd·derivative`, and the SLO's breach
    /// action is proposed when `output > action_threshold`. Nothing is actuated.
    pub fn evaluate(&mut self, state: &State) -> Result<Vec<Correction>, String> {
        let snapshot: Vec<(Slo, Option<f64>)> = self
            .snapshot(state)?
            .into_iter()
            .map(|(s, v)| (s.clone(), v))
            .collect();
        let threshold = self.setpoints.action_threshold;
        let mut out = Vec::new();
        for (slo, value) in snapshot {
            let Some(value) = value else { continue };
            let e = slo.error(value);
            let pid = self.pid.entry(slo.name.clone()).or_default();
            pid.integral = (pid.integral + e).clamp(0.0, INTEGRAL_LIMIT);
            let derivative = pid.previous.map_or(0.0, |p| e - p);
            pid.previous = Some(e);
            let output = slo.kp * e + slo.ki * pid.integral + slo.kd * derivative;
            out.push(Correction {
                action: (output > threshold).then(|| slo.breach_action.clone()),
                slo: slo.name,
                value,
                target: slo.target,
                error: e,
                output,
                component: slo.component,
            });
        }
        self.evaluations += 1;
        Ok(out)
    }

    /// Forgets the controller's integral and last error of every SLO.
    pub fn reset_controller(&mut self) {
        self.pid.clear();
    }

    /// The state of homeostasis, after the seed's maintenance status:
    /// `{ts, runlevel, health, health_percent, slos: {name: {target, minimum?, maximum?,
    /// breach_action, metric, aggregate, higher_is_better, component, aliases, value, ok,
    /// score}},
    /// breaches, actuations: {recent, allowed, refused, total, last}, metrics: {count, names},
    /// controller: {evaluations, action_threshold, rate_limit_per_minute, actuators_enabled}}`.
    pub fn status(&self, state: &State) -> Result<Value, String> {
        let snapshot = self.snapshot(state)?;
        let health = health_of(&snapshot);
        let mut slos = Map::new();
        let mut breaches = Vec::new();
        for (slo, value) in &snapshot {
            let ok = value.is_none_or(|v| slo.met(v));
            if !ok {
                breaches.push(json!(slo.name));
            }
            let mut m = match slo.to_json() {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            m.insert("metric".into(), json!(slo.metric));
            m.insert("aggregate".into(), json!(slo.aggregate.name()));
            m.insert("higher_is_better".into(), json!(slo.higher_is_better));
            m.insert("component".into(), json!(slo.component));
            m.insert("aliases".into(), json!(slo.aliases));
            m.insert("value".into(), json!(value));
            m.insert("ok".into(), json!(ok));
            m.insert("score".into(), json!(value.map(|v| slo.score(v))));
            slos.insert(slo.name.clone(), Value::Object(m));
        }
        let since = now_epoch() - RECENT_WINDOW.as_secs_f64();
        let conn = &state.conn;
        let (allowed, refused): (i64, i64) = conn
            .query_row(
                "SELECT COALESCE(SUM(ok = 1), 0), COALESCE(SUM(ok = 0), 0)
                 FROM actuations WHERE at_epoch > ?1",
                params![since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db)?;
        let total: i64 = conn
            .query_row("SELECT COUNT(*) FROM actuations", [], |r| r.get(0))
            .map_err(db)?;
        let last = conn
            .query_row(
                "SELECT action, target, ok, reason, at FROM actuations ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(json!({
                        "action": r.get::<_, String>(0)?,
                        "target": r.get::<_, String>(1)?,
                        "ok": r.get::<_, bool>(2)?,
                        "reason": r.get::<_, String>(3)?,
                        "at": r.get::<_, String>(4)?,
                    }))
                },
            )
            .optional()
            .map_err(db)?;
        let (count, names): (i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), COUNT(DISTINCT name) FROM metrics",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db)?;
        let sp = &self.setpoints;
        Ok(json!({
            "ts": rfc3339(now_epoch()),
            "runlevel": if breaches.is_empty() { "ONLINE" } else { "DEGRADED" },
            "health": health,
            "health_percent": (health * 1000.0).round() / 10.0,
            "slos": slos,
            "breaches": breaches,
            "actuations": {
                "recent": allowed + refused,
                "allowed": allowed,
                "refused": refused,
                "total": total,
                "last": last,
            },
            "metrics": {"count": count, "names": names},
            "controller": {
                "evaluations": self.evaluations,
                "action_threshold": sp.action_threshold,
                "rate_limit_per_minute": sp.rate_limit_per_minute,
                "actuators_enabled": sp.actuators_enabled,
            },
        }))
    }
}

fn unknown_slo(h: &Homeostasis, name: &str) -> String {
    let known: Vec<&str> = h.setpoints.slos.iter().map(|s| s.name.as_str()).collect();
    format!(
        "homeostasis: unknown SLO `{name}` (known: {})",
        known.join(", ")
    )
}

/// The mean score of the non-health SLOs with a value; 1.0 when there is none.
fn health_of(values: &[(&Slo, Option<f64>)]) -> f64 {
    let scores: Vec<f64> = values
        .iter()
        .filter(|(s, _)| s.aggregate != Aggregate::Health)
        .filter_map(|(s, v)| v.map(|v| s.score(v)))
        .collect();
    if scores.is_empty() {
        1.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    }
}

/// The newest `n` samples of `metric` as `(id, value)`, newest first.
fn samples(state: &State, metric: &str, n: usize) -> Result<Vec<(i64, f64)>, String> {
    let mut stmt = state
        .conn
        .prepare_cached("SELECT id, value FROM metrics WHERE name = ?1 ORDER BY id DESC LIMIT ?2")
        .map_err(db)?;
    let limit = i64::try_from(n).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![metric, limit], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&xs, 50.0), Some(3.0));
        assert_eq!(percentile(&xs, 100.0), Some(5.0));
        assert_eq!(percentile(&xs, 0.0), Some(1.0));
        assert!((percentile(&xs, 95.0).expect("p95") - 4.8).abs() < 1e-9);
        assert_eq!(percentile(&[], 95.0), None);
    }

    #[test]
    fn aggregate_round_trips() {
        for s in ["latest", "mean", "health", "p95", "p99.9", "p50"] {
            assert_eq!(Aggregate::parse(s).expect(s).name(), s);
        }
        assert!(Aggregate::parse("p101").is_err());
        assert!(Aggregate::parse("median").is_err());
    }

    #[test]
    fn scores_and_errors() {
        let d = Setpoints::defaults();
        let lat = d.slo("task_latency_ms_p95").expect("latency");
        assert_eq!(lat.score(80.0), 1.0);
        assert!((lat.score(175.0) - 0.5).abs() < 1e-9);
        assert_eq!(lat.score(300.0), 0.0);
        assert!((lat.error(250.0) - 1.0).abs() < 1e-9);
        assert!(lat.error(50.0) < 0.0);
        let rate = d.slo("plugin_success_rate").expect("rate");
        assert!(rate.higher_is_better);
        assert_eq!(rate.score(0.99), 1.0);
        assert!((rate.score(0.90) - 0.5).abs() < 1e-9);
        assert!(!rate.met(0.8));
        assert!(rate.error(0.85) > 0.99);
    }
}
