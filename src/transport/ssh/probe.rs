//! Reading everything refresh wants of a host in one round trip.
//!
//! One script prints the facts, every receipt, one `stat` over all shipped
//! files and a hash of only those whose stat differs from the record, and
//! the exit code of each `check`. Builtins are used wherever they do: a
//! process costs about a millisecond of the host's CPU, times every host.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use super::SshTransport;
use super::host::GRACE;
use super::receipts::state_dir_snippet;
use super::stat::{Stat, heredoc_marker, parse_stat, stat_command, stat_line};
use crate::ids::TaskId;
use crate::transport::probe::{OWNER_STAT_FORMAT, with_owner};
use crate::transport::{
    CheckResult, Observed, ProbeReport, ProbeRequest, ReceiptInfo, TransportError, shell_quote,
    target_path,
};

/// Ends the probe's output inside the lock command.
pub(super) const PROBE_END: &str = "__CAIRN_PROBE_END__";

/// Where the probe's output is being read: inside `<R>`..`</R>` are
/// receipts, one JSON per line (and a `K` line of kept output after a
/// capturing step's, see `Receipt::keep_output`); inside `<F>`..`</F>`, stat lines.
enum Section {
    Top,
    Receipts,
    Stats,
}

impl SshTransport {
    /// One round trip: facts, receipts, shipped files (stat, hash what changed) and checks.
    /// A plan or drift asks nothing else of the host, so the probe runs on
    /// a channel of its own (no long-lived shell to set up); an apply's probe
    /// rides on the lock's channel instead ([`SshTransport::lock_and_probe`]).
    pub(crate) async fn probe(
        &self,
        request: &ProbeRequest,
    ) -> Result<ProbeReport, TransportError> {
        let (script, longest) = self.probe_script(request);
        let script = format!("{script}echo {PROBE_END}\n");
        let opened =
            match tokio::time::timeout(longest.saturating_add(GRACE), self.open_channel(&script))
                .await
            {
                Ok(opened) => opened?,
                Err(_) => return Err(self.error("the probe timed out")),
            };
        let text = opened.lines.concat();
        match text.rsplit_once(&format!("{PROBE_END}\n")) {
            Some((probed, _)) => Ok(self.parse_probe(probed, request)),
            None => Err(self.error(format!(
                "the probe did not finish: {}",
                opened.stderr.trim()
            ))),
        }
    }

    /// The probe's script (its output is read by [`SshTransport::parse_probe`]) and its time limit.
    pub(super) fn probe_script(&self, request: &ProbeRequest) -> (String, Duration) {
        // Every process started on the host costs about a millisecond of its
        // CPU, times every host: builtins wherever they do.
        let mut script = String::new();
        script.push_str(
            "if IFS= read -r cairn_h < /proc/sys/kernel/hostname; then echo \"H $cairn_h\"; else echo \"H $(hostname)\"; fi\nif IFS= read -r cairn_a < /proc/sys/kernel/arch 2>/dev/null; then echo \"A $cairn_a\"; else echo \"A $(uname -m)\"; fi\nPRETTY_NAME=; . /etc/os-release 2>/dev/null; echo \"O ${PRETTY_NAME:-unknown}\"\n",
        );
        script
            .push_str("if command -v zstd >/dev/null 2>&1; then echo 'Z 1'; else echo 'Z 0'; fi\n");
        script.push_str(&state_dir_snippet(&self.cluster));
        // Each receipt is one line; `read` is a builtin, `cat` would be a process.
        // A capturing step's output kept beside its receipt (only when cairn
        // died before writing the value into it) follows it, in hex: `K <hex>`.
        script.push_str("echo '<R>'; for cairn_r in \"$cairn_d\"/receipts/*.json; do [ -f \"$cairn_r\" ] && IFS= read -r cairn_l < \"$cairn_r\" && printf '%s\\n' \"$cairn_l\" && { [ ! -f \"${cairn_r%.json}.out\" ] || { printf 'K '; od -An -v -tx1 < \"${cairn_r%.json}.out\" | tr -d ' \\n'; echo; }; }; done; echo '</R>'\n");
        script.push_str(&shipped_files_snippet(request));
        // Owners the Clusterfile sets: one `stat` each (only `[[files]]` with `owner`).
        for (i, _) in &request.owners {
            if let Some((dest, _)) = request.files.get(*i) {
                let _ = writeln!(
                    script,
                    "printf 'W{i} %s\\n' \"$(stat -c '{OWNER_STAT_FORMAT}' -- {} 2>/dev/null)\"",
                    shell_quote(dest)
                );
            }
        }
        for (i, check) in request.checks.iter().enumerate() {
            let body = format!("{}\n", check.script);
            let marker = heredoc_marker(&body);
            let dir = shell_quote(check.cwd.as_deref().unwrap_or("."));
            // The check's script reaches sh on a here-document, never as an argument.
            let _ = write!(
                script,
                "if [ -d {dir} ]; then (cd {dir} && exec timeout -k 2 {secs}s sh -s >/dev/null 2>&1 <<'{marker}'\n{body}{marker}\n); echo \"C{i} $?\"; else echo 'C{i} cwd'; fi\n",
                secs = check.timeout.as_secs().max(1)
            );
        }

        // What failed inside is in the output; the probe itself succeeded.
        script.push_str("true\n");
        // Saturating: a timeout may be any duration the Clusterfile gives.
        let longest = request
            .checks
            .iter()
            .map(|c| c.timeout)
            .fold(Duration::ZERO, Duration::saturating_add)
            .max(Duration::from_secs(120));
        (script, longest)
    }

