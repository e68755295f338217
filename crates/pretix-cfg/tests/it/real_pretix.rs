//! Real pretix 2026.x from PyPI loads the generated file: with PRETIX_CONFIG_FILE pointing at it,
//! pretix's own settings module imports without error and reports the values we wrote.

use std::process::Command;

use crate::support::{guide_site, run, secret, stage, venv};

const REPORT_SETTINGS: &str = r#"
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "site_url": settings.SITE_URL,
    "instance_name": settings.PRETIX_INSTANCE_NAME,
    "currency": settings.DEFAULT_CURRENCY,
    "engine": db["ENGINE"], "name": db["NAME"], "user": db["USER"], "password": db["PASSWORD"],
    "host": db["HOST"], "port": db["PORT"],
    "mail_from": settings.DEFAULT_FROM_EMAIL, "mail_host": settings.EMAIL_HOST,
    "cache_location": settings.CACHES["default"]["LOCATION"],
    "session_engine": settings.SESSION_ENGINE,
    "celery_broker": settings.CELERY_BROKER_URL, "celery_backend": settings.CELERY_RESULT_BACKEND,
    "proxy_ssl_header": list(settings.SECURE_PROXY_SSL_HEADER or []),
}))
"#;

/// Runs REPORT_SETTINGS with pretix's settings module in the prepared command; its answer.
fn pretix_settings(command: &mut Command) -> serde_json::Value {
    let output = command
        .args(["-c", REPORT_SETTINGS])
        .env("DJANGO_SETTINGS_MODULE", "pretix.settings")
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "pretix's settings failed to load: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json from python")
}

#[test]
fn pretix_settings_module_reads_the_generated_file() {
    let root = stage();
    let password = secret(
        root.path(),
        "database-password",
        "pa$$ word%with 'quotes' and ; # chars",
    );
    let root_arg = root.path().display().to_string();
    let outcome = run(&["apply", "--root", &root_arg], &guide_site(&password));
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let config_file = root.path().join("etc/pretix/pretix.cfg");
    // The file says datadir=/data, the container's path; on this host pretix must not create /data,
    // so the data dir alone is overridden by pretix's own environment mechanism.
    let data_dir = root.path().join("var/pretix-data");
    let settings = pretix_settings(
        Command::new(venv().join("bin/python"))
            .env("PRETIX_CONFIG_FILE", &config_file)
            .env("PRETIX_PRETIX_DATADIR", &data_dir)
            .current_dir(root.path()),
    );
    assert_eq!(settings["site_url"], "https://pretix.mydomain.com");
    assert_eq!(settings["instance_name"], "My pretix installation");
    assert_eq!(settings["currency"], "EUR");
    assert_eq!(settings["engine"], "django.db.backends.postgresql");
    assert_eq!(settings["name"], "pretix");
    assert_eq!(settings["user"], "pretix");
    assert_eq!(settings["password"], "pa$$ word%with 'quotes' and ; # chars");
    assert_eq!(settings["host"], "172.17.0.1");
    assert_eq!(settings["port"], "5432");
    assert_eq!(settings["mail_from"], "tickets@yourdomain.com");
    assert_eq!(settings["mail_host"], "172.17.0.1");
    assert_eq!(settings["cache_location"], "unix:///var/run/redis/redis.sock?db=0");
    assert_eq!(settings["session_engine"], "django.contrib.sessions.backends.cache");
    assert_eq!(
        settings["celery_broker"],
        "redis+socket:///var/run/redis/redis.sock?virtual_host=2"
    );
    assert_eq!(
        settings["celery_backend"],
        "redis+socket:///var/run/redis/redis.sock?virtual_host=1"
    );
    assert_eq!(
        settings["proxy_ssl_header"],
        serde_json::json!(["HTTP_X_FORWARDED_PROTO", "https"])
    );
}

/// The `env` verb's file works for real pretix with no pretix.cfg at all: every setting from
/// `PRETIX_<SECTION>_<KEY>`, the password from the file `FILE__PRETIX_DATABASE_PASSWORD` names.
#[test]
fn pretix_settings_module_reads_the_env_file_and_its_secret_files() {
    let root = stage();
    let password = secret(root.path(), "database-password", "pa$$ word from a file");
    let root_arg = root.path().display().to_string();
    let outcome = run(&["env", "--root", &root_arg], &guide_site(&password));
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let env_text = std::fs::read_to_string(root.path().join("etc/pretix-toolkit/pretix.env")).expect("env file");
    let empty_config = root.path().join("empty.cfg");
    std::fs::write(&empty_config, "").expect("write");
    let mut command = Command::new(venv().join("bin/python"));
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PRETIX_CONFIG_FILE", &empty_config)
        .current_dir(root.path());
    for line in env_text.lines().filter(|line| !line.starts_with('#')) {
        let (name, value) = line.split_once('=').expect("NAME=value");
        // The container sees the config dir at /etc/pretix; here it is under the staging root.
        let value = match value.strip_prefix("/etc/pretix/") {
            Some(rest) if name.starts_with("FILE__") => root.path().join("etc/pretix").join(rest).display().to_string(),
            _ => value.to_owned(),
        };
        command.env(name, value);
    }
    command.env("PRETIX_PRETIX_DATADIR", root.path().join("var/pretix-data"));
    let settings = pretix_settings(&mut command);
    assert_eq!(settings["site_url"], "https://pretix.mydomain.com");
    assert_eq!(settings["password"], "pa$$ word from a file");
    assert_eq!(settings["host"], "172.17.0.1");
    assert_eq!(settings["cache_location"], "unix:///var/run/redis/redis.sock?db=0");
    assert_eq!(
        settings["celery_broker"],
        "redis+socket:///var/run/redis/redis.sock?virtual_host=2"
    );
}
