//! The `aether` command: check, and (as their issues land) run, sign, verify and triage workflows.

mod cli;

/// Scripts allocate many small values; mimalloc is faster at that than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Compatibility with the original tool: `aether --check PATH` is `aether check PATH`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--check") {
        args[1] = "check".into();
    }
    std::process::exit(cli::main(args));
}
