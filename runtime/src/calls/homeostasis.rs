//! `homeostasis.*` and `self_heal`: declarations beside implementations; the controller,
//! the SLOs and the metrics' SQL are in [`crate::homeostasis`].

use aether_check::decl::{Capability, DefaultValue, FnDecl};
use aether_vm::{Args, HostCx, HostError, Map, Value};

use super::{arg, str_arg, to_json, HostFn};
use crate::host::RuntimeHost;
use crate::memory;

type Answer = Result<Value, HostError>;

pub(super) fn functions() -> Vec<(FnDecl, HostFn)> {
    let m = "homeostasis";
    vec![
        (
            FnDecl::in_module(m, "record")
                .param("metric")
                .param("value")
                .capability(Capability::HomeostasisRecord)
                .effectful()
                .doc("Records a measurement of metric."),
            HostFn::Sync(record),
        ),
        (
            FnDecl::in_module(m, "health").doc("Overall health between 0 and 1."),
            HostFn::Sync(health),
        ),
        (
            FnDecl::in_module(m, "get_slo")
                .param("name")
                .doc("The SLO {target, minimum?, maximum?, breach_action} named name."),
            HostFn::Sync(get_slo),
        ),
        (
            FnDecl::in_module(m, "check_slo")
                .param("name")
                .opt("value", DefaultValue::Null)
                .doc("Whether the SLO named name is met (by value, or by the recorded metric)."),
            HostFn::Sync(check_slo),
        ),
        (
            FnDecl::in_module(m, "actuate")
                .param("action")
                .param("target")
                .opt("params", DefaultValue::EmptyMap)
                .capability(Capability::HomeostasisActuate)
                .effectful()
                .doc(
                    "Performs action on target honouring cooldowns and rate limits; {ok, reason}.",
                ),
            HostFn::Sync(actuate),
        ),
        (
            FnDecl::in_module(m, "status").doc("The state of homeostasis."),
            HostFn::Sync(status),
        ),
        (
            FnDecl::global("self_heal")
                .opt("component", DefaultValue::Str(""))
                .capability(Capability::HomeostasisActuate)
                .effectful()
                .doc("homeostasis.actuate(\"restart\", component)."),
            HostFn::Sync(self_heal),
        ),
    ]
}

fn record(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let metric = str_arg(args, "metric", "metric")?;
    h.record_metric(metric, arg(args, "value")?)?;
    Ok(Value::Null)
}

fn health(h: &mut RuntimeHost, _: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let (h, st) = h.homeo()?;
    h.health(st).map(Value::Float).map_err(HostError::runtime)
}

fn get_slo(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let slo = str_arg(args, "name", "name")?;
    let (h, _) = h.homeo()?;
    Ok(h.get_slo(slo)
        .map_or(Value::Null, |j| memory::from_json(&j)))
}

fn check_slo(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let slo = str_arg(args, "name", "name")?;
    let value = match arg(args, "value")? {
        Value::Null => None,
        Value::Int(n) => Some(*n as f64),
        Value::Float(x) => Some(*x),
        Value::Duration(ms) => Some(*ms),
        other => {
            return Err(HostError::runtime(format!(
                "an SLO value is a number, not {}",
                other.type_name()
            )))
        }
    };
    let (h, st) = h.homeo()?;
    h.check_slo(st, slo, value)
        .map(Value::Bool)
        .map_err(HostError::runtime)
}

fn actuate(h: &mut RuntimeHost, args: &Args<'_>, cx: &mut HostCx<'_>) -> Answer {
    let action = str_arg(args, "action", "action")?;
    let target = str_arg(args, "target", "target")?;
    let params = to_json(arg(args, "params")?, "params")?;
    request(h, action, target, &params, cx)
}

fn self_heal(h: &mut RuntimeHost, args: &Args<'_>, cx: &mut HostCx<'_>) -> Answer {
    let component = arg(args, "component")?.display();
    request(h, "restart", &component, &serde_json::json!({}), cx)
}

/// Ask the controller to perform `action` on `target`, and report it as an event.
fn request(
    h: &mut RuntimeHost,
    action: &str,
    target: &str,
    params: &serde_json::Value,
    cx: &mut HostCx<'_>,
) -> Answer {
    let (h, st) = h.homeo()?;
    let answer = h
        .actuate(st, action, target, params)
        .map_err(HostError::runtime)?;
    let answer = memory::from_json(&answer);
    let fields: Map = [
        ("action", Value::from(action)),
        ("target", Value::from(target)),
        ("ok", answer.get_field("ok").unwrap_or(Value::Null)),
        ("reason", answer.get_field("reason").unwrap_or(Value::Null)),
    ]
    .into_iter()
    .collect();
    cx.event("actuation", fields);
    Ok(answer)
}

fn status(h: &mut RuntimeHost, _: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let (h, st) = h.homeo()?;
    h.status(st)
        .map(|j| memory::from_json(&j))
        .map_err(HostError::runtime)
}
