//! `cargo xtask dist`: the release a sysadmin installs without a Rust toolchain. One directory,
//! packed as a tarball with its checksum, and the same files as a `.deb`:
//!
//! ```text
//! pretix-toolkit-<version>-x86_64-linux-gnu/
//!   bin/                      the seven tools and pretix-toolkit (the pipelines)
//!   share/man/man1/           a man page per binary, from the clap definitions
//!   share/bash-completion/completions/, share/zsh/site-functions/, share/fish/vendor_completions.d/
//!   share/ansible/collections/ansible_collections/pretix/toolkit/
//!                             the collection: the tools as modules, their ansible-doc sidecars, the role
//!   share/doc/pretix-toolkit/ README.md and docs/
//! ```
//!
//! Every generated text comes from the code (clap commands, the document's JSON Schema), so it
//! cannot drift from what the binaries do.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::workspace_root;
use anyhow::{Context as _, bail};
use clap::{Args, CommandFactory as _};
use serde_json::{Value, json};

/// The tools, with their clap commands and the module name Ansible calls them by.
fn tools() -> Vec<(clap::Command, &'static str)> {
    use pretix_site::run::command;
    vec![
        (command::<pretix_db::DbTool>(), "pretix_db"),
        (command::<pretix_redis::RedisTool>(), "pretix_redis"),
        (command::<pretix_cfg::CfgTool>(), "pretix_cfg"),
        (command::<pretix_plugin::PluginTool>(), "pretix_plugin"),
        (command::<pretix_unit::UnitTool>(), "pretix_unit"),
        (command::<pretix_cron::CronTool>(), "pretix_cron"),
        (command::<pretix_proxy::ProxyTool>(), "pretix_proxy"),
    ]
}

/// The section each tool owns, for its module documentation.
fn owned_sections(tool: &str) -> &'static [&'static str] {
    match tool {
        "pretix-db" => &["database"],
        "pretix-redis" => &["redis"],
        "pretix-cfg" => &["config", "paths"],
        "pretix-plugin" => &["plugins"],
        "pretix-unit" => &["container"],
        "pretix-cron" => &["cron"],
        "pretix-proxy" => &["proxy"],
        _ => &[],
    }
}

#[derive(Debug, Args)]
pub struct DistArgs {
    /// Where to put the release (default: target/dist)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Skip the .deb (dpkg-deb is needed for it)
    #[arg(long)]
    pub no_deb: bool,
}

