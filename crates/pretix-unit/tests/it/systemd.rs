//! The systemd supervisor with the recording systemctl seam: the unit is written (verified,
//! atomically, root 0644), daemon-reload, enable and restart are asked for, and nothing at all
//! on a converged re-run; a changed document rewrites the unit and restarts it.

use std::os::unix::fs::MetadataExt;

use pretix_site::docker::ContainerSpec;
use pretix_testkit::image::{STAND_IN_TAG, build_stand_in_image_blocking};
use serde_json::json;

use crate::support::{TestHost, read};

#[test]
fn the_unit_is_written_enabled_and_restarted_once_and_then_left_alone() {
    build_stand_in_image_blocking().expect("build the stand-in image");
    let host = TestHost::new("systemd");
    let mut document = host.document(json!({"image": STAND_IN_TAG, "num_workers": 2}));

    let plan = host.run_recorded(&["apply", "--check"], &document);
    assert_eq!(plan.code, 0, "{}", plan.describe());
    assert!(plan.changed() && host.files_under("units").is_empty() && host.systemctl_calls().is_empty());

    let first = host.run_recorded(&["apply"], &document);
    assert_eq!(first.code, 0, "{}", first.describe());
    let path = host.path(&format!("units/{}", host.unit));
    let text = read(&path);
    assert!(
        text.contains(&format!(
            "ExecStart=/usr/bin/docker run --name %n \\\n    -p 127.0.0.1:8345:80 \\\n    -v {}:/data",
            host.path("data").display()
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "    -e NUM_WORKERS=2 \\\n    --sysctl net.core.somaxconn=4096 \\\n    pretix/standalone:stand-in all\n"
        ),
        "{text}"
    );
    let metadata = std::fs::metadata(&path).expect("stat");
    assert_eq!(
        (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777),
        (0, 0, 0o644)
    );
    assert_eq!(
        host.systemctl_calls(),
        vec![
            "systemctl daemon-reload".to_owned(),
            format!("systemctl enable {}", host.unit),
            format!("systemctl restart {}", host.unit),
        ]
    );

    // What systemd would have done: enable links the unit, start runs the container.
    let wants = host.path("units/multi-user.target.wants");
    std::fs::create_dir_all(&wants).expect("mkdir wants");
    std::os::unix::fs::symlink(&path, wants.join(&host.unit)).expect("link");
    host.docker
        .recreate_container(&ContainerSpec {
            name: host.unit.clone(),
            image: STAND_IN_TAG.to_owned(),
            command: vec!["webworker".to_owned()],
            ..ContainerSpec::default()
        })
        .unwrap_or_else(|error| panic!("{error}"));
    let modified = metadata.modified().expect("mtime");

    document = first.next_input();
    let second = host.run_recorded(&["apply"], &document);
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(!second.changed(), "{:?}", second.actions());
    assert_eq!(host.systemctl_calls().len(), 3, "no new systemctl call");
    assert_eq!(std::fs::metadata(&path).and_then(|m| m.modified()).ok(), Some(modified));

    document["container"]["num_workers"] = json!(4);
    let changed = host.run_recorded(&["apply", "--diff"], &document);
    assert_eq!(changed.code, 0, "{}", changed.describe());
    assert!(
        changed.stderr.contains("-    -e NUM_WORKERS=2 \\") && changed.stderr.contains("+    -e NUM_WORKERS=4 \\"),
        "{}",
        changed.stderr
    );
    assert_eq!(
        host.systemctl_calls()[3..],
        [
            "systemctl daemon-reload".to_owned(),
            format!("systemctl restart {}", host.unit),
        ]
    );
    assert!(
        changed.has_action(&format!("systemctl restart {}", host.unit)),
        "{:?}",
        changed.actions()
    );
}
