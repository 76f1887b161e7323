//! The `cairn` binary: parse arguments, run the command, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cairn::cli::Cli::parse();
    let style = cairn::report::Style::detect(cli.no_color);
    let color = style.color;
    miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(true)
                .terminal_links(false)
                .width(100)
                .build(),
        )
    }))
    .expect("the miette hook is set once");
    match cairn::cmd::run(&cli) {
        Ok(success) => ExitCode::from(success.exit_code()),
        Err(error) => {
            let code = error.exit_code();
            eprintln!("{:?}", miette::Report::new(error));
            ExitCode::from(code)
        }
    }
}
