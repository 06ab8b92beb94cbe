//! Build script: embeds every rule page of docs/codes/ in the binary for `aether explain`,
//! and lays out the code `aether run` executes at start-up together (`src/startup.order`).

use std::path::Path;

fn main() {
    code_pages();
    startup_order();
}

/// A release build linked by LLD (Rust's default linker on x86_64 Linux) places the
/// functions a hello-world `aether run` executes first and together, listed in
/// `src/startup.order` (regenerate with `bench/startup_order.sh`). The kernel maps a
/// binary's code 64 KB at a time on a page fault: scattered over the 8 MB of `.text`,
/// start-up's 0.5 MB of code took about 40 faults (docs/performance.md, start-up, session
/// 8). A name the build does not have (another toolchain, changed code) is skipped
/// silently: the list only moves code, it never changes what runs.
fn startup_order() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = Path::new(&root).join("src/startup.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let release = var("PROFILE") == "release";
    // Only where rustc links with its own LLD: GNU ld does not know the option. Flags that
    // choose another linker turn it off.
    let lld_default = var("TARGET") == "x86_64-unknown-linux-gnu";
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let other_linker = ["linker", "fuse-ld", "link-self-contained"]
        .iter()
        .any(|f| flags.contains(f))
        || std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some();
    if release && lld_default && !other_linker && order.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// `CODE_PAGES`: every rule page of docs/codes/, for `aether explain`.
fn code_pages() {
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
