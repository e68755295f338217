//! The guide on a fresh Debian 12 server, end to end: `pretix-toolkit install` on a test host
//! with systemd as PID 1 and the real pretix image served by a local registry, then real pretix
//! answers through the generated nginx over HTTPS and the default admin logs in; a second install
//! changes nothing; an upgrade to a new image behind the same tag runs `pretix upgrade` and keeps
//! the data; rollback returns to the first digest; a backup restored onto a second fresh server
//! gives the same organizer.

use std::time::Instant;

use pretix_testkit::images::real_image;
use pretix_testkit::{Registry, TestHost, free_port, toolkit_binary};
use serde_json::{Value, json};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The real image pushed as `<registry>/pretix/standalone:stable`; returns that reference and
/// the image ID.
fn publish(registry: &Registry, local: &str) -> (String, String) {
    runtime().block_on(async {
        let docker = pretix_testkit::image::connect().await.expect("docker");
        let reference =
            pretix_testkit::image::push_to_registry(&docker, local, &registry.addr(), "pretix/standalone", "stable")
                .await
                .expect("push to the local registry");
        let id = docker
            .inspect_image(local)
            .await
            .expect("inspect")
            .id
            .unwrap_or_default();
        (reference, id)
    })
}

/// A second image: the real one with a label, so the tag moves to a new digest as an upstream
/// release would.
fn build_next_image(base: &str) -> String {
    use bollard::query_parameters::BuildImageOptionsBuilder;
    use futures_util::StreamExt;
    let tag = format!(
        "pretix-testkit/standalone-next:{}",
        base.rsplit(':').next().unwrap_or("latest")
    );
    let dockerfile = format!("FROM {base}\nLABEL org.pretix-toolkit.test=\"the next release\"\n");
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive
        .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .expect("tar");
    let context = archive.into_inner().expect("tar");
    runtime().block_on(async {
        let docker = pretix_testkit::image::connect().await.expect("docker");
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(&tag)
            .rm(true)
            .build();
        let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
        while let Some(message) = stream.next().await {
            let info = message.expect("build the next image");
            assert!(info.error_detail.is_none(), "building the next image failed: {info:?}");
        }
    });
    tag
}

/// A test host with the tools and pretix-toolkit installed, its Redis socket dir prepared as a
/// sysadmin would for a socket outside /run/redis.
fn server() -> TestHost {
    let host = TestHost::boot().expect("boot a test host");
    let mut binaries: Vec<_> = xtask::steps::TOOLS.iter().map(|tool| toolkit_binary(tool)).collect();
    binaries.push(std::path::PathBuf::from(env!("CARGO_BIN_EXE_pretix-toolkit")));
    host.install_binaries(&binaries).expect("install the toolkit");
    let shared = host.shared_dir().display().to_string();
    let prepared = host
        .sh(&format!(
            "install -d -o redis -g redis -m 2755 {shared}/redis && \
             printf '[Service]\\nReadWritePaths={shared}/redis\\n' > /etc/systemd/system/redis-server.service.d/20-socket-dir.conf && \
             systemctl daemon-reload"
        ))
        .expect("prepare the redis socket dir");
    assert!(prepared.success(), "{}", prepared.describe());
    host
}

/// The site for `host`: the guide's defaults but for the paths in its shared dir, its address as
/// the docker host, the image from the local registry, and a self-signed certificate.
fn site_for(host: &TestHost, image: &str, unit: &str, port: u16) -> Value {
    let shared = host.shared_dir().display().to_string();
    json!({
        "config": {
            "pretix": {"url": "https://tickets.example.org", "ecb_rates": false},
            "mail": {"from": "tickets@example.org"}
        },
        "paths": {"config_dir": format!("{shared}/etc-pretix"), "data_dir": format!("{shared}/data")},
        "database": {"docker_host": host.address(), "docker_subnet": host.docker_subnet(), "restart": true},
        "redis": {"socket": format!("{shared}/redis/redis.sock")},
        "container": {
            "image": image,
            "unit": unit,
            // The container runs on the machine's engine: its published port is on the machine,
            // which the test host's nginx reaches at the bridge's gateway.
            "bind_address": "172.17.0.1",
            "allow_public_bind": true,
            "published_port": port,
            "num_workers": 2,
            "start_timeout_seconds": 900
        },
        "proxy": {"certificate_source": "self_signed"}
    })
}

