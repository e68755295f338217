//! The real pretix image, configured by our tools on a real Debian 12 server with systemd
//! (pretix-testkit's `TestHost`): pretix-db, pretix-redis and pretix-cfg run there as root with
//! the real systemctl, and the real image, started on the machine's engine with the guide's
//! volumes, serves, migrates, runs its cron job and lets the default admin log in.

use std::time::Duration;

use pretix_testkit::image::{Container, RunSpec};
use pretix_testkit::images::real_image;
use pretix_testkit::{TestHost, form_encode, free_port, http_request, toolkit_binary, wait_until};
use serde_json::{Value, json};

const TOOLS: [&str; 3] = ["pretix-db", "pretix-redis", "pretix-cfg"];

/// A test host with our tools installed and a site whose data, config and Redis socket dirs
/// live in its shared dir, as the guide lays them out.
struct Deployment {
    host: TestHost,
    site: Value,
    port: u16,
}

impl Deployment {
    fn prepare() -> Deployment {
        let binaries = TOOLS.map(toolkit_binary);
        let host = TestHost::boot().expect("boot the test host");
        host.install_binaries(&binaries).expect("install the tools");
        let shared = host.shared_dir().display().to_string();
        // The sysadmin's part for a socket outside /run/redis: the directory, and the sandbox
        // of Debian's redis-server.service opened for it (pretix-redis warns about both).
        let prepare = host
            .sh(&format!(
                "install -d -o redis -g redis -m 2755 {shared}/redis && \
                 printf '[Service]\\nReadWritePaths={shared}/redis\\n' > /etc/systemd/system/redis-server.service.d/20-socket-dir.conf && \
                 systemctl daemon-reload"
            ))
            .expect("prepare the redis socket dir");
        assert!(prepare.success(), "{}", prepare.describe());
        let port = free_port();
        let site = json!({
            "config": {
                "pretix": {"url": format!("http://127.0.0.1:{port}"), "ecb_rates": false},
                "mail": {"from": "tickets@example.org"}
            },
            "paths": {
                "config_dir": format!("{shared}/etc-pretix"),
                "data_dir": format!("{shared}/data")
            },
            "database": {
                "docker_host": host.address(),
                "docker_subnet": host.docker_subnet(),
                // listen_addresses gains the docker_host: PostgreSQL must restart for it.
                "restart": true
            },
            "redis": {"socket": format!("{shared}/redis/redis.sock")}
        });
        Deployment { host, site, port }
    }

    fn run_tool(&self, tool: &str, verb: &str, document: &Value) -> (i64, Value, String) {
        let output = self
            .host
            .exec_with_stdin(&[tool, verb], document.to_string().as_bytes())
            .expect("run a tool in the test host");
        let document = serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("{tool} printed no document ({error}): {}", output.describe()));
        (output.code, document, output.stderr)
    }

    /// db | redis | cfg, each as root on the test host; every step must succeed.
    fn apply_all(&self) -> Value {
        let mut document = self.site.clone();
        for tool in TOOLS {
            let (code, next, stderr) = self.run_tool(tool, "apply", &document);
            assert_eq!(code, 0, "{tool} apply failed: {stderr}\n{next}");
            document = next;
        }
        document
    }

    /// The real image with the guide's volumes and the ones pretix-redis added, port 80
    /// published on loopback.
    fn start_pretix(&self, document: &Value) -> Container {
        self.start_pretix_with(document, &[])
    }

    fn start_pretix_with(&self, document: &Value, env: &[&str]) -> Container {
        let mut binds = vec![
            format!("{}:/data", self.site["paths"]["data_dir"].as_str().unwrap_or_default()),
            format!(
                "{}:/etc/pretix",
                self.site["paths"]["config_dir"].as_str().unwrap_or_default()
            ),
        ];
        binds.extend(strings(&document["container"]["volumes"]));
        Container::start(&RunSpec {
            image: real_image().expect("the real pretix image"),
            command: vec!["all".to_owned()],
            env: std::iter::once("NUM_WORKERS=2")
                .chain(env.iter().copied())
                .map(str::to_owned)
                .collect(),
            binds,
            publish_80_on: Some(self.port),
            group_add: strings(&document["container"]["group_add"]),
            ..RunSpec::default()
        })
        .expect("start the real pretix image")
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_request(self.port, "GET", path, &[], "")
            .map(|response| (response.status, response.body))
            .unwrap_or((0, String::new()))
    }

    fn wait_for_health(&self, container: &Container) {
        // The first start migrates an empty database (about 300 migrations) before serving.
        wait_until(
            "/healthcheck/ answering 200 through the image's nginx",
            Duration::from_secs(900),
            || self.get("/healthcheck/").0 == 200,
            || container.logs(),
        );
    }

    /// A file in the data dir's media, owned by the container user, as pretix writes them.
    fn put_media_file(&self) -> String {
        let dir = self.host.shared_dir().join("data/media/pub");
        std::fs::create_dir_all(&dir).expect("media/pub");
        let file = dir.join("pretix-testkit.txt");
        std::fs::write(&file, "media from the data dir\n").expect("write a media file");
        for path in [dir.as_path(), file.as_path()] {
            std::os::unix::fs::chown(path, Some(15371), Some(15371)).expect("chown");
        }
        "/media/pub/pretix-testkit.txt".to_owned()
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of `name="<field>" value="…"` in a form.
fn form_value(html: &str, field: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{field}\""))?;
    let rest = &html[at..];
    let start = rest.find("value=\"")? + "value=\"".len();
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].to_owned())
}

