//! Unit tests of the formatter: one test per layout rule of docs/fmt.md.

use super::*;

fn fmt(src: &str) -> String {
    format_source(src, &FmtOptions::default()).unwrap_or_else(|d| panic!("{src}: {d:?}"))
}

fn fmt_width(src: &str, line_width: usize) -> String {
    format_source(src, &FmtOptions { line_width }).unwrap_or_else(|d| panic!("{src}: {d:?}"))
}

#[test]
fn spaces_around_binary_operators_and_after_commas() {
    assert_eq!(fmt("x=1+2*-3\n"), "x = 1 + 2 * -3\n");
    assert_eq!(fmt("print( a ,b,c )\n"), "print(a, b, c)\n");
    assert_eq!(fmt("y = not  x and(a<=b)\n"), "y = not x and (a <= b)\n");
    assert_eq!(fmt("y = !x || a  not in  b\n"), "y = !x || a not in b\n");
    assert_eq!(fmt("z = a[ 1 ].b - -c\n"), "z = a[1].b - -c\n");
    assert_eq!(fmt("return  -1\n"), "return -1\n");
}

#[test]
fn keyword_arguments_are_tight_and_parameter_defaults_spaced() {
    assert_eq!(fmt("f(a, level = 'x')\n"), "f(a, level=\"x\")\n");
    assert_eq!(
        fmt("action a(x,y=1):\n    return x\n"),
        "action a(x, y = 1):\n    return x\n"
    );
    assert_eq!(
        fmt("action a:\n    inputs: [x,y=f(k = 1)]\n    return x\n"),
        "action a:\n    inputs: [x, y = f(k=1)]\n    return x\n"
    );
    assert_eq!(
        fmt("workflow w:\n  steps:\n    - f(1) as r retry = 2 timeout = 5s\n"),
        "workflow w:\n    steps:\n        - f(1) as r retry=2 timeout=5s\n"
    );
}

#[test]
fn both_action_forms_are_kept_as_written() {
    let src = "action a:\n    inputs: [x]\n    return x\n\naction b(x):\n    return x\n";
    assert_eq!(fmt(src), src);
}

#[test]
fn blocks_are_indented_four_spaces_and_on_error_handlers_under_when() {
    assert_eq!(
        fmt("if x:\n  if y:\n        z()\n  else:\n        w()\n"),
        "if x:\n    if y:\n        z()\n    else:\n        w()\n"
    );
    assert_eq!(
        fmt("on_error:\n - when: Any\n   do: log(error.message)\n"),
        "on_error:\n    - when: Any\n      do: log(error.message)\n"
    );
}

#[test]
fn blank_lines_at_most_one_inside_blocks_and_one_around_top_level_blocks() {
    assert_eq!(
        fmt("a = 1\n\n\n\nb = 2\naction f:\n\n    x = 1\n\n\n    y = 2\nc = 3\n\n\n"),
        "a = 1\n\nb = 2\n\naction f:\n    x = 1\n\n    y = 2\n\nc = 3\n"
    );
    // A comment right above a block stays with it; `else` never gets a blank line.
    assert_eq!(
        fmt("a = 1\n# about f\naction f:\n    x = 1\nif a:\n    b()\n\nelse:\n    c()\n"),
        "a = 1\n\n# about f\naction f:\n    x = 1\n\nif a:\n    b()\nelse:\n    c()\n"
    );
}

#[test]
fn strings_prefer_double_quotes() {
    assert_eq!(fmt("x = 'a'\n"), "x = \"a\"\n");
    assert_eq!(fmt("x = 'say \"hi\"'\n"), "x = 'say \"hi\"'\n");
    assert_eq!(fmt("x = 'it\\'s'\n"), "x = \"it's\"\n");
}

#[test]
fn long_lines_break_one_item_per_line_with_trailing_commas() {
    let src = "let x = call_something(first_argument, second_argument, [1, 2, 3], key=value)\n";
    assert_eq!(fmt(src), src);
    assert_eq!(
        fmt_width(src, 40),
        "let x = call_something(\n    first_argument,\n    second_argument,\n    [1, 2, 3],\n    key=value,\n)\n"
    );
    // A short list loses its trailing comma only when it was not written: a magic comma keeps
    // the list broken.
    assert_eq!(fmt("x = [\n  1,\n  2\n]\n"), "x = [1, 2]\n");
    assert_eq!(fmt("x = [1, 2,]\n"), "x = [\n    1,\n    2,\n]\n");
    // A parenthesised expression never gets a comma.
    assert_eq!(
        fmt_width("x = (aaaaaaaaaa + bbbbbbbbbbbb)\n", 20),
        "x = (\n    aaaaaaaaaa + bbbbbbbbbbbb\n)\n"
    );
}

#[test]
fn every_comment_survives_in_its_place() {
    let src = "# head\nx = [  # open\n    1,  # one\n    # own line\n    2,\n]  # close\nif x:  // header\n    y()\n    # end of block\n# top\nz()\n";
    assert_eq!(
        fmt(src),
        "# head\nx = [  # open\n    1,  # one\n    # own line\n    2,\n]  # close\n\nif x:  // header\n    y()\n    # end of block\n\n# top\nz()\n"
    );
    // A comment before the comma moves after it, never before code.
    assert_eq!(fmt("f(a # c\n, b)\n"), "f(\n    a,  # c\n    b,\n)\n");
    // Comment-only files and empty files.
    assert_eq!(
        fmt("  # only\n\n\n// comments\n"),
        "# only\n\n// comments\n"
    );
    assert_eq!(fmt(""), "");
    assert_eq!(fmt("\n\n"), "");
}

#[test]
fn line_endings_byte_order_mark_and_signature_header_are_kept() {
    assert_eq!(fmt("x=1\r\ny=2\r\n"), "x = 1\r\ny = 2\r\n");
    assert_eq!(fmt("\u{FEFF}x=1\n"), "\u{FEFF}x = 1\n");
    let signed = "# @signature ed25519 0123456789abcdef AAAA\ngoal: \"g\"\n";
    assert_eq!(fmt(signed), signed);
}

#[test]
fn a_file_with_syntax_errors_is_not_formatted() {
    let errs = format_source("x = (1\n", &FmtOptions::default()).unwrap_err();
    assert!(!errs.is_empty());
    assert!(errs.iter().all(Diagnostic::is_error));
}

#[test]
fn same_structure_ignores_spans_only() {
    let a = crate::parse("x = (1 + 2)\n").ast;
    let b = crate::parse("x   =   1 + 2  # c\n").ast;
    let c = crate::parse("x = 1 - 2\n").ast;
    assert!(same_structure(&a, &b));
    assert!(!same_structure(&a, &c));
}

#[test]
fn minimal_edit_is_the_changed_middle() {
    assert_eq!(minimal_edit("abc", "abc"), None);
    assert_eq!(
        minimal_edit("x=1\ny\n", "x = 1\ny\n"),
        Some((Span::new(1, 2), " = ".to_string()))
    );
    assert_eq!(
        minimal_edit("é", "è"),
        Some((Span::new(0, 2), "è".to_string()))
    );
}
