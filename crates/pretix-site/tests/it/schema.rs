#[test]
fn schema_describes_every_top_level_key() {
    let schema: serde_json::Value = serde_json::from_str(&pretix_site::schema::site_schema_json()).expect("json");
    let properties = schema["properties"].as_object().expect("properties");
    for key in pretix_site::document::TOP_LEVEL_KEYS {
        assert!(properties.contains_key(*key), "schema lacks {key}");
    }
}
