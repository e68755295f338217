//! The real pretix/standalone image: built once per machine and reused, shaped like upstream's.

use std::time::{Duration, Instant};

use pretix_testkit::image::{Container, RunSpec};
use pretix_testkit::images::real_image;

fn run_to_end(image: &str, entrypoint: Option<&[&str]>, command: &[&str], env: &[&str]) -> (i64, String) {
    let container = Container::start(&RunSpec {
        image: image.to_owned(),
        entrypoint: entrypoint.map(|words| words.iter().map(|word| (*word).to_owned()).collect()),
        command: command.iter().map(|word| (*word).to_owned()).collect(),
        env: env.iter().map(|word| (*word).to_owned()).collect(),
        ..RunSpec::default()
    })
    .expect("start a container of the real image");
    let code = container.wait().expect("wait for the container");
    (code, container.logs())
}

#[test]
fn real_image_is_built_once_and_then_found_by_its_input_hash() {
    let tag = real_image().expect("build or find the real image");
    assert!(tag.starts_with("pretix-testkit/standalone:"), "{tag}");
    let started = Instant::now();
    let again = real_image().expect("find the real image");
    assert_eq!(again, tag, "the same inputs give the same tag");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a built image is reused, not rebuilt ({:?})",
        started.elapsed()
    );
}

#[test]
fn real_image_runs_as_pretixuser_with_upstreams_layout() {
    let tag = real_image().expect("real image");
    let (code, output) = run_to_end(
        &tag,
        Some(&["sh", "-c"]),
        &["id; stat -c '%a %U %n' /pretix /data /static /etc/pretix; \
           test -f /pretix/venv/lib/python3.11/site-packages/pretix/static.dist/staticfiles.json && echo manifest; \
           python3 -c 'import pretix, gunicorn, celery; print(\"pretix\", pretix.__version__)'; \
           sudo -n -l /usr/bin/supervisord"],
        &[],
    );
    assert_eq!(code, 0, "{output}");
    for expected in [
        "uid=15371(pretixuser) gid=15371(pretixuser)",
        "755 pretixuser /pretix",
        "755 pretixuser /data",
        "755 pretixuser /static",
        "manifest",
        "pretix 2026.8.0",
        "/usr/bin/supervisord",
    ] {
        assert!(output.contains(expected), "{expected:?} missing in:\n{output}");
    }
}

#[test]
fn real_image_entrypoint_runs_a_management_command_without_migrating_when_told_to_skip() {
    let tag = real_image().expect("real image");
    // Without a pretix.cfg pretix falls back to SQLite in /data; `check` runs Django's system
    // checks on production_settings without touching a database.
    let (code, output) = run_to_end(&tag, None, &["check"], &["AUTOMIGRATE=skip"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("System check identified no issues"), "{output}");
    assert!(!output.contains("Applying"), "AUTOMIGRATE=skip migrated: {output}");
}
