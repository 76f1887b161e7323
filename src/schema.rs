//! The Clusterfile's JSON schema, generated from the raw types.
//!
//! `schemas/clusterfile.schema.json` is this output, committed; a test fails
//! when it is stale, so the reference can never drift from the parser.

/// The schema as pretty JSON, with a trailing newline.
pub fn clusterfile_schema() -> String {
    let schema = schemars::schema_for!(crate::clusterfile::raw::RawClusterfile);
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serializes");
    text.push('\n');
    text
}
