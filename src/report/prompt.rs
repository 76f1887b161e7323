//! Asking the operator before an apply changes anything, or before
//! `cairn unlock` breaks a lock.

use std::io::{IsTerminal, Write};

/// What the operator answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Yes,
    /// Anything but `yes`, or nothing (end of input).
    No,
    /// No terminal to ask on: only `--auto-approve` or a saved plan can go on.
    NoTerminal,
}

/// Terraform's question: only `yes` is accepted.
pub(super) fn confirm() -> Confirmation {
    ask("Do you want to perform these actions?")
}

/// `question`, answered on the terminal: only `yes` is accepted.
pub(super) fn ask(question: &str) -> Confirmation {
    if !std::io::stdin().is_terminal() {
        return Confirmation::NoTerminal;
    }
    print!("\n{question} Only 'yes' will be accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    match std::io::stdin().read_line(&mut answer) {
        Ok(_) if answer.trim() == "yes" => Confirmation::Yes,
        _ => Confirmation::No,
    }
}
