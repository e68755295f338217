//! Integration tests of the shared crate: the document, the protocol, safe files, Ansible, the
//! Docker seam against the real engine.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod ansible;
mod docker;
mod document;
mod files;
mod protocol;
mod schema;
