//! Machine outputs: `--json-status` lines, `--format json`, SARIF 2.1.0 and GitHub annotations.

use serde_json::{json, Map, Value};
use serde_sarif::sarif;

use super::report::{FileReport, Finding};
use aether_syntax::Severity;

/// RFC 3339 UTC with microseconds, e.g. `2026-11-23T20:00:00.123456Z`.
pub(crate) fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The status object of docs/contract/LANGUAGE.md section 7, keys in the contract's order.
pub(crate) fn status_object(r: &FileReport, ts: &str) -> Map<String, Value> {
    let s = &r.status;
    let mut m = Map::new();
    m.insert("ok".into(), json!(s.ok));
    m.insert("code".into(), json!(s.code.number()));
    m.insert("code_name".into(), json!(s.code.name()));
    m.insert("file".into(), json!(r.display));
    m.insert("phase".into(), json!(s.phase.as_str()));
    m.insert("message".into(), json!(s.message));
    m.insert("line".into(), json!(s.line));
    m.insert("timestamp".into(), json!(ts));
    m
}

/// One `--json-status` line.
pub(crate) fn status_line(r: &FileReport, ts: &str) -> String {
    Value::Object(status_object(r, ts)).to_string()
}

fn finding_json(f: &Finding) -> Value {
    let d = &f.diag;
    let r = d.rule();
    let fix = d
        .fix()
        .map(|fix| json!({"description": fix.description, "replacement": fix.replacement}));
    json!({
        "rule": r.id,
        "name": r.name,
        "severity": d.severity().as_str(),
        "code": d.code().number(),
        "code_name": d.code().name(),
        "line": f.start.map(|s| s.0),
        "column": f.start.map(|s| s.1),
        "end_line": f.end.map(|e| e.0),
        "end_column": f.end.map(|e| e.1),
        "message": d.message(),
        "help": d.help(),
        "fingerprint": f.fingerprint,
        "stable_fingerprint": f.stable_fingerprint,
        "suppressed": f.suppressed,
        "fix": fix,
        "url": aether_check::codes::doc_url(r.id),
    })
}

/// `--format json`: one object per file with its status fields and diagnostics.
pub(crate) fn json_report(reports: &[FileReport], ts: &str) -> String {
    let files: Vec<Value> = reports
        .iter()
        .map(|r| {
            let mut m = status_object(r, ts);
            m.insert("category".into(), json!(r.status.category()));
            m.insert("suppressed".into(), json!(r.status.suppressed.is_some()));
            m.insert(
                "diagnostics".into(),
                Value::Array(r.findings.iter().map(finding_json).collect()),
            );
            Value::Object(m)
        })
        .collect();
    serde_json::to_string_pretty(&Value::Array(files)).expect("JSON values always serialise")
}

/// A path as shown to people: relative paths without a leading `./`.
fn shown_path(display: &str) -> String {
    display
        .strip_prefix("./")
        .unwrap_or(display)
        .replace('\\', "/")
}

/// A SARIF artifact URI: a relative reference for relative paths, `file://` for absolute
/// ones, with everything but unreserved characters and `/` percent-encoded (RFC 3986).
fn uri(display: &str) -> String {
    let path = shown_path(display);
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if path.starts_with('/') {
        format!("file://{out}")
    } else {
        out
    }
}

