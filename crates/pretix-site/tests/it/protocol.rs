//! The protocol through `run_verb` with a small tool defined here: pass-through, results,
//! failures, the upstream-failure gate, redaction and check mode.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use pretix_site::document::Document;
use pretix_site::fs::FileSpec;
use pretix_site::run::{Context, Mode, Options, Pipeline, Tool, Verbosity, run_verb};
use pretix_site::sections::{ConfigValue, Database};
use pretix_site::{Secret, ToolError};

#[derive(Debug, Clone, Subcommand)]
enum Command {
    Apply,
    Fail,
    /// Writes its file, then finds an input error.
    LateInputError,
    /// Read-only: says hello.
    Look,
}

/// Owns `database`: writes a file holding a secret and the database name, and adds
/// `config.database.name`.
struct DemoTool;

impl Tool for DemoTool {
    type Command = Command;
    const NAME: &'static str = "demo";
    const ABOUT: &'static str = "a demo tool";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Look)
    }

    fn run(command: &Command, ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        if matches!(command, Command::Look) {
            return Ok("looked".to_owned());
        }
        let database: Database = document.section("database")?;
        let secret = Secret::new("hunter2-very-secret");
        ctx.register_secret(&secret);
        if matches!(command, Command::Fail) {
            return Err(ToolError::failed(format!("server said no to {}", secret.expose())));
        }
        ctx.file(
            &FileSpec::new(
                "/etc/demo.conf",
                format!("name={}\npassword={}\n", database.name, secret.expose()),
            )
            .mode(0o600),
        )?;
        if matches!(command, Command::LateInputError) {
            return Err(ToolError::input("database.name", "found wrong too late"));
        }
        document.set_config_value("database", "name", ConfigValue::Text(database.name.clone()));
        ctx.warn(format!("the password {} is weak", secret.expose()));
        Ok(format!("configured {} with {}", database.name, secret.expose()))
    }
}

fn run(text: &str, command: Command, root: &Path, check: bool) -> pretix_site::run::RunOutcome {
    run_in(text, command, root, check, Pipeline::Starts)
}

/// A run whose document came through a pipe from an earlier tool.
fn run_piped(text: &str, command: Command, root: &Path) -> pretix_site::run::RunOutcome {
    run_in(text, command, root, false, Pipeline::Continues)
}

fn run_in(text: &str, command: Command, root: &Path, check: bool, pipeline: Pipeline) -> pretix_site::run::RunOutcome {
    let options = Options {
        mode: if check {
            Mode::Check { offline: false }
        } else {
            Mode::Apply
        },
        pipeline,
        ..quiet_options(root)
    };
    let ctx = Context::new(DemoTool::NAME, "apply", options);
    run_verb::<DemoTool>(&command, "apply", ctx, Document::parse(text).expect("parse"))
}

fn quiet_options(root: &Path) -> Options {
    Options::at_root(Some(PathBuf::from(root))).verbosity(Verbosity::Quiet)
}

fn temp_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    root
}

#[test]
fn foreign_sections_pass_through_untouched() {
    let root = temp_root();
    let input = r#"{"container": {"image": "x", "key_only_a_newer_tool_knows": {"deep": [1, "two"]}}, "proxy": {"domain": "t.example"}, "database": {"name": "shop"}}"#;
    let outcome = run(input, Command::Apply, root.path(), false);
    assert_eq!(outcome.exit_code, 0);
    let before: serde_json::Value = serde_json::from_str(input).expect("json");
    let after = outcome.document.to_value();
    assert_eq!(after["container"], before["container"]);
    assert_eq!(after["proxy"], before["proxy"]);
    assert_eq!(after["config"]["database"]["name"], "shop");
}

#[test]
fn result_is_appended_and_second_run_changes_nothing() {
    let root = temp_root();
    let first = run("{}", Command::Apply, root.path(), false);
    assert!(first.result.changed);
    assert_eq!(first.result.diffs.len(), 1);
    let second = run(&first.document.to_json_pretty(), Command::Apply, root.path(), false);
    assert!(!second.result.changed, "{:?}", second.result.actions);
    let results = second.document.results().expect("results");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].tool, "demo");
    assert!(results[0].changed && !results[1].changed);
}

