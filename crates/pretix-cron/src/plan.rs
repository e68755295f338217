//! `plan(desired, state) -> Plan`: what `apply` will do, as a value. Pure.

use std::path::PathBuf;

use pretix_site::fs::{CurrentFile, FilePlan, FileSpec, plan_file};
use pretix_site::sections::CronScheduler;

use crate::render;
use crate::settings::Desired;

/// What is on the host now, as far as pretix-cron cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub cron_file: Option<CurrentFile>,
    pub timer_file: Option<CurrentFile>,
    pub service_file: Option<CurrentFile>,
    /// `timers.target.wants/<timer>` exists: `systemctl enable` was run.
    pub timer_enabled: bool,
}

/// One step of a plan, in the order `apply` performs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `systemd-analyze verify` of the timer and service before either is written.
    VerifyUnits {
        timer_name: String,
        timer: String,
        service_name: String,
        service: String,
    },
    /// Create or replace a file (or fix its owner and mode).
    WriteFile { spec: FileSpec, plan: FilePlan },
    /// Remove a file pretix-cron wrote for the other scheduler.
    RemoveFile { path: PathBuf },
    /// `systemctl <args>`.
    Systemctl(Vec<String>),
}

impl Step {
    /// The step for humans, as `--check` lists it.
    pub fn describe(&self) -> String {
        match self {
            Step::VerifyUnits { .. } => "verify the timer and service with systemd-analyze verify".to_owned(),
            Step::WriteFile { spec, plan } => {
                let what = match plan {
                    FilePlan::Create => "create",
                    FilePlan::FixAttributes => "fix owner/mode of",
                    FilePlan::Replace | FilePlan::Unchanged => "update",
                };
                format!("{what} {}", spec.path.display())
            }
            Step::RemoveFile { path } => format!("remove {}", path.display()),
            Step::Systemctl(args) => format!("systemctl {}", args.join(" ")),
        }
    }
}

/// The plan: its steps, and what the sysadmin should know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// The cron.d file as it should be: root 0644 (cron skips a job file others can write).
pub fn cron_spec(desired: &Desired) -> FileSpec {
    FileSpec::new(&desired.cron_file, render::cron_file(desired))
        .owner(0, 0)
        .mode(0o644)
}

pub fn timer_spec(desired: &Desired) -> FileSpec {
    FileSpec::new(desired.timer_file(), render::timer_unit(desired))
        .owner(0, 0)
        .mode(0o644)
}

pub fn service_spec(desired: &Desired) -> FileSpec {
    FileSpec::new(desired.service_file(), render::service_unit(desired))
        .owner(0, 0)
        .mode(0o644)
}

fn ours(file: Option<&CurrentFile>) -> bool {
    file.is_some_and(|file| render::is_ours(&file.content))
}

