//! The `plugins` section, validated: every requirement string, every local path and the image
//! repository are checked here, before anything is read from the host or sent to Docker.

use std::path::PathBuf;

use pretix_site::ToolError;
use pretix_site::sections::{PluginPackage, Plugins};

use crate::requirement::{self, Requirement};

/// The most plugins one image takes (one `pip3 install` line; a longer list is a mistake).
const MAX_PACKAGES: usize = 100;

/// What the document asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub packages: Vec<Package>,
    /// The custom image's repository (`mypretix`); the tag is the content hash.
    pub repository: String,
    pub ca_bundle: Option<PathBuf>,
}

/// One plugin, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Package {
    Requirement(Requirement),
    Local {
        /// Its position in `plugins.packages`, for messages and for its place in the context.
        index: usize,
        path: PathBuf,
        /// The normalized name given in the document, if any.
        name: Option<String>,
    },
}

impl Desired {
    /// Checks the whole section; the first problem is an input error naming its field.
    pub fn from_section(section: &Plugins) -> Result<Desired, ToolError> {
        if section.packages.len() > MAX_PACKAGES {
            return Err(ToolError::input(
                "plugins.packages",
                format!(
                    "lists {} plugins, at most {MAX_PACKAGES} are accepted",
                    section.packages.len()
                ),
            ));
        }
        let mut packages = Vec::with_capacity(section.packages.len());
        for (index, package) in section.packages.iter().enumerate() {
            let field = format!("plugins.packages[{index}]");
            packages.push(match package {
                PluginPackage::Requirement(text) => Package::Requirement(
                    requirement::parse(text)
                        .map_err(|error| ToolError::input(&field, format!("{:?} {error}", text)))?,
                ),
                PluginPackage::Local(local) => {
                    pretix_site::fs::validate_host_path(&local.path, &format!("{field}.path"))?;
                    if local.path.file_name().is_none() {
                        return Err(ToolError::input(
                            format!("{field}.path"),
                            "names no file or directory: give the wheel or the source directory itself",
                        ));
                    }
                    let name = match &local.name {
                        Some(name) => {
                            requirement::validate_name(name)
                                .map_err(|error| ToolError::input(format!("{field}.name"), error))?;
                            Some(requirement::normalize_name(name))
                        }
                        None => None,
                    };
                    Package::Local {
                        index,
                        path: local.path.clone(),
                        name,
                    }
                }
            });
        }
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for (index, package) in packages.iter().enumerate() {
            let name = match package {
                Package::Requirement(requirement) => Some(requirement.name.as_str()),
                Package::Local { name, .. } => name.as_deref(),
            };
            if let Some(name) = name {
                if let Some((_, first)) = seen.iter().find(|(other, _)| *other == name) {
                    return Err(ToolError::input(
                        format!("plugins.packages[{index}]"),
                        format!("{name} is listed already as plugins.packages[{first}]: list each plugin once"),
                    ));
                }
                seen.push((name, index));
            }
        }
        let mut local_paths: Vec<&PathBuf> = Vec::new();
        for package in &packages {
            if let Package::Local { index, path, .. } = package {
                if local_paths.contains(&path) {
                    return Err(ToolError::input(
                        format!("plugins.packages[{index}].path"),
                        format!("{} is listed twice: list each plugin once", path.display()),
                    ));
                }
                local_paths.push(path);
            }
        }
        validate_repository(&section.image)?;
        if let Some(bundle) = &section.build_ca_bundle {
            pretix_site::fs::validate_host_path(bundle, "plugins.build_ca_bundle")?;
        }
        Ok(Desired {
            packages,
            repository: section.image.clone(),
            ca_bundle: section.build_ca_bundle.clone(),
        })
    }
}

/// A Docker repository name without tag or digest, as the Docker seam's `ImageRef` validates
/// image references (the one rule for every tool).
pub fn validate_repository(repository: &str) -> Result<(), ToolError> {
    let field = "plugins.image";
    let reference = pretix_site::docker::ImageRef::parse(repository)
        .map_err(|message| ToolError::input(field, format!("{repository:?} {message}")))?;
    if reference.tag.is_some() || reference.digest.is_some() {
        return Err(ToolError::input(
            field,
            format!(
                "{repository:?} has a tag or digest: give the repository only ({}); pretix-plugin tags it with a \
                 content hash",
                reference.repository
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_as_docker_names_them() {
        for good in [
            "mypretix",
            "example.org/pretix/custom",
            "localhost:5000/mypretix",
            "my_pretix",
            "my--pretix",
        ] {
            assert!(validate_repository(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "MyPretix",
            "mypretix:latest",
            "mypretix@sha256:00",
            "-mypretix",
            "my pretix",
            "my/../pretix",
            "mypretix\n",
            "my.-pretix",
            "host:99999/x",
        ] {
            assert!(validate_repository(bad).is_err(), "{bad:?}");
        }
    }
}
