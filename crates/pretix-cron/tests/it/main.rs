//! pretix-cron against the real binary: a staged Debian root, systemd-analyze, real Redis and
//! real pretix's own `runperiodic`.

mod apply;
mod run;
mod support;
mod timer;
mod verify;