    pub(super) fn parse_probe(&self, text: &str, request: &ProbeRequest) -> ProbeReport {
        let mut report = ProbeReport {
            files: vec![BTreeMap::new(); request.files.len()],
            checks: vec![CheckResult { code: None }; request.checks.len()],
            ..Default::default()
        };
        // By path: every file set's files were stat'ed and hashed together.
        let mut stats: HashMap<String, Stat> = HashMap::new();
        let mut hashes: HashMap<String, String> = HashMap::new();
        let mut owners: HashMap<usize, String> = HashMap::new();
        let mut section = Section::Top;
        let mut last_receipt = None;
        for line in text.lines() {
            match (&section, line) {
                (Section::Top, "<R>") => {
                    section = Section::Receipts;
                    continue;
                }
                (Section::Receipts, "</R>") | (Section::Stats, "</F>") => {
                    section = Section::Top;
                    continue;
                }
                (Section::Receipts, line) => {
                    read_receipt_line(line, &mut last_receipt, &mut report.receipts);
                    continue;
                }
                (Section::Stats, l) => {
                    if let Some((path, stat)) = parse_stat(l) {
                        stats.insert(path, stat);
                    }
                    continue;
                }
                (Section::Top, "<F>") => {
                    section = Section::Stats;
                    continue;
                }
                (Section::Top, _) => {}
            }
            let Some((tag, rest)) = line.split_once(' ') else {
                continue;
            };
            match tag {
                "H" => report.facts.hostname = rest.to_string(),
                "A" => report.facts.arch = rest.to_string(),
                "O" => report.facts.os = rest.to_string(),
                "Z" => report.facts.zstd = rest == "1",
                "G" => {
                    if let Some((hash, path)) = rest.split_once(' ') {
                        hashes.insert(path.to_string(), hash.to_string());
                    }
                }
                _ => {
                    let index = |t: &str| t[1..].parse::<usize>().ok();
                    if tag.starts_with('W')
                        && let Some(i) = index(tag)
                    {
                        owners.insert(i, rest.to_string());
                    } else if tag.starts_with('C')
                        && let Some(i) = index(tag).filter(|i| *i < report.checks.len())
                    {
                        // `cwd`: its working directory is missing; 124 and
                        // 137: `timeout` stopped it.
                        report.checks[i] = CheckResult {
                            code: rest.parse().ok().filter(|c| *c != 124 && *c != 137),
                        };
                    }
                }
            }
        }
        let _ = self.zstd.set(report.facts.zstd);
        for (i, (dest, shipped)) in request.files.iter().enumerate() {
            for (rel, record) in shipped {
                let path = target_path(dest, rel).to_string_lossy().into_owned();
                let observed = match stats.get(&path) {
                    None => Observed::Missing,
                    Some(s) if s.same_as(record) => Observed::Unchanged,
                    Some(s) if s.mode != record.mode => {
                        Observed::Hashed(format!("mode:{:o}", s.mode))
                    }
                    Some(_) => match hashes.get(&path) {
                        Some(h) => Observed::Hashed(h.clone()),
                        None => Observed::Hashed(String::from("not-a-file")),
                    },
                };
                let observed = match (request.owner_of(i), owners.get(&i)) {
                    (Some(want), Some(found)) if rel.is_empty() => {
                        with_owner(observed, &record.hash, want, found)
                    }
                    _ => observed,
                };
                report.files[i].insert(rel.clone(), observed);
            }
        }
        report
    }
}

