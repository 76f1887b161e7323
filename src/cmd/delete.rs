//! `cairn delete HOST...`: hosts out of the Clusterfile, then the apply
//! that undoes on them what cairn did.
//!
//! A HOST is a host's name or its address (`10.0.0.3`, `10.0.0.3:2222`,
//! `ops@10.0.0.3:2222`, or a range, each of whose addresses must be a
//! host), matched against the validated model, so derived names work as
//! they do in `--limit`. An address that is two hosts (two ports) must say
//! which; one that is no host is refused with the closest names. Each host
//! is then found in the text by its entry's span and cut out of it
//! (`clusterfile::edit`); the rest is `edited`'s.

use std::path::Path;

use crate::cli::DeleteArgs;
use crate::clusterfile::edit::{self, Removal};
use crate::error::{CairnError, Success};
use crate::model::{Host, HostId, Model, address};
use crate::pipeline::Loaded;
use crate::report::Output;
use crate::words::closest;

/// Hosts listed in the help of an unknown HOST, at most.
const HOSTS_LISTED: usize = 12;

pub(super) fn run(file: &Path, args: &DeleteArgs, out: Output) -> Result<Success, CairnError> {
    let current = Loaded::read_with_args(file, &args.then.vars)?;
    let text = current.source.text.as_str();
    let spans = edit::address_spans(text);
    let mut removals = Vec::new();
    for id in resolve(&current.model, &args.hosts)? {
        let host = current.model.host(id);
        let entry = spans.iter().position(|s| s.contains(&host.span.start));
        let entry = entry.ok_or_else(|| {
            CairnError::usage(
                format!(
                    "failed to find the hosts entry of `{}` in the Clusterfile",
                    host.name
                ),
                "edit the Clusterfile by hand, then run `cairn apply`",
            )
        })?;
        removals.push(Removal {
            entry,
            address: host.address.clone(),
        });
    }
    let edited = edit::remove_hosts(text, &removals).map_err(|e| {
        CairnError::usage(
            e.to_string(),
            "edit the Clusterfile by hand, then run `cairn apply`",
        )
    })?;
    super::edited::write_and_apply(file, &current, edited, &args.then, out)
}

/// The hosts `wanted` names, each once, in file order.
fn resolve(model: &Model, wanted: &[String]) -> Result<Vec<HostId>, CairnError> {
    let mut found: Vec<HostId> = Vec::new();
    for name in wanted {
        let name = name.trim();
        let by_name: Vec<HostId> = model
            .hosts
            .iter()
            .filter(|h| h.name == name)
            .map(|h| h.id)
            .collect();
        if !by_name.is_empty() {
            found.extend(by_name);
            continue;
        }
        let addresses = address::parse(name).map_err(|_| unknown(model, name))?;
        for wanted in &addresses {
            let matching: Vec<&Host> = model
                .hosts
                .iter()
                .filter(|h| {
                    h.address == wanted.host
                        && wanted.port.is_none_or(|p| p == h.port)
                        && wanted.user.as_ref().is_none_or(|u| *u == h.user)
                })
                .collect();
            match matching.as_slice() {
                [] => return Err(unknown(model, name)),
                [one] => found.push(one.id),
                several => {
                    let which: Vec<String> = several
                        .iter()
                        .map(|h| format!("{} ({}:{})", h.name, h.address, h.port))
                        .collect();
                    return Err(CairnError::usage(
                        format!("`{name}` is {} hosts: {}", several.len(), which.join(", ")),
                        "name one: by its name, or as ADDRESS:PORT",
                    ));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// A HOST that is no host: the closest name or address, and the hosts there are.
fn unknown(model: &Model, name: &str) -> CairnError {
    let labels: Vec<String> = model
        .hosts
        .iter()
        .take(HOSTS_LISTED)
        .map(|h| format!("{} ({})", h.name, h.address))
        .collect();
    let mut help = format!(
        "hosts: {}{}",
        if labels.is_empty() {
            "(none)".to_string()
        } else {
            labels.join(", ")
        },
        if model.hosts.len() > HOSTS_LISTED {
            ", ..."
        } else {
            ""
        }
    );
    let candidates: Vec<&String> = model
        .hosts
        .iter()
        .flat_map(|h| [&h.name, &h.address])
        .collect();
    if let Some(close) = closest(name, candidates.into_iter()) {
        help = format!("did you mean `{close}`? {help}");
    }
    CairnError::usage(
        format!("no host `{name}` in the Clusterfile: it names no host by name or address"),
        help,
    )
}
