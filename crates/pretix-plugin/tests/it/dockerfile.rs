//! The Dockerfile as a sysadmin reads it, for the three shapes: requirements only (the guide's
//! five lines), with local plugins, and with a build-only CA stage.

use pretix_plugin::dockerfile::{BasePin, InstallItem, render};

fn base() -> BasePin {
    BasePin {
        reference: "pretix/standalone:stable".to_owned(),
        pinned: format!("pretix/standalone@sha256:{}", "3f".repeat(32)),
    }
}

fn requirement(text: &str, name: &str) -> InstallItem {
    InstallItem {
        argument: text.to_owned(),
        name: name.to_owned(),
        local: false,
    }
}

fn local(argument: &str, name: &str) -> InstallItem {
    InstallItem {
        argument: argument.to_owned(),
        name: name.to_owned(),
        local: true,
    }
}

#[test]
fn the_guides_shape_pinned_to_the_base_digest() {
    let items = [
        requirement("pretix-pages==1.6.4", "pretix-pages"),
        requirement("pretix-passbook>=1.4,<2", "pretix-passbook"),
    ];
    insta::assert_snapshot!(render(&base(), &items, false, false));
}

#[test]
fn local_wheels_and_source_directories_are_copied_in() {
    let items = [
        requirement("pretix-pages==1.6.4", "pretix-pages"),
        local(
            "/tmp/pretix-toolkit-plugins/1/pretix_foo-1.0-py3-none-any.whl",
            "pretix-foo",
        ),
        local("/tmp/pretix-toolkit-plugins/2/", "pretix-bar"),
    ];
    insta::assert_snapshot!(render(&base(), &items, true, false));
}

#[test]
fn a_ca_bundle_stays_in_a_build_only_stage() {
    let items = [
        requirement("pretix-pages==1.6.4", "pretix-pages"),
        local(
            "/tmp/pretix-toolkit-plugins/1/pretix_foo-1.0-py3-none-any.whl",
            "pretix-foo",
        ),
    ];
    let locally_built_base = BasePin {
        reference: "pretix/standalone:stable".to_owned(),
        pinned: format!("sha256:{}", "9c".repeat(32)),
    };
    insta::assert_snapshot!(render(&locally_built_base, &items, true, true));
}
