//! What can go wrong while provisioning PostgreSQL for pretix.

use pretix_site::ToolError;

/// Why provisioning (or checking) the database did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionDatabaseError {
    /// The document holds a value that cannot be used; nothing was changed.
    #[error("{field}: {message}")]
    Input { field: String, message: String },
    /// The server could not be reached (down, wrong socket, refused).
    #[error("cannot connect to postgresql {target}: {reason}: is the server running? (systemctl status {service})")]
    Unreachable {
        target: String,
        reason: String,
        service: String,
    },
    /// The server answered but refused the login.
    #[error("postgresql {target} refused the login: {reason}: {fix}")]
    LoginRefused {
        target: String,
        reason: String,
        fix: String,
    },
    /// The superuser session could not be started or broke down.
    #[error("the superuser session {target} failed: {reason}")]
    Session { target: String, reason: String },
    /// A statement failed.
    #[error("{action}: {reason}")]
    Statement { action: String, reason: String },
    /// The server cannot host pretix as it is; the message says what to do.
    #[error("{0}")]
    Server(String),
    /// A config file could not be read or written.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// The pretix role could not log in after provisioning.
    #[error("{0}")]
    Verification(String),
}

impl ProvisionDatabaseError {
    pub fn input(field: impl Into<String>, message: impl Into<String>) -> Self {
        ProvisionDatabaseError::Input {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The shared checks of `pretix_site` (host paths, unit names) return `ToolError::Input`.
impl From<ToolError> for ProvisionDatabaseError {
    fn from(error: ToolError) -> Self {
        match error {
            ToolError::Input { field, message } => ProvisionDatabaseError::Input { field, message },
            other => ProvisionDatabaseError::Input {
                field: "(document)".to_owned(),
                message: other.to_string(),
            },
        }
    }
}

impl From<ProvisionDatabaseError> for ToolError {
    fn from(error: ProvisionDatabaseError) -> Self {
        match error {
            ProvisionDatabaseError::Input { field, message } => ToolError::Input { field, message },
            other => ToolError::Failed(anyhow::Error::new(other)),
        }
    }
}
