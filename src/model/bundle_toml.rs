//! A bundle's own metadata: `bundle.toml` at its root (what a sealos
//! Kubefile's LABELs, ENV and CMD say of a cluster image).
//!
//! ```toml
//! kind = "rootfs"                    # rootfs | patch | app
//! cmd = "kubectl apply -f app.yaml"  # run after install
//! [vars]                             # defaults: the lowest precedence
//! registryDomain = "sealos.hub"
//! [hooks]                            # name = shell command, run in <dest>/scripts
//! check = "bash check.sh"
//! init = "bash init.sh"
//! clean = "bash clean.sh"
//! [[configs]]                        # default config patches, before the Clusterfile's
//! path = "etc/kubeadm.yml"
//! data = "..."
//! ```
//!
//! It is read at validation (its kind and vars matter before anything is
//! compiled), strictly: an unknown key, a wrong type or a hook name outside
//! the known forms is an error naming the file and the key. It is never
//! shipped (`prepare` leaves it out). Other sources of the same facts (an
//! image's labels) build the same [`BundleMetadata`].
//!
//! Where the file is depends on what the source is (a folder, a
//! `.tar.zst`, an image unpacked in the cache): the model asks a
//! [`SourceReader`], which the bundle room implements (`bundle::Sources`),
//! so validation reads images without the model depending on how.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SourceKind;
use crate::clusterfile::raw::{BundleKind, ConfigStrategy};

/// What validation needs of a bundle's source on disk.
pub trait SourceReader {
    /// What the source at `path` is, or why it is no bundle source.
    fn kind(&self, path: &Path) -> Result<SourceKind, String>;
    /// The folder holding the source's files (the source itself, or an
    /// image unpacked in the cache under `base_dir`); `None` for a
    /// `.tar.zst`, read as it is.
    fn metadata_root(
        &self,
        path: &Path,
        kind: SourceKind,
        base_dir: &Path,
    ) -> Result<Option<PathBuf>, String>;
}

/// Folders and `.tar.zst` archives only, for what validates without the
/// bundle room (unit tests): an image source is refused as unknown.
pub struct FoldersAndArchives;

impl SourceReader for FoldersAndArchives {
    fn kind(&self, path: &Path) -> Result<SourceKind, String> {
        if path.is_dir() {
            return Ok(SourceKind::Directory);
        }
        let mut magic = [0u8; 4];
        let read = std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .map_err(|e| format!("cannot be read: {e}"));
        match read {
            Ok(()) if magic == [0x28, 0xb5, 0x2f, 0xfd] => Ok(SourceKind::TarZst),
            Ok(()) => Err("is neither a folder nor a .tar.zst".into()),
            Err(e) => Err(e),
        }
    }

    fn metadata_root(
        &self,
        path: &Path,
        kind: SourceKind,
        _base_dir: &Path,
    ) -> Result<Option<PathBuf>, String> {
        Ok((kind == SourceKind::Directory).then(|| path.to_path_buf()))
    }
}

/// The metadata file's name at a bundle's root.
pub const FILE_NAME: &str = "bundle.toml";

/// `bundle.toml`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetadata {
    kind: Option<BundleKind>,
    cmd: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
    #[serde(default)]
    hooks: BTreeMap<String, String>,
    #[serde(default)]
    configs: Vec<RawDefaultConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaultConfig {
    path: String,
    strategy: Option<ConfigStrategy>,
    data: String,
}

/// A default config patch of the bundle, applied before the Clusterfile's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultConfig {
    pub path: String,
    pub strategy: ConfigStrategy,
    pub data: String,
}

/// What a bundle says of itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleMetadata {
    /// The kind it declares; the Clusterfile's `kind` wins when given.
    pub kind: Option<BundleKind>,
    /// Run after install (sealos CMD).
    pub cmd: Option<String>,
    /// Default values (sealos ENV): scalars only, exported to its hooks.
    pub vars: BTreeMap<String, toml::Value>,
    /// Hook name → shell command (sealos LABELs).
    pub hooks: BTreeMap<String, String>,
    pub configs: Vec<DefaultConfig>,
}

/// Why a bundle's metadata cannot be used: the file, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct MetadataError {
    /// `bundle.toml`'s path (inside the archive: `ARCHIVE!bundle.toml`).
    pub file: String,
    pub message: String,
}

/// Where a hook runs in a bundle's life, in the order sealos runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookPhase {
    /// `check`: once the files landed, before anything uses them.
    Check,
    /// `init-NAME` (`init-cri`, `init-registry`): after `check`.
    InitPart,
    /// `init`: after every `init-NAME`.
    Init,
    /// `cmd`: after `init` (sealos' `RunGuest`).
    Cmd,
}

/// What a hook name is: a phase, or the undo of the init hook it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookName {
    Run(HookPhase),
    /// `clean` (undoes `init`) or `clean-NAME` (undoes `init-NAME`): the init hook's name.
    Undo(String),
}