#[test]
fn secrets_are_redacted_in_messages_diffs_warnings_and_errors() {
    let root = temp_root();
    let outcome = run("{}", Command::Apply, root.path(), false);
    let json = outcome.document.to_json_pretty();
    assert!(!json.contains("hunter2-very-secret"), "{json}");
    assert!(json.contains("********"));
    let written = std::fs::read_to_string(root.path().join("etc/demo.conf")).expect("read");
    assert!(
        written.contains("hunter2-very-secret"),
        "the file itself holds the real value"
    );
    let failed = run("{}", Command::Fail, root.path(), false);
    assert!(!failed.document.to_json_pretty().contains("hunter2-very-secret"));
    assert!(
        failed.result.msg.contains("server said no to ********"),
        "{}",
        failed.result.msg
    );
}

#[test]
fn failure_gives_exit_1_and_a_failed_result() {
    let root = temp_root();
    let outcome = run("{}", Command::Fail, root.path(), false);
    assert_eq!(outcome.exit_code, 1);
    assert!(outcome.result.failed);
}

#[test]
fn bad_input_gives_exit_2_and_touches_nothing() {
    let root = temp_root();
    let outcome = run(r#"{"database": {"nmae": "x"}}"#, Command::Apply, root.path(), false);
    assert_eq!(outcome.exit_code, 2);
    assert!(
        outcome.result.msg.starts_with("database.nmae: unknown field `nmae`"),
        "{}",
        outcome.result.msg
    );
    assert!(!root.path().join("etc/demo.conf").exists());
}

#[test]
fn upstream_failure_stops_the_pipeline_quoting_the_first_failure_once() {
    let root = temp_root();
    let failed = run("{}", Command::Fail, root.path(), false);
    let next = run_piped(&failed.document.to_json_pretty(), Command::Apply, root.path());
    assert_eq!(next.exit_code, 1);
    let third = run_piped(&next.document.to_json_pretty(), Command::Apply, root.path());
    assert_eq!(
        third.result.msg,
        "not run: demo apply failed earlier in this pipeline: server said no to ********"
    );
    assert!(!root.path().join("etc/demo.conf").exists());
}

#[test]
fn a_saved_failure_does_not_stop_a_new_pipeline() {
    let root = temp_root();
    let failed = run("{}", Command::Fail, root.path(), false);
    // `pretix-db apply < site.done.json`: the document comes from a file, a new pipeline.
    let again = run(&failed.document.to_json_pretty(), Command::Apply, root.path(), false);
    assert_eq!(again.exit_code, 0, "{}", again.result.msg);
    // Its own later stages are gated only by failures after it started.
    let next = run_piped(&again.document.to_json_pretty(), Command::Apply, root.path());
    assert_eq!(next.exit_code, 0, "{}", next.result.msg);
}

#[test]
fn read_only_verbs_run_after_a_failure_upstream() {
    let root = temp_root();
    let failed = run("{}", Command::Fail, root.path(), false);
    let look = run_piped(&failed.document.to_json_pretty(), Command::Look, root.path());
    assert_eq!((look.exit_code, look.result.msg.as_str()), (0, "looked"));
}

#[test]
fn check_mode_plans_but_writes_nothing() {
    let root = temp_root();
    let outcome = run("{}", Command::Apply, root.path(), true);
    assert!(outcome.result.changed);
    assert!(outcome.result.check_mode);
    assert_eq!(outcome.result.diffs[0].path, "/etc/demo.conf");
    assert!(!root.path().join("etc/demo.conf").exists());
}

#[test]
fn store_secret_makes_a_root_only_home_once() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().expect("tempdir");
    let mut ctx = Context::new("demo", "apply", quiet_options(root.path()));
    let secrets_dir = Path::new("/etc/pretix-toolkit/secrets");
    let file = secrets_dir.join("database-password");
    ctx.store_secret(secrets_dir, &file, &Secret::new("a-generated-password"))
        .expect("store");
    let mode = |path: &str| std::fs::metadata(root.path().join(path)).expect("stat").mode() & 0o7777;
    assert_eq!(mode("etc/pretix-toolkit"), 0o755);
    assert_eq!(mode("etc/pretix-toolkit/secrets"), 0o700);
    assert_eq!(mode("etc/pretix-toolkit/secrets/database-password"), 0o600);
    assert!(ctx.has_changed());
    let mut again = Context::new("demo", "apply", quiet_options(root.path()));
    again
        .store_secret(secrets_dir, &file, &Secret::new("a-generated-password"))
        .expect("store again");
    assert!(!again.has_changed());
    let result = ctx.finish("done", false);
    assert!(
        !serde_json::to_string(&result)
            .expect("json")
            .contains("a-generated-password")
    );
}

