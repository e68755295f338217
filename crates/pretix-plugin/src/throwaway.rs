//! A throwaway container of an image, run to its end through the Docker seam, and removed again
//! whatever happens.

use std::time::{Duration, Instant};

use pretix_site::ToolError;
use pretix_site::docker::{ContainerSpec, Docker};

/// How long pretix may take to start and answer (Django's set-up takes a few seconds).
const TIMEOUT: Duration = Duration::from_secs(180);

/// What a finished container gave.
pub struct Finished {
    pub exit_code: i64,
    /// stdout and stderr, interleaved as logged.
    pub output: String,
}

/// Removes the container when dropped.
struct Guard<'a> {
    docker: &'a Docker,
    name: String,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.docker.remove_container(&self.name);
    }
}

/// Runs `command` (the entrypoint's arguments) in a new container of `image` with `env`, waits
/// for it to exit, and returns its exit code and output.
pub fn run(docker: &Docker, image: &str, command: Vec<String>, env: Vec<String>) -> Result<Finished, ToolError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let name = format!("pretix-plugin-verify-{}-{nanos}", std::process::id());
    let spec = ContainerSpec {
        name: name.clone(),
        image: image.to_owned(),
        command,
        env,
        labels: [("org.pretix-toolkit.throwaway".to_owned(), "pretix-plugin".to_owned())]
            .into_iter()
            .collect(),
        ..ContainerSpec::default()
    };
    docker.create_container(&spec)?;
    let guard = Guard { docker, name };
    docker.start_container(&guard.name)?;
    let started = Instant::now();
    let info = loop {
        let info = docker.inspect_container(&guard.name)?.ok_or_else(|| {
            ToolError::failed(format!("the container {} of {image} vanished while it ran", guard.name))
        })?;
        if !info.running {
            break info;
        }
        if started.elapsed() > TIMEOUT {
            let tail = docker.log_tail(&guard.name, 20).unwrap_or_default().join("\n");
            return Err(ToolError::failed(format!(
                "a container of {image} did not finish within {} s; its last lines:\n{tail}",
                TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = docker.log_tail(&guard.name, 10_000)?.join("\n");
    Ok(Finished {
        exit_code: info.exit_code.unwrap_or(-1),
        output,
    })
}
