//! The `aether` command: check, run, sign and verify workflow scripts, triage them (classify, baseline, trends, gate), migrate them and report the runtime's status.

mod allocator;
mod cli;

/// Scripts allocate many small values; mimalloc is faster at that than the system allocator.
/// The counting wrapper keeps the per-thread live bytes the memory budget reads
/// (`aether_vm::heap`).
#[global_allocator]
static GLOBAL: aether_vm::heap::Counting<allocator::MiMalloc> =
    aether_vm::heap::Counting(allocator::MiMalloc);

fn main() {
    // Compatibility with the original tool: `aether --check PATH` is `aether check PATH`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--check") {
        args[1] = "check".into();
    }
    std::process::exit(cli::main(args));
}
