//! Reading the world: the local plugins and the CA bundle from the host, the base image and the
//! custom image from Docker. Every input error surfaces here before Docker is asked anything.

use pretix_site::docker::{Docker, ImageRef};
use pretix_site::sections::{Container, Plugins};
use pretix_site::{Context, Document, ToolError};

use crate::desired::{Desired, Package};
use crate::dockerfile::{BasePin, BuildInputs, InstallItem};
use crate::local::{self, LocalArtifact};
use crate::plan::State;

/// What the document asks for, checked and read.
pub struct Request {
    pub section: Plugins,
    pub container: Container,
    pub desired: Desired,
    pub base: ImageRef,
    pub local: Vec<LocalArtifact>,
    pub ca_bundle: Option<Vec<u8>>,
}

impl Request {
    /// The distribution names of the listed plugins, in order.
    pub fn names(&self) -> Vec<String> {
        let mut local = self.local.iter();
        self.desired
            .packages
            .iter()
            .filter_map(|package| match package {
                Package::Requirement(requirement) => Some(requirement.name.clone()),
                Package::Local { .. } => local.next().map(|artifact| artifact.name.clone()),
            })
            .collect()
    }

    /// The build's inputs on `base`.
    pub fn inputs(&self, base: BasePin) -> BuildInputs {
        let mut local = self.local.iter();
        let items = self
            .desired
            .packages
            .iter()
            .filter_map(|package| match package {
                Package::Requirement(requirement) => Some(InstallItem {
                    argument: requirement.text.clone(),
                    name: requirement.name.clone(),
                    local: false,
                }),
                Package::Local { .. } => local.next().map(|artifact| InstallItem {
                    argument: artifact.install_argument(),
                    name: artifact.name.clone(),
                    local: true,
                }),
            })
            .collect();
        BuildInputs {
            base,
            items,
            local: self.local.clone(),
            ca_bundle: self.ca_bundle.clone(),
        }
    }
}

/// Validates the sections and reads the local plugins and the CA bundle (exit 2 on any problem).
pub fn request(ctx: &Context, document: &Document) -> Result<Request, ToolError> {
    let section: Plugins = document.section("plugins")?;
    let desired = Desired::from_section(&section)?;
    let container: Container = document.section("container")?;
    let base = ImageRef::parse(&container.image).map_err(|message| ToolError::input("container.image", message))?;
    if let Some(endpoint) = &container.docker_host {
        pretix_site::docker::validate_endpoint(endpoint)
            .map_err(|message| ToolError::input("container.docker_host", message))?;
    }
    let mut local = Vec::new();
    for package in &desired.packages {
        if let Package::Local { index, path, name } = package {
            local.push(local::read(ctx.root(), *index, path, name.as_deref())?);
        }
    }
    // Local plugins have their names only now: the same plugin twice is refused here too.
    let mut local_names = local.iter();
    let mut seen: Vec<(usize, String)> = Vec::new();
    for (index, package) in desired.packages.iter().enumerate() {
        let name = match package {
            Package::Requirement(requirement) => requirement.name.clone(),
            Package::Local { .. } => match local_names.next() {
                Some(artifact) => artifact.name.clone(),
                None => continue,
            },
        };
        if let Some((first, _)) = seen.iter().find(|(_, other)| *other == name) {
            return Err(ToolError::input(
                format!("plugins.packages[{index}]"),
                format!("{name} is listed already as plugins.packages[{first}]: list each plugin once"),
            ));
        }
        seen.push((index, name));
    }
    let ca_bundle = match &desired.ca_bundle {
        Some(path) => Some(local::read_file(ctx.root(), path, "plugins.build_ca_bundle")?),
        None => None,
    };
    Ok(Request {
        section,
        container,
        desired,
        base,
        local,
        ca_bundle,
    })
}

/// Connects to the daemon the document names.
pub fn connect(container: &Container) -> Result<Docker, ToolError> {
    Ok(Docker::connect(container.docker_host.as_deref())?)
}

/// Where the base stands on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseLookup {
    Pinned(BasePin),
    /// Not on this host yet (pretix-unit pulls it, but `xtask install` runs pretix-plugin first):
    /// pull `reference` (a digest reference when the digest is known).
    NeedsPull {
        reference: String,
    },
}

/// The base, pinned: the digest in `container.image`, else the digest pretix-unit recorded when
/// it pulled (`container.image_digest`), else what the local image says (its registry digest, or
/// its ID for a base never pulled from a registry).
pub fn base_pin(docker: Option<&Docker>, request: &Request) -> Result<BaseLookup, ToolError> {
    let reference = request.container.image.clone();
    let recorded = request
        .base
        .digest
        .clone()
        .or_else(|| request.container.image_digest.clone());
    if let Some(digest) = recorded {
        let pinned = request.base.pinned(&digest);
        if let Some(docker) = docker
            && docker.inspect_image(&pinned)?.is_none()
        {
            return Ok(BaseLookup::NeedsPull { reference: pinned });
        }
        return Ok(BaseLookup::Pinned(BasePin { reference, pinned }));
    }
    let Some(docker) = docker else {
        return Err(ToolError::failed(
            "--offline: the document holds no base digest (container.image_digest): run pretix-unit apply first, or \
             plan without --offline",
        ));
    };
    let Some(image) = docker.inspect_image(&reference)? else {
        return Ok(BaseLookup::NeedsPull { reference });
    };
    let pinned = match image.digest_for(&request.base.repository) {
        Some(digest) => request.base.pinned(&digest),
        None => image.id,
    };
    Ok(BaseLookup::Pinned(BasePin { reference, pinned }))
}

/// Pulls the base (with progress on stderr) and pins it to the digest the registry gave.
pub fn pull_base(ctx: &mut Context, docker: &Docker, request: &Request, reference: &str) -> Result<BasePin, ToolError> {
    let image = ImageRef::parse(reference).map_err(|message| ToolError::input("container.image", message))?;
    ctx.changed(format!(
        "pull {reference}, the base of the custom image (not on this host yet)"
    ));
    let mut progress = if ctx.options().output == pretix_site::run::Output::Stderr
        && ctx.verbosity() >= pretix_site::run::Verbosity::Normal
    {
        pretix_site::docker::StderrProgress::new("pretix-plugin")
    } else {
        pretix_site::docker::StderrProgress::hidden()
    };
    let pulled = docker.pull(&image, &mut progress)?;
    Ok(BasePin {
        reference: request.container.image.clone(),
        pinned: request.base.pinned(&pulled.digest),
    })
}

/// The host's side of the plan.
pub fn state(docker: Option<&Docker>, base: &BasePin, image: &str, request: &Request) -> Result<State, ToolError> {
    let recorded = request.section.built.clone();
    let existing = match docker {
        Some(docker) => docker.inspect_image(image)?.map(|info| info.id),
        // Offline: trust the record for the image it names.
        None => recorded
            .as_ref()
            .filter(|recorded| recorded.image == image)
            .map(|recorded| recorded.id.clone()),
    };
    Ok(State {
        base: base.pinned.clone(),
        existing,
        recorded,
    })
}

/// `repository:hash`.
pub fn image_reference(repository: &str, inputs: &BuildInputs) -> String {
    format!("{repository}:{}", inputs.tag())
}
