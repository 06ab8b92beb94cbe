//! Debug helper: print the diagnostics (and with `--ast`, the tree) of a file.

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: parse_dump FILE [--ast]");
    let src = std::fs::read_to_string(&path).expect("readable UTF-8 file");
    let parsed = aether_syntax::parse(&src);
    let index = aether_syntax::LineIndex::new(&src);
    if args.next().as_deref() == Some("--ast") {
        println!("{:#?}", parsed.ast);
    }
    for d in &parsed.diagnostics {
        let lc = index.line_col(&src, d.span().start);
        println!(
            "{}:{}:{}: {} [{}] {}",
            path,
            lc.line,
            lc.column,
            d.rule().id,
            d.rule().name,
            d.message()
        );
    }
}