/// The steps that bring the host from `state` to `desired`.
pub fn plan(desired: &Desired, state: &State) -> Plan {
    let mut plan = Plan::default();
    match desired.scheduler {
        CronScheduler::Cron => {
            let spec = cron_spec(desired);
            let file_plan = plan_file(state.cron_file.as_ref(), &spec);
            if file_plan.is_change() {
                // A hand-written job file (the guide's) is replaced, and kept as a backup.
                let backup = state.cron_file.is_some() && !ours(state.cron_file.as_ref());
                plan.steps.push(Step::WriteFile {
                    spec: spec.backup(backup),
                    plan: file_plan,
                });
            }
            let timer_ours = ours(state.timer_file.as_ref());
            let service_ours = ours(state.service_file.as_ref());
            if timer_ours || state.timer_enabled {
                plan.steps.push(Step::Systemctl(vec![
                    "disable".to_owned(),
                    "--now".to_owned(),
                    desired.timer_name(),
                ]));
            }
            if timer_ours {
                plan.steps.push(Step::RemoveFile {
                    path: desired.timer_file(),
                });
            }
            if service_ours {
                plan.steps.push(Step::RemoveFile {
                    path: desired.service_file(),
                });
            }
            if timer_ours || service_ours {
                plan.steps.push(Step::Systemctl(vec!["daemon-reload".to_owned()]));
            }
            for (file, path) in [
                (&state.timer_file, desired.timer_file()),
                (&state.service_file, desired.service_file()),
            ] {
                if file.is_some() && !ours(file.as_ref()) {
                    plan.warnings.push(format!(
                        "{} exists and was not written by pretix-cron, so it is left alone; if it runs pretix cron \
                         too, the job runs twice: remove it",
                        path.display()
                    ));
                }
            }
        }
        CronScheduler::Timer => {
            let timer = timer_spec(desired);
            let service = service_spec(desired);
            let timer_plan = plan_file(state.timer_file.as_ref(), &timer);
            let service_plan = plan_file(state.service_file.as_ref(), &service);
            let content_changes = [&timer_plan, &service_plan]
                .iter()
                .any(|file_plan| matches!(file_plan, FilePlan::Create | FilePlan::Replace));
            if content_changes {
                plan.steps.push(Step::VerifyUnits {
                    timer_name: desired.timer_name(),
                    timer: render::timer_unit(desired),
                    service_name: desired.service_name(),
                    service: render::service_unit(desired),
                });
            }
            for (file, spec, file_plan) in [
                (&state.service_file, service, service_plan),
                (&state.timer_file, timer, timer_plan),
            ] {
                if file_plan.is_change() {
                    let backup = file.is_some() && !ours(file.as_ref());
                    plan.steps.push(Step::WriteFile {
                        spec: spec.backup(backup),
                        plan: file_plan,
                    });
                }
            }
            if content_changes {
                plan.steps.push(Step::Systemctl(vec!["daemon-reload".to_owned()]));
            }
            if !state.timer_enabled {
                plan.steps.push(Step::Systemctl(vec![
                    "enable".to_owned(),
                    "--now".to_owned(),
                    desired.timer_name(),
                ]));
            } else if content_changes {
                // A running timer takes a new OnCalendar= on restart (the service is not started).
                plan.steps
                    .push(Step::Systemctl(vec!["restart".to_owned(), desired.timer_name()]));
            }
            // The cron file goes only once the timer is in place, so no run is lost in between.
            if ours(state.cron_file.as_ref()) {
                plan.steps.push(Step::RemoveFile {
                    path: desired.cron_file.clone(),
                });
            } else if state.cron_file.is_some() {
                plan.warnings.push(format!(
                    "{} exists and was not written by pretix-cron, so it is left alone; if it runs pretix cron too, \
                     the job runs twice: remove it",
                    desired.cron_file.display()
                ));
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretix_site::Document;
    use serde_json::json;

    fn desired(document: serde_json::Value) -> Desired {
        crate::settings::resolve(&Document::from_value(document).expect("document")).expect("valid")
    }

    fn written(spec: &FileSpec) -> CurrentFile {
        CurrentFile {
            content: spec.content.clone(),
            uid: 0,
            gid: 0,
            mode: 0o644,
        }
    }

    fn described(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(Step::describe).collect()
    }

    #[test]
    fn a_fresh_host_gets_the_cron_file() {
        let plan = plan(&desired(json!({})), &State::default());
        assert_eq!(described(&plan), ["create /etc/cron.d/pretix"]);
    }

    #[test]
    fn a_converged_host_has_nothing_to_do() {
        let cron = desired(json!({}));
        let state = State {
            cron_file: Some(written(&cron_spec(&cron))),
            ..State::default()
        };
        assert!(plan(&cron, &state).is_empty());

        let timer = desired(json!({"cron": {"scheduler": "timer"}}));
        let state = State {
            timer_file: Some(written(&timer_spec(&timer))),
            service_file: Some(written(&service_spec(&timer))),
            timer_enabled: true,
            ..State::default()
        };
        assert!(plan(&timer, &state).is_empty());
    }

    #[test]
    fn the_guides_hand_written_file_is_replaced_with_a_backup() {
        let cron = desired(json!({}));
        let state = State {
            cron_file: Some(CurrentFile {
                content: b"15,45 * * * * root /usr/bin/docker exec pretix.service pretix cron\n".to_vec(),
                uid: 0,
                gid: 0,
                mode: 0o644,
            }),
            ..State::default()
        };
        let plan = plan(&cron, &state);
        assert!(matches!(&plan.steps[..], [Step::WriteFile { spec, plan: FilePlan::Replace }] if spec.backup));
    }

    #[test]
    fn a_group_writable_cron_file_is_fixed() {
        let cron = desired(json!({}));
        let mut file = written(&cron_spec(&cron));
        file.mode = 0o664;
        let plan = plan(
            &cron,
            &State {
                cron_file: Some(file),
                ..State::default()
            },
        );
        assert_eq!(described(&plan), ["fix owner/mode of /etc/cron.d/pretix"]);
    }

    #[test]
    fn a_fresh_timer_is_verified_written_loaded_and_enabled() {
        let plan = plan(&desired(json!({"cron": {"scheduler": "timer"}})), &State::default());
        assert_eq!(
            described(&plan),
            [
                "verify the timer and service with systemd-analyze verify",
                "create /etc/systemd/system/pretix-cron.service",
                "create /etc/systemd/system/pretix-cron.timer",
                "systemctl daemon-reload",
                "systemctl enable --now pretix-cron.timer",
            ]
        );
    }

    #[test]
    fn a_new_schedule_restarts_the_enabled_timer() {
        let old = desired(json!({"cron": {"scheduler": "timer"}}));
        let new = desired(json!({"cron": {"scheduler": "timer", "schedule": "*/5 * * * *"}}));
        let state = State {
            timer_file: Some(written(&timer_spec(&old))),
            service_file: Some(written(&service_spec(&old))),
            timer_enabled: true,
            ..State::default()
        };
        assert_eq!(
            described(&plan(&new, &state)),
            [
                "verify the timer and service with systemd-analyze verify",
                "update /etc/systemd/system/pretix-cron.timer",
                "systemctl daemon-reload",
                "systemctl restart pretix-cron.timer",
            ]
        );
    }

    #[test]
    fn switching_to_the_timer_removes_our_cron_file_last() {
        let cron = desired(json!({}));
        let timer = desired(json!({"cron": {"scheduler": "timer"}}));
        let state = State {
            cron_file: Some(written(&cron_spec(&cron))),
            ..State::default()
        };
        let steps = described(&plan(&timer, &state));
        assert_eq!(steps.last().map(String::as_str), Some("remove /etc/cron.d/pretix"));
    }

    #[test]
    fn switching_back_to_cron_disables_and_removes_our_timer() {
        let cron = desired(json!({}));
        let timer = desired(json!({"cron": {"scheduler": "timer"}}));
        let state = State {
            timer_file: Some(written(&timer_spec(&timer))),
            service_file: Some(written(&service_spec(&timer))),
            timer_enabled: true,
            ..State::default()
        };
        assert_eq!(
            described(&plan(&cron, &state)),
            [
                "create /etc/cron.d/pretix",
                "systemctl disable --now pretix-cron.timer",
                "remove /etc/systemd/system/pretix-cron.timer",
                "remove /etc/systemd/system/pretix-cron.service",
                "systemctl daemon-reload",
            ]
        );
    }

    #[test]
    fn files_someone_else_wrote_are_left_alone_with_a_warning() {
        let timer = desired(json!({"cron": {"scheduler": "timer"}}));
        let state = State {
            cron_file: Some(CurrentFile {
                content: b"15,45 * * * * root /usr/bin/docker exec pretix.service pretix cron\n".to_vec(),
                uid: 0,
                gid: 0,
                mode: 0o644,
            }),
            ..State::default()
        };
        let plan = plan(&timer, &state);
        assert!(!described(&plan).iter().any(|step| step.starts_with("remove")));
        assert!(plan.warnings[0].contains("the job runs twice"), "{:?}", plan.warnings);
    }
}
