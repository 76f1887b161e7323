//! `cairn man`: the manual page, generated from the CLI definitions (the
//! same help text as `--help`), printed, or written one page per command.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{CairnError, Success};
use crate::report::Output;

pub(super) fn run(dir: Option<&Path>, out: Output) -> Result<Success, CairnError> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    // Built, subcommands know their full names (`cairn-plan`) for their pages.
    cli.build();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cli)
                .render(&mut page)
                .expect("rendering into memory cannot fail");
            out.raw(&String::from_utf8_lossy(&page));
        }
        Some(dir) => {
            if !dir.is_dir() {
                return Err(CairnError::usage(
                    format!("{} is not a folder", dir.display()),
                    format!(
                        "create it first (mkdir -p {}); nothing was written",
                        dir.display()
                    ),
                ));
            }
            let mut written = Vec::new();
            write_pages(cli, dir, &mut written).map_err(|error| {
                CairnError::usage(
                    format!(
                        "failed to write manual pages into {}: {error}",
                        dir.display()
                    ),
                    "check that the folder can be written to",
                )
            })?;
            out.man_pages_written(dir, &written);
        }
    }
    Ok(Success::Ok)
}

/// `command`'s page and those of its visible subcommands, depth first.
fn write_pages(
    command: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    written.push(clap_mangen::Man::new(command).generate_to(dir)?);
    Ok(())
}
