//! `wait_signal`: its declaration; the mailbox and the wait are in
//! [`crate::durable::signals`].

use aether_check::decl::{DefaultValue, FnDecl};

use super::HostFn;

pub(super) fn functions() -> Vec<(FnDecl, HostFn)> {
    vec![(
        FnDecl::global("wait_signal")
            .param("name")
            .opt("timeout", DefaultValue::Null)
            .effectful()
            .waits()
            .doc("In a durable run, waits for signal name (sent with `aether runs signal`) and returns its payload; TIMEOUT_ERROR when timeout passes first."),
        HostFn::SelfJournaled(crate::durable::signals::wait_signal),
    )]
}
