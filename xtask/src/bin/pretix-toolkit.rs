//! `pretix-toolkit`: the pipelines of `cargo xtask` for a server without Rust (the release
//! tarball puts it next to the tool binaries, where it finds them).

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "pretix-toolkit",
    version,
    about = "Install and run pretix with the toolkit's tools, in the guide's order"
)]
struct Cli {
    #[command(subcommand)]
    command: xtask::Pipeline,
}

fn main() -> ExitCode {
    match Cli::parse().command.run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("pretix-toolkit: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
