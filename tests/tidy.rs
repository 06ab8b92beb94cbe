//! Tidy checks on the repository itself: dependency direction, rule docs, file headers, stray snapshots, manifest comments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The pipeline, earliest first (STYLE.md section 1): a crate may depend only on crates before it.
/// `aether-lsp` is part of the CLI's edge (it serves `aether lsp`), so it sits just below it.
const CHAIN: [&str; 7] = [
    "aether-syntax",
    "aether-check",
    "aether-vm",
    "aether-stdlib",
    "aether-runtime",
    "aether-lsp",
    "aether",
];

/// A leaf: depends on no workspace crate, and only these may depend on it.
const SIGN: &str = "aether-sign";
const SIGN_USERS: [&str; 3] = ["aether-runtime", "aether-lsp", "aether"];

/// The sections of a rule's page (`docs/codes/<id>.md`), after ruff's rule docs.
const RULE_DOC_SECTIONS: [&str; 4] = ["## What it does", "## Why", "## Example", "## Use instead"];

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The part of a TOML line before a `#` comment (a `#` inside a string does not count).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return &line[..i],
            None => {}
        }
    }
    line
}

/// The quoted strings of a TOML fragment, in order.
fn quoted_strings(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// `name = "..."`-style value of `key` in an inline table or a `key = "..."` line.
fn string_field(text: &str, key: &str) -> Option<String> {
    let mut rest = text;
    while let Some(pos) = rest.find(key) {
        let before = rest[..pos].chars().next_back();
        let after = rest[pos + key.len()..].trim_start();
        if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-')) {
            if let Some(value) = after.strip_prefix('=') {
                return quoted_strings(value).into_iter().next();
            }
        }
        rest = &rest[pos + key.len()..];
    }
    None
}

/// Which dependency table a section header names: the kind, and the dependency for
/// `[dependencies.NAME]`-style tables.
fn dependency_section(header: &str) -> Option<(&'static str, Option<String>)> {
    let rest = match header.strip_prefix("target.") {
        // `target.'cfg(unix)'.dependencies`: skip the (possibly quoted, dotted) target.
        Some(target) => {
            let after = match target.chars().next() {
                Some(q @ ('\'' | '"')) => &target[target[1..].find(q)? + 2..],
                _ => &target[target.find('.')?..],
            };
            after.strip_prefix('.')?
        }
        None => header,
    };
    for kind in ["build-dependencies", "dev-dependencies", "dependencies"] {
        if rest == kind {
            return Some((kind, None));
        }
        if let Some(name) = rest.strip_prefix(kind).and_then(|r| r.strip_prefix('.')) {
            return Some((kind, Some(name.trim_matches(['"', '\'']).to_string())));
        }
    }
    None
}

#[derive(Debug)]
struct Dependency {
    /// The package depended on (after `package = "..."` renames).
    package: String,
    kind: &'static str,
    line: usize,
}

#[derive(Debug)]
struct Manifest {
    path: PathBuf,
    name: String,
    deps: Vec<Dependency>,
}

