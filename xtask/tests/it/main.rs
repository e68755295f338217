//! xtask's pipelines from outside: the built binaries, real servers from the testkit.

mod backup;
mod install;
