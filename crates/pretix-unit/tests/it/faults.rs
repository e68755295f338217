//! Bad input is exit 2 with nothing changed; a daemon that does not answer is exit 1 naming it.

use serde_json::json;

use crate::support::TestHost;

#[test]
fn injection_shaped_input_is_exit_2_and_nothing_is_written() {
    let host = TestHost::new("badinput");
    for (container, field) in [
        (
            json!({"image": "pretix/standalone:stable --privileged"}),
            "container.image",
        ),
        (json!({"bind_address": "0.0.0.0"}), "container.bind_address"),
        (
            json!({"env": {"PRETIX_MAIL_FROM": "x\nExecStartPre=/bin/sh -c id"}}),
            "container.env.PRETIX_MAIL_FROM",
        ),
        (
            json!({"env": {"PRETIX_DATABASE_PASSWORD": "hunter2hunter2"}}),
            "container.env.PRETIX_DATABASE_PASSWORD",
        ),
        (
            json!({"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}),
            "container.volumes[0]",
        ),
        (
            json!({"role": "taskworker", "queues": ["mail,checkout"]}),
            "container.queues",
        ),
        (json!({"group_add": ["0"]}), "container.group_add[0]"),
        (
            json!({"instances": [{"unit": "a b.service", "role": "taskworker"}]}),
            "container.instances[0].unit",
        ),
    ] {
        let mut document = host.document(container.clone());
        if container.get("instances").is_some() {
            document["container"]
                .as_object_mut()
                .map(|section| section.remove("unit"));
        }
        for verb in [vec!["apply"], vec!["verify"], vec!["exec", "--", "migrate"]] {
            let run = host.run(&verb, &document);
            assert_eq!(run.code, 2, "{container} {verb:?}: {}", run.describe());
            assert!(
                run.msg().starts_with(&format!("{field}:")),
                "{container}: {}",
                run.msg()
            );
            assert!(!run.msg().contains("hunter2") && !run.stderr.contains("hunter2"));
        }
    }
    assert!(host.files_under("units").is_empty());
    assert!(host.files_under("state").is_empty());
    assert!(host.docker.inspect_container(&host.unit).expect("inspect").is_none());
}

#[test]
fn a_daemon_that_does_not_answer_is_exit_1_naming_the_socket() {
    let host = TestHost::new("nodaemon");
    let socket = host.path("no-docker.sock");
    let document = host.document(json!({"docker_host": format!("unix://{}", socket.display())}));
    for verb in ["apply", "pull"] {
        let run = host.run(&[verb], &document);
        assert_eq!(run.code, 1, "{}", run.describe());
        assert!(
            run.msg().contains(&format!("unix://{}", socket.display()))
                && run.msg().contains("systemctl status docker"),
            "{}",
            run.msg()
        );
    }
    let verify = host.run(&["verify"], &document);
    assert_eq!(verify.code, 1, "{}", verify.describe());
    assert_eq!(
        verify.check_item("docker").map(|(status, _)| status),
        Some("failure".to_owned())
    );
    assert!(host.files_under("units").is_empty());
}
