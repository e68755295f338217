//! The two config files of a real Debian 12 install (fixtures/debian12), planned with the
//! guide's defaults: every byte that is not ours stays, and the diffs are what a sysadmin reads.

use pretix_db::hba::{HbaAction, plan_hba};
use pretix_db::listen::plan_listen_addresses;
use pretix_db::plan::Desired;
use pretix_site::report::FileDiff;
use pretix_site::sections::Database;

use crate::support::{assert_only_added, fixture};

fn desired() -> Desired {
    Desired::from_section(&Database::default()).expect("the guide's defaults are valid")
}

fn diff(path: &str, before: &str, after: &str) -> String {
    FileDiff::between(path, before, after, None).unified()
}

#[test]
fn debian_postgresql_conf_gets_one_line_after_the_commented_default() {
    let before = fixture("postgresql.conf");
    let required = desired().listen_required();
    let required: Vec<&str> = required.iter().map(String::as_str).collect();
    let plan = plan_listen_addresses(&before, &required);
    assert_eq!(plan.current, "localhost");
    assert_eq!(plan.new_value.as_deref(), Some("localhost,172.17.0.1"));
    let after = plan.new_text.expect("the file changes");
    assert_only_added(&before, &after, &["listen_addresses = 'localhost,172.17.0.1'"]);
    insta::assert_snapshot!(
        "debian_postgresql_conf",
        diff("/etc/postgresql/15/main/postgresql.conf", &before, &after)
    );
    assert_eq!(
        plan_listen_addresses(&after, &required).new_text,
        None,
        "a second plan changes nothing"
    );
}

#[test]
fn debian_pg_hba_conf_gets_the_rule_appended_once() {
    let before = fixture("pg_hba.conf");
    let rule = desired().rule();
    let plan = plan_hba(&before, &rule);
    assert_eq!(
        plan.action,
        HbaAction::Insert { before: None },
        "nothing in Debian's file covers 172.17.0.0/16"
    );
    let after = plan.new_text.expect("the file changes");
    assert_only_added(&before, &after, &["", "# pretix (managed by pretix-db)", &rule.line()]);
    insta::assert_snapshot!(
        "debian_pg_hba_conf",
        diff("/etc/postgresql/15/main/pg_hba.conf", &before, &after)
    );
    let again = plan_hba(&after, &rule);
    assert!(matches!(again.action, HbaAction::Present { .. }), "{:?}", again.action);
    assert_eq!(again.new_text, None);
}

#[test]
fn a_shadowing_rule_in_debians_file_gets_the_rule_placed_before_it() {
    for shadowing in [
        "host    all             all             0.0.0.0/0               reject",
        "host all all 172.16.0.0/12 md5",
    ] {
        let original = fixture("pg_hba.conf");
        let anchor = "# IPv4 local connections:\n";
        let before = original.replacen(anchor, &format!("{anchor}{shadowing}\n"), 1);
        assert_ne!(before, original, "the anchor is in the fixture");
        let rule = desired().rule();
        let plan = plan_hba(&before, &rule);
        let HbaAction::Insert {
            before: Some((line, text)),
        } = &plan.action
        else {
            panic!("{shadowing}: expected an insert before it, got {:?}", plan.action);
        };
        assert_eq!(text, shadowing);
        let after = plan.new_text.clone().expect("the file changes");
        assert_only_added(&before, &after, &["# pretix (managed by pretix-db)", &rule.line()]);
        let lines: Vec<&str> = after.lines().collect();
        let ours = lines
            .iter()
            .position(|line| *line == rule.line())
            .expect("our rule is there");
        let theirs = lines
            .iter()
            .position(|candidate| *candidate == shadowing)
            .expect("their rule is there");
        assert!(ours < theirs, "{shadowing}: ours at {ours}, theirs at {theirs}");
        // Two lines were inserted above it; `line` counts from 1 in the file before the edit.
        assert_eq!(
            *line,
            theirs - 2 + 1,
            "the reported line is the shadowing rule's line before the edit"
        );
        if shadowing.contains("reject") {
            insta::assert_snapshot!(
                "debian_pg_hba_conf_shadowed",
                diff("/etc/postgresql/15/main/pg_hba.conf", &before, &after)
            );
        }
        assert!(matches!(plan_hba(&after, &rule).action, HbaAction::Present { .. }));
    }
}

/// A configuration manager's link (root's, in a directory only root may write) is followed, so
/// the link stays a link; a link in a directory postgres owns is refused, its target unread.
#[test]
fn a_config_file_link_is_followed_only_when_root_owns_it_and_its_directory() {
    use std::os::unix::fs::PermissionsExt;
    let root = pretix_site::fs::Root::system();
    let trusted = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(trusted.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let real = trusted.path().join("pg_hba.real.conf");
    std::fs::write(&real, "local all postgres peer\n").expect("write");
    let link = trusted.path().join("pg_hba.conf");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let conf = pretix_db::resolve::read_conf(&root, &link, "database.hba_file").expect("a trusted link");
    assert_eq!(conf.path, std::fs::canonicalize(&real).expect("canonical"));
    assert_eq!(conf.text, "local all postgres peer\n");

    std::fs::set_permissions(trusted.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let error = pretix_db::resolve::read_conf(&root, &link, "database.hba_file").expect_err("others may write");
    assert!(error.to_string().contains("is a symbolic link"), "{error}");
    std::fs::set_permissions(trusted.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::lchown(&link, Some(105), None).expect("lchown");
    let error = pretix_db::resolve::read_conf(&root, &link, "database.hba_file").expect_err("not root's link");
    assert!(error.to_string().contains("owned by uid 105"), "{error}");
}

/// PostgreSQL's refusal of a login whose source Docker's NAT rewrote (the message format of
/// `ClientAuthentication` in PostgreSQL 12 to 17) is recognised; one from inside the subnet, or
/// a wrong password, is not excused.
#[test]
fn a_login_refused_because_nat_rewrote_its_source_is_recognised() {
    use pretix_db::provision::nat_rewritten_client;
    use pretix_db::session::PgFailure;
    let failure = |code: &str, message: &str| PgFailure {
        code: Some(code.to_owned()),
        message: message.to_owned(),
        detail: None,
        hint: None,
    };
    let desired = desired();
    let rewritten = failure(
        "28000",
        "no pg_hba.conf entry for host \"192.0.2.2\", user \"pretix\", database \"pretix\", no encryption",
    );
    assert_eq!(
        nat_rewritten_client(&desired, &rewritten),
        Some("192.0.2.2".parse().expect("ip"))
    );
    let inside = failure(
        "28000",
        "no pg_hba.conf entry for host \"172.17.0.5\", user \"pretix\", database \"pretix\", no encryption",
    );
    assert_eq!(
        nat_rewritten_client(&desired, &inside),
        None,
        "a container's address: a real failure"
    );
    let wrong_password = failure("28P01", "password authentication failed for user \"pretix\"");
    assert_eq!(nat_rewritten_client(&desired, &wrong_password), None);
}
