//! The setpoints: SLOs (target, limits, aggregate, gains, breach action), cooldowns and
//! rate limits, with their defaults and the `setpoints.json` format that overrides them.

use super::*;

/// How an SLO turns the recorded samples of its metric into one current value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Aggregate {
    /// The newest sample.
    Latest,
    /// The mean of the newest [`Setpoints::samples`] samples.
    Mean,
    /// The given percentile (0..=100, linear interpolation) of the newest samples.
    Percentile(f64),
    /// Not a metric: the health score computed from the other SLOs.
    Health,
}

impl Aggregate {
    /// Parses `latest`, `mean`, `health` or `pNN` (`p95`, `p99.9`).
    pub fn parse(s: &str) -> Result<Aggregate, String> {
        match s {
            "latest" => Ok(Aggregate::Latest),
            "mean" => Ok(Aggregate::Mean),
            "health" => Ok(Aggregate::Health),
            _ => {
                let p = s
                    .strip_prefix('p')
                    .and_then(|n| n.parse::<f64>().ok())
                    .filter(|p| p.is_finite() && (0.0..=100.0).contains(p));
                p.map(Aggregate::Percentile).ok_or_else(|| {
                    format!(
                        "unknown aggregate `{s}` (expected latest, mean, health or pNN such as p95)"
                    )
                })
            }
        }
    }

    /// The spelling [`Aggregate::parse`] reads back.
    pub fn name(&self) -> String {
        match self {
            Aggregate::Latest => "latest".into(),
            Aggregate::Mean => "mean".into(),
            Aggregate::Health => "health".into(),
            Aggregate::Percentile(p) => format!("p{p}"),
        }
    }
}

/// A service-level objective: a setpoint with acceptable limits and the action proposed when
/// the controller finds it breached.
#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    /// The SLO's name (what `get_slo` and `check_slo` take).
    pub name: String,
    /// The value the controller steers towards.
    pub target: f64,
    /// The least acceptable value.
    pub minimum: Option<f64>,
    /// The greatest acceptable value.
    pub maximum: Option<f64>,
    /// The action proposed (and passed to `actuate`) when the controller output is too high.
    pub breach_action: String,
    /// Whether values above the target are better (success rates) or worse (latencies).
    pub higher_is_better: bool,
    /// Proportional gain.
    pub kp: f64,
    /// Integral gain.
    pub ki: f64,
    /// Derivative gain.
    pub kd: f64,
    /// The cooldown of `breach_action` (unless `cooldowns` in the setpoints says otherwise).
    pub cooldown: Duration,
    /// The recorded metric the SLO reads.
    pub metric: String,
    /// How the metric's samples become the SLO's current value.
    pub aggregate: Aggregate,
    /// The component a corrective action targets (`actuate(breach_action, component)`).
    pub component: String,
    /// Other names `get_slo` and `check_slo` accept (the seed's spellings). A value recorded
    /// under one of them counts as recorded under the SLO's own name.
    pub aliases: Vec<String>,
}

impl Slo {
    /// An SLO on the metric of the same name with the default gains, cooldown and action.
    pub fn new(name: &str, target: f64) -> Slo {
        let (kp, ki, kd) = DEFAULT_GAINS;
        Slo {
            name: name.to_string(),
            target,
            minimum: None,
            maximum: None,
            breach_action: "alert".to_string(),
            higher_is_better: false,
            kp,
            ki,
            kd,
            cooldown: DEFAULT_COOLDOWN,
            metric: name.to_string(),
            aggregate: Aggregate::Latest,
            component: "runtime".to_string(),
            aliases: Vec::new(),
        }
    }

    /// The limit on the bad side of the target: `minimum` when higher is better, `maximum`
    /// otherwise; the target itself when that limit is not set.
    pub fn limit(&self) -> f64 {
        let limit = if self.higher_is_better {
            self.minimum
        } else {
            self.maximum
        };
        limit.unwrap_or(self.target)
    }

    /// Whether `value` meets the SLO: within `minimum` and `maximum` where set, and, when the
    /// bad-side limit is not set, no worse than the target.
    pub fn met(&self, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        let within =
            self.minimum.is_none_or(|m| value >= m) && self.maximum.is_none_or(|m| value <= m);
        within
            && if self.higher_is_better {
                value >= self.limit()
            } else {
                value <= self.limit()
            }
    }

    /// The deviation of `value` from the target in the bad direction, in units of the
    /// distance from the target to the bad-side limit: 0 at the target, 1 at the limit,
    /// negative when better than the target. With no bad-side limit the unit is
    /// `max(|target|, 1)`.
    pub fn error(&self, value: f64) -> f64 {
        let mut span = (self.limit() - self.target).abs();
        if span == 0.0 {
            span = self.target.abs().max(1.0);
        }
        let worse_by = if self.higher_is_better {
            self.target - value
        } else {
            value - self.target
        };
        worse_by / span
    }