pub fn run(args: &DistArgs) -> anyhow::Result<ExitCode> {
    let root = workspace_root();
    eprintln!("xtask dist: building the release binaries");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    build.args(["build", "--release", "--quiet", "--bins", "-p", "xtask"]);
    for tool in crate::steps::TOOLS {
        build.args(["-p", tool]);
    }
    if !build
        .current_dir(&root)
        .status()
        .context("cargo build --release")?
        .success()
    {
        bail!("building the release binaries failed");
    }
    let out = args.out.clone().unwrap_or_else(|| target_dir().join("dist"));
    let artifacts = package(&target_dir().join("release"), &out, !args.no_deb)?;
    for artifact in &artifacts {
        eprintln!("xtask dist: wrote {}", artifact.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The release from the binaries in `binaries`: the staged directory, its tarball, the `.deb`
/// when asked, and `SHA256SUMS`, all in `out`. Returns the tarball, the .deb and the sums.
pub fn package(binaries: &Path, out: &Path, deb: bool) -> anyhow::Result<Vec<PathBuf>> {
    let root = workspace_root();
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("pretix-toolkit-{version}-x86_64-linux-gnu");
    let stage = out.join(&name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("remove the old {}", stage.display()))?;
    }
    std::fs::create_dir_all(&stage).with_context(|| format!("create {}", stage.display()))?;
    let bin = stage.join("bin");
    std::fs::create_dir_all(&bin)?;
    for binary in crate::steps::TOOLS.iter().copied().chain(["pretix-toolkit"]) {
        copy_executable(&binaries.join(binary), &bin.join(binary))?;
    }
    let mut commands: Vec<clap::Command> = tools().into_iter().map(|(command, _)| command).collect();
    commands.push(crate::Toolkit::command());
    for command in &mut commands {
        write_man_page(command, &stage.join("share/man/man1"))?;
        write_completions(command, &stage.join("share"))?;
    }

    let collection = stage.join("share/ansible/collections/ansible_collections/pretix/toolkit");
    write_collection(&root.join("ansible/pretix/toolkit"), &collection, &bin)?;

    let doc = stage.join("share/doc/pretix-toolkit");
    std::fs::create_dir_all(doc.join("docs"))?;
    std::fs::copy(root.join("README.md"), doc.join("README.md"))?;
    for entry in std::fs::read_dir(root.join("docs"))? {
        let path = entry?.path();
        if let Some(file) = path.file_name() {
            std::fs::copy(&path, doc.join("docs").join(file))?;
        }
    }

    let tarball = out.join(format!("{name}.tar.gz"));
    run_checked(
        Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
            .arg(&tarball)
            .arg("-C")
            .arg(out)
            .arg(&name),
        "tar",
    )?;
    let mut artifacts = vec![tarball];
    if deb {
        artifacts.push(build_deb(&stage, out, version)?);
    }
    let sums = out.join("SHA256SUMS");
    let mut sha = Command::new("sha256sum");
    for artifact in &artifacts {
        sha.arg(artifact.file_name().unwrap_or_default());
    }
    let output = sha.current_dir(out).output().context("sha256sum")?;
    if !output.status.success() {
        bail!("sha256sum failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    std::fs::write(&sums, &output.stdout)?;
    artifacts.push(sums);
    Ok(artifacts)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

fn copy_executable(from: &Path, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to).with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn run_checked(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command.status().with_context(|| format!("run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn write_man_page(command: &clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(dir.join(format!("{}.1", command.get_name())), page)?;
    Ok(())
}

fn write_completions(command: &mut clap::Command, share: &Path) -> anyhow::Result<()> {
    use clap_complete::Shell;
    let name = command.get_name().to_owned();
    for (shell, dir, file) in [
        (Shell::Bash, "bash-completion/completions", name.clone()),
        (Shell::Zsh, "zsh/site-functions", format!("_{name}")),
        (Shell::Fish, "fish/vendor_completions.d", format!("{name}.fish")),
    ] {
        let dir = share.join(dir);
        std::fs::create_dir_all(&dir)?;
        let mut script = Vec::new();
        clap_complete::generate(shell, command, &name, &mut script);
        std::fs::write(dir.join(file), script)?;
    }
    Ok(())
}

/// The collection: its hand-written files (galaxy.yml, the role, the playbooks), each tool binary
/// as a module, and a documentation sidecar per module generated from the clap command and the
/// document's JSON Schema.
pub fn write_collection(source: &Path, collection: &Path, bin: &Path) -> anyhow::Result<()> {
    copy_tree(source, collection)?;
    let modules = collection.join("plugins/modules");
    std::fs::create_dir_all(&modules)?;
    let schema: Value = serde_json::from_str(&pretix_site::schema::site_schema_json()).context("the site schema")?;
    for (command, module) in tools() {
        copy_executable(&bin.join(command.get_name()), &modules.join(module))?;
        let sidecar = module_documentation(&command, module, &schema);
        // JSON is YAML: ansible-doc reads this sidecar as it is.
        std::fs::write(
            modules.join(format!("{module}.yml")),
            serde_json::to_string_pretty(&sidecar)?,
        )?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// `DOCUMENTATION`, `EXAMPLES` and `RETURN` for one module.
pub fn module_documentation(command: &clap::Command, module: &str, schema: &Value) -> Value {
    let tool = command.get_name();
    let verbs: Vec<String> = command
        .get_subcommands()
        .filter(|verb| !verb.is_hide_set())
        .map(|verb| verb.get_name().to_owned())
        .collect();
    let verb_help: Vec<String> = command
        .get_subcommands()
        .filter(|verb| !verb.is_hide_set())
        .map(|verb| {
            format!(
                "C({}): {}",
                verb.get_name(),
                verb.get_about().map(|about| about.to_string()).unwrap_or_default()
            )
        })
        .collect();
    let about = command.get_about().map(|about| about.to_string()).unwrap_or_default();
    let mut options = serde_json::Map::new();
    options.insert(
        "verb".into(),
        json!({"description": verb_help, "type": "str", "default": "apply", "choices": verbs}),
    );
    options.insert(
        "site".into(),
        json!({"description": ["The site document to start from: what the previous module returned in C(site). Sections given as options replace its sections. Not together with O(site_file)."], "type": "dict"}),
    );
    options.insert(
        "site_file".into(),
        json!({"description": ["A site document (JSON file) to start from; sections given as options replace its sections."], "type": "path"}),
    );
    options.insert(
        "root".into(),
        json!({"description": ["Treat this directory as / for every file (staging); service actions are reported, not performed."], "type": "path"}),
    );
    let properties = &schema["properties"];
    let owned = owned_sections(tool);
    if let Some(sections) = properties.as_object() {
        for (section, definition) in sections {
            if section == "results" || section == "version" {
                continue;
            }
            let described = definition["description"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    let reference = definition["$ref"].as_str()?;
                    let name = reference.rsplit('/').next()?;
                    schema["$defs"][name]["description"].as_str().map(str::to_owned)
                })
                .unwrap_or_default();
            let role = if owned.contains(&section.as_str()) {
                format!("Owned by this module. {described}")
            } else {
                format!("Passed through to the result for the next module. {described}")
            };
            options.insert(
                section.clone(),
                json!({"description": [role.trim(), "See docs/site.md for every field."], "type": "dict"}),
            );
        }
    }
    json!({
        "DOCUMENTATION": {
            "module": module,
            "short_description": about,
            "version_added": "0.1.0",
            "description": [
                format!("{about}."),
                format!("The {tool} binary of the pretix toolkit, run as an Ansible binary module: it reads its options as the site document, acts, and returns the resulting document in C(site)."),
                "Check mode and diff mode are supported: in check mode nothing changes and the result says what would.",
                "Secrets are never options: give them as C({secret_file: /path}) references to root-only files.",
            ],
            "options": options,
            "attributes": {
                "check_mode": {"support": "full", "description": "Can run in check mode and return changed status prediction without modifying target."},
                "diff_mode": {"support": "full", "description": "Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode."},
            },
            "author": ["pretix toolkit"],
        },
        "EXAMPLES": format!(
            "- name: {about}\n  pretix.toolkit.{module}:\n    site: \"{{{{ previous.site }}}}\"\n  register: {short}\n",
            short = module.trim_start_matches("pretix_"),
        ),
        "RETURN": {
            "site": {"description": "The resulting site document, with this module's result appended to C(results); give it to the next module.", "returned": "always", "type": "dict"},
            "actions": {"description": "What was done (in check mode: what would be done), one line each.", "returned": "always", "type": "list", "elements": "str"},
            "checks": {"description": "The findings of the read-only verb: name, status (ok, warning, failure) and message.", "returned": "when verb is the read-only verb", "type": "list", "elements": "dict"},
            "msg": {"description": "A summary, secrets masked.", "returned": "always", "type": "str"},
        },
    })
}

/// A `.deb` of the same files, under /usr (`dpkg-deb` from Debian's dpkg).
fn build_deb(stage: &Path, out: &Path, version: &str) -> anyhow::Result<PathBuf> {
    let root = out.join("deb-root");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    copy_tree(&stage.join("bin"), &root.join("usr/bin"))?;
    copy_tree(&stage.join("share"), &root.join("usr/share"))?;
    std::fs::create_dir_all(root.join("DEBIAN"))?;
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: pretix-toolkit\nVersion: {version}\nArchitecture: amd64\nMaintainer: pretix toolkit <root@localhost>\n\
             Depends: libc6 (>= 2.36)\nRecommends: docker.io, postgresql, redis-server, nginx\nSection: admin\nPriority: optional\n\
             Description: deploy and run pretix the way its small-scale Docker guide describes\n \
             Small tools, one concern each (PostgreSQL, Redis, pretix.cfg, the container and its unit,\n \
             plugins, cron, the TLS proxy), that pass one JSON document, plus the pipelines that chain them.\n"
        ),
    )?;
    let deb = out.join(format!("pretix-toolkit_{version}_amd64.deb"));
    run_checked(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&root)
            .arg(&deb),
        "dpkg-deb",
    )?;
    std::fs::remove_dir_all(&root)?;
    Ok(deb)
}
