//! `stat` lines: how a shipped file's stat is asked for, recorded and compared.
//!
//! A file whose size, mtime, inode and mode are as recorded is taken as
//! shipped without reading it; only the others are hashed on the host.

use std::collections::HashMap;

use crate::state::ShippedFile;
use crate::transport::shell_quote;

/// `stat` of many paths in one process: `size mtime.ns inode mode path`.
pub(super) fn stat_command(paths: &[String]) -> String {
    let mut cmd = String::from("stat -c '%s %.9Y %i %a %n' --");
    for p in paths {
        cmd.push(' ');
        cmd.push_str(&shell_quote(p));
    }
    cmd
}

/// The line `stat_command` prints for a file exactly as recorded.
pub(super) fn stat_line(record: &ShippedFile, path: &str) -> String {
    format!(
        "{} {}.{:09} {} {:o} {}",
        record.size,
        record.mtime_ns.div_euclid(1_000_000_000),
        record.mtime_ns.rem_euclid(1_000_000_000),
        record.inode,
        record.mode & 0o7777,
        path
    )
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Stat {
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    pub(super) inode: u64,
    pub(super) mode: u32,
}

impl Stat {
    pub(super) fn same_as(&self, r: &ShippedFile) -> bool {
        self.size == r.size
            && self.mtime_ns == r.mtime_ns
            && self.inode == r.inode
            && self.mode == r.mode & 0o7777
    }
}

pub(super) fn parse_stat(line: &str) -> Option<(String, Stat)> {
    let mut parts = line.splitn(5, ' ');
    let size = parts.next()?.parse().ok()?;
    let (secs, nanos) = parts.next()?.split_once('.')?;
    let mtime_ns = secs.parse::<i64>().ok()? * 1_000_000_000 + nanos.parse::<i64>().ok()?;
    let inode = parts.next()?.parse().ok()?;
    let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
    let path = parts.next()?.to_string();
    Some((
        path,
        Stat {
            size,
            mtime_ns,
            inode,
            mode,
        },
    ))
}

pub(super) fn parse_stats(text: &str) -> HashMap<String, Stat> {
    text.lines().filter_map(parse_stat).collect()
}

/// A here-document delimiter that does not occur in `body`.
pub(super) fn heredoc_marker(body: &str) -> String {
    let mut n = 0u32;
    loop {
        let marker = format!("CAIRN_EOF_{n}");
        if !body.contains(&marker) {
            return marker;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_round_trip() {
        let record = ShippedFile {
            hash: "h".into(),
            mode: 0o100_644,
            size: 12,
            mtime_ns: 1_700_000_000_000_000_042,
            inode: 77,
        };
        let line = stat_line(&record, "/opt/a b/c");
        assert_eq!(line, "12 1700000000.000000042 77 644 /opt/a b/c");
        let (path, stat) = parse_stat(&line).unwrap();
        assert_eq!(path, "/opt/a b/c");
        assert!(stat.same_as(&record));
    }
}