    /// The SLO's score for `value`, in [0, 1]: 0 when not met, 1 when at or better than the
    /// target, else falling linearly from 1 at the target to 0 at the bad-side limit.
    pub fn score(&self, value: f64) -> f64 {
        if !self.met(value) {
            return 0.0;
        }
        (1.0 - self.error(value).max(0.0)).clamp(0.0, 1.0)
    }

    /// The contract's shape: `{target, minimum?, maximum?, breach_action}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("target".into(), json!(self.target));
        if let Some(x) = self.minimum {
            m.insert("minimum".into(), json!(x));
        }
        if let Some(x) = self.maximum {
            m.insert("maximum".into(), json!(x));
        }
        m.insert("breach_action".into(), json!(self.breach_action));
        Value::Object(m)
    }

    fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        if n.is_empty() {
            return Err("an SLO name must not be empty".into());
        }
        for (what, x) in [
            ("target", Some(self.target)),
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("kp", Some(self.kp)),
            ("ki", Some(self.ki)),
            ("kd", Some(self.kd)),
        ] {
            if x.is_some_and(|x| !x.is_finite()) {
                return Err(format!("slos.{n}.{what}: must be a finite number"));
            }
        }
        if self.minimum.is_some_and(|m| m > self.target) {
            return Err(format!("slos.{n}: minimum is above the target"));
        }
        if self.maximum.is_some_and(|m| m < self.target) {
            return Err(format!("slos.{n}: maximum is below the target"));
        }
        if self.breach_action.is_empty() {
            return Err(format!("slos.{n}.breach_action: must not be empty"));
        }
        if self.metric.is_empty() {
            return Err(format!("slos.{n}.metric: must not be empty"));
        }
        Ok(())
    }
}

/// The SLOs and the actuation rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Setpoints {
    /// The SLOs, in the order `status` lists them.
    pub slos: Vec<Slo>,
    /// Allowed actuations per component (target) in any 60-second window.
    pub rate_limit_per_minute: u32,
    /// The cooldown of an action nothing else names.
    pub default_cooldown: Duration,
    /// Cooldowns by `"action:target"` or `"action"` (the first found wins).
    pub cooldowns: BTreeMap<String, Duration>,
    /// How many of the newest samples `mean` and percentile SLOs look at.
    pub samples: usize,
    /// A controller output above this proposes the SLO's breach action.
    pub action_threshold: f64,
    /// The human override: when false every actuation is refused (and still recorded).
    pub actuators_enabled: bool,
}

impl Setpoints {
    /// The seed's setpoints (see the table in `docs/homeostasis.md`).
    pub fn defaults() -> Setpoints {
        let slo = |name: &str,
                   metric: &str,
                   aggregate: Aggregate,
                   target: f64,
                   minimum: Option<f64>,
                   maximum: Option<f64>,
                   action: &str,
                   component: &str,
                   cooldown_s: u64| Slo {
            metric: metric.to_string(),
            aggregate,
            minimum,
            maximum,
            breach_action: action.to_string(),
            higher_is_better: minimum.is_some() && maximum.is_none(),
            component: component.to_string(),
            cooldown: Duration::from_secs(cooldown_s),
            ..Slo::new(name, target)
        };
        let p95 = Aggregate::Percentile(95.0);
        let mut sp = Setpoints {
            slos: vec![
                slo(
                    "task_latency_ms_p95",
                    "task_latency_ms",
                    p95,
                    100.0,
                    None,
                    Some(250.0),
                    "auto_rollback",
                    "kernel",
                    300,
                ),
                slo(
                    "memory_roundtrip_ms_p95",
                    "memory_roundtrip_ms",
                    p95,
                    50.0,
                    None,
                    Some(120.0),
                    "trigger_maintenance",
                    "memory",
                    300,
                ),
                slo(
                    "plugin_success_rate",
                    "plugin_success_rate",
                    Aggregate::Latest,
                    0.95,
                    Some(0.85),
                    None,
                    "alert_and_degrade",
                    "plugins",
                    300,
                ),
                slo(
                    "queue_depth",
                    "queue_depth",
                    Aggregate::Latest,
                    16.0,
                    None,
                    Some(256.0),
                    "reduce_task_concurrency",
                    "kernel",
                    300,
                ),
                slo(
                    "dlq_count",
                    "dlq_count",
                    Aggregate::Latest,
                    0.0,
                    None,
                    Some(10.0),
                    "notify_admin",
                    "kernel",
                    600,
                ),
                slo(
                    "health_score",
                    "health_score",
                    Aggregate::Health,
                    0.95,
                    Some(0.9),
                    None,
                    "notify_chat_agents",
                    "runtime",
                    600,
                ),
            ],
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            default_cooldown: DEFAULT_COOLDOWN,
            cooldowns: BTreeMap::new(),
            samples: DEFAULT_SAMPLES,
            action_threshold: DEFAULT_ACTION_THRESHOLD,
            actuators_enabled: true,
        };
        // The seed's names for the same objectives.
        let aliases: [(&str, &[&str]); 5] = [
            ("task_latency_ms_p95", &["task_latency_p95"]),
            ("memory_roundtrip_ms_p95", &["memory_rtt_p95", "memory_rtt"]),
            ("plugin_success_rate", &["plugin_load_success"]),
            ("dlq_count", &["dlq_depth"]),
            ("health_score", &["system_health_score"]),
        ];
        for (name, names) in aliases {
            if let Some(slo) = sp.slos.iter_mut().find(|s| s.name == name) {
                slo.aliases = names.iter().map(|a| a.to_string()).collect();
            }
        }
        sp
    }