impl HookName {
    /// Classifies a hook's name: `check`, `init`, `init-NAME`, `clean`, `clean-NAME`.
    pub fn parse(name: &str) -> Option<HookName> {
        let part_ok = |rest: &str| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        match name {
            "check" => Some(HookName::Run(HookPhase::Check)),
            "init" => Some(HookName::Run(HookPhase::Init)),
            "clean" => Some(HookName::Undo("init".into())),
            _ => {
                if let Some(rest) = name.strip_prefix("init-") {
                    part_ok(rest).then_some(HookName::Run(HookPhase::InitPart))
                } else if let Some(rest) = name.strip_prefix("clean-") {
                    part_ok(rest).then(|| HookName::Undo(format!("init-{rest}")))
                } else {
                    None
                }
            }
        }
    }
}

/// What every message about a hook's name says it may be.
pub const HOOK_NAMES_HELP: &str = "hooks are `check`, `init`, `clean`, `init-NAME` and `clean-NAME` (`clean-NAME` undoes `init-NAME`), NAME of letters, digits, `-` and `_`";

/// Reads a bundle's metadata: `bundle.toml` at the root of a folder, or
/// at the root of a `.tar.zst`. `None`: the bundle has none.
pub fn read(source: &Path, archive: bool) -> Result<Option<BundleMetadata>, MetadataError> {
    let (file, text) = if archive {
        let file = format!("{}!{FILE_NAME}", source.display());
        match read_from_archive(source) {
            Ok(Some(text)) => (file, text),
            Ok(None) => return Ok(None),
            Err(message) => return Err(MetadataError { file, message }),
        }
    } else {
        let path = source.join(FILE_NAME);
        let file = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => (file, text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(MetadataError {
                    file,
                    message: format!("cannot be read: {e}"),
                });
            }
        }
    };
    parse(&text)
        .map(Some)
        .map_err(|message| MetadataError { file, message })
}

/// Parses `bundle.toml`'s text; the error says the key and the line.
pub fn parse(text: &str) -> Result<BundleMetadata, String> {
    let raw: RawMetadata = toml::from_str(text).map_err(|e| {
        let place = e
            .span()
            .map(|span| {
                let line = text[..span.start].matches('\n').count() + 1;
                // The key of a value that is wrong, when the line is `key = value`.
                let key = text
                    .lines()
                    .nth(line - 1)
                    .and_then(|l| l.split_once('='))
                    .map(|(k, _)| k.trim())
                    .filter(|k| !k.is_empty() && !k.starts_with('['))
                    .map(|k| format!(", `{k}`"))
                    .unwrap_or_default();
                format!("line {line}{key}: ")
            })
            .unwrap_or_default();
        format!("{place}{}", e.message().trim_end())
    })?;
    for (name, value) in &raw.vars {
        if !super::interp::is_var_name(name) {
            return Err(format!(
                "[vars]: `{name}` is not a variable name (a letter or `_`, then letters, digits, `_`, `.`, `-`)"
            ));
        }
        if matches!(
            value,
            toml::Value::Array(_) | toml::Value::Table(_) | toml::Value::Datetime(_)
        ) {
            return Err(format!(
                "[vars]: `{name}` must be a string, number or boolean (its default is exported as an environment variable)"
            ));
        }
    }
    for (name, command) in &raw.hooks {
        if HookName::parse(name).is_none() {
            return Err(format!("[hooks]: unknown hook `{name}`: {HOOK_NAMES_HELP}"));
        }
        if command.trim().is_empty() {
            return Err(format!(
                "[hooks]: `{name}` is empty: write the shell command to run"
            ));
        }
    }
    if raw.cmd.as_ref().is_some_and(|c| c.trim().is_empty()) {
        return Err("`cmd` is empty: write the shell command to run, or leave it out".into());
    }
    let mut configs = Vec::new();
    for (i, c) in raw.configs.into_iter().enumerate() {
        let path = c.path.trim_start_matches("./").to_string();
        if path.is_empty() || path.starts_with('/') || path.split('/').any(|p| p == "..") {
            return Err(format!(
                "[[configs]] #{}: invalid path `{}`: write the file's path relative to the bundle root, e.g. `etc/kubeadm.yml`",
                i + 1,
                c.path
            ));
        }
        configs.push(DefaultConfig {
            path,
            strategy: c.strategy.unwrap_or(ConfigStrategy::Merge),
            data: c.data,
        });
    }
    Ok(BundleMetadata {
        kind: raw.kind,
        cmd: raw.cmd,
        vars: raw.vars,
        hooks: raw.hooks,
        configs,
    })
}

/// The variables `--var` may set: the Clusterfile's `[vars]`, and the
/// names its bundles declare defaults for (typed by their defaults). A
/// `bundle.toml` that cannot be read adds nothing here: validation says why.
pub fn declarable_vars(
    clusterfile: &Path,
    raw: &crate::clusterfile::raw::RawClusterfile,
    sources: &dyn SourceReader,
) -> BTreeMap<String, toml::Spanned<crate::clusterfile::raw::RawVar>> {
    let dir = clusterfile
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut declared = raw.vars.clone();
    for b in &raw.bundles {
        let path = dir.join(super::expand_home(b.source.get_ref()));
        let Ok(kind) = sources.kind(&path) else {
            continue;
        };
        let meta = match sources.metadata_root(&path, kind, dir) {
            Ok(Some(root)) => read(&root, false),
            Ok(None) => read(&path, true),
            Err(_) => continue,
        };
        if let Ok(Some(meta)) = meta {
            for (name, value) in meta.vars {
                declared.entry(name).or_insert_with(|| {
                    toml::Spanned::new(0..0, crate::clusterfile::raw::RawVar::Value(value))
                });
            }
        }
    }
    declared
}

