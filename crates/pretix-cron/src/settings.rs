//! The `cron` section and the container it targets, validated into `Desired` before anything
//! is read from the host or changed. Pure.

use std::path::{Path, PathBuf};

use pretix_site::fs::validate_host_path;
use pretix_site::sections::{Container, ContainerRole, Cron, CronScheduler, Supervisor};
use pretix_site::{Document, ToolError};

use crate::schedule::Schedule;

/// Where cron looks for job files; a file anywhere else never runs.
pub const CRON_D: &str = "/etc/cron.d";

/// Everything pretix-cron will write or call, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub scheduler: CronScheduler,
    pub schedule: Schedule,
    pub user: String,
    pub cron_file: PathBuf,
    pub timer_unit: String,
    pub unit_dir: PathBuf,
    pub docker: PathBuf,
    pub target: Target,
}

impl Desired {
    /// `<unit_dir>/<timer_unit>.timer`.
    pub fn timer_file(&self) -> PathBuf {
        self.unit_dir.join(format!("{}.timer", self.timer_unit))
    }

    /// `<unit_dir>/<timer_unit>.service`.
    pub fn service_file(&self) -> PathBuf {
        self.unit_dir.join(format!("{}.service", self.timer_unit))
    }

    /// The symlink `systemctl enable` makes for the timer.
    pub fn timer_wants_link(&self) -> PathBuf {
        self.unit_dir
            .join("timers.target.wants")
            .join(format!("{}.timer", self.timer_unit))
    }

    pub fn timer_name(&self) -> String {
        format!("{}.timer", self.timer_unit)
    }

    pub fn service_name(&self) -> String {
        format!("{}.service", self.timer_unit)
    }
}

/// The container the job runs in, from the `container` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The container's name: its systemd unit's name (`docker run --name %n`).
    pub name: String,
    pub role: ContainerRole,
    /// Who keeps it running: with systemd the job's service orders itself after the container's unit.
    pub supervisor: Supervisor,
    /// Whether any container runs the task worker (celery), which does what pretix cron queues.
    pub runs_task_worker: bool,
    /// `container.docker_host`, passed to the docker client as `DOCKER_HOST`.
    pub docker_host: Option<String>,
}

/// Reads and checks the `cron` and `container` sections.
pub fn resolve(document: &Document) -> Result<Desired, ToolError> {
    let cron: Cron = document.section("cron")?;
    let container: Container = document.section("container")?;
    let target = target(&container)?;
    let schedule = Schedule::parse(&cron.schedule)?;
    check_user_name(&cron.user)?;
    check_cron_file(&cron.file)?;
    check_unit_name(&cron.timer_unit, &target.name)?;
    validate_host_path(&cron.unit_dir, "cron.unit_dir")?;
    check_docker_path(&cron.docker)?;
    Ok(Desired {
        scheduler: cron.scheduler,
        schedule,
        user: cron.user,
        cron_file: cron.file,
        timer_unit: cron.timer_unit,
        unit_dir: cron.unit_dir,
        docker: cron.docker,
        target,
    })
}

/// The container the job goes to: the `container` section's task container (the first that
/// runs the task worker, `taskworker` or `all`, else the first), the same rule pretix-unit uses
/// for one-off commands. The container is named after its unit (`--name %n`). Any running role
/// can run `pretix cron` (the entrypoint runs it before the role matters), but a `command`
/// container has exited once its command is done, so nothing can exec into it.
pub fn target(container: &Container) -> Result<Target, ToolError> {
    let field = if container.instances.is_empty() {
        "container.unit"
    } else {
        "container.instances"
    };
    let Some(instance) = container.task_container() else {
        return Err(ToolError::input(
            "container.instances",
            "names no container: list at least one, or remove instances for the guide's single pretix.service",
        ));
    };
    if instance.role == ContainerRole::Command {
        return Err(ToolError::input(
            field,
            format!(
                "{} runs a one-off command and then exits, so pretix cron cannot run in it: add a container with the                  role taskworker, all or web",
                instance.unit
            ),
        ));
    }
    check_container_name(&instance.unit, field)?;
    let docker_host = container
        .docker_host
        .as_deref()
        .map(|host| check_docker_host(host).map(|()| host.to_owned()))
        .transpose()?;
    Ok(Target {
        name: instance.container_name().to_owned(),
        role: instance.role,
        supervisor: container.supervisor,
        docker_host,
        runs_task_worker: container
            .resolved_instances()
            .iter()
            .any(|instance| matches!(instance.role, ContainerRole::All | ContainerRole::Taskworker)),
    })
}

/// Docker's rule for container names (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`). It also keeps the name
/// free of what cron (`%`), the shell and systemd (`%`, spaces, quotes) would read specially.
pub fn check_container_name(name: &str, field: &str) -> Result<(), ToolError> {
    let mut chars = name.chars();
    let valid = name.len() >= 2
        && chars.next().is_some_and(|first| first.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(ToolError::input(
            field,
            format!(
                "{:?} cannot name the container: the container is named after its unit (docker run --name %n), \
                 and Docker allows only letters, digits, _ . - (starting with a letter or digit); e.g. \
                 pretix.service",
                name.escape_debug().to_string()
            ),
        ))
    }
}

