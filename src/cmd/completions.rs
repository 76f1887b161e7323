//! `cairn completions SHELL`: a completion script generated from the CLI
//! definitions themselves, so it can never fall behind them.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Success;
use crate::report::Output;

pub(super) fn run(shell: clap_complete::Shell, out: Output) -> Success {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut script);
    out.raw(&String::from_utf8_lossy(&script));
    Success::Ok
}
