//! Hover: a native function's declaration (signature, defaults, capability, doc line), or
//! where a variable, action, workflow or step result is defined.

use aether_check::decl::Registry;
use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};

use crate::analysis::{self, NativeFn};
use crate::document::Document;
use crate::index::DefKind;
use crate::navigation::kind_word;
use crate::server::Analysed;

pub(crate) fn describe_native(f: &NativeFn) -> String {
    let mut out = format!("```aether\n{}\n```\n", f.signature);
    if !f.doc.is_empty() {
        out.push_str(&format!("\n{}\n", f.doc));
    }
    if !f.defaults.is_empty() {
        out.push_str(&format!("\n- defaults: `{}`", f.defaults.join("`, `")));
    }
    match f.capability {
        Some(c) => out.push_str(&format!(
            "\n- capability: `{c}` (declare `requires: [\"{}\"]`)",
            c.split('.').next().unwrap_or(c)
        )),
        None => out.push_str("\n- capability: none"),
    }
    if f.effectful {
        out.push_str("\n- effectful: writes state (held back inside `transaction:`)");
    }
    out
}

fn markdown(value: String) -> Hover {
    Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: None,
    }
}

pub(crate) fn hover(
    registry: &Registry,
    a: &Analysed,
    doc: &Document,
    offset: usize,
) -> Option<Hover> {
    let at = offset as u32;
    if let Some(n) = a.index.native_at(at) {
        let text = match (n.module.as_deref(), n.name.as_str()) {
            (Some(m), "") => {
                let fns: Vec<String> = analysis::module_fns(registry, m)
                    .iter()
                    .map(|f| format!("`{}`", f.name))
                    .collect();
                Some(format!("module `{m}`: {}", fns.join(", ")))
            }
            // `memory: f(...)` falls back to the global `f`.
            (Some(m), name) => analysis::native_fn(registry, Some(m), name)
                .or_else(|| (m == "memory").then(|| analysis::native_fn(registry, None, name))?)
                .map(|f| describe_native(&f)),
            (None, name) => analysis::native_fn(registry, None, name).map(|f| describe_native(&f)),
        };
        return text.map(markdown);
    }
    let (def, _) = a.index.def_at(at)?;
    let d = &a.index.defs[def];
    let pos = doc.position(d.span.start as usize);
    let place = format!(
        "defined at line {}, column {}",
        pos.line + 1,
        pos.character + 1
    );
    let head = match d.kind {
        DefKind::Action => format!("action {}({})", d.name, d.params.join(", ")),
        DefKind::Workflow => format!("workflow {}", d.name),
        kind => format!("{} {}", kind_word(kind), d.name),
    };
    Some(markdown(format!("```aether\n{head}\n```\n\n{place}")))
}
