//! What running a command on a host gives back, and the small helpers every
//! transport uses to build the shell text it sends.

use std::path::PathBuf;

/// The result of a command.
#[derive(Debug, Clone, Default)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal or the timeout.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Stdout and stderr together, in the order the command wrote them,
    /// where the transport can see that order (on this machine); `None`
    /// over SSH, where the host keeps the two apart.
    pub combined: Option<Vec<u8>>,
    pub timed_out: bool,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Quotes a word for sh.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `dest` joined with a shipped path (`""` is `dest` itself).
pub fn target_path(dest: &str, rel: &str) -> PathBuf {
    if rel.is_empty() {
        PathBuf::from(dest)
    } else {
        PathBuf::from(dest).join(rel)
    }
}
