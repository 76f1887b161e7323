//! The elements of a Clusterfile: bundles (with their config patches),
//! files and steps, as validation leaves them; a bundle's hooks are steps
//! marked with the [`Hook`] they stand for.
//!
//! Each element knows the hosts it runs on (selectors already resolved) and
//! what it waits for ([`Dep`]s, already pointing at real elements). Strings
//! that may hold `${}` are kept parsed ([`Interp`]) but not resolved: their
//! value differs per host, and captured values are known only while
//! applying. Spans are kept so later stages can still point into the file.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use super::interp::Interp;
use super::{BundleKind, HostId};

/// Something a task can wait for: bundles, files and steps share one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElementRef {
    Bundle(usize),
    File(usize),
    Step(usize),
}

/// Which hosts' tasks of an element a dependency waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepScope {
    /// The same host where the element runs there, else all its hosts.
    SameHostElseAll,
    /// `x@*`: all its hosts.
    AllHosts,
    /// `x@NAME`: that host only.
    Host(HostId),
}

#[derive(Debug, Clone)]
pub struct Dep {
    pub element: ElementRef,
    pub scope: DepScope,
    pub span: Range<usize>,
}

/// A file format that `merge` understands, known from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    Yaml,
    Json,
    Toml,
}

impl ConfigFormat {
    /// The format of `path` by its extension, if `merge` understands it.
    pub fn of_path(path: &str) -> Option<ConfigFormat> {
        let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
        match ext.as_str() {
            "yaml" | "yml" => Some(ConfigFormat::Yaml),
            "json" => Some(ConfigFormat::Json),
            "toml" => Some(ConfigFormat::Toml),
            _ => None,
        }
    }
}

/// How a config patch changes its file; a merge carries the file's format,
/// resolved at validation, so nothing later has to guess it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    Merge(ConfigFormat),
    Override,
    Insert,
    Append,
}

#[derive(Debug, Clone)]
pub struct ConfigPatch {
    pub path: String,
    pub strategy: PatchStrategy,
    pub data: String,
    /// Applied only if the bundle ships the file: a patch without `bundle`
    /// or `match` on an archive, which could not be looked into at validation.
    pub only_if_shipped: bool,
    pub span: Range<usize>,
}

/// What a bundle's source is (`bundle::detect_source` tells it by content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A folder of files, shipped as it is.
    Directory,
    /// A zstd-compressed tar of such a folder (`cairn bundle pack` writes one).
    TarZst,
    /// A tar holding an OCI image layout (`sealos save`, `skopeo copy ... oci-archive:`).
    OciArchive,
    /// A tar with a `manifest.json` (`docker save`, `skopeo copy ... docker-archive:`).
    DockerArchive,
    /// A folder holding an OCI image layout (`oci-layout`, `index.json`, `blobs/`).
    OciLayout,
}

impl SourceKind {
    /// Whether the source is a container image (its layers make the bundle).
    pub fn is_image(self) -> bool {
        matches!(
            self,
            SourceKind::OciArchive | SourceKind::DockerArchive | SourceKind::OciLayout
        )
    }

    /// How a user names it: `oci-archive`, `directory`, ...
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Directory => "directory",
            SourceKind::TarZst => "tar-zst",
            SourceKind::OciArchive => "oci-archive",
            SourceKind::DockerArchive => "docker-archive",
            SourceKind::OciLayout => "oci-layout",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Bundle {
    pub name: String,
    /// Absolute path of the source: a folder, a `.tar.zst`, or an image.
    pub source: PathBuf,
    /// What `source` is, told by its content at validation.
    pub source_kind: SourceKind,
    pub kind: BundleKind,
    pub hosts: Vec<HostId>,
    pub dest: Interp,
    pub dest_span: Range<usize>,
    /// Glob patterns of template files, relative to the bundle root.
    pub templates: Vec<String>,
    pub configs: Vec<ConfigPatch>,
    pub after: Vec<Dep>,
    pub span: Range<usize>,
    /// The image reference it stands for (`image`), as written.
    pub image: Option<String>,
    /// Its hooks (from `bundle.toml` and the Clusterfile's `hooks` and
    /// `cmd`), as indexes into `Model::steps`, in the order they run.
    pub hooks: Vec<usize>,
}

/// What makes a step a bundle's hook (see `validate::hooks`): the task is
/// `hook.<bundle>.<name>@host`, runs in `<dest>/scripts`, and exports
/// `env` (the names the bundle's `bundle.toml` declares) to its command.
#[derive(Debug, Clone)]
pub struct Hook {
    pub bundle: usize,
    /// `check`, `init`, `init-cri`, ..., or `cmd`.
    pub name: String,
    /// Names exported to it (and to its undo), in order.
    pub env: Vec<String>,
    /// Its command as `${}` source, without the lines that export `env`:
    /// what its key and the plan name as its `run`.
    pub command: String,
    /// The undo's command likewise (`clean` for `init`, `clean-NAME` for `init-NAME`).
    pub undo_command: Option<String>,
}

#[derive(Debug, Clone)]
pub enum FileSource {
    Path(PathBuf),
    /// Inline `content`: `${}` interpolated, unless the file is a template.
    Inline(Interp),
}

#[derive(Debug, Clone)]
pub struct FileSpec {
    pub name: String,
    pub source: FileSource,
    pub dest: Interp,
    pub dest_span: Range<usize>,
    pub template: bool,
    pub mode: u32,
    pub owner: Option<String>,
    pub hosts: Vec<HostId>,
    pub after: Vec<Dep>,
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub hosts: Vec<HostId>,
    pub run: Interp,
    pub cwd: Option<Interp>,
    pub check: Option<Interp>,
    pub undo: Option<Interp>,
    pub capture: Option<String>,
    /// The captured value is a secret: masked everywhere, never stored, captured
    /// again when a task that reads it runs in a later apply.
    pub capture_secret: bool,
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub once: bool,
    /// At most this many of its hosts at a time (`serial`); `None`: no limit.
    pub serial: Option<usize>,
    pub after: Vec<Dep>,
    pub span: Range<usize>,
    /// Set when the step is a bundle's hook, made by validation rather than written in `[[steps]]`.
    pub hook: Option<Hook>,
}

impl Step {
    /// Every Clusterfile string of the step: `run`, then `cwd`, `check`, `undo` when set.
    pub fn strings(&self) -> impl Iterator<Item = &Interp> {
        [
            Some(&self.run),
            self.cwd.as_ref(),
            self.check.as_ref(),
            self.undo.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}
