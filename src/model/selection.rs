//! Which hosts a command works on: `--limit` turned into the hosts it leaves out.
//!
//! Each pattern names hosts by name, address or role, exactly or as a glob
//! (`web*`, `node?`, `10.0.1.*`: `*` and `?` make a pattern a glob, matched
//! by globset); `!PATTERN` leaves those out. With at least one plain pattern, only the hosts it names are
//! kept; with only `!` patterns, every other host is. The result is the set
//! of names left *out*, because that is what a plan records and prints
//! ("Left out by --limit: ..."), and what drift reads back. A pattern that
//! names no host is an error rather than an empty selection: a typo in
//! `--limit` must not quietly turn into "nothing to do" or "everything".

use std::collections::BTreeSet;

use super::Model;

/// Hosts named in a help line before it ends with "...".
const HOSTS_LISTED: usize = 12;

/// Why a `--limit` cannot be applied to this Clusterfile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("--limit {pattern}: no host has this name, address or role")]
    NoMatch {
        /// The pattern as written, without its `!`.
        pattern: String,
        /// Every role of the model, sorted, to suggest instead.
        roles: Vec<String>,
        /// Every host's name, in file order, to suggest instead.
        hosts: Vec<String>,
    },
    #[error("--limit {pattern}: not a valid glob: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error("--limit {}: leaves no host at all", patterns.join(","))]
    LeavesNothing { patterns: Vec<String> },
}

impl SelectionError {
    /// A line that helps the user write a pattern that matches.
    pub fn help(&self) -> String {
        match self {
            SelectionError::NoMatch {
                pattern,
                roles,
                hosts,
            } => {
                let mut names = hosts.iter().take(HOSTS_LISTED).cloned().collect::<Vec<_>>();
                if hosts.len() > HOSTS_LISTED {
                    names.push("...".into());
                }
                let suggestion = crate::words::closest(pattern, roles.iter().chain(hosts.iter()))
                    .map(|close| format!("did you mean `{close}`? "))
                    .unwrap_or_default();
                format!(
                    "{suggestion}roles: {}; hosts: {}",
                    listed(roles.iter().map(String::as_str)),
                    listed(names.iter().map(String::as_str))
                )
            }
            SelectionError::BadGlob { .. } => {
                "`*` matches any text and `?` one character, e.g. --limit 'web*'".to_string()
            }
            SelectionError::LeavesNothing { .. } => {
                "`!PATTERN` leaves hosts out of the others: leave out fewer, or name the hosts to keep".to_string()
            }
        }
    }
}

fn listed<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

/// A glob of host names, addresses and roles, as `--limit` and `exec --on`
/// take it (`*` and `?` match any character, `/` too); the error says why
/// the text is not one.
pub(crate) fn host_glob(text: &str) -> Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(text)
        .literal_separator(false)
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|error| error.kind().to_string())
}

/// Whether `matches` accepts `host`'s name, address or one of its roles:
/// what a `--limit` or `--on` pattern is compared with.
pub(crate) fn names_host(host: &super::Host, matches: impl Fn(&str) -> bool) -> bool {
    matches(&host.name) || matches(&host.address) || host.roles.iter().any(|r| matches(r))
}

/// One `--limit` pattern: a name compared as is, or a glob.
enum Pattern {
    Exact(String),
    Glob(globset::GlobMatcher),
}

impl Pattern {
    fn new(pattern: &str) -> Result<Pattern, SelectionError> {
        if !pattern.contains(['*', '?']) {
            return Ok(Pattern::Exact(pattern.to_string()));
        }
        host_glob(pattern)
            .map(Pattern::Glob)
            .map_err(|reason| SelectionError::BadGlob {
                pattern: pattern.to_string(),
                reason,
            })
    }

    fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Exact(name) => name == text,
            Pattern::Glob(glob) => glob.is_match(text),
        }
    }
}

/// A host only the state still knows (it left the Clusterfile, or its
/// name moved to another address): its name and recorded address, which
/// `--limit` may name too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedHost {
    pub name: String,
    pub address: String,
}

/// Names of the hosts that `limit` leaves out, among the model's hosts and
/// `recorded` (hosts only the state knows). `limit` holds one pattern per
/// item (clap has already split comma-separated values); an empty `limit`
/// leaves nothing out.
pub fn excluded_hosts(
    model: &Model,
    recorded: &[RecordedHost],
    limit: &[String],
) -> Result<BTreeSet<String>, SelectionError> {
    if limit.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut included: BTreeSet<String> = BTreeSet::new();
    let mut any_positive = false;
    let mut excluded: BTreeSet<String> = BTreeSet::new();
    for pattern in limit {
        let pattern = pattern.trim();
        if let Some(negated) = pattern.strip_prefix('!') {
            excluded.extend(matching_hosts(model, recorded, negated)?);
        } else {
            any_positive = true;
            included.extend(matching_hosts(model, recorded, pattern)?);
        }
    }
    let every_host: Vec<String> = model
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .chain(recorded.iter().map(|h| h.name.clone()))
        .collect();
    let left_out: BTreeSet<String> = every_host
        .iter()
        .filter(|n| (any_positive && !included.contains(*n)) || excluded.contains(*n))
        .cloned()
        .collect();
    // Like a pattern that matches nothing: "nothing to do" would hide the typo.
    if !every_host.is_empty() && left_out.len() == every_host.len() {
        return Err(SelectionError::LeavesNothing {
            patterns: limit.to_vec(),
        });
    }
    Ok(left_out)
}

