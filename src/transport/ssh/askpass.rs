//! Passwords and key passphrases for OpenSSH, without a command line, a
//! file or an environment variable ever holding them.
//!
//! OpenSSH asks for a secret through an askpass program when
//! `SSH_ASKPASS_REQUIRE=force` is set: it runs `$SSH_ASKPASS PROMPT` and
//! reads the answer from its stdout. cairn is its own askpass program. A
//! run that has hosts with a `password` or `identity_passphrase` starts an
//! [`AskpassServer`] on a Unix socket in its private (0700) run folder and
//! gives each such host's ssh a one-time token in its environment; the
//! askpass helper (`cairn` started by ssh, see [`answer_prompt`]) sends the
//! token and the prompt over the socket and prints what comes back. ssh
//! passes its environment on to the ssh processes of jump hosts, so every
//! hop of a host is answered with that host's secrets (the same login, as
//! the Clusterfile says).
//!
//! ssh closes every inherited descriptor but 0–2 when it starts, and a jump
//! host's ssh talks to its parent on stdin/stdout, so an inherited pipe
//! cannot carry the secret; a socket can, to the helper alone. The prompt
//! says which secret is wanted ("password" or "passphrase"); anything else
//! (a host key question, a one-time code) is refused, which ssh takes as
//! "cancelled". Which secrets were handed out is remembered per host, so a
//! refused login can say "the password was refused".

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::model::{Secret, SshSettings};

/// The environment variables that turn `cairn` into the askpass helper.
const SOCKET_VAR: &str = "CAIRN_ASKPASS_SOCKET";
const TOKEN_VAR: &str = "CAIRN_ASKPASS_TOKEN";

/// The most a prompt may be: ssh's are one short line.
const PROMPT_LIMIT: u64 = 4096;

/// What was handed to one host's ssh, for saying why a login failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Served {
    pub password: bool,
    pub passphrase: bool,
    /// A prompt that was neither (refused).
    pub other: bool,
}

struct Entry {
    password: Option<Secret>,
    passphrase: Option<Secret>,
    served: Served,
}

type Entries = Arc<Mutex<HashMap<String, Entry>>>;

/// Answers the askpass helpers of one run (see the module doc).
pub(super) struct AskpassServer {
    socket: PathBuf,
    entries: Entries,
    task: tokio::task::JoinHandle<()>,
}

impl AskpassServer {
    /// Listens on `socket` (in a folder only this user can enter).
    pub(super) fn start(socket: &Path) -> std::io::Result<AskpassServer> {
        let listener = UnixListener::bind(socket)?;
        let entries: Entries = Arc::default();
        let served = entries.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, served.clone()));
            }
        });
        Ok(AskpassServer {
            socket: socket.to_path_buf(),
            entries,
            task,
        })
    }

    /// Registers one host's secrets; returns the environment its ssh needs
    /// (`SSH_ASKPASS` and the token), and the token to ask [`Self::served`] with.
    pub(super) fn register(&self, ssh: &SshSettings) -> (Vec<(&'static str, String)>, String) {
        let token = random_token();
        let entry = Entry {
            password: ssh.password.as_ref().map(|p| p.value.clone()),
            passphrase: ssh.identity_passphrase.as_ref().map(|p| p.value.clone()),
            served: Served::default(),
        };
        self.entries
            .lock()
            .expect("askpass entries lock")
            .insert(token.clone(), entry);
        let helper = std::env::current_exe()
            .map_or_else(|_| "cairn".to_string(), |p| p.display().to_string());
        let env = vec![
            ("SSH_ASKPASS", helper),
            ("SSH_ASKPASS_REQUIRE", "force".to_string()),
            (SOCKET_VAR, self.socket.display().to_string()),
            (TOKEN_VAR, token.clone()),
        ];
        (env, token)
    }

    /// What the host with `token` was handed so far.
    pub(super) fn served(&self, token: &str) -> Served {
        self.entries
            .lock()
            .expect("askpass entries lock")
            .get(token)
            .map(|e| e.served)
            .unwrap_or_default()
    }

    /// Forgets a host's secrets once its login is done.
    pub(super) fn forget(&self, token: &str) {
        self.entries
            .lock()
            .expect("askpass entries lock")
            .remove(token);
    }
}

