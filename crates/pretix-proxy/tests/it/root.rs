//! `--root` runs on a staged Debian layout: the guide's defaults, the site as a sysadmin reads
//! it, `--check`, and the scratch `nginx -t` a staged tree gets.

use serde_json::json;

use crate::support::{SERVER_NAME, Stage, mtime, owner_mode, run, with_proxy};

#[test]
fn guide_defaults_write_the_site_and_link_it() {
    let stage = Stage::new();
    let first = run(&["apply", "--root", &stage.root_arg()], &stage.document());
    assert_eq!(first.code, 0, "{}", first.describe());
    assert!(first.changed());
    let site_path = stage.path("/etc/nginx/sites-available/pretix");
    let site = std::fs::read_to_string(&site_path).expect("site");
    insta::assert_snapshot!("debian_site", site);
    assert_eq!(owner_mode(&site_path), (0, 0, 0o644));
    let link = std::fs::read_link(stage.path("/etc/nginx/sites-enabled/pretix")).expect("link");
    assert_eq!(link, std::path::Path::new("/etc/nginx/sites-available/pretix"));
    assert!(
        first.has_action("skipped (--root): systemctl reload nginx"),
        "{:?}",
        first.actions()
    );
    assert!(
        first
            .actions()
            .iter()
            .any(|action| action.contains("scratch configuration")),
        "{:?}",
        first.actions()
    );
    assert!(stage.path("/var/www/pretix-acme").is_dir(), "the ACME webroot is made");

    let before = mtime(&site_path);
    let second = run(&["apply", "--root", &stage.root_arg()], &first.next_input());
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(!second.changed(), "{:?}", second.actions());
    assert_eq!(mtime(&site_path), before);
}

#[test]
fn default_server_and_ipv6only_only_when_asked() {
    let stage = Stage::new();
    let document = with_proxy(
        with_proxy(stage.document(), "default_server", json!(true)),
        "ipv6only",
        json!(true),
    );
    let run = run(&["apply", "--root", &stage.root_arg()], &document);
    assert_eq!(run.code, 0, "{}", run.describe());
    let site = std::fs::read_to_string(stage.path("/etc/nginx/sites-available/pretix")).expect("site");
    let listens: Vec<&str> = site
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("listen"))
        .collect();
    assert_eq!(
        listens,
        [
            "listen 80 default_server;",
            "listen [::]:80 ipv6only=on default_server;",
            "listen 443 ssl http2 default_server;",
            "listen [::]:443 ssl http2 ipv6only=on default_server;",
        ]
    );
    assert!(
        run.warnings()
            .iter()
            .any(|warning| warning.contains("default_server is on")),
        "{:?}",
        run.warnings()
    );
}

#[test]
fn check_plans_with_a_diff_and_writes_nothing() {
    let stage = Stage::new();
    let run = run(&["apply", "--check", "--root", &stage.root_arg()], &stage.document());
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(run.changed());
    let diffs = run.result()["diffs"].as_array().cloned().unwrap_or_default();
    assert!(
        diffs.iter().any(|diff| diff["diff"]
            .as_str()
            .unwrap_or_default()
            .contains("+        proxy_pass http://127.0.0.1:8345;")),
        "{diffs:?}"
    );
    assert!(run.has_action("enable the site"), "{:?}", run.actions());
    assert!(
        run.has_action("nginx -t accepts the planned site"),
        "the plan went through nginx's parser: {:?}",
        run.actions()
    );
    assert!(!stage.path("/etc/nginx/sites-available/pretix").exists());
    assert!(!stage.path("/etc/nginx/sites-enabled/pretix").exists());
}

#[test]
fn self_signed_staging_says_so_and_keeps_the_key_private() {
    let stage = Stage::new();
    std::fs::remove_file(stage.path(&format!("/etc/ssl/certs/{SERVER_NAME}.pem"))).expect("rm");
    std::fs::remove_file(stage.path(&format!("/etc/ssl/private/{SERVER_NAME}.key"))).expect("rm");
    let document = with_proxy(stage.document(), "certificate_source", json!("self_signed"));
    let first = run(&["apply", "--root", &stage.root_arg()], &document);
    assert_eq!(first.code, 0, "{}", first.describe());
    assert!(
        first
            .warnings()
            .iter()
            .any(|warning| warning.contains("STAGING certificate that no browser trusts")),
        "{:?}",
        first.warnings()
    );
    let key = stage.path(&format!("/etc/ssl/private/{SERVER_NAME}.key"));
    assert_eq!(owner_mode(&key), (0, 0, 0o600));
    assert!(
        !first.stdout.contains("PRIVATE KEY"),
        "the key never reaches the output"
    );
    let cert = std::fs::read(stage.path(&format!("/etc/ssl/certs/{SERVER_NAME}.pem"))).expect("cert");
    let keyed = std::fs::read(&key).expect("key");
    let info = pretix_proxy::cert::inspect(&cert, &keyed).expect("readable");
    assert!(info.self_signed && info.covers(SERVER_NAME));

    let before = (mtime(&key), cert);
    let second = run(&["apply", "--root", &stage.root_arg()], &first.next_input());
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(
        !second.changed(),
        "a valid staging certificate is kept: {:?}",
        second.actions()
    );
    assert_eq!(before.0, mtime(&key));
}

#[test]
fn verify_reads_and_changes_nothing() {
    let stage = Stage::new();
    let before = run(&["verify", "--root", &stage.root_arg()], &stage.document());
    assert_eq!(before.code, 1, "nothing applied yet: {}", before.describe());
    assert_eq!(
        before.check_item("site enabled").map(|item| item.0),
        Some("failure".to_owned())
    );
    assert!(!stage.path("/etc/nginx/sites-available/pretix").exists());

    let applied = run(&["apply", "--root", &stage.root_arg()], &stage.document());
    assert_eq!(applied.code, 0, "{}", applied.describe());
    let after = run(&["verify", "--root", &stage.root_arg()], &applied.next_input());
    assert_eq!(after.code, 0, "{}", after.describe());
    for item in ["site file", "site enabled", "certificate", "nginx -t"] {
        assert_eq!(
            after.check_item(item).map(|item| item.0),
            Some("ok".to_owned()),
            "{item}: {}",
            after.stderr
        );
    }
    assert!(!after.changed());
}

#[test]
fn a_relative_link_made_by_hand_is_ours_and_kept() {
    let stage = Stage::new();
    std::os::unix::fs::symlink(
        "../sites-available/pretix",
        stage.path("/etc/nginx/sites-enabled/pretix"),
    )
    .expect("link");
    let run = run(&["apply", "--root", &stage.root_arg()], &stage.document());
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(!run.has_action("enable the site"), "{:?}", run.actions());
    assert_eq!(
        std::fs::read_link(stage.path("/etc/nginx/sites-enabled/pretix")).expect("link"),
        std::path::Path::new("../sites-available/pretix")
    );
}

#[test]
fn the_upstream_follows_the_web_container() {
    let stage = Stage::new();
    let mut document = stage.document();
    document["container"] = json!({"instances": [
        {"unit": "pretix-worker.service", "role": "taskworker"},
        {"unit": "pretix-web.service", "role": "web", "published_port": 8350},
    ]});
    let run = run(&["apply", "--root", &stage.root_arg()], &document);
    assert_eq!(run.code, 0, "{}", run.describe());
    let site = std::fs::read_to_string(stage.path("/etc/nginx/sites-available/pretix")).expect("site");
    assert!(site.contains("proxy_pass http://127.0.0.1:8350;"), "{site}");
}
