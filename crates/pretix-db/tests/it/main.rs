//! Integration tests of pretix-db: the real binary against real throwaway PostgreSQL clusters,
//! and the file planning against the config files of a real Debian install.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod ansible;
mod cli;
mod files;
mod provision;
mod refusals;
mod restart;
mod root;
mod secrets;
mod support;
