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
    proxy_jump: Vec<String>,
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
    let proxy_jump = if host.ssh.jump.is_empty() {
        resolved.proxy_jump.clone()
    } else {
        Vec::new()
    };
    if renamed || !proxy_jump.is_empty() {
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
            .filter(|j| **j != "none")
            .map(|j| j.split(',').map(unbracketed).collect())
            .unwrap_or_default(),
    })
}

/// A jump host as `ssh -G` prints it (`root@[10.0.0.2]:22`), as people
/// write it (`root@10.0.0.2:22`); an IPv6 address keeps its brackets.
fn unbracketed(hop: &str) -> String {
    match (hop.find('['), hop.find(']')) {
        (Some(open), Some(close)) if open < close && !hop[open..close].contains(':') => {
            format!(
                "{}{}{}",
                &hop[..open],
                &hop[open + 1..close],
                &hop[close + 1..]
            )
        }
        _ => hop.to_string(),
    }
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
                proxy_jump: vec!["bastion".into()],
            })
        );
        assert_eq!(parse("user root\n"), None, "no hostname: not understood");
        assert_eq!(unbracketed("root@[10.0.0.2]:2222"), "root@10.0.0.2:2222");
        assert_eq!(unbracketed("root@[10.0.0.2]"), "root@10.0.0.2");
        assert_eq!(unbracketed("[::1]:22"), "[::1]:22");
    }

    fn host(address: &str, user_given: bool, port_given: bool, jump: &[&str]) -> Host {
        let model = crate::model::test_model(&format!(
            "version = 1\nname = \"t\"\n[[hosts]]\naddress = \"{address}\"\n"
        ));
        let mut host = model.hosts[0].clone();
        host.user_given = user_given;
        host.port_given = port_given;
        host.ssh.jump = jump.iter().map(ToString::to_string).collect();
        host
    }

    fn resolved(hostname: &str, user: &str, port: u16, proxy_jump: &[&str]) -> Resolved {
        Resolved {
            hostname: hostname.into(),
            user: user.into(),
            port,
            proxy_jump: proxy_jump.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_config_fills_in_what_the_clusterfile_leaves_out() {
        let defaults = resolved("x", "alice", 22, &[]);
        let mut web = host("web1", false, false, &[]);
        apply(
            &mut web,
            &resolved("10.0.0.4", "deploy", 2222, &["b1", "b2"]),
            &defaults,
        );
        assert_eq!((web.user.as_str(), web.port), ("deploy", 2222));
        assert_eq!(
            web.ssh.alias,
            Some(SshAlias {
                hostname: "10.0.0.4".into(),
                proxy_jump: vec!["b1".into(), "b2".into()]
            })
        );
        assert_eq!(web.ssh.hops(), ["b1", "b2"]);
        assert_eq!(web.reached_at(), "10.0.0.4");
    }

    #[test]
    fn the_clusterfile_wins_where_both_say() {
        let defaults = resolved("x", "alice", 22, &[]);
        let mut web = host("web1", true, true, &["bastion"]);
        web.user = "ops".into();
        web.port = 2200;
        apply(
            &mut web,
            &resolved("10.0.0.4", "deploy", 2222, &["b1"]),
            &defaults,
        );
        assert_eq!((web.user.as_str(), web.port), ("ops", 2200));
        assert_eq!(
            web.ssh.hops(),
            ["bastion"],
            "an explicit jump replaces the config's ProxyJump"
        );
    }

    #[test]
    fn a_name_the_config_does_not_know_is_left_alone() {
        let defaults = resolved("x", "alice", 22, &[]);
        let mut plain = host("db.example.com", false, false, &[]);
        apply(
            &mut plain,
            &resolved("db.example.com", "alice", 22, &[]),
            &defaults,
        );
        assert_eq!(
            (plain.user.as_str(), plain.port),
            ("root", 22),
            "cairn's defaults"
        );
        assert_eq!(plain.ssh.alias, None);
    }
}
