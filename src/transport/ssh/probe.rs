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
/// capturing step's, see `Receipt::keep_output`); inside `<Fi>`..`</Fi>`, stat lines.
enum Section {
    Top,
    Receipts,
    Stats(usize),
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
        for (i, (dest, shipped)) in request.files.iter().enumerate() {
            let targets: Vec<String> = shipped
                .keys()
                .map(|rel| target_path(dest, rel).to_string_lossy().into_owned())
                .collect();
            if targets.is_empty() {
                continue;
            }
            let expected: Vec<String> = shipped
                .values()
                .zip(&targets)
                .map(|(r, t)| stat_line(r, t))
                .collect();
            let marker = heredoc_marker(&expected.join("\n"));
            let _ = write!(
                script,
                "cairn_s=$({} 2>/dev/null)\nprintf '<F{i}>\\n%s\\n</F{i}>\\n' \"$cairn_s\"\n",
                stat_command(&targets)
            );
            // Hash only what does not stat as recorded.
            let _ = write!(
                script,
                "printf '%s\\n' \"$cairn_s\" | grep -vxF -f /dev/fd/3 3<<'{marker}' | while IFS= read -r l; do p=${{l#* * * * }}; [ -n \"$l\" ] && printf 'G{i} %s %s\\n' \"$(sha256sum < \"$p\" | cut -c1-64)\" \"$p\"; done\n{}\n{marker}\n",
                expected.join("\n")
            );
        }
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
        let mut stats: Vec<HashMap<String, Stat>> = vec![HashMap::new(); request.files.len()];
        let mut hashes: Vec<HashMap<String, String>> = vec![HashMap::new(); request.files.len()];
        let mut owners: HashMap<usize, String> = HashMap::new();
        let mut section = Section::Top;
        let mut last_receipt = None;
        for line in text.lines() {
            match (&section, line) {
                (Section::Top, "<R>") => {
                    section = Section::Receipts;
                    continue;
                }
                (Section::Receipts, "</R>") => {
                    section = Section::Top;
                    continue;
                }
                (Section::Receipts, line) => {
                    read_receipt_line(line, &mut last_receipt, &mut report.receipts);
                    continue;
                }
                (Section::Stats(i), l) => {
                    if l == format!("</F{i}>") {
                        section = Section::Top;
                    } else if let Some((path, stat)) = parse_stat(l) {
                        stats[*i].insert(path, stat);
                    }
                    continue;
                }
                (Section::Top, l) if l.starts_with("<F") && l.ends_with('>') => {
                    if let Some(i) = l[2..l.len() - 1]
                        .parse::<usize>()
                        .ok()
                        .filter(|i| *i < stats.len())
                    {
                        section = Section::Stats(i);
                    }
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
                _ => {
                    let index = |t: &str| t[1..].parse::<usize>().ok();
                    if tag.starts_with('G')
                        && let Some(i) = index(tag).filter(|i| *i < hashes.len())
                        && let Some((hash, path)) = rest.split_once(' ')
                    {
                        hashes[i].insert(path.to_string(), hash.to_string());
                    } else if tag.starts_with('W')
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
                let observed = match stats[i].get(&path) {
                    None => Observed::Missing,
                    Some(s) if s.same_as(record) => Observed::Unchanged,
                    Some(s) if s.mode != record.mode => {
                        Observed::Hashed(format!("mode:{:o}", s.mode))
                    }
                    Some(_) => match hashes[i].get(&path) {
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
