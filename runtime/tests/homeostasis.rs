//! Integration tests of the homeostasis module: metrics, SLOs and `setpoints.json`, the
//! health score, the PID controller, rate-limited actuation and the status map.

use std::time::Duration;

use aether_runtime::homeostasis::{now_epoch, Aggregate, Homeostasis, Setpoints};
use aether_runtime::state::State;
use serde_json::{json, Value};

fn fresh() -> (State, Homeostasis) {
    let state = State::in_memory().expect("state");
    (state, Homeostasis::new(Setpoints::defaults()))
}

fn count(state: &State, sql: &str) -> i64 {
    state
        .conn
        .query_row(sql, [], |r| r.get(0))
        .expect("count query")
}

/// Inserts an allowed actuation `age_s` seconds old, as an earlier run would have.
fn old_actuation(state: &State, action: &str, target: &str, age_s: f64) {
    state
        .conn
        .execute(
            "INSERT INTO actuations (action, target, params, ok, reason, at, at_epoch)
             VALUES (?1, ?2, '{}', 1, 'allowed', '2000-01-01T00:00:00Z', ?3)",
            rusqlite::params![action, target, now_epoch() - age_s],
        )
        .expect("insert old actuation");
}

fn write_setpoints(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("setpoints.json"), text).expect("write setpoints");
    dir
}

