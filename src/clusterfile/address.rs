//! Host addresses: `addr`, `user@addr`, `addr:port`, `[v6]:port`, and
//! ranges `10.0.0.5-10.0.0.9` or `10.0.0.5-9` (the last octet varies).
//!
//! A range expands to one host per address at validation, so everything
//! after it sees plain hosts.

use std::net::Ipv4Addr;

/// One parsed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Largest range accepted in one entry: a typo like `10.0.0.1-10.0.9.1` is refused, not expanded.
pub const MAX_RANGE: u32 = 4096;

/// Parses an address entry into one or more addresses.
pub fn parse(text: &str) -> Result<Vec<Address>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("address is empty".into());
    }
    let (user, rest) = match text.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
        Some(_) => return Err("empty user before `@`".into()),
        None => (None, text),
    };
    let (host, port) = split_port(rest)?;
    if host.is_empty() {
        return Err("missing host".into());
    }
    if let Some((first, last)) = host.split_once('-')
        && let Ok(first_ip) = first.parse::<Ipv4Addr>()
    {
        let last_ip = if let Ok(ip) = last.parse::<Ipv4Addr>() {
            ip
        } else if let Ok(octet) = last.parse::<u8>() {
            let o = first_ip.octets();
            Ipv4Addr::new(o[0], o[1], o[2], octet)
        } else {
            return Err(format!(
                "`{last}` is not the end of a range: write `{first}-10.0.0.9` or `{first}-9`"
            ));
        };
        let (a, b) = (u32::from(first_ip), u32::from(last_ip));
        if b < a {
            return Err(format!("range `{host}` ends before it starts"));
        }
        if b - a >= MAX_RANGE {
            return Err(format!(
                "range `{host}` has {} addresses; at most {MAX_RANGE} in one entry",
                b - a + 1
            ));
        }
        return Ok((a..=b)
            .map(|ip| Address {
                user: user.clone(),
                host: Ipv4Addr::from(ip).to_string(),
                port,
            })
            .collect());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return Err(format!("`{host}` is not a host name or IP address"));
    }
    Ok(vec![Address {
        user,
        host: host.to_string(),
        port,
    }])
}

fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed `[` in IPv6 address")?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(parse_port(port)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected `{after}` after IPv6 address")),
        };
    }
    match text.split_once(':') {
        // One colon: `host:port`; none, or several (a bare IPv6 address): no port.
        Some((host, port)) if !port.contains(':') => Ok((host, Some(parse_port(port)?))),
        _ => Ok((text, None)),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{text}` is not a port (1-65535)")),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Address {
        let mut v = parse(text).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn plain_forms() {
        assert_eq!(
            one("10.0.0.1"),
            Address {
                user: None,
                host: "10.0.0.1".into(),
                port: None
            }
        );
        assert_eq!(
            one("ops@h1:2222"),
            Address {
                user: Some("ops".into()),
                host: "h1".into(),
                port: Some(2222)
            }
        );
        assert_eq!(one("[::1]:22").host, "::1");
        assert_eq!(one("fe80::1").host, "fe80::1");
        assert_eq!(one("localhost").host, "localhost");
    }

    #[test]
    fn ranges() {
        let v = parse("root@10.0.0.5-10.0.0.7").unwrap();
        assert_eq!(
            v.iter().map(|a| a.host.as_str()).collect::<Vec<_>>(),
            ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
        );
        assert!(v.iter().all(|a| a.user.as_deref() == Some("root")));
        assert_eq!(parse("10.0.0.250-10.0.1.1").unwrap().len(), 8);
        assert_eq!(parse("10.0.0.5-6:2222").unwrap()[1].port, Some(2222));
    }

    #[test]
    fn bad_input() {
        assert!(
            parse("10.0.0.9-10.0.0.5")
                .unwrap_err()
                .contains("ends before")
        );
        assert!(
            parse("10.0.0.1-x")
                .unwrap_err()
                .contains("not the end of a range")
        );
        assert!(parse("10.0.0.0-10.1.0.0").unwrap_err().contains("at most"));
        assert!(parse("h:0").unwrap_err().contains("not a port"));
        assert!(parse("h:99999").is_err());
        assert!(parse("").is_err());
        assert!(parse("a b").is_err());
    }
}
