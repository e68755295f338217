//! pretix-proxy against the real binary, a real nginx from the testkit and staged Debian roots.

mod live;
mod refusals;
mod root;
mod support;
