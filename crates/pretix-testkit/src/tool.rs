//! Running a tool binary the way a pipeline does: the document on stdin, the document on
//! stdout, the exit code, and the human messages on stderr.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// What one run of a tool binary gave.
pub struct ToolRun {
    pub document: Value,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ToolRun {
    /// This run's entry in `results` (the last one), or `Null`.
    pub fn result(&self) -> &Value {
        self.document["results"]
            .as_array()
            .and_then(|results| results.last())
            .unwrap_or(&Value::Null)
    }

    pub fn msg(&self) -> &str {
        self.result()["msg"].as_str().unwrap_or_default()
    }

    pub fn changed(&self) -> bool {
        self.result()["changed"] == Value::Bool(true)
    }

    pub fn actions(&self) -> Vec<String> {
        strings(&self.result()["actions"])
    }

    pub fn warnings(&self) -> Vec<String> {
        strings(&self.result()["warnings"])
    }

    pub fn has_action(&self, prefix: &str) -> bool {
        self.actions().iter().any(|action| action.starts_with(prefix))
    }

    /// Status and message of the first `verify` item called `name`.
    pub fn check_item(&self, name: &str) -> Option<(String, String)> {
        self.result()["checks"].as_array()?.iter().find_map(|item| {
            (item["name"] == name).then(|| {
                (
                    item["status"].as_str().unwrap_or_default().to_owned(),
                    item["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
        })
    }

    /// The document to feed the next run: this one without its results.
    pub fn next_input(&self) -> Value {
        let mut document = self.document.clone();
        if let Value::Object(map) = &mut document {
            map.remove("results");
        }
        document
    }

    pub fn describe(&self) -> String {
        format!("exit {}\nstdout: {}\nstderr: {}", self.code, self.stdout, self.stderr)
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a prepared command (binary, arguments, environment) with `document` on stdin; panics
/// when stdout is not a JSON document, which every tool must print whatever happens.
pub fn run_tool(command: &mut Command, document: &Value) -> ToolRun {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("start {:?}: {error}", command.get_program()));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(document.to_string().as_bytes())
            .expect("write the document to stdin");
    }
    let output = child.wait_with_output().expect("wait for the tool");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let document = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("stdout is not a JSON document ({error}): {stdout}\nstderr: {stderr}"));
    ToolRun {
        document,
        code: output.status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}
