//! `cairn add ADDRESS... --role ROLE`: new hosts in the Clusterfile, then
//! the apply that brings them in.
//!
//! Each ADDRESS becomes one `[[hosts]]` entry after the last, written as
//! given with `--user` and `--port` folded in (a range stays one range
//! entry; addresses given one by one stay one entry each, even when they
//! are consecutive, so the file says what the operator typed). An address
//! already in the Clusterfile (same address and port) is refused, naming
//! the entry that has it. The rest (validating, writing, applying) is
//! `edited`'s.

use std::path::Path;

use crate::cli::AddArgs;
use crate::clusterfile::edit::{self, NewHost};
use crate::error::{CairnError, Success};
use crate::model::TransportKind;
use crate::model::address::{self, Address};
use crate::pipeline::Loaded;
use crate::report::Output;

pub(super) fn run(file: &Path, args: &AddArgs, out: Output) -> Result<Success, CairnError> {
    let current = Loaded::read_with_args(file, &args.then.vars)?;
    let hosts = new_hosts(&current, args)?;
    let edited = edit::add_hosts(&current.source.text, &hosts)
        .map_err(|e| CairnError::usage(e.to_string(), "fix the Clusterfile, then add again"))?;
    super::edited::write_and_apply(file, &current, edited, &args.then, out)
}

/// One entry per address argument, each checked against the hosts already there.
fn new_hosts(current: &Loaded, args: &AddArgs) -> Result<Vec<NewHost>, CairnError> {
    let text = current.source.text.as_str();
    let default_port = edit::default_ssh_port(text).unwrap_or(22);
    let mut taken: Vec<(String, u16)> = Vec::new();
    let mut hosts = Vec::new();
    for written in &args.addresses {
        let parsed = address::parse(written).map_err(|e| {
            CairnError::usage(
                format!("invalid address `{written}`: {e}"),
                "write `addr`, `user@addr:port`, or a range like `10.0.0.5-10.0.0.9`",
            )
        })?;
        let first = &parsed[0];
        if first.user.is_some() && args.user.is_some() {
            return Err(CairnError::usage(
                format!("`{written}` gives its user and so does --user"),
                "give the user once: `user@addr`, or --user",
            ));
        }
        if first.port.is_some() && args.port.is_some() {
            return Err(CairnError::usage(
                format!("`{written}` gives its port and so does --port"),
                "give the port once: `addr:port`, or --port",
            ));
        }
        for address in &parsed {
            let port = address.port.or(args.port).unwrap_or(default_port);
            check_new(current, address, port, &taken)?;
            taken.push((address.host.clone(), port));
        }
        hosts.push(NewHost {
            address: with_user_and_port(written, first, args),
            name: args.name.clone(),
            roles: args.roles.clone(),
        });
    }
    if args.name.is_some() && taken.len() > 1 {
        return Err(CairnError::usage(
            format!(
                "--name names one host, and these addresses are {} hosts",
                taken.len()
            ),
            "add them one at a time, each with its own --name, or leave --name out",
        ));
    }
    Ok(hosts)
}

/// An address that is already a host of the Clusterfile, or given twice, is refused.
fn check_new(
    current: &Loaded,
    address: &Address,
    port: u16,
    taken: &[(String, u16)],
) -> Result<(), CairnError> {
    let text = current.source.text.as_str();
    if let Some(existing) =
        current.model.hosts.iter().find(|h| {
            h.transport == TransportKind::Ssh && h.address == address.host && h.port == port
        })
    {
        let line = text[..existing.span.start.min(text.len())]
            .matches('\n')
            .count()
            + 1;
        let entry = text.get(existing.span.clone()).unwrap_or("");
        return Err(CairnError::usage(
            format!(
                "{}:{port} is already host `{}` (line {line}: address = {entry})",
                address.host, existing.name
            ),
            "a host is listed once: give another address or port, or `cairn delete` the old one first",
        ));
    }
    if taken.contains(&(address.host.clone(), port)) {
        return Err(CairnError::usage(
            format!("{}:{port} is given twice", address.host),
            "give each address once",
        ));
    }
    Ok(())
}

/// The address as given, with `--user` and `--port` written into it when
/// it does not give its own: `ops@10.0.0.5:2222`, `[fe80::1]:2222`.
fn with_user_and_port(written: &str, parsed: &Address, args: &AddArgs) -> String {
    let written = written.trim();
    let mut text = match (&args.user, &parsed.user) {
        (Some(user), None) => format!("{user}@{written}"),
        _ => written.to_string(),
    };
    if let (Some(port), None) = (args.port, parsed.port) {
        let (user, host) = match text.rsplit_once('@') {
            Some((user, host)) => (format!("{user}@"), host.to_string()),
            None => (String::new(), text.clone()),
        };
        // A bare IPv6 address takes brackets before a port.
        text = if host.contains(':') && !host.starts_with('[') {
            format!("{user}[{host}]:{port}")
        } else {
            format!("{user}{host}:{port}")
        };
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::EditThenApply;

    fn args(user: Option<&str>, port: Option<u16>) -> AddArgs {
        AddArgs {
            addresses: Vec::new(),
            roles: vec!["worker".into()],
            name: None,
            user: user.map(str::to_string),
            port,
            then: EditThenApply {
                no_apply: true,
                auto_approve: false,
                parallelism: 1,
                fail_fast: false,
                lock: crate::cli::LockArgs {
                    lock_timeout: std::time::Duration::ZERO,
                },
                vars: crate::cli::VarArgs::default(),
            },
        }
    }

    fn written(address: &str, user: Option<&str>, port: Option<u16>) -> String {
        let parsed = &address::parse(address).unwrap()[0];
        with_user_and_port(address, parsed, &args(user, port))
    }

    #[test]
    fn user_and_port_are_written_into_the_address() {
        assert_eq!(written("10.0.0.5", None, None), "10.0.0.5");
        assert_eq!(
            written("10.0.0.5", Some("ops"), Some(2222)),
            "ops@10.0.0.5:2222"
        );
        assert_eq!(
            written("10.0.0.5-9", Some("ops"), Some(2222)),
            "ops@10.0.0.5-9:2222"
        );
        assert_eq!(written("root@h1", None, Some(2200)), "root@h1:2200");
        assert_eq!(written("h1:2200", Some("ops"), None), "ops@h1:2200");
        assert_eq!(written("fe80::1", None, Some(2222)), "[fe80::1]:2222");
        assert_eq!(written("[fe80::1]", None, Some(2222)), "[fe80::1]:2222");
    }
}
