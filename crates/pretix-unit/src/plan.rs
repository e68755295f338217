//! The plan: what to do with the units and containers, computed from the desired spec and the
//! state read from the host and the Docker daemon. Pure: [`plan`] takes both as data.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pretix_site::docker::{ContainerInfo, ImageInfo};
use pretix_site::sections::Supervisor;

use crate::spec::{Desired, Instance, SPEC_LABEL, spec_fingerprint};

/// What happens to the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStep {
    /// The host has it; nothing to fetch.
    Keep(ImageInfo),
    /// Fetch it from the registry.
    Pull { reason: &'static str },
}

/// Decides whether to pull: always for the `pull` verb, otherwise only when the host lacks it.
pub fn plan_image(local: Option<&ImageInfo>, always: bool) -> ImageStep {
    match (local, always) {
        (_, true) => ImageStep::Pull {
            reason: "pull requested",
        },
        (Some(image), false) => ImageStep::Keep(image.clone()),
        (None, false) => ImageStep::Pull {
            reason: "not on this host",
        },
    }
}

/// A unit file as found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitFile {
    pub text: Option<String>,
    /// `multi-user.target.wants/<unit>` exists (what `systemctl enable` makes).
    pub enabled: bool,
}

/// What the host has now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// The id of the image the containers should run; `None` when it is not known yet (a pull is
    /// planned in check mode).
    pub image_id: Option<String>,
    pub units: BTreeMap<String, UnitFile>,
    pub containers: BTreeMap<String, Option<ContainerInfo>>,
}

/// One step, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write (create or replace) a unit file; it was checked with `systemd-analyze verify`.
    WriteUnit {
        unit: String,
        path: PathBuf,
        text: String,
    },
    DaemonReload,
    Enable {
        unit: String,
    },
    /// `systemctl restart` (which also starts a stopped unit).
    Restart {
        unit: String,
        reason: String,
    },
    /// `docker` supervisor: create and start.
    Create {
        name: String,
    },
    /// `docker` supervisor: remove and create again from the spec, then start.
    Recreate {
        name: String,
        reason: String,
    },
    /// `docker` supervisor: start the existing container.
    Start {
        name: String,
    },
    /// Wait until the (re)started container runs and, when it serves HTTP, answers /healthcheck/.
    Wait {
        name: String,
    },
}

impl Step {
    /// The step in words, as the result lists it.
    pub fn describe(&self) -> String {
        match self {
            Step::WriteUnit { path, .. } => format!("write {}", path.display()),
            Step::DaemonReload => "systemctl daemon-reload".to_owned(),
            Step::Enable { unit } => format!("systemctl enable {unit}"),
            Step::Restart { unit, reason } => format!("systemctl restart {unit} ({reason})"),
            Step::Create { name } => format!("create and start container {name}"),
            Step::Recreate { name, reason } => format!("recreate container {name} ({reason})"),
            Step::Start { name } => format!("start container {name}"),
            Step::Wait { name } => format!("wait for {name} to run and answer"),
        }
    }
}

/// The steps that bring the host from `state` to `desired`. `units` holds the rendered unit
/// text of each container (systemd supervisor). `image` is the reference the containers run.
pub fn plan(desired: &Desired, image: &str, units: &BTreeMap<String, String>, state: &State) -> Vec<Step> {
    match desired.supervisor {
        Supervisor::Systemd => plan_systemd(desired, units, state),
        Supervisor::Docker => plan_docker(desired, image, state),
    }
}

fn plan_systemd(desired: &Desired, units: &BTreeMap<String, String>, state: &State) -> Vec<Step> {
    let mut writes = Vec::new();
    let mut later = Vec::new();
    for instance in &desired.instances {
        let found = state.units.get(&instance.unit).cloned().unwrap_or_default();
        let wanted = units.get(&instance.unit).cloned().unwrap_or_default();
        let unit_changed = found.text.as_deref() != Some(wanted.as_str());
        if unit_changed {
            writes.push(Step::WriteUnit {
                unit: instance.unit.clone(),
                path: desired.unit_dir.join(&instance.unit),
                text: wanted,
            });
        }
        if !found.enabled {
            later.push(Step::Enable {
                unit: instance.unit.clone(),
            });
        }
        let container = state.containers.get(&instance.unit).cloned().flatten();
        let reason = if found.text.is_none() {
            Some("new unit".to_owned())
        } else if unit_changed {
            Some("unit changed".to_owned())
        } else {
            container_reason(container.as_ref(), state.image_id.as_deref())
        };
        if let Some(reason) = reason {
            later.push(Step::Restart {
                unit: instance.unit.clone(),
                reason,
            });
            later.push(Step::Wait {
                name: instance.unit.clone(),
            });
        }
    }
    if !writes.is_empty() {
        writes.push(Step::DaemonReload);
    }
    writes.extend(later);
    writes
}

/// Why a container must be (re)started, from its state alone; `None` when it runs what it should.
fn container_reason(container: Option<&ContainerInfo>, image_id: Option<&str>) -> Option<String> {
    let Some(container) = container else {
        return Some("no container".to_owned());
    };
    if !container.running {
        return Some(format!("container {}", container.status));
    }
    match image_id {
        None => Some("new image".to_owned()),
        Some(id) if id != container.image_id => Some(format!(
            "image changed: {} -> {}",
            short_id(&container.image_id),
            short_id(id)
        )),
        Some(_) => None,
    }
}

