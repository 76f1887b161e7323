//! `on` selectors given on the command line (`cairn exec --on`, `cairn cp
//! --on` and `--from`), resolved to hosts the way a Clusterfile step's `on`
//! is.
//!
//! The language is the Clusterfile's: a role (`worker`), `role[i]` (the
//! i-th host with that role, in file order), `role[i:]` and `role[i:j]`
//! (a range of them, as Python slices: `master[1:]` is every master but
//! the first, and may be empty), a host's name or its address;
//! several selectors add up, in file order, without repeats. On the command
//! line a selector may also be a glob (`'web*'`, `'node?'`) of names,
//! addresses and roles, as `--limit` takes. A selector that matches no host
//! is an error that lists the roles and hosts there are (with a "did you
//! mean"), so a typo never turns into "nothing to do".

use std::collections::BTreeSet;

use super::{Host, HostId, Model};

/// Why a selector matches no host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("no host selected: name a role or a host")]
    Empty,
    #[error("unknown role or host `{selector}`")]
    Unknown { selector: String },
    #[error("`{selector}` is not a valid glob: {reason}")]
    BadGlob { selector: String, reason: String },
    #[error("invalid selector `{selector}`: the index in brackets is not a number")]
    BadIndex { selector: String },
    #[error("selector `{selector}` matches no host: role `{role}` has {}", crate::words::count(*count, "host"))]
    OutOfRange {
        selector: String,
        role: String,
        count: usize,
    },
}

impl SelectorError {
    /// What the user can write instead: the roles and host names there are.
    pub fn help(&self, model: &Model) -> String {
        let roles: BTreeSet<&str> = model
            .hosts
            .iter()
            .flat_map(|h| h.roles.iter().map(String::as_str))
            .collect();
        let mut names: Vec<&str> = model
            .hosts
            .iter()
            .map(|h| h.name.as_str())
            .take(8)
            .collect();
        if model.hosts.len() > 8 {
            names.push("...");
        }
        let list = |items: Vec<&str>| {
            if items.is_empty() {
                "(none)".to_string()
            } else {
                items.join(", ")
            }
        };
        let known = format!(
            "roles: {}; hosts: {}",
            list(roles.into_iter().collect()),
            list(names)
        );
        match self {
            SelectorError::BadIndex { .. } => {
                format!("write `role[0]` for the first host with that role; {known}")
            }
            SelectorError::OutOfRange { count, .. } => format!(
                "indexes start at 0: the last is [{}]; {known}",
                count.saturating_sub(1)
            ),
            SelectorError::Unknown { selector } => {
                let candidates = model
                    .hosts
                    .iter()
                    .flat_map(|h| h.roles.iter().chain([&h.name]));
                let guess = crate::words::closest(selector, candidates)
                    .map(|close| format!("did you mean `{close}`? "))
                    .unwrap_or_default();
                format!(
                    "{guess}a role, `role[i]`, a host name or an address, as in a step's `on`; {known}"
                )
            }
            SelectorError::Empty => {
                format!(
                    "a role, `role[i]`, a host name or an address, as in a step's `on`; {known}"
                )
            }
            SelectorError::BadGlob { .. } => {
                format!("`*` matches any text and `?` one character, e.g. 'web*'; {known}")
            }
        }
    }
}

/// The hosts `selectors` name, in file order, each once. Every selector
/// must match at least one host.
pub fn select(model: &Model, selectors: &[String]) -> Result<Vec<HostId>, SelectorError> {
    let mut selected = BTreeSet::new();
    let mut any = false;
    for selector in selectors {
        let selector = selector.trim();
        if selector.is_empty() {
            continue;
        }
        any = true;
        if positional(selector).is_none() && selector.contains(['*', '?']) {
            selected.extend(resolve_glob(&model.hosts, selector)?);
        } else {
            selected.extend(resolve(&model.hosts, selector)?);
        }
    }
    if !any {
        return Err(SelectorError::Empty);
    }
    Ok(selected.into_iter().collect())
}

/// A glob of host names, addresses and roles (the command line only: a
/// Clusterfile's `on` names hosts exactly).
fn resolve_glob(hosts: &[Host], selector: &str) -> Result<Vec<HostId>, SelectorError> {
    let glob = super::selection::host_glob(selector).map_err(|reason| SelectorError::BadGlob {
        selector: selector.to_string(),
        reason,
    })?;
    let found: Vec<HostId> = hosts
        .iter()
        .filter(|h| super::selection::names_host(h, |text| glob.is_match(text)))
        .map(|h| h.id)
        .collect();
    if found.is_empty() {
        return Err(SelectorError::Unknown {
            selector: selector.to_string(),
        });
    }
    Ok(found)
}

/// A selector's role and index, when it is positional (`master[0]`).
pub(crate) fn positional(selector: &str) -> Option<(&str, &str)> {
    selector
        .strip_suffix(']')
        .and_then(|t| t.split_once('['))
        .map(|(role, index)| (role.trim(), index.trim()))
}

/// A range selector's role and bounds (`master[1:]`, `node[0:2]`).
fn range(selector: &str) -> Option<(&str, &str, &str)> {
    let (role, index) = positional(selector)?;
    let (from, to) = index.split_once(':')?;
    Some((role, from.trim(), to.trim()))
}

