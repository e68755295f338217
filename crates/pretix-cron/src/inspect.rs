//! Reading the host: the files pretix-cron manages, whether the timer is enabled, and whether
//! the job's user exists and may use Docker.

use std::path::Path;

use anyhow::Context as _;
use pretix_site::fs::{CurrentFile, Root};
use pretix_site::sections::CronScheduler;
use pretix_site::users::lookup_user;
use pretix_site::{ToolError, users};

use crate::plan::State;
use crate::settings::{CRON_D, Desired};

/// Reads what `plan` compares against. A link or a hard-linked file where a managed file
/// belongs is an error (`fs::open_regular`).
pub fn state(root: &Root, desired: &Desired) -> Result<State, ToolError> {
    let read = |path: &Path| -> Result<Option<CurrentFile>, ToolError> {
        CurrentFile::read(&root.host_path(path))
            .with_context(|| format!("read {}", path.display()))
            .map_err(ToolError::from)
    };
    let wants = root.host_path(&desired.timer_wants_link());
    Ok(State {
        cron_file: read(&desired.cron_file)?,
        timer_file: read(&desired.timer_file())?,
        service_file: read(&desired.service_file())?,
        timer_enabled: wants.symlink_metadata().is_ok(),
    })
}

/// What must hold on the host before anything is written: cron (or systemd) is there, and the
/// job's user exists and can talk to Docker.
pub fn preflight(root: &Root, desired: &Desired) -> Result<(), ToolError> {
    match desired.scheduler {
        CronScheduler::Cron => {
            if !root.host_path(Path::new(CRON_D)).is_dir() {
                return Err(ToolError::failed(format!(
                    "{CRON_D} does not exist, so cron is not installed: apt-get install cron, or set \
                     cron.scheduler to timer for a systemd timer"
                )));
            }
        }
        CronScheduler::Timer => {
            if !root.host_path(&desired.unit_dir).is_dir() {
                return Err(ToolError::failed(format!(
                    "{} does not exist: is this a systemd host? Set cron.unit_dir to its unit directory, or use \
                     cron.scheduler cron",
                    desired.unit_dir.display()
                )));
            }
        }
    }
    check_user(root, &desired.user)
}

/// The user exists, and is root or in the `docker` group (the guide: "any user that can use
/// Docker"). Anything else would make every run fail with "permission denied" on the socket.
pub fn check_user(root: &Root, user: &str) -> Result<(), ToolError> {
    let entry = lookup_user(root, user).context("read /etc/passwd")?;
    let Some(entry) = entry else {
        return Err(ToolError::input(
            "cron.user",
            format!("there is no user {user} on this host: create it (and add it to the docker group), or use root"),
        ));
    };
    if entry.uid == 0 {
        return Ok(());
    }
    let docker_gid = users::lookup_group(root, "docker").context("read /etc/group")?;
    let in_group = docker_gid == Some(entry.gid) || group_members(root, "docker")?.iter().any(|member| member == user);
    if in_group {
        Ok(())
    } else {
        Err(ToolError::input(
            "cron.user",
            format!(
                "{user} is not root and not in the docker group, so docker exec would be refused: usermod -aG \
                 docker {user}, or use root"
            ),
        ))
    }
}

fn group_members(root: &Root, group: &str) -> Result<Vec<String>, ToolError> {
    let text = match std::fs::read_to_string(root.host_path(Path::new("/etc/group"))) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(ToolError::failed(format!("read /etc/group: {error}"))),
    };
    Ok(text
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 4 && fields[0] == group)
                .then(|| fields[3].split(',').map(str::to_owned).collect::<Vec<_>>())
        })
        .unwrap_or_default())
}
