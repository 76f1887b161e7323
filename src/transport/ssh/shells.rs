//! A long-lived shell on an SSH host, running many commands at once.
//!
//! Every SSH channel makes sshd start the user's login shell with `-c`, and
//! a login shell reads its profile first: on hosts whose profile starts
//! version managers or the like, that is 0.1 s of the host's CPU per
//! command, more than most commands. So a host runs all of a run's commands
//! on one long-lived shell: a channel running [`SHELL_LOOP`], which reads
//! framed commands from its stdin and runs each in a fresh `sh` (nothing
//! leaks from one command to the next), under `timeout(1)` when it has a
//! time limit. Commands without input run in the background, so a host runs
//! several at once; a command with input (a file stream) runs in the
//! foreground, since its input follows its frame on the same stream.
//!
//! A frame is `__CAIRN_RUN__ <id> <script bytes> <stdin bytes> <timeout s>\n`,
//! the script (ending with a line of cairn's, without which it does not
//! run: a frame cut off by cairn's death never runs half a script), then
//! the command's stdin. The script stays in the loop's
//! memory and reaches the command's `sh` on a here-document (a pipe), so it
//! is never on a command line or on disk; the command's stdin is drained to
//! its end even if the command stops reading, so the next frame is found.
//! Output goes to files in the shell's private folder (0700, in `/dev/shm`
//! when there is one, so a full disk does not stop cairn from running
//! commands), and comes back, under a `flock` so answers never interleave,
//! as `__CAIRN_DONE__ <id> <exit code> <stdout bytes> <stderr bytes>\n` and
//! the bytes. On an apply, the host lock's channel is the shell (see
//! `SshLock`), so a host costs one channel however many tasks it runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssh::{ChildStdin, ChildStdout, Session};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

use crate::bundle::stream::Stream;