/// The probe's lines for shipped files: one `stat` of every file of every
/// set (`<F>`..`</F>`), then a `G <sha256> <path>` line for each file whose
/// stat is not as recorded. One `stat` and one `grep` for all the sets: a
/// process costs about a millisecond of the host's CPU. A path two sets
/// record differently is hashed whatever its stat says.
fn shipped_files_snippet(request: &ProbeRequest) -> String {
    let mut expected: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (dest, shipped) in &request.files {
        for (rel, record) in shipped {
            let target = target_path(dest, rel).to_string_lossy().into_owned();
            let line = stat_line(record, &target);
            expected
                .entry(target)
                .and_modify(|known| {
                    if known.as_ref() != Some(&line) {
                        *known = None;
                    }
                })
                .or_insert(Some(line));
        }
    }
    if expected.is_empty() {
        return String::new();
    }
    let targets: Vec<String> = expected.keys().cloned().collect();
    let lines: Vec<&str> = expected.values().flatten().map(String::as_str).collect();
    let lines = lines.join("\n");
    let marker = heredoc_marker(&lines);
    format!(
        "cairn_s=$({} 2>/dev/null)\nprintf '<F>\\n%s\\n</F>\\n' \"$cairn_s\"\n\
         printf '%s\\n' \"$cairn_s\" | grep -vxF -f /dev/fd/3 3<<'{marker}' | while IFS= read -r l; do p=${{l#* * * * }}; [ -n \"$l\" ] && printf 'G %s %s\\n' \"$(sha256sum < \"$p\" | cut -c1-64)\" \"$p\"; done\n{lines}\n{marker}\n",
        stat_command(&targets)
    )
}

/// One line of the receipts section: a receipt, or (`K <hex>`) the output
/// kept beside the receipt just read, which is that receipt's value.
fn read_receipt_line(
    line: &str,
    last: &mut Option<TaskId>,
    receipts: &mut BTreeMap<TaskId, ReceiptInfo>,
) {
    if let Some(kept) = line.strip_prefix("K ") {
        if let (Some(task), Ok(bytes)) = (last.as_ref(), hex::decode(kept.trim()))
            && let Some(r) = receipts.get_mut(task)
            && r.captured.is_none()
        {
            r.captured = Some(String::from_utf8_lossy(&bytes).trim_end().to_string());
        }
    } else if let Ok(r) = serde_json::from_str::<ReceiptInfo>(line) {
        *last = Some(r.task.clone());
        receipts.insert(r.task.clone(), r);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::state::ShippedFile;

    /// `path`'s record as shipped: its stat as it is now.
    fn as_it_is(path: &std::path::Path) -> ShippedFile {
        let meta = std::fs::metadata(path).unwrap();
        ShippedFile {
            hash: "recorded".into(),
            mode: meta.mode() & 0o7777,
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            inode: meta.ino(),
        }
    }

    /// Every set is stat'ed in one `stat`, and only what differs from its
    /// record is hashed: a file as recorded is not, an edited file is, and
    /// a file two sets record differently is hashed for the one it differs from.
    #[test]
    fn one_stat_for_every_set_and_a_hash_only_where_the_stat_differs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_string();
        for name in ["same", "edited", "shared"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let mut edited = as_it_is(&dir.path().join("edited"));
        edited.size += 1;
        let mut stale = as_it_is(&dir.path().join("shared"));
        stale.inode += 1;
        let bundle: BTreeMap<String, ShippedFile> = [
            ("same".to_string(), as_it_is(&dir.path().join("same"))),
            ("edited".to_string(), edited),
            ("shared".to_string(), as_it_is(&dir.path().join("shared"))),
            ("gone".to_string(), as_it_is(&dir.path().join("same"))),
        ]
        .into();
        let single: BTreeMap<String, ShippedFile> = [(String::new(), stale)].into();
        let request = ProbeRequest {
            files: vec![(root.clone(), bundle), (format!("{root}/shared"), single)],
            ..Default::default()
        };
        let snippet = shipped_files_snippet(&request);
        assert_eq!(snippet.matches("stat -c").count(), 1, "{snippet}");
        assert_eq!(snippet.matches("grep ").count(), 1, "{snippet}");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&snippet)
            .output()
            .unwrap();
        let out = String::from_utf8(out.stdout).unwrap();
        let stats = out.lines().filter(|l| parse_stat(l).is_some()).count();
        assert_eq!(stats, 3, "the missing file has no stat line: {out}");
        let mut hashed: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("G "))
            .map(|l| l.split_once(' ').unwrap().1)
            .collect();
        hashed.sort_unstable();
        assert_eq!(
            hashed,
            [format!("{root}/edited"), format!("{root}/shared")],
            "{out}"
        );
        assert!(shipped_files_snippet(&ProbeRequest::default()).is_empty());
    }
}
