//! Build script: embeds every rule page of docs/codes/ in the binary for `aether explain`.

use std::path::Path;

fn main() {
    // Read at run time, not `env!` at compile time: a build script binary reused from
    // another checkout (a seeded target/ dir) would otherwise embed that checkout's pages.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&root).join("docs/codes");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut pages: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("docs/codes exists")
        .filter_map(|e| {
            let path = e.expect("a directory entry").path();
            let stem = path.file_stem()?.to_str()?.to_string();
            let is_page = path.extension().is_some_and(|x| x == "md")
                && stem.starts_with('A')
                && stem[1..].bytes().all(|b| b.is_ascii_digit());
            is_page.then(|| (stem, path.display().to_string()))
        })
        .collect();
    pages.sort();
    let mut out = String::from(
        "/// Every rule page of docs/codes/: (id, markdown), in id order.\npub(crate) static CODE_PAGES: &[(&str, &str)] = &[\n",
    );
    for (id, path) in &pages {
        out.push_str(&format!("    ({id:?}, include_str!({path:?})),\n"));
    }
    out.push_str("];\n");
    let target =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("code_pages.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