    /// The defaults overridden by `STATE_DIR/setpoints.json` when that file exists. An
    /// unreadable or malformed file is an error naming the file and the offending key.
    pub fn load(state_dir: &Path) -> Result<Setpoints, String> {
        let path = state_dir.join(SETPOINTS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Setpoints::defaults()),
            Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
        };
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("`{}` is not valid JSON: {e}", path.display()))?;
        Setpoints::from_json(&json).map_err(|e| format!("`{}`: {e}", path.display()))
    }

    /// The defaults overridden by a parsed `setpoints.json` document.
    pub fn from_json(doc: &Value) -> Result<Setpoints, String> {
        let mut sp = Setpoints::defaults();
        let top = object(doc, "the document")?;
        check_keys(
            top,
            "",
            &[
                "slos",
                "pid",
                "rate_limit_per_minute",
                "default_cooldown_s",
                "cooldowns",
                "samples",
                "action_threshold",
                "actuators_enabled",
            ],
        )?;
        if let Some(v) = top.get("rate_limit_per_minute") {
            let n = v
                .as_u64()
                .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
                .ok_or("rate_limit_per_minute: expected a whole number of at least 1")?;
            sp.rate_limit_per_minute = n as u32;
        }
        if let Some(v) = top.get("default_cooldown_s") {
            sp.default_cooldown = seconds(v, "default_cooldown_s")?;
        }
        if let Some(v) = top.get("cooldowns") {
            for (key, secs) in object(v, "cooldowns")? {
                if key.is_empty() || key.starts_with(':') {
                    return Err(format!(
                        "cooldowns: `{key}` is not an action or action:target"
                    ));
                }
                let d = seconds(secs, &format!("cooldowns.{key}"))?;
                sp.cooldowns.insert(key.clone(), d);
            }
        }
        if let Some(v) = top.get("samples") {
            let n = v
                .as_u64()
                .filter(|n| *n >= 1)
                .ok_or("samples: expected a whole number of at least 1")?;
            sp.samples = usize::try_from(n).map_err(|_| "samples: too large")?;
        }
        if let Some(v) = top.get("action_threshold") {
            sp.action_threshold = number(v, "action_threshold")?;
        }
        if let Some(v) = top.get("actuators_enabled") {
            sp.actuators_enabled = v
                .as_bool()
                .ok_or("actuators_enabled: expected true or false")?;
        }
        // The gains of every SLO, before per-SLO keys.
        let mut gains = Slo::new("gains", 0.0);
        if let Some(v) = top.get("pid") {
            let pid = object(v, "pid")?;
            check_keys(pid, "pid.", &["kp", "ki", "kd"])?;
            apply_gains(&mut gains, pid, "pid")?;
            for slo in &mut sp.slos {
                (slo.kp, slo.ki, slo.kd) = (gains.kp, gains.ki, gains.kd);
            }
        }
        if let Some(v) = top.get("slos") {
            for (name, spec) in object(v, "slos")? {
                let at = format!("slos.{name}");
                if spec.is_null() {
                    sp.slos.retain(|s| &s.name != name);
                    continue;
                }
                let fields = object(spec, &at)?;
                check_keys(
                    fields,
                    &format!("{at}."),
                    &[
                        "target",
                        "minimum",
                        "maximum",
                        "breach_action",
                        "higher_is_better",
                        "kp",
                        "ki",
                        "kd",
                        "cooldown_s",
                        "metric",
                        "aggregate",
                        "component",
                        "aliases",
                    ],
                )?;
                let index = match sp.slos.iter().position(|s| &s.name == name) {
                    Some(i) => i,
                    None => {
                        let target = fields
                            .get("target")
                            .ok_or_else(|| format!("{at}: a new SLO needs a target"))?;
                        let mut slo = Slo::new(name, number(target, &format!("{at}.target"))?);
                        (slo.kp, slo.ki, slo.kd) = (gains.kp, gains.ki, gains.kd);
                        // Only a minimum: a higher-is-better objective (unless said otherwise).
                        slo.higher_is_better = fields.get("minimum").is_some_and(|m| !m.is_null())
                            && fields.get("maximum").is_none_or(Value::is_null);
                        sp.slos.push(slo);
                        sp.slos.len() - 1
                    }
                };
                let slo = sp
                    .slos
                    .get_mut(index)
                    .ok_or_else(|| format!("{at}: internal: lost the SLO"))?;
                apply_slo(slo, fields, &at)?;
                slo.validate()?;
            }
        }
        Ok(sp)
    }

    /// The SLO named `name`, else the first SLO with `name` among its aliases.
    pub fn slo(&self, name: &str) -> Option<&Slo> {
        self.slos.iter().find(|s| s.name == name).or_else(|| {
            self.slos
                .iter()
                .find(|s| s.aliases.iter().any(|a| a == name))
        })
    }

    /// The cooldown between two allowed runs of `action` on `target`:
    /// `cooldowns["action:target"]`, else `cooldowns["action"]`, else the longest cooldown of
    /// the SLOs whose breach action it is, else `default_cooldown`.
    pub fn cooldown_for(&self, action: &str, target: &str) -> Duration {
        if let Some(d) = self.cooldowns.get(&format!("{action}:{target}")) {
            return *d;
        }
        if let Some(d) = self.cooldowns.get(action) {
            return *d;
        }
        self.slos
            .iter()
            .filter(|s| s.breach_action == action)
            .map(|s| s.cooldown)
            .max()
            .unwrap_or(self.default_cooldown)
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{at}: expected an object"))
}

