//! Looking up system users and groups in /etc/passwd and /etc/group (under `--root` too),
//! without linking to NSS.

use std::path::Path;

use crate::fs::Root;

/// A user's uid, gid and home, from `passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub fn lookup_user(root: &Root, name: &str) -> std::io::Result<Option<UserEntry>> {
    let text = match std::fs::read_to_string(root.host_path(Path::new("/etc/passwd"))) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    Ok(text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 4 && fields[0] == name).then(|| UserEntry {
            name: name.to_owned(),
            uid: fields[2].parse().unwrap_or(u32::MAX),
            gid: fields[3].parse().unwrap_or(u32::MAX),
        })
    }))
}

/// A group's gid, from `group`.
pub fn lookup_group(root: &Root, name: &str) -> std::io::Result<Option<u32>> {
    let text = match std::fs::read_to_string(root.host_path(Path::new("/etc/group"))) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    Ok(text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 3 && fields[0] == name)
            .then(|| fields[2].parse().ok())
            .flatten()
    }))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