#[test]
fn record_then_latest() {
    let (state, mut h) = fresh();
    assert_eq!(h.latest(&state, "queue_depth").expect("latest"), None);
    h.record(&state, "queue_depth", 3.0).expect("record");
    h.record(&state, "queue_depth", 7.5).expect("record");
    h.record(&state, "other", 1.0).expect("record");
    assert_eq!(h.latest(&state, "queue_depth").expect("latest"), Some(7.5));
    assert_eq!(count(&state, "SELECT COUNT(*) FROM metrics"), 3);
    let at: String = state
        .conn
        .query_row("SELECT at FROM metrics ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .expect("at");
    assert!(at.ends_with('Z') && at.contains('T'), "{at}");
}

#[test]
fn record_rejects_bad_input() {
    let (state, mut h) = fresh();
    assert!(h.record(&state, "", 1.0).is_err());
    let err = h.record(&state, "x", f64::NAN).expect_err("NaN refused");
    assert!(err.contains("finite"), "{err}");
    assert!(h.record(&state, "x", f64::INFINITY).is_err());
    assert_eq!(count(&state, "SELECT COUNT(*) FROM metrics"), 0);
}

#[test]
fn health_is_one_without_data() {
    let (state, h) = fresh();
    assert_eq!(h.health(&state).expect("health"), 1.0);
}

#[test]
fn health_with_good_data_is_one() {
    let (state, mut h) = fresh();
    for ms in [20.0, 40.0, 60.0] {
        h.record(&state, "task_latency_ms", ms).expect("record");
    }
    h.record(&state, "memory_roundtrip_ms", 10.0)
        .expect("record");
    h.record(&state, "plugin_success_rate", 1.0)
        .expect("record");
    h.record(&state, "dlq_count", 0.0).expect("record");
    assert_eq!(h.health(&state).expect("health"), 1.0);
}

#[test]
fn health_with_bad_data_drops() {
    let (state, mut h) = fresh();
    // p95 of one sample is the sample: far beyond the 250 ms maximum, score 0.
    h.record(&state, "task_latency_ms", 900.0).expect("record");
    assert_eq!(h.health(&state).expect("health"), 0.0);
    // Half-way between target 0.95 and minimum 0.85: score 0.5; mean (0 + 0.5) / 2.
    h.record(&state, "plugin_success_rate", 0.90)
        .expect("record");
    let health = h.health(&state).expect("health");
    assert!((health - 0.25).abs() < 1e-9, "{health}");
    // A good SLO raises the mean: (0 + 0.5 + 1) / 3.
    h.record(&state, "dlq_count", 0.0).expect("record");
    let health = h.health(&state).expect("health");
    assert!((health - 0.5).abs() < 1e-9, "{health}");
    assert!(!h
        .check_slo(&state, "health_score", None)
        .expect("health slo"));
}

#[test]
fn p95_slo_reads_the_raw_metric_and_a_fresher_direct_value_wins() {
    let (state, mut h) = fresh();
    for i in 0..100 {
        h.record(&state, "task_latency_ms", if i < 90 { 10.0 } else { 500.0 })
            .expect("record");
    }
    // p95 of 90 × 10 and 10 × 500 is 500: breached.
    assert!(!h
        .check_slo(&state, "task_latency_ms_p95", None)
        .expect("check"));
    // A value recorded under the SLO's own name, newer than the samples, wins.
    h.record(&state, "task_latency_ms_p95", 80.0)
        .expect("record");
    assert!(h
        .check_slo(&state, "task_latency_ms_p95", None)
        .expect("check"));
    // Newer samples take over again.
    h.record(&state, "task_latency_ms", 500.0).expect("record");
    assert!(!h
        .check_slo(&state, "task_latency_ms_p95", None)
        .expect("check"));
}

#[test]
fn the_seeds_names_are_aliases() {
    let (state, mut h) = fresh();
    assert_eq!(
        h.get_slo("task_latency_p95"),
        h.get_slo("task_latency_ms_p95")
    );
    assert_eq!(
        h.get_slo("memory_rtt"),
        h.get_slo("memory_roundtrip_ms_p95")
    );
    assert_eq!(
        h.get_slo("plugin_load_success"),
        h.get_slo("plugin_success_rate")
    );
    assert_eq!(h.get_slo("system_health_score"), h.get_slo("health_score"));
    // As workflows/health_check.aether does: record under the seed's name, then check.
    h.record(&state, "task_latency_p95", 300.0).expect("record");
    assert!(!h
        .check_slo(&state, "task_latency_p95", None)
        .expect("check"));
    assert!(!h
        .check_slo(&state, "task_latency_ms_p95", None)
        .expect("check"));
    assert!(h
        .check_slo(&state, "task_latency_p95", Some(120.0))
        .expect("check"));
    let s = h.status(&state).expect("status");
    assert_eq!(s["slos"]["task_latency_ms_p95"]["value"], json!(300.0));
    assert!(s["slos"].get("task_latency_p95").is_none());

    // An alias given in setpoints.json.
    let dir = write_setpoints(r#"{"slos": {"queue_depth": {"aliases": ["backlog"]}}}"#);
    let h = Homeostasis::new(Setpoints::load(dir.path()).expect("load"));
    assert_eq!(h.get_slo("backlog"), h.get_slo("queue_depth"));
    let dir = write_setpoints(r#"{"slos": {"queue_depth": {"aliases": "backlog"}}}"#);
    let err = Setpoints::load(dir.path()).expect_err("not a list");
    assert!(err.contains("slos.queue_depth.aliases"), "{err}");
}

#[test]
fn get_slo_has_the_contract_shape() {
    let (_, h) = fresh();
    assert_eq!(
        h.get_slo("task_latency_ms_p95"),
        Some(json!({"target": 100.0, "maximum": 250.0, "breach_action": "auto_rollback"}))
    );
    assert_eq!(
        h.get_slo("plugin_success_rate"),
        Some(json!({"target": 0.95, "minimum": 0.85, "breach_action": "alert_and_degrade"}))
    );
    assert_eq!(
        h.get_slo("memory_roundtrip_ms_p95"),
        Some(json!({"target": 50.0, "maximum": 120.0, "breach_action": "trigger_maintenance"}))
    );
    assert_eq!(h.get_slo("nope"), None);
    for name in [
        "task_latency_ms_p95",
        "memory_roundtrip_ms_p95",
        "plugin_success_rate",
        "queue_depth",
        "dlq_count",
        "health_score",
    ] {
        let slo = h.get_slo(name).expect(name);
        let keys: Vec<&String> = slo.as_object().expect("object").keys().collect();
        assert!(keys.len() == 3, "{name}: {keys:?}");
        assert!(slo["breach_action"].is_string(), "{name}");
    }
}

#[test]
fn setpoints_json_overrides_adds_and_removes() {
    let dir = write_setpoints(
        r#"{
          "rate_limit_per_minute": 3,
          "default_cooldown_s": 30,
          "cooldowns": {"restart": 120, "restart:kernel": 900},
          "samples": 20,
          "action_threshold": 2.5,
          "pid": {"kp": 2.0},
          "slos": {
            "task_latency_ms_p95": {"target": 80, "maximum": 200, "ki": 0.0},
            "plugin_success_rate": {"minimum": null, "breach_action": "page"},
            "queue_depth": null,
            "disk_free_ratio": {"target": 0.3, "minimum": 0.1, "aggregate": "mean",
                                "breach_action": "cleanup", "component": "disk",
                                "cooldown_s": 60}
          }
        }"#,
    );
    let sp = Setpoints::load(dir.path()).expect("load");
    let h = Homeostasis::new(sp.clone());
    assert_eq!(
        h.get_slo("task_latency_ms_p95"),
        Some(json!({"target": 80.0, "maximum": 200.0, "breach_action": "auto_rollback"}))
    );
    assert_eq!(
        h.get_slo("plugin_success_rate"),
        Some(json!({"target": 0.95, "breach_action": "page"}))
    );
    assert_eq!(h.get_slo("queue_depth"), None);
    assert_eq!(
        h.get_slo("disk_free_ratio"),
        Some(json!({"target": 0.3, "minimum": 0.1, "breach_action": "cleanup"}))
    );
    let disk = sp.slo("disk_free_ratio").expect("new slo");
    assert!(disk.higher_is_better, "only a minimum: higher is better");
    assert_eq!(disk.aggregate, Aggregate::Mean);
    assert_eq!(disk.component, "disk");
    assert_eq!((disk.kp, disk.ki, disk.kd), (2.0, 0.1, 0.05));
    let lat = sp.slo("task_latency_ms_p95").expect("latency");
    assert_eq!((lat.kp, lat.ki, lat.kd), (2.0, 0.0, 0.05));
    assert_eq!(sp.rate_limit_per_minute, 3);
    assert_eq!(sp.samples, 20);
    assert_eq!(sp.action_threshold, 2.5);
    assert_eq!(
        sp.cooldown_for("restart", "kernel"),
        Duration::from_secs(900)
    );
    assert_eq!(
        sp.cooldown_for("restart", "memory"),
        Duration::from_secs(120)
    );
    assert_eq!(sp.cooldown_for("cleanup", "disk"), Duration::from_secs(60));
    assert_eq!(sp.cooldown_for("other", "x"), Duration::from_secs(30));
    // Defaults order first, new SLOs after.
    let names: Vec<&str> = sp.slos.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "task_latency_ms_p95",
            "memory_roundtrip_ms_p95",
            "plugin_success_rate",
            "dlq_count",
            "health_score",
            "disk_free_ratio"
        ]
    );
}

