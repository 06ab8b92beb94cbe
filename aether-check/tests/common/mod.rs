//! Shared helpers of the checker tests: a registry mirroring a few real stdlib functions.

use aether_check::decl::{Capability, DefaultValue, FnDecl, Registry};

/// A small registry shaped like the real one (docs/contract/STDLIB.md): globals, variadics,
/// keyword-only parameters after a variadic, and module functions with capabilities.
pub(crate) fn registry() -> Registry {
    let mut r = Registry::new();
    r.extend([
        FnDecl::global("print").rest("args"),
        FnDecl::global("len").param("x"),
        FnDecl::global("str").param("x"),
        FnDecl::global("format").param("template").rest("args"),
        FnDecl::global("get")
            .param("m")
            .param("k")
            .opt("default", DefaultValue::Null),
        FnDecl::global("range")
            .param("a")
            .opt("b", DefaultValue::Null)
            .opt("step", DefaultValue::Int(1)),
        FnDecl::global("log")
            .param("message")
            .opt("level", DefaultValue::Str("info")),
        FnDecl::global("store")
            .param("x")
            .opt("tag", DefaultValue::Null)
            .capability(Capability::MemoryWrite)
            .effectful(),
        FnDecl::global("run_plugin")
            .param("name")
            .rest("args")
            .capability(Capability::PluginsInvoke)
            .effectful()
            .waits(),
        FnDecl::in_module("memory", "store")
            .param("content")
            .opt("tags", DefaultValue::EmptyList)
            .opt("kind", DefaultValue::Str("note"))
            .capability(Capability::MemoryWrite)
            .effectful(),
        FnDecl::in_module("memory", "recall")
            .param("query")
            .opt("limit", DefaultValue::Int(5))
            .opt("tags", DefaultValue::EmptyList)
            .capability(Capability::MemoryRead),
        FnDecl::in_module("kernel", "submit")
            .param("task")
            .opt("data", DefaultValue::EmptyMap)
            .opt("priority", DefaultValue::Str("normal"))
            .opt("deadline", DefaultValue::Duration(30_000))
            .capability(Capability::KernelSubmit)
            .effectful(),
        FnDecl::in_module("plugins", "invoke")
            .param("name")
            .rest("args")
            .kw_only("function", DefaultValue::Str("run"))
            .kw_only("timeout", DefaultValue::Null)
            .capability(Capability::PluginsInvoke)
            .effectful()
            .waits(),
        FnDecl::in_module("homeostasis", "health"),
    ]);
    r
}
