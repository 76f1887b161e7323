//! `cairn state list` / `cairn state show TASK`: what is recorded.

use std::path::Path;

use crate::cli::StateCommand;
use crate::error::{CairnError, Success};
use crate::ids::TaskId;
use crate::pipeline::Loaded;
use crate::report::Output;

pub(super) fn run(file: &Path, sub: &StateCommand, out: Output) -> Result<Success, CairnError> {
    let loaded = Loaded::read(file)?;
    let state = loaded.dir.load()?;
    match sub {
        StateCommand::List => out.state_list(&state, &loaded.dir.dir),
        StateCommand::Show { task } => {
            let found = TaskId::parse(task)
                .ok()
                .and_then(|id| state.tasks.get_key_value(&id));
            let Some((id, record)) = found else {
                return Err(CairnError::usage(
                    format!(
                        "no task `{task}` in the state of cluster `{}`",
                        loaded.model.name
                    ),
                    "list the recorded tasks with `cairn state list`",
                ));
            };
            out.state_show(id, record, &loaded.model.scrubber());
        }
    }
    Ok(Success::Ok)
}
