//! The files pretix-cron writes: the cron.d file, or the timer and service pair. Pure.
//!
//! Every value that goes in here was checked in `settings` (names, paths, the schedule), so
//! nothing can start a new line, a cron `%` or a systemd specifier.

use pretix_site::sections::Supervisor;

use crate::settings::Desired;

/// The first line of every file pretix-cron writes; `apply` removes only files that carry it.
pub const MARKER: &str = "# Managed by pretix-cron (pretix toolkit)";

/// The PATH cron gives the job: Debian's /etc/crontab default.
pub const CRON_PATH: &str = "/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin";

/// The command the job runs, as words: `/usr/bin/docker exec <container> pretix cron`.
pub fn job_words(desired: &Desired) -> Vec<String> {
    vec![
        desired.docker.display().to_string(),
        "exec".to_owned(),
        desired.target.name.clone(),
        "pretix".to_owned(),
        "cron".to_owned(),
    ]
}

/// The cron.d file, in the guide's shape.
pub fn cron_file(desired: &Desired) -> String {
    let mut text = format!(
        "{MARKER}: written from the site document's cron and container sections;\n\
         # edit those and run pretix-cron apply again, changes made here are overwritten.\n\
         # pretix's periodic tasks (reminders, order expiry, cleanups) in the container {container}.\n\
         # Without this job pretix's dashboard says \"The cronjob component of pretix was not executed\".\n\
         # pretix-cron verify says when it last ran; pretix-cron run runs it now.\n\
         PATH={CRON_PATH}\n",
        container = desired.target.name,
    );
    if let Some(host) = &desired.target.docker_host {
        text.push_str(&format!("DOCKER_HOST={host}\n"));
    }
    text.push_str(&format!(
        "{} {} {}\n",
        desired.schedule.cron_fields(),
        desired.user,
        job_words(desired).join(" ")
    ));
    text
}

/// The service the timer starts: one run of `pretix cron`, its output in the journal.
pub fn service_unit(desired: &Desired) -> String {
    let mut text = format!(
        "{MARKER}: written from the site document's cron and container sections;\n\
         # edit those and run pretix-cron apply again, changes made here are overwritten.\n\
         [Unit]\n\
         Description=pretix periodic tasks (pretix cron) in the container {container}\n\
         After={after}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         User={user}\n",
        container = desired.target.name,
        after = match desired.target.supervisor {
            Supervisor::Systemd => format!("docker.service {}", desired.target.name),
            Supervisor::Docker => "docker.service".to_owned(),
        },
        user = desired.user,
    );
    if let Some(host) = &desired.target.docker_host {
        text.push_str(&format!("Environment=DOCKER_HOST={host}\n"));
    }
    text.push_str(&format!(
        "ExecStart={}\n\
         SyslogIdentifier={}\n",
        job_words(desired).join(" "),
        desired.timer_unit
    ));
    text
}

/// The timer: the same minutes as the cron schedule; `Persistent=true` makes up a run that was
/// missed while the host was off.
pub fn timer_unit(desired: &Desired) -> String {
    format!(
        "{MARKER}: written from the site document's cron and container sections;\n\
         # edit those and run pretix-cron apply again, changes made here are overwritten.\n\
         [Unit]\n\
         Description=pretix periodic tasks (pretix cron) on the schedule {schedule}\n\
         \n\
         [Timer]\n\
         # The cron schedule {schedule} as a calendar event; a run missed while the host was down\n\
         # is made up at boot (Persistent=true).\n\
         OnCalendar={calendar}\n\
         Persistent=true\n\
         Unit={service}\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        schedule = desired.schedule.cron_fields(),
        calendar = desired.schedule.on_calendar(),
        service = desired.service_name(),
    )
}

/// Whether a file on disk was written by pretix-cron.
pub fn is_ours(content: &[u8]) -> bool {
    content.starts_with(MARKER.as_bytes())
}
