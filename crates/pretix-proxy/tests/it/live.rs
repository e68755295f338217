//! Against a real nginx (testkit, temp prefix, loopback ports) reloaded with `nginx -s reload`:
//! what the site serves, what the upstream sees, TLS versions, and that a refused or bad change
//! leaves the old site live and nginx not reloaded.

use std::process::Command;

use serde_json::json;

use crate::support::{Echo, Host, SERVER_NAME, mtime, run, run_with, with_proxy};

fn get_https(host: &Host, path: &str) -> pretix_proxy::probe::Response {
    let cert = std::fs::read(host.path("tls/cert.pem")).expect("cert");
    let key = std::fs::read(host.path("tls/key.pem")).expect("key");
    let leaf = pretix_proxy::cert::inspect(&cert, &key).expect("cert").leaf_der;
    let address = format!("127.0.0.1:{}", host.https_port).parse().expect("address");
    pretix_proxy::probe::https_get(
        address,
        SERVER_NAME,
        &format!("{SERVER_NAME}:{}", host.https_port),
        path,
        &leaf,
    )
    .expect("https")
}

/// `openssl s_client` with one protocol version; `Ok(protocol)` when the handshake succeeds.
fn handshake(port: u16, version_flag: &str) -> Result<String, String> {
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            SERVER_NAME,
            version_flag,
        ])
        // Let this client offer old versions at all (OpenSSL 3 refuses TLS 1.1 below level 0), so
        // a refusal comes from the server.
        .args(["-cipher", "DEFAULT:@SECLEVEL=0"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client (Debian's openssl package)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    // The session block's "Protocol  : TLSv1.2"; TLS 1.3 prints no session block without a
    // session ticket (the site sends none), so then "New, TLSv1.3, Cipher is ..." (that line names
    // the cipher's version, which for TLS 1.3 is the protocol's). A failed handshake says
    // "New, (NONE), Cipher is (NONE)".
    let session = stdout.lines().find_map(|line| {
        line.trim()
            .strip_prefix("Protocol  : ")
            .or_else(|| line.trim().strip_prefix("Protocol: "))
    });
    let new_line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("New, "))
        .and_then(|rest| rest.split(',').next());
    let protocol = session
        .or(new_line)
        .filter(|protocol| *protocol != "(NONE)")
        .map(str::to_owned);
    match (output.status.success(), protocol) {
        (true, Some(protocol)) => Ok(protocol),
        _ => Err(format!("{stdout}{}", String::from_utf8_lossy(&output.stderr))),
    }
}

#[test]
fn the_site_redirects_serves_acme_and_proxies_with_the_forwarded_headers() {
    let host = Host::new();
    let echo = Echo::start();
    let reloads = host.reloads_after(0);
    let run = run(&["apply"], &host.document(echo.port, json!({})));
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(run.has_action("reload nginx (nginx -s reload)"), "{:?}", run.actions());
    assert_eq!(host.reloads_after(reloads + 1), reloads + 1);
    host.wait_for_https();

    let address = format!("127.0.0.1:{}", host.http_port).parse().expect("address");
    let redirect = pretix_proxy::probe::http_get(address, SERVER_NAME, "/control/login?next=/x").expect("http");
    assert_eq!(redirect.status, 301);
    assert_eq!(
        redirect.header("Location"),
        Some(format!("{}/control/login?next=/x", host.url()).as_str())
    );

    let challenge = host.path("acme/.well-known/acme-challenge");
    std::fs::create_dir_all(&challenge).expect("mkdir");
    std::fs::write(challenge.join("token123"), "token123.thumbprint").expect("token");
    let acme =
        pretix_proxy::probe::http_get(address, SERVER_NAME, "/.well-known/acme-challenge/token123").expect("acme");
    assert_eq!((acme.status, acme.body.as_str()), (200, "token123.thumbprint"));

    let proxied = get_https(&host, "/control/");
    assert_eq!(proxied.status, 200, "{proxied:?}");
    let seen = proxied.body.to_ascii_lowercase();
    assert!(seen.starts_with("get /control/ http/1.0\r\n"), "{seen}");
    assert!(seen.contains("\r\nx-forwarded-proto: https\r\n"), "{seen}");
    assert!(
        seen.contains(&format!("\r\nhost: {SERVER_NAME}:{}\r\n", host.https_port)),
        "the original Host: {seen}"
    );
    assert!(seen.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"), "{seen}");
    assert_eq!(
        proxied.header("Strict-Transport-Security"),
        Some("max-age=63072000"),
        "{proxied:?}"
    );

    let verify = crate::support::run(&["verify"], &run.next_input());
    assert_eq!(verify.code, 0, "{}", verify.describe());
    for item in [
        "site file",
        "site enabled",
        "certificate",
        "nginx -t",
        "http redirect",
        "pretix over https",
    ] {
        assert_eq!(
            verify.check_item(item).map(|item| item.0),
            Some("ok".to_owned()),
            "{item}: {}",
            verify.stderr
        );
    }
    assert_eq!(host.reloads_after(reloads + 1), reloads + 1, "verify never reloads");
}

#[test]
fn tls_1_2_and_1_3_are_served_and_tls_1_1_is_refused() {
    let host = Host::new();
    let echo = Echo::start();
    let run = run(&["apply"], &host.document(echo.port, json!({})));
    assert_eq!(run.code, 0, "{}", run.describe());
    host.wait_for_https();
    assert_eq!(handshake(host.https_port, "-tls1_2").as_deref(), Ok("TLSv1.2"));
    assert_eq!(handshake(host.https_port, "-tls1_3").as_deref(), Ok("TLSv1.3"));
    assert!(handshake(host.https_port, "-tls1_1").is_err(), "TLS 1.1 accepted");

    // The same client reaches TLS 1.1 on a server that allows it: the refusal above is the
    // site's profile, not the client.
    let cert = host.path("tls/cert.pem");
    let key = host.path("tls/key.pem");
    let old = pretix_testkit::Nginx::start_with_site(&format!(
        "server {{ listen 127.0.0.1:{{PORT}} ssl; ssl_certificate {}; ssl_certificate_key {}; \
         ssl_protocols TLSv1.1 TLSv1.2; ssl_ciphers DEFAULT:@SECLEVEL=0; return 200 'old'; }}",
        cert.display(),
        key.display()
    ));
    assert_eq!(handshake(old.port(), "-tls1_1").as_deref(), Ok("TLSv1.1"));
}

#[test]
fn a_rerun_changes_nothing_and_does_not_reload() {
    let host = Host::new();
    let echo = Echo::start();
    let document = host.document(echo.port, json!({}));
    let first = run(&["apply"], &document);
    assert_eq!(first.code, 0, "{}", first.describe());
    let reloads = host.reloads_after(1);
    let site = mtime(&host.site_file());
    let link = std::fs::symlink_metadata(host.path("sites-enabled/pretix")).expect("link");

    let second = run(&["apply"], &first.next_input());
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(!second.changed(), "{:?}", second.actions());
    assert!(second.actions().is_empty(), "{:?}", second.actions());
    assert_eq!(mtime(&host.site_file()), site);
    let link_after = std::fs::symlink_metadata(host.path("sites-enabled/pretix")).expect("link");
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&link_after),
        std::os::unix::fs::MetadataExt::ino(&link)
    );
    assert_eq!(host.reloads_after(reloads), reloads, "no reload on a re-run");
}

