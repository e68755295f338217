//! The plan: pure, from what the document asks for and what the host has.

use pretix_site::sections::BuiltImage;

/// What the host has, as far as the plan cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The base, pinned (`repository@sha256:...` or an image ID).
    pub base: String,
    /// The image ID carrying the content-hash tag already, if any.
    pub existing: Option<String>,
    /// What the document says was built and verified last time.
    pub recorded: Option<BuiltImage>,
}

/// Why the image is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildReason {
    /// Nothing was built for this site yet.
    FirstBuild,
    /// The base has a new digest: the plugins must be installed on the current pretix.
    NewBase { previous: String, current: String },
    /// The plugin list (or a local plugin's content) changed.
    PluginsChanged { previous: String },
    /// The recorded image is gone from this host.
    Missing { previous: String },
}

impl BuildReason {
    pub fn describe(&self) -> String {
        match self {
            BuildReason::FirstBuild => "no custom image yet".to_owned(),
            BuildReason::NewBase { previous, current } => {
                format!("the base changed from {previous} to {current}: the plugins must run on the current pretix")
            }
            BuildReason::PluginsChanged { previous } => format!("the plugin list changed since {previous}"),
            BuildReason::Missing { previous } => format!("{previous} is no longer on this host"),
        }
    }
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Build `image` (repository:tag) from the rendered Dockerfile.
    Build { image: String, reason: BuildReason },
    /// Ask pretix in a throwaway container of `image` which plugins it loaded.
    Verify { image: String },
    /// Put the verified image into the document (`plugins.built`) for pretix-unit.
    Record { image: String },
    /// No plugins listed any more: remove `plugins.built`, so pretix-unit runs the base again.
    Forget { previous: String },
}

/// The steps, in order; empty when everything is as the document asks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// `image` is the content-hash reference (`mypretix:<hash>`); `None` when no plugin is listed.
pub fn plan(image: Option<&str>, state: &State) -> Plan {
    let Some(image) = image else {
        return Plan {
            steps: state
                .recorded
                .as_ref()
                .map(|recorded| Step::Forget {
                    previous: recorded.image.clone(),
                })
                .into_iter()
                .collect(),
        };
    };
    let recorded_matches = state.recorded.as_ref().is_some_and(|recorded| {
        recorded.image == image && recorded.base == state.base && Some(&recorded.id) == state.existing.as_ref()
    });
    let mut steps = Vec::new();
    if state.existing.is_none() {
        let reason = match &state.recorded {
            None => BuildReason::FirstBuild,
            Some(recorded) if recorded.base != state.base => BuildReason::NewBase {
                previous: recorded.base.clone(),
                current: state.base.clone(),
            },
            Some(recorded) if recorded.image != image => BuildReason::PluginsChanged {
                previous: recorded.image.clone(),
            },
            Some(recorded) => BuildReason::Missing {
                previous: recorded.image.clone(),
            },
        };
        steps.push(Step::Build {
            image: image.to_owned(),
            reason,
        });
    }
    if !recorded_matches {
        steps.push(Step::Verify {
            image: image.to_owned(),
        });
        steps.push(Step::Record {
            image: image.to_owned(),
        });
    }
    Plan { steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(image: &str, id: &str, base: &str) -> Option<BuiltImage> {
        Some(BuiltImage {
            image: image.to_owned(),
            id: id.to_owned(),
            base: base.to_owned(),
            loaded_plugins: vec!["pretix_pages".to_owned()],
        })
    }

    fn state(existing: Option<&str>, recorded: Option<BuiltImage>) -> State {
        State {
            base: "base@sha256:new".to_owned(),
            existing: existing.map(str::to_owned),
            recorded,
        }
    }

    #[test]
    fn the_same_inputs_build_nothing() {
        let state = state(Some("sha256:1"), recorded("mypretix:h", "sha256:1", "base@sha256:new"));
        assert_eq!(plan(Some("mypretix:h"), &state), Plan::default());
    }

    #[test]
    fn a_new_base_rebuilds_and_says_so() {
        let state = state(None, recorded("mypretix:old", "sha256:1", "base@sha256:old"));
        let steps = plan(Some("mypretix:h"), &state).steps;
        assert_eq!(
            steps[0],
            Step::Build {
                image: "mypretix:h".to_owned(),
                reason: BuildReason::NewBase {
                    previous: "base@sha256:old".to_owned(),
                    current: "base@sha256:new".to_owned()
                }
            }
        );
        assert_eq!(steps.len(), 3);
    }

    #[test]
    fn a_changed_list_rebuilds() {
        let state = state(None, recorded("mypretix:old", "sha256:1", "base@sha256:new"));
        assert!(matches!(
            plan(Some("mypretix:h"), &state).steps[0],
            Step::Build {
                reason: BuildReason::PluginsChanged { .. },
                ..
            }
        ));
    }

    #[test]
    fn an_image_built_but_not_recorded_is_verified_not_rebuilt() {
        let steps = plan(Some("mypretix:h"), &state(Some("sha256:1"), None)).steps;
        assert_eq!(
            steps,
            vec![
                Step::Verify {
                    image: "mypretix:h".to_owned()
                },
                Step::Record {
                    image: "mypretix:h".to_owned()
                }
            ]
        );
    }

    #[test]
    fn an_empty_list_forgets_the_image() {
        let state = state(None, recorded("mypretix:h", "sha256:1", "base@sha256:new"));
        assert_eq!(
            plan(None, &state).steps,
            vec![Step::Forget {
                previous: "mypretix:h".to_owned()
            }]
        );
        assert_eq!(plan(None, &self::state(None, None)), Plan::default());
    }
}
