//! The committed JSON schema matches the code, and every example plan is valid.

#[test]
fn committed_schema_is_fresh() {
    let fresh = cairn::schema::clusterfile_schema();
    let path = "schemas/clusterfile.schema.json";
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != fresh {
        if std::env::var_os("CAIRN_UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &fresh).expect("write schema");
            return;
        }
        panic!(
            "{path} is stale: regenerate it with `cargo run -- schema > {path}` (or CAIRN_UPDATE_SCHEMA=1 cargo test --test schema)"
        );
    }
}

#[test]
fn schema_describes_every_section() {
    let schema: serde_json::Value =
        serde_json::from_str(&cairn::schema::clusterfile_schema()).unwrap();
    let props = schema["properties"]
        .as_object()
        .expect("top-level properties");
    for key in [
        "version", "name", "ssh", "vars", "hosts", "bundles", "files", "configs", "steps",
    ] {
        assert!(props.contains_key(key), "schema lacks `{key}`");
    }
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false),
        "unknown keys are refused"
    );
}

#[test]
fn every_plan_validates() {
    let mut count = 0;
    for entry in std::fs::read_dir("plans").expect("plans/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = cairn::pipeline::Loaded::read(&path).and_then(|loaded| loaded.check()) {
                panic!(
                    "{} is invalid:\n{}",
                    path.display(),
                    cairn::diagnostic::render_plain(&e)
                );
            }
            count += 1;
        }
    }
    assert!(count >= 1, "plans/ holds example plans");
}
