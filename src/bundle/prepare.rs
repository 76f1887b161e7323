//! Preparing a bundle: scanned, unpacked and patched once, rendered per host.
//!
//! [`prepare`] runs once per bundle: it unpacks an archive or an image into the cache,
//! scans the files (see `manifest`), leaves out `bundle.toml` (metadata,
//! never shipped), sets templates apart, and applies config patches to plain
//! files: the bundle's own defaults first, then the Clusterfile's. What is left per host is small: rendering the
//! templates with that host's variables ([`PreparedBundle::render_for`]) and
//! patching those. A host's content is then the shared base plus its
//! rendered files; a task key names it by the base's Merkle root and the
//! rendered files' hashes (`hash::ActionSpec::Bundle`), so a 1,000-host plan
//! does not copy the base manifest 1,000 times.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobSetBuilder};

use super::manifest::{self, HashCache, Manifest};
use super::{FileData, ShipFile, config, template};
use crate::model::{Bundle, HostId, Model, SourceKind};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle `{bundle}`: {source}")]
    Scan {
        bundle: String,
        source: manifest::ScanError,
    },
    #[error("bundle `{bundle}`: failed to unpack {archive}: {message}")]
    Unpack {
        bundle: String,
        archive: PathBuf,
        message: String,
    },
    #[error("bundle `{bundle}`: image {error}")]
    Image {
        bundle: String,
        error: super::image::ImageError,
    },
    #[error("bundle `{bundle}`: template {path}: {message}")]
    Template {
        bundle: String,
        path: String,
        message: String,
    },
    #[error("bundle `{bundle}`: config patch of {path}: {message}")]
    Config {
        bundle: String,
        path: String,
        message: String,
    },
}

/// A template file of a bundle.
#[derive(Debug, Clone)]
struct TemplateFile {
    /// Path in the bundle, e.g. `etc/kubeadm.yml.tmpl`.
    source_rel: String,
    /// Path as shipped, e.g. `etc/kubeadm.yml`.
    output_rel: String,
    mode: u32,
}

/// A bundle scanned and patched, ready to be rendered for each host.
pub struct PreparedBundle {
    pub name: String,
    /// The folder its files came from: the source folder, or where its
    /// archive or image is unpacked (an image's `bundle.toml` is there).
    pub root: PathBuf,
    /// Plain files (templates excluded), with patches applied.
    pub base: BTreeMap<String, ShipFile>,
    /// Root of `base`'s manifest.
    pub base_root: String,
    /// `base` as a manifest, for explaining changes.
    pub base_manifest: Manifest,
    templates: Vec<TemplateFile>,
    engine: template::Templates,
    configs: Vec<crate::model::ConfigPatch>,
}

impl std::fmt::Debug for PreparedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedBundle")
            .field("name", &self.name)
            .field("files", &self.base.len())
            .finish_non_exhaustive()
    }
}

/// Scans, unpacks and patches a bundle. `cache_dir` holds unpacked archives.
pub fn prepare(
    bundle: &Bundle,
    cache: &HashCache,
    cache_dir: &Path,
) -> Result<PreparedBundle, BundleError> {
    let root = root_of(bundle, cache, cache_dir)?;
    let scanned = manifest::scan(&root, cache).map_err(|source| BundleError::Scan {
        bundle: bundle.name.clone(),
        source,
    })?;
    let mut globs = GlobSetBuilder::new();
    for pattern in &bundle.templates {
        globs.add(Glob::new(pattern).expect("validated glob"));
    }
    let globs = globs.build().expect("validated globs");
    let mut engine = template::Templates::new();
    let mut templates = Vec::new();
    let mut base = BTreeMap::new();
    for (rel, entry) in scanned.files {
        // The bundle's metadata is for cairn, never shipped.
        if rel == crate::model::bundle_toml::FILE_NAME {
            continue;
        }
        if globs.is_match(&rel) {
            let text =
                std::fs::read_to_string(root.join(&rel)).map_err(|e| BundleError::Template {
                    bundle: bundle.name.clone(),
                    path: rel.clone(),
                    message: format!("not readable as UTF-8 text: {e}"),
                })?;
            engine
                .add(&rel, text)
                .map_err(|message| BundleError::Template {
                    bundle: bundle.name.clone(),
                    path: rel.clone(),
                    message,
                })?;
            let output_rel = rel.strip_suffix(".tmpl").unwrap_or(&rel).to_string();
            templates.push(TemplateFile {
                source_rel: rel,
                output_rel,
                mode: entry.mode,
            });
        } else {
            let data = FileData::Path(root.join(&rel));
            base.insert(rel, ShipFile { entry, data });
        }
    }
    // Patches of plain files are the same for every host: apply them once.
    let template_outputs: Vec<&str> = templates.iter().map(|t| t.output_rel.as_str()).collect();
    for patch in &bundle.configs {
        if template_outputs.contains(&patch.path.as_str())
            || (patch.only_if_shipped && !base.contains_key(&patch.path))
        {
            continue;
        }
        let original = match base.get(&patch.path) {
            Some(file) => Some(file.data.read().map_err(|e| BundleError::Config {
                bundle: bundle.name.clone(),
                path: patch.path.clone(),
                message: e.to_string(),
            })?),
            None => None,
        };
        let patched = config::apply(
            patch.strategy,
            &patch.path,
            original.as_deref().map(Vec::as_slice),
            &patch.data,
        )
        .map_err(|message| BundleError::Config {
            bundle: bundle.name.clone(),
            path: patch.path.clone(),
            message,
        })?;
        let mode = base.get(&patch.path).map_or(0o644, |f| f.entry.mode);
        base.insert(
            patch.path.clone(),
            ShipFile::from_bytes(Arc::new(patched), mode),
        );
    }
    let base_manifest = Manifest {
        files: base
            .iter()
            .map(|(k, v)| (k.clone(), v.entry.clone()))
            .collect(),
    };
    Ok(PreparedBundle {
        name: bundle.name.clone(),
        root,
        base_root: base_manifest.root(),
        base_manifest,
        base,
        templates,
        engine,
        configs: bundle.configs.clone(),
    })
}

