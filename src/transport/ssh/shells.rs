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
//! A packed bundle's plain tar is the exception (`d<bytes>` in its frame,
//! padded to whole tar records, a `__CAIRN_STREAM_END__ <id>` line after
//! it): on hosts with GNU tar its command reads it from the loop's own
//! input, which tar reads to the stream's last byte and no further, so a
//! bundle crosses no extra pipe on the host. The loop then checks that
//! line: a tar that stopped midway (a full disk) leaves it unfound, and
//! the shell answers saying so and ends rather than read a bundle's bytes
//! as frames. Before a large stream the shell widens its input pipe, so
//! what sshd receives goes straight into it rather than waiting in a
//! channel buffer that OpenSSH grows at a quadratic cost (see
//! [`widen_input!`]).
//! Output goes to files in the shell's private folder (0700, in `/dev/shm`
//! when there is one, so a full disk does not stop cairn from running
//! commands), and comes back whole, one answer after another (see
//! [`Answers`]): on hosts with GNU tar, through one `tar` started with
//! the first command and living as long as the shell, handed each
//! finished command's file names, so framing an answer starts no process
//! on the host; elsewhere through `stat`, `flock` and `cat` per answer.
//! On an apply, the host lock's channel is the shell (see `SshLock`), so
//! a host costs one channel however many tasks it runs.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssh::{ChildStdin, ChildStdout, Session};
use tokio::io::unix::AsyncFd;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, Interest,
};
use tokio::sync::oneshot;

use crate::bundle::stream::Stream;
use crate::state::lock::HEARTBEAT_INTERVAL;
use crate::transport::{StreamTurn, TurnPass};

/// The size from which a stream has the shell widen its input pipe first
/// (see [`widen_input!`]), written out as `1048576` in [`SHELL_LOOP`]
/// (a test holds the two together). Below it, what waits in sshd costs
/// it less than starting `perl` does.
#[cfg(test)]
const WIDE_STREAM: u64 = 1 << 20;

/// Widens the shell's input (fd 0: the pipe sshd writes the channel's
/// data into) from 64 KiB to 4 MiB, or to `/proc/sys/fs/pipe-max-size`
/// (1 MiB by default) where the user may not go past it. Linux only; a
/// host without `perl` (or one refusing) keeps its pipe, and nothing else
/// changes.
///
/// Why: data that reaches sshd while the pipe is full waits in the
/// channel's buffer, up to the channel's window (2 MiB), and OpenSSH grows
/// that buffer 32 KiB at a time, copying all of it into freshly allocated
/// pages at each step: about 200 MB copied and page-faulted per 31 MB
/// bundle on the test hosts, most of sshd's CPU for a stream (see
/// docs/performance.md). With room in the pipe for the whole window, the
/// data goes straight into the pipe and the buffer stays small.
/// `F_SETPIPE_SZ` is 1031; `perl` (in `perl-base`, essential on Debian)
/// is the one common tool that can call `fcntl` on the shell's own input.
macro_rules! widen_input {
    () => {
        "perl -e 'exit unless $^O eq \"linux\"; exit if fcntl STDIN, 1031, 4194304; open my $m, \"<\", \"/proc/sys/fs/pipe-max-size\" or exit; my $n = <$m>; fcntl STDIN, 1031, int $n if $n' 2>/dev/null"
    };
}

/// What a channel whose first frame is written early runs first (see
/// `SshTransport::open_channel_with`): its input widened before the
/// frame's stream arrives, then [`WIDE_LINE`], for which the frame's
/// writer waits, so no byte of the stream has to wait in sshd.
pub(super) const WIDEN_FIRST: &str =
    concat!(widen_input!(), "\ncairn_wide=1\necho __CAIRN_WIDE__\n");

/// The line [`WIDEN_FIRST`] prints once the input is as wide as it gets.
pub(super) const WIDE_LINE: &str = "__CAIRN_WIDE__";

