//! pretix-proxy against the real binary, a real nginx from the testkit and staged Debian roots.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod live;
mod refusals;
mod root;
mod support;
mod test_server;
