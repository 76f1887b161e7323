//! `cairn import sealos FILE [-o PATH]`: a cairn Clusterfile from a sealos
//! one (`import::sealos`), on stdout or into a new file, with every field
//! it could not carry over warned about.

use std::path::Path;

use crate::cli::{ImportCommand, ImportSealosArgs};
use crate::error::{CairnError, Success};
use crate::report::Output;

pub(super) fn run(command: &ImportCommand, out: Output) -> Result<Success, CairnError> {
    match command {
        ImportCommand::Sealos(args) => sealos(args, out),
    }
}

fn sealos(args: &ImportSealosArgs, out: Output) -> Result<Success, CairnError> {
    if out.is_json() {
        return Err(CairnError::usage(
            "--json does not apply to import: its result is a TOML Clusterfile",
            "leave out --json; warnings go to stderr, the Clusterfile to stdout or -o PATH",
        ));
    }
    if let Some(output) = &args.output {
        refuse_to_overwrite(output, args.force)?;
    }
    let text = std::fs::read_to_string(&args.sealos_file).map_err(|error| {
        CairnError::usage(
            format!("cannot read {}: {error}", args.sealos_file.display()),
            "give the path of a sealos Clusterfile (YAML)",
        )
    })?;
    let imported = crate::import::sealos::import(&args.sealos_file.display().to_string(), &text)
        .map_err(|error| {
            CairnError::usage(
                error.to_string(),
                "a sealos Clusterfile holds one `kind: Cluster` (apps.sealos.io/v1beta1), and Config and kubeadm documents",
            )
        })?;
    if let Some(output) = &args.output {
        crate::atomic_file::write_atomic_with_mode(
            output,
            imported.clusterfile.as_bytes(),
            true,
            0o644,
        )
        .map_err(|error| {
            CairnError::usage(
                format!("cannot write {}: {error}", output.display()),
                "check that the folder can be written to",
            )
        })?;
    }
    out.imported(&imported, args.output.as_deref());
    Ok(Success::Ok)
}

/// An existing file is replaced only with `--force`, and a file is written
/// only into a folder that exists: said before anything is read.
fn refuse_to_overwrite(output: &Path, force: bool) -> Result<(), CairnError> {
    if output.exists() && !force {
        return Err(CairnError::usage(
            format!("{} exists; nothing was written", output.display()),
            "give another path with -o, or --force to replace it",
        ));
    }
    if let Some(folder) = crate::atomic_file::missing_folder(output) {
        return Err(CairnError::usage(
            format!(
                "there is no folder {}; nothing was written",
                folder.display()
            ),
            format!("create it first (mkdir -p {})", folder.display()),
        ));
    }
    Ok(())
}
