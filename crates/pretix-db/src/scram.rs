//! SCRAM-SHA-256 verifiers: made on the client (so no plaintext password ever reaches the
//! server, its logs or `pg_stat_statements`), and checked against the stored one without
//! reading any password back (RFC 5802 §3).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// What a stored `rolpassword` tells about whether a password must be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredPassword {
    /// A SCRAM verifier made from this very password.
    Matches,
    /// A SCRAM verifier made from another password.
    Differs,
    /// An md5 hash: replaced by a SCRAM verifier.
    Md5,
    /// No password at all.
    Missing,
    /// Something this tool does not know (or a verifier too costly to check): set it again.
    Unknown,
}

/// A verifier as `CREATE ROLE ... PASSWORD` stores it, computed here with a fresh random salt,
/// as psql's `\password` and libpq's `PQencryptPasswordConn` do.
pub fn make_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// Compares `password` with the stored `rolpassword`, never needing the plaintext of the
/// stored one.
pub fn check_stored(stored: Option<&str>, password: &str) -> StoredPassword {
    let Some(stored) = stored else {
        return StoredPassword::Missing;
    };
    if stored.starts_with("md5") && stored.len() == 35 {
        return StoredPassword::Md5;
    }
    let Some(verifier) = Verifier::parse(stored) else {
        return StoredPassword::Unknown;
    };
    match verifier.matches(password) {
        Some(true) => StoredPassword::Matches,
        Some(false) => StoredPassword::Differs,
        None => StoredPassword::Unknown,
    }
}

/// More iterations than this are not recomputed (a verifier made by hand with an absurd count
/// would stall the run); the password is set again instead.
const MAX_ITERATIONS: u32 = 1_000_000;

/// A parsed `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Verifier {
    fn parse(text: &str) -> Option<Verifier> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (iterations_and_salt, keys) = rest.split_once('$')?;
        let (iterations, salt) = iterations_and_salt.split_once(':')?;
        let (stored_key, server_key) = keys.split_once(':')?;
        let verifier = Verifier {
            iterations: iterations.parse().ok()?,
            salt: STANDARD.decode(salt).ok()?,
            stored_key: STANDARD.decode(stored_key).ok()?,
            server_key: STANDARD.decode(server_key).ok()?,
        };
        (verifier.iterations > 0 && verifier.stored_key.len() == 32 && verifier.server_key.len() == 32)
            .then_some(verifier)
    }

    /// `None` when the check cannot be made.
    fn matches(&self, password: &str) -> Option<bool> {
        if self.iterations > MAX_ITERATIONS {
            return None;
        }
        let salted = hi(&prepare(password), &self.salt, self.iterations)?;
        let server_key = hmac_sha256(&salted, b"Server Key")?;
        let client_key = hmac_sha256(&salted, b"Client Key")?;
        let stored_key = Sha256::digest(client_key);
        Some(
            constant_time_eq(&server_key, &self.server_key) & constant_time_eq(stored_key.as_slice(), &self.stored_key),
        )
    }
}

/// SASLprep the password the way the server and libpq do: when it fails (prohibited
/// characters), the raw bytes are used.
fn prepare(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(prepared) => prepared.into_owned().into_bytes(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

/// PBKDF2-HMAC-SHA256 with one output block: SCRAM's `Hi()`.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> Option<[u8; 32]> {
    let mac = Hmac::<Sha256>::new_from_slice(password).ok()?;
    let mut first = mac.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut previous: [u8; 32] = first.finalize().into_bytes().as_slice().try_into().ok()?;
    let mut result = previous;
    for _ in 1..iterations {
        let mut next = mac.clone();
        next.update(&previous);
        previous = next.finalize().into_bytes().as_slice().try_into().ok()?;
        for (byte, other) in result.iter_mut().zip(previous) {
            *byte ^= other;
        }
    }
    Some(result)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(message);
    mac.finalize().into_bytes().as_slice().try_into().ok()
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_verifier_matches_its_password_only() {
        for password in [
            "correct horse battery staple",
            "pässwörd ﬁ",
            "it's \\ \"quoted\"; DROP ROLE x",
        ] {
            let verifier = make_verifier(password);
            assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
            assert_eq!(check_stored(Some(&verifier), password), StoredPassword::Matches);
            assert_eq!(
                check_stored(Some(&verifier), &format!("{password}x")),
                StoredPassword::Differs
            );
        }
    }

    #[test]
    fn other_stored_forms_are_classified() {
        assert_eq!(check_stored(None, "x"), StoredPassword::Missing);
        assert_eq!(
            check_stored(Some("md5a3556571e93b0d20722ba62be61e8c2d"), "x"),
            StoredPassword::Md5
        );
        assert_eq!(
            check_stored(Some("SCRAM-SHA-256$x:y$z:w"), "x"),
            StoredPassword::Unknown
        );
        assert_eq!(check_stored(Some("plain text"), "x"), StoredPassword::Unknown);
    }

    /// Verifiers made by PostgreSQL 15 itself (`SET password_encryption = 'scram-sha-256';
    /// CREATE ROLE t PASSWORD '...'`, then `SELECT rolpassword FROM pg_authid`): the second one
    /// needs SASLprep (the ligature "ﬁ" is normalised to "fi") to match.
    #[test]
    fn verifiers_made_by_postgresql_match() {
        let pencil = "SCRAM-SHA-256$4096:+AdDqB6L9BAfaCDmaUmyag==$AqRTlv0qV7KijiA4roLV+JGoVFzWPqch2CibgV0yN74=:wlJjLIuA93wis4ULL5h3O/KgGudfqDAV/aDYQik2v8I=";
        assert_eq!(check_stored(Some(pencil), "pencil"), StoredPassword::Matches);
        assert_eq!(check_stored(Some(pencil), "Pencil"), StoredPassword::Differs);
        let unicode = "SCRAM-SHA-256$4096:gPhA9ZVveD8wEMUnJb+HwA==$4hQUthCM1Z/b9nBpNt6el/ENUAreYJZWjbTYsU42m+s=:WRgr7DC93Irm71DbYF1ilRKUfte3/MgAp/RWmg2HqEY=";
        assert_eq!(check_stored(Some(unicode), "pässwörd ﬁ"), StoredPassword::Matches);
        assert_eq!(check_stored(Some(unicode), "pässwörd fi"), StoredPassword::Matches);
        assert_eq!(check_stored(Some(unicode), "passwort fi"), StoredPassword::Differs);
    }
}