/// The hosts of a range selector: with `role`, from `from` up to (not
/// including) `to`, or to the end. It may select none: `master[1:]` on a
/// cluster of one master is the other masters, of which there are none.
fn resolve_range(
    hosts: &[Host],
    selector: &str,
    (role, from, to): (&str, &str, &str),
) -> Result<Vec<HostId>, SelectorError> {
    let bound = |text: &str, default: usize| -> Result<usize, SelectorError> {
        if text.is_empty() {
            return Ok(default);
        }
        text.parse::<usize>().map_err(|_| SelectorError::BadIndex {
            selector: selector.to_string(),
        })
    };
    let with_role: Vec<HostId> = hosts
        .iter()
        .filter(|h| h.roles.iter().any(|r| r == role))
        .map(|h| h.id)
        .collect();
    if with_role.is_empty() {
        return Err(SelectorError::Unknown {
            selector: role.to_string(),
        });
    }
    let from = bound(from, 0)?;
    let to = bound(to, with_role.len())?.min(with_role.len());
    Ok(with_role
        .get(from..to.max(from))
        .map(<[HostId]>::to_vec)
        .unwrap_or_default())
}

/// One selector among `hosts`: `role`, `role[i]`, `role[i:j]`, or a host's
/// name or address. Validation resolves a step's `on` with it too.
pub(crate) fn resolve(hosts: &[Host], selector: &str) -> Result<Vec<HostId>, SelectorError> {
    if let Some(bounds) = range(selector) {
        return resolve_range(hosts, selector, bounds);
    }
    let (role, index) = match positional(selector) {
        Some((role, index)) => {
            let index = index
                .parse::<usize>()
                .map_err(|_| SelectorError::BadIndex {
                    selector: selector.to_string(),
                })?;
            (role, Some(index))
        }
        None => (selector, None),
    };
    let with_role: Vec<HostId> = hosts
        .iter()
        .filter(|h| h.roles.iter().any(|r| r == role))
        .map(|h| h.id)
        .collect();
    match index {
        Some(_) if with_role.is_empty() => Err(SelectorError::Unknown {
            selector: role.to_string(),
        }),
        Some(i) => with_role
            .get(i)
            .map(|id| vec![*id])
            .ok_or_else(|| SelectorError::OutOfRange {
                selector: selector.to_string(),
                role: role.to_string(),
                count: with_role.len(),
            }),
        None if !with_role.is_empty() => Ok(with_role),
        None => hosts
            .iter()
            .find(|h| h.name == role || h.address == role)
            .map(|h| vec![h.id])
            .ok_or_else(|| SelectorError::Unknown {
                selector: role.to_string(),
            }),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    /// `master0` (10.0.0.1, role master), then `worker0` (10.0.0.2) and
    /// `worker1` (10.0.0.3), both of role worker.
    fn cluster() -> Model {
        crate::model::test_model(
            "version = 1\nname = \"t\"\n\
                 [[hosts]]\naddress = \"10.0.0.1\"\nname = \"master0\"\nroles = [\"master\"]\n\
                 [[hosts]]\naddress = \"10.0.0.2\"\nname = \"worker0\"\nroles = [\"worker\"]\n\
                 [[hosts]]\naddress = \"10.0.0.3\"\nname = \"worker1\"\nroles = [\"worker\"]\n",
        )
    }

    fn names(selectors: &[&str]) -> Result<Vec<String>, SelectorError> {
        let model = cluster();
        let selectors: Vec<String> = selectors.iter().map(ToString::to_string).collect();
        select(&model, &selectors)
            .map(|ids| ids.iter().map(|id| model.host(*id).name.clone()).collect())
    }

    #[test]
    fn roles_names_addresses_and_indexes_add_up_in_file_order() {
        assert_eq!(names(&["worker"]).unwrap(), ["worker0", "worker1"]);
        assert_eq!(
            names(&["10.0.0.3", "master0", "worker[0]"]).unwrap(),
            ["master0", "worker0", "worker1"]
        );
        assert_eq!(
            names(&["worker", " worker1 "]).unwrap(),
            ["worker0", "worker1"]
        );
    }

    #[test]
    fn a_range_selects_hosts_of_a_role_by_position_and_may_select_none() {
        let model = cluster();
        let range = |s: &str| -> Vec<String> {
            resolve(&model.hosts, s)
                .unwrap()
                .iter()
                .map(|id| model.host(*id).name.clone())
                .collect()
        };
        assert_eq!(range("worker[1:]"), ["worker1"]);
        assert_eq!(range("worker[:1]"), ["worker0"]);
        assert_eq!(range("worker[0:2]"), ["worker0", "worker1"]);
        assert_eq!(range("worker[0:9]"), ["worker0", "worker1"]);
        assert!(range("master[1:]").is_empty(), "the other masters: none");
        assert!(range("worker[2:1]").is_empty());
        assert!(matches!(
            resolve(&model.hosts, "db[1:]"),
            Err(SelectorError::Unknown { .. })
        ));
    }

    #[test]
    fn a_selector_matching_nothing_is_an_error_listing_what_there_is() {
        let model = cluster();
        let error = names(&["worker", "db"]).unwrap_err();
        assert_eq!(error.to_string(), "unknown role or host `db`");
        assert!(
            error
                .help(&model)
                .ends_with("roles: master, worker; hosts: master0, worker0, worker1"),
            "{}",
            error.help(&model)
        );
        assert_eq!(
            names(&["worker[2]"]).unwrap_err().to_string(),
            "selector `worker[2]` matches no host: role `worker` has 2 hosts"
        );
        assert!(matches!(
            names(&["worker[x]"]),
            Err(SelectorError::BadIndex { .. })
        ));
        assert!(matches!(
            names(&["worker[x:]"]),
            Err(SelectorError::BadIndex { .. })
        ));
        assert_eq!(names(&[]), Err(SelectorError::Empty));
        assert_eq!(names(&[" "]), Err(SelectorError::Empty));
    }
}
