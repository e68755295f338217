//! `NUM_WORKERS` when the document leaves it unset: as many gunicorn workers as the host's
//! memory carries, at most the image's own default of twice the CPUs.
//!
//! The image's default alone is what takes small hosts down: each gunicorn worker of pretix
//! holds a few hundred MB, so a 2 GB host with 4 CPUs (8 workers) runs out of memory under load.

/// What a gunicorn worker of pretix takes, about (resident, after some requests).
pub const WORKER_MIB: u64 = 300;
/// Kept for the system, PostgreSQL and Redis on the same host, as the guide's setup has them.
pub const RESERVED_MIB: u64 = 1024;
/// Kept for the celery worker when a container on the host runs one (`all`, `taskworker`).
pub const TASKWORKER_MIB: u64 = 512;

/// What the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    /// `MemTotal` from /proc/meminfo; `None` when it could not be read.
    pub memory_bytes: Option<u64>,
    pub cpus: u32,
}

impl HostFacts {
    /// This host's memory and CPUs (the containers run here: the Docker daemon is local in the
    /// guide's setup).
    pub fn of_this_host() -> HostFacts {
        let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
            text.lines().find_map(|line| {
                let rest = line.strip_prefix("MemTotal:")?;
                let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
                kib.checked_mul(1024)
            })
        });
        let cpus = std::thread::available_parallelism()
            .map(|count| u32::try_from(count.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        HostFacts { memory_bytes, cpus }
    }
}

/// The choice and why, in words a sysadmin can check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerChoice {
    pub workers: u32,
    pub reason: String,
}

/// The workers for each of `gunicorn_containers` containers on a host with `host`'s memory.
pub fn choose(host: &HostFacts, gunicorn_containers: usize, celery_on_host: bool) -> WorkerChoice {
    let image_default = host.cpus.saturating_mul(2).max(1);
    let Some(memory) = host.memory_bytes else {
        return WorkerChoice {
            workers: image_default,
            reason: format!(
                "NUM_WORKERS={image_default}, the image's default of twice the {} CPUs: this host's memory could \
                 not be read (/proc/meminfo); set container.num_workers if it is small",
                host.cpus
            ),
        };
    };
    let memory_mib = memory / (1024 * 1024);
    let taskworker = if celery_on_host { TASKWORKER_MIB } else { 0 };
    let spare = memory_mib.saturating_sub(RESERVED_MIB + taskworker);
    let containers = u64::try_from(gunicorn_containers.max(1)).unwrap_or(1);
    let fits = spare / containers / WORKER_MIB;
    let workers = u32::try_from(fits).unwrap_or(u32::MAX).clamp(1, image_default);
    let kept = if celery_on_host {
        format!("{RESERVED_MIB} MiB for the system, PostgreSQL and Redis and {TASKWORKER_MIB} MiB for the task worker")
    } else {
        format!("{RESERVED_MIB} MiB for the system, PostgreSQL and Redis")
    };
    let shared = if containers > 1 {
        format!(", shared by {containers} web containers")
    } else {
        String::new()
    };
    let reason = if workers == image_default {
        format!(
            "NUM_WORKERS={workers}, the image's default of twice the {} CPUs: {} of memory carries that many gunicorn \
             workers of about {WORKER_MIB} MiB each after {kept}{shared}; set container.num_workers to choose",
            host.cpus,
            human(memory_mib),
        )
    } else {
        format!(
            "NUM_WORKERS={workers}, not the image's default of {image_default} (twice the {} CPUs): {} of memory \
             carries {workers} gunicorn worker(s) of about {WORKER_MIB} MiB each after {kept}{shared}; more would \
             run the host out of memory under load; set container.num_workers to choose",
            host.cpus,
            human(memory_mib),
        )
    };
    WorkerChoice { workers, reason }
}

fn human(mib: u64) -> String {
    if mib >= 1024 {
        format!("{:.1} GiB", mib as f64 / 1024.0)
    } else {
        format!("{mib} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(gib_tenths: u64, cpus: u32) -> HostFacts {
        HostFacts {
            memory_bytes: Some(gib_tenths * (1 << 30) / 10),
            cpus,
        }
    }

    #[test]
    fn a_small_host_gets_fewer_workers_than_the_image_default_and_is_told_why() {
        let choice = choose(&host(20, 4), 1, true);
        // 2048 MiB - 1024 - 512 = 512 MiB: one worker of 300 MiB.
        assert_eq!(choice.workers, 1);
        assert!(
            choice.reason.contains("not the image's default of 8"),
            "{}",
            choice.reason
        );
        assert!(choice.reason.contains("2.0 GiB"), "{}", choice.reason);
    }

    #[test]
    fn a_big_host_gets_the_image_default() {
        let choice = choose(&host(320, 4), 1, true);
        assert_eq!(choice.workers, 8);
        assert!(
            choice.reason.contains("the image's default of twice the 4 CPUs"),
            "{}",
            choice.reason
        );
    }

    #[test]
    fn web_containers_on_one_host_share_the_memory() {
        assert_eq!(choose(&host(80, 16), 1, false).workers, 23);
        assert_eq!(choose(&host(80, 16), 2, false).workers, 11);
    }

    #[test]
    fn never_less_than_one_and_unknown_memory_keeps_the_default() {
        assert_eq!(choose(&host(5, 2), 1, true).workers, 1);
        let unknown = choose(
            &HostFacts {
                memory_bytes: None,
                cpus: 3,
            },
            1,
            true,
        );
        assert_eq!(unknown.workers, 6);
        assert!(unknown.reason.contains("could not be read"), "{}", unknown.reason);
    }
}
