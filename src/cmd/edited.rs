//! What `cairn add` and `cairn delete` share once they know their edit:
//! check it, write it, show it, and apply it as `cairn apply` would.
//!
//! The edited text is validated and compiled as a whole (the pipeline's
//! `Loaded` over the new text, then the same graph check as `cairn
//! validate`) before anything is written; an edit that would leave an
//! invalid Clusterfile is refused with its problems, and the file is not
//! touched. Otherwise the file is replaced atomically, the change is shown
//! (hosts added and removed, the lines of the file), along with a warning
//! for every role whose first host (`role[0]`) is now another one, and the
//! apply command's own path takes over from the loaded text.
//!
//! The Clusterfile is the desired state, so the edit stays whatever the
//! apply does: declined, it is an error that says the file is updated and
//! not applied; failed, the apply's own error, with a note that the next
//! `cairn apply` continues from there.

use std::path::Path;
use std::sync::Arc;

use crate::cli::{ApplyArgs, EditThenApply, Selection};
use crate::clusterfile::edit::Edited;
use crate::diagnostic::SourceFile;
use crate::error::{CairnError, Success};
use crate::model::{Host, Model};
use crate::pipeline::Loaded;
use crate::report::{EditedHost, HostsEdited, Output};

/// Validates `edited` (the text of `current`'s file after the edit),
/// writes it, shows it, then applies it unless `--no-apply`.
pub(super) fn write_and_apply(
    file: &Path,
    current: &Loaded,
    edited: Edited,
    then: &EditThenApply,
    out: Output,
) -> Result<Success, CairnError> {
    let path = current.source.path.clone();
    let before = current.source.text.clone();
    let after = Arc::new(edited.text);
    let loaded = Loaded::from_source_with(
        SourceFile {
            path: path.clone(),
            text: after.clone(),
        },
        &current.outer,
    )
    .and_then(|loaded| loaded.check().map(|_| loaded))
    .map_err(|e| refused(e, &path))?;
    // Checking took a while (bundles are scanned): an edit made meanwhile
    // by hand is not silently overwritten.
    if std::fs::read_to_string(file).ok().as_deref() != Some(before.as_str()) {
        return Err(CairnError::usage(
            format!(
                "{} changed while cairn was editing it; it was not written",
                file.display()
            ),
            "run the command again",
        ));
    }
    crate::atomic_file::replace_keeping_permissions(file, after.as_bytes()).map_err(|source| {
        CairnError::WriteClusterfile {
            path: file.display().to_string(),
            source,
        }
    })?;
    let (added, removed) = hosts_added_and_removed(&current.model, &loaded.model);
    out.hosts_edited(&HostsEdited {
        file: path.display().to_string(),
        added,
        removed,
        entries: edited.changes,
        before,
        after,
    });
    out.warnings(&first_host_changes(&current.model, &loaded.model));
    let apply = apply_command(file);
    if then.no_apply {
        out.edit_not_applied(&apply);
        return Ok(Success::Ok);
    }
    let args = ApplyArgs {
        plan: None,
        auto_approve: then.auto_approve,
        parallelism: then.parallelism,
        fail_fast: then.fail_fast,
        display: crate::cli::PlanDisplay::default(),
        selection: Selection::default(),
        lock: then.lock.clone(),
        vars: then.vars.clone(),
    };
    match super::apply::apply_loaded(loaded, &args, out) {
        Err(CairnError::Aborted) => Err(CairnError::NotApplied {
            apply,
            why: "the apply was declined: only `yes` goes on".into(),
        }),
        Err(CairnError::NoAnswer) => Err(CairnError::NotApplied {
            apply,
            why: "stdin is not a terminal and gave no answer to the confirmation: pass --auto-approve to apply without asking".into(),
        }),
        Err(error) => {
            out.edit_kept(&apply);
            Err(error)
        }
        Ok(success) => Ok(success),
    }
}

/// The edited text's problems, said to be the edit's: the file is untouched.
fn refused(error: CairnError, path: &Path) -> CairnError {
    match error {
        CairnError::Invalid(invalid) => CairnError::EditRefused {
            path: path.display().to_string(),
            problems: invalid.problems,
        },
        other => other,
    }
}

/// `cairn apply`, with the `-f` it needs to find this file.
pub(super) fn apply_command(file: &Path) -> String {
    if file == Path::new("Clusterfile") {
        "cairn apply".into()
    } else {
        format!("cairn apply -f {}", file.display())
    }
}

/// What makes two hosts of two versions of a file the same machine.
fn identity(host: &Host) -> (&str, u16, crate::model::TransportKind) {
    (&host.address, host.port, host.transport)
}

fn edited_host(host: &Host) -> EditedHost {
    EditedHost {
        name: host.name.clone(),
        address: host.address.clone(),
        port: host.port,
        roles: host.roles.clone(),
    }
}

/// Hosts of `after` that `before` lacks, and the other way round.
fn hosts_added_and_removed(before: &Model, after: &Model) -> (Vec<EditedHost>, Vec<EditedHost>) {
    let missing_from = |hosts: &[Host], other: &Model| -> Vec<EditedHost> {
        hosts
            .iter()
            .filter(|h| !other.hosts.iter().any(|o| identity(o) == identity(h)))
            .map(edited_host)
            .collect()
    };
    (
        missing_from(&after.hosts, before),
        missing_from(&before.hosts, after),
    )
}

/// A warning for each role whose first host (what `role[0]` selects) is
/// another machine after the edit, or none.
fn first_host_changes(before: &Model, after: &Model) -> Vec<String> {
    let mut roles: Vec<&str> = Vec::new();
    for role in before.hosts.iter().flat_map(|h| &h.roles) {
        if !roles.contains(&role.as_str()) {
            roles.push(role);
        }
    }
    let first = |model: &'_ Model, role: &str| -> Option<Host> {
        model
            .hosts
            .iter()
            .find(|h| h.roles.iter().any(|r| r == role))
            .cloned()
    };
    let label = |h: &Host| format!("{} ({}:{})", h.name, h.address, h.port);
    roles
        .into_iter()
        .filter_map(|role| {
            let old = first(before, role)?;
            let new = first(after, role);
            match new {
                Some(new) if identity(&new) == identity(&old) => None,
                Some(new) => Some(format!(
                    "the first host of role `{role}` (`{role}[0]`) changes from {} to {}: what runs on `{role}[0]` will run there",
                    label(&old),
                    label(&new)
                )),
                None => Some(format!(
                    "role `{role}` has no host left: its first host was {}",
                    label(&old)
                )),
            }
        })
        .collect()
}
