//! Legacy constructs and identical copies in `aether classify`: buckets by construct and rule id, counted over distinct file contents, so backup copies do not count twice.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use aether_check::dialect::{self, Construct};

/// The legacy constructs of one file.
#[derive(Clone, Debug, Default)]
pub(crate) struct FileLegacy {
    pub(crate) dialect: Option<&'static str>,
    /// Each site: its construct and, when `aether migrate` leaves it, why.
    sites: Vec<(Construct, Option<&'static str>)>,
}

/// What `aether check` sees in `text`: the sites of a recognised dialect, or the weak markers
/// (unquoted text values, goals with a priority) it reports on lines with parse errors.
pub(crate) fn of_source(text: &str) -> FileLegacy {
    let parsed = aether_syntax::parse(text);
    if !parsed.has_errors() {
        return FileLegacy::default();
    }
    let site = |s: dialect::Site| (s.construct, s.rewrite.err());
    if let Some(rec) = dialect::recognize(text, &parsed.diagnostics) {
        return FileLegacy {
            dialect: Some(rec.dialect.name()),
            sites: rec.sites.into_iter().map(site).collect(),
        };
    }
    let errors = dialect::error_lines(text, &parsed.diagnostics);
    FileLegacy {
        dialect: None,
        sites: dialect::scan(text, &errors)
            .into_iter()
            .filter(|s| {
                matches!(s.construct, Construct::TextValue | Construct::GoalPriority)
                    && errors.contains(&s.line)
            })
            .map(site)
            .collect(),
    }
}

/// One classified file as this module needs it.
pub(crate) struct Entry<'a> {
    pub(crate) path: &'a str,
    pub(crate) category: &'a str,
    pub(crate) failed: bool,
    pub(crate) hash: Option<&'a str>,
    pub(crate) legacy: &'a FileLegacy,
}

/// The short reason of a left site: `no Aether equivalent: ...` gives `no Aether equivalent`.
fn short(reason: &str) -> &str {
    reason.split(':').next().unwrap_or(reason)
}

