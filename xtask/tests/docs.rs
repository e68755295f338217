//! Every example in README.md and docs/ is checked here, so the documents cannot drift from the
//! tools:
//! - every command line in a `sh` block that calls a pretix tool parses with that tool's own
//!   command line (its verbs and flags), and every site document in it (an `echo '...'` or a
//!   heredoc) is a valid document whose sections parse and whose paths pass the shared check;
//! - every `json` block parses, and the ones that are site documents are valid documents;
//! - every `yaml` block passes `ansible-playbook --syntax-check` with the tools as modules, and
//!   README's playbook runs for real against a throwaway PostgreSQL and Redis, with only its
//!   `site_file` pointed at a document for them.
//!
//! The `sh` examples are not executed as written: they change a live host as root (`pretix-db
//! apply < site.json` provisions the machine's own PostgreSQL).

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pretix_site::Document;
use pretix_site::sections::{Container, Cron, Database, HostPaths, Paths, Plugins, Proxy, Redis};
use pretix_testkit::{Postgres, Redis as RedisServer, RedisOptions, system_user};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fenced block: its language, its text, and where it starts (for messages).
struct Block {
    lang: String,
    text: String,
    at: String,
}

fn documents() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn blocks() -> Vec<Block> {
    let mut found = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("read a doc");
        let name = file.strip_prefix(repo()).unwrap_or(&file).display().to_string();
        let mut current: Option<Block> = None;
        for (number, line) in text.lines().enumerate() {
            match (&mut current, line.trim_start().strip_prefix("```")) {
                (None, Some(lang)) => {
                    current = Some(Block {
                        lang: lang.trim().to_owned(),
                        text: String::new(),
                        at: format!("{name}:{}", number + 1),
                    })
                }
                (Some(_), Some(_)) => found.extend(current.take()),
                (Some(block), None) => {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
                (None, None) => {}
            }
        }
    }
    found
}

fn tool_commands() -> BTreeMap<&'static str, clap::Command> {
    use pretix_site::run::command;
    BTreeMap::from([
        ("pretix-db", command::<pretix_db::DbTool>()),
        ("pretix-redis", command::<pretix_redis::RedisTool>()),
        ("pretix-cfg", command::<pretix_cfg::CfgTool>()),
        ("pretix-unit", command::<pretix_unit::UnitTool>()),
        ("pretix-proxy", command::<pretix_proxy::ProxyTool>()),
        ("pretix-plugin", command::<pretix_plugin::PluginTool>()),
        ("pretix-cron", command::<pretix_cron::CronTool>()),
    ])
}

