//! xtask's pipelines from outside: the built binaries, real servers from the testkit.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod ansible;
mod backup;
mod guide;
mod install;
mod release;
