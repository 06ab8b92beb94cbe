//! `memory.*` and the Aether 1.1 globals backed by it (`store`, `reflect`, `load_logs`,
//! `escalate_to`): declarations beside implementations; the SQL is in [`crate::memory`].

use aether_check::decl::{Capability, DefaultValue, FnDecl};
use aether_vm::{Args, HostCx, HostError, Map, Value};

use super::{arg, int_arg, runtime_error, str_arg, tags_arg, HostFn};
use crate::host::RuntimeHost;
use crate::memory;

type Answer = Result<Value, HostError>;

pub(super) fn functions() -> Vec<(FnDecl, HostFn)> {
    let m = "memory";
    vec![
        (
            FnDecl::in_module(m, "store")
                .param("content")
                .opt("tags", DefaultValue::EmptyList)
                .opt("kind", DefaultValue::Str("note"))
                .capability(Capability::MemoryWrite)
                .effectful()
                .doc("Stores a record and returns its id."),
            HostFn::Sync(store),
        ),
        (
            FnDecl::in_module(m, "get")
                .param("id")
                .capability(Capability::MemoryRead)
                .doc("The record with this id, or null."),
            HostFn::Sync(get),
        ),
        (
            FnDecl::in_module(m, "recall")
                .param("query")
                .opt("limit", DefaultValue::Int(5))
                .opt("tags", DefaultValue::EmptyList)
                .capability(Capability::MemoryRead)
                .doc("Records ranked by full-text match of query (newest first when query is empty)."),
            HostFn::Sync(recall),
        ),
        (
            FnDecl::in_module(m, "forget")
                .param("id")
                .capability(Capability::MemoryWrite)
                .effectful()
                .doc("Deletes the record with this id; whether it existed."),
            HostFn::Sync(forget),
        ),
        (
            FnDecl::in_module(m, "count")
                .opt("tags", DefaultValue::EmptyList)
                .capability(Capability::MemoryRead)
                .doc("The number of records, optionally only those with tags."),
            HostFn::Sync(count),
        ),
        (
            FnDecl::in_module(m, "status")
                .capability(Capability::MemoryRead)
                .doc("{entries, size_bytes, path} of the memory store."),
            HostFn::Sync(status),
        ),
        (
            FnDecl::global("store")
                .param("x")
                .opt("tag", DefaultValue::Null)
                .capability(Capability::MemoryWrite)
                .effectful()
                .doc("memory.store(x, tags=[tag]) (tags=[] when tag is null); returns the id."),
            HostFn::Sync(store_global),
        ),
        (
            FnDecl::global("reflect")
                .opt("query", DefaultValue::Str(""))
                .capability(Capability::MemoryRead)
                .doc("memory.recall(query)."),
            HostFn::Sync(reflect),
        ),
        (
            FnDecl::global("load_logs")
                .opt("tag", DefaultValue::Null)
                .opt("limit", DefaultValue::Int(100))
                .capability(Capability::MemoryRead)
                .doc("The run-log records kept in memory, newest first, optionally by tag."),
            HostFn::Sync(load_logs),
        ),
        (
            FnDecl::global("escalate_to")
                .param("target")
                .opt("message", DefaultValue::Str(""))
                .capability(Capability::MemoryWrite)
                .effectful()
                .doc("Emits an escalation event and records it in memory with tag escalation."),
            HostFn::Sync(escalate_to),
        ),
    ]
}

fn records(rs: Vec<memory::Record>) -> Value {
    Value::from(rs.iter().map(memory::Record::to_value).collect::<Vec<_>>())
}

fn store(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let tags = tags_arg(args, "tags")?;
    let kind = str_arg(args, "kind", "kind")?;
    let content = arg(args, "content")?;
    let st = h.state()?;
    memory::store(st, content, &tags, kind)
        .map(Value::Int)
        .map_err(runtime_error)
}

fn store_global(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let tags = tags_arg(args, "tag")?;
    let content = arg(args, "x")?;
    let st = h.state()?;
    memory::store(st, content, &tags, "note")
        .map(Value::Int)
        .map_err(runtime_error)
}

fn get(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let id = int_arg(args, "id")?;
    let st = h.state()?;
    Ok(memory::get(st, id)
        .map_err(runtime_error)?
        .map_or(Value::Null, |r| r.to_value()))
}

fn recall(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let query = str_arg(args, "query", "query")?;
    let limit = int_arg(args, "limit")?;
    let tags = tags_arg(args, "tags")?;
    let st = h.state()?;
    let start = std::time::Instant::now();
    let res = memory::recall(st, query, limit, &tags)
        .map(records)
        .map_err(runtime_error);
    // The host's own measurement for homeostasis: memory round trip.
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    h.host_metric("memory_roundtrip_ms", ms);
    res
}

fn reflect(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let query = str_arg(args, "query", "query")?;
    let st = h.state()?;
    memory::recall(st, query, 5, &[])
        .map(records)
        .map_err(runtime_error)
}

fn forget(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let id = int_arg(args, "id")?;
    let st = h.state()?;
    memory::forget(st, id)
        .map(Value::Bool)
        .map_err(runtime_error)
}

fn count(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let tags = tags_arg(args, "tags")?;
    let st = h.state()?;
    memory::count(st, &tags)
        .map(Value::Int)
        .map_err(runtime_error)
}

fn status(h: &mut RuntimeHost, _: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let st = h.state()?;
    memory::status(st).map_err(runtime_error)
}

fn load_logs(h: &mut RuntimeHost, args: &Args<'_>, _: &mut HostCx<'_>) -> Answer {
    let tag = match arg(args, "tag")? {
        Value::Null => None,
        _ => Some(str_arg(args, "tag", "tag")?),
    };
    let limit = int_arg(args, "limit")?;
    let st = h.state()?;
    memory::logs(st, tag, limit)
        .map(records)
        .map_err(runtime_error)
}

fn escalate_to(h: &mut RuntimeHost, args: &Args<'_>, cx: &mut HostCx<'_>) -> Answer {
    let target = arg(args, "target")?.display();
    let message = arg(args, "message")?.display();
    let fields: Map = [
        ("target", Value::from(target.as_str())),
        ("message", Value::from(message.as_str())),
    ]
    .into_iter()
    .collect();
    cx.event("escalation", fields.clone());
    let st = h.state()?;
    memory::store_unique(
        st,
        &Value::from(fields),
        &["escalation".to_string()],
        "escalation",
    )
    .map(Value::Int)
    .map_err(runtime_error)
}
