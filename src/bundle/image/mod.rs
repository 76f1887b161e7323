//! Container images as bundle sources: sealos cluster images, saved as an
//! OCI archive, a docker archive or an OCI layout folder.
//!
//! [`Image::open`] reads the index (one platform: the only one, else this
//! machine's architecture, else `linux/amd64`), the manifest and the config,
//! checking each against its digest. [`Image::unpack_into`] lays the layers
//! over an empty folder in order (`layers`: gzip, zstd or plain; whiteouts
//! applied; nothing lands outside it), checking each layer's digest as it
//! streams, then writes the image's LABELs, ENV and CMD as the folder's
//! `bundle.toml` (`metadata`). [`unpack_cached`] does that once per image:
//! the folder is `image-v1-<manifest digest>` in the cache, complete when
//! its `complete` file exists (written last, after the rename), so an
//! unchanged image costs reading its index and manifest, and a change of any
//! byte of it is a new digest, a new folder. The bundle's key is then that
//! folder's file hashes, as for any bundle.

mod inspect;
mod layers;
mod metadata;
mod source;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest, Sha256};

pub use inspect::{Inspection, inspect};
pub use metadata::ImageMetadata;
use source::Store;
pub use source::detect;

use crate::model::SourceKind;

/// An image that could not be read or unpacked: the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{} {message}", path.display())]
pub struct ImageError {
    pub path: PathBuf,
    pub message: String,
}

/// The layout of the cache folders; raised when what is unpacked changes.
const CACHE_FORMAT: &str = "v1";

/// An image's index, manifest and config read, its layers not yet.
pub struct Image {
    store: Store,
    /// `sha256:...` of the manifest (a docker archive has none: of its config).
    pub digest: String,
    config: ImageConfiguration,
    layers: Vec<LayerBlob>,
}

/// A layer: where its bytes are and what they must hash to.
struct LayerBlob {
    name: String,
    expected: Expected,
}

/// A layer's digest, as the image states it.
enum Expected {
    /// The stored (compressed) bytes' sha256 (OCI).
    Stored(String),
    /// The uncompressed tar's sha256 (docker archives: the config's `diff_ids`).
    Uncompressed(String),
}

impl Image {
    /// Reads an image's index, manifest and config.
    pub fn open(path: &Path, kind: SourceKind) -> Result<Image, String> {
        match kind {
            SourceKind::OciLayout => Image::oci(Store::Dir(path.to_path_buf())),
            SourceKind::OciArchive => Image::oci(Store::tar(path)?),
            SourceKind::DockerArchive => Image::docker(Store::tar(path)?),
            SourceKind::Directory | SourceKind::TarZst => {
                Err("is not an image (a folder or a .tar.zst)".into())
            }
        }
    }

