//! pretix-redis against the real binary, a staged Debian root and real redis-servers.

mod check;
mod faults;
mod group;
mod server;
mod support;
mod systemctl;
mod tcp;
mod world;
