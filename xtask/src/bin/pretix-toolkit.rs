//! `pretix-toolkit`: the pipelines of `cargo xtask` for a server without Rust (the release
//! tarball puts it next to the tool binaries, where it finds them).

// xtask is glue, not a tool: it runs cargo and the built binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

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