fn cookie_header(cookies: &[(String, String)]) -> String {
    cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn real_pretix_runs_on_what_our_tools_made_on_a_debian_server() {
    let deployment = Deployment::prepare();
    let document = deployment.apply_all();
    let container = deployment.start_pretix(&document);
    deployment.wait_for_health(&container);
    let port = deployment.port;
    let host_header = format!("127.0.0.1:{port}");
    let origin = format!("http://{host_header}");

    // Static files from the image, media from the data dir: both read by nginx as uid 33.
    let (status, login_page) = deployment.get("/control/login");
    assert_eq!(status, 200, "{login_page}");
    let static_path = login_page
        .split("\"")
        .find(|part| part.starts_with("/static/") && part.ends_with(".css"))
        .unwrap_or_else(|| panic!("no stylesheet under /static/ on the login page: {login_page}"))
        .to_owned();
    assert_eq!(deployment.get(&static_path).0, 200, "{static_path}");
    let media = deployment.put_media_file();
    assert_eq!(deployment.get(&media), (200, "media from the data dir\n".to_owned()));

    // pretix's own host check: a Host that does not match `url` is refused.
    let foreign = http_request(port, "GET", "/control/login", &[("Host", "tickets.invalid")], "").expect("GET");
    assert_eq!(foreign.status, 400, "{}", foreign.body);

    let (code, output) = container.exec(&["pretix", "migrate"]).expect("exec migrate");
    assert_eq!(code, 0, "pretix migrate: {output}");
    let (code, output) = container.exec(&["pretix", "cron"]).expect("exec cron");
    assert_eq!(code, 0, "pretix cron: {output}");

    // The default admin logs in: CSRF cookie and token, a same-origin Referer, a matching Host.
    let form = http_request(port, "GET", "/control/login", &[], "").expect("GET the login form");
    let mut cookies = form.cookies();
    let token = form_value(&form.body, "csrfmiddlewaretoken").expect("a CSRF token in the form");
    let referer = format!("{origin}/control/login");
    let body = form_encode(&[
        ("csrfmiddlewaretoken", &token),
        ("email", "admin@localhost"),
        ("password", "admin"),
    ]);
    let login = http_request(
        port,
        "POST",
        "/control/login",
        &[
            ("Cookie", &cookie_header(&cookies)),
            ("Referer", &referer),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &body,
    )
    .expect("POST the login form");
    assert_eq!(login.status, 302, "the login was refused: {}", login.body);
    assert!(
        login
            .header("Location")
            .is_some_and(|location| location.ends_with("/control/")),
        "{:?}",
        login.headers
    );
    cookies.extend(login.cookies());
    let dashboard =
        http_request(port, "GET", "/control/", &[("Cookie", &cookie_header(&cookies))], "").expect("GET the dashboard");
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert!(dashboard.body.contains("Dashboard"), "{}", dashboard.body);
}

#[test]
fn real_pretix_media_fails_when_uid_33_cannot_read_the_data_dir() {
    let deployment = Deployment::prepare();
    let document = deployment.apply_all();
    // A sysadmin's mistake after the install: the data dir owner-only, its ACL gone.
    let data_dir = deployment.site["paths"]["data_dir"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let broken = deployment
        .host
        .sh(&format!("chmod 0700 {data_dir} && setfacl -b {data_dir}"))
        .expect("chmod");
    assert!(broken.success(), "{}", broken.describe());
    // The image's nginx serves media without pretix: no need to wait for the migrations.
    let container = deployment.start_pretix_with(&document, &["AUTOMIGRATE=skip"]);
    let media = deployment.put_media_file();
    wait_until(
        "the image's nginx answering",
        Duration::from_secs(120),
        || ![0, 502].contains(&deployment.get(&media).0),
        || container.logs(),
    );
    let (status, body) = deployment.get(&media);
    assert_eq!(
        status, 403,
        "nginx (uid 33) read a media file in an owner-only data dir: {body}"
    );

    // pretix-cfg verify names the problem, and apply repairs it.
    let (code, verified, stderr) = deployment.run_tool("pretix-cfg", "verify", &document);
    assert_eq!(
        code, 1,
        "pretix-cfg verify passed an unreadable data dir: {stderr}\n{verified}"
    );
    assert!(format!("{stderr}{verified}").contains("uid 33"), "{stderr}\n{verified}");
    let mut again = document.clone();
    if let Some(map) = again.as_object_mut() {
        map.remove("results");
    }
    let (code, _, stderr) = deployment.run_tool("pretix-cfg", "apply", &again);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(deployment.get(&media), (200, "media from the data dir\n".to_owned()));
}
