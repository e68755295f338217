//! pretix-redis against the real binary, a staged Debian root and real redis-servers.

mod faults;
mod group;
mod server;
mod support;
mod systemctl;
mod tcp;
mod verify;
mod world;
