//! The command-line front end: flags into `Options`, the document from stdin or `--site`, the
//! document to stdout, messages to stderr, the outcome to an exit code.

use std::ffi::OsString;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use super::{Context, Mode, Options, Output, Pipeline, Tool, Verbosity, print_stdout, run_verb};
use crate::document::Document;
use crate::error::{EXIT_BAD_INPUT, EXIT_OK, ToolError};
use crate::fs::Root;
use crate::report::ToolResult;

/// The flags every tool takes.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// Plan only: report what would change, change nothing
    #[arg(long, global = true)]
    pub check: bool,
    /// Show a before/after diff of every file that changes (on stderr)
    #[arg(long, global = true)]
    pub diff: bool,
    /// Treat DIR as / for every file read or written; service actions are reported, not performed
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Contact no server (PostgreSQL, Redis, Docker): plan from files alone; server-side steps are
    /// listed as unverified. Only with --check
    #[arg(long, global = true, requires = "check")]
    pub offline: bool,
    /// Read the site document from FILE instead of stdin
    #[arg(long, global = true, value_name = "FILE")]
    pub site: Option<PathBuf>,
    /// More detail on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors and warnings on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print the document on stdout even when stdout is a terminal (otherwise a recap is shown
    /// there; a pipe or a file always gets the document)
    #[arg(long, global = true)]
    pub json: bool,
}

impl CommonArgs {
    /// The run options these flags ask for; `pipeline` says where the document came from.
    pub fn options(&self, pipeline: Pipeline) -> Options {
        Options {
            mode: if self.check {
                Mode::Check { offline: self.offline }
            } else {
                Mode::Apply
            },
            diff: self.diff,
            root: self.root.clone().map(Root::at).unwrap_or_default(),
            verbosity: Verbosity::from_flags(self.quiet, self.verbose),
            output: Output::Stderr,
            pipeline,
        }
    }
}

#[derive(Debug, Parser)]
struct Cli<C: Subcommand> {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: C,
}

/// The clap command of a tool, for `--help` and for the `debug_assert` test every tool has.
pub fn command<T: Tool>() -> clap::Command {
    let mut after_help = String::new();
    if !T::EXAMPLES.is_empty() {
        after_help.push_str("Examples:\n");
        for line in T::EXAMPLES.lines() {
            after_help.push_str(&format!("  {line}\n"));
        }
        after_help.push('\n');
    }
    after_help.push_str(
        "Reads the site document on stdin (or --site FILE) and writes it, with this tool's result appended, on \
         stdout.\nCalled with one argument that is a JSON file, runs as an Ansible binary module.\nExit codes: 0 \
         ok (changed or not), 1 the operation failed, 2 bad usage or bad input (nothing changed).",
    );
    Cli::<T::Command>::command()
        .name(T::NAME)
        .bin_name(T::NAME)
        .about(T::ABOUT)
        .version(VERSION)
        .after_help(after_help)
}

/// `--version`: the toolkit's version, the pretix release whose option schema and image it
/// follows, and the document format it reads (a unit test keeps the numbers true).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (pretix 2026.8, site document format 1)");

/// The command-line main. Returns the exit code.
pub fn main<T: Tool>(args: &[OsString]) -> i32 {
    let matches = match command::<T>().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => EXIT_OK,
                _ => EXIT_BAD_INPUT,
            };
        }
    };
    let verb = matches.subcommand_name().unwrap_or_default().to_owned();
    let cli = match Cli::<T::Command>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return EXIT_BAD_INPUT;
        }
    };
    let (document, pipeline) = match read_document(cli.common.site.as_deref()) {
        Ok(read) => read,
        Err(error) => {
            eprintln!("{}: error: {error}", T::NAME);
            return finish_without_document::<T>(&verb, &error);
        }
    };
    let ctx = Context::new(T::NAME, &verb, cli.common.options(pipeline));
    let outcome = run_verb::<T>(&cli.command, &verb, ctx, document);
    if std::io::stdout().is_terminal() && !cli.common.json {
        print_stdout(&recap(&outcome.document));
    } else {
        print_stdout(&outcome.document.to_json_pretty());
    }
    outcome.exit_code
}

