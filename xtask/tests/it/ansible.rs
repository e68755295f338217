//! The Ansible collection: every tool is a module whose documentation `ansible-doc` renders from
//! the sidecar that `dist` generates, and the role chains the modules with `site`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn venv() -> PathBuf {
    std::env::var_os("PRETIX_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"))
}

#[test]
fn ansible_doc_renders_every_module_with_its_verbs_and_the_site_option() {
    let bin = xtask::steps::build_tools().expect("build the tools");
    let collections = tempfile::tempdir().expect("collections dir");
    let collection = collections.path().join("ansible_collections/pretix/toolkit");
    xtask::dist::write_collection(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../ansible/pretix/toolkit"),
        &collection,
        &bin,
    )
    .expect("write the collection");
    for (module, owned, verb) in [
        ("pretix_db", "database", "apply"),
        ("pretix_redis", "redis", "apply"),
        ("pretix_cfg", "config", "import"),
        ("pretix_plugin", "plugins", "verify"),
        ("pretix_unit", "container", "migrate"),
        ("pretix_cron", "cron", "run"),
        ("pretix_proxy", "proxy", "verify"),
    ] {
        let output = Command::new(venv().join("bin/ansible-doc"))
            .arg(format!("pretix.toolkit.{module}"))
            .env("ANSIBLE_COLLECTIONS_PATH", collections.path())
            .env("ANSIBLE_NOCOLOR", "1")
            .output()
            .expect("run ansible-doc");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "ansible-doc {module}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains(&format!("MODULE pretix.toolkit.{module}")), "{text}");
        assert!(text.contains("site "), "the site option is documented: {text}");
        assert!(text.contains(verb), "{module} documents its verb {verb}: {text}");
        assert!(
            text.lines().any(
                |line| line.trim_start_matches([' ', '-']).starts_with(&format!("{owned} "))
                    && line.contains("Owned by this module")
            ),
            "{module} owns {owned}: {text}"
        );
        assert!(
            collection.join("plugins/modules").join(module).is_file(),
            "the binary is the module"
        );
    }
}