/// The daemon as pretix-unit's Docker seam accepts it, and nothing a cron line or a unit file
/// would read specially (`%` is a systemd specifier in `Environment=`).
fn check_docker_host(host: &str) -> Result<(), ToolError> {
    pretix_site::docker::validate_endpoint(host).map_err(|problem| {
        ToolError::input(
            "container.docker_host",
            format!("{:?}: {problem}", host.escape_debug().to_string()),
        )
    })?;
    if host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | ':' | '.' | '_' | '-'))
    {
        Ok(())
    } else {
        Err(ToolError::input(
            "container.docker_host",
            format!(
                "{:?}: the job's DOCKER_HOST may hold only letters, digits and / : . _ - (it goes into a cron file \
                 and a unit file); e.g. unix:///var/run/docker.sock",
                host.escape_debug().to_string()
            ),
        ))
    }
}

/// A user name as `useradd` accepts it: no `:` or newline could end up in the cron line.
fn check_user_name(user: &str) -> Result<(), ToolError> {
    let mut chars = user.chars();
    let valid = (1..=32).contains(&user.len())
        && chars
            .next()
            .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(ToolError::input(
            "cron.user",
            format!(
                "{:?} is not a user name: lowercase letters, digits, _ and -, starting with a letter or _ (e.g. root)",
                user.escape_debug().to_string()
            ),
        ))
    }
}

/// cron reads only /etc/cron.d, and Debian's cron skips a file whose name has a dot or any
/// character but letters, digits, `_` and `-` (run-parts' rule): such a job would silently never
/// run, which is exactly the failure this tool exists to prevent.
fn check_cron_file(file: &Path) -> Result<(), ToolError> {
    validate_host_path(file, "cron.file")?;
    if file.parent() != Some(Path::new(CRON_D)) {
        return Err(ToolError::input(
            "cron.file",
            format!(
                "{} is not in {CRON_D}: cron reads job files only from there; e.g. /etc/cron.d/pretix",
                file.display()
            ),
        ));
    }
    let name = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Err(ToolError::input(
            "cron.file",
            format!(
                "the file name {name:?} would be skipped by cron, which ignores names with a dot or other characters \
                 than letters, digits, _ and -: e.g. /etc/cron.d/pretix"
            ),
        ));
    }
    Ok(())
}

/// A unit name without suffix, and never the container's own unit (pretix.service would be
/// overwritten by the job's service).
fn check_unit_name(unit: &str, container_unit: &str) -> Result<(), ToolError> {
    if unit.ends_with(".timer") || unit.ends_with(".service") {
        return Err(ToolError::input(
            "cron.timer_unit",
            format!(
                "{unit:?}: give the name without .timer or .service; both units are named after it (e.g. pretix-cron)"
            ),
        ));
    }
    let mut chars = unit.chars();
    let valid = (1..=200).contains(&unit.len())
        && chars
            .next()
            .is_some_and(|first| first.is_ascii_alphanumeric() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(ToolError::input(
            "cron.timer_unit",
            format!(
                "{:?} is not a unit name: letters, digits, _ . -, starting with a letter, digit or _ (e.g. \
                 pretix-cron)",
                unit.escape_debug().to_string()
            ),
        ));
    }
    if format!("{unit}.service") == container_unit {
        return Err(ToolError::input(
            "cron.timer_unit",
            format!(
                "{unit:?} would make the job's service {container_unit}, the unit of the pretix container itself: \
                 choose another name, e.g. pretix-cron"
            ),
        ));
    }
    Ok(())
}

