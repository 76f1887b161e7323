//! Config patches (sealos `Config`): change a bundle's file before it ships.
//!
//! `override` replaces the file, `insert` puts the data before it, `append`
//! after it, and `merge` deep-merges structured data by the file's format:
//! YAML (multi-document: each patch document merges into the document of the
//! same `apiVersion` and `kind`, else the one at the same position, else it
//! is appended), JSON and TOML. In a merge, tables merge key by key and the
//! patch wins for everything else (lists included), as in sealos and kustomize.

use crate::model::{ConfigFormat, PatchStrategy};

/// Applies one patch to a file's bytes (`None`: the file does not exist).
pub fn apply(
    strategy: PatchStrategy,
    path: &str,
    original: Option<&[u8]>,
    data: &str,
) -> Result<Vec<u8>, String> {
    let original = original.unwrap_or_default();
    match strategy {
        PatchStrategy::Override => Ok(data.as_bytes().to_vec()),
        PatchStrategy::Insert => {
            let mut out = data.as_bytes().to_vec();
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(original);
            Ok(out)
        }
        PatchStrategy::Append => {
            let mut out = original.to_vec();
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(data.as_bytes());
            Ok(out)
        }
        PatchStrategy::Merge(format) => {
            let text =
                std::str::from_utf8(original).map_err(|_| format!("{path} is not UTF-8 text"))?;
            match format {
                ConfigFormat::Yaml => merge_yaml(text, data),
                ConfigFormat::Json => merge_json(text, data),
                ConfigFormat::Toml => merge_toml(text, data),
            }
        }
    }
}

fn yaml_docs(text: &str, what: &str) -> Result<Vec<serde_yaml_ng::Value>, String> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc)
            .map_err(|e| format!("{what} is not valid YAML: {e}"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn yaml_identity(doc: &serde_yaml_ng::Value) -> Option<(String, String)> {
    let api = doc
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let kind = doc.get("kind").and_then(|v| v.as_str())?.to_string();
    Some((api, kind))
}

fn merge_yaml(text: &str, data: &str) -> Result<Vec<u8>, String> {
    let mut docs = yaml_docs(text, "the file")?;
    let patches = yaml_docs(data, "the patch")?;
    for (position, patch) in patches.into_iter().enumerate() {
        let target = match yaml_identity(&patch) {
            Some(id) => docs
                .iter()
                .position(|d| yaml_identity(d).as_ref() == Some(&id)),
            None => (position < docs.len()).then_some(position),
        };
        match target {
            Some(i) => merge_yaml_value(&mut docs[i], patch),
            None => docs.push(patch),
        }
    }
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(doc).map_err(|e| e.to_string())?);
    }
    Ok(out.into_bytes())
}

fn merge_yaml_value(base: &mut serde_yaml_ng::Value, patch: serde_yaml_ng::Value) {
    use serde_yaml_ng::Value;
    match (base, patch) {
        (Value::Mapping(base), Value::Mapping(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(existing) => merge_yaml_value(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn merge_json(text: &str, data: &str) -> Result<Vec<u8>, String> {
    let mut base: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_str(text).map_err(|e| format!("the file is not valid JSON: {e}"))?
    };
    let patch: serde_json::Value =
        serde_json::from_str(data).map_err(|e| format!("the patch is not valid JSON: {e}"))?;
    merge_json_value(&mut base, patch);
    let mut out = serde_json::to_string_pretty(&base).map_err(|e| e.to_string())?;
    out.push('\n');
    Ok(out.into_bytes())
}

fn merge_json_value(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(existing) => merge_json_value(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn merge_toml(text: &str, data: &str) -> Result<Vec<u8>, String> {
    let mut base: toml::Table =
        toml::from_str(text).map_err(|e| format!("the file is not valid TOML: {}", e.message()))?;
    let patch: toml::Table = toml::from_str(data)
        .map_err(|e| format!("the patch is not valid TOML: {}", e.message()))?;
    merge_toml_table(&mut base, patch);
    toml::to_string(&base)
        .map(String::into_bytes)
        .map_err(|e| e.to_string())
}

fn merge_toml_table(base: &mut toml::Table, patch: toml::Table) {
    for (key, value) in patch {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(patch)) => {
                merge_toml_table(existing, patch);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(path: &str, original: &str, data: &str) -> String {
        String::from_utf8(
            apply(
                PatchStrategy::Merge(ConfigFormat::of_path(path).unwrap()),
                path,
                Some(original.as_bytes()),
                data,
            )
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn yaml_multi_document_merge_by_kind() {
        let original =
            "apiVersion: v1\nkind: A\nspec:\n  x: 1\n  y: 2\n---\napiVersion: v1\nkind: B\nz: 3\n";
        let patch = "apiVersion: v1\nkind: B\nz: 4\n---\nkind: C\nnew: true\n";
        let out = merged("k.yaml", original, patch);
        let docs = yaml_docs(&out, "out").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0]["spec"]["y"].as_i64(), Some(2));
        assert_eq!(docs[1]["z"].as_i64(), Some(4));
        assert_eq!(docs[2]["kind"].as_str(), Some("C"));
    }

    #[test]
    fn yaml_deep_merge_keeps_siblings() {
        let out = merged(
            "a.yml",
            "a:\n  b: 1\n  c: [1, 2]\n",
            "a:\n  c: [3]\n  d: x\n",
        );
        let doc = &yaml_docs(&out, "out").unwrap()[0];
        assert_eq!(doc["a"]["b"].as_i64(), Some(1));
        assert_eq!(doc["a"]["c"].as_sequence().unwrap().len(), 1);
        assert_eq!(doc["a"]["d"].as_str(), Some("x"));
    }

    #[test]
    fn json_and_toml_merge() {
        let out = merged("a.json", r#"{"a": {"b": 1}, "k": 1}"#, r#"{"a": {"c": 2}}"#);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"]["b"], 1);
        assert_eq!(v["a"]["c"], 2);
        let out = merged("a.toml", "[a]\nb = 1\n", "[a]\nc = 2\n");
        let t: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(t["a"]["b"].as_integer(), Some(1));
        assert_eq!(t["a"]["c"].as_integer(), Some(2));
    }

    #[test]
    fn text_strategies() {
        let ins = apply(PatchStrategy::Insert, "x", Some(b"body\n"), "head").unwrap();
        assert_eq!(ins, b"head\nbody\n");
        let app = apply(PatchStrategy::Append, "x", Some(b"body"), "tail\n").unwrap();
        assert_eq!(app, b"body\ntail\n");
        let ovr = apply(PatchStrategy::Override, "x", None, "new").unwrap();
        assert_eq!(ovr, b"new");
    }

    #[test]
    fn bad_yaml_is_an_error() {
        let err = apply(
            PatchStrategy::Merge(ConfigFormat::Yaml),
            "a.yaml",
            Some(b"a: [1"),
            "b: 2",
        )
        .unwrap_err();
        assert!(err.contains("not valid YAML"), "{err}");
    }
}
