//! The `.aether` language server (`aether lsp`): diagnostics exactly as `aether check`
//! gives them, hover, completion, navigation, rename, code actions, formatting (as
//! `aether fmt`) and semantic tokens over stdio.
//!
//! Part of the CLI edge: it reads the workspace's `.aetherra/` and plugin manifests, and
//! writes only the protocol to stdout.

mod actions;
mod analysis;
mod capabilities;
mod completion;
mod diagnostics;
mod document;
mod formatting;
mod handlers;
mod hover;
mod index;
mod navigation;
mod semantic;
mod server;
mod transport;

use aether_check::decl::Registry;

/// Settings from the command line.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Warnings fail (are shown as errors), as `aether check --strict`.
    pub strict: bool,
}

/// The stack of the server thread: the parser and checker recurse over the tree (as the
/// CLI's checking threads do).
const STACK_BYTES: usize = 64 << 20;

/// Serve the protocol on stdin/stdout until `exit`; returns the process exit status (0
/// after `shutdown` then `exit`, 1 otherwise, as the protocol asks).
pub fn serve(registry: Registry, options: Options) -> Result<i32, String> {
    let rx = transport::stdin_reader().map_err(|e| format!("cannot start the reader: {e}"))?;
    let worker = std::thread::Builder::new()
        .name("lsp-server".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let stdout = std::io::stdout();
            server::run(rx, stdout.lock(), registry, options)
        })
        .map_err(|e| format!("cannot start the server thread: {e}"))?;
    worker
        .join()
        .map_err(|_| "the server thread panicked".to_string())
}
