use pretix_site::ansible::{module_result, parse_module_args};
use pretix_site::error::ToolError;
use pretix_site::report::{FileDiff, ToolResult};

const ARGS: &str = r#"{"database": {"name": "shop", "port": "5433"}, "verb": "verify",
 "_ansible_check_mode": true, "_ansible_no_log": false, "_ansible_debug": false,
 "_ansible_diff": true, "_ansible_verbosity": 2, "_ansible_version": "2.19.14",
 "_ansible_module_name": "pretix_db", "_ansible_syslog_facility": "LOG_USER",
 "_ansible_selinux_special_fs": ["fuse"], "_ansible_socket": null, "_ansible_shell_executable": "/bin/sh",
 "_ansible_keep_remote_files": false, "_ansible_tmpdir": "/root/.ansible/tmp/x/",
 "_ansible_remote_tmp": "~/.ansible/tmp", "_ansible_ignore_unknown_opts": false,
 "_ansible_target_log_info": null, "_ansible_tracebacks_for": [], "_ansible_a_key_from_the_future": 1}"#;

#[test]
fn arguments_file_is_parsed_with_internal_keys_honoured_or_ignored() {
    let args = parse_module_args(ARGS).expect("parse");
    assert!(args.check_mode);
    assert!(args.diff);
    assert_eq!(args.verbosity, 2);
    assert_eq!(args.verb, "verify");
    assert_eq!(args.document.raw_section("database").expect("db")["name"], "shop");
}

#[test]
fn unknown_options_fail_with_suggestion_unless_ignored() {
    match parse_module_args(r#"{"databse": {}}"#) {
        Err(ToolError::Input { message, .. }) => {
            assert!(message.contains("databse (did you mean database?)"), "{message}")
        }
        other => panic!("expected an input error, got {other:?}"),
    }
    let args = parse_module_args(r#"{"databse": {}, "_ansible_ignore_unknown_opts": true}"#).expect("ignored");
    assert_eq!(args.verb, "apply");
}

#[test]
fn result_has_the_keys_ansible_reads() {
    let args = parse_module_args(ARGS).expect("parse");
    let result = ToolResult {
        tool: "pretix-db".into(),
        verb: "apply".into(),
        changed: true,
        msg: "created role pretix".into(),
        warnings: vec!["restart needed".into()],
        diffs: vec![FileDiff::between("/etc/x", "a\n", "b\n", None)],
        ..ToolResult::default()
    };
    let output = module_result(&result, &args.document, true);
    assert_eq!(output["changed"], true);
    assert_eq!(output["failed"], false);
    assert_eq!(output["msg"], "created role pretix");
    assert_eq!(output["warnings"][0], "restart needed");
    let prepared = output["diff"][0]["prepared"].as_str().expect("prepared diff");
    assert!(
        prepared.contains("-a\n+b\n") && prepared.contains("/etc/x (before)"),
        "{prepared}"
    );
    assert!(output["site"].is_object());
    assert!(
        output
            .as_object()
            .expect("object")
            .keys()
            .all(|key| !key.starts_with("_ansible"))
    );
    let without_diff = module_result(&result, &args.document, false);
    assert!(without_diff.get("diff").is_none());
}

#[test]
fn site_chains_a_play_like_a_pipe_and_inline_sections_replace_its_sections() {
    let args = parse_module_args(
        r#"{"site": {"config": {"pretix": {"url": "https://t.example"}}, "database": {"name": "old"},
                     "results": [{"tool": "pretix-db", "verb": "apply", "changed": true, "msg": "ok"}]},
            "database": {"name": "shop"}}"#,
    )
    .expect("parse");
    assert_eq!(
        args.document.raw_section("config").expect("config")["pretix"]["url"],
        "https://t.example"
    );
    assert_eq!(args.document.raw_section("database").expect("db")["name"], "shop");
    assert_eq!(args.document.results().expect("results").len(), 1);
    match parse_module_args(r#"{"site": {}, "site_file": "/x.json"}"#) {
        Err(ToolError::Input { field, message }) => {
            assert_eq!(
                (field.as_str(), message.as_str()),
                ("site", "give site or site_file, not both")
            )
        }
        other => panic!("expected an input error, got {other:?}"),
    }
}
