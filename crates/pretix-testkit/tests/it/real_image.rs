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

/// A pretix plugin as small as pretix accepts: an app with PretixPluginMeta, its entry point,
/// and one static file that `make production` must collect.
const PROBE_PLUGIN: &[(&str, &str)] = &[
    (
        "probe/pyproject.toml",
        r#"[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "pretix-testkit-probe"
version = "1.0.0"

[project.entry-points."pretix.plugin"]
pretix_testkit_probe = "pretix_testkit_probe:PretixPluginMeta"

[tool.setuptools.package-data]
pretix_testkit_probe = ["static/pretix_testkit_probe/*.css"]
"#,
    ),
    ("probe/pretix_testkit_probe/__init__.py", ""),
    (
        // Django finds a default AppConfig only in the app's `apps` module.
        "probe/pretix_testkit_probe/apps.py",
        r#"from django.utils.translation import gettext_lazy
from pretix.base.plugins import PluginConfig


class PluginApp(PluginConfig):
    default = True
    name = "pretix_testkit_probe"
    verbose_name = "testkit probe"

    class PretixPluginMeta:
        name = gettext_lazy("testkit probe")
        author = "pretix toolkit"
        description = gettext_lazy("proves that a plugin image builds on the real image")
        visible = True
        version = "1.0.0"
        category = "FEATURE"
        compatibility = "pretix>=2.7.0"
"#,
    ),
    (
        "probe/pretix_testkit_probe/static/pretix_testkit_probe/probe.css",
        "body { --pretix-testkit-probe: 1; }\n",
    ),
];

#[test]
fn a_plugin_dockerfile_in_the_guides_shape_builds_on_the_real_image() {
    use bollard::query_parameters::BuildImageOptionsBuilder;
    use futures_util::StreamExt;

    let base = real_image().expect("real image");
    // The guide's Dockerfile; pip installs from the build context because a build reaches PyPI
    // here only with a CA bundle, and the venv's setuptools builds the plugin offline.
    let dockerfile = format!(
        "FROM {base}\nUSER root\nCOPY probe /tmp/probe\n\
         RUN pip3 install --no-index --no-build-isolation /tmp/probe\n\
         USER pretixuser\nRUN cd /pretix/src && make production\n"
    );
    let mut archive = tar::Builder::new(Vec::new());
    for (name, text) in std::iter::once(("Dockerfile", dockerfile.as_str())).chain(PROBE_PLUGIN.iter().copied()) {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, name, text.as_bytes()).expect("tar");
    }
    let context = archive.into_inner().expect("tar");
    // Tagged by its base; an unchanged rebuild is answered from the build cache in seconds.
    let tag = format!(
        "pretix-testkit/plugin-probe:{}",
        base.rsplit(':').next().unwrap_or("latest")
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let log = runtime.block_on(async {
        let docker = pretix_testkit::image::connect().await.expect("docker");
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(&tag)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
        let mut log = String::new();
        while let Some(message) = stream.next().await {
            let info = message.unwrap_or_else(|error| panic!("the plugin build failed: {error}\n{log}"));
            log.push_str(info.stream.as_deref().unwrap_or_default());
            if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
                panic!("the plugin build failed: {error}\n{log}");
            }
        }
        log
    });
    let (code, output) = run_to_end(
        &tag,
        Some(&["sh", "-c"]),
        &[
            "id -un; cat /pretix/venv/lib/python3.11/site-packages/pretix/static.dist/pretix_testkit_probe/probe.css; \
           cd /pretix/src && python3 -c 'import django; django.setup(); from pretix.base.plugins import get_all_plugins; \
print(sorted(p.module for p in get_all_plugins()))'",
        ],
        &[],
    );
    assert_eq!(code, 0, "{output}\nbuild log:\n{log}");
    assert!(output.starts_with("pretixuser\n"), "{output}");
    assert!(
        output.contains("--pretix-testkit-probe"),
        "make production did not collect the plugin's static file: {output}"
    );
    assert!(
        output.contains("'pretix_testkit_probe'"),
        "pretix does not load the plugin: {output}"
    );
}

#[test]
fn real_image_web_role_runs_nginx_and_num_workers_gunicorn_workers_but_no_celery() {
    let tag = real_image().expect("real image");
    let port = pretix_testkit::free_port();
    // No database is needed: AUTOMIGRATE=skip, and nginx serves /static/ without pretix.
    let container = Container::start(&RunSpec {
        image: tag,
        command: vec!["web".to_owned()],
        env: vec!["AUTOMIGRATE=skip".to_owned(), "NUM_WORKERS=3".to_owned()],
        publish_80_on: Some(port),
        ..RunSpec::default()
    })
    .expect("start the web role");
    let (code, listing) = container
        .exec(&[
            "sh",
            "-c",
            "cd /pretix/venv/lib/python3.11/site-packages/pretix/static.dist && ls pretixbase/img | head -1",
        ])
        .expect("list the static files");
    assert_eq!(code, 0, "{listing}");
    let static_path = format!("/static/pretixbase/img/{}", listing.trim());
    let count = |pattern: &str| {
        let script = format!("grep -l '{pattern}' /proc/[0-9]*/cmdline 2>/dev/null | wc -l");
        container
            .exec(&["sh", "-c", &script])
            .map(|(_, output)| output.trim().parse::<u32>().unwrap_or(0))
            .unwrap_or(0)
    };
    pretix_testkit::wait_until(
        "the static file through nginx and gunicorn's master with 3 workers",
        Duration::from_secs(120),
        || {
            // http_request, not http_get: the file is binary.
            pretix_testkit::http_request(port, "GET", &static_path, &[], "")
                .is_ok_and(|response| response.status == 200)
                && count("[g]unicorn") == 4
        },
        || format!("gunicorn processes: {}\n{}", count("[g]unicorn"), container.logs()),
    );
    assert_eq!(
        count("[c]elery"),
        0,
        "the web role started a task worker: {}",
        container.logs()
    );
}
