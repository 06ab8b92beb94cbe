//! `aether plugins pin DIR...`: write the SHA-256 of a plugin's files into its manifest
//! (`pins`), which `aether sign DIR/plugin.json` then covers (docs/plugins.md, "Pins").

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::stdio::{errln, outln};

#[derive(Args, Debug)]
pub(crate) struct PluginsArgs {
    #[command(subcommand)]
    command: PluginsCommand,
}

#[derive(Subcommand, Debug)]
enum PluginsCommand {
    /// Pin the files of each plugin DIR in its plugin.json: its command's files in the
    /// directory and the files it already pins, by SHA-256. Sign plugin.json afterwards.
    Pin {
        /// Plugin directories (each holding a plugin.json).
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
}

/// Exit 0 when every directory was pinned, else 1 (each failure named on stderr).
pub(crate) fn run(args: PluginsArgs) -> i32 {
    let PluginsCommand::Pin { dirs } = args.command;
    let mut code = 0;
    for dir in &dirs {
        let manifest = dir.join(aether_runtime::plugins::MANIFEST_FILE);
        let written = aether_runtime::plugins::pin_manifest(dir).and_then(|(text, pins)| {
            super::migrate::write_in_place(&manifest, &text).map(|()| pins)
        });
        match written {
            Ok(pins) => {
                for pin in &pins {
                    outln!(
                        "{}: pinned {} sha256:{}",
                        manifest.display(),
                        pin.file,
                        pin.sha256
                    );
                }
            }
            Err(e) => {
                errln!("error: {}: {e}", dir.display());
                code = 1;
            }
        }
    }
    if code == 0 {
        errln!("now sign each manifest: aether sign DIR/plugin.json");
    }
    code
}
