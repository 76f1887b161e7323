//! What the commands that only read the state (`show`, `state list`, `state
//! show`, `output`) read: the Clusterfile's model when it validates here,
//! else the state alone, with a warning. A cron box or a script may lack a
//! secret's source, and the state holds no secret in clear, so nothing
//! they show needs it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::CairnError;
use crate::model::{Model, Scrubber};
use crate::pipeline::{self, Loaded};
use crate::report::Output;
use crate::state::State;

/// The recorded state, and the model when the Clusterfile validated.
pub(super) struct Recorded {
    pub state: State,
    /// The cluster's state folder (with PostgreSQL: the schema, as shown).
    pub dir: PathBuf,
    pub model: Option<Arc<Model>>,
    /// The model's, or one that masks nothing when there is no model.
    pub scrubber: Scrubber,
}

/// Reads `file`'s state; when `file` does not validate, the state alone,
/// warning that `what` was read so (e.g. "the state read alone").
pub(super) fn read(file: &Path, out: Output, what: &str) -> Result<Recorded, CairnError> {
    match Loaded::read(file) {
        Ok(loaded) => {
            let (state, _) = loaded.load_state()?;
            Ok(Recorded {
                state,
                // Where the state is, as the operator reads it: the folder, or the database.
                dir: match &loaded.store {
                    crate::state::Store::Local(dir) => dir.dir.clone(),
                    crate::state::Store::Postgres(_) => PathBuf::from(loaded.store.place()),
                },
                scrubber: loaded.model.scrubber(),
                model: Some(loaded.model),
            })
        }
        Err(error) => {
            let Ok(dir) = pipeline::state_dir_only(file) else {
                return Err(error);
            };
            out.warnings(&[format!(
                "{} does not validate here ({error}; `cairn validate` says why): {what}",
                file.display()
            )]);
            Ok(Recorded {
                state: dir.load()?,
                dir: dir.dir.clone(),
                scrubber: Scrubber::new(Vec::new()),
                model: None,
            })
        }
    }
}