/// Runs a shell script in the test host; it must succeed.
fn sh(host: &TestHost, what: &str, script: &str) -> String {
    let output = host.sh(script).expect("run in the test host");
    assert!(output.success(), "{what}: {}", output.describe());
    output.stdout
}

fn toolkit(host: &TestHost, what: &str, args: &str) -> String {
    let started = Instant::now();
    let output = host
        .sh(&format!("pretix-toolkit {args}"))
        .expect("run pretix-toolkit in the test host");
    eprintln!("guide: {what} took {:.0} s", started.elapsed().as_secs_f64());
    assert!(output.success(), "{what}: {}", output.describe());
    output.stderr
}

fn read_document(host: &TestHost, path: &str) -> Value {
    serde_json::from_str(&sh(host, "read a document", &format!("cat {path}"))).expect("a JSON document")
}

/// curl against the host's nginx over HTTPS as tickets.example.org.
const CURL: &str = "curl -sk --resolve tickets.example.org:443:127.0.0.1 --resolve tickets.example.org:80:127.0.0.1";

/// The default admin logs in over HTTPS through the generated site: `302 <url>` of the answer.
fn admin_login(host: &TestHost) -> String {
    sh(
        host,
        "log in as the default admin",
        &format!(
            "set -e; jar=$(mktemp); \
             page=$({CURL} -c $jar https://tickets.example.org/control/login); \
             token=$(printf '%s' \"$page\" | sed -n 's/.*name=\"csrfmiddlewaretoken\" value=\"\\([^\"]*\\)\".*/\\1/p' | head -n 1); \
             test -n \"$token\"; \
             {CURL} -b $jar -c $jar -o /dev/null -w '%{{http_code}} %{{redirect_url}}' \
               -H 'Referer: https://tickets.example.org/control/login' \
               --data-urlencode csrfmiddlewaretoken=$token --data-urlencode email=admin@localhost \
               --data-urlencode password=admin https://tickets.example.org/control/login; \
             echo; {CURL} -b $jar -o /dev/null -w '%{{http_code}}' https://tickets.example.org/control/"
        ),
    )
}