#[test]
fn a_broken_certificate_path_or_an_injected_name_keeps_the_old_site() {
    let host = Host::new();
    let echo = Echo::start();
    let first = run(&["apply"], &host.document(echo.port, json!({})));
    assert_eq!(first.code, 0, "{}", first.describe());
    let old = std::fs::read(host.site_file()).expect("site");
    let site = mtime(&host.site_file());
    let reloads = host.reloads_after(1);

    let broken = host.document(echo.port, json!({"certificate": host.path("tls/missing.pem")}));
    let run_broken = run(&["apply"], &broken);
    assert_eq!(run_broken.code, 2, "{}", run_broken.describe());
    assert!(
        run_broken.msg().contains("missing.pem does not exist"),
        "{}",
        run_broken.msg()
    );

    let injected = host.document(
        echo.port,
        json!({"server_name": "tickets.example.test;include /etc/shadow"}),
    );
    let run_injected = run(&["apply"], &injected);
    assert_eq!(run_injected.code, 2, "{}", run_injected.describe());
    assert!(
        run_injected.msg().starts_with("proxy.server_name"),
        "{}",
        run_injected.msg()
    );

    assert_eq!(std::fs::read(host.site_file()).expect("site"), old);
    assert_eq!(mtime(&host.site_file()), site);
    assert_eq!(host.reloads_after(reloads), reloads, "nginx was reloaded");
    assert_eq!(get_https(&host, "/").status, 200, "the old site still serves");
}

