//! `cargo xtask bench`: speed targets, measured against real throwaway servers.

use std::process::ExitCode;

pub fn run() -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "cargo xtask bench has no benchmarks yet: the pretix-db converged re-run and fresh provision are the first planned ones"
    )
}
