//! The start-up rules agree with real pretix: for each rule a sysadmin is likely to trip over,
//! the value our rules refuse makes real pretix (from PyPI) fail to start, and the value they
//! accept lets it start (`django.setup()`, which also applies the logging config).

use std::path::Path;
use std::process::Command;

use pretix_cfg::ini::{self, Config};
use pretix_cfg::rules::{RuleContext, check_startup_rules};

use crate::support::venv;

type Entries = &'static [(&'static str, &'static str, &'static str)];

/// (what, refused, accepted): each pair differs only in the culprit.
const CASES: &[(&str, Entries, Entries)] = &[
    (
        "spaces in a comma list",
        &[("languages", "enabled", "de, en"), ("locale", "default", "en")],
        &[("languages", "enabled", "de,en"), ("locale", "default", "en")],
    ),
    (
        "language code case",
        &[("locale", "default", "DE")],
        &[("locale", "default", "de")],
    ),
    (
        "default language not enabled, by pretix's fallback en",
        &[("languages", "enabled", "de")],
        &[("languages", "enabled", "de"), ("locale", "default", "de")],
    ),
    (
        "incubating language",
        &[("locale", "default", "pt-br")],
        &[
            ("locale", "default", "pt-br"),
            ("languages", "allow_incubating", "pt-br"),
        ],
    ),
    (
        "log level case",
        &[("pretix", "loglevel", "info")],
        &[("pretix", "loglevel", "INFO")],
    ),
    (
        "unknown time zone",
        &[("locale", "timezone", "Europe/Berln")],
        &[("locale", "timezone", "Europe/Berlin")],
    ),
];

fn config(data_dir: &Path, extra: Entries) -> Config {
    let mut config = Config::new();
    let base: [(&str, &str, String); 4] = [
        ("pretix", "url", "https://tickets.example.org".to_owned()),
        ("pretix", "datadir", data_dir.display().to_string()),
        ("database", "backend", "sqlite3".to_owned()),
        ("mail", "from", "tickets@example.org".to_owned()),
    ];
    let extra = extra
        .iter()
        .map(|(section, key, value)| (*section, *key, (*value).to_owned()));
    for (section, key, value) in base.into_iter().chain(extra) {
        config
            .entry(section.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
    }
    config
}

/// Whether real pretix starts with this config, and its error if not.
fn pretix_starts(dir: &Path, name: &str, config: &Config) -> Result<(), String> {
    let file = dir.join(format!("{name}.cfg"));
    std::fs::write(&file, ini::render(config, "test").expect("render")).expect("write");
    let output = Command::new(venv().join("bin/python"))
        .args(["-c", "import django; django.setup(); print('started')"])
        .env("PRETIX_CONFIG_FILE", &file)
        .env("DJANGO_SETTINGS_MODULE", "pretix.settings")
        .current_dir(dir)
        .output()
        .expect("run python");
    if output.status.success() && String::from_utf8_lossy(&output.stdout).contains("started") {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr.lines().last().unwrap_or_default().to_owned())
    }
}

#[test]
fn what_the_rules_refuse_real_pretix_refuses_and_what_they_accept_it_accepts() {
    assert!(
        Path::new(pretix_cfg::schema::ZONEINFO).join("Europe/Berlin").is_file(),
        "the tz database is missing: run scripts/install-test-deps (Debian's tzdata)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("mkdir");
    let context = RuleContext {
        in_container: false,
        datadir_parent_exists: Some(true),
    };
    std::thread::scope(|scope| {
        let runs: Vec<_> = CASES
            .iter()
            .enumerate()
            .map(|(index, (what, refused, accepted))| {
                let (refused, accepted) = (config(&data_dir, refused), config(&data_dir, accepted));
                let dir = dir.path();
                scope.spawn(move || {
                    let ours = (
                        check_startup_rules(&refused, &context),
                        check_startup_rules(&accepted, &context),
                    );
                    assert!(!ours.0.is_empty(), "{what}: our rules accept what they should refuse");
                    assert!(ours.1.is_empty(), "{what}: our rules refuse {:?}", ours.1);
                    let theirs = (
                        pretix_starts(dir, &format!("refused-{index}"), &refused),
                        pretix_starts(dir, &format!("accepted-{index}"), &accepted),
                    );
                    assert!(
                        theirs.0.is_err(),
                        "{what}: real pretix starts with what our rules refuse"
                    );
                    assert_eq!(theirs.1, Ok(()), "{what}: real pretix fails with what our rules accept");
                })
            })
            .collect();
        for run in runs {
            run.join().expect("case");
        }
    });
}