#[test]
fn missing_setpoints_file_means_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        Setpoints::load(dir.path()).expect("load"),
        Setpoints::defaults()
    );
}

#[test]
fn malformed_setpoints_are_errors_not_panics() {
    let cases = [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        (
            r#"{"slos": {"queue_depth": {"target": "high"}}}"#,
            "slos.queue_depth.target",
        ),
        (
            r#"{"slos": {"queue_depth": {"maximun": 3}}}"#,
            "slos.queue_depth.maximun: unknown key",
        ),
        (r#"{"slos": {"new_one": {"maximum": 3}}}"#, "needs a target"),
        (
            r#"{"slos": {"queue_depth": {"maximum": 1}}}"#,
            "maximum is below the target",
        ),
        (
            r#"{"slos": {"x": {"target": 1, "aggregate": "median"}}}"#,
            "unknown aggregate",
        ),
        (r#"{"rate_limit_per_minute": 0}"#, "rate_limit_per_minute"),
        (r#"{"cooldowns": {"restart": -5}}"#, "cooldowns.restart"),
        (r#"{"colldowns": {}}"#, "colldowns: unknown key"),
    ];
    for (text, expected) in cases {
        let dir = write_setpoints(text);
        let err = Setpoints::load(dir.path()).expect_err(text);
        assert!(err.contains(expected), "{text}: {err}");
        assert!(err.contains("setpoints.json"), "{text}: {err}");
    }
}

#[test]
fn check_slo_by_value_by_latest_and_unknown() {
    let (state, mut h) = fresh();
    assert!(h
        .check_slo(&state, "plugin_success_rate", Some(0.97))
        .expect("check"));
    assert!(h
        .check_slo(&state, "plugin_success_rate", Some(0.85))
        .expect("check"));
    assert!(!h
        .check_slo(&state, "plugin_success_rate", Some(0.5))
        .expect("check"));
    assert!(h
        .check_slo(&state, "task_latency_ms_p95", Some(250.0))
        .expect("check"));
    assert!(!h
        .check_slo(&state, "task_latency_ms_p95", Some(251.0))
        .expect("check"));
    // No value recorded: no evidence of a breach.
    assert!(h.check_slo(&state, "dlq_count", None).expect("check"));
    h.record(&state, "dlq_count", 12.0).expect("record");
    assert!(!h.check_slo(&state, "dlq_count", None).expect("check"));
    h.record(&state, "dlq_count", 2.0).expect("record");
    assert!(h.check_slo(&state, "dlq_count", None).expect("check"));
    let err = h
        .check_slo(&state, "no_such_slo", None)
        .expect_err("unknown SLO");
    assert!(
        err.contains("unknown SLO `no_such_slo`") && err.contains("dlq_count"),
        "{err}"
    );
    assert!(h.check_slo(&state, "dlq_count", Some(f64::NAN)).is_err());
}

#[test]
fn actuate_allowed_then_refused_by_cooldown() {
    let (state, mut h) = fresh();
    let first = h
        .actuate(&state, "restart", "kernel", &json!({"why": "test"}))
        .expect("actuate");
    assert_eq!(first, json!({"ok": true, "reason": "allowed"}));
    let second = h
        .actuate(&state, "restart", "kernel", &json!({}))
        .expect("actuate");
    assert_eq!(second["ok"], json!(false));
    let reason = second["reason"].as_str().expect("reason");
    assert!(
        reason == "cooldown: 300s left" || reason == "cooldown: 299s left",
        "{reason}"
    );
    // Both attempts are recorded, in actuations and in audit.
    assert_eq!(count(&state, "SELECT COUNT(*) FROM actuations"), 2);
    assert_eq!(
        count(&state, "SELECT COUNT(*) FROM actuations WHERE ok = 1"),
        1
    );
    let params: String = state
        .conn
        .query_row(
            "SELECT params FROM actuations ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("params");
    assert_eq!(
        serde_json::from_str::<Value>(&params).expect("json"),
        json!({"why": "test"})
    );
    let audit: Vec<(String, String, String)> = {
        let mut stmt = state
            .conn
            .prepare("SELECT actor, event, detail FROM audit ORDER BY id")
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    };
    assert_eq!(audit.len(), 2);
    for (actor, event, _) in &audit {
        assert_eq!((actor.as_str(), event.as_str()), ("homeostasis", "actuate"));
    }
    let detail: Value = serde_json::from_str(&audit[1].2).expect("detail json");
    assert_eq!(detail["action"], json!("restart"));
    assert_eq!(detail["target"], json!("kernel"));
    assert_eq!(detail["ok"], json!(false));
    assert!(detail["reason"]
        .as_str()
        .expect("reason")
        .starts_with("cooldown:"));
}

#[test]
fn rate_limit_holds_across_actions_on_one_component() {
    let (state, mut h) = fresh();
    let a = h
        .actuate(&state, "restart", "memory", &json!({}))
        .expect("actuate");
    assert_eq!(a["ok"], json!(true));
    let b = h
        .actuate(&state, "trigger_maintenance", "memory", &json!({}))
        .expect("actuate");
    assert_eq!(
        b,
        json!({"ok": false, "reason": "rate limit: 1 per minute per component"})
    );
    // Another component is not limited.
    let c = h
        .actuate(&state, "trigger_maintenance", "plugins", &Value::Null)
        .expect("actuate");
    assert_eq!(c["ok"], json!(true));
}

#[test]
fn windows_expire() {
    let (state, mut h) = fresh();
    // An allowed restart 61 s ago: past the rate window, inside the 300 s cooldown.
    old_actuation(&state, "restart", "kernel", 61.0);
    let r = h
        .actuate(&state, "restart", "kernel", &json!({}))
        .expect("actuate");
    assert_eq!(r["ok"], json!(false));
    let reason = r["reason"].as_str().expect("reason");
    assert!(
        reason == "cooldown: 239s left" || reason == "cooldown: 240s left",
        "{reason}"
    );
    // A different action on the same component is fine: the minute has passed.
    let r = h
        .actuate(&state, "notify_admin", "kernel", &json!({}))
        .expect("actuate");
    assert_eq!(r["ok"], json!(true));

    // Past the cooldown as well.
    let (state, mut h) = fresh();
    old_actuation(&state, "restart", "kernel", 301.0);
    let r = h
        .actuate(&state, "restart", "kernel", &json!({}))
        .expect("actuate");
    assert_eq!(r, json!({"ok": true, "reason": "allowed"}));
}

#[test]
fn refused_attempts_do_not_extend_windows() {
    let (state, mut h) = fresh();
    let t0 = now_epoch();
    let ok = |v: Value| v["ok"] == json!(true);
    assert!(ok(h
        .actuate_at(&state, "restart", "kernel", &json!({}), t0)
        .expect("actuate")));
    assert!(!ok(h
        .actuate_at(&state, "restart", "kernel", &json!({}), t0 + 299.0)
        .expect("actuate")));
    let r = h
        .actuate_at(&state, "restart", "kernel", &json!({}), t0 + 300.5)
        .expect("actuate");
    assert!(ok(r));
}

#[test]
fn actuation_configuration_is_honoured() {
    let dir =
        write_setpoints(r#"{"rate_limit_per_minute": 2, "cooldowns": {"restart:kernel": 0}}"#);
    let mut h = Homeostasis::new(Setpoints::load(dir.path()).expect("load"));
    let state = State::open(dir.path()).expect("state");
    let t = now_epoch();
    let oks: Vec<bool> = (0..3)
        .map(|i| {
            h.actuate_at(&state, "restart", "kernel", &json!({}), t + f64::from(i))
                .expect("actuate")["ok"]
                == json!(true)
        })
        .collect();
    assert_eq!(oks, [true, true, false]);
    let last = h
        .actuate_at(&state, "restart", "kernel", &json!({}), t + 3.0)
        .expect("actuate");
    assert_eq!(
        last["reason"],
        json!("rate limit: 2 per minute per component")
    );

    let dir = write_setpoints(r#"{"actuators_enabled": false}"#);
    let mut h = Homeostasis::new(Setpoints::load(dir.path()).expect("load"));
    let state = State::open(dir.path()).expect("state");
    let r = h
        .actuate(&state, "restart", "kernel", &json!({}))
        .expect("actuate");
    assert_eq!(
        r,
        json!({"ok": false, "reason": "actuators disabled by setpoints"})
    );
    assert_eq!(count(&state, "SELECT COUNT(*) FROM audit"), 1);
}

#[test]
fn actuate_rejects_bad_arguments() {
    let (state, mut h) = fresh();
    assert!(h.actuate(&state, "", "kernel", &json!({})).is_err());
    assert!(h.actuate(&state, "restart", "kernel", &json!([1])).is_err());
    assert_eq!(count(&state, "SELECT COUNT(*) FROM actuations"), 0);
}

#[test]
fn pid_output_sign_and_action_proposal() {
    let (state, mut h) = fresh();
    assert!(h
        .evaluate(&state)
        .expect("evaluate")
        .iter()
        .all(|c| c.slo == "health_score"));

    // Better than target: negative error and output, no action.
    h.record(&state, "task_latency_ms", 40.0).expect("record");
    let c = h.evaluate(&state).expect("evaluate");
    let lat = c
        .iter()
        .find(|c| c.slo == "task_latency_ms_p95")
        .expect("latency correction");
    assert!(lat.output < 0.0 && lat.error < 0.0, "{lat:?}");
    assert_eq!(lat.action, None);
    assert_eq!(lat.target, 100.0);
    assert_eq!(lat.value, 40.0);

    // Far beyond the maximum: positive output above the threshold, the breach action.
    h.record(&state, "task_latency_ms", 600.0).expect("record");
    let c = h.evaluate(&state).expect("evaluate");
    let lat = c
        .iter()
        .find(|c| c.slo == "task_latency_ms_p95")
        .expect("latency correction");
    assert!(lat.output > 1.0, "{lat:?}");
    assert_eq!(lat.action.as_deref(), Some("auto_rollback"));
    assert_eq!(lat.component, "kernel");

    // A higher-is-better SLO below its target: positive output.
    h.record(&state, "plugin_success_rate", 0.5)
        .expect("record");
    let c = h.evaluate(&state).expect("evaluate");
    let rate = c
        .iter()
        .find(|c| c.slo == "plugin_success_rate")
        .expect("rate correction");
    assert!(rate.output > 0.0, "{rate:?}");
    assert_eq!(rate.action.as_deref(), Some("alert_and_degrade"));
    // The health SLO reads the health score.
    let health = c.iter().find(|c| c.slo == "health_score").expect("health");
    assert_eq!(health.value, 0.0);
    assert_eq!(health.action.as_deref(), Some("notify_chat_agents"));
}

#[test]
fn pid_integral_escalates_a_persistent_partial_breach() {
    let (state, mut h) = fresh();
    // Error 0.5 (half-way from target 100 to maximum 250): kp alone gives 0.5.
    h.record(&state, "task_latency_ms", 175.0).expect("record");
    let mut first_action = None;
    for i in 1..=20 {
        let c = h.evaluate(&state).expect("evaluate");
        let lat = c
            .iter()
            .find(|c| c.slo == "task_latency_ms_p95")
            .expect("latency");
        assert!((lat.error - 0.5).abs() < 1e-9);
        if lat.action.is_some() && first_action.is_none() {
            first_action = Some(i);
        }
    }
    // 0.5 + 0.1 × 0.5 × n > 1.0 from n = 11.
    assert_eq!(first_action, Some(11));
    h.reset_controller();
    let c = h.evaluate(&state).expect("evaluate");
    let lat = c
        .iter()
        .find(|c| c.slo == "task_latency_ms_p95")
        .expect("latency");
    assert!((lat.output - 0.55).abs() < 1e-9, "{lat:?}");
}

#[test]
fn status_shape() {
    let (state, mut h) = fresh();
    h.record(&state, "task_latency_ms", 175.0).expect("record");
    h.record(&state, "dlq_count", 11.0).expect("record");
    h.actuate(&state, "restart", "kernel", &json!({}))
        .expect("actuate");
    h.actuate(&state, "restart", "kernel", &json!({}))
        .expect("actuate");
    h.evaluate(&state).expect("evaluate");
    let s = h.status(&state).expect("status");
    for key in [
        "ts",
        "runlevel",
        "health",
        "health_percent",
        "slos",
        "breaches",
        "actuations",
        "metrics",
        "controller",
    ] {
        assert!(s.get(key).is_some(), "status lacks {key}: {s}");
    }
    assert_eq!(s["health"], json!(0.25));
    assert_eq!(s["health_percent"], json!(25.0));
    assert_eq!(s["runlevel"], json!("DEGRADED"));
    assert_eq!(s["breaches"], json!(["dlq_count", "health_score"]));
    let lat = &s["slos"]["task_latency_ms_p95"];
    assert_eq!(lat["value"], json!(175.0));
    assert_eq!(lat["ok"], json!(true));
    assert_eq!(lat["score"], json!(0.5));
    assert_eq!(lat["target"], json!(100.0));
    assert_eq!(lat["maximum"], json!(250.0));
    assert_eq!(lat["metric"], json!("task_latency_ms"));
    assert_eq!(lat["aggregate"], json!("p95"));
    let rate = &s["slos"]["plugin_success_rate"];
    assert_eq!(rate["value"], Value::Null);
    assert_eq!(rate["ok"], json!(true));
    assert_eq!(rate["score"], Value::Null);
    assert_eq!(s["slos"]["dlq_count"]["ok"], json!(false));
    assert_eq!(s["actuations"]["recent"], json!(2), "{}", s["actuations"]);
    assert_eq!(s["actuations"]["allowed"], json!(1));
    assert_eq!(s["actuations"]["refused"], json!(1));
    assert_eq!(s["actuations"]["total"], json!(2));
    assert_eq!(s["actuations"]["last"]["ok"], json!(false));
    assert_eq!(s["metrics"], json!({"count": 2, "names": 2}));
    assert_eq!(s["controller"]["evaluations"], json!(1));
    assert_eq!(s["controller"]["rate_limit_per_minute"], json!(1));

    let (state, h) = fresh();
    let s = h.status(&state).expect("status");
    assert_eq!(s["health"], json!(1.0));
    assert_eq!(s["runlevel"], json!("ONLINE"));
    assert_eq!(s["breaches"], json!([]));
    assert_eq!(s["actuations"]["last"], Value::Null);
}

#[test]
fn actuations_survive_reopening_the_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let state = State::open(dir.path()).expect("state");
        let mut h = Homeostasis::new(Setpoints::defaults());
        let r = h
            .actuate(&state, "restart", "plugins", &json!({}))
            .expect("actuate");
        assert_eq!(r["ok"], json!(true));
    }
    let state = State::open(dir.path()).expect("reopen");
    let mut h = Homeostasis::new(Setpoints::defaults());
    let r = h
        .actuate(&state, "restart", "plugins", &json!({}))
        .expect("actuate");
    assert_eq!(r["ok"], json!(false), "{r}");
}

#[test]
fn actuate_inside_an_open_savepoint_nests() {
    let (state, mut h) = fresh();
    state
        .conn
        .execute_batch("SAVEPOINT aether_tx_0")
        .expect("savepoint");
    h.actuate(&state, "restart", "kernel", &json!({}))
        .expect("actuate");
    state
        .conn
        .execute_batch("ROLLBACK TO aether_tx_0; RELEASE aether_tx_0")
        .expect("rollback");
    assert_eq!(count(&state, "SELECT COUNT(*) FROM actuations"), 0);
    assert_eq!(count(&state, "SELECT COUNT(*) FROM audit"), 0);
}
