//! `[[hosts]]` → [`Host`]s: one entry may be a range of addresses, so this
//! is where hosts get their ids, in file order.
//!
//! A host without a `name` is named by its address (`10.0.0.3`, or
//! `10.0.0.3:2222` off port 22): the name is the host's identity in task
//! ids, the state and its receipts, so it must not depend on where the host
//! stands in the file. Inserting, removing or reordering hosts, or changing
//! a host's roles, never renames another host. Names must be unique, and so
//! must an SSH host and port: two entries reaching one machine would race
//! each other.

use std::collections::HashMap;
use std::ops::Range;

use super::Validator;
use super::header::SshDefaults;
use crate::clusterfile::raw::RawHost;
use crate::diagnostic::Problem;
use crate::model::{Host, HostId, TransportKind, address};

impl Validator<'_> {
    /// Every host of every entry, ids in file order. An entry whose address
    /// does not parse yields no host: nothing more can be said of it, and
    /// its name and roles are recovered (references to them are not errors
    /// of their own).
    #[expect(
        clippy::too_many_lines,
        reason = "one pass over `[[hosts]]`, each check a few lines, in the order an entry reads"
    )]
    pub(super) fn hosts(&mut self, raw: &[RawHost], defaults: &SshDefaults) -> Vec<Host> {
        let mut hosts: Vec<Host> = Vec::new();
        let mut seen_names: HashMap<String, Range<usize>> = HashMap::new();
        let mut seen_addresses: HashMap<(String, u16), Range<usize>> = HashMap::new();
        for entry in raw {
            let span = entry.address.span();
            let addresses = match address::parse(entry.address.get_ref()) {
                Ok(a) => a,
                Err(error) => {
                    self.recovered
                        .names
                        .extend(entry.name.as_ref().map(|n| n.get_ref().clone()));
                    self.recovered.names.insert(entry.address.get_ref().clone());
                    self.recovered
                        .roles
                        .extend(entry.roles.iter().map(|r| r.get_ref().clone()));
                    self.recovered.vars.extend(entry.vars.keys().cloned());
                    self.push(
                        Problem::at(
                            span,
                            format!("invalid address `{}`: {error}", entry.address.get_ref()),
                        )
                        .label("bad address")
                        .help(
                            "write `addr`, `user@addr:port`, or a range like `10.0.0.5-10.0.0.9`",
                        ),
                    );
                    continue;
                }
            };
            if let Some(name) = &entry.name
                && addresses.len() > 1
            {
                self.push(
                    Problem::at(name.span(), "a name cannot be given to a range of hosts")
                        .label("one name, many hosts")
                        .help("drop `name` (each host is then named by its address) or list the hosts one by one"),
                );
            }
            let mut roles = Vec::new();
            for role in &entry.roles {
                let r = role.get_ref();
                if !is_plain_name(r) {
                    self.recovered.roles.insert(r.clone());
                    self.push(
                        Problem::at(role.span(), format!("invalid role `{r}`"))
                            .label("not a role name")
                            .help("use letters, digits, `-`, `_` and `.`"),
                    );
                } else if !roles.contains(r) {
                    roles.push(r.clone());
                }
            }
            let ssh = match &entry.ssh {
                Some(raw_ssh) => self.ssh_overlay(defaults, raw_ssh),
                None => SshDefaults {
                    user: defaults.user.clone(),
                    port: defaults.port,
                    user_given: defaults.user_given,
                    port_given: defaults.port_given,
                    settings: defaults.settings.clone(),
                },
            };
            let vars = self.vars(&entry.vars);
            let transport = entry
                .transport
                .as_ref()
                .map_or(TransportKind::Ssh, |t| *t.get_ref());
            if let Some(name) = &entry.name
                && !is_plain_name(name.get_ref())
            {
                self.push(
                    Problem::at(name.span(), format!("invalid host name `{}`", name.get_ref()))
                        .label("not a host name")
                        .help("use letters, digits, `-`, `_` and `.` (`@` and `*` select hosts in `after`)"),
                );
            }
            for addr in addresses {
                let port = addr.port.unwrap_or(ssh.port);
                let name = match &entry.name {
                    Some(name) => name.get_ref().clone(),
                    None => name_from_address(&addr.host, port),
                };
                let name_span = entry
                    .name
                    .as_ref()
                    .map(toml::Spanned::span)
                    .unwrap_or(span.clone());
                // Two entries for one machine: said once, as that, even
                // when both are unnamed and so also share a name.
                let mut same_machine = false;
                if transport == TransportKind::Ssh
                    && let Some(first) =
                        seen_addresses.insert((addr.host.clone(), port), span.clone())
                {
                    same_machine = true;
                    self.push(
                        Problem::at(span.clone(), format!("duplicate host {}:{port}", addr.host))
                            .label("listed twice")
                            .help(format!(
                                "the first is at line {}; remove one of them",
                                self.line(first.start)
                            )),
                    );
                }
                if let Some(first) = seen_names.insert(name.clone(), name_span.clone())
                    && !same_machine
                {
                    self.push(
                        Problem::at(name_span.clone(), format!("duplicate host name `{name}`"))
                            .label("second host with this name")
                            .help(format!(
                                "the first is at line {}; give one of them another `name`",
                                self.line(first.start)
                            )),
                    );
                }
                hosts.push(Host {
                    id: HostId::new(hosts.len()),
                    name,
                    address: addr.host,
                    user_given: addr.user.is_some() || ssh.user_given,
                    port_given: addr.port.is_some() || ssh.port_given,
                    user: addr.user.unwrap_or_else(|| ssh.user.clone()),
                    port,
                    roles: roles.clone(),
                    vars: vars.clone(),
                    transport,
                    ssh: ssh.settings.clone(),
                    index: hosts.len(),
                    span: span.clone(),
                });
            }
        }
        hosts
    }
}

/// The name of a host that has none: its address, and its port unless it
/// is SSH's 22. An IPv6 address keeps its colons (`::1`, `[::1]:2222`).
pub(crate) fn name_from_address(address: &str, port: u16) -> String {
    match (port, address.contains(':')) {
        (22, _) => address.to_string(),
        (_, true) => format!("[{address}]:{port}"),
        (_, false) => format!("{address}:{port}"),
    }
}

/// Letters, digits, `-`, `_` and `.`: what roles and host names may hold.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_hosts_are_named_by_address_and_port() {
        assert_eq!(name_from_address("10.0.0.3", 22), "10.0.0.3");
        assert_eq!(name_from_address("10.0.0.3", 2222), "10.0.0.3:2222");
        assert_eq!(
            name_from_address("web1.example.com", 22),
            "web1.example.com"
        );
        assert_eq!(name_from_address("::1", 2222), "[::1]:2222");
    }

    #[test]
    fn plain_names() {
        assert!(is_plain_name("master-0.a_b"));
        assert!(!is_plain_name("a@b"));
        assert!(!is_plain_name(""));
        assert!(!is_plain_name("x y"));
    }
}
