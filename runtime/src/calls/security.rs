//! `security.*`: declarations beside implementations; the checks are in [`crate::security`].

use aether_check::decl::{Capability, FnDecl};
use aether_vm::{Args, HostCx, HostError, Value};

use super::{str_arg, tags_arg, HostFn};
use crate::host::RuntimeHost;
use crate::security;

type Answer = Result<Value, HostError>;

pub(super) fn functions() -> Vec<(FnDecl, HostFn)> {
    let m = "security";
    vec![
        (
            FnDecl::in_module(m, "verify_signature")
                .param("path")
                .capability(Capability::SecurityRead)
                .doc("Verifies the signature of the file at path (a regular file of at most 4 MiB); {ok, reason, key_id}."),
            HostFn::Sync(verify_signature),
        ),
        (
            FnDecl::in_module(m, "check_capabilities")
                .param("list")
                .doc("Whether the capabilities in list are granted."),
            HostFn::Sync(check_capabilities),
        ),
        (
            FnDecl::in_module(m, "check_network_policy")
                .param("host")
                .doc("Whether the network policy allows host."),
            HostFn::Sync(check_network_policy),
        ),
    ]
}

fn verify_signature(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let path = str_arg(args, "path", "path")?;
    Ok(security::verify_signature(
        std::path::Path::new(path),
        h.config.trust.as_ref(),
    ))
}

fn check_capabilities(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let wanted = tags_arg(args, "list")?;
    let caps = &h.config.capabilities;
    let granted = |c: &str| {
        let module = c.split('.').next().unwrap_or(c);
        caps.iter().any(|d| d == c || d == module)
    };
    Ok(Value::Bool(wanted.iter().all(|c| granted(c))))
}

fn check_network_policy(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let host = str_arg(args, "host", "host")?;
    Ok(Value::Bool(h.config.network.allows(host)))
}
