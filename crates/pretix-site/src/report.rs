//! What a tool run reports: one `ToolResult` appended to the document's `results`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One tool run's entry in `results`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolResult {
    /// The tool, e.g. `pretix-db`.
    pub tool: String,
    /// The verb, e.g. `apply` or `verify`.
    pub verb: String,
    /// Whether anything changed (in check mode: would change).
    pub changed: bool,
    /// Whether the run failed.
    #[serde(default)]
    pub failed: bool,
    /// Whether this was a check-mode (plan only) run.
    #[serde(default)]
    pub check_mode: bool,
    /// Whether this run read its document from a file and so began a pipeline: the
    /// upstream-failure gate looks only at the results from the last such run on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub starts_pipeline: bool,
    /// A human summary, secrets redacted.
    pub msg: String,
    /// What was done (or in check mode, what would be done), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Before/after of every file that changed (or would change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<FileDiff>,
    /// Things a sysadmin should know that did not stop the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The findings of a `verify` verb.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckItem>,
}

/// What changed in one file: a unified diff of the content (secrets already redacted) and the
/// owner/mode change. The document carries the diff, not both whole versions, so a result for a
/// 2000-line redis.conf stays a few lines long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDiff {
    pub path: String,
    /// Unified diff of the content (3 lines of context); empty when only owner or mode change.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// Owner and mode before and after, when they change, e.g. `0:0 0644`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<AttributeDiff>,
}

/// Owner and mode before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeDiff {
    pub before: String,
    pub after: String,
}

impl FileDiff {
    /// Builds the diff of two versions of a file.
    pub fn between(path: &str, before: &str, after: &str, attributes: Option<AttributeDiff>) -> FileDiff {
        let diff = if before == after {
            String::new()
        } else {
            similar::TextDiff::from_lines(before, after)
                .unified_diff()
                .context_radius(3)
                .header(&format!("{path} (before)"), &format!("{path} (after)"))
                .to_string()
        };
        FileDiff {
            path: path.to_owned(),
            diff,
            attributes,
        }
    }

    /// The diff for humans: the content diff and a line for an owner/mode change.
    pub fn unified(&self) -> String {
        let mut text = self.diff.clone();
        if let Some(attributes) = &self.attributes {
            text.push_str(&format!(
                "{}: owner and mode {} -> {}\n",
                self.path, attributes.before, attributes.after
            ));
        }
        text
    }
}

/// One finding of the read-only `verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckItem {
    /// What was checked, e.g. `server encoding`.
    pub name: String,
    pub status: CheckStatus,
    pub message: String,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warning,
    Failure,
}
