//! Reading a Clusterfile from disk, before anything is parsed.
//!
//! The text is kept whole in a [`SourceFile`] (shared, behind an `Arc`)
//! because every later problem is a span into it: parsing, validation and
//! compiling all point back at this text when they report. Failing to read
//! the file at all is the one error with no span, so it has its own type.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::SourceFile;

/// Why a Clusterfile could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read the Clusterfile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is a folder: -f names the Clusterfile itself (e.g. -f {}/Clusterfile)", path.display())]
    Folder { path: PathBuf },
}

/// Reads the file at `path`.
pub fn read(path: &Path) -> Result<SourceFile, LoadError> {
    if path.is_dir() {
        return Err(LoadError::Folder {
            path: path.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(SourceFile {
        path: path.to_path_buf(),
        text: Arc::new(text),
    })
}