/// SARIF 2.1.0: one run, every registered rule as metadata, one result per finding
/// (suppressed ones carry a `suppressions` entry).
pub(crate) fn sarif_report(reports: &[FileReport]) -> String {
    let rules: Vec<&'static aether_syntax::Rule> = aether_check::codes::all().collect();
    let descriptors: Vec<sarif::ReportingDescriptor> = rules
        .iter()
        .map(|r| {
            let level = match r.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            sarif::ReportingDescriptor::builder()
                .id(r.id)
                .name(r.name)
                .short_description(
                    sarif::MultiformatMessageString::builder()
                        .text(r.summary)
                        .build(),
                )
                .help(
                    sarif::MultiformatMessageString::builder()
                        .text(format!(
                            "See {} in the aether repository, or run `aether explain {}`.",
                            aether_check::codes::doc_url(r.id),
                            r.id
                        ))
                        .build(),
                )
                .help_uri(aether_check::codes::doc_url(r.id))
                .default_configuration(
                    sarif::ReportingConfiguration::builder()
                        .level(json!(level))
                        .build(),
                )
                .properties(
                    sarif::PropertyBag::builder()
                        .additional_properties(std::collections::BTreeMap::from([(
                            "result_code".to_string(),
                            json!(r.code.name()),
                        )]))
                        .build(),
                )
                .build()
        })
        .collect();
    let mut results = Vec::new();
    for r in reports {
        for f in &r.findings {
            let d = &f.diag;
            let region = match (f.start, f.end) {
                (Some(s), Some(e)) => Some(
                    sarif::Region::builder()
                        .start_line(i64::from(s.0))
                        .start_column(i64::from(s.1))
                        .end_line(i64::from(e.0))
                        .end_column(i64::from(e.1))
                        .build(),
                ),
                // SARIF consumers such as GitHub want a start line: a file-level problem
                // points at line 1.
                _ => Some(sarif::Region::builder().start_line(1).build()),
            };
            let mut text = d.message().to_string();
            if let Some(h) = d.help() {
                text.push_str(&format!("\nhelp: {h}"));
            }
            let mut physical = sarif::PhysicalLocation::builder()
                .artifact_location(
                    sarif::ArtifactLocation::builder()
                        .uri(uri(&r.display))
                        .build(),
                )
                .build();
            physical.region = region;
            let location = sarif::Location::builder()
                .physical_location(physical)
                .build();
            // Under `--strict` a warning fails the check, so it is reported as an error.
            let level = if f.fails || d.severity() == Severity::Error {
                sarif::ResultLevel::Error
            } else {
                sarif::ResultLevel::Warning
            };
            let rule_index = rules.iter().position(|x| x.id == d.rule().id).unwrap_or(0) as i64;
            // Suppressed findings stay in the log, marked as suppressed by the suppression file.
            let suppressions = f.suppressed.then(|| {
                vec![sarif::Suppression::builder()
                    .kind(json!("external"))
                    .justification("fingerprint listed in the suppression file")
                    .build()]
            });
            let mut result = sarif::Result::builder()
                .rule_id(d.rule().id)
                .rule_index(rule_index)
                .level(level)
                .message(sarif::Message::builder().text(text).build())
                .locations(vec![location])
                .partial_fingerprints(std::collections::BTreeMap::from([
                    ("aetherFingerprint/v1".to_string(), f.fingerprint.clone()),
                    (
                        "aetherStableFingerprint/v1".to_string(),
                        f.stable_fingerprint.clone(),
                    ),
                ]))
                .build();
            result.suppressions = suppressions;
            results.push(result);
        }
    }
    let driver = sarif::ToolComponent::builder()
        .name("aether")
        .version(env!("CARGO_PKG_VERSION"))
        .rules(descriptors)
        .build();
    // Columns count Unicode scalar values (code points), not UTF-16 units.
    let run = sarif::Run::builder()
        .tool(sarif::Tool::builder().driver(driver).build())
        .column_kind(json!("unicodeCodePoints"))
        .results(results)
        .build();
    let doc = sarif::Sarif::builder()
        .schema(sarif::SCHEMA_URL)
        .version(json!("2.1.0"))
        .runs(vec![run])
        .build();
    serde_json::to_string_pretty(&doc).expect("SARIF values always serialise")
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// GitHub Actions workflow commands: `::error file=..,line=..,col=..::message`.
pub(crate) fn github_report(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        for f in &r.findings {
            if f.suppressed {
                continue;
            }
            let d = &f.diag;
            let kind = if f.fails || d.severity() == Severity::Error {
                "error"
            } else {
                "warning"
            };
            let mut props = vec![format!("file={}", escape_property(&shown_path(&r.display)))];
            if let (Some(s), Some(e)) = (f.start, f.end) {
                props.push(format!("line={}", s.0));
                props.push(format!("col={}", s.1));
                props.push(format!("endLine={}", e.0));
                props.push(format!("endColumn={}", e.1));
            }
            props.push(format!(
                "title={}",
                escape_property(&format!("{} {}", d.rule().id, d.rule().name))
            ));
            let mut msg = d.message().to_string();
            if let Some(h) = d.help() {
                msg.push_str(&format!("\nhelp: {h}"));
            }
            out.push_str(&format!(
                "::{kind} {}::{}\n",
                props.join(","),
                escape_data(&msg)
            ));
        }
    }
    out
}
