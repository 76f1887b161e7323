//! The cluster lock: one apply per cluster at a time.
//!
//! Held with `flock` on `.cairn/<cluster>/lock` for as long as the
//! [`StateLock`] lives. The kernel releases it when the holder exits, however
//! it exits, so there is no stale lock to clean up after a kill. The file's
//! content names the holder (pid, host, user, command, start time) so that a
//! refused second apply can say who is in the way.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    pub user: String,
    pub command: String,
    pub started_at: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} (user {}, `{}`, started {})",
            self.pid, self.host, self.user, self.command, self.started_at
        )
    }
}

impl LockHolder {
    /// This process, running `command`.
    pub fn current(command: &str) -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            command: command.to_string(),
            started_at: super::now_rfc3339(),
        }
    }

    /// `user@machine`, as receipts name who did a task.
    pub fn operator(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cluster `{cluster}` is locked by {holder}")]
    Held { cluster: String, holder: String },
    #[error("failed to lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    /// Takes the lock for `holder`, or says who holds it.
    pub fn acquire(
        path: &Path,
        cluster: &str,
        holder: &LockHolder,
    ) -> Result<StateLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = serde_json::from_str::<LockHolder>(&text).map_or_else(
                    |_| "another cairn process (it has not written its details yet)".into(),
                    |h| h.to_string(),
                );
                return Err(LockError::Held {
                    cluster: cluster.to_string(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(
            serde_json::to_string(holder)
                .expect("serializes")
                .as_bytes(),
        )
        .map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = StateLock::acquire(&path, "c", &LockHolder::current("cairn apply")).unwrap();
        let err = StateLock::acquire(&path, "c", &LockHolder::current("cairn apply"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        StateLock::acquire(&path, "c", &LockHolder::current("cairn apply"))
            .expect("free after drop");
    }
}
