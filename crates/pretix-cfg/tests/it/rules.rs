//! Each rule that makes pretix fail at start-up is refused before anything is written.

use serde_json::json;

use crate::support::{guide_site, run, secret, stage};

fn refused(edit: impl Fn(&mut serde_json::Value), field: &str, needle: &str) {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let mut site = guide_site(&password);
    edit(&mut site);
    let root_arg = root.path().display().to_string();
    let outcome = run(&["apply", "--root", &root_arg], &site);
    let msg = outcome.result()["msg"].as_str().expect("msg").to_owned();
    assert_eq!(outcome.code, 2, "{field}: {msg}");
    assert!(msg.starts_with(field), "expected the field {field} first in: {msg}");
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "expected {needle:?} in: {msg}"
    );
    assert!(
        !root.path().join("etc/pretix").exists(),
        "{field}: something was written"
    );
    assert!(
        !root.path().join("var/pretix-data").exists(),
        "{field}: something was written"
    );
}

#[test]
fn unknown_key_suggests_the_real_one() {
    refused(
        |site| site["config"]["mail"]["form"] = json!("x@y.z"),
        "config.mail.form",
        "from",
    );
}

#[test]
fn unknown_section_suggests_the_real_one() {
    refused(
        |site| site["config"]["databse"] = json!({"name": "x"}),
        "config.databse",
        "database",
    );
}

#[test]
fn obligatory_2fa_must_be_a_known_value() {
    refused(
        |site| site["config"]["pretix"]["obligatory_2fa"] = json!("sometimes"),
        "config.pretix.obligatory_2fa",
        "staff",
    );
}

#[test]
fn request_id_header_must_not_be_a_boolean() {
    refused(
        |site| site["config"]["pretix"]["request_id_header"] = json!("on"),
        "config.pretix.request_id_header",
        "header",
    );
}

#[test]
fn default_locale_must_be_enabled() {
    refused(
        |site| {
            site["config"]["locale"] = json!({"default": "fr"});
            site["config"]["languages"] = json!({"enabled": "de,en"});
        },
        "config.locale.default",
        "fr",
    );
}

#[test]
fn sslmode_needs_sslrootcert() {
    refused(
        |site| site["config"]["database"]["sslmode"] = json!("verify-full"),
        "config.database",
        "sslrootcert",
    );
}

#[test]
fn sslcert_needs_sslkey() {
    refused(
        |site| {
            site["config"]["database"]["sslmode"] = json!("require");
            site["config"]["database"]["sslrootcert"] = json!("/etc/ssl/ca.pem");
            site["config"]["database"]["sslcert"] = json!("/etc/ssl/client.pem");
        },
        "config.database",
        "sslkey",
    );
}

#[test]
fn redis_tls_needs_ca_certs() {
    refused(
        |site| site["config"]["redis"]["ssl_cert_reqs"] = json!("required"),
        "config.redis",
        "ssl_ca_certs",
    );
}

#[test]
fn celery_broker_needs_backend() {
    refused(
        |site| {
            site["config"]["celery"]
                .as_object_mut()
                .expect("celery")
                .remove("backend")
                .map(drop)
                .unwrap_or(())
        },
        "config.celery",
        "backend",
    );
}

#[test]
fn mysql_is_refused() {
    refused(
        |site| site["config"]["database"]["backend"] = json!("mysql"),
        "config.database.backend",
        "mysql",
    );
}

#[test]
fn booleans_and_integers_are_type_checked() {
    refused(
        |site| site["config"]["pretix"]["registration"] = json!("maybe"),
        "config.pretix.registration",
        "",
    );
    refused(
        |site| site["config"]["mail"]["port"] = json!("25 ; smtp"),
        "config.mail.port",
        "",
    );
}

#[test]
fn values_rawconfigparser_would_misread_are_refused() {
    refused(
        |site| site["config"]["pretix"]["instance_name"] = json!("two\nlines"),
        "config.pretix.instance_name",
        "",
    );
}

#[test]
fn datadir_must_be_the_containers() {
    refused(
        |site| site["config"]["pretix"]["datadir"] = json!("/var/pretix-data"),
        "config.pretix.datadir",
        "/data",
    );
}

#[test]
fn url_and_sender_are_required() {
    refused(
        |site| {
            site["config"]["pretix"]
                .as_object_mut()
                .expect("pretix")
                .remove("url")
                .map(drop)
                .unwrap_or(())
        },
        "config.pretix.url",
        "missing",
    );
    refused(
        |site| {
            site["config"]["mail"]
                .as_object_mut()
                .expect("mail")
                .remove("from")
                .map(drop)
                .unwrap_or(())
        },
        "config.mail.from",
        "missing",
    );
}
