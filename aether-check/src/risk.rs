//! Risk scoring: what a script can do to the world, found per line from its syntax tree.
//!
//! Weights (documented in `docs/signing.md`): plugin execution 5, network access 4,
//! file writes 4, actuation 3, memory deletion 3, kernel submission 2.

use aether_syntax::ast::*;
use aether_syntax::visit::{
    walk_expr, walk_item, walk_list_item, walk_map_entry, walk_script, walk_stmt, Visitor,
};
use aether_syntax::{LineIndex, Span};

/// A kind of risky capability use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RiskKind {
    PluginExecution,
    Network,
    FileWrite,
    Actuation,
    MemoryDeletion,
    KernelSubmission,
}

impl RiskKind {
    pub const ALL: [RiskKind; 6] = [
        RiskKind::PluginExecution,
        RiskKind::Network,
        RiskKind::FileWrite,
        RiskKind::Actuation,
        RiskKind::MemoryDeletion,
        RiskKind::KernelSubmission,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RiskKind::PluginExecution => "plugin-execution",
            RiskKind::Network => "network",
            RiskKind::FileWrite => "file-write",
            RiskKind::Actuation => "actuation",
            RiskKind::MemoryDeletion => "memory-deletion",
            RiskKind::KernelSubmission => "kernel-submission",
        }
    }

    pub fn weight(self) -> u32 {
        match self {
            RiskKind::PluginExecution => 5,
            RiskKind::Network | RiskKind::FileWrite => 4,
            RiskKind::Actuation | RiskKind::MemoryDeletion => 3,
            RiskKind::KernelSubmission => 2,
        }
    }
}

/// One risky use, at a 1-based line, with the trimmed source line as a snippet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskFinding {
    pub line: u32,
    pub kind: RiskKind,
    pub snippet: String,
}

/// The findings of one script, in line order, and their total weight.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RiskReport {
    pub findings: Vec<RiskFinding>,
}

impl RiskReport {
    pub fn score(&self) -> u32 {
        self.findings.iter().map(|f| f.kind.weight()).sum()
    }
}

fn is_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    [
        "http://", "https://", "ws://", "wss://", "ftp://", "tcp://", "grpc://",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

fn capability_kind(s: &str) -> Option<RiskKind> {
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("net") || lower.starts_with("http") {
        Some(RiskKind::Network)
    } else if ["fs.write", "file.write", "files.write", "filesystem.write"]
        .contains(&lower.as_str())
    {
        Some(RiskKind::FileWrite)
    } else {
        None
    }
}

struct Scanner<'a> {
    src: &'a str,
    index: LineIndex,
    found: Vec<(Span, RiskKind)>,
}

impl Scanner<'_> {
    fn add(&mut self, span: Span, kind: RiskKind) {
        self.found.push((span, kind));
    }

    fn call_kind(path: &[&str]) -> Option<RiskKind> {
        match path {
            ["run_plugin"] | ["plugins", "invoke"] => Some(RiskKind::PluginExecution),
            ["memory", "forget"] => Some(RiskKind::MemoryDeletion),
            ["kernel", "submit"] => Some(RiskKind::KernelSubmission),
            ["homeostasis", "actuate"] | ["self_heal"] => Some(RiskKind::Actuation),
            _ => None,
        }
    }

    /// Capability names in a list that declares capabilities or permissions.
    fn declared_capabilities(&mut self, items: &[&Expr]) {
        for item in items {
            let values: Vec<&Expr> = match &item.kind {
                ExprKind::List(inner) => inner.iter().collect(),
                _ => vec![*item],
            };
            for v in values {
                if let ExprKind::Str(s) = &v.kind {
                    if let Some(kind) = capability_kind(s) {
                        self.add(v.span, kind);
                    }
                }
            }
        }
    }

    fn snippet(&self, line: u32) -> String {
        let start = self.index.line_start(line).unwrap_or(0) as usize;
        let text = self.src[start..].lines().next().unwrap_or("").trim();
        if text.chars().count() > 80 {
            let cut: String = text.chars().take(77).collect();
            format!("{cut}...")
        } else {
            text.to_string()
        }
    }
}