/// A small reader for the subset of TOML that Cargo manifests use: enough to find the package
/// name and every entry of the dependency tables.
fn parse_manifest(path: &Path, text: &str) -> Manifest {
    let mut name = None;
    let mut deps = Vec::new();
    let mut section = String::new();
    let mut table_dep: Option<(&'static str, String, usize, Option<String>)> = None;
    let flush = |table_dep: &mut Option<(&'static str, String, usize, Option<String>)>,
                 deps: &mut Vec<Dependency>| {
        if let Some((kind, key, line, package)) = table_dep.take() {
            deps.push(Dependency {
                package: package.unwrap_or(key),
                kind,
                line,
            });
        }
    };
    for (idx, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            flush(&mut table_dep, &mut deps);
            section = line
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .to_string();
            if let Some((kind, Some(dep))) = dependency_section(&section) {
                table_dep = Some((kind, dep, idx + 1, None));
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if section == "package" && key == "name" {
            name = quoted_strings(value).into_iter().next();
        }
        match dependency_section(&section) {
            // `[dependencies.NAME]`: only a `package = "..."` rename matters.
            Some((_, Some(_))) => {
                if let (true, Some(t)) = (key == "package", table_dep.as_mut()) {
                    t.3 = quoted_strings(value).into_iter().next();
                }
            }
            Some((kind, None)) => {
                // `foo = ...`, `foo.workspace = true`, `"foo" = ...`
                let dep = key
                    .split('.')
                    .next()
                    .unwrap_or(key)
                    .trim()
                    .trim_matches(['"', '\''])
                    .to_string();
                let package = string_field(value, "package").unwrap_or(dep);
                deps.push(Dependency {
                    package,
                    kind,
                    line: idx + 1,
                });
            }
            None => {}
        }
    }
    flush(&mut table_dep, &mut deps);
    Manifest {
        path: path.to_path_buf(),
        name: name.unwrap_or_else(|| panic!("{} has no [package] name", path.display())),
        deps,
    }
}

/// `members = [...]` of the root manifest (simple `dir/*` globs expanded).
fn workspace_members(root_manifest: &str) -> Vec<PathBuf> {
    let start = root_manifest
        .find("members")
        .expect("the root manifest lists workspace members");
    let rest = &root_manifest[start..];
    let open = rest.find('[').expect("members = [");
    let close = rest.find(']').expect("members = [...]");
    let mut out = Vec::new();
    for member in quoted_strings(&rest[open..close]) {
        if let Some(dir) = member.strip_suffix("/*") {
            let mut found: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
                .expect("member glob dir")
                .map(|e| e.expect("dir entry").path())
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(repo_root().join(member));
        }
    }
    out
}

fn workspace_manifests() -> Vec<Manifest> {
    let root = repo_root().join("Cargo.toml");
    let root_text = read(&root);
    let mut manifests = vec![parse_manifest(&root, &root_text)];
    for member in workspace_members(&root_text) {
        let path = member.join("Cargo.toml");
        manifests.push(parse_manifest(&path, &read(&path)));
    }
    manifests
}

/// Every forbidden edge between workspace crates, as messages.
fn forbidden_edges(manifests: &[Manifest]) -> Vec<String> {
    let workspace: Vec<&str> = manifests.iter().map(|m| m.name.as_str()).collect();
    let rank = |name: &str| CHAIN.iter().position(|c| *c == name);
    let mut problems = Vec::new();
    for m in manifests {
        if rank(&m.name).is_none() && m.name != SIGN {
            problems.push(format!(
                "{}: crate `{}` has no place in the dependency chain; add it to tests/tidy.rs",
                m.path.display(),
                m.name
            ));
            continue;
        }
        for d in m
            .deps
            .iter()
            .filter(|d| workspace.contains(&d.package.as_str()))
        {
            let allowed = if m.name == SIGN {
                false
            } else if d.package == SIGN {
                SIGN_USERS.contains(&m.name.as_str())
            } else {
                matches!((rank(&d.package), rank(&m.name)), (Some(dep), Some(me)) if dep < me)
            };
            if !allowed {
                problems.push(format!(
                    "{}:{}: `{}` may not depend on `{}` ([{}])",
                    m.path.display(),
                    d.line,
                    m.name,
                    d.package,
                    d.kind
                ));
            }
        }
    }
    problems
}

#[test]
fn dependency_direction_is_never_reversed() {
    let manifests = workspace_manifests();
    let names: Vec<&str> = manifests.iter().map(|m| m.name.as_str()).collect();
    for crate_name in CHAIN.iter().chain([&SIGN]) {
        assert!(
            names.contains(crate_name),
            "workspace crate `{crate_name}` not found in {names:?}"
        );
    }
    // The reader must see the real edges, or the check below proves nothing.
    let cli = manifests
        .iter()
        .find(|m| m.name == "aether")
        .expect("root package");
    assert!(
        cli.deps
            .iter()
            .any(|d| d.package == "aether-check" && d.kind == "dependencies"),
        "{cli:?}"
    );
    let problems = forbidden_edges(&manifests);
    assert!(
        problems.is_empty(),
        "forbidden dependency edges:\n{}",
        problems.join("\n")
    );
}

#[test]
fn dependency_rule_rejects_reversed_edges() {
    let manifest = |name: &str, text: &str| parse_manifest(Path::new(name), text);
    let good = [
        manifest("syntax", "[package]\nname = \"aether-syntax\"\n[dependencies]\nlogos.workspace = true\n"),
        manifest("check", "[package]\nname = \"aether-check\"\n[dependencies]\naether-syntax = { path = \"../aether-syntax\" }\n"),
        manifest("sign", "[package]\nname = \"aether-sign\"\n[dependencies]\nsha2 = \"0.10\"\n"),
        manifest(
            "runtime",
            "[package]\nname = \"aether-runtime\"\n[dependencies.aether-sign]\npath = \"../aether-sign\"\n[dependencies]\naether-check.workspace = true\n",
        ),
    ];
    assert_eq!(forbidden_edges(&good), Vec::<String>::new());

    let bad = [
        manifest(
            "syntax",
            "[package]\nname = \"aether-syntax\"\n[dev-dependencies]\naether-check = { workspace = true } # no\n",
        ),
        manifest(
            "check",
            "[package]\nname = \"aether-check\"\n[target.'cfg(unix)'.build-dependencies]\nvm = { package = \"aether-vm\", path = \"../aether-vm\" }\n",
        ),
        manifest("vm", "[package]\nname = \"aether-vm\"\n[dependencies.aether-sign]\nworkspace = true\n"),
        manifest("sign", "[package]\nname = \"aether-sign\"\n[dependencies]\naether-syntax.workspace = true\n"),
        manifest("stdlib", "[package]\nname = \"aether-stdlib\"\n[dependencies]\n\"aether-stdlib\" = { path = \".\" }\n"),
        manifest("extra", "[package]\nname = \"aether-extra\"\n"),
    ];
    let problems = forbidden_edges(&bad);
    let expected = [
        "`aether-syntax` may not depend on `aether-check` ([dev-dependencies])",
        "`aether-check` may not depend on `aether-vm` ([build-dependencies])",
        "`aether-vm` may not depend on `aether-sign` ([dependencies])",
        "`aether-sign` may not depend on `aether-syntax` ([dependencies])",
        "`aether-stdlib` may not depend on `aether-stdlib` ([dependencies])",
        "crate `aether-extra` has no place in the dependency chain",
    ];
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    for (problem, want) in problems.iter().zip(expected) {
        assert!(problem.contains(want), "{problem} should say {want}");
    }
}

#[test]
fn every_rule_has_a_doc_page_with_the_four_sections() {
    let mut problems = Vec::new();
    let mut n_rules = 0;
    for rule in aether_check::codes::all() {
        n_rules += 1;
        let path = repo_root()
            .join("docs/codes")
            .join(format!("{}.md", rule.id));
        let Ok(text) = std::fs::read_to_string(&path) else {
            problems.push(format!(
                "{} ({}): missing docs/codes/{}.md",
                rule.id, rule.name, rule.id
            ));
            continue;
        };
        let headings: Vec<&str> = text.lines().map(str::trim_end).collect();
        for section in RULE_DOC_SECTIONS {
            if !headings.contains(&section) {
                problems.push(format!("docs/codes/{}.md: no `{section}` section", rule.id));
            }
        }
    }
    assert!(n_rules > 0, "the registry lists rules");
    assert!(
        problems.is_empty(),
        "{} problem(s) in rule docs:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every file under the repository, skipping build output and VCS metadata.
fn repo_files() -> Vec<PathBuf> {
    const SKIP: [&str; 3] = ["target", ".git", "node_modules"];
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(repo_root())
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !(e.file_type().is_dir()
                    && e.file_name().to_str().is_some_and(|n| SKIP.contains(&n)))
        })
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect();
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_rust_file_opens_with_a_doc_line() {
    let rust_files: Vec<PathBuf> = repo_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    assert!(
        rust_files.iter().any(|p| p.ends_with("tests/tidy.rs")),
        "the walk finds this file"
    );
    let missing: Vec<String> = rust_files
        .iter()
        .filter(|p| !read(p).lines().next().is_some_and(|l| l.starts_with("//!")))
        .map(|p| relative(p))
        .collect();
    assert!(
        missing.is_empty(),
        "files whose first line is not a `//!` doc line:\n{}",
        missing.join("\n")
    );
}

/// The print macros of std that panic when the stream is closed or full.
const PANICKING_PRINTS: [&str; 4] = ["println!", "eprintln!", "print!", "eprint!"];

/// Lines of `text` (outside comments) that call one of [`PANICKING_PRINTS`].
fn panicking_prints(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .filter(|(_, line)| {
            PANICKING_PRINTS.iter().any(|m| {
                line.match_indices(m).any(|(i, _)| {
                    // `eprintln!` contains `println!`; `outln!` is not `println!`.
                    !line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn the_cli_prints_only_through_its_stream_module() {
    assert_eq!(
        panicking_prints("eprintln!(\"x\");\n// println!\noutln!(\"y\");\n  print!(\"z\")"),
        [1, 4]
    );
    let offenders: Vec<String> = repo_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter(|p| relative(p).starts_with("src/") && !p.ends_with("src/cli/stdio.rs"))
        .flat_map(|p| {
            let text = read(&p);
            panicking_prints(&text)
                .into_iter()
                .map(move |n| format!("{}:{n}", relative(&p)))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "print macros panic on a closed or full stream; use `outln!`/`errln!` of src/cli/stdio.rs:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_pending_snapshots() {
    let pending: Vec<String> = repo_files()
        .iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".snap.new") || name.ends_with(".pending-snap")
        })
        .map(|p| relative(p))
        .collect();
    assert!(
        pending.is_empty(),
        "review these with `cargo insta review` (never hand-edit snapshots):\n{}",
        pending.join("\n")
    );
}

#[test]
fn every_external_workspace_dependency_has_a_comment_above() {
    let text = read(&repo_root().join("Cargo.toml"));
    let lines: Vec<&str> = text.lines().collect();
    let mut section = "";
    let mut external: BTreeMap<String, usize> = BTreeMap::new();
    let mut uncommented = Vec::new();
    for (idx, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section != "[workspace.dependencies]" || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if string_field(value, "path").is_some() {
            continue; // a workspace crate, not an external dependency
        }
        let name = key
            .trim()
            .split('.')
            .next()
            .unwrap_or("")
            .trim_matches('"')
            .to_string();
        external.insert(name.clone(), idx + 1);
        let above = idx.checked_sub(1).map(|i| lines[i].trim());
        if !above.is_some_and(|l| l.starts_with('#')) {
            uncommented.push(format!("Cargo.toml:{}: `{name}`", idx + 1));
        }
    }
    assert!(
        external.len() >= 5,
        "the reader finds the external dependencies: {external:?}"
    );
    assert!(
        uncommented.is_empty(),
        "external dependencies without a `# why` comment line directly above:\n{}",
        uncommented.join("\n")
    );
}

/// The modules each module of a directory of sibling modules names through `super::` (or
/// `crate::cli::`), from the modules' source texts: `(module, text)` pairs. Comment lines
/// do not count.
fn module_edges(modules: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    let mut edges = BTreeMap::new();
    for (name, text) in modules {
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut used: Vec<String> = Vec::new();
        for prefix in ["super::", "crate::cli::"] {
            for (at, _) in code.match_indices(prefix) {
                let rest = &code[at + prefix.len()..];
                // `super::{a::X, b}` names every module of the group; `super::a::X` one.
                let group = match rest.strip_prefix('{') {
                    Some(inner) => &inner[..inner.find('}').unwrap_or(inner.len())],
                    None => rest,
                };
                let firsts: Vec<&str> = if rest.starts_with('{') {
                    group.split(',').map(str::trim).collect()
                } else {
                    vec![group]
                };
                for item in firsts {
                    let ident: String = item
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if ident != *name && names.contains(&ident.as_str()) && !used.contains(&ident) {
                        used.push(ident);
                    }
                }
            }
        }
        used.sort();
        edges.insert(name.clone(), used);
    }
    edges
}

/// A cycle of the graph as `a -> b -> ... -> a`, if there is one.
fn find_cycle(edges: &BTreeMap<String, Vec<String>>) -> Option<String> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle.join(" -> "));
        }
        if done.iter().any(|n| n == node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.push(node.to_string());
        None
    }
    let mut done = Vec::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_cycle_between_cli_modules() {
    let dir = repo_root().join("src/cli");
    let mut modules: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_string();
            (stem != "mod").then(|| (stem, read(&p)))
        })
        .collect();
    modules.sort();
    assert!(modules.len() > 5, "the cli modules are found");
    let edges = module_edges(&modules);
    assert!(
        edges["run"].contains(&"report".to_string()),
        "the edge finder sees run -> report: {edges:?}"
    );
    if let Some(cycle) = find_cycle(&edges) {
        panic!("src/cli modules import each other in a cycle: {cycle}");
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let m = |name: &str, text: &str| (name.to_string(), text.to_string());
    let cyclic = [
        m("output", "use super::report::FileReport;"),
        m(
            "report",
            "// super::output is only named in a comment\nuse super::{signing::Trust, util};",
        ),
        m("signing", "fn f() { super::output::timestamp(); }"),
        m("util", ""),
    ];
    let edges = module_edges(&cyclic);
    assert_eq!(edges["report"], vec!["signing", "util"]);
    assert_eq!(
        find_cycle(&edges).as_deref(),
        Some("output -> report -> signing -> output")
    );
    let acyclic = [
        m("output", "use super::report::FileReport;"),
        m("report", "use crate::cli::util::Trust;"),
        m("signing", "use super::{output, util::md_cell};"),
        m("util", ""),
    ];
    assert_eq!(find_cycle(&module_edges(&acyclic)), None);
}

/// Every function of the table the CLI builds (VM intrinsics, stdlib natives, runtime host
/// functions) is declared once, with an implementation beside it, a doc line and a
/// well-formed parameter list. A declaration cannot exist without its implementation:
/// each crate gives the table `(FnDecl, implementation)` pairs.
#[test]
fn every_declared_function_has_an_implementation_and_a_doc_line() {
    use aether_check::decl::ParamKind;
    let table = aether_runtime::function_table();
    let entries: Vec<_> = table.iter().collect();
    assert_eq!(
        entries.len(),
        table.registry().len(),
        "a declaration without an implementation"
    );
    let mut seen = std::collections::BTreeSet::new();
    for (id, d, by) in entries {
        let q = d.qualified_name();
        assert!(seen.insert(q.clone()), "{q} declared twice");
        assert_eq!(table.registry().decl(id), Some(d), "{q}: id {id:?}");
        assert!(!d.doc.trim().is_empty(), "{q} ({by}) has no doc line");
        let mut seen_variadic = false;
        let mut seen_default = false;
        for p in &d.params {
            match p.kind {
                ParamKind::Normal => {
                    assert!(!seen_variadic, "{q}: {} after the variadic", p.name);
                    assert!(
                        p.default.is_some() || !seen_default,
                        "{q}: required {} after an optional one",
                        p.name
                    );
                    seen_default |= p.default.is_some();
                }
                ParamKind::Variadic => {
                    assert!(!seen_variadic, "{q}: two variadics");
                    seen_variadic = true;
                }
                ParamKind::KeywordOnly => assert!(
                    seen_variadic && p.default.is_some(),
                    "{q}: keyword-only {} needs a variadic before it and a default",
                    p.name
                ),
            }
        }
    }
}
