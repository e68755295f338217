//! The main boilerplate every tool shares: parse the command line (or the Ansible arguments
//! file), read the document, take the host lock, run the tool, append its result, print the
//! document on stdout and the human messages on stderr, and map the outcome to the exit code.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::ansible;
use crate::document::Document;
use crate::error::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, ToolError};
use crate::fs::{DirOutcome, DirSpec, FileOutcome, FileSpec, Root, RunLock, ensure_dir, ensure_file};
use crate::report::{CheckItem, CheckStatus, FileDiff, ToolResult};
use crate::secret::{Redactor, Secret, SecretRef, read_secret};
use crate::sections::Paths;
use crate::service::{ServiceOutcome, Services};

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
}

#[derive(Debug, Parser)]
struct Cli<C: Subcommand> {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: C,
}

/// A tool: its verbs and what it does with the document.
pub trait Tool {
    /// The verbs, as a clap subcommand enum with doc comments as help.
    type Command: Subcommand + std::fmt::Debug;
    /// The binary's name, e.g. `pretix-db`.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// Whether the verb changes anything (a read-only verb runs without the host lock).
    fn is_read_only(command: &Self::Command) -> bool;
    /// Runs one verb against the document. Returns the summary message.
    fn run(command: &Self::Command, ctx: &mut Context, document: &mut Document) -> Result<String, ToolError>;
}

/// The clap command of a tool, for `--help` and for the `debug_assert` test every tool has.
pub fn command<T: Tool>() -> clap::Command {
    Cli::<T::Command>::command()
        .name(T::NAME)
        .bin_name(T::NAME)
        .about(T::ABOUT)
        .version(env!("CARGO_PKG_VERSION"))
        .after_help(
            "Reads the site document on stdin (or --site FILE) and writes it, with this tool's result appended, on \
             stdout.\nCalled with one argument that is a JSON file, runs as an Ansible binary module.\nExit codes: 0 \
             ok (changed or not), 1 the operation failed, 2 bad usage or bad input (nothing changed).",
        )
}

/// Everything a verb may touch, and what it has done so far.
pub struct Context {
    pub check: bool,
    /// Contact no server; only ever true together with `check`.
    pub offline: bool,
    pub diff: bool,
    pub root: Root,
    pub verbosity: i8,
    pub services: Services,
    redactor: Redactor,
    result: ToolResult,
    /// In Ansible mode nothing goes to stderr: messages travel in the result.
    quiet_stderr: bool,
}

impl Context {
    pub fn new(tool: &str, verb: &str, check: bool, diff: bool, root: Option<PathBuf>, verbosity: i8) -> Context {
        let root = root.map(Root::at).unwrap_or_default();
        let services = Services::for_run(root.is_redirected());
        Context {
            check,
            offline: false,
            diff,
            root,
            verbosity,
            services,
            redactor: Redactor::default(),
            result: ToolResult {
                tool: tool.to_owned(),
                verb: verb.to_owned(),
                check_mode: check,
                ..ToolResult::default()
            },
            quiet_stderr: false,
        }
    }

    /// A message for humans, on stderr (redacted).
    pub fn info(&self, message: &str) {
        if self.verbosity >= 0 && !self.quiet_stderr {
            eprintln!("{}: {}", self.result.tool, self.redactor.redact(message));
        }
    }

    /// Detail shown with `-v`.
    pub fn debug(&self, message: &str) {
        if self.verbosity >= 1 && !self.quiet_stderr {
            eprintln!("{}: {}", self.result.tool, self.redactor.redact(message));
        }
    }

    /// A warning: in the result and on stderr.
    pub fn warn(&mut self, message: impl Into<String>) {
        let message = self.redactor.redact(&message.into());
        if !self.quiet_stderr {
            eprintln!("{}: warning: {message}", self.result.tool);
        }
        if !self.result.warnings.contains(&message) {
            self.result.warnings.push(message);
        }
    }

    /// Records something that changed (or would change, in check mode).
    pub fn changed(&mut self, action: impl Into<String>) {
        let action = self.redactor.redact(&action.into());
        let shown = if self.check {
            format!("would {action}")
        } else {
            action.clone()
        };
        self.info(&shown);
        self.result.changed = true;
        self.result.actions.push(action);
    }

    /// Records something done that is not a change of state (a verification, a reported
    /// restart that `--root` skipped).
    pub fn note(&mut self, action: impl Into<String>) {
        let action = self.redactor.redact(&action.into());
        self.info(&action);
        self.result.actions.push(action);
    }

