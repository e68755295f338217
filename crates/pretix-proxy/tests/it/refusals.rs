//! A document that could inject nginx directives or arguments, or that disagrees with itself, is
//! refused with exit 2, the field named, and nothing on the host touched.

use serde_json::{Value, json};

use crate::support::{Stage, run, with_proxy};

fn refused(stage: &Stage, document: &Value, field: &str) {
    let run = run(&["apply", "--root", &stage.root_arg()], document);
    assert_eq!(run.code, 2, "{field}: {}", run.describe());
    assert!(run.msg().starts_with(field), "{field}: {}", run.msg());
    for path in [
        "/etc/nginx/sites-available/pretix",
        "/etc/nginx/sites-enabled/pretix",
        "/var/www/pretix-acme",
    ] {
        assert!(!stage.path(path).exists(), "{field}: {path} was made");
    }
}

#[test]
fn injected_directives_are_refused() {
    let stage = Stage::new();
    let cases: Vec<(&str, Value)> = vec![
        ("server_name", json!("tickets.example.test; include /etc/shadow")),
        ("server_name", json!("tickets.example.test\n}")),
        ("server_name", json!("$host")),
        ("server_name", json!("a.example.test b.example.test")),
        ("upstream", json!("127.0.0.1:8345; return 200")),
        ("upstream", json!("127.0.0.1:8345/x{")),
        ("upstream", json!("unix:/run/x.sock")),
        ("certificate", json!("/etc/ssl/certs/x.pem;\n    include /etc/shadow")),
        ("certificate", json!("/etc/ssl/certs/\"x.pem")),
        ("certificate_key", json!("/etc/ssl/private/../../shadow")),
        ("certificate_key", json!("relative/key.pem")),
        ("acme_webroot", json!("/var/www/a b")),
        ("sites_available", json!("/etc/nginx/sites-$available")),
        ("site_name", json!("../pretix")),
        ("site_name", json!("pre;tix")),
        ("listen_address", json!("0.0.0.0; listen 8080")),
        ("acme_email", json!("--server=https://evil.example/directory")),
        ("service", json!("nginx --now")),
        ("https_port", json!(0)),
        ("unknown_key", json!(1)),
    ];
    for (key, value) in cases {
        let mut document = with_proxy(stage.document(), key, value.clone());
        if key == "server_name" {
            // The URL follows the name, so only the name can be at fault.
            document["config"]["pretix"]["url"] = json!("https://tickets.example.test");
        }
        let field = if key == "unknown_key" {
            "proxy.unknown_key".to_owned()
        } else {
            format!("proxy.{key}")
        };
        refused(&stage, &document, &field);
    }
}

#[test]
fn the_url_must_be_https_on_the_server_name() {
    let stage = Stage::new();
    for url in [
        "http://tickets.example.test",
        "https://other.example.test",
        "https://tickets.example.test/shop",
        "https://tickets.example.test:8443",
    ] {
        let mut document = stage.document();
        document["config"]["pretix"]["url"] = json!(url);
        let document = with_proxy(document, "server_name", json!("tickets.example.test"));
        refused(&stage, &document, "config.pretix.url");
    }
    let mut missing = stage.document();
    missing["config"]["pretix"] = json!({});
    refused(&stage, &missing, "config.pretix.url");
}

#[test]
fn pretix_told_not_to_trust_the_proto_header_is_refused() {
    let stage = Stage::new();
    let mut document = stage.document();
    document["config"]["pretix"]["trust_x_forwarded_proto"] = json!("off");
    refused(&stage, &document, "config.pretix.trust_x_forwarded_proto");
}

#[test]
fn a_missing_certificate_names_the_path() {
    let stage = Stage::new();
    let document = with_proxy(stage.document(), "certificate", json!("/etc/ssl/certs/nowhere.pem"));
    let run = run(&["apply", "--root", &stage.root_arg()], &document);
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(
        run.msg().contains("/etc/ssl/certs/nowhere.pem does not exist"),
        "{}",
        run.msg()
    );
    assert!(!stage.path("/etc/nginx/sites-available/pretix").exists());
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let stage = Stage::new();
    let (cert, key) = crate::support::certificate(&["other.example.test"]);
    std::fs::write(stage.path("/etc/ssl/certs/tickets.example.test.pem"), cert).expect("cert");
    std::fs::write(stage.path("/etc/ssl/private/tickets.example.test.key"), key).expect("key");
    let run = run(&["apply", "--root", &stage.root_arg()], &stage.document());
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(
        run.msg()
            .contains("is for other.example.test, not for tickets.example.test"),
        "{}",
        run.msg()
    );
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let stage = Stage::new();
    let (_, other_key) = crate::support::certificate(&["tickets.example.test"]);
    std::fs::write(stage.path("/etc/ssl/private/tickets.example.test.key"), other_key).expect("key");
    let run = run(&["apply", "--root", &stage.root_arg()], &stage.document());
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(
        run.msg().contains("does not belong to the certificate"),
        "{}",
        run.msg()
    );
    assert!(!stage.path("/etc/nginx/sites-available/pretix").exists());
}