/// The docker client's path goes into a cron line and an ExecStart: no `%` (a newline to cron,
/// a specifier to systemd), spaces or quotes.
fn check_docker_path(docker: &Path) -> Result<(), ToolError> {
    validate_host_path(docker, "cron.docker")?;
    let text = docker.to_string_lossy();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+'))
    {
        Ok(())
    } else {
        Err(ToolError::input(
            "cron.docker",
            format!(
                "{:?}: the path of the docker client may hold only letters, digits and / . _ - + (it goes into a \
                 cron line and a unit file); e.g. /usr/bin/docker",
                text.escape_debug().to_string()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired(document: serde_json::Value) -> Result<Desired, ToolError> {
        resolve(&Document::from_value(document).expect("document"))
    }

    fn refused(document: serde_json::Value) -> (String, String) {
        match desired(document) {
            Err(ToolError::Input { field, message }) => (field, message),
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn the_guides_defaults() {
        let desired = desired(json!({})).expect("defaults are valid");
        assert_eq!(desired.scheduler, CronScheduler::Cron);
        assert_eq!(desired.cron_file, Path::new("/etc/cron.d/pretix"));
        assert_eq!(desired.target.name, "pretix.service");
        assert_eq!(desired.target.role, ContainerRole::All);
        assert_eq!(desired.timer_file(), Path::new("/etc/systemd/system/pretix-cron.timer"));
        assert_eq!(
            desired.timer_wants_link(),
            Path::new("/etc/systemd/system/timers.target.wants/pretix-cron.timer")
        );
    }

    #[test]
    fn the_container_name_follows_the_unit() {
        let desired = desired(json!({"container": {"unit": "tickets.service", "role": "taskworker"}})).expect("valid");
        assert_eq!(desired.target.name, "tickets.service");
        assert_eq!(desired.target.role, ContainerRole::Taskworker);
    }

    #[test]
    fn with_several_containers_the_job_goes_to_the_task_worker() {
        let scaled = desired(json!({"container": {"instances": [
            {"unit": "pretix-web.service", "role": "web", "published_port": 8345},
            {"unit": "pretix-worker.service", "role": "taskworker"}
        ]}}))
        .expect("valid");
        assert_eq!(scaled.target.name, "pretix-worker.service");
        assert_eq!(scaled.target.role, ContainerRole::Taskworker);
        assert!(scaled.target.runs_task_worker);
        let web_only = desired(json!({"container": {"role": "web"}})).expect("valid");
        assert_eq!(web_only.target.name, "pretix.service");
        assert!(!web_only.target.runs_task_worker);
    }

    #[test]
    fn a_one_off_command_container_cannot_take_the_job() {
        let (field, message) = refused(json!({"container": {"role": "command", "command": ["migrate"]}}));
        assert_eq!(field, "container.unit");
        assert!(message.contains("runs a one-off command and then exits"), "{message}");
        let (field, _) = refused(json!({"container": {"instances": [
            {"unit": "pretix-bad name.service", "role": "taskworker"}
        ]}}));
        assert_eq!(field, "container.instances");
    }

    #[test]
    fn container_names_that_docker_or_cron_would_misread_are_refused() {
        for unit in [
            "pretix@web.service",
            "-pretix",
            "p",
            "pretix service",
            "pretix%n",
            "pre\ntix",
        ] {
            let (field, message) = refused(json!({"container": {"unit": unit}}));
            assert_eq!(field, "container.unit", "{unit}");
            assert!(message.contains("Docker allows only letters"), "{message}");
        }
    }

    #[test]
    fn a_docker_host_cannot_inject_into_the_line() {
        let (field, _) = refused(json!({"container": {"docker_host": "unix:///run/docker.sock\nMAILTO=x"}}));
        assert_eq!(field, "container.docker_host");
        let (field, _) = refused(json!({"container": {"docker_host": "/run/docker.sock"}}));
        assert_eq!(field, "container.docker_host");
        let ok = desired(json!({"container": {"docker_host": "unix:///run/docker.sock"}})).expect("valid");
        assert_eq!(ok.target.docker_host.as_deref(), Some("unix:///run/docker.sock"));
    }

    #[test]
    fn cron_files_cron_would_never_read_are_refused() {
        let (field, message) = refused(json!({"cron": {"file": "/etc/cron.d/pretix.cron"}}));
        assert_eq!(field, "cron.file");
        assert!(message.contains("would be skipped by cron"), "{message}");
        let (_, message) = refused(json!({"cron": {"file": "/etc/cron.daily/pretix"}}));
        assert!(message.contains("is not in /etc/cron.d"), "{message}");
        let (_, message) = refused(json!({"cron": {"file": "/etc/cron.d/../crontab"}}));
        assert!(message.contains("`..`"), "{message}");
        let (_, message) = refused(json!({"cron": {"file": "cron.d/pretix"}}));
        assert!(message.contains("not absolute"), "{message}");
    }

    #[test]
    fn users_are_names_only() {
        for user in ["root root", "Root", "", "a:b", "x\ny", "-rf"] {
            let (field, _) = refused(json!({"cron": {"user": user}}));
            assert_eq!(field, "cron.user", "{user:?}");
        }
    }

    #[test]
    fn timer_unit_names_are_checked_and_never_the_containers() {
        let (_, message) = refused(json!({"cron": {"timer_unit": "pretix-cron.timer"}}));
        assert!(message.contains("without .timer or .service"), "{message}");
        let (_, message) = refused(json!({"cron": {"timer_unit": "pretix"}}));
        assert!(message.contains("the unit of the pretix container itself"), "{message}");
        let (_, message) = refused(json!({"cron": {"timer_unit": "a/b"}}));
        assert!(message.contains("is not a unit name"), "{message}");
    }

    #[test]
    fn the_docker_path_cannot_carry_cron_or_systemd_syntax() {
        for docker in ["/usr/bin/docker %n", "/usr/bin/dock%er", "/opt/my docker", "docker"] {
            let (field, _) = refused(json!({"cron": {"docker": docker}}));
            assert_eq!(field, "cron.docker", "{docker}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_path() {
        let (field, message) = refused(json!({"cron": {"shedule": "* * * * *"}}));
        assert_eq!(field, "cron.shedule");
        assert!(message.contains("did you mean `schedule`?"), "{message}");
        let (field, _) = refused(json!({"cron": {"schedule": ["15", "45"]}}));
        assert_eq!(field, "cron.schedule");
        let (field, _) = refused(json!({"cron": {"scheduler": "anacron"}}));
        assert_eq!(field, "cron.scheduler");
    }
}
