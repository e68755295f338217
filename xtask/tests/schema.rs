//! `schema/site.schema.json`: fresh, and in agreement with the parser. A corpus of documents
//! (every site document in the docs, and the edge cases where they used to disagree) is judged
//! by the tools' parser and by an independent JSON Schema validator (Python's `jsonschema`, in
//! the test venv); both must say the same of each.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pretix_site::Document;
use pretix_site::sections::{ConfigValue, Container, Cron, Database, Paths, Plugins, Proxy, Redis};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn generated() -> String {
    pretix_site::schema::with_config(pretix_cfg::schema::config_json_schema())
}

/// The committed schema must be what the types generate: run `cargo xtask schema` after
/// changing a section type or pretix-cfg's option schema.
#[test]
fn committed_schema_is_fresh() {
    let committed = std::fs::read_to_string(repo().join("schema/site.schema.json")).unwrap_or_default();
    assert!(
        committed == generated(),
        "schema/site.schema.json is stale: run `cargo xtask schema` and commit the result"
    );
}

/// The parser's verdict: the document parses, every section parses as its tool reads it, and
/// every `config` key is one pretix reads, with a value pretix-cfg takes (a secret key only as
/// a secret reference).
fn parser_accepts(document: &Value) -> Result<(), String> {
    let parsed = Document::from_value(document.clone()).map_err(|error| error.to_string())?;
    let sections = [
        parsed.section::<Paths>("paths").map(drop),
        parsed.section::<Database>("database").map(drop),
        parsed.section::<Redis>("redis").map(drop),
        parsed.section::<Container>("container").map(drop),
        parsed.section::<Proxy>("proxy").map(drop),
        parsed.section::<Plugins>("plugins").map(drop),
        parsed.section::<Cron>("cron").map(drop),
    ];
    for section in sections {
        section.map_err(|error| error.to_string())?;
    }
    let Some(config) = document.get("config").and_then(Value::as_object) else {
        return Ok(());
    };
    for (section, keys) in config {
        let keys = keys.as_object().ok_or("a config section is not an object")?;
        for (key, value) in keys {
            let definition = pretix_cfg::schema::key(section, key).map_err(|error| error.to_string())?;
            let value: ConfigValue = serde_json::from_value(value.clone()).map_err(|error| error.to_string())?;
            if matches!(value, ConfigValue::Secret(_)) {
                continue;
            }
            if definition.secret {
                return Err(format!("{section}.{key} must be a secret reference"));
            }
            let text = value.as_plain_text().unwrap_or_default();
            pretix_cfg::schema::check_value(definition, &text)?;
        }
    }
    Ok(())
}

/// The validator's verdict on each document, in one Python process.
fn schema_accepts(documents: &[Value]) -> Vec<bool> {
    let venv = std::env::var_os("PRETIX_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let input = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(input.path(), Value::Array(documents.to_vec()).to_string()).expect("write");
    let output = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             validator = jsonschema.Draft202012Validator(schema)\n\
             print(json.dumps([validator.is_valid(d) for d in json.load(open(sys.argv[2]))]))",
        )
        .arg(repo().join("schema/site.schema.json"))
        .arg(input.path())
        .output()
        .expect("run python (scripts/install-test-deps makes the venv)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("verdicts")
}

fn corpus() -> Vec<Value> {
    let mut documents = vec![
        json!({}),
        json!({"$schema": "./schema/site.schema.json", "config": {"pretix": {"url": "https://t.example"}}}),
        json!({"$schema": 5}),
        json!({"version": 1}),
        json!({"version": 2}),
        json!({"version": 0}),
        json!({"version": "1"}),
        json!({"unknown": {}}),
        json!({"redis": ["/etc/shadow"]}),
        json!({"paths": ["/x"]}),
        json!({"database": {"port": 5432}}),
        json!({"database": {"port": "5432"}}),
        json!({"database": {"port": " 5433 "}}),
        json!({"database": {"port": 0}}),
        json!({"database": {"port": "0"}}),
        json!({"database": {"port": 65536}}),
        json!({"database": {"port": "65535"}}),
        json!({"database": {"port": "x"}}),
        json!({"database": {"port": -1}}),
        json!({"database": {"restart": "yes"}}),
        json!({"database": {"restart": "On"}}),
        json!({"database": {"restart": 1}}),
        json!({"database": {"restart": 2}}),
        json!({"database": {"restart": "maybe"}}),
        json!({"database": {"nmae": "x"}}),
        json!({"database": {"password": {"secret_file": "/etc/pretix-toolkit/secrets/db"}}}),
        json!({"database": {"password": "hunter2"}}),
        json!({"redis": {"restart_timeout_seconds": "30"}}),
        json!({"redis": {"restart_timeout_seconds": 4294967296u64}}),
        json!({"redis": {"socket_mode": "tcp"}}),
        json!({"redis": {"socket_mode": "everyone"}}),
        json!({"config": {"pretix": {"url": "https://t.example"}, "mail": {"from": "t@t.example", "port": 25}}}),
        json!({"config": {"mail": {"port": "25"}}}),
        json!({"config": {"mail": {"port": "twenty-five"}}}),
        json!({"config": {"mail": {"tls": true}}}),
        json!({"config": {"mail": {"tls": "maybe"}}}),
        json!({"config": {"pretix": {"loglevel": "INFO"}}}),
        json!({"config": {"pretix": {"loglevel": "info"}}}),
        json!({"config": {"pretix": {"nope": "x"}}}),
        json!({"config": {"nosection": {"x": "y"}}}),
        json!({"config": {"database": {"password": "plain"}}}),
        json!({"config": {"database": {"password": {"secret_file": "/etc/pretix-toolkit/secrets/db"}}}}),
        json!({"config": {"redis": {"location": {"secret_file": "/etc/pretix-toolkit/secrets/redis-url"}}}}),
    ];
    // Every site document the docs show.
    for name in [
        "README.md",
        "docs/site.md",
        "docs/pretix-db.md",
        "docs/pretix-redis.md",
        "docs/pretix-cfg.md",
    ] {
        let text = std::fs::read_to_string(repo().join(name)).unwrap_or_default();
        for block in text.split("```json\n").skip(1) {
            let body = block.split("```").next().unwrap_or_default();
            if let Ok(value) = serde_json::from_str::<Value>(body)
                && value.get("tool").is_none()
            {
                documents.push(value);
            }
        }
    }
    documents
}

#[test]
fn the_schema_and_the_parser_agree_on_every_document_of_the_corpus() {
    let documents = corpus();
    let verdicts = schema_accepts(&documents);
    let mut disagreements = Vec::new();
    for (document, schema_says) in documents.iter().zip(verdicts) {
        let parser_says = parser_accepts(document);
        if parser_says.is_ok() != schema_says {
            disagreements.push(format!(
                "{document}: parser {}, schema {}",
                match &parser_says {
                    Ok(()) => "accepts".to_owned(),
                    Err(error) => format!("refuses ({error})"),
                },
                if schema_says { "accepts" } else { "refuses" }
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "schema and parser disagree:\n{}",
        disagreements.join("\n")
    );
}
