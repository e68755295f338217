//! What can go wrong while setting up Redis for pretix.

use pretix_site::ToolError;

/// Why setting up (or checking) Redis for pretix did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// The document holds a value that cannot be used; nothing was changed (exit 2).
    #[error("{field}: {message}")]
    Input { field: String, message: String },
    /// redis.conf is missing, unreadable or not a plain text file; nothing was changed.
    #[error("{path}: {message}")]
    ConfigFile { path: String, message: String },
    /// redis.conf as it is cannot serve pretix in the chosen mode; nothing was changed.
    #[error("{path}: {message}")]
    Conflict { path: String, message: String },
    /// The host cannot do what the document asks (an address that is not the host's, a port in
    /// use); nothing was changed.
    #[error("{0}")]
    Preflight(String),
    /// The group redis-server runs as (the socket's group) is not known on this host.
    #[error("{0}")]
    Group(String),
    /// redis-server did not answer (down, socket missing, refused, password refused).
    #[error("redis-server does not answer on {target}: {reason}: {fix}")]
    NotAnswering {
        target: String,
        reason: String,
        fix: String,
    },
    /// redis-server did not answer within the bounded wait after a restart.
    #[error("redis-server did not answer on {target} within {seconds}s after the restart: {reason}{rollback}")]
    RestartTimeout {
        target: String,
        seconds: u32,
        reason: String,
        service: String,
        /// `; the previous redis.conf is saved as ...` when a backup was made.
        rollback: String,
    },
    /// The server answered but is not what pretix needs (databases, socket mode, group).
    #[error("{0}")]
    Verification(String),
}

impl RedisSetupError {
    pub fn input(field: impl Into<String>, message: impl Into<String>) -> Self {
        RedisSetupError::Input {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The shared checks of `pretix_site` (host paths, unit names) return `ToolError::Input`.
impl From<ToolError> for RedisSetupError {
    fn from(error: ToolError) -> Self {
        match error {
            ToolError::Input { field, message } => RedisSetupError::Input { field, message },
            other => RedisSetupError::Input {
                field: "(document)".to_owned(),
                message: other.to_string(),
            },
        }
    }
}

impl From<RedisSetupError> for ToolError {
    fn from(error: RedisSetupError) -> Self {
        match error {
            RedisSetupError::Input { field, message } => ToolError::Input { field, message },
            other => ToolError::Failed(anyhow::Error::new(other)),
        }
    }
}
