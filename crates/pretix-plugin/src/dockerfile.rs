//! The Dockerfile in the guide's shape, the in-memory build context, and the content hash that
//! names the image.
//!
//! Without a CA bundle the Dockerfile is exactly the guide's five lines, with the base pinned:
//! `FROM <base>@<digest>`, `USER root`, `RUN pip3 install ...`, `USER pretixuser`,
//! `RUN cd /pretix/src && make production`. With `plugins.build_ca_bundle`, a build-only stage
//! that trusts the bundle fetches the wheels, and the image's own stage installs them with
//! `--no-index`: the bundle never reaches a layer of the image.

use sha2::{Digest, Sha256};

use crate::local::{ContextFile, LocalArtifact};

/// Where the CA bundle sits in the build context (build-only stage).
pub const CA_BUNDLE_PATH: &str = "pretix-toolkit/build-ca-bundle.crt";
const FETCH_SCRIPT_PATH: &str = "pretix-toolkit/fetch-wheels.py";
const FETCH_SCRIPT: &str = include_str!("fetch-wheels.py");

/// The base image, pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasePin {
    /// As the document names it (`pretix/standalone:stable`).
    pub reference: String,
    /// What `FROM` gets: `repository@sha256:...` (the registry digest pretix-unit pulled), or
    /// the image ID `sha256:...` of a base that never came from a registry.
    pub pinned: String,
}

/// One argument of the `pip3 install` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallItem {
    /// The requirement string, or the path of a local plugin inside the build.
    pub argument: String,
    /// The distribution name (normalized); with a CA bundle the image's stage installs local
    /// plugins by this name from the fetched wheels.
    pub name: String,
    pub local: bool,
}

/// Everything the build needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInputs {
    pub base: BasePin,
    pub items: Vec<InstallItem>,
    pub local: Vec<LocalArtifact>,
    /// The CA bundle's content, for the build-only stage.
    pub ca_bundle: Option<Vec<u8>>,
}

impl BuildInputs {
    pub fn dockerfile(&self) -> String {
        render(
            &self.base,
            &self.items,
            !self.local.is_empty(),
            self.ca_bundle.is_some(),
        )
    }

    /// The files of the build context, the Dockerfile first.
    pub fn context_files(&self) -> Vec<ContextFile> {
        let mut files = vec![ContextFile {
            path: "Dockerfile".to_owned(),
            content: self.dockerfile().into_bytes(),
            mode: 0o644,
        }];
        if let Some(bundle) = &self.ca_bundle {
            files.push(ContextFile {
                path: CA_BUNDLE_PATH.to_owned(),
                content: bundle.clone(),
                mode: 0o644,
            });
            files.push(ContextFile {
                path: FETCH_SCRIPT_PATH.to_owned(),
                content: FETCH_SCRIPT.as_bytes().to_vec(),
                mode: 0o644,
            });
        }
        for artifact in &self.local {
            files.extend(artifact.files.iter().cloned());
        }
        files
    }

    /// The content hash: the Dockerfile (base digest and plugin list included) and every file of
    /// the context except the CA bundle, which changes how pip downloads, not what it installs.
    pub fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"pretix-plugin image inputs v1\n");
        for file in self.context_files() {
            if file.path == CA_BUNDLE_PATH {
                continue;
            }
            hasher.update(file.path.as_bytes());
            hasher.update([0]);
            hasher.update(format!("{:o}", file.mode).as_bytes());
            hasher.update([0]);
            hasher.update(Sha256::digest(&file.content));
        }
        hex(&hasher.finalize())
    }

    /// The image tag: the first 20 hex digits of the content hash.
    pub fn tag(&self) -> String {
        self.content_hash()[..20].to_owned()
    }

    /// The context as an uncompressed tar, as the Docker API takes it.
    pub fn context_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut archive = tar::Builder::new(Vec::new());
        let mut directories: Vec<String> = Vec::new();
        for file in self.context_files() {
            // Explicit directory entries, so the directories inside the build are 0755 whatever
            // the daemon's umask.
            let mut parent = String::new();
            for part in file
                .path
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .map_or(&[][..], |(_, dirs)| dirs)
            {
                parent.push_str(part);
                parent.push('/');
                if !directories.contains(&parent) {
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    header.set_mtime(0);
                    header.set_cksum();
                    archive.append_data(&mut header, &parent, std::io::empty())?;
                    directories.push(parent.clone());
                }
            }
            let mut header = tar::Header::new_gnu();
            header.set_size(file.content.len() as u64);
            header.set_mode(file.mode);
            header.set_mtime(0);
            header.set_cksum();
            archive.append_data(&mut header, &file.path, file.content.as_slice())?;
        }
        archive.into_inner()
    }
}

