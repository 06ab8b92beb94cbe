//! `kernel.*`: declarations beside implementations; the queues and their SQL are in
//! [`crate::kernel`].

use aether_check::decl::{Capability, DefaultValue, FnDecl};
use aether_vm::{Args, HostCx, HostError, Map, Value};

use super::{arg, int_arg, runtime_error, str_arg, HostFn};
use crate::host::RuntimeHost;

type Answer = Result<Value, HostError>;

pub(super) fn functions() -> Vec<(FnDecl, HostFn)> {
    let m = "kernel";
    vec![
        (
            FnDecl::in_module(m, "submit")
                .param("task")
                .opt("data", DefaultValue::EmptyMap)
                .opt("priority", DefaultValue::Str("normal"))
                .opt("deadline", DefaultValue::Duration(30_000))
                .capability(Capability::KernelSubmit)
                .effectful()
                .doc("Queues task (called with data's entries as keywords) and returns its id."),
            HostFn::Sync(submit),
        ),
        (
            FnDecl::in_module(m, "status")
                .doc("{running, queues, inflight, processed, dlq} of the kernel."),
            HostFn::Sync(status),
        ),
        (
            FnDecl::in_module(m, "dlq")
                .opt("limit", DefaultValue::Int(100))
                .doc("Dead letters {task, reason, attempts, at}."),
            HostFn::Sync(dlq),
        ),
        (
            FnDecl::in_module(m, "register")
                .param("name")
                .capability(Capability::KernelRegister)
                .effectful()
                .doc("Registers a service by name."),
            HostFn::Sync(register),
        ),
        (
            FnDecl::in_module(m, "heartbeat")
                .param("name")
                .capability(Capability::KernelRegister)
                .effectful()
                .doc("Records a heartbeat of the named service."),
            HostFn::Sync(heartbeat),
        ),
        (
            FnDecl::in_module(m, "services")
                .doc("The registered services [{name, status, last_heartbeat, stale}]."),
            HostFn::Sync(services),
        ),
    ]
}

fn submit(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let task = match arg(args, "task")? {
        Value::Str(s) => s.to_string(),
        Value::Action(a) => a.name.clone(),
        other => {
            return Err(HostError::runtime(format!(
                "a task is an action or its name, not {}",
                other.type_name()
            )))
        }
    };
    let data = match arg(args, "data")? {
        Value::Null => Map::new(),
        Value::Map(m) => m.as_ref().clone(),
        other => {
            return Err(HostError::runtime(format!(
                "task data is a map of argument names to values, not {}",
                other.type_name()
            )))
        }
    };
    let priority = str_arg(args, "priority", "priority")?;
    let deadline = match arg(args, "deadline")? {
        Value::Duration(ms) if *ms >= 0.0 => aether_vm::wait_of_ms(*ms),
        Value::Int(n) if *n >= 0 => aether_vm::wait_of_ms(*n as f64 * 1000.0),
        Value::Float(x) if *x >= 0.0 && x.is_finite() => aether_vm::wait_of_ms(x * 1000.0),
        _ => {
            return Err(HostError::runtime(
                "deadline is a duration or a number of seconds that is not negative",
            ))
        }
    };
    h.try_state();
    h.kernel
        .submit(h.state.as_ref(), &task, data, priority, deadline)
        .map(|id| Value::Int(id as i64))
        .map_err(HostError::runtime)
}

fn status(h: &mut RuntimeHost, _: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    h.try_state();
    Ok(h.kernel.status(h.state.as_ref()))
}

fn dlq(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let limit = int_arg(args, "limit")?;
    h.try_state();
    let letters = h
        .kernel
        .dlq(h.state.as_ref(), limit)
        .map_err(runtime_error)?;
    Ok(Value::from(
        letters
            .iter()
            .map(|d| {
                let m: Map = [
                    ("task", Value::from(d.task.as_str())),
                    ("reason", Value::from(d.reason.as_str())),
                    ("attempts", Value::Int(d.attempts as i64)),
                    ("at", Value::from(d.at.as_str())),
                ]
                .into_iter()
                .collect();
                Value::from(m)
            })
            .collect::<Vec<_>>(),
    ))
}

/// `register` and `heartbeat`: both record the service as alive.
fn beat(h: &mut RuntimeHost, args: &Args<'_>, register: bool) -> Answer {
    let service = str_arg(args, "name", "name")?;
    h.state()?;
    let st = h
        .state
        .as_ref()
        .ok_or_else(|| HostError::runtime("no state"))?;
    h.kernel
        .heartbeat(st, service, register)
        .map_err(runtime_error)?;
    Ok(Value::Null)
}

fn register(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    beat(h, args, true)
}

fn heartbeat(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    beat(h, args, false)
}

fn services(h: &mut RuntimeHost, _: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    h.state()?;
    let st = h
        .state
        .as_ref()
        .ok_or_else(|| HostError::runtime("no state"))?;
    h.kernel.services(st).map_err(runtime_error)
}
