//! Writing to stdout without ever panicking: `out!` and `outln!`, which
//! every printing function in `report` uses instead of `print!`.
//!
//! `print!` panics when stdout is gone (`cairn graph | head -1` closes the
//! pipe after one line). A reader that has seen enough is not an error of
//! cairn's, and cairn may be in the middle of an apply whose progress is
//! what was being printed: the work goes on and is recorded, the rest of
//! the output is dropped. Another write error (a full disk under `> file`)
//! is said once on stderr, and the work goes on too.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// `print!`, never panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::report::stdout::write(format_args!($($arg)*))
    };
}

/// `println!`, never panicking.
macro_rules! outln {
    () => {
        $crate::report::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::report::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Set once a write has failed: later output is dropped without a word.
static STDOUT_LOST: AtomicBool = AtomicBool::new(false);

pub(super) fn write(text: std::fmt::Arguments<'_>) {
    if STDOUT_LOST.load(Ordering::Relaxed) {
        return;
    }
    let text = text.to_string();
    let text = super::hints::runnable(&text);
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        STDOUT_LOST.store(true, Ordering::Relaxed);
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("cairn: cannot write to stdout ({error}); the rest of the output is dropped");
        }
    }
}

/// Hands a secret to the ssh that started cairn as its askpass helper: the
/// answer, as OpenSSH reads it (one line on stdout), and nothing else.
pub fn hand_to_ssh(secret: &[u8]) -> std::process::ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(secret)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}
