//! Each server of the harness really starts, answers, and stops.

// test support: it runs servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod image;
mod real_image;
mod servers;
mod test_host;