/// The loop a shell runs. In the lock's shell three variables are set:
/// `$cairn_hb`, the heartbeat file, touched by every frame and every idle
/// ping (a line that is not a frame), and every 10 s while a file stream
/// runs in the foreground (the loop reads no pings then); `$cairn_fl`, the
/// folder where each command in flight leaves `<pid> <timeout s> <label>`
/// until it ends, so the next run can say what it waits for if cairn dies;
/// and `$cairn_closed`, touched when cairn's side of the channel closes
/// (it released the lock, or died). Commands never inherit fd 9 (the
/// lock's `flock`), but the subshell waiting for each one does: the lock
/// stays held until every command of the run has ended. Every command
/// sees `$CAIRN_SHELL_PID` (the loop's pid) and `$CAIRN_SHELL_DIR` (its
/// private folder): a staging sent with the probe is named after the one
/// and listed in the other's `staged`, whose folders the loop removes when
/// it ends (those the task did not move into place).
pub(super) const SHELL_LOOP: &str = r#"cairn_w=$(umask 077; mktemp -d /dev/shm/.cairn-XXXXXX 2>/dev/null || mktemp -d "${TMPDIR:-/tmp}/.cairn-XXXXXX") || exit 1
CAIRN_SHELL_PID=$$ CAIRN_SHELL_DIR=$cairn_w
export CAIRN_SHELL_PID CAIRN_SHELL_DIR
trap 'if [ -s "$cairn_w/staged" ]; then while IFS= read -r cairn_x; do case "$cairn_x" in */.cairn-staging-*) rm -rf "$cairn_x";; esac; done < "$cairn_w/staged"; fi; rm -rf "$cairn_w"' EXIT
cairn_emit() {
  set -- "$1" "$2" $(stat -c %s "$cairn_w/o.$1" "$cairn_w/e.$1")
  echo "__CAIRN_DONE__ $1 $2 $3 $4" > "$cairn_w/h.$1"
  flock "$cairn_w" cat "$cairn_w/h.$1" "$cairn_w/o.$1" "$cairn_w/e.$1"
  rm -f "$cairn_w/h.$1" "$cairn_w/o.$1" "$cairn_w/e.$1"
}
echo __CAIRN_READY__
while IFS= read -r cairn_f; do
  [ -n "${cairn_hb:-}" ] && : > "$cairn_hb"
  case "$cairn_f" in "__CAIRN_RUN__ "*) ;; *) continue;; esac
  set -- ${cairn_f#__CAIRN_RUN__ }
  cairn_i=$1
  cairn_s=$(head -c "$2")
  # A script cut off by cairn's death mid-frame would run half: it must end
  # with the line cairn puts last, or nothing of it runs.
  case "$cairn_s" in *"
#__CAIRN_SCRIPT_END__") ;; *) cairn_s=; continue;; esac
  cairn_t=
  [ "$4" -gt 0 ] && cairn_t="timeout -k 5 $4s"
  if [ "$3" -gt 0 ]; then
    cairn_b=
    if [ -n "${cairn_hb:-}" ]; then
      { while sleep 10; do : > "$cairn_hb"; done; } 9>&- &
      cairn_b=$!
    fi
    head -c "$3" | { $cairn_t sh /dev/fd/3 9>&- 3<<CAIRN_SCRIPT_END
$cairn_s
CAIRN_SCRIPT_END
      cairn_r=$?; cat > /dev/null; exit $cairn_r; } > "$cairn_w/o.$cairn_i" 2> "$cairn_w/e.$cairn_i"
    cairn_r=$?
    [ -n "$cairn_b" ] && kill "$cairn_b" 2>/dev/null
    cairn_emit "$cairn_i" $cairn_r
  else
    {
      $cairn_t sh /dev/fd/3 9>&- < /dev/null > "$cairn_w/o.$cairn_i" 2> "$cairn_w/e.$cairn_i" 3<<CAIRN_SCRIPT_END &
$cairn_s
CAIRN_SCRIPT_END
      [ -n "${cairn_fl:-}" ] && echo "$! $4 ${5:-}" > "$cairn_fl/$cairn_i"
      wait $!
      cairn_r=$?
      [ -n "${cairn_fl:-}" ] && : > "$cairn_fl/$cairn_i"
      cairn_emit "$cairn_i" $cairn_r; } &
  fi
  cairn_s=
done
[ -n "${cairn_closed:-}" ] && : > "$cairn_closed"
wait
"#;

/// The line every script sent ends with: the loop runs a script only when it
/// has it, so one cut off by cairn's death mid-frame never runs half.
const SCRIPT_END: &str = "\n#__CAIRN_SCRIPT_END__";

/// What a command left: exit code, stdout, stderr.
#[derive(Debug)]
pub(super) struct Ran {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a command got no answer.
#[derive(Debug)]
pub(super) enum Broken {
    /// No answer within the time limit: the host hangs, or the command ignores its timeout.
    TimedOut,
    /// The channel ended or answered out of protocol.
    Lost(String),
}

/// Commands sent and not answered yet, by id.
#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Ran>>,
    /// Why the shell ended, once it has.
    ended: Option<String>,
}

/// Marks a shell broken when dropped before its frame was wholly written.
struct CutOff<'a> {
    broken: &'a AtomicBool,
    written: bool,
}

impl Drop for CutOff<'_> {
    fn drop(&mut self) {
        if !self.written {
            self.broken.store(true, Ordering::SeqCst);
        }
    }
}

/// The first frame of a shell, written while the channel is still
/// starting (on the lock's channel: while the host is locked and probed):
/// a future that makes its script and stdin (`None`: nothing to send).
pub(super) type EarlyFrame =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<(String, Arc<Stream>)>> + Send>>;

/// How the first frame's write ended: the channel's stdin comes back with it.
pub(super) enum EarlyWrite {
    /// Written whole, as frame 1.
    Sent,
    /// The future had nothing to send.
    NothingToSend,
    /// The write failed midway: the stream is out of step.
    CutOff,
}

