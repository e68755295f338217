//! Secrets travel through the document by reference to a root-only file, never in plain text.
//! The plaintext lives in a `Secret`, whose `Debug` and `Display` never show it, and every
//! secret a run reads or makes is registered with the run's `Redactor`, which scrubs it from
//! every human message, diff and log line.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ToolError;
use crate::fs::{FileSpec, Root};

/// A reference to a secret: the path of a file holding it (one line; surrounding whitespace is
/// stripped, as pretix does for `FILE__` variables).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Absolute path of a root-only file (mode 0600 or stricter) holding the secret.
    pub secret_file: PathBuf,
}

/// By hand, so that the error for a plaintext password given where a reference belongs never
/// repeats the value (serde's own message would: `invalid type: string "hunter2"`).
impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Reference {
            secret_file: PathBuf,
        }
        let value = serde_json::Value::deserialize(deserializer)?;
        if !value.is_object() {
            return Err(serde::de::Error::custom(
                "a secret is given as a reference {\"secret_file\": \"/absolute/path\"} to a root-only file, \
                 never as a plain value (the value is not repeated here): put it in a file with mode 0600",
            ));
        }
        let reference: Reference = serde_json::from_value(value).map_err(serde::de::Error::custom)?;
        Ok(SecretRef {
            secret_file: reference.secret_file,
        })
    }
}

impl SecretRef {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SecretRef {
            secret_file: path.into(),
        }
    }
}

/// A secret's plaintext. It cannot be printed by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The plaintext, for the few places that must have it (a SCRAM computation, a login,
    /// the rendered pretix.cfg).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A strong random password: 32 characters from an alphabet that needs no quoting in a
    /// URL, an INI file, a shell or a libpq connection string (about 190 bits).
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        let mut rng = rand::rng();
        let text: String = (0..32)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Secret(text)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(********)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("********")
    }
}

/// Replaces every known secret in text with `********`.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<Secret>,
}

impl Redactor {
    pub const MASK: &'static str = "********";

    pub fn register(&mut self, secret: &Secret) {
        // Very short values would mask unrelated text and are refused at validation anyway.
        if secret.0.len() >= 4 && !self.secrets.contains(secret) {
            self.secrets.push(secret.clone());
            // Longest first, so a secret that contains another is masked whole.
            self.secrets.sort_by_key(|known| std::cmp::Reverse(known.0.len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut redacted = text.to_owned();
        for secret in &self.secrets {
            if redacted.contains(&secret.0) {
                redacted = redacted.replace(&secret.0, Self::MASK);
            }
        }
        redacted
    }

    /// Redacts every string inside a JSON value.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => *text = self.redact(text),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|item| self.redact_json(item)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|item| self.redact_json(item)),
            _ => {}
        }
    }
}

/// Reads a secret file, refusing one that other users could read.
pub fn read_secret(root: &Root, reference: &SecretRef, field: &str) -> Result<Secret, ToolError> {
    if !reference.secret_file.is_absolute() {
        return Err(ToolError::input(
            field,
            format!(
                "secret_file {} is relative: give an absolute path to a root-only file",
                reference.secret_file.display()
            ),
        ));
    }
    let path = root.host_path(&reference.secret_file);
    // One descriptor, opened without following a link, is both checked and read: the file
    // cannot be swapped between the check and the read.
    let opened =
        crate::fs::open_regular(&path).map_err(|error| secret_io_error(field, &reference.secret_file, error))?;
    let Some((mut file, metadata)) = opened else {
        return Err(ToolError::input(
            field,
            format!(
                "secret file {} does not exist: create it (root-only, mode 0600) or leave the reference out \
                 where the toolkit may generate the secret",
                reference.secret_file.display()
            ),
        ));
    };
    let euid = rustix::process::geteuid().as_raw();
    if metadata.uid() != 0 && metadata.uid() != euid {
        return Err(ToolError::input(
            field,
            format!(
                "secret file {} is owned by uid {}, not root: another user could change it; chown root: it",
                reference.secret_file.display(),
                metadata.uid()
            ),
        ));
    }
    if metadata.mode() & 0o077 != 0 {
        return Err(ToolError::input(
            field,
            format!(
                "secret file {} has mode {:04o}, other users could read it: chmod 0600 it",
                reference.secret_file.display(),
                metadata.mode() & 0o7777
            ),
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|error| secret_io_error(field, &reference.secret_file, error))?;
    let value = text.trim();
    validate_secret_text(value, field)?;
    Ok(Secret(value.to_owned()))
}

/// The checks every secret passes: pretix.cfg has one value per line, and a value that is too
/// short to be safe is refused.
pub fn validate_secret_text(value: &str, field: &str) -> Result<(), ToolError> {
    if value.is_empty() {
        return Err(ToolError::input(
            field,
            "the secret file is empty: put the secret on its first line",
        ));
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(ToolError::input(
            field,
            "the secret holds a line break or NUL byte: keep it on one line",
        ));
    }
    if value.chars().count() < 8 {
        return Err(ToolError::input(
            field,
            "the secret is shorter than 8 characters: use a longer one",
        ));
    }
    Ok(())
}

fn secret_io_error(field: &str, path: &Path, error: io::Error) -> ToolError {
    ToolError::input(field, format!("cannot read secret file {}: {error}", path.display()))
}

/// The file spec that stores a secret: root-only, owner root, mode 0600, newline-terminated.
/// Where a password comes from this run: the one rule for every password the toolkit may
/// generate (the database role's, Redis's in tcp mode).
#[derive(Debug, Clone)]
pub struct PasswordChoice {
    pub secret: Secret,
    pub reference: SecretRef,
    /// The secret file must be written (generated or rotated).
    pub write: bool,
    /// A rotation asked for a new one.
    pub rotate: bool,
}

/// Chooses a password, writing nothing: with `rotate`, a new strong random one (for `given`'s
/// file or `default_file`); else the file the document names (`given`, read and checked as
/// every secret file); else the file an earlier run generated at `default_file`; else a new one
/// for it. `field` names the document key in messages. The secret is registered for masking.
pub fn choose_password(
    ctx: &mut crate::run::Context,
    given: Option<&SecretRef>,
    default_file: &Path,
    rotate: bool,
    field: &str,
) -> Result<PasswordChoice, ToolError> {
    let reference = given.cloned().unwrap_or_else(|| SecretRef::new(default_file));
    crate::fs::validate_host_path(&reference.secret_file, &format!("{field}.secret_file"))?;
    let generated = |ctx: &mut crate::run::Context, reference: SecretRef, rotate: bool| {
        let secret = Secret::generate();
        ctx.register_secret(&secret);
        PasswordChoice {
            secret,
            reference,
            write: true,
            rotate,
        }
    };
    if rotate {
        return Ok(generated(ctx, reference, true));
    }
    let exists = given.is_some()
        || match std::fs::symlink_metadata(ctx.root().host_path(&reference.secret_file)) {
            Ok(_) => true,
            Err(error) if error.kind() == io::ErrorKind::NotFound => false,
            Err(error) => {
                return Err(ToolError::input(
                    field,
                    format!("cannot inspect {}: {error}", reference.secret_file.display()),
                ));
            }
        };
    if !exists {
        return Ok(generated(ctx, reference, false));
    }
    let secret = ctx.read_secret(&reference, field)?;
    Ok(PasswordChoice {
        secret,
        reference,
        write: false,
        rotate: false,
    })
}

pub fn secret_file_spec(path: &Path, secret: &Secret) -> FileSpec {
    FileSpec::new(path, format!("{}\n", secret.expose()))
        .owner(0, 0)
        .mode(0o600)
        .secret()
}