/// `bundle.toml` from a `.tar.zst`'s root, streamed (the archive is not unpacked).
fn read_from_archive(archive: &Path) -> Result<Option<String>, String> {
    let file = std::fs::File::open(archive).map_err(|e| format!("cannot be read: {e}"))?;
    let decoder =
        zstd::stream::read::Decoder::new(file).map_err(|e| format!("cannot be read: {e}"))?;
    let mut tar = tar::Archive::new(decoder);
    let entries = tar.entries().map_err(|e| format!("cannot be read: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("cannot be read: {e}"))?;
        let path: PathBuf = entry
            .path()
            .map_err(|e| format!("cannot be read: {e}"))?
            .into_owned();
        if path.strip_prefix(".").unwrap_or(&path) == Path::new(FILE_NAME) {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| format!("is not UTF-8 text: {e}"))?;
            return Ok(Some(text));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let meta = parse(
            r#"
kind = "app"
cmd = "kubectl apply -f manifests/app.yaml"
[vars]
registryDomain = "sealos.hub"
registryPort = 5000
[hooks]
check = "bash check.sh"
init = "init-cri.sh && bash init.sh"
clean = "bash clean.sh && clean-cri.sh"
init-registry = "bash init-registry.sh"
clean-registry = "bash clean-registry.sh"
[[configs]]
path = "./etc/kubeadm.yml"
data = "a: 1"
"#,
        )
        .unwrap();
        assert_eq!(meta.kind, Some(BundleKind::App));
        assert_eq!(meta.hooks.len(), 5);
        assert_eq!(meta.vars["registryPort"].as_integer(), Some(5000));
        assert_eq!(meta.configs[0].path, "etc/kubeadm.yml");
        assert_eq!(meta.configs[0].strategy, ConfigStrategy::Merge);
    }

    #[test]
    fn mistakes_name_the_key() {
        let unknown = parse("kind = \"rootfs\"\nlabels = 1\n").unwrap_err();
        assert!(
            unknown.contains("line 2") && unknown.contains("labels"),
            "{unknown}"
        );
        let kind = parse("kind = \"image\"\n").unwrap_err();
        assert!(
            kind.contains("line 1, `kind`") && kind.contains("rootfs"),
            "{kind}"
        );
        let typed = parse("[hooks]\ninit = 3\n").unwrap_err();
        assert!(typed.contains("line 2"), "{typed}");
        let hook = parse("[hooks]\nprepare = \"x\"\n").unwrap_err();
        assert!(
            hook.contains("`prepare`") && hook.contains("init-NAME"),
            "{hook}"
        );
        let var = parse("[vars]\nlist = [1]\n").unwrap_err();
        assert!(var.contains("`list`"), "{var}");
        let config = parse("[[configs]]\npath = \"../x\"\ndata = \"\"\n").unwrap_err();
        assert!(config.contains("invalid path"), "{config}");
    }

    #[test]
    fn hook_names_classify() {
        assert_eq!(
            HookName::parse("check"),
            Some(HookName::Run(HookPhase::Check))
        );
        assert_eq!(
            HookName::parse("init-cri"),
            Some(HookName::Run(HookPhase::InitPart))
        );
        assert_eq!(
            HookName::parse("clean-registry"),
            Some(HookName::Undo("init-registry".into()))
        );
        assert_eq!(
            HookName::parse("clean"),
            Some(HookName::Undo("init".into()))
        );
        for bad in ["init-", "clean-", "boot", "init-a b", "init@x"] {
            assert_eq!(HookName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn archives_and_folders_are_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), false).unwrap(), None);
        std::fs::write(dir.path().join(FILE_NAME), "cmd = \"true\"\n").unwrap();
        assert_eq!(
            read(dir.path(), false).unwrap().unwrap().cmd.as_deref(),
            Some("true")
        );
        let archive = dir.path().join("b.tar.zst");
        let file = std::fs::File::create(&archive).unwrap();
        let encoder = zstd::stream::write::Encoder::new(file, 3).unwrap();
        let mut builder = tar::Builder::new(encoder);
        builder
            .append_path_with_name(dir.path().join(FILE_NAME), "./bundle.toml")
            .unwrap();
        builder.into_inner().unwrap().finish().unwrap();
        let meta = read(&archive, true).unwrap().unwrap();
        assert_eq!(meta.cmd.as_deref(), Some("true"));
        std::fs::write(dir.path().join(FILE_NAME), "cmd = 1\n").unwrap();
        let err = read(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("bundle.toml: line 1"), "{err}");
    }
}