/// A channel's stdin, ready or still writing its first frame.
pub(super) enum ShellInput {
    Ready(ChildStdin),
    Writing(tokio::task::JoinHandle<(ChildStdin, EarlyWrite)>),
}

/// Writes `frame` as frame 1 on `stdin`, then hands `stdin` back.
pub(super) fn write_early(
    mut stdin: ChildStdin,
    frame: EarlyFrame,
) -> tokio::task::JoinHandle<(ChildStdin, EarlyWrite)> {
    tokio::spawn(async move {
        let Some((script, stream)) = frame.await else {
            return (stdin, EarlyWrite::NothingToSend);
        };
        let written = write_frame(
            &mut stdin,
            EARLY_FRAME,
            &script,
            Some(&stream.bytes),
            Some(STREAM_LIMIT),
            None,
        )
        .await;
        match written {
            Ok(()) => (stdin, EarlyWrite::Sent),
            Err(_) => (stdin, EarlyWrite::CutOff),
        }
    })
}

/// How long a command fed a file stream may run: unpacking a large bundle
/// on a slow disk.
pub(super) const STREAM_LIMIT: Duration = Duration::from_secs(3600);

/// What a shell's early frame did, kept with its answer for the command
/// that takes it over (see `ship::stage_script`).
pub(crate) struct EarlyAnswer {
    /// Where it put files, and a digest of which (`ship::identity`).
    pub dest: String,
    pub key: [u8; 32],
    pub answer: oneshot::Receiver<Ran>,
}

/// The id of a shell's early frame; the shell numbers the others after it.
const EARLY_FRAME: u64 = 1;

/// One shell: a channel running [`SHELL_LOOP`].
pub(super) struct Shell {
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    child: tokio::sync::Mutex<Option<openssh::Child<Arc<Session>>>>,
    pending: Arc<Mutex<Pending>>,
    next: AtomicU64,
    /// Set when a write was cut off: the stream is out of step.
    broken: AtomicBool,
    /// This shell's channel holds the host lock.
    pub holds_lock: bool,
}

impl Shell {
    /// Wraps a started channel that has printed `__CAIRN_READY__`, and
    /// starts reading its answers. With its first frame still being
    /// written, also what that frame's answer will come on: commands sent
    /// meanwhile wait for the write to end, and follow it.
    pub(super) fn new(
        child: openssh::Child<Arc<Session>>,
        input: ShellInput,
        stdout: BufReader<ChildStdout>,
        holds_lock: bool,
    ) -> (Arc<Shell>, Option<oneshot::Receiver<Ran>>) {
        let mut pending = Pending::default();
        let early = match &input {
            ShellInput::Ready(_) => None,
            ShellInput::Writing(_) => {
                let (tx, rx) = oneshot::channel();
                pending.waiting.insert(EARLY_FRAME, tx);
                Some(rx)
            }
        };
        let pending = Arc::new(Mutex::new(pending));
        tokio::spawn(read_answers(stdout, pending.clone()));
        let (stdin, writing) = match input {
            ShellInput::Ready(stdin) => (Some(stdin), None),
            ShellInput::Writing(handle) => (None, Some(handle)),
        };
        let shell = Arc::new(Shell {
            stdin: Arc::new(tokio::sync::Mutex::new(stdin)),
            child: tokio::sync::Mutex::new(Some(child)),
            pending,
            next: AtomicU64::new(EARLY_FRAME + 1),
            broken: AtomicBool::new(false),
            holds_lock,
        });
        if let Some(handle) = writing {
            // Taken before anyone else can ask: the early frame goes first.
            let mut slot = shell
                .stdin
                .clone()
                .try_lock_owned()
                .expect("a new shell's stdin is free");
            let shell = shell.clone();
            tokio::spawn(async move {
                // Stopped (the stdin gone with it), or half a frame
                // written: no answer will come, and the stream is out of step.
                let broken = |shell: &Shell| {
                    shell.forget(EARLY_FRAME);
                    shell.broken.store(true, Ordering::SeqCst);
                };
                let Ok((stdin, written)) = handle.await else {
                    broken(&shell);
                    return;
                };
                match written {
                    EarlyWrite::Sent => {}
                    EarlyWrite::NothingToSend => shell.forget(EARLY_FRAME),
                    EarlyWrite::CutOff => broken(&shell),
                }
                *slot = Some(stdin);
            });
        }
        (shell, early)
    }

