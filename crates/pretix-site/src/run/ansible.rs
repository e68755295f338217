//! The Ansible binary-module front end.
//!
//! Ansible runs a binary module as `<tmp>/AnsiballZ_<name> <tmp>/args`, where `args` is a flat
//! JSON object: the task's options plus internal `_ansible_*` keys. The module prints one JSON
//! object on stdout (`changed`, `failed`, `msg`, `diff`, `warnings`, data) and nothing else.
//! Ansible ignores the exit code when the JSON parses; shells do not, so we exit 1 on failure.
//!
//! Options are the site document's top-level sections (`config`, `database`, ...) plus:
//! - `verb`: the tool's verb, default `apply`;
//! - `site_file`: a document to start from; sections given inline replace its sections;
//! - `site`: the same as a value, typically the `site` an earlier task returned
//!   (`site: "{{ db.site }}"`), so a play chains the tools as a shell pipe does;
//! - `root`: the `--root` directory (staging).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{FromArgMatches, Subcommand};
use serde_json::{Map, Value, json};

use super::{Context, Mode, Options, Output, Pipeline, Tool, Verbosity, print_stdout, run_verb};
use crate::document::{Document, TOP_LEVEL_KEYS};
use crate::error::{EXIT_FAILED, EXIT_OK, ToolError};
use crate::fs::Root;
use crate::report::ToolResult;

/// Options of our own besides the document sections.
const OWN_OPTIONS: &[&str] = &["verb", "site", "site_file", "root"];

/// The arguments file, when the binary was called the way Ansible calls a module: exactly one
/// argument, which is an existing regular file (a verb or flag never is).
pub fn arguments_file(args: &[OsString]) -> Option<PathBuf> {
    if args.len() != 2 {
        return None;
    }
    let candidate = PathBuf::from(&args[1]);
    let text = candidate.to_string_lossy();
    if text.starts_with('-') || !candidate.is_file() {
        return None;
    }
    Some(candidate)
}

/// The parsed arguments file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleArgs {
    pub verb: String,
    pub check_mode: bool,
    pub diff: bool,
    /// Ansible's `-v` count.
    pub verbosity: u8,
    pub root: Option<PathBuf>,
    pub document: Document,
}

impl ModuleArgs {
    /// The run options: messages travel only in the result, and every task starts a pipeline
    /// (Ansible itself stops a play at a failed task).
    pub fn options(&self) -> Options {
        Options {
            mode: if self.check_mode {
                Mode::Check { offline: false }
            } else {
                Mode::Apply
            },
            diff: self.diff,
            root: self.root.clone().map(Root::at).unwrap_or_default(),
            verbosity: Verbosity::from_flags(false, self.verbosity),
            output: Output::ResultOnly,
            pipeline: Pipeline::Starts,
        }
    }
}