#[test]
fn a_configuration_nginx_refuses_is_rolled_back_and_not_reloaded() {
    let host = Host::new();
    let echo = Echo::start();
    let first = run(&["apply"], &host.document(echo.port, json!({})));
    assert_eq!(first.code, 0, "{}", first.describe());
    let old = std::fs::read(host.site_file()).expect("site");
    // Another site on the host is already the default server of the same port.
    let other = host.path("sites-available/other");
    std::fs::write(
        &other,
        format!(
            "server {{ listen 127.0.0.1:{} default_server; return 404; }}\n",
            host.http_port
        ),
    )
    .expect("other site");
    std::os::unix::fs::symlink(&other, host.path("sites-enabled/other")).expect("link");
    let reloads = host.reloads_after(1);

    let refused = run(&["apply"], &host.document(echo.port, json!({"default_server": true})));
    assert_eq!(refused.code, 1, "{}", refused.describe());
    assert!(
        refused.msg().contains("nginx -t refused the configuration"),
        "{}",
        refused.msg()
    );
    assert!(refused.msg().contains("duplicate default server"), "{}", refused.msg());
    assert!(
        refused
            .msg()
            .contains("the previous site was restored and nginx was not reloaded"),
        "{}",
        refused.msg()
    );
    assert_eq!(std::fs::read(host.site_file()).expect("site"), old);
    assert_eq!(host.reloads_after(reloads), reloads);
}

#[test]
fn a_first_site_nginx_refuses_is_removed_again() {
    let host = Host::new();
    let echo = Echo::start();
    let other = host.path("sites-available/other");
    std::fs::write(
        &other,
        format!(
            "server {{ listen 127.0.0.1:{} default_server; return 404; }}\n",
            host.http_port
        ),
    )
    .expect("other site");
    std::os::unix::fs::symlink(&other, host.path("sites-enabled/other")).expect("link");
    let reloads = host.reloads_after(0);
    let refused = run(&["apply"], &host.document(echo.port, json!({"default_server": true})));
    assert_eq!(refused.code, 1, "{}", refused.describe());
    assert!(!host.site_file().exists(), "the new site is removed");
    assert!(
        std::fs::symlink_metadata(host.path("sites-enabled/pretix")).is_err(),
        "the link is removed"
    );
    assert_eq!(host.reloads_after(reloads), reloads);
}