    /// Stops waiting for command `id`'s answer: its waiter learns it never comes.
    fn forget(&self, id: u64) {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .waiting
            .remove(&id);
    }

    /// Whether the shell can take more commands.
    pub(super) fn usable(&self) -> bool {
        !self.broken.load(Ordering::SeqCst)
            && self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .ended
                .is_none()
    }

    /// Runs one command; `limit` bounds the wait for its answer. `label`
    /// (the task it runs) names it in the lock's record of commands in flight.
    pub(super) async fn run(
        &self,
        script: &str,
        data: Option<&[u8]>,
        timeout: Option<Duration>,
        limit: Option<Duration>,
        label: Option<&str>,
    ) -> Result<Ran, Broken> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(why) = &pending.ended {
                return Err(Broken::Lost(why.clone()));
            }
            pending.waiting.insert(id, tx);
        }
        let forget = || self.forget(id);
        let exchange = async {
            self.send(id, script, data, timeout, label).await?;
            rx.await.map_err(|_| Broken::Lost(self.end_reason()))
        };
        let result = match limit {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .unwrap_or(Err(Broken::TimedOut)),
            None => exchange.await,
        };
        if result.is_err() {
            forget();
        }
        result
    }

    fn end_reason(&self) -> String {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ended
            .clone()
            .unwrap_or_else(|| "the host's shell ended".into())
    }

    /// Writes one frame; a write cut off halfway leaves the shell broken.
    async fn send(
        &self,
        id: u64,
        script: &str,
        data: Option<&[u8]>,
        timeout: Option<Duration>,
        label: Option<&str>,
    ) -> Result<(), Broken> {
        let mut guard = self.stdin.lock().await;
        let stdin = guard
            .as_mut()
            .ok_or_else(|| Broken::Lost("the shell is closed".into()))?;
        if self.broken.load(Ordering::SeqCst) {
            return Err(Broken::Lost(
                "an earlier command was cut off mid-write".into(),
            ));
        }
        // A frame cut off midway (an error, or this future dropped) leaves
        // the shell broken. Only then: a flag set for the whole write would
        // make a command sent meanwhile open a second shell, one that does
        // not hold the host lock, and whose commands a killed cairn would
        // leave running with the lock already free.
        let mut cut_off = CutOff {
            broken: &self.broken,
            written: false,
        };
        write_frame(stdin, id, script, data, timeout, label)
            .await
            .map_err(|e| Broken::Lost(e.to_string()))?;
        cut_off.written = true;
        Ok(())
    }

    /// A line that is not a frame: the lock's shell touches its heartbeat.
    pub(super) async fn ping(&self) -> bool {
        let mut guard = self.stdin.lock().await;
        match guard.as_mut() {
            Some(stdin) => stdin.write_all(b".\n").await.is_ok() && stdin.flush().await.is_ok(),
            None => false,
        }
    }

    /// Ends the shell: its loop sees end of input, waits for its commands, cleans up and exits.
    pub(super) async fn close(&self) {
        if let Some(mut stdin) = self.stdin.lock().await.take() {
            let _ = stdin.shutdown().await;
        }
        if let Some(child) = self.child.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

/// Writes one frame: its header, the script, cairn's last line, and the
/// command's stdin.
async fn write_frame(
    stdin: &mut ChildStdin,
    id: u64,
    script: &str,
    data: Option<&[u8]>,
    timeout: Option<Duration>,
    label: Option<&str>,
) -> std::io::Result<()> {
    let header = format!(
        "__CAIRN_RUN__ {id} {} {} {}{}\n",
        script.len() + SCRIPT_END.len(),
        data.map_or(0, <[u8]>::len),
        timeout.map_or(0, |t| t.as_secs().max(1)),
        label.map(frame_label).unwrap_or_default()
    );
    stdin.write_all(header.as_bytes()).await?;
    stdin.write_all(script.as_bytes()).await?;
    stdin.write_all(SCRIPT_END.as_bytes()).await?;
    if let Some(data) = data {
        stdin.write_all(data).await?;
    }
    stdin.flush().await
}

/// A label as a frame's last field: ` label`, with anything the loop would
/// split or glob on (`set -- $frame`) replaced, and bounded in length.
fn frame_label(label: &str) -> String {
    let safe: String = label
        .chars()
        .take(120)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@:+=,-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(" {safe}")
}

/// The header of an answer: `__CAIRN_DONE__ <id> <exit code> <stdout bytes> <stderr bytes>`.
struct Answer {
    id: u64,
    code: i32,
    out_len: usize,
    err_len: usize,
}

impl Answer {
    fn parse(line: &str) -> Option<Answer> {
        let mut fields = line.trim_end().strip_prefix("__CAIRN_DONE__ ")?.split(' ');
        let answer = Answer {
            id: fields.next()?.parse().ok()?,
            code: fields.next()?.parse().ok()?,
            out_len: fields.next()?.parse().ok()?,
            err_len: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(answer)
    }
}

/// Reads answers and hands each to the command waiting for it.
async fn read_answers(mut stdout: BufReader<ChildStdout>, pending: Arc<Mutex<Pending>>) {
    let why = loop {
        let mut line = String::new();
        match stdout.read_line(&mut line).await {
            Ok(0) => break "the host's shell ended (the connection closed)".to_string(),
            Err(e) => break format!("the connection failed: {e}"),
            Ok(_) => {}
        }
        let Some(Answer {
            id,
            code,
            out_len,
            err_len,
        }) = Answer::parse(&line)
        else {
            break format!("unexpected answer from the host: {}", line.trim_end());
        };
        let mut out = vec![0; out_len];
        let mut err = vec![0; err_len];
        if let Err(e) = stdout.read_exact(&mut out).await {
            break format!("the connection failed: {e}");
        }
        if let Err(e) = stdout.read_exact(&mut err).await {
            break format!("the connection failed: {e}");
        }
        let waiter = pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .waiting
            .remove(&id);
        // No one waits for an answer that came after its time limit.
        if let Some(tx) = waiter {
            let _ = tx.send(Ran {
                code,
                stdout: out,
                stderr: err,
            });
        }
    };
    let mut pending = pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    pending.ended = Some(why);
    // Dropping the senders tells every waiting command.
    pending.waiting.clear();
}

/// The shell of one host, opened on first use (or adopted from the lock).
#[derive(Default)]
pub(super) struct Shells {
    current: tokio::sync::Mutex<Option<Arc<Shell>>>,
    /// Replaced shells, kept until close (the lock's must live on).
    old: Mutex<Vec<Arc<Shell>>>,
}

impl Shells {
    /// The host's usable shell, opening one with `open` if there is none.
    pub(super) async fn get<F, Fut, E>(&self, open: F) -> Result<Arc<Shell>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Arc<Shell>, E>>,
    {
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref()
            && s.usable()
        {
            return Ok(s.clone());
        }
        let shell = open().await?;
        if let Some(old) = current.replace(shell.clone()) {
            self.old
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(old);
        }
        Ok(shell)
    }

    /// Makes `shell` (the lock's) the host's shell.
    pub(super) async fn adopt(&self, shell: Arc<Shell>) {
        if let Some(old) = self.current.lock().await.replace(shell) {
            self.old
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(old);
        }
    }

    /// Pings the lock's shell (it touches the heartbeat file).
    pub(super) async fn ping_lock(&self) {
        let shell = self.current.lock().await.clone();
        if let Some(s) = shell.filter(|s| s.holds_lock) {
            s.ping().await;
        }
    }

    /// Closes the shells; with `lock_only`, just the lock's.
    pub(super) async fn close(&self, lock_only: bool) {
        let mut all: Vec<Arc<Shell>> = self
            .old
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(s) = self.current.lock().await.clone() {
            all.push(s);
        }
        for s in all.into_iter().filter(|s| !lock_only || s.holds_lock) {
            s.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CutOff, SHELL_LOOP};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The loop, started with `sh` on this machine and ready: the child, its
    /// stdin, and its stdout past the ready line.
    fn started_loop() -> (
        std::process::Child,
        std::process::ChildStdin,
        BufReader<std::process::ChildStdout>,
    ) {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SHELL_LOOP)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "__CAIRN_READY__\n");
        (child, stdin, out)
    }

    /// Drives the loop with `sh` on this machine: frames in, frames out.
    #[test]
    fn the_loop_runs_framed_commands_and_keeps_in_step() {
        let (mut child, mut stdin, mut out) = started_loop();
        let mut next_id = 0;
        let mut send =
            |stdin: &mut std::process::ChildStdin, script: &str, data: &[u8], timeout: u64| {
                next_id += 1;
                write!(
                    stdin,
                    "__CAIRN_RUN__ {next_id} {} {} {timeout}\n{script}{}",
                    script.len() + super::SCRIPT_END.len(),
                    data.len(),
                    super::SCRIPT_END
                )
                .unwrap();
                stdin.write_all(data).unwrap();
                stdin.flush().unwrap();
                next_id
            };
        let answer =
            |out: &mut BufReader<std::process::ChildStdout>| -> (usize, i32, String, String) {
                let mut header = String::new();
                out.read_line(&mut header).unwrap();
                let parts: Vec<usize> = header
                    .trim_end()
                    .strip_prefix("__CAIRN_DONE__ ")
                    .unwrap_or_else(|| panic!("bad frame: {header}"))
                    .split(' ')
                    .map(|p| p.parse().unwrap())
                    .collect();
                let mut o = vec![0; parts[2]];
                out.read_exact(&mut o).unwrap();
                let mut e = vec![0; parts[3]];
                out.read_exact(&mut e).unwrap();
                (
                    parts[0],
                    i32::try_from(parts[1]).unwrap(),
                    String::from_utf8(o).unwrap(),
                    String::from_utf8(e).unwrap(),
                )
            };
        let mut run = |script: &str, data: &[u8], timeout: u64| -> (i32, String, String) {
            let id = send(&mut stdin, script, data, timeout);
            let (got, code, o, e) = answer(&mut out);
            assert_eq!(got as u64, id);
            (code, o, e)
        };
        assert_eq!(
            run("echo out; echo err >&2; exit 3", b"", 0),
            (3, "out\n".into(), "err\n".into())
        );
        // Data is the command's stdin; what it does not read is drained.
        assert_eq!(run("head -c 3", b"abcdef", 0).1, "abc");
        assert_eq!(run("true", b"unread data\n__CAIRN_RUN__ 1 0 0\n", 0).0, 0);
        // Nothing leaks from one command to the next; `$` in a script is not expanded by the loop.
        assert_eq!(run("x=1; cd /", b"", 0).0, 0);
        assert_eq!(
            run("echo \"[${x:-unset}]\" '$HOME'", b"", 0).1,
            "[unset] $HOME\n"
        );
        // A time limit stops the command (timeout(1) exits 124).
        assert_eq!(run("sleep 5", b"", 1).0, 124);
        assert_eq!(run("echo still in step", b"", 0).1, "still in step\n");
        // Commands without input run at once: the quick one answers first.
        let slow = send(&mut stdin, "sleep 0.5; echo slow", b"", 0);
        let quick = send(&mut stdin, "echo quick", b"", 0);
        let first = answer(&mut out);
        let second = answer(&mut out);
        assert_eq!((first.0 as u64, first.2.as_str()), (quick, "quick\n"));
        assert_eq!((second.0 as u64, second.2.as_str()), (slow, "slow\n"));
        drop(stdin);
        assert!(child.wait().unwrap().success());
    }

    /// cairn dies while writing a frame: the part of the script that came
    /// is not run (it would run half of what was meant), and the loop ends.
    #[test]
    fn a_script_cut_off_mid_frame_does_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let (mut child, mut stdin, mut out) = started_loop();
        // The whole script would touch the marker, then record its receipt.
        let script = format!("touch {}\necho receipt written", marker.display());
        let whole = script.len() + super::SCRIPT_END.len();
        write!(stdin, "__CAIRN_RUN__ 1 {whole} 0 0\n{script}").unwrap();
        drop(stdin);
        assert!(child.wait().unwrap().success());
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        assert!(!marker.exists(), "half a script ran");
        assert!(!rest.contains("__CAIRN_DONE__"), "{rest}");
    }

    /// In the lock's shell, each command in flight is recorded with its pid,
    /// time limit and task until it ends, and the end of cairn's input is marked.
    #[test]
    fn the_locks_shell_records_what_is_in_flight_and_when_cairn_left() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("inflight");
        std::fs::create_dir(&records).unwrap();
        let closed = dir.path().join("closed");
        let heartbeat = dir.path().join("heartbeat");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SHELL_LOOP)
            .env("cairn_fl", &records)
            .env("cairn_closed", &closed)
            .env("cairn_hb", &heartbeat)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        // The command waits for its own record, prints it, and ends.
        let script = format!(
            "while [ ! -s {r}/7 ]; do sleep 0.01; done; cat {r}/7",
            r = records.display()
        );
        write!(
            stdin,
            "__CAIRN_RUN__ 7 {} 0 30{}\n{script}{}",
            script.len() + super::SCRIPT_END.len(),
            super::frame_label("step.init@m*0 [x]"),
            super::SCRIPT_END
        )
        .unwrap();
        stdin.flush().unwrap();
        let mut header = String::new();
        out.read_line(&mut header).unwrap();
        let lengths: Vec<usize> = header
            .trim_end()
            .split(' ')
            .skip(3)
            .map(|n| n.parse().unwrap())
            .collect();
        let mut record = vec![0; lengths[0]];
        out.read_exact(&mut record).unwrap();
        let record = String::from_utf8(record).unwrap();
        let fields: Vec<&str> = record.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{record}");
        assert!(fields[0].parse::<u32>().is_ok(), "a pid: {record}");
        assert_eq!(&fields[1..], ["30", "step.init@m_0__x_"]);
        assert!(heartbeat.exists(), "a frame touches the heartbeat");
        // Emptied once it ended; the end of input is marked.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(records.join("7")).unwrap().len() > 0 {
            assert!(std::time::Instant::now() < deadline, "record not emptied");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!closed.exists());
        drop(stdin);
        assert!(child.wait().unwrap().success());
        assert!(closed.exists(), "the end of cairn's input is marked");
    }

    #[test]
    fn a_shell_is_broken_only_by_a_frame_cut_off_not_by_one_being_written() {
        let broken = AtomicBool::new(false);
        {
            let mut frame = CutOff {
                broken: &broken,
                written: false,
            };
            assert!(
                !broken.load(Ordering::SeqCst),
                "a command sent while a frame is written uses the same shell"
            );
            frame.written = true;
        }
        assert!(!broken.load(Ordering::SeqCst));
        drop(CutOff {
            broken: &broken,
            written: false,
        });
        assert!(
            broken.load(Ordering::SeqCst),
            "a frame cut off breaks the shell"
        );
    }
}
