//! Reading the host: the site file, the link that enables it, the certificate and key, the
//! ACME webroot. Nothing here changes anything.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use pretix_site::fs::{CurrentFile, Root};

use crate::cert::{self, CertInfo};
use crate::settings::Desired;

/// What is on the host now.
#[derive(Debug, Clone)]
pub struct State {
    pub site: Option<CurrentFile>,
    pub link: LinkState,
    pub certificate: CertState,
    pub webroot_exists: bool,
}

/// The entry in `sites-enabled`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Absent,
    /// A link to our site file.
    ToSite,
    /// A link to something else: somebody else's site under our name.
    Elsewhere(PathBuf),
    /// A file or directory, not a link.
    NotALink,
}

/// The certificate and key files.
#[derive(Debug, Clone)]
pub enum CertState {
    /// This file does not exist (the certificate is named first when both are missing).
    Missing {
        field: &'static str,
        path: PathBuf,
    },
    /// They exist but are unusable; the message says why.
    Unusable {
        field: &'static str,
        path: PathBuf,
        problem: String,
    },
    Present {
        info: CertInfo,
        key_mode: u32,
    },
}

pub fn read(root: &Root, desired: &Desired) -> io::Result<State> {
    let site_path = root.host_path(&desired.site_file);
    let site = CurrentFile::read(&site_path)
        .map_err(|error| io::Error::new(error.kind(), format!("read {}: {error}", desired.site_file.display())))?;
    Ok(State {
        site,
        link: read_link(root, desired)?,
        certificate: read_certificate(root, desired),
        webroot_exists: root.host_path(&desired.acme_webroot).is_dir(),
    })
}

fn read_link(root: &Root, desired: &Desired) -> io::Result<LinkState> {
    let path = root.host_path(&desired.site_link);
    match std::fs::symlink_metadata(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(LinkState::Absent),
        Err(error) => Err(io::Error::new(
            error.kind(),
            format!("inspect {}: {error}", desired.site_link.display()),
        )),
        Ok(metadata) if metadata.file_type().is_symlink() => {
            let target = std::fs::read_link(&path)?;
            // `ln -s ../sites-available/pretix` is as good as the absolute link.
            let absolute = if target.is_absolute() {
                target.clone()
            } else {
                lexical_join(&desired.sites_enabled, &target)
            };
            if absolute == desired.site_file {
                Ok(LinkState::ToSite)
            } else {
                Ok(LinkState::Elsewhere(target))
            }
        }
        Ok(_) => Ok(LinkState::NotALink),
    }
}

/// Reads both files. certbot's files in /etc/letsencrypt/live are links into ../archive, so
/// links are followed here: these files are only read, never written through.
fn read_certificate(root: &Root, desired: &Desired) -> CertState {
    let read = |field: &'static str, path: &Path| -> Result<(Vec<u8>, std::fs::Metadata), CertState> {
        let host = root.host_path(path);
        match std::fs::read(&host).and_then(|bytes| Ok((bytes, std::fs::metadata(&host)?))) {
            Ok(found) => Ok(found),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Err(CertState::Missing {
                field,
                path: path.to_path_buf(),
            }),
            Err(error) => Err(CertState::Unusable {
                field,
                path: path.to_path_buf(),
                problem: format!("cannot be read: {error}"),
            }),
        }
    };
    let (certificate, _) = match read("proxy.certificate", &desired.certificate) {
        Ok(found) => found,
        Err(state) => return state,
    };
    let (key, key_metadata) = match read("proxy.certificate_key", &desired.certificate_key) {
        Ok(found) => found,
        Err(state) => return state,
    };
    match cert::inspect(&certificate, &key) {
        Ok(info) => CertState::Present {
            info,
            key_mode: key_metadata.mode() & 0o7777,
        },
        Err(problem) => {
            let field = if problem.contains("key") {
                "proxy.certificate_key"
            } else {
                "proxy.certificate"
            };
            let path = if field == "proxy.certificate" {
                desired.certificate.clone()
            } else {
                desired.certificate_key.clone()
            };
            CertState::Unusable { field, path, problem }
        }
    }
}

/// `base/relative` with `.` and `..` resolved by name, as the kernel resolves a relative link
/// whose directories are not links themselves.
fn lexical_join(base: &Path, relative: &Path) -> PathBuf {
    let mut joined = base.to_path_buf();
    for component in relative.components() {
        match component {
            std::path::Component::ParentDir => {
                joined.pop();
            }
            std::path::Component::Normal(name) => joined.push(name),
            _ => {}
        }
    }
    joined
}
