//! A sealos image's metadata (its Kubefile's LABELs, ENV and CMD) as the
//! `bundle.toml` a bundle carries at its root.
//!
//! sealos reads an image's type from the `sealos.io.type` label
//! (`rootfs`, `patch`, `application`; none means an application), its hooks
//! from labels named `check`, `init`, `clean`, `init-registry`,
//! `clean-registry`, `init-cri`, `clean-cri` (and cairn takes any other
//! `init-*` / `clean-*` too), each run in the image's `scripts/` folder
//! (sealos runs `bash VALUE`; cairn's hooks run the value as a command with
//! `scripts/` first on `PATH`, so `init-cri.sh && bash init.sh` works as
//! written, and the value is kept as the label says), and, for `check`,
//! `init`, `clean`, `init-registry` and `clean-registry`, `bash NAME.sh`
//! when the label is missing (`pkg/constants/bash.go`); cairn does that
//! only when `scripts/NAME.sh` exists. Its ENV gives the defaults of the variables (`PATH` excepted: it
//! is the image's, not a setting). Its ENTRYPOINT and CMD items are each a
//! shell command, run in order joined by `; ` (`pkg/guest/guest.go`), with
//! `$(NAME)` of an ENV variable expanded: cairn writes that as `${NAME}`,
//! so the shell, which gets the variables exported, expands it with the
//! value in force. Everything is kept in sorted maps, so the same image
//! always writes the same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The label naming a sealos image's type.
const TYPE_LABEL: &str = "sealos.io.type";
/// Hooks whose missing label means `bash NAME.sh` (sealos' default).
const DEFAULTED_HOOKS: [&str; 5] = ["check", "init", "clean", "init-registry", "clean-registry"];
/// Hooks sealos runs only when labelled.
const LABELLED_HOOKS: [&str; 2] = ["init-cri", "clean-cri"];

/// What `bundle.toml` says about a bundle (the part cairn writes from an image).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageMetadata {
    /// `rootfs`, `patch` or `app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Run after install (sealos' `RunGuest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Default variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// Hook name → shell command, run in the bundle's `scripts/`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hooks: BTreeMap<String, String>,
    /// Default config patches: only counted here (`bundle inspect`); an
    /// image's labels never make any.
    #[serde(default, skip_serializing)]
    configs: Vec<toml::Value>,
}

impl ImageMetadata {
    /// Whether an image's labels say it is a sealos image (a type or a hook).
    pub fn has_sealos_labels(labels: &BTreeMap<String, String>) -> bool {
        labels.keys().any(|k| k == TYPE_LABEL || is_hook(k))
    }

    /// The metadata of an image unpacked at `root`, from its config.
    pub fn from_image(
        labels: &BTreeMap<String, String>,
        env: &[String],
        entrypoint: &[String],
        cmd: &[String],
        root: &Path,
    ) -> Result<ImageMetadata, String> {
        let kind = match labels.get(TYPE_LABEL).map(String::as_str) {
            None | Some("" | "application" | "app") => "app",
            Some("rootfs") => "rootfs",
            Some("patch") => "patch",
            Some(other) => {
                return Err(format!(
                    "its label {TYPE_LABEL}={other} is not a sealos image type (rootfs, patch, application)"
                ));
            }
        };
        let mut hooks = BTreeMap::new();
        for (name, value) in labels {
            if is_hook(name) && !value.trim().is_empty() {
                hooks.insert(name.clone(), value.trim().to_string());
            }
        }
        for name in DEFAULTED_HOOKS {
            let script = format!("{name}.sh");
            if !hooks.contains_key(name) && root.join("scripts").join(&script).is_file() {
                hooks.insert(name.to_string(), format!("bash {script}"));
            }
        }
        let vars: BTreeMap<String, String> = env
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .filter(|(name, _)| *name != "PATH")
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let commands: Vec<String> = entrypoint
            .iter()
            .chain(shell_form(cmd))
            .filter(|c| !c.trim().is_empty())
            .map(|c| expand_env_references(c, &vars))
            .collect();
        Ok(ImageMetadata {
            kind: Some(kind.to_string()),
            cmd: (!commands.is_empty()).then(|| commands.join("; ")),
            vars,
            hooks,
            configs: Vec::new(),
        })
    }

    /// The `bundle.toml` that says this (deterministic: sorted maps).
    pub fn to_bundle_toml(&self) -> String {
        toml::to_string(self).expect("plain strings serialize")
    }