impl PreparedBundle {
    /// Paths this bundle ships on any host (base and template outputs).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.base
            .keys()
            .map(String::as_str)
            .chain(self.templates.iter().map(|t| t.output_rel.as_str()))
    }

    /// Renders and patches the templates for one host.
    pub fn render_for(
        &self,
        model: &Model,
        host: HostId,
    ) -> Result<BTreeMap<String, ShipFile>, BundleError> {
        if self.templates.is_empty() {
            return Ok(BTreeMap::new());
        }
        let context = model.template_context(host);
        let mut out = BTreeMap::new();
        for t in &self.templates {
            let text = self
                .engine
                .render(&t.source_rel, &context)
                .map_err(|message| BundleError::Template {
                    bundle: self.name.clone(),
                    path: t.source_rel.clone(),
                    message,
                })?;
            let mut bytes = text.into_bytes();
            for patch in self.configs.iter().filter(|p| p.path == t.output_rel) {
                bytes = config::apply(patch.strategy, &patch.path, Some(&bytes), &patch.data)
                    .map_err(|message| BundleError::Config {
                        bundle: self.name.clone(),
                        path: patch.path.clone(),
                        message,
                    })?;
            }
            out.insert(
                t.output_rel.clone(),
                ShipFile::from_bytes(Arc::new(bytes), t.mode),
            );
        }
        Ok(out)
    }
}

/// The folder of a bundle's files: its source, or where the source is
/// unpacked (once: an unchanged archive or image is found in `cache_dir`).
pub fn root_of(
    bundle: &Bundle,
    cache: &HashCache,
    cache_dir: &Path,
) -> Result<PathBuf, BundleError> {
    Ok(match bundle.source_kind {
        SourceKind::Directory => bundle.source.clone(),
        SourceKind::TarZst => unpack(bundle, cache, cache_dir)?,
        SourceKind::OciArchive | SourceKind::DockerArchive | SourceKind::OciLayout => {
            super::image::unpack_cached(&bundle.source, bundle.source_kind, cache_dir)
                .map_err(|error| BundleError::Image {
                    bundle: bundle.name.clone(),
                    error,
                })?
                .root
        }
    })
}

/// Unpacks a `.tar.zst` into the cache, once per archive content.
fn unpack(bundle: &Bundle, cache: &HashCache, cache_dir: &Path) -> Result<PathBuf, BundleError> {
    let err = |message: String| BundleError::Unpack {
        bundle: bundle.name.clone(),
        archive: bundle.source.clone(),
        message,
    };
    let meta = std::fs::metadata(&bundle.source).map_err(|e| err(e.to_string()))?;
    let hash = cache
        .hash_file(&bundle.source, &meta)
        .map_err(|e| err(e.to_string()))?;
    let dir = cache_dir.join(format!("bundle-{}", &hash[..16]));
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| err(e.to_string()))?;
    let staging = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(cache_dir)
        .map_err(|e| err(e.to_string()))?;
    let file = std::fs::File::open(&bundle.source).map_err(|e| err(e.to_string()))?;
    let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| err(e.to_string()))?;
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_permissions(true);
    // `unpack` refuses entries that would land outside the folder (`..`, absolute paths).
    archive
        .unpack(staging.path())
        .map_err(|e| err(e.to_string()))?;
    let staged = staging.keep();
    std::fs::rename(&staged, &dir).map_err(|e| err(e.to_string()))?;
    Ok(dir)
}