/// The Dockerfile.
pub fn render(base: &BasePin, items: &[InstallItem], has_local: bool, ca_bundle: bool) -> String {
    let mut text = String::new();
    text.push_str("# The custom pretix image with plugins, made by pretix-plugin from the site document\n");
    text.push_str("# (plugins.packages). Do not edit: pretix-plugin apply rebuilds it whenever the base or the\n");
    text.push_str("# plugin list changes, as the guide asks after every pull of the base.\n");
    if base.pinned.starts_with("sha256:") {
        text.push_str(&format!(
            "# Base: {}, pinned by its image ID (it never came from a registry).\n",
            base.reference
        ));
    } else {
        text.push_str(&format!("# Base: {}, pinned to its registry digest.\n", base.reference));
    }
    let arguments: Vec<String> = items.iter().map(|item| quote(&item.argument)).collect();
    if ca_bundle {
        text.push_str("\n# Build-only stage: pip fetches the plugins, and what they need that the base lacks, as\n");
        text.push_str("# wheels, trusting plugins.build_ca_bundle. Only the wheels leave this stage.\n");
        text.push_str(&format!("FROM {} AS pretix-toolkit-fetch\n", base.pinned));
        text.push_str("USER root\n");
        text.push_str(&format!("COPY {CA_BUNDLE_PATH} /tmp/pretix-toolkit-ca.crt\n"));
        text.push_str(&format!(
            "COPY {FETCH_SCRIPT_PATH} /tmp/pretix-toolkit-fetch-wheels.py\n"
        ));
        if has_local {
            text.push_str("COPY pretix-toolkit/plugins/ /tmp/pretix-toolkit-plugins/\n");
        }
        text.push_str(&format!(
            "RUN PIP_CERT=/tmp/pretix-toolkit-ca.crt python3 /tmp/pretix-toolkit-fetch-wheels.py {}\n",
            arguments.join(" ")
        ));
        text.push_str("\n# The image: the guide's steps, installing from the fetched wheels only.\n");
        text.push_str(&format!("FROM {}\n", base.pinned));
        text.push_str("USER root\n");
        text.push_str("COPY --from=pretix-toolkit-fetch /tmp/pretix-toolkit-wheels/ /tmp/pretix-toolkit-wheels/\n");
        let by_name: Vec<String> = items
            .iter()
            .map(|item| {
                if item.local {
                    quote(&item.name)
                } else {
                    quote(&item.argument)
                }
            })
            .collect();
        text.push_str(&format!(
            "RUN pip3 install --no-cache-dir --no-index --find-links /tmp/pretix-toolkit-wheels {} \\\n && rm -rf /tmp/pretix-toolkit-wheels\n",
            by_name.join(" ")
        ));
    } else {
        text.push_str(&format!("FROM {}\n", base.pinned));
        text.push_str("USER root\n");
        if has_local {
            text.push_str("COPY pretix-toolkit/plugins/ /tmp/pretix-toolkit-plugins/\n");
            text.push_str(&format!(
                "RUN pip3 install --no-cache-dir {} \\\n && rm -rf /tmp/pretix-toolkit-plugins\n",
                arguments.join(" ")
            ));
        } else {
            text.push_str(&format!("RUN pip3 install --no-cache-dir {}\n", arguments.join(" ")));
        }
    }
    text.push_str("USER pretixuser\n");
    text.push_str("RUN cd /pretix/src && make production\n");
    text
}

/// Single quotes for the shell of `RUN`. Every argument was validated to hold none (and no
/// newline or backslash), so quoting is enough to keep `<`, `>`, `*` and `[` literal.
fn quote(argument: &str) -> String {
    format!("'{argument}'")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pinned: &str, arguments: &[&str]) -> BuildInputs {
        BuildInputs {
            base: BasePin {
                reference: "pretix/standalone:stable".to_owned(),
                pinned: pinned.to_owned(),
            },
            items: arguments
                .iter()
                .map(|argument| InstallItem {
                    argument: (*argument).to_owned(),
                    name: (*argument).to_owned(),
                    local: false,
                })
                .collect(),
            local: Vec::new(),
            ca_bundle: None,
        }
    }

    #[test]
    fn the_hash_follows_the_base_and_the_list_but_not_the_ca_bundle() {
        let base = inputs("pretix/standalone@sha256:aa", &["pretix-pages==1.6.4"]);
        let mut other_base = base.clone();
        other_base.base.pinned = "pretix/standalone@sha256:bb".to_owned();
        let other_order = inputs("pretix/standalone@sha256:aa", &["b", "a"]);
        let order = inputs("pretix/standalone@sha256:aa", &["a", "b"]);
        assert_ne!(base.tag(), other_base.tag());
        assert_ne!(order.tag(), other_order.tag());
        assert_eq!(base.tag(), base.clone().tag());
        assert_eq!(base.tag().len(), 20);
        let mut one_bundle = base.clone();
        one_bundle.ca_bundle = Some(b"one".to_vec());
        let mut other_bundle = base.clone();
        other_bundle.ca_bundle = Some(b"other".to_vec());
        assert_eq!(one_bundle.tag(), other_bundle.tag());
    }

    #[test]
    fn the_context_holds_the_dockerfile() {
        let tar = inputs("sha256:aa", &["a"]).context_tar().unwrap_or_default();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| entry.path().ok().map(|path| path.display().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(names, vec!["Dockerfile".to_owned()]);
    }
}
