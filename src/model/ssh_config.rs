//! What the user's ssh config makes of a host's address: `address = "web1"`
//! with a `Host web1` entry setting `HostName`, `User`, `Port` or
//! `ProxyJump` works as `ssh web1` would.
//!
//! OpenSSH is the authority on its own config (`Match`, `Include`, tokens),
//! so cairn asks it: `ssh -G ADDRESS` prints the settings ssh would use,
//! without connecting. Only names are asked about (an IP address is used
//! as given; ssh still applies the rest of its config to it when it
//! connects), so a fleet of addresses pays nothing. The Clusterfile wins
//! where both set something: the config's `User` and `Port` apply only
//! when the Clusterfile gives none, and an explicit `jump` replaces the
//! config's `ProxyJump`. The machine the alias names is kept for output
//! (`web1 (10.0.0.4)`); cairn still connects to the alias, so the config's
//! other settings (`IdentityFile`, options) apply as ssh applies them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use rayon::prelude::*;

use super::{Host, SshAlias, TransportKind, expand_home};

/// The settings `ssh -G` resolved for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved {
    hostname: String,
    user: String,
    port: u16,
    proxy_jump: bool,
}

/// Applies the ssh config to every SSH host whose address is a name (see
/// the module doc).
pub(crate) fn resolve_aliases(hosts: &mut [Host]) {
    let named =
        |h: &Host| h.transport == TransportKind::Ssh && h.address.parse::<IpAddr>().is_err();
    if !hosts.iter().any(named) {
        return;
    }
    // What ssh uses when its config says nothing: the baseline to tell an
    // entry's `User`/`Port` from ssh's defaults.
    let Some(defaults) = ask_ssh("cairn-no-such-alias.invalid", Some("/dev/null")) else {
        return;
    };
    hosts.par_iter_mut().filter(|h| named(h)).for_each(|host| {
        let config = host.ssh.config.as_deref().map(str::to_string);
        if let Some(resolved) = ask_ssh(&host.address, config.as_deref()) {
            apply(host, &resolved, &defaults);
        }
    });
}

/// Puts what the config says under what the Clusterfile says.
fn apply(host: &mut Host, resolved: &Resolved, defaults: &Resolved) {
    let renamed = !resolved.hostname.eq_ignore_ascii_case(&host.address);
    if !host.user_given && resolved.user != defaults.user {
        host.user.clone_from(&resolved.user);
    }
    if !host.port_given && resolved.port != defaults.port {
        host.port = resolved.port;
    }
    let proxy_jump = resolved.proxy_jump && host.ssh.jump.is_empty();
    if renamed || proxy_jump {
        host.ssh.alias = Some(SshAlias {
            hostname: resolved.hostname.clone(),
            proxy_jump,
        });
    }
}

/// `ssh -G [-F CONFIG] ADDRESS`, parsed; `None` when ssh cannot say (not
/// installed, a broken config: the connection will say why).
fn ask_ssh(address: &str, config: Option<&str>) -> Option<Resolved> {
    let mut ssh = Command::new("ssh");
    ssh.arg("-G");
    if let Some(config) = config {
        ssh.arg("-F").arg(expand_home(config));
    }
    let output = ssh
        .arg("--")
        .arg(address)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// `ssh -G` prints one `key value` per line, keys in lower case.
fn parse(text: &str) -> Option<Resolved> {
    let settings: HashMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.split_once(' '))
        .collect();
    Some(Resolved {
        hostname: settings.get("hostname")?.to_string(),
        user: settings.get("user")?.to_string(),
        port: settings.get("port")?.parse().ok()?,
        proxy_jump: settings
            .get("proxyjump")
            .is_some_and(|j| !j.is_empty() && *j != "none"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_ssh_g_prints() {
        let text = "user deploy\nhostname 10.0.0.4\nport 2222\nproxyjump bastion\nidentityfile ~/.ssh/id_rsa\n";
        assert_eq!(
            parse(text),
            Some(Resolved {
                hostname: "10.0.0.4".into(),
                user: "deploy".into(),
                port: 2222,
                proxy_jump: true,
            })
        );
        assert_eq!(parse("user root\n"), None, "no hostname: not understood");
    }
}
