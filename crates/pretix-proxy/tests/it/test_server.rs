//! On the real-systemd test server (pretix-testkit's `TestHost`, Debian 12 with nginx under
//! systemd): pretix-proxy runs there as root with Debian's paths and `systemctl reload nginx`,
//! real pretix (the real image, on PostgreSQL, Redis and a pretix.cfg made by pretix-db,
//! pretix-redis and pretix-cfg on the same server) runs behind the generated site, and the default
//! admin logs in over HTTPS through it.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use pretix_proxy::probe::{self, HttpsRequest, Response};
use pretix_testkit::image::{Container, RunSpec};
use pretix_testkit::images::real_image;
use pretix_testkit::{TestHost, form_encode, toolkit_binary, wait_until};
use serde_json::{Value, json};

use crate::support::{SERVER_NAME, certificate};

const TOOLS: [&str; 4] = ["pretix-db", "pretix-redis", "pretix-cfg", "pretix-proxy"];

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

fn run_in(host: &TestHost, argv: &[&str], document: &Value) -> (i64, Value, String) {
    let output = host
        .exec_with_stdin(argv, document.to_string().as_bytes())
        .expect("run a tool in the test host");
    let document = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("{argv:?} printed no document ({error}): {}", output.describe()));
    (output.code, document, output.stderr)
}

fn last_result(document: &Value) -> &Value {
    document["results"]
        .as_array()
        .and_then(|results| results.last())
        .unwrap_or(&Value::Null)
}

fn container_address(container: &Container) -> String {
    let output = Command::new("docker")
        .args(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &container.id])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The value of `name="<field>" value="..."` in a form.
fn form_value(html: &str, field: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{field}\""))?;
    let rest = &html[at..];
    let start = rest.find("value=\"")? + "value=\"".len();
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].to_owned())
}

