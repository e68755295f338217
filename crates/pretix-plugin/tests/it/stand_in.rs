//! Builds on the stand-in base through the real engine: what pip3 and make were asked, the
//! same inputs building nothing, a new base digest rebuilding, a plugin pretix does not load.

use serde_json::json;

use crate::support::{Fixture, write_wheel};

/// The pip3 and make lines of the stand-in's build log.
fn build_log(fixture: &Fixture, image: &str) -> Vec<String> {
    fixture
        .read_from_image(image, "/pretix/stand-in-build.log")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn exactly_the_listed_plugins_in_order_then_the_same_inputs_build_nothing() {
    let mut fixture = Fixture::new("order");
    let digest = fixture.publish_base("1");
    let wheel_dir = fixture.root.path().join("srv/plugins");
    write_wheel(&wheel_dir, "pretix_bar-2.0-py3-none-any.whl");
    let source = fixture.root.path().join("srv/src/pretix-baz");
    std::fs::create_dir_all(source.join("pretix_baz")).expect("mkdir");
    std::fs::write(source.join("pyproject.toml"), "[project]\nname = \"pretix-baz\"\n").expect("pyproject");
    std::fs::write(source.join("pretix_baz/__init__.py"), "").expect("module");
    let document = fixture.document(
        &digest,
        json!({"packages": [
            "pretix-pages==1.6.4",
            {"path": "/srv/plugins/pretix_bar-2.0-py3-none-any.whl"},
            "pretix-foo>=1,<2",
            {"path": "/srv/src/pretix-baz"},
        ]}),
    );

    let first = fixture.run("apply", &document);
    assert_eq!(first.code, 0, "{}", first.describe());
    assert!(first.changed());
    assert!(first.has_action("build "), "{:?}", first.actions());
    let built = &first.document["plugins"]["built"];
    let image = built["image"].as_str().expect("plugins.built.image").to_owned();
    assert!(image.starts_with(&format!("{}:", fixture.repository)), "{image}");
    assert_eq!(built["base"], format!("{}@{digest}", fixture.base_repository));
    assert_eq!(
        built["loaded_plugins"],
        json!(["pretix_pages", "pretix_bar", "pretix_foo", "pretix_baz"])
    );

    let log = build_log(&fixture, &image);
    assert_eq!(
        log,
        vec![
            "pip3 uid=0 install --no-cache-dir pretix-pages==1.6.4 \
             /tmp/pretix-toolkit-plugins/1/pretix_bar-2.0-py3-none-any.whl pretix-foo>=1,<2 \
             /tmp/pretix-toolkit-plugins/3/"
                .to_owned(),
            "make uid=15371 cwd=/pretix/src production".to_owned(),
        ],
        "pip3 as root with exactly the listed plugins in order, then make production as pretixuser"
    );
    let id = fixture
        .docker
        .inspect_image(&image)
        .expect("inspect")
        .expect("the image is there")
        .id;
    assert_eq!(built["id"], id.as_str());

    let second = fixture.run("apply", &first.next_input());
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(
        !second.changed(),
        "the same inputs change nothing: {:?}",
        second.actions()
    );
    assert!(!second.has_action("build"), "{:?}", second.actions());
    assert!(second.msg().contains("up to date"), "{}", second.msg());
    assert_eq!(second.document["plugins"]["built"], first.document["plugins"]["built"]);

    let verify = fixture.run("verify", &second.next_input());
    assert_eq!(verify.code, 0, "{}", verify.describe());
    assert_eq!(verify.check_item("base").map(|item| item.0), Some("ok".to_owned()));
    assert_eq!(verify.check_item("loaded").map(|item| item.0), Some("ok".to_owned()));
    let container = verify.check_item("container pretix.service").expect("a container item");
    assert_eq!(container.0, "warning", "no container runs here: {}", container.1);
}

#[test]
fn a_new_base_digest_rebuilds_and_says_so() {
    let mut fixture = Fixture::new("newbase");
    let old = fixture.publish_base("1");
    let plugins = json!({"packages": ["pretix-pages"]});
    let first = fixture.run("apply", &fixture.document(&old, plugins.clone()));
    assert_eq!(first.code, 0, "{}", first.describe());
    let old_image = first.document["plugins"]["built"]["image"]
        .as_str()
        .expect("built")
        .to_owned();

    // pretix-unit pulled a new base: the document now carries its digest.
    let new = fixture.publish_base("2");
    assert_ne!(old, new);
    let mut document = first.next_input();
    document["container"]["image_digest"] = json!(new);

    let stale = fixture.run("verify", &document);
    assert_eq!(stale.code, 1, "{}", stale.describe());
    let (status, message) = stale.check_item("base").expect("a base item");
    assert_eq!(status, "failure");
    assert!(message.contains(&old) && message.contains(&new), "{message}");

    let rebuilt = fixture.run("apply", &document);
    assert_eq!(rebuilt.code, 0, "{}", rebuilt.describe());
    let build = rebuilt
        .actions()
        .into_iter()
        .find(|action| action.starts_with("build "))
        .expect("a build action");
    assert!(
        build.contains("the base changed from") && build.contains(&old) && build.contains(&new),
        "{build}"
    );
    assert!(
        rebuilt.msg().contains("rebuilt because the base changed"),
        "{}",
        rebuilt.msg()
    );
    let new_image = rebuilt.document["plugins"]["built"]["image"].as_str().expect("built");
    assert_ne!(new_image, old_image);
    assert_eq!(
        rebuilt.document["plugins"]["built"]["base"],
        format!("{}@{new}", fixture.base_repository)
    );
    let labels = fixture
        .docker
        .inspect_image(new_image)
        .expect("inspect")
        .expect("the new image")
        .labels;
    assert_eq!(
        labels.get("org.pretix-toolkit.test-base").map(String::as_str),
        Some("2"),
        "built on the new base"
    );
}

#[test]
fn a_listed_package_pretix_does_not_load_fails_and_leaves_no_image() {
    let mut fixture = Fixture::new("notloaded");
    let digest = fixture.publish_base("1");
    let document = fixture.document(&digest, json!({"packages": ["pretix-pages", "stand-in-not-a-plugin"]}));
    let check = fixture.run("apply", &document);
    assert_eq!(check.code, 1, "{}", check.describe());
    assert!(
        check.msg().contains("stand-in-not-a-plugin") && check.msg().contains("declares no pretix plugin"),
        "{}",
        check.msg()
    );
    assert!(
        check.document["plugins"]
            .get("built")
            .is_none_or(serde_json::Value::is_null)
    );
    let image = check
        .actions()
        .into_iter()
        .find_map(|action| {
            action
                .strip_prefix("build ")
                .and_then(|rest| rest.split_whitespace().next().map(str::to_owned))
        })
        .expect("a build action naming the image");
    fixture.forget_later(&image);
    assert!(
        fixture.docker.inspect_image(&image).expect("inspect").is_none(),
        "the unverified image {image} was removed, so the next run builds again"
    );
}

#[test]
fn check_mode_plans_the_build_and_builds_nothing() {
    let mut fixture = Fixture::new("check");
    let digest = fixture.publish_base("1");
    let document = fixture.document(&digest, json!({"packages": ["pretix-pages==1.6.4"]}));
    let root = fixture.root.path().display().to_string();
    let planned = pretix_testkit::run_tool(
        std::process::Command::new(env!("CARGO_BIN_EXE_pretix-plugin")).args(["apply", "--check", "--root", &root]),
        &document,
    );
    assert_eq!(planned.code, 0, "{}", planned.describe());
    assert!(planned.changed());
    let build = planned
        .actions()
        .into_iter()
        .find(|action| action.starts_with("build "))
        .expect("a planned build");
    assert!(build.contains("no custom image yet"), "{build}");
    let image = build.split_whitespace().nth(1).expect("the image").to_owned();
    fixture.forget_later(&image);
    assert!(
        fixture.docker.inspect_image(&image).expect("inspect").is_none(),
        "nothing built"
    );
    assert!(planned.document["plugins"].get("built").is_none());
}

#[test]
fn a_base_not_on_this_host_yet_is_pulled_first() {
    let mut fixture = Fixture::new("pull");
    let digest = fixture.publish_base("1");
    let tag = format!("{}:stable", fixture.base_repository);
    assert!(fixture.docker.remove_image(&tag).expect("remove the local base"));
    let pinned = format!("{}@{digest}", fixture.base_repository);
    assert!(fixture.docker.inspect_image(&pinned).expect("inspect").is_none());

    // As on a fresh host, where `xtask install` runs pretix-plugin before pretix-unit pulls.
    let document = fixture.document(&digest, json!({"packages": ["pretix-pages"]}));
    let root = fixture.root.path().display().to_string();
    let planned = pretix_testkit::run_tool(
        std::process::Command::new(env!("CARGO_BIN_EXE_pretix-plugin")).args(["apply", "--check", "--root", &root]),
        &document,
    );
    assert_eq!(planned.code, 0, "{}", planned.describe());
    assert!(planned.has_action(&format!("pull {pinned}")), "{:?}", planned.actions());
    assert!(
        fixture.docker.inspect_image(&pinned).expect("inspect").is_none(),
        "--check pulls nothing"
    );

    let built = fixture.run("apply", &document);
    assert_eq!(built.code, 0, "{}", built.describe());
    assert!(built.has_action(&format!("pull {pinned}")), "{:?}", built.actions());
    assert!(built.has_action("build "), "{:?}", built.actions());
    assert_eq!(built.document["plugins"]["built"]["base"], pinned.as_str());
}

#[test]
fn a_failed_build_ends_with_its_log() {
    let mut fixture = Fixture::new("buildfail");
    let digest = fixture.publish_base("1");
    let document = fixture.document(
        &digest,
        json!({"packages": ["pretix-pages", "stand-in-not-on-pypi==9.9"]}),
    );
    let failed = fixture.run("apply", &document);
    assert_eq!(failed.code, 1, "{}", failed.describe());
    assert!(
        failed.msg().contains("last lines of the build log")
            && failed
                .msg()
                .contains("No matching distribution found for stand-in-not-on-pypi==9.9"),
        "{}",
        failed.msg()
    );
    assert!(failed.document["plugins"].get("built").is_none());
}

#[test]
fn verify_says_whether_the_container_runs_the_custom_image() {
    let mut fixture = Fixture::new("unit");
    let digest = fixture.publish_base("1");
    let unit = format!("{}.service", crate::support::unique("unit"));
    let _remove = RemoveContainer(unit.clone());
    let mut document = fixture.document(&digest, json!({"packages": ["pretix-pages"]}));
    document["container"]["unit"] = json!(unit);
    let built = fixture.run("apply", &document);
    assert_eq!(built.code, 0, "{}", built.describe());
    let image = built.document["plugins"]["built"]["image"]
        .as_str()
        .expect("built")
        .to_owned();

    let run = |fixture: &Fixture, image: &str| {
        let _ = fixture.docker.remove_container(&unit);
        fixture
            .docker
            .create_container(&pretix_site::docker::ContainerSpec {
                name: unit.clone(),
                image: image.to_owned(),
                command: vec!["webworker".to_owned()],
                env: vec!["AUTOMIGRATE=skip".to_owned()],
                ..pretix_site::docker::ContainerSpec::default()
            })
            .expect("create the container");
        fixture.docker.start_container(&unit).expect("start it");
    };
    let item = |fixture: &mut Fixture| {
        let verified = fixture.run("verify", &built.next_input());
        verified
            .check_item(&format!("container {unit}"))
            .unwrap_or_else(|| panic!("no container item: {}", verified.describe()))
    };

    run(&fixture, &format!("{}@{digest}", fixture.base_repository));
    let (status, message) = item(&mut fixture);
    assert_eq!(status, "failure", "{message}");
    assert!(message.contains("run pretix-unit apply"), "{message}");

    run(&fixture, &image);
    let (status, message) = item(&mut fixture);
    assert_eq!(status, "ok", "{message}");
}

/// Removes the named container when dropped, also when the test fails.
struct RemoveContainer(String);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        if let Ok(docker) = pretix_site::docker::Docker::connect(None) {
            let _ = docker.remove_container(&self.0);
        }
    }
}
