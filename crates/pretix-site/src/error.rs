//! The one error type that crosses a tool's boundary, and the exit-code table.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success, changed or not (the JSON says which) |
//! | 1 | the operation failed; a JSON failure object still goes to stdout |
//! | 2 | bad usage or bad input; nothing was changed |

use std::fmt;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the operation failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad usage or bad input, nothing changed.
pub const EXIT_BAD_INPUT: i32 = 2;

/// Why a tool run did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The input is wrong; nothing was changed. `field` is the JSON path of the culprit.
    #[error("{field}: {message}")]
    Input { field: String, message: String },
    /// The operation failed (a server down, a write refused, ...).
    #[error("{0:#}")]
    Failed(anyhow::Error),
    /// A verb that is not built yet.
    #[error("{what} is not implemented yet")]
    NotImplemented { what: String },
}

impl ToolError {
    pub fn input(field: impl Into<String>, message: impl fmt::Display) -> Self {
        ToolError::Input {
            field: field.into(),
            message: message.to_string(),
        }
    }

    pub fn failed(message: impl fmt::Display) -> Self {
        ToolError::Failed(anyhow::anyhow!("{message}"))
    }

    pub fn not_implemented(what: impl Into<String>) -> Self {
        ToolError::NotImplemented { what: what.into() }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            ToolError::Input { .. } => EXIT_BAD_INPUT,
            ToolError::Failed(_) | ToolError::NotImplemented { .. } => EXIT_FAILED,
        }
    }
}

impl From<anyhow::Error> for ToolError {
    fn from(error: anyhow::Error) -> Self {
        // An input error wrapped in context stays an input error, so its exit code stays 2.
        match error.downcast::<ToolError>() {
            Ok(tool_error) => tool_error,
            Err(error) => ToolError::Failed(error),
        }
    }
}

/// Turns the error of `serde_path_to_error` into an input error naming the JSON path and,
/// for an unknown field, the field that was probably meant.
pub fn from_serde_error(prefix: &str, error: serde_path_to_error::Error<serde_json::Error>) -> ToolError {
    let inner = error.path().to_string();
    let field = match (prefix.is_empty(), inner.as_str()) {
        (true, _) => inner.clone(),
        (false, ".") => prefix.to_owned(),
        (false, _) => format!("{prefix}.{inner}"),
    };
    let message = error.into_inner().to_string();
    let message = strip_serde_position(&message);
    let message = match suggest_from_unknown_field_message(&message) {
        Some(suggestion) => format!("{message}; did you mean `{suggestion}`?"),
        None => message,
    };
    ToolError::Input { field, message }
}

fn strip_serde_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// serde says "unknown field `form`, expected one of `from`, `host`": pick the closest.
fn suggest_from_unknown_field_message(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    closest(unknown, candidates.iter().copied())
}

/// The candidate closest to `word`, when it is close enough to be what was meant.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|left, right| left.0.total_cmp(&right.0))
        .map(|(_, candidate)| candidate.to_owned())
}
