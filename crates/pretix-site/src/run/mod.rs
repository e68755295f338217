//! The tool protocol. The core (this module and `context`) runs one verb on one document: the
//! upstream-failure gate, the root check, the host lock, the tool, its result. Two front ends
//! build the `Options` and the document and print the outcome: `cli` (flags, stdin/stdout,
//! stderr) and `ansible` (an arguments file in, one JSON object out). They never import each
//! other; `main` only picks one.

pub mod ansible;
pub mod cli;
mod context;

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use clap::Subcommand;

pub use self::cli::{CommonArgs, command};
pub use self::context::{Context, Mode, Options, Output, Pipeline, Verbosity};
use crate::document::Document;
use crate::error::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, ToolError};
use crate::fs::RunLock;
use crate::report::{CheckStatus, ToolResult};
use crate::sections::Paths;

/// A tool: its verbs and what it does with the document.
pub trait Tool {
    /// The verbs, as a clap subcommand enum with doc comments as help.
    type Command: Subcommand + std::fmt::Debug;
    /// The binary's name, e.g. `pretix-db`.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// Examples for `--help`, one command line per line (optional).
    const EXAMPLES: &'static str = "";
    /// Whether the verb changes nothing (a read-only verb runs without the host lock, without
    /// root, and even after a failure upstream).
    fn is_read_only(command: &Self::Command) -> bool;
    /// Runs one verb against the document. Returns the summary message.
    fn run(command: &Self::Command, ctx: &mut Context, document: &mut Document) -> Result<String, ToolError>;
}

/// How a run ended, for both front ends.
pub struct RunOutcome {
    pub document: Document,
    pub result: ToolResult,
    pub exit_code: i32,
}

/// How long a run waits for another run's host lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a verb on a document: the upstream-failure gate, the root check, the lock, the tool,
/// the result.
pub fn run_verb<T: Tool>(command: &T::Command, verb: &str, mut ctx: Context, mut document: Document) -> RunOutcome {
    let read_only = T::is_read_only(command);
    if let Some(upstream) = upstream_failure(&document, ctx.options().pipeline).filter(|_| !read_only) {
        let msg = format!(
            "not run: {} {} failed earlier in this pipeline: {}",
            upstream.tool, upstream.verb, upstream.msg
        );
        if ctx.options().output == Output::Stderr {
            eprintln!("{}: error: {msg}", T::NAME);
        }
        let result = ctx.finish(&msg, true);
        document.push_result(&result);
        return RunOutcome {
            document,
            result,
            exit_code: EXIT_FAILED,
        };
    }
    let changes_host = !read_only && !ctx.is_check();
    let outcome = (|| -> Result<String, ToolError> {
        let _lock = if changes_host {
            let paths: Paths = document.section("paths")?;
            paths.validate()?;
            require_root(T::NAME, verb)?;
            let holder = format!("{} {verb}", T::NAME);
            Some(RunLock::acquire_for(
                ctx.root(),
                &paths.lock_file,
                LOCK_TIMEOUT,
                &holder,
                &mut |line| ctx.info(line),
            )?)
        } else {
            None
        };
        T::run(command, &mut ctx, &mut document)
    })();
    match outcome {
        Ok(msg) => {
            ctx.info(&msg);
            let result = ctx.finish(&msg, false);
            document.push_result(&result);
            RunOutcome {
                document,
                result,
                exit_code: EXIT_OK,
            }
        }
        Err(error) => {
            // "Bad input, nothing changed" must be true: an input error found after a change
            // is reported as a failure.
            let exit_code = match error.exit_code() {
                EXIT_BAD_INPUT if ctx.has_changed() && !ctx.is_check() => EXIT_FAILED,
                code => code,
            };
            let msg = ctx.redact(&error.to_string());
            if ctx.options().output == Output::Stderr {
                eprintln!("{}: error: {msg}", T::NAME);
            }
            let result = ctx.finish(&msg, true);
            document.push_result(&result);
            RunOutcome {
                document,
                result,
                exit_code,
            }
        }
    }
}

/// The first failed result of the pipeline this run is part of. A document read from a file
/// starts a pipeline, so a failure saved in it is history; in a pipe, the results from the last
/// run that started the pipeline on count, and the first failure among them is the cause (later
/// ones only say they did not run).
fn upstream_failure(document: &Document, pipeline: Pipeline) -> Option<ToolResult> {
    if pipeline == Pipeline::Starts {
        return None;
    }
    let results = document.results().ok()?;
    let start = results.iter().rposition(|result| result.starts_pipeline).unwrap_or(0);
    results.into_iter().skip(start).find(|result| result.failed)
}

/// Changing the host needs root: refused before the lock and before anything is touched, with
/// what to do instead (a half-done run that dies on the first chown is worse).
fn require_root(tool: &str, verb: &str) -> Result<(), ToolError> {
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    Err(ToolError::input(
        "(user)",
        format!(
            "{tool} {verb} changes files and services that belong to root: run it as root (sudo {tool} {verb} ...), \
             or see what it would do with --check"
        ),
    ))
}

/// The whole main of a tool binary: an Ansible binary module when called with one argument
/// that is a file (and not a verb), the command line otherwise. Returns the exit code.
pub fn main<T: Tool>() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    // A verb is never an arguments file, even when a file of that name sits in the cwd.
    let is_verb = args
        .get(1)
        .is_some_and(|arg| command::<T>().find_subcommand(arg).is_some());
    match ansible::arguments_file(&args).filter(|_| !is_verb) {
        Some(path) => ansible::main::<T>(&path),
        None => cli::main::<T>(&args),
    }
}

/// The one place that writes to stdout. A closed pipe ends quietly.
#[allow(clippy::print_stdout)]
pub fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

/// The exit for `main.rs`: `std::process::exit(pretix_site::run::main::<Tool>())`.
pub fn exit_with(code: i32) -> ! {
    std::process::exit(code)
}

/// The status of a run, checked findings included: a `verify` verb with failures fails.
pub fn checks_failed(result: &ToolResult) -> bool {
    result.checks.iter().any(|item| item.status == CheckStatus::Failure)
}

/// For verbs not built yet: a clear error and exit 1, never a pretended success. `why` says
/// what is missing, in the sysadmin's words.
pub fn not_implemented(tool: &str, verb: &str, why: &str) -> ToolError {
    ToolError::not_implemented(format!("{tool} {verb} ({why})"))
}
