//! What every pretix toolkit tool shares: the site document and its sections, the tool
//! protocol (flags, exit codes, results), safe file writing, line-preserving config edits, the
//! systemctl seam, the `nginx -t` seam, the command runner and the Ansible binary-module adapter.
//!
//! It also holds the one Docker seam (`docker`), a narrow adapter over the Engine API, and the
//! one nginx seam (`nginx`: `nginx -t` and `nginx -s reload`); what to do with PostgreSQL,
//! Redis, nginx sites or a container lives in the tools.

pub mod clock;
pub mod docker;
pub mod document;
pub mod error;
pub mod exec;
pub mod fs;
pub mod lenient;
pub mod lineedit;
pub mod nginx;
pub mod report;
pub mod run;
pub mod schema;
pub mod secret;
pub mod sections;
pub mod service;
pub mod users;

/// The Ansible front end, also reachable as `run::ansible`.
pub use run::ansible;

pub use document::Document;
pub use error::ToolError;
pub use run::{CommonArgs, Context, Mode, Options, Tool, Verbosity};
pub use secret::{Secret, SecretRef};