    /// One finding of a `check` verb.
    pub fn check_item(&mut self, name: &str, status: CheckStatus, message: impl Into<String>) {
        let message = self.redactor.redact(&message.into());
        if !self.quiet_stderr && self.verbosity >= 0 {
            let label = match status {
                CheckStatus::Ok => "ok",
                CheckStatus::Warning => "WARNING",
                CheckStatus::Failure => "FAILURE",
            };
            eprintln!("{}: [{label}] {name}: {message}", self.result.tool);
        }
        self.result.checks.push(CheckItem {
            name: name.to_owned(),
            status,
            message,
        });
    }

    /// The `check` findings so far.
    pub fn checks(&self) -> &[CheckItem] {
        &self.result.checks
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// Registers a secret so it is masked everywhere from now on.
    pub fn register_secret(&mut self, secret: &Secret) {
        self.redactor.register(secret);
    }

    /// Reads a secret by reference and registers it.
    pub fn read_secret(&mut self, reference: &SecretRef, field: &str) -> Result<Secret, ToolError> {
        let secret = read_secret(&self.root, reference, field)?;
        self.register_secret(&secret);
        Ok(secret)
    }

    /// Ensures a file, recording its diff and change. In check mode nothing is written.
    pub fn file(&mut self, spec: &FileSpec) -> Result<FileOutcome, ToolError> {
        let outcome = ensure_file(&self.root, spec, self.check, &self.redactor)?;
        if let Some(diff) = &outcome.diff {
            let what = match outcome.plan {
                crate::fs::FilePlan::Create => "create",
                crate::fs::FilePlan::FixAttributes => "fix owner/mode of",
                _ => "update",
            };
            self.changed(format!("{what} {}", spec.path.display()));
            self.push_diff(diff.clone());
        }
        if let Some(backup) = &outcome.backup {
            self.note(format!("saved the previous version as {}", backup.display()));
        }
        Ok(outcome)
    }

    /// Creates the missing ancestors of `path` (root-owned, 0755), and never touches one that
    /// exists: a fresh host has no /etc/pretix-toolkit yet, an admin's existing dirs stay as they are.
    pub fn ensure_parents(&mut self, path: &Path) -> Result<(), ToolError> {
        let missing: Vec<PathBuf> = path
            .ancestors()
            .skip(1)
            .take_while(|ancestor| !ancestor.as_os_str().is_empty() && !self.root.host_path(ancestor).exists())
            .map(Path::to_path_buf)
            .collect();
        for ancestor in missing.iter().rev() {
            self.dir(&DirSpec {
                path: ancestor.clone(),
                uid: Some(0),
                gid: Some(0),
                mode: 0o755,
            })?;
        }
        Ok(())
    }

    /// Stores a secret in a root-only file (0600). When the file lives in `secrets_dir`, that dir
    /// is created (or fixed) root-only 0700 first, with any missing ancestors.
    pub fn store_secret(&mut self, secrets_dir: &Path, file: &Path, secret: &Secret) -> Result<(), ToolError> {
        self.register_secret(secret);
        if file.parent() == Some(secrets_dir) {
            self.ensure_parents(secrets_dir)?;
            self.dir(&DirSpec {
                path: secrets_dir.to_path_buf(),
                uid: Some(0),
                gid: Some(0),
                mode: 0o700,
            })?;
        } else {
            self.ensure_parents(file)?;
        }
        self.file(&crate::secret::secret_file_spec(file, secret)).map(drop)
    }

    /// Ensures a directory, recording the change.
    pub fn dir(&mut self, spec: &DirSpec) -> Result<DirOutcome, ToolError> {
        let outcome = ensure_dir(&self.root, spec, self.check)?;
        if let Some(attributes) = &outcome.attributes {
            let what = if outcome.created {
                "create directory"
            } else {
                "fix owner/mode of directory"
            };
            self.changed(format!(
                "{what} {} ({} -> {})",
                spec.path.display(),
                attributes.before,
                attributes.after
            ));
        }
        Ok(outcome)
    }

    fn push_diff(&mut self, diff: FileDiff) {
        if self.diff && !self.quiet_stderr {
            eprint!("{}", diff.unified());
        }
        self.result.diffs.push(diff);
    }

    /// A systemctl call through the one seam; skipped actions are reported.
    pub fn systemctl(&mut self, args: &[&str]) -> Result<ServiceOutcome, ToolError> {
        let verbosity = self.verbosity;
        let tool = self.result.tool.clone();
        let mut log = |line: &str| {
            if verbosity >= 1 {
                eprintln!("{tool}: {line}");
            }
        };
        let outcome = self.services.systemctl(args, self.check, &mut log)?;
        match outcome {
            ServiceOutcome::Performed => {
                self.changed(format!("systemctl {}", args.join(" ")));
                if let Some(record) = self.services.recording_to() {
                    let record = record.display().to_string();
                    self.warn(format!(
                        "systemctl was not run: {} is set, so its calls were only recorded to {record}; \
                         unset it outside tests",
                        crate::service::RECORD_ENV
                    ));
                }
            }
            ServiceOutcome::Skipped { reason: "--root" } => {
                self.note(format!("skipped (--root): systemctl {}", args.join(" ")))
            }
            ServiceOutcome::Skipped { .. } => self.changed(format!("systemctl {}", args.join(" "))),
        }
        Ok(outcome)
    }

    /// Whether anything changed so far.
    pub fn has_changed(&self) -> bool {
        self.result.changed
    }

    pub fn finish(mut self, msg: &str, failed: bool) -> ToolResult {
        self.result.msg = self.redactor.redact(msg);
        self.result.failed = failed;
        self.result
    }
}

/// How a run ended, for both front ends.
pub struct RunOutcome {
    pub document: Document,
    pub result: ToolResult,
    pub exit_code: i32,
}

/// Runs a verb on a document: the upstream-failure gate, the lock, the tool, the result.
pub fn run_verb<T: Tool>(command: &T::Command, verb: &str, mut ctx: Context, mut document: Document) -> RunOutcome {
    let upstream_failure = document
        .results()
        .ok()
        .and_then(|results| results.into_iter().rev().find(|result| result.failed));
    if let Some(upstream) = upstream_failure {
        let msg = format!(
            "not run: {} {} failed upstream: {}",
            upstream.tool, upstream.verb, upstream.msg
        );
        eprintln!("{}: error: {msg}", T::NAME);
        let result = ctx.finish(&msg, true);
        document.push_result(&result);
        return RunOutcome {
            document,
            result,
            exit_code: EXIT_FAILED,
        };
    }
    let outcome = (|| -> Result<String, ToolError> {
        let _lock = if T::is_read_only(command) || ctx.check {
            None
        } else {
            let paths: Paths = document.section("paths")?;
            paths.validate()?;
            Some(RunLock::acquire(&ctx.root, &paths.lock_file, Duration::from_secs(120))?)
        };
        T::run(command, &mut ctx, &mut document)
    })();
    let _ = verb;
    match outcome {
        Ok(msg) => {
            if ctx.verbosity >= 0 && !ctx.quiet_stderr {
                eprintln!("{}: {}", T::NAME, ctx.redact(&msg));
            }
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
                EXIT_BAD_INPUT if ctx.has_changed() && !ctx.check => EXIT_FAILED,
                code => code,
            };
            let msg = ctx.redact(&error.to_string());
            if !ctx.quiet_stderr {
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

/// The whole main of a tool binary. Returns the exit code.
pub fn main<T: Tool>() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    // A verb is never an arguments file, even when a file of that name sits in the cwd.
    let is_verb = args
        .get(1)
        .is_some_and(|arg| command::<T>().find_subcommand(arg).is_some());
    if let Some(path) = ansible::arguments_file(&args).filter(|_| !is_verb) {
        return ansible::main::<T>(&path);
    }
    let matches = match command::<T>().try_get_matches_from(&args) {
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
    let verbosity = if cli.common.quiet {
        -1
    } else {
        i8::try_from(cli.common.verbose).unwrap_or(i8::MAX)
    };
    let document = match read_document(cli.common.site.as_deref()) {
        Ok(document) => document,
        Err(error) => {
            eprintln!("{}: error: {error}", T::NAME);
            return finish_without_document::<T>(&verb, &error);
        }
    };
    let mut ctx = Context::new(
        T::NAME,
        &verb,
        cli.common.check,
        cli.common.diff,
        cli.common.root,
        verbosity,
    );
    ctx.offline = cli.common.offline;
    let outcome = run_verb::<T>(&cli.command, &verb, ctx, document);
    print_stdout(&outcome.document.to_json_pretty());
    outcome.exit_code
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

fn read_document(site: Option<&Path>) -> Result<Document, ToolError> {
    let text = match site {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| ToolError::input("--site", format!("cannot read {}: {error}", path.display())))?,
        None => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(ToolError::input(
                    "(document)",
                    "no site document on stdin: pipe one (echo '{}' | TOOL apply for the guide's defaults) or pass --site FILE",
                ));
            }
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|error| ToolError::input("(document)", format!("cannot read stdin: {error}")))?;
            text
        }
    };
    Document::parse(&text)
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

/// The status of a run, checked findings included: a `check` verb with failures fails.
pub fn checks_failed(result: &ToolResult) -> bool {
    result.checks.iter().any(|item| item.status == CheckStatus::Failure)
}

/// For verbs that a later issue builds: a clear error and exit 1, never a pretended success.
pub fn not_implemented(tool: &str, verb: &str, issue: &str) -> ToolError {
    ToolError::not_implemented(format!("{tool} {verb} ({issue})"))
}

pub(crate) fn quiet_stderr(ctx: &mut Context) {
    ctx.quiet_stderr = true;
}