    fn oci(store: Store) -> Result<Image, String> {
        let index = ImageIndex::from_reader(store.read("index.json")?.as_slice())
            .map_err(|e| format!("has an invalid index.json: {e}"))?;
        let mut manifests: Vec<Descriptor> = Vec::new();
        for descriptor in index.manifests() {
            if descriptor.media_type().to_string().contains("index")
                || descriptor
                    .media_type()
                    .to_string()
                    .contains("manifest.list")
            {
                let nested = read_blob(&store, descriptor)?;
                let nested = ImageIndex::from_reader(nested.as_slice())
                    .map_err(|e| format!("has an invalid nested index: {e}"))?;
                manifests.extend(nested.manifests().iter().cloned());
            } else {
                manifests.push(descriptor.clone());
            }
        }
        let chosen = choose_platform(&manifests)?;
        let manifest = ImageManifest::from_reader(read_blob(&store, chosen)?.as_slice())
            .map_err(|e| format!("has an invalid manifest {}: {e}", chosen.digest()))?;
        let config =
            ImageConfiguration::from_reader(read_blob(&store, manifest.config())?.as_slice())
                .map_err(|e| {
                    format!("has an invalid config {}: {e}", manifest.config().digest())
                })?;
        let layers = manifest
            .layers()
            .iter()
            .map(|layer| {
                Ok(LayerBlob {
                    name: blob_name(layer)?,
                    expected: Expected::Stored(layer.digest().digest().to_string()),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Image {
            store,
            digest: chosen.digest().to_string(),
            config,
            layers,
        })
    }

    fn docker(store: Store) -> Result<Image, String> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let entries: Vec<Entry> = serde_json::from_slice(&store.read("manifest.json")?)
            .map_err(|e| format!("has an invalid manifest.json: {e}"))?;
        let entry = match entries.as_slice() {
            [one] => one,
            [] => return Err("holds no image (its manifest.json is empty)".into()),
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|e| {
                        e.repo_tags
                            .as_ref()
                            .map_or_else(|| e.config.clone(), |t| t.join(" "))
                    })
                    .collect();
                return Err(format!(
                    "holds {} images ({}); save one image per archive",
                    many.len(),
                    names.join(", ")
                ));
            }
        };
        let config_bytes = store.read(&entry.config)?;
        let config = ImageConfiguration::from_reader(config_bytes.as_slice())
            .map_err(|e| format!("has an invalid config {}: {e}", entry.config))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != entry.layers.len() {
            return Err(format!(
                "is inconsistent: its manifest.json lists {} layers, its config {}",
                entry.layers.len(),
                diff_ids.len()
            ));
        }
        let layers = entry
            .layers
            .iter()
            .zip(diff_ids)
            .map(|(name, diff_id)| LayerBlob {
                name: name.clone(),
                expected: Expected::Uncompressed(
                    diff_id
                        .strip_prefix("sha256:")
                        .unwrap_or(diff_id)
                        .to_string(),
                ),
            })
            .collect();
        Ok(Image {
            store,
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&config_bytes))),
            config,
            layers,
        })
    }

    /// Lays the layers over `root` (an empty folder), then writes its `bundle.toml`.
    pub fn unpack_into(&self, root: &Path) -> Result<(), String> {
        for layer in &self.layers {
            self.unpack_layer(layer, root)?;
        }
        layers::drop_unshippable_links(root)
            .map_err(|e| format!("cannot be unpacked in {}: {e}", root.display()))?;
        self.write_metadata(root)
    }

    fn unpack_layer(&self, layer: &LayerBlob, root: &Path) -> Result<(), String> {
        let mut stored_hash = Sha256::new();
        let mut plain_hash = Sha256::new();
        {
            let stored = Hashing {
                inner: self.store.open(&layer.name)?,
                hasher: &mut stored_hash,
            };
            let mut buffered = BufReader::with_capacity(256 * 1024, stored);
            let head = buffered
                .fill_buf()
                .map_err(|e| format!("layer {} cannot be read: {e}", layer.name))?;
            let decoded: Box<dyn Read + '_> = if head.starts_with(&[0x1f, 0x8b]) {
                Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
            } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                Box::new(
                    zstd::stream::read::Decoder::with_buffer(buffered)
                        .map_err(|e| format!("layer {} cannot be read: {e}", layer.name))?,
                )
            } else {
                Box::new(buffered)
            };
            let mut plain = Hashing {
                inner: decoded,
                hasher: &mut plain_hash,
            };
            layers::apply(&mut plain, root, &layer.name)?;
            // The rest (tar padding): the digest covers every byte.
            std::io::copy(&mut plain, &mut std::io::sink())
                .map_err(|e| format!("layer {} cannot be read: {e}", layer.name))?;
        }
        let (found, expected) = match &layer.expected {
            Expected::Stored(hex) => (hex::encode(stored_hash.finalize()), hex),
            Expected::Uncompressed(hex) => (hex::encode(plain_hash.finalize()), hex),
        };
        if &found != expected {
            return Err(format!(
                "is corrupt: layer {} does not match its digest sha256:{expected} (its bytes hash to sha256:{found})",
                layer.name
            ));
        }
        Ok(())
    }

    /// The image's labels (sorted).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config
            .config()
            .as_ref()
            .and_then(|c| c.labels().as_ref())
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// `bundle.toml` from the labels, ENV and CMD; an image without sealos
    /// labels that carries its own `bundle.toml` keeps it.
    fn write_metadata(&self, root: &Path) -> Result<(), String> {
        let labels = self.labels();
        let own = root.join("bundle.toml");
        if !ImageMetadata::has_sealos_labels(&labels) && own.is_file() {
            return Ok(());
        }
        let config = self.config.config().as_ref();
        let list = |get: fn(&oci_spec::image::Config) -> &Option<Vec<String>>| {
            config.and_then(|c| get(c).clone()).unwrap_or_default()
        };
        let metadata = ImageMetadata::from_image(
            &labels,
            &list(oci_spec::image::Config::env),
            &list(oci_spec::image::Config::entrypoint),
            &list(oci_spec::image::Config::cmd),
            root,
        )?;
        if own.symlink_metadata().is_ok() {
            std::fs::remove_file(&own).map_err(|e| format!("bundle.toml: {e}"))?;
        }
        std::fs::write(&own, metadata.to_bundle_toml())
            .map_err(|e| format!("cannot write bundle.toml: {e}"))
    }
}

