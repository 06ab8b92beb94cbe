//! The rule pages' examples are real: each Example fires its rule, each "Use instead" is clean.

use std::path::Path;

use aether_check::decl::Registry;

fn registry() -> Registry {
    aether_runtime::function_table().registry().clone()
}

/// Pages whose examples are not scripts: invalid bytes (A018), command lines (A020, A021)
/// a line elided for length (A022) and a strict-signature example (A301).
const NOT_SCRIPTS: &[&str] = &["A018", "A020", "A021", "A022", "A301"];

/// The first ```aether block after `heading`.
fn block_after<'a>(page: &'a str, heading: &str) -> Option<&'a str> {
    let rest = &page[page.find(heading)?..];
    let start = rest.find("```aether\n")? + "```aether\n".len();
    let end = rest[start..].find("```")?;
    Some(&rest[start..start + end])
}

#[test]
fn every_example_fires_its_rule_and_every_fix_is_clean() {
    let reg = registry();
    let mut checked = 0;
    for rule in aether_check::codes::all() {
        if NOT_SCRIPTS.contains(&rule.id) {
            continue;
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/codes/{}.md", rule.id));
        let page = std::fs::read_to_string(&path).expect("every rule has a page (tidy test)");
        let example = block_after(&page, "## Example")
            .unwrap_or_else(|| panic!("{}: no ```aether block under ## Example", rule.id));
        let fixed = block_after(&page, "## Use instead")
            .unwrap_or_else(|| panic!("{}: no ```aether block under ## Use instead", rule.id));
        let fired: Vec<&str> = aether_check::analyze(example, &reg)
            .diagnostics
            .iter()
            .map(|d| d.rule().id)
            .collect();
        assert!(
            fired.contains(&rule.id),
            "{}: Example fired {fired:?}",
            rule.id
        );
        let left: Vec<String> = aether_check::analyze(fixed, &reg)
            .diagnostics
            .iter()
            .map(|d| format!("{} {}", d.rule().id, d.message()))
            .collect();
        assert!(
            left.is_empty(),
            "{}: Use instead still reports {left:?}",
            rule.id
        );
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} pages checked");
}