impl<'a> Visitor<'a> for Scanner<'_> {
    fn visit_item(&mut self, item: &'a Item) {
        // A goal is prose, and a reserved block is not run.
        if !matches!(item, Item::Goal(_) | Item::Reserved { .. }) {
            walk_item(self, item);
        }
    }

    fn visit_stmt(&mut self, s: &'a Stmt) {
        match &s.kind {
            StmtKind::Memory { call } => {
                if let ExprKind::Call { callee, .. } = &call.kind {
                    if matches!(&callee.kind, ExprKind::Name(n) if n == "forget") {
                        self.add(call.span, RiskKind::MemoryDeletion);
                    }
                }
            }
            StmtKind::Trigger(_) => self.add(s.span, RiskKind::KernelSubmission),
            _ => {}
        }
        walk_stmt(self, s);
    }

    fn visit_expr(&mut self, e: &'a Expr) {
        match &e.kind {
            // Only URLs count in ordinary strings; capability names count where capabilities
            // are declared (see `declared_capabilities`), so "network ok" in a log is no risk.
            ExprKind::Str(s) if is_url(s) => self.add(e.span, RiskKind::Network),
            ExprKind::Call { callee, .. } => {
                if let Some(kind) = callee.dotted_path().as_deref().and_then(Scanner::call_kind) {
                    self.add(e.span, kind);
                }
            }
            _ => {}
        }
        walk_expr(self, e);
    }

    fn visit_map_entry(&mut self, e: &'a MapEntry) {
        if matches!(e.key.as_str(), "capabilities" | "permissions" | "requires") {
            let items: Vec<&Expr> = match &e.value {
                MapValue::Expr(v) => vec![v],
                MapValue::List(items) => items.iter().map(|i| &i.value).collect(),
                MapValue::Map(_) => vec![],
            };
            self.declared_capabilities(&items);
        }
        walk_map_entry(self, e);
    }

    fn visit_list_item(&mut self, it: &'a ListItem) {
        for o in &it.options {
            if o.name.text == "requires" {
                self.declared_capabilities(&[&o.value]);
            }
        }
        walk_list_item(self, it);
    }
}

/// Score a parsed script. One finding per (line, kind): a line that invokes two plugins
/// counts once for plugin execution.
pub fn assess(src: &str, script: &Script) -> RiskReport {
    let mut sc = Scanner {
        src,
        index: LineIndex::new(src),
        found: Vec::new(),
    };
    walk_script(&mut sc, script);
    let mut findings: Vec<RiskFinding> = sc
        .found
        .iter()
        .map(|(span, kind)| {
            let line = sc.index.line_col(src, span.start).line;
            RiskFinding {
                line,
                kind: *kind,
                snippet: sc.snippet(line),
            }
        })
        .collect();
    findings.sort_by_key(|f| (f.line, f.kind));
    findings.dedup_by_key(|f| (f.line, f.kind));
    RiskReport { findings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(u32, &'static str)> {
        let parsed = aether_syntax::parse(src);
        assess(src, &parsed.ast)
            .findings
            .iter()
            .map(|f| (f.line, f.kind.as_str()))
            .collect()
    }

    #[test]
    fn finds_each_kind_on_its_line() {
        let src = "goal: \"g\"\n\
                   require:\n    capabilities: [\"net.http\", \"fs.write\"]\n\
                   let r = run_plugin(\"weather\", \"x\")\n\
                   memory.forget(r)\n\
                   trigger work()\n\
                   kernel.submit(\"work\")\n\
                   homeostasis.actuate(\"restart\", \"db\")\n\
                   print(\"see https://example.org\")\n";
        assert_eq!(
            kinds(src),
            vec![
                (3, "network"),
                (3, "file-write"),
                (4, "plugin-execution"),
                (5, "memory-deletion"),
                (6, "kernel-submission"),
                (7, "kernel-submission"),
                (8, "actuation"),
                (9, "network"),
            ]
        );
    }

    #[test]
    fn score_sums_weights_and_a_line_counts_once_per_kind() {
        let src =
            "run_plugin(\"a\")\nx = [run_plugin(\"b\"), run_plugin(\"c\")]\nmemory: forget(1)\n";
        let parsed = aether_syntax::parse(src);
        let report = assess(src, &parsed.ast);
        assert_eq!(report.findings.len(), 3);
        assert_eq!(report.score(), 5 + 5 + 3);
        assert_eq!(
            report.findings[1].snippet,
            "x = [run_plugin(\"b\"), run_plugin(\"c\")]"
        );
    }

    #[test]
    fn a_quiet_script_has_no_risk() {
        assert!(kinds("goal: \"g\"\nprint(len([1, 2]))\n").is_empty());
        // Capability words outside a capability declaration are just text.
        assert!(kinds("log(\"network looks healthy\")\nlet mode = \"fs.write\"\n").is_empty());
    }
}
