/// The committed schema must be what the types generate: run `cargo xtask schema` after
/// changing a section type.
#[test]
fn committed_schema_is_fresh() {
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema/site.schema.json");
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    let generated = pretix_site::schema::site_schema_json();
    assert!(
        committed == generated,
        "schema/site.schema.json is stale: run `cargo xtask schema` and commit the result"
    );
}

#[test]
fn schema_describes_every_top_level_key() {
    let schema: serde_json::Value = serde_json::from_str(&pretix_site::schema::site_schema_json()).expect("json");
    let properties = schema["properties"].as_object().expect("properties");
    for key in pretix_site::document::TOP_LEVEL_KEYS {
        assert!(properties.contains_key(*key), "schema lacks {key}");
    }
}
