//! pretix-unit against the real Docker engine (the stand-in image served by a local registry),
//! the real systemd-analyze, and the recording systemctl seam (systemd is not PID 1 here).

mod docker;
mod faults;
mod snapshots;
mod support;
mod systemd;
