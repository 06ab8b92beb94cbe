//! Unit tests of the formatter: layout rules, comments, idempotence.

use super::*;

fn fmt(src: &str) -> String {
    format_source(src, &FmtOptions::default()).unwrap_or_else(|d| panic!("{src}: {d:?}"))
}

#[test]
fn spacing_is_canonical() {
    assert_eq!(fmt("x=1+2*-3\n"), "x = 1 + 2 * -3\n");
}
