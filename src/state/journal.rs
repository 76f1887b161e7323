//! The append-only journal of completed tasks.
//!
//! One JSON object per line. Appends go through a writer thread that owns
//! the file: each append is a message, and the thread writes everything
//! queued, then fsyncs once, then acknowledges each waiter. Tasks finishing
//! together share one fsync (group commit) while each still knows its record
//! is durable before it is reported done.
//!
//! Where the entries go is a [`Sink`]: the local file (written, then
//! fsynced), or the PostgreSQL backend (one transaction per batch, see
//! `postgres`). Either way an entry is acknowledged only once it is durable.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::{JournalEntry, StateError};

/// Where a batch of entries is made durable.
pub trait Sink: Send + 'static {
    /// Writes every entry, durably, or says why not.
    fn write(&mut self, entries: &[JournalEntry]) -> Result<(), String>;
}

/// The local journal file: appended, then fsynced.
struct FileSink(std::fs::File);

impl Sink for FileSink {
    fn write(&mut self, entries: &[JournalEntry]) -> Result<(), String> {
        let mut buffer = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut buffer, entry).expect("journal entries serialize");
            buffer.push(b'\n');
        }
        self.0
            .write_all(&buffer)
            .and_then(|()| self.0.sync_data())
            .map_err(|e| e.to_string())
    }
}

enum Message {
    Append(JournalEntry, mpsc::Sender<Result<(), String>>),
    Close,
}

/// Handle to the journal writer thread.
pub struct Journal {
    sender: mpsc::Sender<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: Option<PathBuf>,
}

impl Journal {
    /// Opens (appending) and starts the writer.
    pub fn open(path: &Path) -> Result<Journal, StateError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| StateError::Io {
                action: "open",
                path: path.to_path_buf(),
                source,
            })?;
        Journal::start(Box::new(FileSink(file)), Some(path.to_path_buf()))
    }

    /// Starts a writer for `sink`; `path` names the file errors are about,
    /// if the sink is one.
    pub fn start(sink: Box<dyn Sink>, path: Option<PathBuf>) -> Result<Journal, StateError> {
        let (sender, receiver) = mpsc::channel::<Message>();
        let thread = std::thread::Builder::new()
            .name("cairn-journal".into())
            .spawn(move || writer(sink, &receiver))
            .map_err(|source| StateError::Io {
                action: "start the journal writer for",
                path: path.clone().unwrap_or_default(),
                source,
            })?;
        Ok(Journal {
            sender,
            thread: Some(thread),
            path,
        })
    }

    /// Appends an entry and waits until it is on disk.
    pub fn append(&self, entry: JournalEntry) -> Result<(), StateError> {
        self.appender().append(entry)
    }

    /// A clonable way to append from other threads.
    pub fn appender(&self) -> Appender {
        Appender {
            sender: self.sender.clone(),
            path: self.path.clone(),
        }
    }
}

/// Appends from any thread; see [`Journal::append`].
#[derive(Clone)]
pub struct Appender {
    sender: mpsc::Sender<Message>,
    path: Option<PathBuf>,
}

impl Appender {
    /// Appends an entry and waits until it is on disk.
    pub fn append(&self, entry: JournalEntry) -> Result<(), StateError> {
        let (ack, done) = mpsc::channel();
        let io_error = |message: String| match &self.path {
            Some(path) => StateError::Io {
                action: "append to",
                path: path.clone(),
                source: std::io::Error::other(message),
            },
            None => StateError::Backend(message),
        };
        self.sender
            .send(Message::Append(entry, ack))
            .map_err(|_| io_error("journal writer stopped".into()))?;
        done.recv()
            .map_err(|_| io_error("journal writer stopped".into()))?
            .map_err(io_error)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.sender.send(Message::Close);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn writer(mut sink: Box<dyn Sink>, receiver: &mpsc::Receiver<Message>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = Vec::new();
        let mut closing = false;
        let mut push = |m: Message, batch: &mut Vec<_>| match m {
            Message::Append(entry, ack) => batch.push((entry, ack)),
            Message::Close => closing = true,
        };
        push(first, &mut batch);
        while let Ok(more) = receiver.try_recv() {
            push(more, &mut batch);
        }
        let entries: Vec<JournalEntry> = batch.iter().map(|(entry, _)| entry.clone()).collect();
        let result = if entries.is_empty() {
            Ok(())
        } else {
            sink.write(&entries)
        };
        for (_, ack) in batch {
            let _ = ack.send(result.clone());
        }
        if closing {
            break;
        }
    }
}

/// Reads the journal; a missing file is empty, a torn last line is dropped.
pub fn replay(path: &Path) -> Result<Vec<JournalEntry>, StateError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|source| StateError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
    let mut entries = Vec::new();
    let count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(entry) => entries.push(entry),
            // Only the last line can be torn by a kill; anything else is damage.
            Err(_) if i + 1 == count => break,
            Err(e) => {
                return Err(StateError::Corrupt {
                    path: path.to_path_buf(),
                    message: format!("line {}: {e}", i + 1),
                });
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskId;
    use crate::state::JournalEntry;

    fn id(name: &str) -> TaskId {
        TaskId::parse(&format!("step.{name}@h")).unwrap()
    }

    #[test]
    fn appends_replay_and_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        {
            let j = Journal::open(&path).unwrap();
            j.append(JournalEntry::Forget { id: id("a") }).unwrap();
            let appender = j.appender();
            std::thread::spawn(move || {
                appender
                    .append(JournalEntry::Forget { id: id("b") })
                    .unwrap();
            })
            .join()
            .unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"op\":\"forg")
            .unwrap();
        let entries = replay(&path).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(matches!(&entries[1], JournalEntry::Forget { id: i } if *i == id("b")));
    }
}
