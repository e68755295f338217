//! The tools of later waves exist with their verbs, `--help` and the common flags, and every verb
//! fails clearly (exit 1, "not implemented yet") instead of pretending to succeed.

use std::process::Command;

use pretix_site::run::command;

const STUBS: &[(&str, &[&str])] = &[("pretix-proxy", &["apply", "verify"])];

#[test]
fn command_lines_are_consistent() {
    command::<pretix_unit::UnitTool>().debug_assert();
    command::<pretix_proxy::ProxyTool>().debug_assert();
    command::<pretix_plugin::PluginTool>().debug_assert();
    command::<pretix_cron::CronTool>().debug_assert();
}

#[test]
fn every_verb_of_a_later_wave_fails_clearly() {
    let root = tempfile::tempdir().expect("tempdir");
    let root_arg = root.path().display().to_string();
    for (tool, verbs) in STUBS {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .args(["build", "--quiet", "--bins", "-p", tool])
            .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .status()
            .expect("cargo build");
        assert!(status.success(), "building {tool} failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
            std::path::PathBuf::from,
        );
        let bin = target.join("debug").join(tool);
        let help = Command::new(&bin).arg("--help").output().expect("--help");
        assert!(help.status.success(), "{tool} --help");
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("not implemented yet") && help.contains("--check") && help.contains("--root"),
            "{help}"
        );
        for verb in *verbs {
            let outcome = pretix_testkit::run_tool(
                Command::new(&bin).args([verb, "--root", &root_arg]),
                &serde_json::json!({"config": {"pretix": {"url": "https://x.example"}}}),
            );
            assert_eq!(outcome.code, 1, "{tool} {verb}: {}", outcome.describe());
            assert_eq!(outcome.result()["failed"], true);
            assert!(
                outcome.msg().contains("not implemented yet"),
                "{tool} {verb}: {}",
                outcome.msg()
            );
            assert_eq!(
                outcome.document["config"]["pretix"]["url"], "https://x.example",
                "the document passes through"
            );
        }
        let typo = pretix_testkit::run_tool(Command::new(&bin).arg("apply"), &serde_json::json!({"contaner": {}}));
        assert_eq!(typo.code, 2, "{tool}: bad input is exit 2");
    }
    // Only the host lock (run/pretix-toolkit/lock) may appear: the verbs took it, then failed.
    let written: Vec<String> = std::fs::read_dir(root.path())
        .expect("root")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "run")
        .collect();
    assert!(written.is_empty(), "a stub wrote {written:?}");
}
