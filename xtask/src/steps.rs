//! The one way xtask runs a sequence of tools: the document from one tool's stdout is the next
//! tool's stdin, exactly as `tool-a apply | tool-b apply` in a shell script, and the sequence
//! stops at the first tool that exits non-zero. What ran, what failed and what did not run is
//! kept, so every pipeline can say so at the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use pretix_site::report::ToolResult;
use serde_json::Value;

use crate::workspace_root;

/// Every tool binary a pipeline may run, in install order.
pub const TOOLS: &[&str] = &[
    "pretix-db",
    "pretix-redis",
    "pretix-cfg",
    "pretix-plugin",
    "pretix-unit",
    "pretix-cron",
    "pretix-proxy",
];

/// Where the tool binaries are.
#[derive(Debug, Clone)]
pub struct ToolDir(PathBuf);

impl ToolDir {
    /// `--tools DIR` when given; under cargo (`cargo xtask ...`) the freshly built debug binaries;
    /// otherwise the directory holding this xtask binary (a release install puts them together).
    pub fn locate(explicit: Option<&Path>) -> anyhow::Result<ToolDir> {
        let dir = match explicit {
            Some(dir) => dir.to_path_buf(),
            None if std::env::var_os("CARGO").is_some() => build_tools()?,
            None => std::env::current_exe()
                .context("find the xtask binary")?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        for tool in TOOLS {
            if !dir.join(tool).is_file() {
                bail!(
                    "{tool} is not in {}: pass --tools DIR naming the directory of the toolkit's binaries",
                    dir.display()
                );
            }
        }
        Ok(ToolDir(dir))
    }

    pub fn path(&self, tool: &str) -> PathBuf {
        self.0.join(tool)
    }
}

/// Builds every tool binary (debug, as the tests do) and returns their directory.
pub fn build_tools() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.args(["build", "--quiet", "--bins"]);
    for tool in TOOLS {
        command.args(["-p", tool]);
    }
    let status = command.current_dir(&root).status().context("cargo build")?;
    if !status.success() {
        bail!("building the tools failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug"))
}

/// One tool run in a sequence: the binary, the verb and its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub tool: &'static str,
    pub args: Vec<String>,
}

impl Step {
    pub fn new(tool: &'static str, args: &[&str]) -> Step {
        Step {
            tool,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        }
    }

    /// As a sysadmin would type it.
    pub fn command_line(&self) -> String {
        std::iter::once(self.tool.to_owned())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What one tool run gave.
#[derive(Debug, Clone)]
pub struct StepRun {
    pub step: Step,
    pub code: i32,
    /// The tool's own entry in `results`, when it printed a document.
    pub result: Option<ToolResult>,
}

/// What a sequence gave: the last document, and each step's fate.
#[derive(Debug)]
pub struct SequenceRun {
    pub document: String,
    pub ran: Vec<StepRun>,
    pub not_run: Vec<Step>,
}

impl SequenceRun {
    /// The first step that exited non-zero.
    pub fn failure(&self) -> Option<&StepRun> {
        self.ran.iter().find(|run| run.code != 0)
    }

    /// The exit code of the sequence: the first failure's, else 0.
    pub fn exit_code(&self) -> i32 {
        self.failure().map_or(0, |run| run.code)
    }

    /// A few lines for humans: each step with what it did, then what did not run.
    pub fn recap(&self) -> String {
        let mut text = String::new();
        for run in &self.ran {
            let (status, msg) = match &run.result {
                Some(result) if result.failed => ("FAILED", result.msg.as_str()),
                Some(result) if result.changed && result.check_mode => ("would change", result.msg.as_str()),
                Some(result) if result.changed => ("changed", result.msg.as_str()),
                Some(result) => ("ok", result.msg.as_str()),
                None => ("FAILED", "printed no document"),
            };
            text.push_str(&format!("  {:<14} {:<13} {msg}\n", run.step.tool, status));
        }
        for step in &self.not_run {
            text.push_str(&format!(
                "  {:<14} {:<13} {}\n",
                step.tool,
                "not run",
                step.command_line()
            ));
        }
        text
    }
}

/// Runs `steps` one after the other, each with the previous one's stdout on its stdin; stops at
/// the first non-zero exit. Human messages of the tools go straight to this process's stderr.
pub fn run_sequence(tools: &ToolDir, steps: &[Step], document: String) -> anyhow::Result<SequenceRun> {
    let mut current = document;
    let mut ran = Vec::new();
    let mut remaining = steps.iter();
    for step in remaining.by_ref() {
        let (output, code) = run_tool(&tools.path(step.tool), &step.args, &current)
            .with_context(|| format!("run {}", step.command_line()))?;
        let result = last_result(&output, step.tool);
        // A tool that printed no document leaves the previous one to carry on with.
        if serde_json::from_str::<Value>(&output).is_ok() {
            current = output;
        }
        ran.push(StepRun {
            step: step.clone(),
            code,
            result,
        });
        if code != 0 {
            break;
        }
    }
    Ok(SequenceRun {
        document: current,
        ran,
        not_run: remaining.cloned().collect(),
    })
}

/// Runs one tool binary with the document on stdin; returns its stdout and exit code.
pub fn run_tool(binary: &Path, args: &[String], document: &str) -> anyhow::Result<(String, i32)> {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A tool that refuses its input early closes stdin: its exit code says why.
        let _ = stdin.write_all(document.as_bytes());
    }
    let output = child
        .wait_with_output()
        .with_context(|| format!("wait for {}", binary.display()))?;
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.code().unwrap_or(1),
    ))
}

/// The last entry in `results` when it is `tool`'s.
pub fn last_result(document: &str, tool: &str) -> Option<ToolResult> {
    let value: Value = serde_json::from_str(document).ok()?;
    let last = value.get("results")?.as_array()?.last()?.clone();
    let result: ToolResult = serde_json::from_value(last).ok()?;
    (result.tool == tool).then_some(result)
}

/// Writes the final document to `output`, or to stdout.
pub fn write_document(document: &str, output: Option<&Path>) -> anyhow::Result<()> {
    match output {
        Some(path) => std::fs::write(path, document).with_context(|| format!("write {}", path.display())),
        None => {
            pretix_site::run::print_stdout(document);
            Ok(())
        }
    }
}

/// A tool's exit code as this process's.
pub fn exit_code(code: i32) -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