fn cookies(response: &Response, jar: &mut Vec<(String, String)>) {
    for (name, value) in &response.headers {
        if !name.eq_ignore_ascii_case("set-cookie") {
            continue;
        }
        if let Some((key, value)) = value.split(';').next().and_then(|pair| pair.split_once('=')) {
            jar.retain(|(existing, _)| existing != key.trim());
            jar.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
}

fn cookie_header(jar: &[(String, String)]) -> String {
    jar.iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn real_pretix_behind_the_site_on_the_test_server_and_the_admin_logs_in_over_https() {
    let host = TestHost::boot().expect("boot the test host");
    host.install_binaries(&TOOLS.map(toolkit_binary))
        .expect("install the tools");
    let shared = host.shared_dir().display().to_string();
    // The sysadmin's part for a Redis socket outside /run/redis (in the dir shared with the
    // machine's engine): the directory, and Debian's redis-server sandbox opened for it.
    let prepare = host
        .sh(&format!(
            "install -d -o redis -g redis -m 2755 {shared}/redis && \
             printf '[Service]\\nReadWritePaths={shared}/redis\\n' > /etc/systemd/system/redis-server.service.d/20-socket-dir.conf && \
             systemctl daemon-reload"
        ))
        .expect("prepare the redis socket dir");
    assert!(prepare.success(), "{}", prepare.describe());

    // PostgreSQL, Redis and pretix.cfg by the toolkit, as root on the server.
    let mut document = json!({
        "config": {
            "pretix": {"url": format!("https://{SERVER_NAME}"), "ecb_rates": false},
            "mail": {"from": "tickets@example.test"}
        },
        "paths": {"config_dir": format!("{shared}/etc-pretix"), "data_dir": format!("{shared}/data")},
        "database": {"docker_host": host.address(), "docker_subnet": host.docker_subnet(), "restart": true},
        "redis": {"socket": format!("{shared}/redis/redis.sock")}
    });
    for tool in ["pretix-db", "pretix-redis", "pretix-cfg"] {
        let (code, next, stderr) = run_in(&host, &[tool, "apply"], &document);
        assert_eq!(code, 0, "{tool} apply: {stderr}\n{next}");
        document = next;
        document.as_object_mut().expect("object").remove("results");
    }
    let mut binds = vec![
        format!("{shared}/data:/data"),
        format!("{shared}/etc-pretix:/etc/pretix"),
    ];
    binds.extend(strings(&document["container"]["volumes"]));
    let pretix = Container::start(&RunSpec {
        image: real_image().expect("the real pretix image"),
        command: vec!["all".to_owned()],
        env: vec!["NUM_WORKERS=1".to_owned()],
        binds,
        group_add: strings(&document["container"]["group_add"]),
        ..RunSpec::default()
    })
    .expect("start the real pretix image");
    let upstream = format!("{}:80", container_address(&pretix));

    // The certificate and key where Debian keeps them; the site with Debian's paths and the real
    // systemctl.
    let (cert, key) = certificate(&[SERVER_NAME]);
    host.write_file(&format!("/etc/ssl/certs/{SERVER_NAME}.pem"), cert.as_bytes(), 0o644)
        .expect("certificate");
    host.write_file(&format!("/etc/ssl/private/{SERVER_NAME}.key"), key.as_bytes(), 0o600)
        .expect("key");
    document["proxy"] = json!({"upstream": upstream});
    let (code, applied, stderr) = run_in(&host, &["pretix-proxy", "apply"], &document);
    assert_eq!(code, 0, "pretix-proxy apply: {stderr}\n{applied}");
    let actions = last_result(&applied)["actions"].to_string();
    assert!(actions.contains("systemctl reload nginx"), "{actions}");
    let enabled = host
        .exec(&["readlink", "/etc/nginx/sites-enabled/pretix"])
        .expect("readlink");
    assert_eq!(enabled.stdout.trim(), "/etc/nginx/sites-available/pretix");
    let active = host.exec(&["systemctl", "is-active", "nginx"]).expect("systemctl");
    assert_eq!(active.stdout.trim(), "active", "{}", host.journal("nginx"));

    // A second run changes nothing and does not reload.
    let mut again = applied.clone();
    again.as_object_mut().expect("object").remove("results");
    let (code, rerun, stderr) = run_in(&host, &["pretix-proxy", "apply"], &again);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(last_result(&rerun)["changed"], false, "{}", last_result(&rerun));

    let leaf = pretix_proxy::cert::inspect(cert.as_bytes(), key.as_bytes())
        .expect("certificate")
        .leaf_der;
    let https: SocketAddr = format!("{}:443", host.address()).parse().expect("address");
    let request = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        probe::https_request(
            https,
            SERVER_NAME,
            &HttpsRequest {
                method,
                host: SERVER_NAME,
                path,
                headers,
                body,
            },
            &leaf,
        )
    };
    // The first start migrates an empty database before pretix serves.
    wait_until(
        "pretix's /healthcheck/ answering 200 through the test server's nginx",
        Duration::from_secs(900),
        || request("GET", "/healthcheck/", &[], "").is_ok_and(|response| response.status == 200),
        || pretix.logs(),
    );

    let http: SocketAddr = format!("{}:80", host.address()).parse().expect("address");
    let redirect = probe::http_get(http, SERVER_NAME, "/control/").expect("port 80");
    assert_eq!(
        (redirect.status, redirect.header("Location")),
        (301, Some(format!("https://{SERVER_NAME}/control/").as_str()))
    );

    // The default admin logs in: pretix sees https (X-Forwarded-Proto), its own host name (Host)
    // and accepts the CSRF check only because both agree with its url.
    let mut jar = Vec::new();
    let form = request("GET", "/control/login", &[], "").expect("GET the login form");
    assert_eq!(form.status, 200, "{}", form.body);
    cookies(&form, &mut jar);
    let token = form_value(&form.body, "csrfmiddlewaretoken").expect("a CSRF token in the form");
    let body = form_encode(&[
        ("csrfmiddlewaretoken", &token),
        ("email", "admin@localhost"),
        ("password", "admin"),
    ]);
    let referer = format!("https://{SERVER_NAME}/control/login");
    let cookie = cookie_header(&jar);
    let login = request(
        "POST",
        "/control/login",
        &[
            ("Cookie", &cookie),
            ("Referer", &referer),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &body,
    )
    .expect("POST the login form");
    assert_eq!(login.status, 302, "{}", login.body);
    let location = login.header("Location").unwrap_or_default().to_owned();
    assert!(location.ends_with("/control/"), "{location}");
    cookies(&login, &mut jar);
    let cookie = cookie_header(&jar);
    let dashboard = request("GET", "/control/", &[("Cookie", &cookie)], "").expect("GET /control/");
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert!(dashboard.body.contains("Dashboard"), "{}", dashboard.body);
    assert_eq!(dashboard.header("Strict-Transport-Security"), Some("max-age=63072000"));

    // verify on the server: everything ok, pretix healthy behind the site.
    let (code, verified, stderr) = run_in(&host, &["pretix-proxy", "verify"], &again);
    assert_eq!(code, 0, "pretix-proxy verify: {stderr}\n{verified}");
    let checks = last_result(&verified)["checks"].clone();
    for item in checks.as_array().into_iter().flatten() {
        assert_eq!(item["status"], "ok", "{item}");
    }
}
