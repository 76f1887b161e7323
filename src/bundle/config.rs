//! Config patches (sealos `Config`): change a bundle's file before it ships.
//!
//! `override` replaces the file, `insert` puts the data before it, `append`
//! after it, and `merge` deep-merges structured data by the file's format:
//! YAML (multi-document: a patch document with a `kind` merges into the
//! document of that `kind` and, where the patch gives them, `apiVersion` and
//! `metadata.name`, else it is appended; one without a `kind` merges into the
//! document at its own position, else it is appended), JSON and TOML. In a merge, tables merge key by key and the
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

/// What names a YAML document: its `apiVersion`, `kind` and
/// `metadata.name`, each when present.
#[derive(Debug, Default)]
struct YamlIdentity<'a> {
    api_version: Option<&'a str>,
    kind: Option<&'a str>,
    name: Option<&'a str>,
}

fn yaml_identity(doc: &serde_yaml_ng::Value) -> YamlIdentity<'_> {
    YamlIdentity {
        api_version: doc.get("apiVersion").and_then(|v| v.as_str()),
        kind: doc.get("kind").and_then(|v| v.as_str()),
        name: doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|v| v.as_str()),
    }
}

/// Whether a patch document with a `kind` is meant for `doc`: the same
/// kind, and the same `apiVersion` and `metadata.name` where the patch
/// gives them (two `ConfigMap`s of one file are told apart by name; a patch
/// that leaves out `apiVersion` fits any version of its kind).
fn patch_targets(patch: &YamlIdentity, doc: &YamlIdentity) -> bool {
    patch.kind == doc.kind
        && patch
            .api_version
            .is_none_or(|api| doc.api_version == Some(api))
        && patch.name.is_none_or(|name| doc.name == Some(name))
}

fn merge_yaml(text: &str, data: &str) -> Result<Vec<u8>, String> {
    let mut docs = yaml_docs(text, "the file")?;
    let patches = yaml_docs(data, "the patch")?;
    for (position, patch) in patches.into_iter().enumerate() {
        let identity = yaml_identity(&patch);
        let target = if identity.kind.is_some() {
            docs.iter()
                .position(|d| patch_targets(&identity, &yaml_identity(d)))
        } else {
            (position < docs.len()).then_some(position)
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
    fn yaml_documents_without_kind_merge_by_position_and_extra_ones_are_appended() {
        let out = merged(
            "a.yaml",
            "a: 1\n---\nb: 1\n",
            "a: 2\n---\nc: 3\n---\nd: 4\n",
        );
        let docs = yaml_docs(&out, "out").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0]["a"].as_i64(), Some(2));
        assert_eq!(docs[1]["b"].as_i64(), Some(1));
        assert_eq!(docs[1]["c"].as_i64(), Some(3));
        assert_eq!(docs[2]["d"].as_i64(), Some(4));
    }

    #[test]
    fn yaml_patch_kind_not_in_the_file_is_appended_and_empty_file_takes_the_patch() {
        let out = merged(
            "k.yaml",
            "apiVersion: v1\nkind: A\nx: 1\n",
            "apiVersion: v2\nkind: A\ny: 2\n",
        );
        let docs = yaml_docs(&out, "out").unwrap();
        assert_eq!(
            docs.len(),
            2,
            "another apiVersion is another document: {out}"
        );
        assert_eq!(docs[1]["y"].as_i64(), Some(2));

        let out = merged("k.yaml", "", "kind: A\ny: 2\n");
        let docs = yaml_docs(&out, "out").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["y"].as_i64(), Some(2));
    }

    #[test]
    fn yaml_patch_without_api_version_fits_its_kind_and_a_name_picks_the_document() {
        let kubeadm = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 100.64.0.0/10\n  serviceSubnet: 10.96.0.0/22\n";
        let out = merged(
            "kubeadm.yml",
            kubeadm,
            "kind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/16\n",
        );
        let docs = yaml_docs(&out, "out").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(
            docs[0]["networking"]["podSubnet"].as_str(),
            Some("10.244.0.0/16")
        );
        assert_eq!(
            docs[0]["networking"]["serviceSubnet"].as_str(),
            Some("10.96.0.0/22")
        );

        let maps = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: b\n";
        let out = merged(
            "m.yaml",
            maps,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: patched\n",
        );
        let docs = yaml_docs(&out, "out").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["data"]["k"].as_str(), Some("a"));
        assert_eq!(docs[1]["data"]["k"].as_str(), Some("patched"));
    }

    #[test]
    fn json_and_toml_merge_deeply_and_replace_lists() {
        let out = merged(
            "a.json",
            r#"{"a": {"b": {"c": 1, "d": [1, 2]}}, "k": 1}"#,
            r#"{"a": {"b": {"d": [3], "e": null}}}"#,
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"]["b"]["c"], 1);
        assert_eq!(v["a"]["b"]["d"], serde_json::json!([3]));
        assert!(v["a"]["b"]["e"].is_null());
        assert_eq!(v["k"], 1);
        let out = merged(
            "a.toml",
            "[a.b]\nc = 1\nd = [1, 2]\n[k]\nx = 1\n",
            "[a.b]\nd = [3]\n[a.new]\ny = 2\n",
        );
        let t: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(t["a"]["b"]["c"].as_integer(), Some(1));
        assert_eq!(t["a"]["b"]["d"].as_array().unwrap().len(), 1);
        assert_eq!(t["a"]["new"]["y"].as_integer(), Some(2));
        assert_eq!(t["k"]["x"].as_integer(), Some(1));
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
