//! `pretix-toolkit`: the pipelines of `cargo xtask` for a server without Rust (the release
//! tarball puts it next to the tool binaries, where it finds them).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    match xtask::Toolkit::parse().command.run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("pretix-toolkit: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
