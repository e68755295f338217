//! Integration tests of the shared crate: the document, the protocol, safe files, Ansible, the
//! Docker seam against the real engine.

mod ansible;
mod docker;
mod document;
mod files;
mod protocol;
mod schema;
