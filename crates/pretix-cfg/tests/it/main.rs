//! pretix-cfg against real files, the real binary, real pretix from PyPI and real ansible-playbook.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod ansible;
mod apply;
mod import;
mod parser_agrees;
mod pretix_agrees;
mod real_pretix;
mod rules;
mod support;