impl Drop for AskpassServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// One helper's question: `TOKEN\nPROMPT`; the answer is the secret, or
/// nothing (refused).
async fn answer(mut stream: tokio::net::UnixStream, entries: Entries) {
    let mut question = Vec::new();
    if (&mut stream)
        .take(PROMPT_LIMIT)
        .read_to_end(&mut question)
        .await
        .is_err()
    {
        return;
    }
    let question = String::from_utf8_lossy(&question);
    let (token, prompt) = question.split_once('\n').unwrap_or((&question, ""));
    let secret = {
        let mut entries = entries.lock().expect("askpass entries lock");
        let Some(entry) = entries.get_mut(token) else {
            return;
        };
        match wanted(prompt) {
            Wanted::Passphrase => {
                entry.served.passphrase |= entry.passphrase.is_some();
                entry.passphrase.clone()
            }
            Wanted::Password => {
                entry.served.password |= entry.password.is_some();
                entry.password.clone()
            }
            Wanted::Other => {
                entry.served.other = true;
                None
            }
        }
    };
    if let Some(secret) = secret {
        let _ = stream.write_all(secret.expose().as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

/// What an ssh prompt asks for.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// "Enter passphrase for key '…':"
    Passphrase,
    /// "user@host's password:", or keyboard-interactive's "(user@host) Password:"
    Password,
    /// Anything else: a host key question, a one-time code, a PIN.
    Other,
}

fn wanted(prompt: &str) -> Wanted {
    let prompt = prompt.to_lowercase();
    if prompt.contains("passphrase") {
        Wanted::Passphrase
    } else if prompt.contains("password") {
        Wanted::Password
    } else {
        Wanted::Other
    }
}

/// 128 random bits, hex: a host's token (a stale helper from another run
/// or host cannot guess one).
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
        let _ = random.read_exact(&mut bytes);
    }
    bytes.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// When this process was started by ssh as the askpass helper: asks the
/// run that started ssh for the secret `prompt` wants. `Some(Ok(secret))`
/// is the answer to hand to ssh on stdout; `Some(Err(()))` means refused
/// (ssh takes a failing helper as "cancelled"); `None`: not a helper.
pub fn answer_prompt() -> Option<Result<Vec<u8>, ()>> {
    let socket = std::env::var_os(SOCKET_VAR)?;
    let token = std::env::var(TOKEN_VAR).ok()?;
    let prompt = std::env::args().nth(1).unwrap_or_default();
    let ask = || -> std::io::Result<Vec<u8>> {
        let mut stream = UnixStream::connect(&socket)?;
        stream.write_all(format!("{token}\n{prompt}").as_bytes())?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut secret = Vec::new();
        stream.read_to_end(&mut secret)?;
        Ok(secret)
    };
    Some(match ask() {
        Ok(secret) if !secret.is_empty() => Ok(secret),
        _ => Err(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_told_apart_and_anything_else_is_refused() {
        assert_eq!(wanted("root@10.0.0.2's password: "), Wanted::Password);
        assert_eq!(wanted("(ops@web1) Password: "), Wanted::Password);
        assert_eq!(
            wanted("Enter passphrase for key '/root/.ssh/id_ed25519': "),
            Wanted::Passphrase
        );
        assert_eq!(
            wanted("Are you sure you want to continue connecting (yes/no/[fingerprint])? "),
            Wanted::Other
        );
        assert_eq!(wanted("Verification code: "), Wanted::Other);
    }

    #[test]
    fn tokens_are_random_and_hex() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