/// Parses the arguments file's JSON.
pub fn parse_module_args(text: &str) -> Result<ModuleArgs, ToolError> {
    let value: Value = serde_json::from_str(text).map_err(|error| {
        ToolError::input(
            "(arguments)",
            format!("the module arguments are not valid JSON: {error}"),
        )
    })?;
    let Value::Object(options) = value else {
        return Err(ToolError::input(
            "(arguments)",
            "the module arguments must be a JSON object",
        ));
    };
    let flag = |key: &str| -> Result<bool, ToolError> {
        match options.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(value)) => Ok(*value),
            Some(other) => Err(ToolError::input(key, format!("expected true or false, got {other}"))),
        }
    };
    let check_mode = flag("_ansible_check_mode")?;
    let diff = flag("_ansible_diff")?;
    let ignore_unknown = flag("_ansible_ignore_unknown_opts")?;
    let verbosity = options.get("_ansible_verbosity").and_then(Value::as_i64).unwrap_or(0);

    let mut sections = Map::new();
    let mut unknown = Vec::new();
    for (key, value) in &options {
        if key.starts_with("_ansible_") || OWN_OPTIONS.contains(&key.as_str()) {
            continue;
        }
        if TOP_LEVEL_KEYS.contains(&key.as_str()) {
            sections.insert(key.clone(), value.clone());
        } else {
            unknown.push(key.clone());
        }
    }
    if !unknown.is_empty() && !ignore_unknown {
        let hints: Vec<String> = unknown
            .iter()
            .map(
                |key| match crate::error::closest(key, TOP_LEVEL_KEYS.iter().chain(OWN_OPTIONS).copied()) {
                    Some(suggestion) => format!("{key} (did you mean {suggestion}?)"),
                    None => key.clone(),
                },
            )
            .collect();
        return Err(ToolError::input(
            "(arguments)",
            format!(
                "unsupported parameters: {}; supported are {} and {}",
                hints.join(", "),
                OWN_OPTIONS.join(", "),
                TOP_LEVEL_KEYS.join(", ")
            ),
        ));
    }

    let text_option = |key: &str| -> Result<Option<String>, ToolError> {
        match options.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(ToolError::input(key, format!("expected a string, got {other}"))),
        }
    };
    let verb = text_option("verb")?.unwrap_or_else(|| "apply".to_owned());
    let root = text_option("root")?.map(PathBuf::from);
    let inline_site = match options.get("site") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => {
            return Err(ToolError::input(
                "site",
                "expected the site document as an object, e.g. site: \"{{ db.site }}\" (the site an earlier task returned)",
            ));
        }
    };
    let site_file = text_option("site_file")?;
    if inline_site.is_some() && site_file.is_some() {
        return Err(ToolError::input("site", "give site or site_file, not both"));
    }
    let mut base = match site_file {
        _ if inline_site.is_some() => inline_site.unwrap_or_default(),
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|error| ToolError::input("site_file", format!("cannot read {path}: {error}")))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(ToolError::input("site_file", format!("{path} is not a JSON object")));
                }
            }
        }
        None => Map::new(),
    };
    base.extend(sections);
    let document = Document::from_value(Value::Object(base))?;
    Ok(ModuleArgs {
        verb,
        check_mode,
        diff,
        verbosity: u8::try_from(verbosity.clamp(0, 10)).unwrap_or(0),
        root,
        document,
    })
}

/// The Ansible result for a finished run.
pub fn module_result(result: &ToolResult, document: &Document, diff_mode: bool) -> Value {
    let mut output = json!({
        "changed": result.changed,
        "failed": result.failed,
        "msg": result.msg,
        "warnings": result.warnings,
        "actions": result.actions,
        "site": document.to_value(),
    });
    if !result.checks.is_empty() {
        output["checks"] = serde_json::to_value(&result.checks).unwrap_or(Value::Null);
    }
    if diff_mode && !result.diffs.is_empty() {
        let diffs: Vec<Value> = result
            .diffs
            .iter()
            .map(|diff| json!({ "prepared": diff.unified() }))
            .collect();
        output["diff"] = Value::Array(diffs);
    }
    output
}

fn failure(msg: &str) -> Value {
    json!({ "changed": false, "failed": true, "msg": msg })
}

/// The module main: never prints anything but the one JSON object.
pub fn main<T: Tool>(path: &Path) -> i32 {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            print_stdout(&format!(
                "{}\n",
                failure(&format!("cannot read module arguments {}: {error}", path.display()))
            ));
            return EXIT_FAILED;
        }
    };
    let args = match parse_module_args(&text) {
        Ok(args) => args,
        Err(error) => {
            print_stdout(&format!("{}\n", failure(&error.to_string())));
            return EXIT_FAILED;
        }
    };
    let command = match parse_verb::<T>(&args.verb) {
        Ok(command) => command,
        Err(error) => {
            print_stdout(&format!("{}\n", failure(&error.to_string())));
            return EXIT_FAILED;
        }
    };
    let ctx = Context::new(T::NAME, &args.verb, args.options());
    let outcome = run_verb::<T>(&command, &args.verb, ctx, args.document);
    let output = module_result(&outcome.result, &outcome.document, args.diff);
    print_stdout(&format!("{output}\n"));
    if outcome.exit_code == EXIT_OK {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// A verb string through the tool's own clap definition, so both front ends agree.
fn parse_verb<T: Tool>(verb: &str) -> Result<T::Command, ToolError> {
    let words: Vec<&str> = verb.split_whitespace().collect();
    let command = T::Command::augment_subcommands(clap::Command::new(T::NAME).no_binary_name(true));
    let matches = command.try_get_matches_from(&words).map_err(|error| {
        ToolError::input(
            "verb",
            error.to_string().lines().next().unwrap_or("bad verb").to_owned(),
        )
    })?;
    T::Command::from_arg_matches(&matches).map_err(|error| ToolError::input("verb", error.to_string()))
}
