use pretix_site::SecretRef;
use pretix_site::document::Document;
use pretix_site::error::ToolError;
use pretix_site::sections::{ConfigValue, Database};

fn input_error(result: Result<impl std::fmt::Debug, ToolError>) -> (String, String) {
    match result {
        Err(ToolError::Input { field, message }) => (field, message),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn round_trip_keeps_every_section_and_key_order() {
    let text = r#"{
  "version": 1,
  "config": {"pretix": {"url": "https://tickets.example.org", "currency": "EUR"}, "mail": {"from": "tickets@example.org"}},
  "container": {"image": "pretix/standalone:2026.8", "future_key_of_a_newer_tool": [1, 2]},
  "results": []
}"#;
    let document = Document::parse(text).expect("parse");
    let again = Document::parse(&document.to_json_pretty()).expect("reparse");
    assert_eq!(document, again);
    let value: serde_json::Value = serde_json::from_str(&document.to_json_pretty()).expect("json");
    let keys: Vec<&str> = value["config"]["pretix"]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["url", "currency"]);
}

#[test]
fn missing_sections_give_the_guides_defaults() {
    let document = Document::parse("{}").expect("parse");
    let database: Database = document.section("database").expect("database");
    assert_eq!(database.name, "pretix");
    assert_eq!(database.docker_host, "172.17.0.1");
    assert_eq!(database.port, 5432);
}

#[test]
fn unknown_key_in_owned_section_names_path_and_suggestion() {
    let document = Document::parse(r#"{"database": {"admin": {"prot": 5433}}}"#).expect("parse");
    let (field, message) = input_error(document.section::<Database>("database"));
    assert_eq!(field, "database.admin.prot");
    assert!(message.contains("unknown field `prot`"), "{message}");
    assert!(message.contains("did you mean `port`?"), "{message}");
}

#[test]
fn wrong_type_names_the_path() {
    let document = Document::parse(r#"{"database": {"port": "fivethousand"}}"#).expect("parse");
    let (field, message) = input_error(document.section::<Database>("database"));
    assert_eq!(field, "database.port");
    assert!(message.contains("port number"), "{message}");
}

#[test]
fn ansible_style_strings_are_accepted_for_numbers_and_booleans() {
    let document = Document::parse(r#"{"database": {"port": "5433", "rotate_password": "yes"}}"#).expect("parse");
    let database: Database = document.section("database").expect("database");
    assert_eq!(database.port, 5433);
    assert!(database.rotate_password);
}

#[test]
fn unknown_top_level_key_is_refused_with_suggestion() {
    let (field, message) = input_error(Document::parse(r#"{"configs": {}}"#));
    assert_eq!(field, "configs");
    assert!(message.contains("did you mean `config`?"), "{message}");
}

#[test]
fn other_versions_and_non_objects_are_refused() {
    let (field, _) = input_error(Document::parse(r#"{"version": 2}"#));
    assert_eq!(field, "version");
    let (_, message) = input_error(Document::parse("[1]"));
    assert!(message.contains("JSON object"), "{message}");
    let (_, message) = input_error(Document::parse(""));
    assert!(message.contains("empty"), "{message}");
}

#[test]
fn config_values_accept_text_numbers_booleans_and_secret_references() {
    let document = Document::parse(
        r#"{"config": {"mail": {"port": 25, "tls": true, "from": "a@b.c", "password": {"secret_file": "/etc/x"}}}}"#,
    )
    .expect("parse");
    assert_eq!(
        document.config_value("mail", "port").expect("port"),
        Some(ConfigValue::Integer(25))
    );
    assert_eq!(
        document.config_value("mail", "tls").expect("tls"),
        Some(ConfigValue::Bool(true))
    );
    assert_eq!(
        document.config_value("mail", "password").expect("password"),
        Some(ConfigValue::Secret(SecretRef::new("/etc/x")))
    );
    let (field, _) = input_error(Document::parse(r#"{"config": {"mail": {"password": {"file": "/x"}}}}"#));
    assert!(field.starts_with("config.mail.password"), "{field}");
}

#[test]
fn set_config_value_reports_a_replaced_user_value() {
    let mut document = Document::parse(r#"{"config": {"database": {"host": "10.0.0.1"}}}"#).expect("parse");
    let previous = document.set_config_value("database", "host", ConfigValue::Text("172.17.0.1".into()));
    assert_eq!(previous, Some(ConfigValue::Text("10.0.0.1".into())));
    let same = document.set_config_value("database", "host", ConfigValue::Text("172.17.0.1".into()));
    assert_eq!(same, None);
}

#[test]
fn add_to_list_adds_once_and_never_removes() {
    let mut document = Document::parse(r#"{"container": {"volumes": ["/a:/a"]}}"#).expect("parse");
    assert!(document.add_to_list("container", "volumes", "/var/run/redis:/var/run/redis"));
    assert!(!document.add_to_list("container", "volumes", "/var/run/redis:/var/run/redis"));
    assert_eq!(
        document.raw_section("container").expect("container")["volumes"],
        serde_json::json!(["/a:/a", "/var/run/redis:/var/run/redis"])
    );
}