/// Splits a shell line into words, honouring single and double quotes (enough for the docs).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for character in line.chars() {
        match (quote, character) {
            (Some(open), close) if open == close => quote = None,
            (Some(_), other) => word.push(other),
            (None, '\'' | '"') => {
                quote = Some(character);
                in_word = true;
            }
            (None, ' ' | '\t') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, other) => {
                word.push(other);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// A document from the docs must be valid as every tool reads it.
fn check_document(text: &str, at: &str) {
    let document = Document::parse(text).unwrap_or_else(|error| panic!("{at}: {error}: {text}"));
    let raw = document.to_value();
    let check = |section: &str, result: Result<(), pretix_site::ToolError>| {
        if let Err(error) = result {
            panic!("{at}: section {section}: {error}");
        }
    };
    for key in raw
        .as_object()
        .map(|map| map.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let result = match key.as_str() {
            "paths" => document
                .section::<Paths>("paths")
                .and_then(|section| section.validate()),
            "database" => document
                .section::<Database>("database")
                .and_then(|section| section.validate_host_paths()),
            "redis" => document
                .section::<Redis>("redis")
                .and_then(|section| section.validate_host_paths()),
            "container" => document
                .section::<Container>("container")
                .and_then(|section| section.validate_host_paths()),
            "proxy" => document
                .section::<Proxy>("proxy")
                .and_then(|section| section.validate_host_paths()),
            "plugins" => document
                .section::<Plugins>("plugins")
                .and_then(|section| section.validate_host_paths()),
            "cron" => document
                .section::<Cron>("cron")
                .and_then(|section| section.validate_host_paths()),
            _ => Ok(()),
        };
        check(&key, result);
    }
}

/// The `sh` blocks: command lines joined across `\`, each pipeline stage that calls a tool.
#[test]
fn every_shell_example_uses_real_verbs_and_flags_and_valid_documents() {
    let commands = tool_commands();
    let mut stages_checked = 0;
    let mut documents_checked = 0;
    for block in blocks().iter().filter(|block| block.lang == "sh") {
        let joined = block.text.replace("\\\n", " ");
        let mut lines = joined.lines().peekable();
        while let Some(first) = lines.next() {
            if first.trim_start().starts_with('#') {
                continue;
            }
            // A quoted document may span lines.
            let mut line = first.to_owned();
            while line.matches('\'').count() % 2 == 1 {
                let Some(next) = lines.next() else { break };
                line.push('\n');
                line.push_str(next);
            }
            let line = line.trim();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            // A heredoc: its body is a document.
            if let Some((_, marker)) = line.split_once("<<'") {
                let marker = marker.trim_end_matches('\'');
                let mut body = String::new();
                for inner in lines.by_ref() {
                    if inner.trim() == marker {
                        break;
                    }
                    body.push_str(inner);
                    body.push('\n');
                }
                check_document(&body, &block.at);
                documents_checked += 1;
                continue;
            }
            let code = line.split(" #").next().unwrap_or(line);
            for stage in code.split('|') {
                let words = shell_words(stage);
                let Some(program) = words.first() else { continue };
                if program == "echo" {
                    if let Some(document) = words.get(1) {
                        check_document(document, &block.at);
                        documents_checked += 1;
                    }
                    continue;
                }
                let Some(command) = commands.get(program.as_str()) else {
                    continue;
                };
                // Redirections are the shell's, not the tool's.
                let mut argv = Vec::new();
                let mut skip_next = false;
                for word in &words {
                    if std::mem::take(&mut skip_next) {
                        continue;
                    }
                    if matches!(word.as_str(), "<" | ">" | "2>" | ">>") {
                        skip_next = true;
                        continue;
                    }
                    argv.push(word.clone());
                }
                if let Err(error) = command.clone().try_get_matches_from(&argv) {
                    panic!("{}: `{}` does not parse: {error}", block.at, argv.join(" "));
                }
                stages_checked += 1;
            }
        }
    }
    assert!(
        stages_checked >= 15,
        "only {stages_checked} tool calls found in the docs"
    );
    assert!(
        documents_checked >= 8,
        "only {documents_checked} documents found in the docs"
    );
}

#[test]
fn every_json_example_parses_and_every_document_is_valid() {
    let mut checked = 0;
    for block in blocks().iter().filter(|block| block.lang == "json") {
        let value: Value =
            serde_json::from_str(&block.text).unwrap_or_else(|error| panic!("{}: {error}:\n{}", block.at, block.text));
        // A result entry (it has a `tool`) or a section's fragment is not a whole document.
        let is_document = value.as_object().is_some_and(|map| {
            !map.contains_key("tool")
                && map
                    .keys()
                    .all(|key| pretix_site::document::TOP_LEVEL_KEYS.contains(&key.as_str()))
        });
        if is_document {
            check_document(&block.text, &block.at);
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} json blocks found");
}

fn venv() -> PathBuf {
    let venv = std::env::var_os("PRETIX_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    assert!(
        venv.join("bin/ansible-playbook").exists(),
        "no ansible-playbook in {}: run scripts/install-test-deps",
        venv.display()
    );
    venv
}

/// Builds the tool binaries and returns the one named.
fn bin(name: &str) -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--quiet", "--bins", "-p", name])
        .current_dir(repo())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building {name} failed");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("debug")
        .join(name)
}

/// A playbook directory with the tools as modules.
fn playbook_dir() -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(work.path().join("library")).expect("library");
    for tool in ["pretix-db", "pretix-redis", "pretix-cfg"] {
        std::fs::copy(bin(tool), work.path().join("library").join(tool.replace('-', "_"))).expect("copy module");
    }
    work
}

