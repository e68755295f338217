//! pretix-cron against the real binary: a staged Debian root, systemd-analyze, real Redis and
//! real pretix's own `runperiodic`.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod apply;
mod run;
mod server;
mod support;
mod timer;
mod verify;
