//! The `cairn` binary: parse arguments, run the command, map the outcome to an exit code.
//!
//! Exit codes are a contract (docs/clusterfile.md, "Exit codes"): 0
//! success, 1 any error, 2 changes present or drift, 4 and 6 for drift's
//! unchecked hosts. clap exits 2 on a usage error, which a cron job would
//! read as drift, so its errors are printed as clap words them and exit 1.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    // Started by ssh as its askpass helper (see transport/ssh/askpass.rs).
    if let Some(answer) = cairn::transport::askpass_answer() {
        return match answer {
            Ok(secret) => cairn::report::hand_to_ssh(&secret),
            Err(()) => ExitCode::FAILURE,
        };
    }
    let cli = match cairn::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            };
        }
    };
    let style = cairn::report::Style::detect(cli.no_color);
    let color = style.color;
    miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(true)
                .terminal_links(false)
                .width(100)
                // A hint is a command to copy: never broken across lines.
                .wrap_lines(false)
                .build(),
        )
    }))
    .expect("the miette hook is set once");
    match cairn::cmd::run(&cli) {
        Ok(success) => ExitCode::from(success.exit_code()),
        Err(error) => {
            let code = error.exit_code();
            cairn::report::print_error(error);
            ExitCode::from(code)
        }
    }
}