#[test]
fn systemd_reload_goes_through_the_systemctl_seam() {
    let host = Host::new();
    let echo = Echo::start();
    let record = host.path("systemctl.log");
    let document = host.document(echo.port, json!({"reload": "systemd"}));
    let mut command = Command::new(crate::support::BIN);
    command.arg("apply");
    let first = run_with(command.env(pretix_site::service::RECORD_ENV, &record), &document);
    assert_eq!(first.code, 0, "{}", first.describe());
    let calls = std::fs::read_to_string(&record).expect("record");
    assert_eq!(calls.trim(), r#"{"argv":["systemctl","reload","nginx"]}"#);

    let mut command = Command::new(crate::support::BIN);
    command.arg("apply");
    let second = run_with(
        command.env(pretix_site::service::RECORD_ENV, &record),
        &first.next_input(),
    );
    assert_eq!(second.code, 0, "{}", second.describe());
    assert_eq!(
        std::fs::read_to_string(&record).expect("record"),
        calls,
        "no reload on a re-run"
    );
}

#[test]
fn acme_without_a_reachable_ca_restores_the_previous_site() {
    let host = Host::new();
    let echo = Echo::start();
    let first = run(&["apply"], &host.document(echo.port, json!({})));
    assert_eq!(first.code, 0, "{}", first.describe());
    let old = std::fs::read(host.site_file()).expect("site");
    let reloads = host.reloads_after(1);
    // No ACME CA is reachable here: certbot (when installed) fails on the unreachable directory,
    // and without certbot the tool says how to install it. Either way the port-80 site went live
    // for the challenge and the previous site must come back, live again.
    let mut document = host.document(
        echo.port,
        json!({"certificate_source": "acme", "acme_server": "https://127.0.0.1:9/directory"}),
    );
    document["proxy"].as_object_mut().expect("proxy").remove("certificate");
    document["proxy"]
        .as_object_mut()
        .expect("proxy")
        .remove("certificate_key");
    let failed = run(&["apply"], &document);
    assert_eq!(failed.code, 1, "{}", failed.describe());
    assert!(failed.msg().contains("certbot"), "{}", failed.msg());
    assert!(
        failed
            .msg()
            .contains("the previous site was restored and nginx reloaded with it"),
        "{}",
        failed.msg()
    );
    assert_eq!(std::fs::read(host.site_file()).expect("site"), old);
    assert_eq!(
        host.reloads_after(reloads + 2),
        reloads + 2,
        "the challenge site, then the previous one"
    );
    host.wait_for_https();
    assert_eq!(get_https(&host, "/").status, 200, "the previous site serves again");
}

#[test]
fn verify_fails_when_pretix_behind_the_proxy_is_down() {
    let host = Host::new();
    let echo = Echo::start();
    let applied = run(&["apply"], &host.document(echo.port, json!({})));
    assert_eq!(applied.code, 0, "{}", applied.describe());
    host.wait_for_https();
    let dead = pretix_testkit::free_port();
    let document = with_proxy(applied.next_input(), "upstream", json!(format!("127.0.0.1:{dead}")));
    let reapplied = run(&["apply"], &document);
    assert_eq!(reapplied.code, 0, "{}", reapplied.describe());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let verify = run(&["verify"], &reapplied.next_input());
    assert_eq!(verify.code, 1, "{}", verify.describe());
    let (status, message) = verify.check_item("pretix over https").expect("item");
    assert_eq!(status, "failure", "{message}");
    assert!(message.contains("502"), "{message}");
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (Debian's package)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_key_of_another_type_in_a_form_the_tool_does_not_parse_is_refused() {
    let host = Host::new();
    let echo = Echo::start();
    // The certificate is ECDSA; an RSA key in the old PKCS#1 form. OpenSSL (so nginx -t) takes
    // such a key without a word, and every handshake would fail.
    let key = host.path("tls/key.pem").display().to_string();
    openssl(&["genrsa", "-traditional", "-out", &key, "2048"]);
    let refused = run(&["apply"], &host.document(echo.port, json!({})));
    assert_eq!(refused.code, 2, "{}", refused.describe());
    assert!(
        refused.msg().contains("it is an RSA key, the certificate's is not"),
        "{}",
        refused.msg()
    );
    assert!(!host.site_file().exists());
}

#[test]
fn a_key_only_nginx_can_compare_is_still_checked_before_anything_goes_live() {
    let host = Host::new();
    let echo = Echo::start();
    // An RSA certificate, and another RSA key in the old PKCS#1 form, which the tool does not
    // compare itself: nginx -t is what refuses it, in the plan and in the apply.
    let cert = host.path("tls/cert.pem").display().to_string();
    let key = host.path("tls/key.pem").display().to_string();
    let other = host.path("tls/other.pem").display().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &other,
        "-out",
        &cert,
        "-days",
        "30",
        "-subj",
        "/CN=tickets.example.test",
        "-addext",
        "subjectAltName=DNS:tickets.example.test",
    ]);
    openssl(&["genrsa", "-traditional", "-out", &key, "2048"]);
    let document = host.document(echo.port, json!({}));
    let reloads = host.reloads_after(0);

    let plan = run(&["apply", "--check"], &document);
    assert_eq!(plan.code, 1, "{}", plan.describe());
    assert!(
        plan.msg().contains("the planned site would not go live"),
        "{}",
        plan.msg()
    );
    assert!(plan.msg().contains("key values mismatch"), "{}", plan.msg());

    let applied = run(&["apply"], &document);
    assert_eq!(applied.code, 1, "{}", applied.describe());
    assert!(
        applied.msg().contains("nginx -t refused the configuration"),
        "{}",
        applied.msg()
    );
    assert!(applied.msg().contains("key values mismatch"), "{}", applied.msg());
    assert!(!host.site_file().exists(), "the new site is removed again");
    assert_eq!(host.reloads_after(reloads), reloads);
}

#[test]
fn a_sites_enabled_nginx_does_not_include_is_refused_and_nothing_reloads() {
    let host = Host::new();
    let echo = Echo::start();
    std::fs::create_dir(host.path("elsewhere")).expect("mkdir");
    let reloads = host.reloads_after(0);
    let document = host.document(echo.port, json!({"sites_enabled": host.path("elsewhere")}));
    let refused = run(&["apply"], &document);
    assert_eq!(refused.code, 1, "{}", refused.describe());
    assert!(refused.msg().contains("does not include"), "{}", refused.msg());
    assert!(
        refused
            .msg()
            .contains("the previous site was restored and nginx was not reloaded"),
        "{}",
        refused.msg()
    );
    assert!(!host.site_file().exists());
    assert!(std::fs::symlink_metadata(host.path("elsewhere/pretix")).is_err());
    assert_eq!(host.reloads_after(reloads), reloads);
}
