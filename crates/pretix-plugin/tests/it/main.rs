//! pretix-plugin's tests: Dockerfile snapshots, refusals of bad input before anything is built,
//! and builds on the stand-in base (whose pip3 and make record their calls) through the real
//! Docker engine, with the base served by a real local registry.

mod dockerfile;
mod refusals;
mod stand_in;
mod support;