/// Counts what passes through into a hasher.
struct Hashing<'h, R> {
    inner: R,
    hasher: &'h mut Sha256,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// `blobs/sha256/<hex>` of a descriptor.
fn blob_name(descriptor: &Descriptor) -> Result<String, String> {
    let digest = descriptor.digest();
    let algorithm = digest.algorithm().to_string();
    if algorithm != "sha256" {
        return Err(format!(
            "uses {algorithm} digests ({digest}); cairn reads sha256 images"
        ));
    }
    Ok(format!("blobs/sha256/{}", digest.digest()))
}

/// A small blob (index, manifest, config), checked against its digest.
fn read_blob(store: &Store, descriptor: &Descriptor) -> Result<Vec<u8>, String> {
    let bytes = store.read(&blob_name(descriptor)?)?;
    let found = hex::encode(Sha256::digest(&bytes));
    if found != descriptor.digest().digest() {
        return Err(format!(
            "is corrupt: blob {} does not match its digest (its bytes hash to sha256:{found})",
            descriptor.digest()
        ));
    }
    Ok(bytes)
}

/// The manifest to unpack: the only one, or the one for this machine's
/// architecture, or linux/amd64; several others are an error naming them.
fn choose_platform(manifests: &[Descriptor]) -> Result<&Descriptor, String> {
    let platform = |d: &Descriptor| {
        d.platform()
            .as_ref()
            .map(|p| (p.os().to_string(), p.architecture().to_string()))
    };
    let images: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| platform(d).is_none_or(|(os, arch)| os != "unknown" && arch != "unknown"))
        .collect();
    match images.as_slice() {
        [] => return Err("holds no image manifest (its index.json lists none)".into()),
        [one] => return Ok(one),
        _ => {}
    }
    let here = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    for wanted in [here, "amd64"] {
        if let Some(found) = images
            .iter()
            .find(|d| platform(d).is_some_and(|(os, arch)| os == "linux" && arch == wanted))
        {
            return Ok(found);
        }
    }
    let listed: Vec<String> = images
        .iter()
        .map(|d| {
            platform(d).map_or_else(
                || {
                    d.annotations()
                        .as_ref()
                        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                        .map_or_else(|| d.digest().to_string(), Clone::clone)
                },
                |(os, arch)| format!("{os}/{arch}"),
            )
        })
        .collect();
    if images.iter().any(|d| platform(d).is_none()) {
        return Err(format!(
            "holds {} images ({}); save one image per archive",
            images.len(),
            listed.join(", ")
        ));
    }
    Err(format!(
        "holds {} images ({}) and none for linux/{here} or linux/amd64; save the one to use (`skopeo copy --override-arch ARCH ...`)",
        images.len(),
        listed.join(", ")
    ))
}

/// An image unpacked in the cache.
#[derive(Debug)]
pub struct Unpacked {
    /// The bundle's files (with its `bundle.toml`).
    pub root: PathBuf,
    /// The manifest digest.
    pub digest: String,
}

