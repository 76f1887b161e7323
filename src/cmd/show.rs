//! `cairn show [PLAN]`: a saved plan as `cairn plan` printed it (or its
//! plan document with `--json`), read from the file alone; without PLAN, the
//! recorded state as a summary per host.

use std::path::Path;

use crate::cli::ShowArgs;
use crate::error::{CairnError, Success};
use crate::pipeline::Loaded;
use crate::plan::saved;
use crate::report::Output;

pub(super) fn run(file: &Path, args: &ShowArgs, out: Output) -> Result<Success, CairnError> {
    if let Some(path) = &args.plan {
        out.expanded(args.expand)
            .saved_plan(path, &saved::read(path)?);
        return Ok(Success::Ok);
    }
    let apply = super::edited::apply_command(file);
    match Loaded::read(file) {
        Ok(loaded) => {
            let (state, _) = loaded.load_state()?;
            out.state_summary(
                &state,
                Some(&loaded.model),
                &loaded.model.scrubber(),
                &loaded.dir.dir,
                &apply,
            );
        }
        Err(error) => {
            // The state holds no secret in clear: a box without a secret's
            // source can still read it, only not which hosts the file lists.
            let Ok(dir) = crate::pipeline::state_dir_only(file) else {
                return Err(error);
            };
            out.warnings(&[format!(
                "{} does not validate here ({error}; `cairn validate` says why): the state read alone",
                file.display()
            )]);
            out.state_summary(
                &dir.load()?,
                None,
                &crate::model::Scrubber::new(Vec::new()),
                &dir.dir,
                &apply,
            );
        }
    }
    Ok(Success::Ok)
}
