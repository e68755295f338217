//! The unit files as a sysadmin reads them: the guide's defaults, and the guide's "Scaling up"
//! pair. Each is also accepted by the real `systemd-analyze verify`.

use pretix_site::sections::{Container, Paths};
use pretix_unit::spec::{self, Desired};
use pretix_unit::unit;
use pretix_unit::workers::HostFacts;

/// A 4 GiB host with 2 CPUs: the image's default of 4 workers fits.
const HOST: HostFacts = HostFacts {
    memory_bytes: Some(4 << 30),
    cpus: 2,
};

fn desired(container: serde_json::Value, redis_volume: bool) -> Desired {
    let mut container: Container = serde_json::from_value(container).unwrap_or_else(|error| panic!("{error}"));
    if redis_volume {
        // What pretix-redis adds in its default (world) mode.
        container.volumes.push("/var/run/redis:/var/run/redis".to_owned());
    }
    spec::resolve(&container, &Paths::default(), Some("world"), &HOST).unwrap_or_else(|error| panic!("{error}"))
}

fn rendered(desired: &Desired) -> Vec<(String, String)> {
    desired
        .instances
        .iter()
        .map(|instance| {
            let text =
                unit::render(desired, instance, &desired.image.to_string()).unwrap_or_else(|error| panic!("{error}"));
            unit::verify(&instance.unit, &text, &mut |_| {}).unwrap_or_else(|error| panic!("{error}\n{text}"));
            (instance.unit.clone(), text)
        })
        .collect()
}

#[test]
fn the_guides_unit() {
    let desired = desired(serde_json::json!({}), true);
    let units = rendered(&desired);
    assert_eq!(units.len(), 1);
    insta::assert_snapshot!("guide_pretix_service", units[0].1);
}

#[test]
fn a_scaled_web_and_taskworker_pair() {
    let desired = desired(
        serde_json::json!({
            "image": "pretix/standalone:2026.8.0",
            "env": {"PRETIX_PRETIX_INSTANCE_NAME": "Tickets \"Spring\" 100%", "FILE__PRETIX_MAIL_PASSWORD": "/etc/pretix/secrets/mail_password"},
            "instances": [
                {"unit": "pretix-web.service", "role": "web", "published_port": 8345},
                {"unit": "pretix-worker.service", "role": "taskworker", "queues": ["checkout", "mail"], "concurrency": 4}
            ]
        }),
        true,
    );
    let units = rendered(&desired);
    assert_eq!(units.len(), 2);
    insta::assert_snapshot!("scaled_pretix_web_service", units[0].1);
    insta::assert_snapshot!("scaled_pretix_worker_service", units[1].1);
}

#[test]
fn a_daemon_elsewhere_is_named_on_every_docker_line() {
    let desired = desired(
        serde_json::json!({"docker_host": "unix:///run/user/0/docker.sock"}),
        false,
    );
    let units = rendered(&desired);
    let text = &units[0].1;
    assert_eq!(
        text.matches("/usr/bin/docker -H unix:///run/user/0/docker.sock ")
            .count(),
        4,
        "{text}"
    );
}