/// The image at `path` unpacked under `cache_dir`, once per manifest digest.
pub fn unpack_cached(
    path: &Path,
    kind: SourceKind,
    cache_dir: &Path,
) -> Result<Unpacked, ImageError> {
    let err = |message: String| ImageError {
        path: path.to_path_buf(),
        message,
    };
    let image = Image::open(path, kind).map_err(err)?;
    let hex = image.digest.rsplit(':').next().unwrap_or(&image.digest);
    let dir = cache_dir.join(format!("image-{CACHE_FORMAT}-{hex}"));
    let unpacked = Unpacked {
        root: dir.join("rootfs"),
        digest: image.digest.clone(),
    };
    if dir.join("complete").is_file() {
        return Ok(unpacked);
    }
    let io = |e: std::io::Error| {
        err(format!(
            "cannot be unpacked in {}: {e}",
            cache_dir.display()
        ))
    };
    std::fs::create_dir_all(cache_dir).map_err(io)?;
    let staging = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(cache_dir)
        .map_err(io)?;
    let root = staging.path().join("rootfs");
    std::fs::create_dir(&root).map_err(io)?;
    image.unpack_into(&root).map_err(err)?;
    // An incomplete folder (a crash between rename and mark) is replaced.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io)?;
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, &dir) {
        // Another cairn unpacked the same image meanwhile: use its folder.
        let _ = std::fs::remove_dir_all(&staged);
        if dir.join("complete").is_file() {
            return Ok(unpacked);
        }
        return Err(io(e));
    }
    std::fs::write(dir.join("complete"), &image.digest).map_err(io)?;
    Ok(unpacked)
}

/// Where the bundle at `source` has its files to read its `bundle.toml` from,
/// at validation, before anything is compiled: a folder is itself, an image
/// is unpacked (once, as `prepare` does) into the cache beside a Clusterfile
/// in `base_dir` (`.cairn/cache`, the state folder's `StateDir::cache_dir`).
/// `None` for a `.tar.zst` (its `bundle.toml` is read from the stream).
pub fn metadata_root(
    source: &Path,
    kind: SourceKind,
    base_dir: &Path,
) -> Result<Option<PathBuf>, ImageError> {
    match kind {
        SourceKind::Directory => Ok(Some(source.to_path_buf())),
        SourceKind::TarZst => Ok(None),
        SourceKind::OciArchive | SourceKind::DockerArchive | SourceKind::OciLayout => {
            let cache_dir = base_dir.join(".cairn").join("cache");
            unpack_cached(source, kind, &cache_dir).map(|u| Some(u.root))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(platform: Option<(&str, &str)>, hex: char) -> Descriptor {
        let mut json = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", hex.to_string().repeat(64)),
            "size": 1,
        });
        if let Some((os, arch)) = platform {
            json["platform"] = serde_json::json!({ "os": os, "architecture": arch });
        }
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn one_platform_is_chosen_or_the_choice_is_explained() {
        let only = [descriptor(None, 'a')];
        assert_eq!(choose_platform(&only).unwrap().digest(), only[0].digest());
        let here = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let several = [
            descriptor(Some(("linux", "s390x")), 'a'),
            descriptor(Some(("linux", here)), 'b'),
            descriptor(Some(("unknown", "unknown")), 'c'),
        ];
        assert_eq!(
            choose_platform(&several).unwrap().digest(),
            several[1].digest()
        );
        let foreign = [
            descriptor(Some(("linux", "s390x")), 'a'),
            descriptor(Some(("linux", "riscv64")), 'b'),
        ];
        let error = choose_platform(&foreign).unwrap_err();
        assert!(
            error.contains("linux/s390x, linux/riscv64"),
            "names them: {error}"
        );
        let two_images = [descriptor(None, 'a'), descriptor(None, 'b')];
        let error = choose_platform(&two_images).unwrap_err();
        assert!(error.contains("one image per archive"), "{error}");
    }
}