fn check_keys(m: &Map<String, Value>, prefix: &str, allowed: &[&str]) -> Result<(), String> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "{prefix}{k}: unknown key (expected one of {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn number(v: &Value, at: &str) -> Result<f64, String> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("{at}: expected a number"))
}

fn opt_number(v: &Value, at: &str) -> Result<Option<f64>, String> {
    if v.is_null() {
        Ok(None)
    } else {
        number(v, at).map(Some)
    }
}

fn string(v: &Value, at: &str) -> Result<String, String> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("{at}: expected a non-empty string"))
}

fn seconds(v: &Value, at: &str) -> Result<Duration, String> {
    let s = number(v, at)?;
    if !(0.0..=1e12).contains(&s) {
        return Err(format!("{at}: expected a number of seconds, 0 or more"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn apply_gains(slo: &mut Slo, m: &Map<String, Value>, at: &str) -> Result<(), String> {
    if let Some(v) = m.get("kp") {
        slo.kp = number(v, &format!("{at}.kp"))?;
    }
    if let Some(v) = m.get("ki") {
        slo.ki = number(v, &format!("{at}.ki"))?;
    }
    if let Some(v) = m.get("kd") {
        slo.kd = number(v, &format!("{at}.kd"))?;
    }
    Ok(())
}

fn apply_slo(slo: &mut Slo, m: &Map<String, Value>, at: &str) -> Result<(), String> {
    if let Some(v) = m.get("target") {
        slo.target = number(v, &format!("{at}.target"))?;
    }
    if let Some(v) = m.get("minimum") {
        slo.minimum = opt_number(v, &format!("{at}.minimum"))?;
    }
    if let Some(v) = m.get("maximum") {
        slo.maximum = opt_number(v, &format!("{at}.maximum"))?;
    }
    if let Some(v) = m.get("breach_action") {
        slo.breach_action = string(v, &format!("{at}.breach_action"))?;
    }
    if let Some(v) = m.get("higher_is_better") {
        slo.higher_is_better = v
            .as_bool()
            .ok_or_else(|| format!("{at}.higher_is_better: expected true or false"))?;
    }
    apply_gains(slo, m, at)?;
    if let Some(v) = m.get("cooldown_s") {
        slo.cooldown = seconds(v, &format!("{at}.cooldown_s"))?;
    }
    if let Some(v) = m.get("metric") {
        slo.metric = string(v, &format!("{at}.metric"))?;
    }
    if let Some(v) = m.get("aggregate") {
        let s = string(v, &format!("{at}.aggregate"))?;
        slo.aggregate = Aggregate::parse(&s).map_err(|e| format!("{at}.aggregate: {e}"))?;
    }
    if let Some(v) = m.get("component") {
        slo.component = string(v, &format!("{at}.component"))?;
    }
    if let Some(v) = m.get("aliases") {
        let what = format!("{at}.aliases");
        let list = v
            .as_array()
            .ok_or_else(|| format!("{what}: expected a list of names"))?;
        slo.aliases = list
            .iter()
            .map(|a| string(a, &what))
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}
