//! `pretix-db`: PostgreSQL for pretix, as the guide's "Database" section asks for it, done
//! safely and repeatably.
//!
//! `apply` checks the server (version, UTF8), creates or fixes the role (LOGIN and a password
//! sent only as a client-computed SCRAM-SHA-256 verifier) and the database (owned by the role,
//! UTF8), merges the docker host address into `listen_addresses`, adds one pg_hba.conf rule
//! where no earlier rule shadows it, reloads (and restarts when asked), logs in as the role over
//! TCP to prove it, and adds the `[database]` settings to the document for pretix-cfg. `verify`
//! reports the same things read-only.
//!
//! The code map: `plan` decides (pure), `provision` and `verify` run the verbs, `session` is the
//! one seam to the PostgreSQL superuser, `inspect` reads the server, `hba` and `listen` plan
//! the two config files, `scram` makes and checks verifiers, `names` validates and quotes.

pub mod error;
pub mod hba;
pub mod inspect;
pub mod listen;
pub mod names;
pub mod network;
pub mod plan;
pub mod provision;
pub mod resolve;
pub mod scram;
pub mod session;
pub mod verify;

use clap::{FromArgMatches, Subcommand};
use pretix_site::{Context, Document, Tool, ToolError};

pub use error::ProvisionDatabaseError;

/// The verbs of `pretix-db`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Converge PostgreSQL to the document: role, database, listen_addresses, pg_hba.conf. With --root, the
    /// files are staged but the role and database are still changed on the live server it connects to
    Apply,
    /// Read-only: report each part as ok, warning or failure (exit 1 on any failure)
    Verify,
    /// Internal: the superuser session, run as the postgres system user by `apply` and `verify`
    #[command(hide = true)]
    AdminSession(session::AdminSessionArgs),
}

/// The `pretix-db` tool.
pub struct DbTool;

impl Tool for DbTool {
    type Command = Command;
    const NAME: &'static str = "pretix-db";
    const ABOUT: &'static str = "PostgreSQL for pretix: role, database, listen_addresses, pg_hba.conf";
    const EXAMPLES: &'static str = "pretix-db apply --check --diff < site.json   # what would change, touching nothing\n\
                                    pretix-db apply < site.json > site.db.json   # as root: role, database, listen_addresses, pg_hba.conf\n\
                                    pretix-db verify < site.db.json > /dev/null  # read-only report, exit 1 on a failure\n\
                                    pretix-db apply < site.json | pretix-redis apply | pretix-cfg apply > site.done.json\n";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Verify | Command::AdminSession(_))
    }

    fn run(command: &Command, ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        match command {
            Command::Apply => provision::apply(ctx, document),
            Command::Verify => verify::verify(ctx, document),
            Command::AdminSession(_) => Err(ToolError::input(
                "verb",
                "admin-session is internal to pretix-db (its superuser session): use apply or verify",
            )),
        }
    }
}

/// The whole main of the binary: the hidden session verb is served before anything reads
/// stdin as a document; everything else is the shared tool protocol.
pub fn main() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if session::is_session_invocation(&args) {
        let matches = match pretix_site::run::command::<DbTool>().try_get_matches_from(&args) {
            Ok(matches) => matches,
            Err(error) => {
                let _ = error.print();
                return pretix_site::error::EXIT_BAD_INPUT;
            }
        };
        return match Command::from_arg_matches(&matches) {
            Ok(Command::AdminSession(session_args)) => session::serve(&session_args),
            _ => pretix_site::error::EXIT_BAD_INPUT,
        };
    }
    pretix_site::run::main::<DbTool>()
}