/// The loop a shell runs. In the lock's shell three variables are set:
/// `$cairn_hb`, the heartbeat file, touched by every frame and every idle
/// ping (a line that is not a frame), and every 10 s while a file stream
/// runs in the foreground (the loop reads no pings then); `$cairn_fl`, the
/// folder where each command in flight leaves `<pid> <timeout s> <label>`
/// until it ends, so the next run can say what it waits for if cairn dies;
/// and `$cairn_closed`, where the lock's owner line (`$cairn_lme`) is
/// written when cairn's side of the channel closes (it released the lock,
/// or died). Commands never inherit fd 9 (the
/// lock's `flock`), but the subshell waiting for each one does: the lock
/// stays held until every command of the run has ended. Every command
/// sees `$CAIRN_SHELL_PID` (the loop's pid) and `$CAIRN_SHELL_DIR` (its
/// private folder): a staging sent with the probe is named after the one
/// and listed in the other's `staged`, whose folders the loop removes when
/// it ends (those the task did not move into place). It also sees
/// `$CAIRN_UMASK`, the umask it started with, which a shipping that
/// writes files by `printf` puts back (see `ship::inline_script`).
///
/// How answers come back is said by the line `__CAIRN_ANSWERS__ tar` (or
/// `lines`) before the first (see [`Answers`]): with GNU tar, they are one
/// `tar` for the whole shell, reading the names of finished commands'
/// files from a FIFO, so an answer costs the host no process; elsewhere
/// each answer is a header line and the bytes, written by `stat`, `flock`
/// and `cat`. The writer starts with the first command, so a shell that
/// runs none (a no-op apply's) starts no process for it.
/// `$cairn_answers=lines` (set by tests) asks for the second.
///
/// Before the first stream of 1 MiB or more, the loop
/// widens its input pipe (see [`widen_input!`]), unless `$cairn_wide` says
/// the lock's script did so already.
pub(super) const SHELL_LOOP: &str = concat!(
    r#"cairn_w=
CAIRN_SHELL_PID=$$
export CAIRN_SHELL_PID
trap '[ -z "$cairn_w" ] || { if [ -s "$cairn_w/staged" ]; then while IFS= read -r cairn_x; do case "$cairn_x" in */.cairn-staging-*) [ ! -e "$cairn_x" ] || rm -rf "$cairn_x";; esac; done < "$cairn_w/staged"; fi; rm -rf "$cairn_w"; }' EXIT
# The private folder is made for the first command: a shell that runs none
# (a no-op apply's) makes none, and has none to remove.
cairn_make_dir() {
  cairn_w=$(umask 077; mktemp -d /dev/shm/.cairn-XXXXXX 2>/dev/null || mktemp -d "${TMPDIR:-/tmp}/.cairn-XXXXXX" 2>/dev/null) || {
    cairn_w=
    echo "__CAIRN_FAILED__ cannot make a private folder in /dev/shm or ${TMPDIR:-/tmp}: is it full or read-only?"
    exit 1
  }
  CAIRN_SHELL_DIR=$cairn_w
  # The umask commands start with, which a shipping script that sets the
  # umask to each file's mode puts back.
  CAIRN_UMASK=$(umask)
  export CAIRN_SHELL_DIR CAIRN_UMASK
}
cairn_answers=${cairn_answers:-}
cairn_start_answers() {
  [ "$cairn_answers" = lines ] || case $(tar --version 2>/dev/null) in "tar (GNU tar) "*) cairn_answers=tar;; *) cairn_answers=lines;; esac
  if [ "$cairn_answers" = tar ] && mkfifo "$cairn_w/answers" 2>/dev/null; then
    # Read-write: opening a FIFO so never waits for the other end. tar's
    # end is opened here too, before any name is written: a FIFO drops
    # what was written once no one has it open, so a shell that ended
    # before tar could open it by name would lose its answers.
    exec 8<>"$cairn_w/answers" 7<"$cairn_w/answers"
    tar -b 1 --numeric-owner --remove-files -C "$cairn_w" -c -f - -T - <&7 7<&- 8>&- 2>/dev/null &
    exec 7<&-
  else
    cairn_answers=lines
  fi
  echo "__CAIRN_ANSWERS__ $cairn_answers"
}
# One write of a few names to a pipe is atomic: answers never interleave.
# tar writes a name once it has read the next, so the empty z.<id> after
# each answer lets it go out whole at once.
cairn_emit_tar() {
  : > "$cairn_w/c.$1.$2"; : > "$cairn_w/z.$1"
  printf 'o.%s\ne.%s\nc.%s.%s\nz.%s\n' "$1" "$1" "$1" "$2" "$1" >&8
}
cairn_emit_lines() {
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
  # Before the script is read: the stream follows it at once.
  [ -n "${cairn_wide:-}" ] || [ "${3#d}" -lt 1048576 ] || { cairn_wide=1; "#,
    widen_input!(),
    r#"; }
  cairn_s=$(head -c "$2")
  # A script cut off by cairn's death mid-frame would run half: it must end
  # with the line cairn puts last, or nothing of it runs.
  case "$cairn_s" in *"
#__CAIRN_SCRIPT_END__") ;; *) cairn_s=; continue;; esac
  [ -n "${cairn_emit:-}" ] || { cairn_make_dir; cairn_start_answers; cairn_emit=cairn_emit_$cairn_answers; }
  cairn_t=
  [ "$4" -gt 0 ] && cairn_t="timeout -k 5 $4s"
  # `d<bytes>`: a plain tar in whole records, then a line that ends it.
  cairn_n=${3#d}
  if [ "$cairn_n" -gt 0 ]; then
    cairn_b=
    if [ -n "${cairn_hb:-}" ]; then
      { while sleep 10; do : > "$cairn_hb"; done; } > /dev/null 8>&- 9>&- &
      cairn_b=$!
    fi
    if [ "$cairn_n" != "$3" ] && [ "$cairn_answers" = tar ]; then
      # GNU tar reads such a stream to its last byte and no further: the
      # command reads it from this loop's own input, with no copy through
      # `head`, and says so by making the file named in $CAIRN_STREAM_TAKEN.
      CAIRN_STREAM_TAKEN="$cairn_w/t.$cairn_i" $cairn_t sh /dev/fd/3 8>&- 9>&- > "$cairn_w/o.$cairn_i" 2> "$cairn_w/e.$cairn_i" 3<<CAIRN_SCRIPT_END
$cairn_s
CAIRN_SCRIPT_END
      cairn_r=$?
      # Not taken (the command stopped before its tar): skipped here.
      [ -e "$cairn_w/t.$cairn_i" ] || head -c "$cairn_n" > /dev/null
    else
      head -c "$cairn_n" | { $cairn_t sh /dev/fd/3 8>&- 9>&- 3<<CAIRN_SCRIPT_END
$cairn_s
CAIRN_SCRIPT_END
        cairn_r=$?; IFS= read -r cairn_x && cat > /dev/null; exit $cairn_r; } > "$cairn_w/o.$cairn_i" 2> "$cairn_w/e.$cairn_i"
      cairn_r=$?
    fi
    [ -n "$cairn_b" ] && kill "$cairn_b" 2>/dev/null
    if [ "$cairn_n" != "$3" ] && { ! IFS= read -r cairn_x || [ "$cairn_x" != "__CAIRN_STREAM_END__ $cairn_i" ]; }; then
      # A tar that stopped midway left the rest of its stream unread: no
      # later frame can be found, so the shell ends, saying why.
      echo "cairn: the host's shell lost its place in its input (the command stopped reading its file stream midway); it ends" >> "$cairn_w/e.$cairn_i"
      $cairn_emit "$cairn_i" 1
      break
    fi
    $cairn_emit "$cairn_i" $cairn_r
  else
    {
      $cairn_t sh /dev/fd/3 8>&- 9>&- < /dev/null > "$cairn_w/o.$cairn_i" 2> "$cairn_w/e.$cairn_i" 3<<CAIRN_SCRIPT_END &
$cairn_s
CAIRN_SCRIPT_END
      [ -n "${cairn_fl:-}" ] && echo "$! $4 ${5:-}" > "$cairn_fl/$cairn_i"
      wait $!
      cairn_r=$?
      [ -n "${cairn_fl:-}" ] && : > "$cairn_fl/$cairn_i"
      $cairn_emit "$cairn_i" $cairn_r; } &
  fi
  cairn_s=
done
[ -n "${cairn_closed:-}" ] && printf '%s\n' "${cairn_lme:-}" > "$cairn_closed"
# The commands' own copies of the FIFO close as they end; then tar ends.
exec 8>&-
wait
"#
);

/// The line after a stream in whole records (`d<bytes>` in its frame),
/// with the frame's id: the loop finds it where the stream ends, or knows
/// the command stopped reading midway (see [`SHELL_LOOP`]).
const STREAM_END: &str = "__CAIRN_STREAM_END__";

/// A line that is not a frame: the loop only touches the lock's heartbeat
/// for it (see [`SHELL_LOOP`]).
const PING: &[u8] = b".\n";

/// The line every script sent ends with: the loop runs a script only when it
/// has it, so one cut off by cairn's death mid-frame never runs half.
const SCRIPT_END: &str = "\n#__CAIRN_SCRIPT_END__";

/// How a shell's answers come back, as its `__CAIRN_ANSWERS__` line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answers {
    /// `__CAIRN_DONE__ <id> <exit code> <stdout bytes> <stderr bytes>\n`
    /// and the bytes: a header line per answer, written under a `flock`.
    Lines,
    /// One tar stream for the whole shell (GNU tar, `-b 1`): per answer the
    /// members `o.<id>` (stdout), `e.<id>` (stderr), `c.<id>.<exit code>`
    /// (empty), then `z.<id>` (empty, skipped: tar writes a name once it
    /// has read the next, so this one carries the answer out whole).
    Tar,
}

impl Answers {
    /// The format the line before the first answer names.
    fn from_line(line: &str) -> Option<Answers> {
        match line.trim_end().strip_prefix("__CAIRN_ANSWERS__ ")? {
            "lines" => Some(Answers::Lines),
            "tar" => Some(Answers::Tar),
            _ => None,
        }
    }
}

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
    /// How its answers come, once the first is on its way.
    answers: Option<Answers>,
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
/// a future that makes its script, its stdin and the turn its stream waits
/// for (see `transport::turns`) (`None`: nothing to send).
pub(super) type EarlyFrame = std::pin::Pin<
    Box<dyn std::future::Future<Output = Option<(String, Arc<Stream>, Option<StreamTurn>)>> + Send>,
>;

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

/// Writes `frame` as frame 1 on `stdin` once `wide` says the host's input
/// is widened (see [`WIDEN_FIRST`]), then hands `stdin` back.
pub(super) fn write_early(
    mut stdin: ChildStdin,
    frame: EarlyFrame,
    wide: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<(ChildStdin, EarlyWrite)> {
    tokio::spawn(async move {
        // The stream is packed while the host starts its shell. A `wide`
        // never sent (the channel ended first) lets the write go and fail.
        let (frame, _) = tokio::join!(frame, wide);
        let Some((script, stream, turn)) = frame else {
            return (stdin, EarlyWrite::NothingToSend);
        };
        let pass = match turn {
            Some(turn) => match wait_for_turn(&mut stdin, &turn).await {
                Ok(pass) => Some(pass),
                Err(_) => return (stdin, EarlyWrite::CutOff),
            },
            None => None,
        };
        let written = write_frame(
            &mut stdin,
            EARLY_FRAME,
            &script,
            Some(&stream),
            // Cairn's own script, which ends by itself: no `timeout(1)`
            // there (see `SshTransport::exec_own`).
            None,
            None,
        )
        .await;
        // The stream is in the channel: the next host's may go.
        drop(pass);
        match written {
            Ok(()) => (stdin, EarlyWrite::Sent),
            Err(_) => (stdin, EarlyWrite::CutOff),
        }
    })
}

/// Waits for `turn`, pinging the shell meanwhile: it is the lock's, whose
/// heartbeat must not go stale while its first frame waits (another run
/// would take the holder for dead).
async fn wait_for_turn(stdin: &mut ChildStdin, turn: &StreamTurn) -> std::io::Result<TurnPass> {
    let take = turn.take();
    tokio::pin!(take);
    let mut beat = tokio::time::interval(HEARTBEAT_INTERVAL);
    // An interval's first tick is at once: the shell was just started.
    beat.tick().await;
    loop {
        tokio::select! {
            pass = &mut take => return Ok(pass),
            _ = beat.tick() => {
                stdin.write_all(PING).await?;
                stdin.flush().await?;
            }
        }
    }
}

/// How long cairn waits for one of its own short scripts (a receipt, a
/// look for `zstd`) before taking the host as no longer answering.
pub(super) const OWN_WAIT: Duration = Duration::from_secs(70);

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

/// How long a command whose frame was cut off waits for the answer the
/// shell may have sent before it stopped reading.
const ANSWER_AFTER_CUT_OFF: Duration = Duration::from_secs(5);

/// The id of a shell's early frame; the shell numbers the others after it.
const EARLY_FRAME: u64 = 1;

/// A channel whose loop has said it is ready.
pub(super) struct Started {
    pub child: openssh::Child<Arc<Session>>,
    pub input: ShellInput,
    pub stdout: BufReader<ChildStdout>,
}

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
        started: Started,
        holds_lock: bool,
    ) -> (Arc<Shell>, Option<oneshot::Receiver<Ran>>) {
        let Started {
            child,
            input,
            stdout,
        } = started;
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
        data: Option<&Stream>,
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
            match self.send(id, script, data, timeout, label).await {
                Ok(()) => {}
                // Cut off midway: a shell that stopped reading (a tar that
                // stopped midway ends it) answers first, saying why.
                Err((lost, true)) => {
                    return match tokio::time::timeout(ANSWER_AFTER_CUT_OFF, rx).await {
                        Ok(Ok(ran)) => Ok(ran),
                        _ => Err(lost),
                    };
                }
                Err((lost, false)) => return Err(lost),
            }
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
    /// An error says whether any of the frame was written.
    async fn send(
        &self,
        id: u64,
        script: &str,
        data: Option<&Stream>,
        timeout: Option<Duration>,
        label: Option<&str>,
    ) -> Result<(), (Broken, bool)> {
        let mut guard = self.stdin.lock().await;
        let stdin = guard
            .as_mut()
            .ok_or_else(|| (Broken::Lost("the shell is closed".into()), false))?;
        if self.broken.load(Ordering::SeqCst) {
            return Err((
                Broken::Lost("an earlier command was cut off mid-write".into()),
                false,
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
            .map_err(|e| (Broken::Lost(e.to_string()), true))?;
        cut_off.written = true;
        Ok(())
    }

    /// A line that is not a frame: the lock's shell touches its heartbeat.
    pub(super) async fn ping(&self) -> bool {
        let mut guard = self.stdin.lock().await;
        match guard.as_mut() {
            Some(stdin) => stdin.write_all(PING).await.is_ok() && stdin.flush().await.is_ok(),
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
    stdin: &mut (impl AsyncWrite + AsFd + Unpin),
    id: u64,
    script: &str,
    data: Option<&Stream>,
    timeout: Option<Duration>,
    label: Option<&str>,
) -> std::io::Result<()> {
    let whole_records = data.is_some_and(|d| d.whole_records);
    let header = format!(
        "__CAIRN_RUN__ {id} {} {}{} {}{}\n",
        script.len() + SCRIPT_END.len(),
        if whole_records { "d" } else { "" },
        data.map_or(0, Stream::len),
        timeout.map_or(0, |t| t.as_secs().max(1)),
        label.map(frame_label).unwrap_or_default()
    );
    stdin.write_all(header.as_bytes()).await?;
    stdin.write_all(script.as_bytes()).await?;
    stdin.write_all(SCRIPT_END.as_bytes()).await?;
    if let Some(data) = data {
        write_stream(stdin, data).await?;
        if whole_records {
            stdin
                .write_all(format!("{STREAM_END} {id}\n").as_bytes())
                .await?;
        }
    }
    stdin.flush().await
}

/// How much of a packed stream goes per splice, or per write where it is
/// copied (then every host shipping at once holds one such buffer).
const STREAM_CHUNK: usize = 64 * 1024;

/// Puts a packed stream onto a channel's pipe: spliced, page by page from
/// the page cache into the pipe, where the kernel allows it; otherwise
/// copied through a buffer.
async fn write_stream(
    out: &mut (impl AsyncWrite + AsFd + Unpin),
    stream: &Stream,
) -> std::io::Result<()> {
    let offset = splice_stream(out, stream).await?;
    if offset < stream.len() {
        copy_stream(out, stream, offset).await?;
    }
    Ok(())
}

/// Moves `stream` from its file into the pipe `out` with `splice(2)`, and
/// returns how far it got: all of it, or 0 where the file's filesystem
/// cannot splice (then it is copied instead).
///
/// Copying read every byte into cairn and wrote it out again: two copies
/// of a 31 MB bundle for every host (about 6 ms of cairn's CPU a host in
/// the benchmark's cold apply). Spliced, the pages go to the pipe without
/// passing through cairn. The pipe is the channel's, and non-blocking: a duplicate of it
/// is registered with tokio to wait until it has room.
async fn splice_stream(out: &impl AsFd, stream: &Stream) -> std::io::Result<u64> {
    let duplicate = out.as_fd().try_clone_to_owned()?;
    // SAFETY: an `OwnedFd` stays open, as the same descriptor, until the
    // `AsyncFd` that owns it is dropped.
    let pipe = unsafe { AsyncFd::register_with_interest(duplicate, Interest::WRITABLE) }?;
    let source = stream.file().as_raw_fd();
    let mut offset: u64 = 0;
    while offset < stream.len() {
        let mut ready = pipe.writable().await?;
        let want = usize::try_from(stream.len() - offset)
            .unwrap_or(usize::MAX)
            .min(STREAM_CHUNK);
        let moved = ready.try_io(|pipe| {
            let mut at = i64::try_from(offset).map_err(std::io::Error::other)?;
            // SAFETY: both descriptors are open for the call (the stream's
            // file and the pipe's duplicate are borrowed and owned here);
            // `at` is a valid offset for the kernel to advance.
            let n = unsafe {
                libc::splice(
                    source,
                    &raw mut at,
                    pipe.as_raw_fd(),
                    std::ptr::null_mut(),
                    want,
                    libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
                )
            };
            usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
        });
        match moved {
            Ok(Ok(0)) => return Err(Stream::shorter_than_written()),
            Ok(Ok(n)) => offset += n as u64,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // This filesystem (the stream's $TMPDIR) cannot splice: nothing
            // went, so all of it is copied.
            Ok(Err(e)) if offset == 0 && e.raw_os_error() == Some(libc::EINVAL) => return Ok(0),
            Ok(Err(e)) => return Err(e),
            // The pipe filled up: wait for room again.
            Err(_would_block) => {}
        }
    }
    Ok(offset)
}

/// Copies a packed stream from its file onto a channel from `offset` on, a
/// chunk at a time. The read blocks, briefly: the file was just written,
/// so its pages are in the page cache (a host shipping it reads what the
/// one before read).
async fn copy_stream(
    out: &mut (impl AsyncWrite + Unpin),
    stream: &Stream,
    mut offset: u64,
) -> std::io::Result<()> {
    let mut chunk = vec![0; STREAM_CHUNK];
    while offset < stream.len() {
        let n = stream.read_at(&mut chunk, offset)?;
        out.write_all(&chunk[..n]).await?;
        offset += n as u64;
    }
    Ok(())
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
async fn read_answers<R>(mut stdout: R, pending: Arc<Mutex<Pending>>)
where
    R: AsyncBufRead + Unpin,
{
    let deliver = |id: u64, ran: Ran| {
        let waiter = pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .waiting
            .remove(&id);
        // No one waits for an answer that came after its time limit.
        if let Some(tx) = waiter {
            let _ = tx.send(ran);
        }
    };
    let mut line = String::new();
    let why = match stdout.read_line(&mut line).await {
        Ok(0) => "the host's shell ended (the connection closed)".to_string(),
        Err(e) => format!("the connection failed: {e}"),
        Ok(_) if line.starts_with("__CAIRN_FAILED__ ") => format!(
            "the host's shell stopped: {}",
            line["__CAIRN_FAILED__ ".len()..].trim_end()
        ),
        Ok(_) => match Answers::from_line(&line) {
            Some(answers) => {
                pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .answers = Some(answers);
                match answers {
                    Answers::Lines => read_line_answers(stdout, deliver).await,
                    Answers::Tar => read_tar_answers(stdout, deliver).await,
                }
            }
            None => format!("unexpected answer from the host: {}", line.trim_end()),
        },
    };
    let mut pending = pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    pending.ended = Some(why);
    // Dropping the senders tells every waiting command.
    pending.waiting.clear();
}

/// Reads [`Answers::Lines`] until the stream ends; says why it did.
async fn read_line_answers<R>(mut stdout: R, deliver: impl Fn(u64, Ran)) -> String
where
    R: AsyncBufRead + Unpin,
{
    loop {
        let mut line = String::new();
        match stdout.read_line(&mut line).await {
            Ok(0) => return "the host's shell ended (the connection closed)".to_string(),
            Err(e) => return format!("the connection failed: {e}"),
            Ok(_) => {}
        }
        let Some(Answer {
            id,
            code,
            out_len,
            err_len,
        }) = Answer::parse(&line)
        else {
            return format!("unexpected answer from the host: {}", line.trim_end());
        };
        let mut stdout_bytes = vec![0; out_len];
        let mut stderr_bytes = vec![0; err_len];
        if let Err(e) = stdout.read_exact(&mut stdout_bytes).await {
            return format!("the connection failed: {e}");
        }
        if let Err(e) = stdout.read_exact(&mut stderr_bytes).await {
            return format!("the connection failed: {e}");
        }
        deliver(
            id,
            Ran {
                code,
                stdout: stdout_bytes,
                stderr: stderr_bytes,
            },
        );
    }
}

/// One member of an [`Answers::Tar`] stream, by its name.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Stdout(u64),
    Stderr(u64),
    /// The command ended with this code: its answer is whole.
    Code(u64, i32),
    /// Carries the answer before it out of tar's read-ahead; ignored.
    Trailer,
}

impl Part {
    fn of(name: &[u8]) -> Option<Part> {
        let name = std::str::from_utf8(name).ok()?;
        let (kind, rest) = name.split_once('.')?;
        Some(match kind {
            "o" => Part::Stdout(rest.parse().ok()?),
            "e" => Part::Stderr(rest.parse().ok()?),
            "c" => {
                let (id, code) = rest.split_once('.')?;
                Part::Code(id.parse().ok()?, code.parse().ok()?)
            }
            "z" => {
                rest.parse::<u64>().ok()?;
                Part::Trailer
            }
            _ => return None,
        })
    }
}

/// A tar header block: which member it starts and how many bytes follow
/// (before padding); `Ok(None)` for a block of zeros (the end of the stream).
fn tar_member(block: &[u8; 512]) -> Result<Option<(Part, u64)>, String> {
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let header = tar::Header::from_byte_slice(block);
    // A header's checksum counts its own field as spaces.
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    if header.cksum().ok() != Some(sum) {
        return Err("a damaged answer header".into());
    }
    let name = header.path_bytes();
    let part = Part::of(&name)
        .ok_or_else(|| format!("an unexpected answer: {}", String::from_utf8_lossy(&name)))?;
    let size = header
        .entry_size()
        .map_err(|e| format!("an answer's size: {e}"))?;
    Ok(Some((part, size)))
}

/// Reads [`Answers::Tar`] until the stream ends; says why it did.
async fn read_tar_answers<R>(mut stdout: R, deliver: impl Fn(u64, Ran)) -> String
where
    R: AsyncBufRead + Unpin,
{
    // An answer's output, until its code comes.
    let mut outputs: HashMap<u64, (Vec<u8>, Vec<u8>)> = HashMap::new();
    loop {
        let mut block = [0u8; 512];
        match stdout.read_exact(&mut block).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return "the host's shell ended (the connection closed)".to_string();
            }
            Err(e) => return format!("the connection failed: {e}"),
        }
        let (part, size) = match tar_member(&block) {
            Ok(Some(member)) => member,
            Ok(None) => continue,
            Err(why) => return format!("unexpected answer from the host: {why}"),
        };
        let Ok(size) = usize::try_from(size) else {
            return format!("unexpected answer from the host: {size} bytes");
        };
        let mut bytes = vec![0; size.next_multiple_of(512)];
        if let Err(e) = stdout.read_exact(&mut bytes).await {
            return format!("the connection failed: {e}");
        }
        bytes.truncate(size);
        match part {
            Part::Stdout(id) => outputs.entry(id).or_default().0 = bytes,
            Part::Stderr(id) => outputs.entry(id).or_default().1 = bytes,
            Part::Code(id, code) => {
                let (stdout, stderr) = outputs.remove(&id).unwrap_or_default();
                deliver(
                    id,
                    Ran {
                        code,
                        stdout,
                        stderr,
                    },
                );
            }
            Part::Trailer => {}
        }
    }
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

/// Drives [`SHELL_LOOP`] with `sh` on this machine through the frame
/// writer and answer readers a host's shell uses: for the loop's tests and
/// those of the scripts that run on it.
#[cfg(test)]
pub(super) mod test_loop {
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::sync::oneshot;

    use super::{Answers, Pending, Ran, SHELL_LOOP, read_answers, write_frame};

    /// Writes an executable `dir/name` holding `script`: a tool that stands
    /// for the host's own when `dir` comes first on `PATH`.
    pub(in crate::transport::ssh) fn fake_tool(dir: &std::path::Path, name: &str, script: &str) {
        let fake = dir.join(name);
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    /// `dir`, then this process's `PATH`.
    pub(in crate::transport::ssh) fn path_before(dir: &std::path::Path) -> String {
        format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    pub(in crate::transport::ssh) struct TestLoop {
        child: tokio::process::Child,
        pub(in crate::transport::ssh) stdin: tokio::process::ChildStdin,
        pending: Arc<Mutex<Pending>>,
        next: u64,
    }

    impl TestLoop {
        /// The loop, started and ready, with `env` set (`cairn_answers=lines`
        /// asks for answers as lines).
        pub(in crate::transport::ssh) async fn start(env: &[(&str, &std::ffi::OsStr)]) -> TestLoop {
            let mut command = tokio::process::Command::new("sh");
            command
                .arg("-c")
                .arg(SHELL_LOOP)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            for (name, value) in env {
                command.env(name, value);
            }
            let mut child = command.spawn().expect("sh starts");
            let stdin = child.stdin.take().unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            stdout.read_line(&mut line).await.unwrap();
            assert_eq!(line, "__CAIRN_READY__\n");
            let pending = Arc::new(Mutex::new(Pending::default()));
            tokio::spawn(read_answers(stdout, pending.clone()));
            TestLoop {
                child,
                stdin,
                pending,
                next: 1,
            }
        }

        /// How the loop answers, once a command was sent and answered.
        pub(in crate::transport::ssh) fn answers(&self) -> Option<Answers> {
            self.pending.lock().unwrap().answers
        }

        /// Why the loop's answers ended, once they have.
        pub(in crate::transport::ssh) fn ended(&self) -> Option<String> {
            self.pending.lock().unwrap().ended.clone()
        }

        /// The id the next frame sent gets.
        pub(in crate::transport::ssh) fn next_id(&self) -> u64 {
            self.next
        }

        /// Sends one frame; its answer comes on the receiver (dropped unsent
        /// if the loop ends first).
        pub(in crate::transport::ssh) async fn send(
            &mut self,
            script: &str,
            data: &[u8],
            timeout_s: u64,
            label: Option<&str>,
        ) -> oneshot::Receiver<Ran> {
            let id = self.next;
            self.next += 1;
            let (tx, rx) = oneshot::channel();
            self.pending.lock().unwrap().waiting.insert(id, tx);
            let data = (!data.is_empty()).then(|| super::Stream::from_bytes(data).unwrap());
            let timeout = (timeout_s > 0).then(|| Duration::from_secs(timeout_s));
            write_frame(&mut self.stdin, id, script, data.as_ref(), timeout, label)
                .await
                .unwrap();
            rx
        }

        /// Sends `stream` (a plain tar in whole records) as a frame's
        /// stream, as a packed bundle goes, and waits for the answer.
        pub(in crate::transport::ssh) async fn run_stream(
            &mut self,
            script: &str,
            stream: &[u8],
        ) -> Ran {
            let id = self.next;
            self.next += 1;
            let (tx, rx) = oneshot::channel();
            self.pending.lock().unwrap().waiting.insert(id, tx);
            let mut data = super::Stream::from_bytes(stream).unwrap();
            data.whole_records = true;
            // The loop may end midway (the test of a tar that stops): then
            // its answer, not the write, says what happened.
            let _ = write_frame(&mut self.stdin, id, script, Some(&data), None, None).await;
            tokio::time::timeout(Duration::from_secs(60), rx)
                .await
                .expect("an answer within a minute")
                .expect("the loop answers")
        }

        /// Sends one frame and waits for its answer.
        pub(in crate::transport::ssh) async fn run(
            &mut self,
            script: &str,
            data: &[u8],
            timeout_s: u64,
        ) -> Ran {
            let answer = self.send(script, data, timeout_s, None).await;
            tokio::time::timeout(Duration::from_secs(60), answer)
                .await
                .expect("an answer within a minute")
                .expect("the loop answers")
        }

        /// Ends cairn's input and waits for the loop to end; whether it succeeded.
        pub(in crate::transport::ssh) async fn finish(self) -> bool {
            let TestLoop {
                mut child, stdin, ..
            } = self;
            drop(stdin);
            child.wait().await.unwrap().success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_loop::{TestLoop, fake_tool, path_before};
    use super::{Answers, CutOff, Part, SHELL_LOOP, WIDE_LINE, WIDE_STREAM, WIDEN_FIRST};
    use std::ffi::OsStr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncWriteExt;

    /// Both ways the loop answers: GNU tar when the host has it (this
    /// machine does), lines otherwise.
    async fn loops() -> Vec<(Answers, TestLoop)> {
        let with_tar = TestLoop::start(&[]).await;
        let lines = TestLoop::start(&[("cairn_answers", OsStr::new("lines"))]).await;
        vec![(Answers::Tar, with_tar), (Answers::Lines, lines)]
    }

    fn text(ran: &super::Ran) -> (i32, String, String) {
        (
            ran.code,
            String::from_utf8_lossy(&ran.stdout).into_owned(),
            String::from_utf8_lossy(&ran.stderr).into_owned(),
        )
    }

    /// A stream many times a pipe's size is spliced into it whole, in
    /// order, while the other end reads slowly (the pipe fills, and the
    /// splice waits for room), not copied through cairn.
    #[tokio::test]
    async fn a_packed_stream_is_spliced_into_a_pipe_whole() {
        use tokio::io::AsyncReadExt;
        let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let stream = crate::bundle::stream::Stream::from_bytes(&bytes).unwrap();
        let (mut sender, mut receiver) = tokio::net::unix::pipe::pipe().unwrap();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut piece = vec![0; 4096];
            loop {
                tokio::time::sleep(std::time::Duration::from_micros(200)).await;
                match receiver.read(&mut piece).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&piece[..n]),
                }
            }
        });
        let spliced = super::splice_stream(&sender, &stream).await.unwrap();
        assert_eq!(
            spliced,
            bytes.len() as u64,
            "all of it spliced, none copied"
        );
        sender.shutdown().await.unwrap();
        drop(sender);
        assert!(
            reader.await.unwrap() == bytes,
            "the bytes arrive whole and in order"
        );
    }

    /// Frames in, answers out, in both answer formats.
    #[tokio::test]
    async fn the_loop_runs_framed_commands_and_keeps_in_step() {
        for (how, mut shell) in loops().await {
            assert_eq!(shell.answers(), None, "no writer before the first command");
            assert_eq!(
                text(&shell.run("echo out; echo err >&2; exit 3", b"", 0).await),
                (3, "out\n".into(), "err\n".into()),
                "{how:?}"
            );
            // This machine has GNU tar.
            assert_eq!(shell.answers(), Some(how));
            // Data is the command's stdin; what it does not read is drained.
            assert_eq!(text(&shell.run("head -c 3", b"abcdef", 0).await).1, "abc");
            let unread = b"unread data\n__CAIRN_RUN__ 1 0 0\n";
            assert_eq!(shell.run("true", unread, 0).await.code, 0);
            // Nothing leaks from one command to the next; `$` in a script is
            // not expanded by the loop.
            assert_eq!(shell.run("x=1; cd /", b"", 0).await.code, 0);
            assert_eq!(
                text(&shell.run("echo \"[${x:-unset}]\" '$HOME'", b"", 0).await).1,
                "[unset] $HOME\n"
            );
            // A time limit stops the command (timeout(1) exits 124).
            assert_eq!(shell.run("sleep 5", b"", 1).await.code, 124);
            assert_eq!(
                text(&shell.run("echo still in step", b"", 0).await).1,
                "still in step\n"
            );
            // Output of any size and any bytes comes back as it was.
            let bytes = shell
                .run("i=0; while [ $i -lt 2000 ]; do printf 'x\\000y'; i=$((i+1)); done; printf z >&2", b"", 0)
                .await;
            assert_eq!(bytes.stdout, b"x\0y".repeat(2000), "{how:?}");
            assert_eq!(bytes.stderr, b"z");
            // Commands without input run at once: the quick one answers first.
            let slow = shell.send("sleep 0.5; echo slow", b"", 0, None).await;
            let quick = shell.send("echo quick", b"", 0, None).await;
            let mut slow = std::pin::pin!(slow);
            tokio::select! {
                ran = &mut slow => panic!("the slow one answered first: {ran:?}"),
                ran = quick => assert_eq!(text(&ran.unwrap()).1, "quick\n"),
            }
            assert_eq!(text(&slow.await.unwrap()).1, "slow\n");
            assert!(shell.finish().await, "{how:?}");
        }
    }

    /// A host whose `tar` is not GNU tar's gets its answers as lines.
    #[tokio::test]
    async fn a_host_without_gnu_tar_answers_in_lines() {
        let dir = tempfile::tempdir().unwrap();
        fake_tool(
            dir.path(),
            "tar",
            "#!/bin/sh\necho 'bsdtar 3.6.2 - libarchive 3.6.2'\n",
        );
        let path = path_before(dir.path());
        let mut shell = TestLoop::start(&[("PATH", OsStr::new(&path))]).await;
        assert_eq!(text(&shell.run("echo hi", b"", 0).await).1, "hi\n");
        assert_eq!(shell.answers(), Some(Answers::Lines));
        assert!(shell.finish().await);
    }

    /// A `PATH` whose `mktemp` logs each call to `calls` and then runs
    /// `then` (the real one, or `exit 1`).
    fn logging_mktemp(dir: &std::path::Path, calls: &std::path::Path, then: &str) -> String {
        fake_tool(
            dir,
            "mktemp",
            &format!("#!/bin/sh\necho \"$@\" >> '{}'\n{then}\n", calls.display()),
        );
        path_before(dir)
    }

    /// The private folder is made for the first command: a shell that runs
    /// none (a no-op apply's) starts no process for it; one that cannot
    /// make it stops, saying why, rather than run commands it cannot answer.
    #[tokio::test]
    async fn the_private_folder_is_made_for_the_first_command_only() {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let path = logging_mktemp(dir.path(), &calls, "exec /usr/bin/mktemp \"$@\"");
        let idle = TestLoop::start(&[("PATH", OsStr::new(&path))]).await;
        assert!(idle.finish().await);
        assert!(!calls.exists(), "a shell that ran nothing made a folder");
        let mut shell = TestLoop::start(&[("PATH", OsStr::new(&path))]).await;
        assert_eq!(text(&shell.run("echo one", b"", 0).await).1, "one\n");
        assert_eq!(text(&shell.run("echo two", b"", 0).await).1, "two\n");
        let made = std::fs::read_to_string(&calls).unwrap();
        assert_eq!(made.lines().count(), 1, "one folder per shell: {made}");
        assert!(shell.finish().await);

        let full = tempfile::tempdir().unwrap();
        let calls = full.path().join("calls");
        let path = logging_mktemp(full.path(), &calls, "exit 1");
        let mut shell = TestLoop::start(&[("PATH", OsStr::new(&path))]).await;
        let answer = shell.send("echo never", b"", 0, None).await;
        assert!(answer.await.is_err(), "no answer without a folder");
        let why = shell.ended().unwrap_or_default();
        assert!(
            why.contains("cannot make a private folder in /dev/shm"),
            "{why}"
        );
        assert!(!shell.finish().await, "the loop exits non-zero");
    }

    /// Many commands at once, each with more output than a pipe holds:
    /// no answer runs into another.
    #[tokio::test]
    async fn answers_at_once_never_interleave() {
        for (_, mut shell) in loops().await {
            let mut waiting = Vec::new();
            for n in 0..16 {
                let script = format!(
                    "i=0; while [ $i -lt 3000 ]; do echo {n}{n}{n}{n}{n}{n}{n}{n}; i=$((i+1)); done"
                );
                waiting.push((n, shell.send(&script, b"", 0, None).await));
            }
            for (n, answer) in waiting {
                let ran = answer.await.unwrap();
                let line = format!("{n}{n}{n}{n}{n}{n}{n}{n}\n");
                assert_eq!(ran.stdout, line.repeat(3000).as_bytes(), "command {n}");
            }
            assert!(shell.finish().await);
        }
    }

    /// cairn dies while writing a frame: the part of the script that came
    /// is not run (it would run half of what was meant), and the loop ends.
    #[tokio::test]
    async fn a_script_cut_off_mid_frame_does_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        for (_, mut shell) in loops().await {
            // The whole script would touch the marker, then record its receipt.
            let script = format!("touch {}\necho receipt written", marker.display());
            let whole = script.len() + super::SCRIPT_END.len();
            let frame = format!("__CAIRN_RUN__ 1 {whole} 0 0\n{script}");
            shell.stdin.write_all(frame.as_bytes()).await.unwrap();
            assert!(shell.finish().await);
            assert!(!marker.exists(), "half a script ran");
        }
    }

    /// In the lock's shell, each command in flight is recorded with its pid,
    /// time limit and task until it ends, and the end of cairn's input is marked.
    #[tokio::test]
    async fn the_locks_shell_records_what_is_in_flight_and_when_cairn_left() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("inflight");
        std::fs::create_dir(&records).unwrap();
        let closed = dir.path().join("closed");
        let heartbeat = dir.path().join("heartbeat");
        let mut shell = TestLoop::start(&[
            ("cairn_fl", records.as_os_str()),
            ("cairn_closed", closed.as_os_str()),
            ("cairn_lme", OsStr::new("{\"owner\":1}")),
            ("cairn_hb", heartbeat.as_os_str()),
        ])
        .await;
        // The command waits for its own record, prints it, and ends.
        let id = shell.next_id();
        let script = format!(
            "while [ ! -s {r}/{id} ]; do sleep 0.01; done; cat {r}/{id}",
            r = records.display()
        );
        let answer = shell
            .send(&script, b"", 30, Some("step.init@m*0 [x]"))
            .await;
        let record = String::from_utf8(answer.await.unwrap().stdout).unwrap();
        let fields: Vec<&str> = record.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{record}");
        assert!(fields[0].parse::<u32>().is_ok(), "a pid: {record}");
        assert_eq!(&fields[1..], ["30", "step.init@m_0__x_"]);
        assert!(heartbeat.exists(), "a frame touches the heartbeat");
        // Emptied once it ended; the end of input is marked.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(records.join(id.to_string()))
            .unwrap()
            .len()
            > 0
        {
            assert!(std::time::Instant::now() < deadline, "record not emptied");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!closed.exists());
        assert!(shell.finish().await);
        assert_eq!(
            std::fs::read_to_string(&closed).unwrap(),
            "{\"owner\":1}\n",
            "the end of cairn's input is marked with the lock's owner"
        );
    }

    #[test]
    fn tar_answers_are_read_by_their_member_names() {
        assert_eq!(Part::of(b"o.12"), Some(Part::Stdout(12)));
        assert_eq!(Part::of(b"e.12"), Some(Part::Stderr(12)));
        assert_eq!(Part::of(b"c.12.124"), Some(Part::Code(12, 124)));
        assert_eq!(Part::of(b"z.12"), Some(Part::Trailer));
        for wrong in [&b"o.x"[..], b"c.12", b"q.1", b"../etc/passwd", b"o.1.2"] {
            assert_eq!(Part::of(wrong), None, "{}", String::from_utf8_lossy(wrong));
        }
        let mut header = tar::Header::new_gnu();
        header.set_path("c.3.0").unwrap();
        header.set_size(0);
        header.set_cksum();
        let mut block = [0u8; 512];
        block.copy_from_slice(header.as_bytes());
        assert_eq!(super::tar_member(&block), Ok(Some((Part::Code(3, 0), 0))));
        block[0] = b'd';
        assert!(super::tar_member(&block).is_err(), "a damaged checksum");
        assert_eq!(super::tar_member(&[0; 512]), Ok(None));
    }

    /// A plain tar of `files` (name, content) in whole records, as
    /// `bundle::stream` packs one.
    fn tar_in_records(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_size(content.len() as u64);
            tar.append_data(&mut header, name, *content).unwrap();
        }
        let mut bytes = tar.into_inner().unwrap();
        let record = usize::try_from(crate::bundle::stream::TAR_RECORD).unwrap();
        bytes.resize(bytes.len().next_multiple_of(record), 0);
        bytes
    }

    /// A stream in whole records: with GNU tar, the command reads it from
    /// the loop's own input; a command that never starts its tar has it
    /// skipped for it. Either way the next frame is found.
    #[tokio::test]
    async fn a_stream_tar_reads_from_the_shell_itself_leaves_the_loop_in_step() {
        let big: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let stream = tar_in_records(&[("a", b"alpha\n"), ("big", &big)]);
        for (how, mut shell) in loops().await {
            let out = tempfile::tempdir().unwrap();
            let unpack = format!(
                "set -e\n: > \"${{CAIRN_STREAM_TAKEN:-/dev/null}}\"\ntar -x -m -B -b 20 -f - -C '{}'\nexec < /dev/null\necho \"taken:${{CAIRN_STREAM_TAKEN:+yes}}\"",
                out.path().display()
            );
            let ran = shell.run_stream(&unpack, &stream).await;
            assert_eq!(ran.code, 0, "{how:?}: {:?}", text(&ran));
            let direct = if how == Answers::Tar { "yes" } else { "" };
            assert_eq!(text(&ran).1, format!("taken:{direct}\n"), "{how:?}");
            assert_eq!(std::fs::read(out.path().join("big")).unwrap(), big);
            assert_eq!(
                text(&shell.run("echo in step", b"", 0).await).1,
                "in step\n",
                "{how:?}"
            );
            // Stopped before its tar: the loop skips the stream itself.
            let ran = shell.run_stream("exit 4", &stream).await;
            assert_eq!(ran.code, 4, "{how:?}");
            assert_eq!(
                text(&shell.run("echo still in step", b"", 0).await).1,
                "still in step\n",
                "{how:?}"
            );
            assert!(shell.finish().await, "{how:?}");
        }
    }

    /// The size of the pipe whose end `end` is.
    fn pipe_size(end: &impl std::os::fd::AsRawFd) -> i32 {
        // SAFETY: F_GETPIPE_SZ only reads the size of the open pipe.
        unsafe { libc::fcntl(end.as_raw_fd(), libc::F_GETPIPE_SZ) }
    }

    /// The size of the pipe a loop reads its input from, asked at cairn's end.
    fn input_pipe_size(shell: &TestLoop) -> i32 {
        pipe_size(&shell.stdin)
    }

    /// A command that takes its stream from the loop's input and unpacks
    /// it into `dir`.
    fn unpack_into(dir: &std::path::Path) -> String {
        format!(
            ": > \"$CAIRN_STREAM_TAKEN\"\ntar -x -m -B -b 20 -f - -C '{}'",
            dir.display()
        )
    }

    /// The loop widens its input pipe before the first stream of
    /// `WIDE_STREAM` bytes or more (so what sshd receives goes straight
    /// into it), never for a smaller one, and stays in step either way.
    #[tokio::test]
    async fn a_large_stream_has_the_shell_widen_its_input_first() {
        assert!(
            SHELL_LOOP.contains(&format!("-lt {WIDE_STREAM} ]")),
            "the loop's threshold is WIDE_STREAM"
        );
        assert!(
            std::process::Command::new("perl")
                .arg("-v")
                .output()
                .is_ok(),
            "this test needs perl, as a Debian host has it"
        );
        let out = tempfile::tempdir().unwrap();
        let mut shell = TestLoop::start(&[]).await;
        let default = input_pipe_size(&shell);
        assert_eq!(default, 65536, "a fresh pipe");
        let small = tar_in_records(&[("small", &vec![1u8; 200_000])]);
        assert_eq!(
            shell
                .run_stream(&unpack_into(out.path()), &small)
                .await
                .code,
            0
        );
        assert_eq!(input_pipe_size(&shell), default, "a small stream leaves it");
        let size = usize::try_from(WIDE_STREAM).unwrap();
        let large: Vec<u8> = (0..size).map(|i| u8::try_from(i % 253).unwrap()).collect();
        let stream = tar_in_records(&[("large", &large)]);
        assert_eq!(
            shell
                .run_stream(&unpack_into(out.path()), &stream)
                .await
                .code,
            0
        );
        assert_eq!(std::fs::read(out.path().join("large")).unwrap(), large);
        let widened = input_pipe_size(&shell);
        assert!(widened >= 1 << 20, "widened to at least 1 MiB: {widened}");
        assert_eq!(
            text(&shell.run("echo in step", b"", 0).await).1,
            "in step\n"
        );
        assert!(shell.finish().await);
    }

    /// A host without `perl` keeps its pipe: the stream still arrives
    /// whole, the loop stays in step, and `WIDEN_FIRST` still says it is done.
    #[tokio::test]
    async fn a_host_without_perl_keeps_its_pipe_and_its_step() {
        let dir = tempfile::tempdir().unwrap();
        fake_tool(
            dir.path(),
            "perl",
            "#!/bin/sh\necho 'perl: not here' >&2\nexit 127\n",
        );
        let path = path_before(dir.path());
        let out = tempfile::tempdir().unwrap();
        let mut shell = TestLoop::start(&[("PATH", OsStr::new(&path))]).await;
        let size = usize::try_from(WIDE_STREAM).unwrap() + 1;
        let large: Vec<u8> = (0..size).map(|i| u8::try_from(i % 241).unwrap()).collect();
        let stream = tar_in_records(&[("large", &large)]);
        let ran = shell.run_stream(&unpack_into(out.path()), &stream).await;
        assert_eq!(text(&ran), (0, String::new(), String::new()));
        assert_eq!(std::fs::read(out.path().join("large")).unwrap(), large);
        assert_eq!(input_pipe_size(&shell), 65536);
        assert!(shell.finish().await);

        let first = std::process::Command::new("sh")
            .arg("-c")
            .arg(WIDEN_FIRST)
            .env("PATH", &path)
            .stdin(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            (
                String::from_utf8_lossy(&first.stdout).trim(),
                first.stderr.is_empty()
            ),
            (WIDE_LINE, true)
        );
    }

    /// `WIDEN_FIRST` widens the pipe it reads from before it says so.
    #[test]
    fn widen_first_widens_before_it_says_so() {
        use std::io::Read;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{WIDEN_FIRST}exec sleep 30"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = [0u8; WIDE_LINE.len() + 1];
        child.stdout.take().unwrap().read_exact(&mut line).unwrap();
        assert_eq!(line, format!("{WIDE_LINE}\n").as_bytes());
        let size = pipe_size(child.stdin.as_ref().unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(size >= 1 << 20, "widened to at least 1 MiB: {size}");
    }

    /// A command that took the loop's input and stopped reading midway
    /// leaves the rest of its stream where the next frame should be: the
    /// shell answers saying so and ends, and no byte of that stream runs.
    #[tokio::test]
    async fn a_tar_that_stops_midway_ends_the_shell_with_the_reason() {
        let big: Vec<u8> = b"__CAIRN_RUN__ 9 5 0 0\nexit 0\n".repeat(2000);
        let stream = tar_in_records(&[("big", &big)]);
        let mut shell = TestLoop::start(&[]).await;
        let script = ": > \"$CAIRN_STREAM_TAKEN\"\nhead -c 1000 > /dev/null\necho 'tar: cannot write' >&2\nexit 2";
        let ran = shell.run_stream(script, &stream).await;
        let (code, _, stderr) = text(&ran);
        assert_eq!(code, 1);
        assert!(stderr.contains("tar: cannot write"), "{stderr}");
        assert!(stderr.contains("lost its place in its input"), "{stderr}");
        // Ended by itself: cairn's side is still open.
        let started = std::time::Instant::now();
        while shell.ended().is_none() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the shell ends"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
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