    /// The `bundle.toml` at `root`, if there is one.
    pub fn read(root: &Path) -> Result<Option<ImageMetadata>, String> {
        let path = root.join("bundle.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("bundle.toml cannot be read: {e}")),
        };
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| format!("bundle.toml is not valid: {}", e.message()))
    }

    /// How many default config patches `bundle.toml` carries.
    pub fn configs(&self) -> usize {
        self.configs.len()
    }
}

/// A hook's label: a known name, or `init-NAME` / `clean-NAME` with NAME
/// of letters, digits, `-` and `_` (what `bundle.toml` accepts).
fn is_hook(label: &str) -> bool {
    let named = |rest: &str| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    DEFAULTED_HOOKS.contains(&label)
        || LABELLED_HOOKS.contains(&label)
        || label.strip_prefix("init-").is_some_and(named)
        || label.strip_prefix("clean-").is_some_and(named)
}

/// A CMD in shell form (`CMD kubectl apply ...` is `/bin/sh -c "kubectl
/// apply ..."` in the config) is its one command; an exec form's items are
/// each a command, as sealos runs them.
fn shell_form(cmd: &[String]) -> &[String] {
    match cmd {
        [sh, c, rest @ ..] if (sh == "/bin/sh" || sh == "sh") && c == "-c" => rest,
        _ => cmd,
    }
}

/// `$(NAME)` of a known variable as `${NAME}` (Kubernetes' expansion,
/// which sealos uses; `$$(NAME)` stays as written, minus one `$`).
fn expand_env_references(command: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(command.len());
    let mut rest = command;
    while let Some(at) = rest.find("$(") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("$(");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) if vars.contains_key(&after[..end]) => {
                out.push_str("${");
                out.push_str(&after[..end]);
                out.push('}');
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn labels_env_and_cmd_become_bundle_toml() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("scripts")).unwrap();
        std::fs::write(root.path().join("scripts/check.sh"), "true").unwrap();
        let labels = labels(&[
            ("sealos.io.type", "rootfs"),
            ("init", "init-cri.sh && bash init.sh"),
            ("clean-registry", "clean-registry.sh"),
            ("maintainer", "someone"),
        ]);
        let env = strings(&["PATH=/usr/bin", "registryDomain=sealos.hub", "port=5000"]);
        let cmd = strings(&["echo $(registryDomain):$(port) $(unknown)", "echo done"]);
        let meta = ImageMetadata::from_image(&labels, &env, &[], &cmd, root.path()).unwrap();
        assert_eq!(
            meta.to_bundle_toml(),
            r#"kind = "rootfs"
cmd = "echo ${registryDomain}:${port} $(unknown); echo done"

[vars]
port = "5000"
registryDomain = "sealos.hub"

[hooks]
check = "bash check.sh"
clean-registry = "clean-registry.sh"
init = "init-cri.sh && bash init.sh"
"#
        );
        let back: ImageMetadata = toml::from_str(&meta.to_bundle_toml()).unwrap();
        assert_eq!(back, meta);
    }

    #[test]
    fn no_type_is_an_application_and_a_shell_form_cmd_is_one_command() {
        let root = tempfile::tempdir().unwrap();
        let cmd = strings(&["/bin/sh", "-c", "kubectl apply -f manifests"]);
        let meta =
            ImageMetadata::from_image(&BTreeMap::new(), &[], &[], &cmd, root.path()).unwrap();
        assert_eq!(meta.kind.as_deref(), Some("app"));
        assert_eq!(meta.cmd.as_deref(), Some("kubectl apply -f manifests"));
        assert!(meta.hooks.is_empty(), "no scripts/, no default hooks");
        let odd = labels(&[("sealos.io.type", "kernel")]);
        let error = ImageMetadata::from_image(&odd, &[], &[], &[], root.path()).unwrap_err();
        assert!(error.contains("sealos.io.type=kernel"), "{error}");
    }

    #[test]
    fn a_bundle_toml_of_the_shared_format_is_read_with_its_configs() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("bundle.toml"),
            r#"kind = "rootfs"
cmd = "kubectl apply -f manifests/app.yaml"
[vars]
registryDomain = "sealos.hub"
[hooks]
check = "bash check.sh"
[[configs]]
path = "etc/kubeadm.yml"
strategy = "merge"
data = "a: 1"
"#,
        )
        .unwrap();
        let meta = ImageMetadata::read(root.path()).unwrap().unwrap();
        assert_eq!(meta.kind.as_deref(), Some("rootfs"));
        assert_eq!(meta.configs(), 1);
        assert_eq!(meta.hooks["check"], "bash check.sh");
        std::fs::write(root.path().join("bundle.toml"), "kind = [").unwrap();
        let error = ImageMetadata::read(root.path()).unwrap_err();
        assert!(error.starts_with("bundle.toml is not valid"), "{error}");
    }
}