/// What a person at a terminal reads instead of the document: per tool of this pipeline, what
/// was (or would be) changed and what was only noted, then the warnings again at the end.
pub fn recap(document: &Document) -> String {
    let results = document.results().unwrap_or_default();
    let start = results.iter().rposition(|result| result.starts_pipeline).unwrap_or(0);
    let mut text = String::new();
    let mut warnings = Vec::new();
    for result in results.iter().skip(start) {
        let mode = if result.check_mode { " --check" } else { "" };
        let state = match (result.failed, result.changed, result.check_mode) {
            (true, _, _) => "FAILED",
            (false, true, true) => "would change",
            (false, true, false) => "changed",
            (false, false, _) => "no change",
        };
        text.push_str(&format!("{} {}{mode}: {state}\n", result.tool, result.verb));
        let sign = if result.check_mode { "would " } else { "" };
        for action in &result.actions {
            text.push_str(&format!("  - {sign}{action}\n"));
        }
        for item in &result.checks {
            let label = match item.status {
                crate::report::CheckStatus::Ok => "ok",
                crate::report::CheckStatus::Warning => "WARNING",
                crate::report::CheckStatus::Failure => "FAILURE",
            };
            text.push_str(&format!("  [{label}] {}: {}\n", item.name, item.message));
        }
        text.push_str(&format!("  {}\n", result.msg));
        warnings.extend(
            result
                .warnings
                .iter()
                .map(|warning| format!("{}: {warning}", result.tool)),
        );
    }
    if !warnings.is_empty() {
        text.push_str(&format!("\n{} warning(s):\n", warnings.len()));
        for warning in warnings {
            text.push_str(&format!("  - {warning}\n"));
        }
    }
    text.push_str("\n(the site document goes to stdout when it is a pipe or a file, or with --json)\n");
    text
}

/// When even the document could not be read: print a minimal document holding the failure, so
/// the next tool in a pipeline sees it and stops too.
fn finish_without_document<T: Tool>(verb: &str, error: &ToolError) -> i32 {
    let mut document = Document::default();
    document.push_result(&ToolResult {
        tool: T::NAME.to_owned(),
        verb: verb.to_owned(),
        failed: true,
        msg: error.to_string(),
        ..ToolResult::default()
    });
    print_stdout(&document.to_json_pretty());
    error.exit_code()
}

/// The document, and whether it came from a file (a new pipeline) or a pipe (an earlier tool).
fn read_document(site: Option<&Path>) -> Result<(Document, Pipeline), ToolError> {
    let (text, pipeline) = match site {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| ToolError::input("--site", format!("cannot read {}: {error}", path.display())))?;
            (text, Pipeline::Starts)
        }
        None => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(ToolError::input(
                    "(document)",
                    "no site document on stdin: pipe one (echo '{}' | TOOL apply for the guide's defaults) or pass --site FILE",
                ));
            }
            let pipeline = stdin_pipeline();
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|error| ToolError::input("(document)", format!("cannot read stdin: {error}")))?;
            (text, pipeline)
        }
    };
    Ok((Document::parse(&text)?, pipeline))
}

/// Stdin from a pipe or socket continues a pipeline; from a file (`< site.json`) it starts one.
fn stdin_pipeline() -> Pipeline {
    match rustix::fs::fstat(std::io::stdin()) {
        Ok(stat) => {
            let file_type = rustix::fs::FileType::from_raw_mode(stat.st_mode);
            match file_type {
                rustix::fs::FileType::Fifo | rustix::fs::FileType::Socket => Pipeline::Continues,
                _ => Pipeline::Starts,
            }
        }
        Err(_) => Pipeline::Continues,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_names_the_pretix_release_and_the_document_format() {
        assert!(super::VERSION.ends_with(&format!(
            " (pretix {}, site document format {})",
            crate::sections::PRETIX_VERSION,
            crate::sections::FORMAT_VERSION
        )));
    }
}
