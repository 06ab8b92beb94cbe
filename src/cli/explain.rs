//! `aether explain ID` (and `aether check --explain ID`): print a rule's page from docs/codes/.

use super::stdio::{errln, out};
use clap::Args;

include!(concat!(env!("OUT_DIR"), "/code_pages.rs"));

#[derive(Args, Debug)]
pub(crate) struct ExplainArgs {
    /// A rule id (`A101`) or name (`unknown-function`).
    #[arg(value_name = "RULE")]
    rule: String,
}

/// The page of a rule, by id (any case) or kebab-case name.
pub(crate) fn page(rule: &str) -> Option<&'static str> {
    let id = aether_check::codes::find(rule)
        .map(|r| r.id.to_string())
        .unwrap_or_else(|| rule.to_ascii_uppercase());
    CODE_PAGES
        .iter()
        .find(|(page_id, _)| *page_id == id)
        .map(|(_, text)| *text)
}

/// Print the page and return the exit status (2 for an unknown rule).
pub(crate) fn explain(rule: &str) -> i32 {
    match page(rule) {
        Some(text) => {
            out!("{text}");
            0
        }
        None => {
            let ids: Vec<&str> = CODE_PAGES.iter().map(|(id, _)| *id).collect();
            let close = aether_check::codes::all()
                .map(|r| r.name)
                .chain(ids.iter().copied())
                .map(|n| {
                    (
                        strsim::levenshtein(&rule.to_ascii_lowercase(), &n.to_ascii_lowercase()),
                        n,
                    )
                })
                .filter(|(d, _)| *d <= 2)
                .min();
            match close {
                Some((_, n)) => errln!("error: no rule `{rule}`; did you mean `{n}`?"),
                None => errln!(
                    "error: no rule `{rule}`; rule ids run from {} to {} (docs/codes/README.md lists them)",
                    ids.first().unwrap_or(&"A001"),
                    ids.last().unwrap_or(&"A001")
                ),
            }
            2
        }
    }
}

pub(crate) fn run(args: ExplainArgs) -> i32 {
    explain(&args.rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_rule_has_an_embedded_page() {
        for rule in aether_check::codes::all() {
            let text = page(rule.id).unwrap_or_else(|| panic!("{} has no page", rule.id));
            assert!(
                text.starts_with(&format!("# {} {}", rule.id, rule.name)),
                "{}",
                rule.id
            );
            assert_eq!(page(rule.name), Some(text));
        }
        assert_eq!(page("a101"), page("A101"));
        assert_eq!(page("A999"), None);
    }
}
