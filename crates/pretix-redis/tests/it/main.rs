//! pretix-redis against the real binary, a staged Debian root and real redis-servers.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod faults;
mod group;
mod server;
mod support;
mod systemctl;
mod tcp;
mod verify;
mod world;
