//! Integration tests of the shared crate: the document, the protocol, safe files, Ansible.

mod ansible;
mod document;
mod files;
mod protocol;
mod schema;