fn plan_docker(desired: &Desired, image: &str, state: &State) -> Vec<Step> {
    let mut steps = Vec::new();
    for instance in &desired.instances {
        let container = state.containers.get(&instance.unit).cloned().flatten();
        let step = match container {
            None => Some(Step::Create {
                name: instance.unit.clone(),
            }),
            Some(container) => match spec_difference(instance, image, &container) {
                Some(reason) => Some(Step::Recreate {
                    name: instance.unit.clone(),
                    reason,
                }),
                None => match state.image_id.as_deref() {
                    None => Some(Step::Recreate {
                        name: instance.unit.clone(),
                        reason: "new image".to_owned(),
                    }),
                    Some(id) if id != container.image_id => Some(Step::Recreate {
                        name: instance.unit.clone(),
                        reason: format!("image changed: {} -> {}", short_id(&container.image_id), short_id(id)),
                    }),
                    Some(_) if !container.running => Some(Step::Start {
                        name: instance.unit.clone(),
                    }),
                    Some(_) => None,
                },
            },
        };
        if let Some(step) = step {
            steps.push(step);
            steps.push(Step::Wait {
                name: instance.unit.clone(),
            });
        }
    }
    steps
}

/// What differs between the spec and the container's label (which fields), or `None`.
pub fn spec_difference(instance: &Instance, image: &str, container: &ContainerInfo) -> Option<String> {
    let wanted = spec_fingerprint(&instance.container_spec(image));
    let Some(found) = container.labels.get(SPEC_LABEL) else {
        return Some("not made by pretix-unit".to_owned());
    };
    if *found == wanted {
        return None;
    }
    let parse =
        |text: &str| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).unwrap_or_default();
    let (wanted, found) = (parse(&wanted), parse(found));
    let fields: Vec<&str> = wanted
        .iter()
        .filter(|(key, value)| found.get(*key) != Some(*value))
        .map(|(key, _)| key.as_str())
        .collect();
    Some(if fields.is_empty() {
        "spec changed".to_owned()
    } else {
        format!("{} changed", fields.join(", "))
    })
}

/// `sha256:0123456789ab...` as the 12 hex digits Docker shows.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec;
    use crate::workers::HostFacts;
    use pretix_site::sections::{Container, Paths};

    fn desired(json: serde_json::Value) -> Desired {
        let container: Container = serde_json::from_value(json).unwrap_or_else(|error| panic!("{error}"));
        let host = HostFacts {
            memory_bytes: Some(8 << 30),
            cpus: 2,
        };
        spec::resolve(&container, &Paths::default(), None, &host).unwrap_or_else(|error| panic!("{error}"))
    }

    fn running(image_id: &str) -> ContainerInfo {
        ContainerInfo {
            running: true,
            status: "running".to_owned(),
            image_id: image_id.to_owned(),
            ..ContainerInfo::default()
        }
    }

    #[test]
    fn a_fresh_host_gets_unit_reload_enable_restart_and_a_wait() {
        let desired = desired(serde_json::json!({}));
        let units = BTreeMap::from([("pretix.service".to_owned(), "unit text".to_owned())]);
        let steps = plan(&desired, "img", &units, &State::default());
        let described: Vec<String> = steps.iter().map(Step::describe).collect();
        assert_eq!(
            described,
            vec![
                "write /etc/systemd/system/pretix.service",
                "systemctl daemon-reload",
                "systemctl enable pretix.service",
                "systemctl restart pretix.service (new unit)",
                "wait for pretix.service to run and answer",
            ]
        );
    }

    #[test]
    fn a_converged_host_gets_no_step_and_a_new_image_a_restart() {
        let desired = desired(serde_json::json!({}));
        let units = BTreeMap::from([("pretix.service".to_owned(), "unit text".to_owned())]);
        let mut state = State {
            image_id: Some("sha256:aaaaaaaaaaaaaaaa".to_owned()),
            units: BTreeMap::from([(
                "pretix.service".to_owned(),
                UnitFile {
                    text: Some("unit text".to_owned()),
                    enabled: true,
                },
            )]),
            containers: BTreeMap::from([("pretix.service".to_owned(), Some(running("sha256:aaaaaaaaaaaaaaaa")))]),
        };
        assert_eq!(plan(&desired, "img", &units, &state), Vec::new());
        state.image_id = Some("sha256:bbbbbbbbbbbbbbbb".to_owned());
        assert_eq!(
            plan(&desired, "img", &units, &state)[0],
            Step::Restart {
                unit: "pretix.service".to_owned(),
                reason: "image changed: aaaaaaaaaaaa -> bbbbbbbbbbbb".to_owned()
            }
        );
    }

    #[test]
    fn the_docker_supervisor_recreates_on_a_changed_spec_and_names_what_changed() {
        let before = desired(serde_json::json!({"supervisor": "docker"}));
        let after = desired(serde_json::json!({"supervisor": "docker", "env": {"PRETIX_MAIL_FROM": "a@b.example"}}));
        let spec = before.instances[0].container_spec("img");
        let mut container = running("sha256:aaaaaaaaaaaaaaaa");
        container.labels = spec.labels.clone();
        let state = State {
            image_id: Some("sha256:aaaaaaaaaaaaaaaa".to_owned()),
            units: BTreeMap::new(),
            containers: BTreeMap::from([("pretix.service".to_owned(), Some(container))]),
        };
        assert_eq!(plan(&before, "img", &BTreeMap::new(), &state), Vec::new());
        assert_eq!(
            plan(&after, "img", &BTreeMap::new(), &state)[0],
            Step::Recreate {
                name: "pretix.service".to_owned(),
                reason: "env changed".to_owned()
            }
        );
    }
}
