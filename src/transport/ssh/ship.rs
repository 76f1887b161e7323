//! Shipping files to a host and removing what cairn shipped.
//!
//! Files ship as one tar stream per task (see `bundle::stream`),
//! zstd-compressed when the host has `zstd` (refresh finds out), unpacked
//! into a staging folder and renamed into place, then stat'ed so refresh can
//! later tell an untouched file by its stat alone. A staging folder is
//! named after the shell that made it, so one left by a shipping that died
//! is swept by the next. Removal deletes a file only while its content is
//! still what cairn shipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::SshTransport;
use super::stat::{parse_stats, stat_command};
use crate::bundle::ShipFile;
use crate::bundle::stream::entry_name;
use crate::state::ShippedFile;
use crate::transport::{Receipt, TransportError, shell_quote, target_path};

impl SshTransport {
    pub(crate) async fn ship(
        &self,
        dest: &str,
        files: &BTreeMap<String, ShipFile>,
        receipt: Option<&Receipt>,
    ) -> Result<BTreeMap<String, ShippedFile>, TransportError> {
        let zstd = if let Some(z) = self.zstd.get() {
            *z
        } else {
            let out = self
                .exec("command -v zstd", None, Some(Duration::from_secs(30)))
                .await?;
            *self.zstd.get_or_init(|| out.success())
        };
        let entries: Vec<(&String, &ShipFile)> = files.iter().collect();
        let stream = {
            let entries: Vec<(String, ShipFile)> = entries
                .iter()
                .map(|(r, f)| ((*r).clone(), (*f).clone()))
                .collect();
            let streams = self.streams.clone();
            tokio::task::spawn_blocking(move || streams.get(&entries, zstd))
                .await
                .map_err(|e| self.error(e.to_string()))?
                .map_err(|e| self.error(e))?
        };
        let targets: Vec<String> = entries
            .iter()
            .map(|(rel, _)| target_path(dest, rel).to_string_lossy().into_owned())
            .collect();
        let mut script = unpack_script(dest, files, &targets, stream.zstd);
        if let Some(r) = receipt {
            script.push_str(&self.receipt_snippet(r));
        }
        let out = self
            .exec(
                &script,
                Some(&stream.bytes),
                Some(Duration::from_secs(3600)),
            )
            .await?;
        if !out.success() {
            return Err(self.error(format!(
                "shipping to {dest} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let stats = parse_stats(&String::from_utf8_lossy(&out.stdout));
        let mut records = BTreeMap::new();
        for ((rel, file), target) in entries.iter().zip(&targets) {
            let stat = stats.get(target.as_str()).ok_or_else(|| {
                self.error(format!("{target} is missing right after it was shipped"))
            })?;
            records.insert(
                (*rel).clone(),
                ShippedFile {
                    hash: file.entry.hash.clone(),
                    mode: stat.mode,
                    size: stat.size,
                    mtime_ns: stat.mtime_ns,
                    inode: stat.inode,
                },
            );
        }
        Ok(records)
    }

    /// Removes shipped files that still hold what cairn shipped; returns the kept ones.
    pub(crate) async fn remove(
        &self,
        dest: &str,
        shipped: &BTreeMap<String, ShippedFile>,
    ) -> Result<Vec<String>, TransportError> {
        let mut script = String::new();
        for (rel, record) in shipped {
            let path = shell_quote(&target_path(dest, rel).to_string_lossy());
            let _ = writeln!(
                script,
                "if [ -e {path} ]; then if [ \"$(sha256sum < {path} | cut -c1-64)\" = {hash} ]; then rm -f {path}; rmdir -p \"$(dirname {path})\" 2>/dev/null; else printf 'K%s\\n' {rel}; fi; fi",
                hash = record.hash,
                rel = shell_quote(rel),
            );
        }
        script.push_str("true\n");
        let out = self
            .exec(&script, None, Some(Duration::from_secs(600)))
            .await?;
        if !out.success() {
            return Err(self.error(format!(
                "removing files under {dest} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix('K').map(str::to_string))
            .collect())
    }
}

/// Removes staging folders left beside `$cairn_base` by a shipping that
/// died (a host that lost power, a killed shell): each is named after the
/// pid of the shell that made it, so only those whose shell is gone go.
const SWEEP_STAGING: &str = "for cairn_old in \"$cairn_base\"/.cairn-staging-*; do\n[ -d \"$cairn_old\" ] || continue\ncairn_op=${cairn_old##*/.cairn-staging-}\ncairn_op=${cairn_op%%-*}\ncase \"$cairn_op\" in ''|*[!0-9]*) continue;; esac\n[ -d \"/proc/$cairn_op\" ] || rm -rf \"$cairn_old\" || true\ndone\n";

/// The script that unpacks a file stream (on its stdin) beside `dest` and
/// moves each file into place, then stats every target. A folder that does
/// not exist yet is staged whole beside its place and renamed into it at
/// once; otherwise each file is staged inside the destination and renamed
/// over its old version.
fn unpack_script(
    dest: &str,
    files: &BTreeMap<String, ShipFile>,
    targets: &[String],
    zstd: bool,
) -> String {
    let single = files.len() == 1 && files.contains_key("");
    let root = if single {
        Path::new(dest)
            .parent()
            .unwrap_or(Path::new("/"))
            .to_string_lossy()
            .into_owned()
    } else {
        dest.to_string()
    };
    let parent = Path::new(dest)
        .parent()
        .unwrap_or(Path::new("/"))
        .to_string_lossy()
        .into_owned();
    // Parent folders of every target, created in one process.
    let mut dirs: Vec<String> = targets
        .iter()
        .filter_map(|t| Some(Path::new(t).parent()?.to_string_lossy().into_owned()))
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut script = String::from("set -e\n");
    let _ = write!(
        script,
        "cairn_dest={dest_q}\nmkdir -p {parent_q}\nif {fresh_test}; then cairn_fresh=1; cairn_base={parent_q}; else cairn_fresh=0; cairn_base={root_q}; mkdir -p \"$cairn_base\"; fi\n{sweep}cairn_st=$(mktemp -d \"$cairn_base/.cairn-staging-$$-XXXXXX\")\ntrap 'rm -rf \"$cairn_st\"' EXIT\n",
        dest_q = shell_quote(dest),
        parent_q = shell_quote(&parent),
        root_q = shell_quote(&root),
        sweep = SWEEP_STAGING,
        fresh_test = if single {
            "false"
        } else {
            "[ ! -e \"$cairn_dest\" ]"
        },
    );
    script.push_str(if zstd {
        "zstd -dcq | tar -x -f - -C \"$cairn_st\" --no-same-owner\n"
    } else {
        "tar -x -f - -C \"$cairn_st\" --no-same-owner\n"
    });
    // Everything is staged (a full disk fails here, before anything is replaced); make it durable.
    script.push_str("sync -f \"$cairn_st\" 2>/dev/null || sync\n");
    script.push_str(
        "if [ $cairn_fresh = 1 ]; then\nchmod 755 \"$cairn_st\"\nmv -T \"$cairn_st\" \"$cairn_dest\"\nelse\n",
    );
    let mut mkdir = String::from("mkdir -p --");
    for d in &dirs {
        mkdir.push(' ');
        mkdir.push_str(&shell_quote(d));
    }
    script.push_str(&mkdir);
    script.push('\n');
    for (rel, target) in files.keys().zip(targets) {
        let _ = writeln!(
            script,
            "mv -f \"$cairn_st/\"{} {}",
            shell_quote(entry_name(rel)),
            shell_quote(target)
        );
    }
    script.push_str("fi\nset +e\n");
    script.push_str(&stat_command(targets));
    script.push_str(" || true\n");
    script
}