/// For each path, the first path with the same content (when it is not itself).
pub(crate) fn duplicate_of(entries: &[Entry<'_>]) -> Vec<Option<String>> {
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    entries
        .iter()
        .map(|e| {
            let h = e.hash?;
            let f = *first.entry(h).or_insert(e.path);
            (f != e.path).then(|| f.to_string())
        })
        .collect()
}

/// Add `legacy` (constructs by rule, over distinct contents) and `duplicates` (groups of
/// identical files) to the summary, each only when there is something to say.
pub(crate) fn extend_summary(summary: &mut Map<String, Value>, entries: &[Entry<'_>]) {
    let dups = duplicate_of(entries);
    #[derive(Default)]
    struct Row {
        files: usize,
        copies: usize,
        sites: usize,
        convertible: usize,
        reason: Option<&'static str>,
        examples: Vec<String>,
    }
    let mut rows: BTreeMap<Construct, Row> = BTreeMap::new();
    for (e, dup) in entries.iter().zip(&dups) {
        let mut seen: BTreeMap<Construct, (usize, usize, Option<&'static str>)> = BTreeMap::new();
        for (c, left) in &e.legacy.sites {
            let s = seen.entry(*c).or_default();
            s.0 += 1;
            s.1 += usize::from(left.is_none());
            s.2 = s.2.or(*left);
        }
        for (c, (n, ok, why)) in seen {
            let row = rows.entry(c).or_default();
            row.copies += 1;
            if dup.is_some() {
                continue;
            }
            row.files += 1;
            row.sites += n;
            row.convertible += ok;
            row.reason = row.reason.or(why);
            if row.examples.len() < 3 {
                row.examples.push(e.path.to_string());
            }
        }
    }
    if !rows.is_empty() {
        let mut ordered: Vec<(Construct, Row)> = rows.into_iter().collect();
        ordered.sort_by(|a, b| {
            (b.1.files, b.1.sites)
                .cmp(&(a.1.files, a.1.sites))
                .then(a.0.cmp(&b.0))
        });
        let legacy: Vec<Value> = ordered
            .iter()
            .map(|(c, r)| {
                let verdict = if r.convertible == r.sites {
                    "migratable".to_string()
                } else if r.convertible == 0 {
                    format!("not migratable: {}", short(r.reason.unwrap_or_default()))
                } else {
                    format!(
                        "partly migratable: {} of {} sites ({} for the rest)",
                        r.convertible,
                        r.sites,
                        short(r.reason.unwrap_or_default())
                    )
                };
                json!({
                    "rule": c.rule().id,
                    "name": c.rule().name,
                    "construct": c.title(),
                    "files": r.files,
                    "copies": r.copies,
                    "sites": r.sites,
                    "convertible_sites": r.convertible,
                    "verdict": verdict,
                    "examples": r.examples,
                })
            })
            .collect();
        summary.insert("legacy".into(), Value::Array(legacy));
    }
    let mut groups: BTreeMap<&str, Vec<&Entry<'_>>> = BTreeMap::new();
    for e in entries {
        if let Some(h) = e.hash {
            groups.entry(h).or_default().push(e);
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .filter(|(_, g)| g.len() > 1)
        .map(|(h, g)| {
            json!({
                "content_hash": h,
                "category": g[0].category,
                "files": g.iter().map(|e| e.path).collect::<Vec<_>>(),
            })
        })
        .collect();
    if !groups.is_empty() {
        let copies = dups.iter().filter(|d| d.is_some()).count();
        let distinct_failed = entries
            .iter()
            .zip(&dups)
            .filter(|(e, d)| e.failed && d.is_none())
            .count();
        summary.insert(
            "duplicates".into(),
            json!({"copies": copies, "distinct_failed": distinct_failed, "groups": groups}),
        );
    }
}

/// The markdown tables of [`extend_summary`]'s keys (empty when it added none).
pub(crate) fn markdown(s: &Value, code: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let paths = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|p| format!("`{}`", code(p)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    if let Some(rows) = s["legacy"].as_array() {
        out.push_str("## Legacy constructs\n\nBy construct and rule id, most files first. Files and sites are counted once per distinct content: identical copies (below) are not independent failures.\n\n| Construct | Rule | Files | Sites | Migration | Examples |\n|---|---|---|---|---|---|\n");
        for r in rows {
            out.push_str(&format!(
                "| {} | {} {} | {} | {} | {} | {} |\n",
                r["construct"].as_str().unwrap_or(""),
                r["rule"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or(""),
                r["files"],
                r["sites"],
                r["verdict"].as_str().unwrap_or(""),
                paths(&r["examples"])
            ));
        }
        out.push('\n');
    }
    if let Some(d) = s["duplicates"].as_object() {
        out.push_str(&format!(
            "## Identical copies\n\nFiles with the same content (the same SHA-256 of their bytes) are grouped: {} file(s) are copies of another, so {} distinct contents failed. Each group is one problem; fix it once and replace the copies (or delete the backups).\n\n| Files | Category | Content hash |\n|---|---|---|\n",
            d["copies"], d["distinct_failed"]
        ));
        for g in d["groups"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "| {} | {} | `{}` |\n",
                paths(&g["files"]),
                g["category"].as_str().unwrap_or(""),
                g["content_hash"].as_str().unwrap_or("")
            ));
        }
        out.push('\n');
    }
    out
}

/// One stderr line per legacy construct: `NeuroCode `think` (2 files, 5 sites) - migratable`.
pub(crate) fn stderr_lines(s: &Value) -> Vec<String> {
    s["legacy"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "  {} {} ({} file{}, {} site{}) - {}",
                r["rule"].as_str().unwrap_or(""),
                r["construct"].as_str().unwrap_or(""),
                r["files"],
                if r["files"] == 1 { "" } else { "s" },
                r["sites"],
                if r["sites"] == 1 { "" } else { "s" },
                r["verdict"].as_str().unwrap_or("")
            )
        })
        .collect()
}