/// Names of the hosts whose name, address or one of whose roles `pattern`
/// is, or matches as a glob.
fn matching_hosts(
    model: &Model,
    recorded: &[RecordedHost],
    text: &str,
) -> Result<Vec<String>, SelectionError> {
    let pattern = Pattern::new(text)?;
    let found: Vec<String> = model
        .hosts
        .iter()
        .filter(|h| names_host(h, |text| pattern.matches(text)))
        .map(|h| h.name.clone())
        .chain(
            recorded
                .iter()
                .filter(|h| pattern.matches(&h.name) || pattern.matches(&h.address))
                .map(|h| h.name.clone()),
        )
        .collect();
    if found.is_empty() {
        let roles: BTreeSet<&str> = model
            .hosts
            .iter()
            .flat_map(|h| h.roles.iter().map(String::as_str))
            .collect();
        return Err(SelectionError::NoMatch {
            pattern: text.to_string(),
            roles: roles.into_iter().map(String::from).collect(),
            hosts: model.hosts.iter().map(|h| h.name.clone()).collect(),
        });
    }
    Ok(found)
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

    fn excluded(limit: &[&str]) -> Result<Vec<String>, SelectionError> {
        let limit: Vec<String> = limit.iter().map(std::string::ToString::to_string).collect();
        excluded_hosts(&cluster(), &[], &limit).map(|set| set.into_iter().collect())
    }

    #[test]
    fn a_limit_that_leaves_out_every_host_is_an_error() {
        let error = excluded(&["!*"]).unwrap_err();
        assert_eq!(error.to_string(), "--limit !*: leaves no host at all");
        let error = excluded(&["worker", "!worker*"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--limit worker,!worker*: leaves no host at all"
        );
    }

    #[test]
    fn no_limit_leaves_nothing_out() {
        assert_eq!(excluded(&[]), Ok(vec![]));
    }

    #[test]
    fn a_role_keeps_only_its_hosts() {
        assert_eq!(excluded(&["worker"]), Ok(vec!["master0".to_string()]));
    }

    #[test]
    fn names_and_addresses_select_single_hosts() {
        assert_eq!(
            excluded(&["master0", "10.0.0.3"]),
            Ok(vec!["worker0".to_string()])
        );
    }

    #[test]
    fn a_negation_alone_keeps_every_other_host() {
        assert_eq!(excluded(&["!worker1"]), Ok(vec!["worker1".to_string()]));
    }

    #[test]
    fn a_negation_wins_over_an_inclusion() {
        // As clap passes `--limit "worker, !worker0"`: split, not trimmed.
        assert_eq!(
            excluded(&["worker", " !worker0"]),
            Ok(vec!["master0".to_string(), "worker0".to_string()])
        );
    }

    #[test]
    fn hosts_only_the_state_knows_can_be_named() {
        let recorded = [RecordedHost {
            name: "old".into(),
            address: "10.0.0.9".into(),
        }];
        let limit = vec!["!10.0.0.9".to_string()];
        let out = excluded_hosts(&cluster(), &recorded, &limit).unwrap();
        assert_eq!(out.into_iter().collect::<Vec<_>>(), vec!["old".to_string()]);
        let limit = vec!["old".to_string()];
        let out = excluded_hosts(&cluster(), &recorded, &limit).unwrap();
        assert_eq!(out.len(), 3, "{out:?}");
    }

    #[test]
    fn a_pattern_matching_nothing_is_an_error_that_lists_the_roles() {
        let error = excluded(&["worker", "db"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--limit db: no host has this name, address or role"
        );
        assert_eq!(
            error.help(),
            "roles: master, worker; hosts: master0, worker0, worker1"
        );
    }

    #[test]
    fn a_negated_pattern_matching_nothing_is_reported_without_its_bang() {
        let error = excluded(&["!db"]).unwrap_err();
        assert_eq!(
            error,
            SelectionError::NoMatch {
                pattern: "db".into(),
                roles: vec!["master".into(), "worker".into()],
                hosts: vec!["master0".into(), "worker0".into(), "worker1".into()],
            }
        );
    }

    #[test]
    fn globs_match_names_addresses_and_roles() {
        assert_eq!(excluded(&["work*"]), Ok(vec!["master0".to_string()]));
        assert_eq!(excluded(&["worker?"]), Ok(vec!["master0".to_string()]));
        assert_eq!(
            excluded(&["!worker*"]),
            Ok(vec!["worker0".into(), "worker1".into()])
        );
        assert_eq!(
            excluded(&["10.0.0.[12]*", "!*0"]),
            Err(SelectionError::LeavesNothing {
                patterns: vec!["10.0.0.[12]*".into(), "!*0".into()]
            })
        );
        assert_eq!(
            excluded(&["10.0.0.[123]*", "!*0"]),
            Ok(vec!["master0".into(), "worker0".into()])
        );
        assert_eq!(excluded(&["10.0.0.?", "!m*"]), Ok(vec!["master0".into()]));
        // A role that matches: every host of it.
        assert_eq!(
            excluded(&["mast*"]),
            Ok(vec!["worker0".into(), "worker1".into()])
        );
    }

    #[test]
    fn a_glob_matching_nothing_is_an_error_that_lists_hosts_and_roles() {
        let error = excluded(&["db*"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--limit db*: no host has this name, address or role"
        );
        assert_eq!(
            error.help(),
            "roles: master, worker; hosts: master0, worker0, worker1"
        );
        assert!(matches!(
            excluded(&["!zz?"]),
            Err(SelectionError::NoMatch { pattern, .. }) if pattern == "zz?"
        ));
    }

    #[test]
    fn an_invalid_glob_is_an_error() {
        assert!(matches!(
            excluded(&["web[*"]),
            Err(SelectionError::BadGlob { .. })
        ));
    }
}
