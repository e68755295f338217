//! pretix-unit against the real Docker engine (the stand-in image served by a local registry),
//! the real systemd-analyze, and the recording systemctl seam (systemd is not PID 1 here).

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod docker;
mod faults;
mod real_host;
mod snapshots;
mod support;
mod systemd;