#[test]
fn an_input_error_after_a_change_is_exit_1_not_nothing_changed() {
    let root = temp_root();
    let outcome = run("{}", Command::LateInputError, root.path(), false);
    assert!(
        root.path().join("etc/demo.conf").exists(),
        "the demo wrote before failing"
    );
    assert_eq!(outcome.exit_code, 1, "exit 2 would claim nothing changed");
    let planned = run("{}", Command::LateInputError, temp_root().path(), true);
    assert_eq!(planned.exit_code, 2, "in check mode nothing changed, so it stays 2");
}

#[test]
fn a_plaintext_password_where_a_reference_belongs_is_refused_without_echoing_it() {
    let root = temp_root();
    let outcome = run(
        r#"{"database": {"password": "Hunter2-plaintext"}}"#,
        Command::Apply,
        root.path(),
        false,
    );
    assert_eq!(outcome.exit_code, 2);
    let msg = &outcome.result.msg;
    assert!(
        msg.starts_with("database.password: ") && msg.contains("secret_file"),
        "{msg}"
    );
    assert!(!msg.contains("Hunter2"), "{msg}");
    let numeric = run(
        r#"{"database": {"password": 12345678}}"#,
        Command::Apply,
        root.path(),
        false,
    );
    assert!(!numeric.result.msg.contains("12345678"), "{}", numeric.result.msg);
    assert!(!root.path().join("etc/demo.conf").exists());
}

#[test]
fn bad_paths_are_refused_before_the_lock_is_taken() {
    let root = temp_root();
    let outcome = run(
        r#"{"paths": {"lock_file": "/../../../escaped/x.lock"}}"#,
        Command::Apply,
        root.path(),
        false,
    );
    assert_eq!(outcome.exit_code, 2);
    assert!(
        outcome.result.msg.starts_with("paths.lock_file: "),
        "{}",
        outcome.result.msg
    );
    let outcome = run(r#"{"paths": {"lock_file": ""}}"#, Command::Apply, root.path(), false);
    assert_eq!(outcome.exit_code, 2, "{}", outcome.result.msg);
    let entries: Vec<_> = std::fs::read_dir(root.path())
        .expect("dir")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(entries.len(), 1, "only etc/ is there: {entries:?}");
    assert!(!root.path().parent().expect("parent").join("escaped").exists());
}

#[test]
fn a_secret_file_must_be_root_owned_private_and_not_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("secrets");
    std::fs::create_dir(&dir).expect("mkdir");
    let write = |name: &str, mode: u32, uid: u32| {
        let path = dir.join(name);
        std::fs::write(&path, "a-long-enough-secret\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        std::os::unix::fs::chown(&path, Some(uid), None).expect("chown");
    };
    write("good", 0o600, 0);
    write("readable", 0o644, 0);
    write("foreign", 0o600, 4242);
    std::os::unix::fs::symlink(dir.join("good"), dir.join("link")).expect("symlink");
    let mut ctx = Context::new("demo", "apply", quiet_options(root.path()));
    let read = |ctx: &mut Context, name: &str| {
        ctx.read_secret(&pretix_site::SecretRef::new(format!("/secrets/{name}")), "x.password")
    };
    assert_eq!(read(&mut ctx, "good").expect("good").expose(), "a-long-enough-secret");
    for (name, expected) in [
        ("readable", "mode 0644"),
        ("foreign", "owned by uid 4242"),
        ("link", "symbolic link"),
        ("missing", "does not exist"),
    ] {
        let error = read(&mut ctx, name).expect_err(name);
        let text = error.to_string();
        assert!(
            text.starts_with("x.password: ") && text.contains(expected),
            "{name}: {text}"
        );
        assert_eq!(error.exit_code(), 2);
    }
}

#[test]
fn a_terminal_gets_a_recap_of_the_pipeline_with_the_warnings_at_the_end() {
    let root = temp_root();
    let planned = run(r#"{"database": {"name": "shop"}}"#, Command::Apply, root.path(), true);
    let recap = pretix_site::run::cli::recap(&planned.document);
    assert_eq!(
        recap,
        "demo apply --check: would change\n  - would create /etc/demo.conf\n  configured shop with ********\n\n1 \
         warning(s):\n  - demo: the password ******** is weak\n\n(the site document goes to stdout when it is a pipe \
         or a file, or with --json)\n"
    );
}
