//! `Options` (how a run was asked for) and `Context` (everything a verb may touch, and what it
//! has done so far). Both front ends build an `Options`; the tools only read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ToolError;
use crate::fs::{DirOutcome, DirSpec, FileOutcome, FilePlan, FileSpec, Root, ensure_dir, ensure_file};
use crate::report::{CheckItem, CheckStatus, FileDiff, ToolResult};
use crate::secret::{Redactor, Secret, SecretRef, read_secret};
use crate::service::{QueryOutcome, ServiceOutcome, Services, SkipReason};

/// Whether a run changes the host or only plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Converge the host to the document.
    #[default]
    Apply,
    /// Plan only (`--check`): report what would change, change nothing. `offline`: contact no
    /// server either, plan from files alone.
    Check { offline: bool },
}

impl Mode {
    pub fn is_check(self) -> bool {
        matches!(self, Mode::Check { .. })
    }

    pub fn is_offline(self) -> bool {
        matches!(self, Mode::Check { offline: true })
    }
}

/// How much goes to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    /// `-q`: errors and warnings only.
    Quiet,
    #[default]
    Normal,
    /// `-v`: what is run and waited for in detail.
    Verbose,
    /// `-vv` and more.
    Trace,
}

impl Verbosity {
    /// From the command line's `-q` and the count of `-v`.
    pub fn from_flags(quiet: bool, verbose: u8) -> Verbosity {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, 1) => Verbosity::Verbose,
            (false, _) => Verbosity::Trace,
        }
    }
}

/// Where human messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// On stderr, as they happen (the command line).
    #[default]
    Stderr,
    /// Only into the result (Ansible mode: stdout and stderr belong to Ansible).
    ResultOnly,
}

/// Where the document came from, which decides what the upstream-failure gate looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pipeline {
    /// Read from a file (`< site.json`, `--site`, Ansible): this run starts a pipeline, and
    /// failures saved in the document's earlier results are history, not a reason to stop.
    #[default]
    Starts,
    /// Read from a pipe: an earlier tool of this pipeline wrote it, and its failure stops us.
    Continues,
}

/// How a run was asked for: one value, built by a front end.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub mode: Mode,
    /// Show a before/after diff of every file that changes.
    pub diff: bool,
    /// The filesystem root (`--root DIR`, or `/`).
    pub root: Root,
    pub verbosity: Verbosity,
    pub output: Output,
    pub pipeline: Pipeline,
}

impl Options {
    /// The options for `--root DIR` (or `/` when `None`), everything else default.
    pub fn at_root(root: Option<PathBuf>) -> Options {
        Options {
            root: root.map(Root::at).unwrap_or_default(),
            ..Options::default()
        }
    }

    pub fn mode(mut self, mode: Mode) -> Options {
        self.mode = mode;
        self
    }

    pub fn verbosity(mut self, verbosity: Verbosity) -> Options {
        self.verbosity = verbosity;
        self
    }
}

/// Everything a verb may touch, and what it has done so far.
pub struct Context {
    options: Options,
    services: Services,
    redactor: Redactor,
    result: ToolResult,
    /// The check-mode view: directories this run's plan creates or fixes, as planned. In check
    /// mode nothing is created, so without this a second step under the same directory would
    /// plan to create it again.
    planned_dirs: BTreeMap<PathBuf, DirSpec>,
}

