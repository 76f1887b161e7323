//! Asking the operator before an apply changes anything, or before
//! `cairn unlock` breaks a lock.
//!
//! The question goes to stderr, so that stdout can be piped or saved while
//! the operator still sees it; the answer is read from stdin, a terminal or
//! not, as Terraform does: `echo yes | cairn apply` works, and a script that
//! gives nothing (`</dev/null`) is told to pass `--auto-approve`.

use std::io::{BufRead, IsTerminal, Write};

/// What the operator answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Yes,
    /// Anything but `yes`, or nothing (end of input).
    No,
    /// stdin ended before any answer (not a terminal, nothing piped in):
    /// only `--auto-approve` goes on.
    NoAnswer,
}

/// Terraform's question: only `yes` is accepted.
pub(super) fn confirm() -> Confirmation {
    ask("Do you want to perform these actions?")
}

/// `question`, answered on stdin: only `yes` is accepted.
pub(super) fn ask(question: &str) -> Confirmation {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "\n{question} Only 'yes' will be accepted: ");
    let _ = stderr.flush();
    let answer = read_answer(&mut std::io::stdin().lock());
    // A terminal echoed the answer and its newline; an answer piped in (or
    // none) was not, and what follows would go on the prompt's line.
    if answer == Confirmation::NoAnswer || !std::io::stdin().is_terminal() {
        let _ = writeln!(stderr);
    }
    answer
}

/// One line of `input`, judged.
fn read_answer(input: &mut impl BufRead) -> Confirmation {
    let mut answer = String::new();
    match input.read_line(&mut answer) {
        Ok(0) | Err(_) => Confirmation::NoAnswer,
        Ok(_) if answer.trim() == "yes" => Confirmation::Yes,
        Ok(_) => Confirmation::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_goes_on_and_nothing_is_no_answer() {
        let judge = |text: &str| read_answer(&mut std::io::Cursor::new(text.as_bytes()));
        assert_eq!(judge("yes\n"), Confirmation::Yes);
        assert_eq!(judge("  yes  \n"), Confirmation::Yes);
        assert_eq!(judge("yes"), Confirmation::Yes);
        assert_eq!(judge("y\n"), Confirmation::No);
        assert_eq!(judge("YES\n"), Confirmation::No);
        assert_eq!(judge("\n"), Confirmation::No);
        assert_eq!(judge(""), Confirmation::NoAnswer);
    }
}
