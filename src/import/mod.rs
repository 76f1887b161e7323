//! `cairn import`: a Clusterfile written from another tool's cluster
//! description, so that a team can move to cairn without retyping its hosts.
//!
//! Only sealos is read today (`sealos`). An import never guesses silently:
//! every field it reads becomes its cairn equivalent, and every field it
//! cannot express is returned as an [`ImportWarning`] naming the field, for
//! the report to list. Secrets in the source (passwords, key passphrases)
//! are never copied: each becomes a `{ secret = "env:NAME" }` whose
//! variable the user sets, listed in [`Imported::secrets`].

pub mod sealos;

/// A field of the source that the Clusterfile does not carry as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportWarning {
    /// Where it is in the source: `Cluster.spec.provider`, `document 5 (example.com/v1 Telemetry)`.
    pub field: String,
    /// What happened to it, and what to do instead.
    pub message: String,
}

/// An environment variable the imported Clusterfile reads a secret from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVariable {
    /// The variable's name, e.g. `SEALOS_SSH_PASSWORD`.
    pub variable: String,
    /// The source field whose value it must hold, e.g. `Cluster.spec.ssh.passwd`.
    pub holds: String,
}

/// An image the imported Clusterfile expects as an archive beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    /// The bundle's `source`, e.g. `kubernetes.tar`.
    pub source: String,
    /// The image reference, e.g. `labring/kubernetes:v1.27.7`.
    pub image: String,
}

/// The result of an import: the Clusterfile's text and what the user must know about it.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The Clusterfile (TOML, with comments).
    pub clusterfile: String,
    /// Every field not carried over as it was.
    pub warnings: Vec<ImportWarning>,
    /// The environment variables its secrets are read from.
    pub secrets: Vec<SecretVariable>,
    /// The image archives its bundles read, to be made with `sealos save`.
    pub archives: Vec<ImageArchive>,
    /// How many `[[hosts]]` entries it has.
    pub hosts: usize,
    /// How many `[[configs]]` entries it has.
    pub configs: usize,
}

/// Why a source could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file} is not valid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("{file} has no `kind: Cluster` document")]
    NoCluster { file: String },
    #[error("{file} has {count} `kind: Cluster` documents; one Clusterfile describes one cluster")]
    ManyClusters { file: String, count: usize },
}