fn pretix_shell(host: &TestHost, container: &str, python: &str) -> String {
    sh(
        host,
        "pretix shell in the container",
        &format!(
            "docker exec -e AUTOMIGRATE=skip {container} pretix shell -c {}",
            shell_quote(python)
        ),
    )
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn running_image(host: &TestHost, container: &str) -> String {
    sh(
        host,
        "the container's image",
        &format!("docker inspect --format '{{{{.Image}}}}' {container}"),
    )
    .trim()
    .to_owned()
}

#[test]
fn the_guide_on_a_fresh_server_install_upgrade_rollback_backup_and_restore() {
    let started = Instant::now();
    let real = real_image().expect("the real pretix image");
    let registry = Registry::start();
    let (image, first_id) = publish(&registry, &real);
    let suffix = format!("{:x}", std::process::id());
    let unit = format!("pretix-guide-{suffix}.service");
    let port = free_port();

    // The install, as the README says.
    let host = server();
    let site = site_for(&host, &image, &unit, port);
    host.write_file("/root/site.json", site.to_string().as_bytes(), 0o600)
        .expect("write the site");
    let recap = toolkit(
        &host,
        "install",
        "install --site /root/site.json --output /root/site.done.json",
    );
    assert!(
        recap.contains("pretix is installed at https://tickets.example.org"),
        "{recap}"
    );
    assert!(recap.contains("CHANGE THAT PASSWORD NOW"), "{recap}");

    // Real pretix through the generated nginx, over HTTPS.
    let health = sh(
        &host,
        "healthcheck over https",
        &format!("{CURL} -o /dev/null -w '%{{http_code}}' https://tickets.example.org/healthcheck/"),
    );
    assert_eq!(health, "200");
    let redirect = sh(
        &host,
        "port 80",
        &format!("{CURL} -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://tickets.example.org/control/"),
    );
    assert_eq!(redirect, "301 https://tickets.example.org/control/");
    let login = admin_login(&host);
    assert_eq!(
        login, "302 https://tickets.example.org/control/\n200",
        "the admin logs in"
    );

    // doctor: every tool's verify on the installed host.
    let doctor = host
        .sh("pretix-toolkit doctor --site /root/site.done.json --json")
        .expect("doctor");
    let report: Value = serde_json::from_str(&doctor.stdout).unwrap_or_else(|_| panic!("{}", doctor.describe()));
    let failures: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| finding["status"] == "failure")
        .collect();
    assert!(failures.is_empty(), "doctor found failures: {failures:#?}");
    assert!(
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|finding| finding["check"] == "default admin password" && finding["status"] == "warning"),
        "doctor warns while the default admin password works: {report:#}"
    );
    assert_eq!(report["healthy"], true);
    assert_eq!(doctor.code, 0);

    // A second install changes nothing.
    sh(
        &host,
        "install again",
        "pretix-toolkit install --site /root/site.json --output /root/site.again.json",
    );
    let again = read_document(&host, "/root/site.again.json");
    let changed: Vec<&Value> = again["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|result| result["changed"] == true)
        .collect();
    assert!(changed.is_empty(), "a second install changed something: {changed:#?}");

    // Data before the upgrade.
    pretix_shell(
        &host,
        &unit,
        "from pretix.base.models import Organizer; Organizer.objects.create(name=\"Before the upgrade\", slug=\"before\")",
    );

    // The next release behind the same tag; upgrade pulls it, restarts, runs pretix upgrade.
    let next = build_next_image(&real);
    let (_, next_id) = publish(&registry, &next);
    assert_ne!(next_id, first_id);
    let backups = format!("{}/backups", host.shared_dir().display());
    toolkit(
        &host,
        "upgrade",
        &format!("upgrade --site /root/site.done.json --backup-dir {backups} --output /root/site.upgraded.json"),
    );
    assert_eq!(running_image(&host, &unit), next_id, "the container runs the new image");
    let organizers = pretix_shell(
        &host,
        &unit,
        "from pretix.base.models import Organizer; print(list(Organizer.objects.values_list(\"slug\", flat=True)))",
    );
    assert!(
        organizers.contains("'before'"),
        "the data survived the upgrade: {organizers}"
    );
    let upgraded = read_document(&host, "/root/site.upgraded.json");
    assert!(
        upgraded["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|result| result["tool"] == "pretix-unit" && result["verb"] == "upgrade" && result["failed"] == false),
        "pretix upgrade ran: {upgraded}"
    );

    // Rollback to the first digest.
    toolkit(
        &host,
        "rollback",
        "rollback --site /root/site.upgraded.json --output /root/site.rolledback.json",
    );
    assert_eq!(
        running_image(&host, &unit),
        first_id,
        "the container runs the first image again"
    );
    assert_eq!(
        sh(
            &host,
            "healthcheck after the rollback",
            &format!("{CURL} -o /dev/null -w '%{{http_code}}' https://tickets.example.org/healthcheck/")
        ),
        "200"
    );

    // A backup, restored onto a second fresh server.
    let backup = host
        .sh(&format!(
            "pretix-toolkit backup --site /root/site.rolledback.json --dir {backups}"
        ))
        .expect("backup");
    assert!(backup.success(), "{}", backup.describe());
    let archive: Value = serde_json::from_str(&backup.stdout).expect("the backup names its archive");
    let archive = archive["archive"].as_str().expect("archive path").to_owned();
    let bytes = std::fs::read(&archive).expect("the archive is on the shared dir");
    drop(host);

    let second = server();
    let second_site = site_for(&second, &image, &unit, free_port());
    second
        .write_file("/root/site.json", second_site.to_string().as_bytes(), 0o600)
        .expect("write the site");
    second
        .write_file("/root/backup.tar", &bytes, 0o600)
        .expect("copy the archive");
    toolkit(
        &second,
        "restore onto a fresh server",
        "restore --archive /root/backup.tar --site /root/site.json --output /root/site.restored.json",
    );
    let organizers = pretix_shell(
        &second,
        &unit,
        "from pretix.base.models import Organizer; print(list(Organizer.objects.values_list(\"slug\", flat=True)))",
    );
    assert!(
        organizers.contains("'before'"),
        "the restored server has the organizer: {organizers}"
    );
    assert_eq!(admin_login(&second), "302 https://tickets.example.org/control/\n200");
    eprintln!("guide: the whole test took {:.0} s", started.elapsed().as_secs_f64());
}
