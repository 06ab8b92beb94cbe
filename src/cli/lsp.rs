//! `aether lsp`: the language server over stdio (the protocol is its only output).

use super::stdio::errln;
use clap::Args;

#[derive(Args, Debug)]
pub(crate) struct LspArgs {
    /// Make warnings fail, as `aether check --strict` (shown as errors).
    #[arg(long)]
    strict: bool,
    /// Talk over stdin/stdout (the only transport; accepted because clients pass it).
    #[arg(long)]
    stdio: bool,
}

pub(crate) fn run(args: LspArgs) -> i32 {
    let _ = args.stdio;
    let options = aether_lsp::Options {
        strict: args.strict,
    };
    match aether_lsp::serve(super::function_table().registry().clone(), options) {
        Ok(code) => code,
        Err(e) => {
            errln!("error: {e}");
            1
        }
    }
}