impl Context {
    pub fn new(tool: &str, verb: &str, options: Options) -> Context {
        let services = Services::for_run(options.root.is_redirected());
        Context {
            result: ToolResult {
                tool: tool.to_owned(),
                verb: verb.to_owned(),
                check_mode: options.mode.is_check(),
                starts_pipeline: options.pipeline == Pipeline::Starts,
                ..ToolResult::default()
            },
            options,
            services,
            redactor: Redactor::default(),
            planned_dirs: BTreeMap::new(),
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn mode(&self) -> Mode {
        self.options.mode
    }

    /// Plan only: nothing may change.
    pub fn is_check(&self) -> bool {
        self.options.mode.is_check()
    }

    /// Contact no server (only ever in check mode).
    pub fn is_offline(&self) -> bool {
        self.options.mode.is_offline()
    }

    pub fn root(&self) -> &Root {
        &self.options.root
    }

    pub fn verbosity(&self) -> Verbosity {
        self.options.verbosity
    }

    fn shows(&self, level: Verbosity) -> bool {
        self.options.output == Output::Stderr && self.options.verbosity >= level
    }

    /// A message for humans, on stderr (redacted).
    pub fn info(&self, message: &str) {
        if self.shows(Verbosity::Normal) {
            eprintln!("{}: {}", self.result.tool, self.redactor.redact(message));
        }
    }

    /// Detail shown with `-v`.
    pub fn debug(&self, message: &str) {
        if self.shows(Verbosity::Verbose) {
            eprintln!("{}: {}", self.result.tool, self.redactor.redact(message));
        }
    }

    /// A warning: in the result and on stderr.
    pub fn warn(&mut self, message: impl Into<String>) {
        let message = self.redactor.redact(&message.into());
        if self.shows(Verbosity::Quiet) {
            eprintln!("{}: warning: {message}", self.result.tool);
        }
        if !self.result.warnings.contains(&message) {
            self.result.warnings.push(message);
        }
    }

    /// Records something that changed (or would change, in check mode).
    pub fn changed(&mut self, action: impl Into<String>) {
        let action = self.redactor.redact(&action.into());
        let shown = if self.is_check() {
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

    /// One finding of a `verify` verb.
    pub fn check_item(&mut self, name: &str, status: CheckStatus, message: impl Into<String>) {
        let message = self.redactor.redact(&message.into());
        if self.shows(Verbosity::Normal) {
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

    /// The end of every `verify`, in one wording: a failure when any item failed, naming them and
    /// `fix` (e.g. "pretix-db apply fixes what it owns"); else how many passed.
    pub fn verify_outcome(&self, fix: &str) -> Result<String, ToolError> {
        let checks = &self.result.checks;
        let count = |status: CheckStatus| checks.iter().filter(|item| item.status == status).count();
        let mut failed: Vec<&str> = Vec::new();
        for item in checks.iter().filter(|item| item.status == CheckStatus::Failure) {
            if !failed.contains(&item.name.as_str()) {
                failed.push(&item.name);
            }
        }
        if !failed.is_empty() {
            return Err(ToolError::failed(format!(
                "{} of {} checks failed: {} ({fix})",
                count(CheckStatus::Failure),
                checks.len(),
                failed.join(", ")
            )));
        }
        Ok(match count(CheckStatus::Warning) {
            0 => format!("all {} checks passed", checks.len()),
            warnings => format!("{} checks passed, {warnings} with a warning", checks.len()),
        })
    }

    /// The `verify` findings so far.
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
        let secret = read_secret(&self.options.root, reference, field)?;
        self.register_secret(&secret);
        Ok(secret)
    }

    /// Ensures a file, recording its diff and change. In check mode nothing is written.
    pub fn file(&mut self, spec: &FileSpec) -> Result<FileOutcome, ToolError> {
        let outcome = ensure_file(&self.options.root, spec, self.is_check(), &self.redactor)?;
        if let Some(diff) = &outcome.diff {
            let what = match outcome.plan {
                FilePlan::Create => "create",
                FilePlan::FixAttributes => "fix owner/mode of",
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
            .take_while(|ancestor| !ancestor.as_os_str().is_empty() && !self.exists(ancestor))
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

    /// Whether `path` exists on the host, or (in check mode) this run's plan creates it: the
    /// check-mode view, in which what the plan creates counts as existing.
    pub fn exists(&self, path: &Path) -> bool {
        self.planned_dirs.contains_key(path) || self.options.root.host_path(path).exists()
    }

    /// Ensures a directory, recording the change. In check mode, a directory the plan already
    /// creates (or fixes) the same way is not planned twice.
    pub fn dir(&mut self, spec: &DirSpec) -> Result<DirOutcome, ToolError> {
        if self.planned_dirs.get(&spec.path) == Some(spec) {
            return Ok(DirOutcome {
                created: false,
                attributes: None,
            });
        }
        // The plan finds what apply would: a directory whose parent neither exists nor is
        // planned cannot be created.
        if let Some(parent) = spec.path.parent().filter(|_| self.is_check())
            && !self.exists(parent)
        {
            return Err(ToolError::failed(format!(
                "cannot create {}: its parent directory does not exist; create the parent first",
                spec.path.display()
            )));
        }
        let outcome = ensure_dir(&self.options.root, spec, self.is_check())?;
        if self.is_check() && outcome.changed() {
            self.planned_dirs.insert(spec.path.clone(), spec.clone());
        }
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
        if self.options.diff && self.options.output == Output::Stderr {
            eprint!("{}", diff.unified());
        }
        self.result.diffs.push(diff);
    }

    /// A systemctl call through the one seam; skipped actions are reported.
    pub fn systemctl(&mut self, args: &[&str]) -> Result<ServiceOutcome, ToolError> {
        let verbose = self.shows(Verbosity::Verbose);
        let tool = self.result.tool.clone();
        let mut log = |line: &str| {
            if verbose {
                eprintln!("{tool}: {line}");
            }
        };
        let outcome = self.services.systemctl(args, self.is_check(), &mut log)?;
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
            ServiceOutcome::Skipped {
                reason: SkipReason::StagingRoot,
            } => self.note(format!("skipped (--root): systemctl {}", args.join(" "))),
            ServiceOutcome::Skipped {
                reason: SkipReason::CheckMode,
            } => self.changed(format!("systemctl {}", args.join(" "))),
        }
        Ok(outcome)
    }

    /// A read-only systemctl question (`is-active`, `show`) through the one seam; also in check
    /// mode. Only a real systemd answers: `--root` and the recording seam say `NotAsked`.
    pub fn systemctl_query(&mut self, args: &[&str]) -> Result<QueryOutcome, ToolError> {
        let verbose = self.shows(Verbosity::Verbose);
        let tool = self.result.tool.clone();
        let mut log = |line: &str| {
            if verbose {
                eprintln!("{tool}: {line}");
            }
        };
        Ok(self.services.query(args, &mut log)?)
    }

    /// The file systemctl calls are only recorded to (tests), when they are not really made: a
    /// tool must not wait for a service that was never started.
    pub fn systemctl_recorded_to(&self) -> Option<&Path> {
        self.services.recording_to()
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
