//! `plugins.*`, `run_plugin` and `available_plugins`: declarations beside
//! implementations; discovery, the protocol and the processes are in [`crate::plugins`].

use aether_check::decl::{Capability, DefaultValue, FnDecl};
use aether_vm::{Args, ErrorClass, HostCall, HostCx, HostError, Map, Value};

use super::{arg, str_arg, to_json, HostFn};
use crate::host::RuntimeHost;
use crate::memory;
use crate::plugins::PluginErrorKind;

type Answer = Result<Value, HostError>;

pub(super) fn functions() -> Vec<(FnDecl, HostFn)> {
    let m = "plugins";
    vec![
        (
            FnDecl::in_module(m, "list")
                .doc("The installed plugins [{name, version, capabilities, circuit}]."),
            HostFn::Sync(list),
        ),
        (
            FnDecl::in_module(m, "invoke")
                .param("name")
                .rest("args")
                .kw_only("function", DefaultValue::Str("run"))
                .kw_only("timeout", DefaultValue::Null)
                .capability(Capability::PluginsInvoke)
                .effectful()
                .waits()
                .doc("Calls function of plugin name with args and returns its result."),
            HostFn::Call(invoke),
        ),
        (
            FnDecl::in_module(m, "status")
                .param("name")
                .doc("The state of the named plugin."),
            HostFn::Sync(status),
        ),
        (
            FnDecl::global("run_plugin")
                .param("name")
                .rest("args")
                .capability(Capability::PluginsInvoke)
                .effectful()
                .waits()
                .doc("plugins.invoke(name, args...)."),
            HostFn::Call(run_plugin),
        ),
        (
            FnDecl::global("available_plugins").doc("plugins.list()."),
            HostFn::Sync(list),
        ),
    ]
}

fn list(h: &mut RuntimeHost, _: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    Ok(Value::from(
        h.config
            .plugins
            .list()
            .iter()
            .map(memory::from_json)
            .collect::<Vec<_>>(),
    ))
}

fn status(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let name = str_arg(args, "name", "name")?;
    Ok(h.config
        .plugins
        .status(name)
        .map_or(Value::Null, |j| memory::from_json(&j)))
}

/// `plugins.invoke(name, args..., function="run", timeout=null)`.
fn invoke(h: &mut RuntimeHost, args: &Args<'_>, cx: &mut HostCx<'_>) -> HostCall {
    if let Err(e) = str_arg(args, "name", "the plugin name") {
        return HostCall::Ready(Err(e));
    }
    let options = str_arg(args, "function", "function").and_then(|function| {
        let timeout =
            crate::plugins::timeout_from_json(&to_json(arg(args, "timeout")?, "timeout")?)
                .map_err(HostError::runtime)?;
        Ok((function.to_string(), timeout))
    });
    match options {
        Ok((function, timeout)) => start(h, args, &function, timeout, cx),
        Err(e) => HostCall::Ready(Err(e)),
    }
}

/// `run_plugin(name, args...)`: function `run`, the plugin's own timeout.
fn run_plugin(h: &mut RuntimeHost, args: &Args<'_>, cx: &mut HostCx<'_>) -> HostCall {
    start(h, args, "run", None, cx)
}

/// Check the plugin may run under this script's capabilities and policy, then start its
/// process: the fiber waits on the future while other fibers go on.
fn start(
    h: &mut RuntimeHost,
    args: &Args<'_>,
    function: &str,
    timeout: Option<std::time::Duration>,
    cx: &mut HostCx<'_>,
) -> HostCall {
    let ready = |r: Result<Value, HostError>| HostCall::Ready(r);
    let name = match str_arg(args, "name", "the plugin name") {
        Ok(n) => n.to_string(),
        Err(e) => return ready(Err(e)),
    };
    let rest: Result<Vec<serde_json::Value>, HostError> = match args.rest("args") {
        Ok(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| to_json(v, &format!("argument {} of plugin `{name}`", i + 1)))
            .collect(),
        Err(_) => Ok(Vec::new()),
    };
    let rest = match rest {
        Ok(rest) => rest,
        Err(e) => return ready(Err(e)),
    };
    if let Some(m) = h.config.plugins.manifest(&name) {
        if h.config.enforce_capabilities {
            let caps = &h.config.capabilities;
            let missing = m.capabilities.iter().find(|c| {
                let module = c.split('.').next().unwrap_or(c);
                !caps.iter().any(|d| d == *c || d == module)
            });
            if let Some(c) = missing {
                return ready(Err(HostError::new(
                    ErrorClass::Permission,
                    format!(
                        "plugin `{name}` needs capability `{c}`, which the script does not declare (add it to `require: capabilities:`)"
                    ),
                )));
            }
        }
        if h.config.deterministic && !m.deterministic {
            return ready(Err(HostError::runtime(format!(
                "plugin `{name}` is not declared deterministic, and the policy is `deterministic: true`"
            ))));
        }
    }
    if h.config.mock_io {
        let fields: Map = [
            ("plugin", Value::from(name.as_str())),
            ("function", Value::from(function)),
        ]
        .into_iter()
        .collect();
        cx.event("plugin_mocked", fields);
        return ready(Ok(Value::Null));
    }
    let key = h.idempotency_key.take();
    let fut = h
        .config
        .plugins
        .invoke_keyed(&name, function, rest, timeout, key);
    HostCall::Pending(Box::pin(async move {
        match fut.await {
            Ok(j) => Ok(memory::from_json(&j)),
            Err(e) => {
                let class = match e.kind {
                    PluginErrorKind::Timeout => ErrorClass::Timeout,
                    PluginErrorKind::NotFound | PluginErrorKind::UnknownFunction => {
                        ErrorClass::Runtime
                    }
                    PluginErrorKind::CircuitOpen | PluginErrorKind::Failed => ErrorClass::Plugin,
                };
                Err(HostError::new(class, e.message))
            }
        }
    }))
}

/// Whether `name(raw...)` calls a plugin whose manifest declares it `idempotent` (an
/// interrupted call of it is retried with its idempotency key on resume).
pub(crate) fn idempotent_call(h: &RuntimeHost, name: &str, raw: &[Value]) -> bool {
    if name != "run_plugin" && name != "plugins.invoke" {
        return false;
    }
    let Some(Value::Str(plugin)) = raw.first() else {
        return false;
    };
    h.config
        .plugins
        .manifest(plugin)
        .is_some_and(|m| m.idempotent)
}