fn ansible_playbook(work: &Path, args: &[&str]) -> (bool, String) {
    let venv = venv();
    let output = Command::new(venv.join("bin/ansible-playbook"))
        .args(["-i", "ticketing,", "-c", "local"])
        .arg("-e")
        .arg(format!(
            "ansible_python_interpreter={}",
            venv.join("bin/python").display()
        ))
        .args(args)
        .env("ANSIBLE_HOME", work.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", work.join("local-tmp"))
        .env("ANSIBLE_REMOTE_TMP", work.join("remote-tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        // systemd is not PID 1 here: the seam records the calls instead.
        .env(pretix_site::service::RECORD_ENV, work.join("systemctl.log"))
        .current_dir(work)
        .output()
        .expect("run ansible-playbook");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), log)
}

#[test]
fn every_yaml_example_is_a_valid_playbook() {
    let work = playbook_dir();
    let mut checked = 0;
    for block in blocks().iter().filter(|block| block.lang == "yaml") {
        std::fs::write(work.path().join("example.yml"), &block.text).expect("write");
        let (ok, log) = ansible_playbook(work.path(), &["--syntax-check", "example.yml"]);
        assert!(ok, "{}: not a valid playbook:\n{log}", block.at);
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} yaml blocks found");
}

/// README's playbook, run by the real ansible-playbook: db, redis and cfg chained through
/// `site`, against a throwaway PostgreSQL and Redis. Only `site_file` is pointed elsewhere: at
/// README's own site document plus where the throwaway servers and the staging files are.
#[test]
fn the_readmes_playbook_runs() {
    let readme = blocks()
        .into_iter()
        .find(|block| block.lang == "yaml" && block.at.starts_with("README.md"))
        .expect("README has a playbook");
    let readme_site = blocks()
        .into_iter()
        .find(|block| block.at.starts_with("README.md") && block.text.contains("<<'JSON'"))
        .and_then(|block| {
            let body = block
                .text
                .split("<<'JSON'\n")
                .nth(1)?
                .split("\nJSON")
                .next()?
                .to_owned();
            serde_json::from_str::<Value>(&body).ok()
        })
        .expect("README's site document");

    let stage = tempfile::Builder::new()
        .prefix("pretix-docs.")
        .tempdir()
        .expect("stage");
    std::fs::set_permissions(stage.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = |relative: &str| stage.path().join(relative);
    let (redis_uid, redis_gid) = system_user("redis");
    for (dir, mode) in [("redis", 0o2755), ("redis-lib", 0o750)] {
        std::fs::create_dir(path(dir)).expect("mkdir");
        std::os::unix::fs::chown(path(dir), Some(redis_uid), Some(redis_gid)).expect("chown");
        std::fs::set_permissions(path(dir), std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let redis_conf = path("redis.conf");
    std::fs::copy(repo().join("fixtures/debian12/redis.conf"), &redis_conf).expect("Debian's redis.conf");
    std::os::unix::fs::chown(&redis_conf, Some(redis_uid), Some(redis_gid)).expect("chown");
    let socket = path("redis/redis.sock");
    let _redis = RedisServer::start_with_config_file(
        &redis_conf,
        RedisOptions {
            socket: socket.clone(),
            dir: path("redis-lib"),
            as_redis_user: true,
            port: Some(0),
        },
    );
    let cluster = Postgres::start();
    let mut site = readme_site;
    site["paths"] = json!({
        "config_dir": path("etc-pretix"), "data_dir": path("data"),
        "secrets_dir": path("secrets"), "lock_file": path("lock")
    });
    site["database"] = json!({
        "docker_host": "127.0.0.1", "docker_subnet": "127.0.0.0/8", "port": cluster.port(),
        "admin": {"socket_dir": cluster.socket_dir(), "port": cluster.port()}
    });
    site["redis"] = json!({
        "config_file": redis_conf, "socket": socket, "dropin_dir": path("redis-server.service.d"),
        "restart": false
    });
    let site_file = path("site.json");
    std::fs::write(&site_file, site.to_string()).expect("site.json");

    let work = playbook_dir();
    let playbook = readme.text.replace("/root/site.json", &site_file.display().to_string());
    assert_ne!(
        playbook, readme.text,
        "README's playbook no longer reads /root/site.json"
    );
    std::fs::write(work.path().join("readme.yml"), playbook).expect("write");
    let (ok, log) = ansible_playbook(work.path(), &["readme.yml"]);
    assert!(ok, "README's playbook failed:\n{log}");
    assert!(log.contains("failed=0"), "{log}");
    let rendered = std::fs::read_to_string(path("etc-pretix/pretix.cfg")).expect("pretix.cfg was written");
    assert!(rendered.contains("url=https://tickets.example.org\n"), "{rendered}");
    assert!(rendered.contains(&format!("port={}\n", cluster.port())), "{rendered}");
}
