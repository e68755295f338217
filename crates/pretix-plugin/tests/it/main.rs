//! pretix-plugin's tests: Dockerfile snapshots, refusals of bad input before anything is built,
//! and builds on the stand-in base (whose pip3 and make record their calls) through the real
//! Docker engine, with the base served by a real local registry.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod dockerfile;
mod real_image;
mod refusals;
mod stand_in;
mod support;
