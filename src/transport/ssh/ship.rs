//! Shipping files to a host and removing what cairn shipped.
//!
//! Files ship as one tar stream per task (see `bundle::stream`),
//! zstd-compressed when the host has `zstd` (refresh finds out), unpacked
//! into a staging folder and renamed into place, then stat'ed so refresh can
//! later tell an untouched file by its stat alone. A staging folder is
//! named after the shell that made it, so one left by a shipping that died
//! is swept by the next. A fresh host's first file set may be staged with
//! its probe, and then only moved into place by its task (see `Prestage`).
//! Removal deletes a file only while its content is still what cairn shipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use std::sync::PoisonError;

use tokio::sync::oneshot;

use super::SshTransport;
use super::host::GRACE;
use super::shells::{EarlyAnswer, EarlyFrame, OWN_WAIT, Ran, STREAM_LIMIT};
use super::stat::{parse_stats, stat_command};
use crate::bundle::ShipFile;
use crate::bundle::stream::{entry_name, file_set_digest};
use crate::state::ShippedFile;
use crate::transport::{Prestage, Receipt, Shipped, TransportError, shell_quote, target_path};

/// How long cairn waits for files to be moved into place or removed
/// (a few renames, or a hash of each file), which run without `timeout(1)`.
const PLACE_WAIT: Duration = Duration::from_secs(610);

/// What identifies a file set: its paths, contents and modes.
fn identity(files: &BTreeMap<String, ShipFile>) -> [u8; 32] {
    file_set_digest(files.iter().map(|(rel, f)| (rel.as_str(), f)))
}

impl SshTransport {
    /// The early frame that stages `prestage`'s files (see [`stage_script`]):
    /// packed as for a host with `zstd`, since the probe has not said yet
    /// (the stream stays plain when compressing does not pay).
    pub(super) fn stage_frame(&self, prestage: &Prestage) -> EarlyFrame {
        let streams = self.streams.clone();
        let dest = prestage.dest.clone();
        let files = prestage.files.clone();
        let turn = prestage.turn.clone();
        Box::pin(async move {
            let entries: Vec<(String, ShipFile)> =
                files.iter().map(|(r, f)| (r.clone(), f.clone())).collect();
            let stream = tokio::task::spawn_blocking(move || streams.get(&entries, true))
                .await
                .ok()?
                .ok()?;
            Some((stage_script(&dest, &files, stream.zstd), stream, turn))
        })
    }

    /// Keeps what was staged with the probe for the task that ships it.
    pub(super) fn keep_prestaged(&self, prestage: &Prestage, answer: oneshot::Receiver<Ran>) {
        *self
            .prestaged
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(EarlyAnswer {
            dest: prestage.dest.clone(),
            key: identity(&prestage.files),
            answer,
        });
    }

    /// Where `files` were staged with the probe, if they were, whole, to
    /// `dest`: whether `dest` was missing, and the staging folder. A
    /// staging that failed (no `zstd`, say) is not an error: the files
    /// then ship as usual, and say why if they cannot.
    async fn take_prestaged(
        &self,
        dest: &str,
        files: &BTreeMap<String, ShipFile>,
    ) -> Result<Option<(bool, String)>, TransportError> {
        let prestaged = {
            let mut slot = self
                .prestaged
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !slot
                .as_ref()
                .is_some_and(|p| p.dest == dest && p.key == identity(files))
            {
                return Ok(None);
            }
            slot.take()
        };
        let Some(prestaged) = prestaged else {
            return Ok(None);
        };
        match tokio::time::timeout(STREAM_LIMIT + GRACE, prestaged.answer).await {
            Ok(Ok(ran)) if ran.code == 0 => Ok(parse_staged(&ran.stdout)),
            Ok(_) => Ok(None),
            Err(_) => Err(self.error(format!(
                "staging the files for {dest} took longer than {}s: the host stopped answering",
                STREAM_LIMIT.as_secs()
            ))),
        }
    }

    /// Ships `files` under `dest`; with `receipt`, the same command leaves it.
    /// Files staged with the probe are moved into place; a few small text
    /// files (a rendered config, a one-file change) are written by the
    /// script itself (see [`inline_script`]); anything else (or staging
    /// that failed) goes as a stream now.
    pub(crate) async fn ship(
        &self,
        dest: &str,
        files: &BTreeMap<String, ShipFile>,
        receipt: Option<&Receipt>,
    ) -> Result<Shipped, TransportError> {
        let targets = targets_of(dest, files);
        if let Some(staged) = self.take_prestaged(dest, files).await? {
            let mut script = place_script(dest, files, &targets, (staged.0, &staged.1));
            if let Some(r) = receipt {
                script.push_str(&self.receipt_snippet(r));
            }
            let out = self.exec_own(&script, None, PLACE_WAIT).await?;
            // Moved, or not at all (the staging is gone): then it ships as if never staged.
            if out.success() {
                return Ok(Shipped {
                    files: self.shipped_records(dest, files, &targets, &out.stdout)?,
                    with_probe: true,
                });
            }
        }
        if let Some(contents) = inline_contents(files).await {
            let mut script = inline_script(dest, files, &targets, &contents);
            if let Some(r) = receipt {
                script.push_str(&self.receipt_snippet(r));
            }
            let out = self.exec_own(&script, None, PLACE_WAIT).await?;
            if !out.success() {
                return Err(self.error(format!(
                    "shipping to {dest} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            return Ok(Shipped {
                files: self.shipped_records(dest, files, &targets, &out.stdout)?,
                with_probe: false,
            });
        }
        let zstd = if let Some(z) = self.zstd.get() {
            *z
        } else {
            let out = self.exec_own("command -v zstd", None, OWN_WAIT).await?;
            *self.zstd.get_or_init(|| out.success())
        };
        let stream = {
            let entries: Vec<(String, ShipFile)> =
                files.iter().map(|(r, f)| (r.clone(), f.clone())).collect();
            let streams = self.streams.clone();
            tokio::task::spawn_blocking(move || streams.get(&entries, zstd))
                .await
                .map_err(|e| self.error(e.to_string()))?
                .map_err(|e| self.error(e))?
        };
        let mut script = unpack_script(dest, files, &targets, stream.zstd);
        if let Some(r) = receipt {
            script.push_str(&self.receipt_snippet(r));
        }
        let out = self
            .exec_own(&script, Some(&stream), STREAM_LIMIT + GRACE)
            .await?;
        if !out.success() {
            return Err(self.error(format!(
                "shipping to {dest} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(Shipped {
            files: self.shipped_records(dest, files, &targets, &out.stdout)?,
            with_probe: false,
        })
    }

    /// The record of each file shipped, from the stat lines that end the
    /// shipping's output.
    fn shipped_records(
        &self,
        dest: &str,
        files: &BTreeMap<String, ShipFile>,
        targets: &[String],
        stdout: &[u8],
    ) -> Result<BTreeMap<String, ShippedFile>, TransportError> {
        let stats = parse_stats(&String::from_utf8_lossy(stdout));
        let mut records = BTreeMap::new();
        for ((rel, file), target) in files.iter().zip(targets) {
            let stat = stats.get(target.as_str()).ok_or_else(|| {
                self.error(format!(
                    "{target} is missing right after it was shipped to {dest}"
                ))
            })?;
            records.insert(
                rel.clone(),
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
        receipt: Option<&Receipt>,
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
        if let Some(r) = receipt {
            script.push_str(&self.receipt_snippet(r));
        }
        script.push_str("true\n");
        let out = self.exec_own(&script, None, PLACE_WAIT).await?;
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

/// Removes staging folders (and files, see [`inline_script`]) left beside
/// `$cairn_base` by a shipping that died (a host that lost power, a killed
/// shell): each is named after the pid of the shell that made it, so only
/// those whose shell is gone go.
const SWEEP_STAGING: &str = "for cairn_old in \"$cairn_base\"/.cairn-staging-*; do\n[ -e \"$cairn_old\" ] || continue\ncairn_op=${cairn_old##*/.cairn-staging-}\ncairn_op=${cairn_op%%-*}\ncase \"$cairn_op\" in ''|*[!0-9]*) continue;; esac\n[ -d \"/proc/$cairn_op\" ] || rm -rf \"$cairn_old\" || true\ndone\n";

/// `mkdir -p` of `dirs` (each quoted for the shell) only when one of them
/// is missing: the folders nearly always exist, and a test is no process.
fn make_missing_dirs(dirs: &[&str]) -> String {
    let tests: Vec<String> = dirs.iter().map(|d| format!("[ -d {d} ]")).collect();
    format!("{} || mkdir -p -- {}", tests.join(" && "), dirs.join(" "))
}

/// Removes the staging folder `$cairn_st` when the script ends, if it is
/// still there: once its files are in place (a new folder is the staging
/// folder renamed), it is not, and the test is no process.
const REMOVE_STAGING_ON_EXIT: &str = "trap '[ ! -e \"$cairn_st\" ] || rm -rf \"$cairn_st\"' EXIT\n";

/// One step up from `$cairn_base` without a process (`dirname` is one):
/// the part before its last `/`, or `/`, or `.` for a bare name.
const PARENT_OF_BASE: &str = "case $cairn_base in */*) cairn_base=${cairn_base%/*}; cairn_base=${cairn_base:-/};; *) cairn_base=.;; esac";

/// Where a file set's files go, and how they are staged beside them.
struct Layout {
    /// `dest` quoted for the shell.
    dest: String,
    /// The folder that holds `dest`.
    parent: String,
    /// Where a stream is staged when `dest` exists: inside it, or beside a
    /// single file.
    root: String,
    /// A single file (`""` is its path in the set), never staged as a folder.
    single: bool,
    /// Parent folders of every target.
    dirs: Vec<String>,
}

impl Layout {
    fn of(dest: &str, files: &BTreeMap<String, ShipFile>, targets: &[String]) -> Layout {
        let single = files.len() == 1 && files.contains_key("");
        let parent = Path::new(dest)
            .parent()
            .unwrap_or(Path::new("/"))
            .to_string_lossy()
            .into_owned();
        let root = if single {
            parent.clone()
        } else {
            dest.to_string()
        };
        let mut dirs: Vec<String> = targets
            .iter()
            .filter_map(|t| Some(Path::new(t).parent()?.to_string_lossy().into_owned()))
            .collect();
        dirs.sort();
        dirs.dedup();
        Layout {
            dest: shell_quote(dest),
            parent: shell_quote(&parent),
            root: shell_quote(&root),
            single,
            dirs,
        }
    }

    /// Lines that set `$cairn_dest`, and `$cairn_base`, where the stream is
    /// staged: beside `dest` when it does not exist yet (`$cairn_fresh`
    /// is 1: the staging folder becomes `dest` in one rename), else inside it.
    fn choose_base(&self) -> String {
        format!(
            "cairn_dest={dest}\n{make_parent}\nif {fresh_test}; then cairn_fresh=1; cairn_base={parent}; else cairn_fresh=0; cairn_base={root}; {make_base}; fi\n{SWEEP_STAGING}",
            dest = self.dest,
            make_parent = make_missing_dirs(&[&self.parent]),
            parent = self.parent,
            root = self.root,
            make_base = make_missing_dirs(&["\"$cairn_base\""]),
            fresh_test = self.fresh_test(),
        )
    }

    /// [`Layout::choose_base`] for files staged with the probe, which
    /// creates no folder: a task that never comes leaves nothing behind
    /// but its staging, which the shell removes. So the staging goes in
    /// the nearest folder that exists on the way to where it would go.
    fn choose_base_creating_nothing(&self) -> String {
        format!(
            "cairn_dest={dest}\nif {fresh_test}; then cairn_fresh=1; cairn_base={parent}; else cairn_fresh=0; cairn_base={root}; fi\nwhile [ ! -d \"$cairn_base\" ]; do {PARENT_OF_BASE}; done\n{SWEEP_STAGING}",
            dest = self.dest,
            parent = self.parent,
            root = self.root,
            fresh_test = self.fresh_test(),
        )
    }

    /// The test that `dest` is new, so its staging folder can become it in
    /// one rename (never for a single file).
    fn fresh_test(&self) -> &'static str {
        if self.single {
            "false"
        } else {
            "[ ! -e \"$cairn_dest\" ]"
        }
    }

    /// Lines that move what is staged in `$cairn_st` into place, then stat
    /// every target.
    fn place(&self, files: &BTreeMap<String, ShipFile>, targets: &[String]) -> String {
        let mut script = String::from(
            "if [ $cairn_fresh = 1 ]; then\nchmod 755 \"$cairn_st\"\nmv -T \"$cairn_st\" \"$cairn_dest\"\nelse\n",
        );
        let dirs: Vec<String> = self.dirs.iter().map(|d| shell_quote(d)).collect();
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        if !dirs.is_empty() {
            script.push_str(&make_missing_dirs(&dirs));
            script.push('\n');
        }
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
}

/// The line that unpacks the stream on stdin into `$cairn_st`, then makes
/// it durable: a full disk fails here, before anything is replaced. `-m`:
/// a file carries the time it was written, as any file written on the
/// host does (the stream's times are all 0, cairn's, not the operator's),
/// and tar sets no time on each.
fn unpack_lines(zstd: bool) -> &'static str {
    if zstd {
        "zstd -dcq | tar -x -m -f - -C \"$cairn_st\" --no-same-owner\nsync -f \"$cairn_st\" 2>/dev/null || sync\n"
    } else {
        // A plain stream may be the shell's own input, on hosts with GNU
        // tar (see `shells`): the file named in $CAIRN_STREAM_TAKEN says
        // this command reads it, tar reads it in whole records (`-B`, GNU
        // tar's), and nothing after tar reads any more. Elsewhere the
        // stream comes through a pipe of its own, for any tar.
        "if [ -n \"${CAIRN_STREAM_TAKEN:-}\" ]; then\n: > \"$CAIRN_STREAM_TAKEN\"\ntar -x -m -B -b 20 -f - -C \"$cairn_st\" --no-same-owner\nexec < /dev/null\nelse\ntar -x -m -f - -C \"$cairn_st\" --no-same-owner\nfi\nsync -f \"$cairn_st\" 2>/dev/null || sync\n"
    }
}

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
    let layout = Layout::of(dest, files, targets);
    let mut script = String::from("set -e\n");
    script.push_str(&layout.choose_base());
    script.push_str("cairn_st=$(mktemp -d \"$cairn_base/.cairn-staging-$$-XXXXXX\")\n");
    script.push_str(REMOVE_STAGING_ON_EXIT);
    script.push_str(unpack_lines(zstd));
    script.push_str(&layout.place(files, targets));
    script
}

/// What a staging script sent with the probe prints first when its files
/// are staged; then whether `dest` was missing (1) or not (0), and on the
/// next line the staging folder.
const STAGED: &str = "__CAIRN_STAGED__";

/// The script sent with the lock and the probe (see `Prestage`): it stages
/// the stream on its stdin as [`unpack_script`] would, but in the nearest
/// folder that exists (it creates none), and stops there. The staging folder is named after the host's shell, which
/// removes it when it ends (its list of staged folders), unless the task
/// moved it into place first ([`place_script`]); one whose shell died is
/// swept by the next shipping, as any. A compressed stream needs `zstd`,
/// which the probe has not told yet: without it, nothing is staged.
fn stage_script(dest: &str, files: &BTreeMap<String, ShipFile>, zstd: bool) -> String {
    let targets = targets_of(dest, files);
    let layout = Layout::of(dest, files, &targets);
    let mut script = String::from("set -e\n");
    if zstd {
        script
            .push_str("command -v zstd >/dev/null 2>&1 || { echo 'no zstd here' >&2; exit 9; }\n");
    }
    script.push_str(&layout.choose_base_creating_nothing());
    script
        .push_str("cairn_st=$(mktemp -d \"$cairn_base/.cairn-staging-$CAIRN_SHELL_PID-XXXXXX\")\n");
    script.push_str(REMOVE_STAGING_ON_EXIT);
    script.push_str("printf '%s\\n' \"$cairn_st\" >> \"$CAIRN_SHELL_DIR/staged\"\n");
    script.push_str(unpack_lines(zstd));
    let _ = write!(
        script,
        "trap - EXIT\nprintf '{STAGED} %s\\n%s' \"$cairn_fresh\" \"$cairn_st\"\n"
    );
    script
}

/// What [`stage_script`] printed: whether `dest` was missing, and where
/// the files are staged.
fn parse_staged(stdout: &[u8]) -> Option<(bool, String)> {
    let text = std::str::from_utf8(stdout).ok()?;
    let (first, folder) = text.split_once('\n')?;
    let fresh = match first.strip_prefix(STAGED)?.trim() {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    folder
        .contains("/.cairn-staging-")
        .then(|| (fresh, folder.to_string()))
}

/// The task's command after its files were staged with the probe: moves
/// them from `staged` into place as [`unpack_script`] would have (in one
/// rename if `dest` is still missing), then stats every target. Fails,
/// moving nothing, if the staging folder is gone.
fn place_script(
    dest: &str,
    files: &BTreeMap<String, ShipFile>,
    targets: &[String],
    (fresh, staged): (bool, &str),
) -> String {
    let layout = Layout::of(dest, files, targets);
    let mut script = format!(
        "set -e\ncairn_dest={dest}\ncairn_st={staged}\n[ -d \"$cairn_st\" ] || {{ echo 'the files staged with the probe are gone' >&2; exit 7; }}\n{REMOVE_STAGING_ON_EXIT}{make_parent}\ncairn_fresh={fresh}\n[ -e \"$cairn_dest\" ] && cairn_fresh=0\n",
        dest = layout.dest,
        make_parent = make_missing_dirs(&[&layout.parent]),
        staged = shell_quote(staged),
        fresh = u8::from(fresh && !layout.single),
    );
    script.push_str(&layout.place(files, targets));
    script
}

/// The most a file set may hold, in bytes, to be written by the shipping
/// script itself rather than sent as a tar stream.
const INLINE_LIMIT: u64 = 16 * 1024;

/// The contents of `files`, in the set's order, when they can be written
/// by the shipping script itself: at most [`INLINE_LIMIT`] bytes in all,
/// text (a script is text) without a NUL (a shell variable cannot hold
/// one), and each as long as the plan says. Otherwise `None`, and they go
/// as a stream, which reports a file that changed or cannot be read.
async fn inline_contents(files: &BTreeMap<String, ShipFile>) -> Option<Vec<String>> {
    let total: u64 = files.values().map(|f| f.entry.size).sum();
    if files.is_empty() || total > INLINE_LIMIT {
        return None;
    }
    let sources: Vec<(crate::bundle::FileData, u64)> = files
        .values()
        .map(|f| (f.data.clone(), f.entry.size))
        .collect();
    tokio::task::spawn_blocking(move || {
        sources
            .iter()
            .map(|(data, size)| {
                let bytes = data.read().ok()?;
                (bytes.len() as u64 == *size && !bytes.contains(&0)).then_some(())?;
                String::from_utf8(bytes.to_vec()).ok()
            })
            .collect()
    })
    .await
    .ok()?
}

/// The script that writes `files` (their `contents`) where
/// [`unpack_script`] would put them, with no stream and no `tar`: each
/// file is written by the shell's own `printf` into a staging file and
/// renamed into place, so a host pays for a one-file change what it pays
/// for the renames. As with a stream, a new folder is staged whole beside
/// its place and renamed into it at once; the staging is made durable
/// before anything is replaced (a full disk fails the shipping with
/// `dd`'s message, and changes nothing); what a failed shipping staged goes
/// when the script ends, and what a killed one left is swept by the next.
fn inline_script(
    dest: &str,
    files: &BTreeMap<String, ShipFile>,
    targets: &[String],
    contents: &[String],
) -> String {
    let layout = Layout::of(dest, files, targets);
    let mut script = String::from("set -e\n");
    script.push_str(&layout.choose_base());
    script.push_str("trap 'for cairn_x in \"$cairn_base\"/.cairn-staging-$$-*; do [ ! -e \"$cairn_x\" ] || rm -rf \"$cairn_x\"; done' EXIT\n");
    // A new folder: staged whole, renamed into place.
    script.push_str("if [ $cairn_fresh = 1 ]; then\ncairn_st=$(mktemp -d \"$cairn_base/.cairn-staging-$$-XXXXXX\")\n");
    let mut subdirs: Vec<String> = files
        .keys()
        .filter_map(|rel| {
            Some(format!(
                "\"$cairn_st\"/{}",
                shell_quote(rel.rsplit_once('/')?.0)
            ))
        })
        .collect();
    subdirs.sort();
    subdirs.dedup();
    if !subdirs.is_empty() {
        let _ = writeln!(script, "mkdir -p -- {}", subdirs.join(" "));
    }
    for ((rel, file), content) in files.iter().zip(contents) {
        let path = format!("\"$cairn_st\"/{}", shell_quote(entry_name(rel)));
        script.push_str(&write_file_lines(&path, content, file.entry.mode));
    }
    script.push_str("umask \"${CAIRN_UMASK:-0022}\"\nsync -f \"$cairn_st\" 2>/dev/null || sync\nchmod 755 \"$cairn_st\"\nmv -T \"$cairn_st\" \"$cairn_dest\"\nelse\n");
    // Files into an existing folder: each staged beside the folder's
    // files, then renamed over its old version.
    let dirs: Vec<String> = layout.dirs.iter().map(|d| shell_quote(d)).collect();
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    if !dirs.is_empty() {
        script.push_str(&make_missing_dirs(&dirs));
        script.push('\n');
    }
    for (i, ((_, file), content)) in files.iter().zip(contents).enumerate() {
        let path = format!("\"$cairn_base/.cairn-staging-$$-{i}\"");
        script.push_str(&write_file_lines(&path, content, file.entry.mode));
    }
    script
        .push_str("umask \"${CAIRN_UMASK:-0022}\"\nsync -f \"$cairn_base\" 2>/dev/null || sync\n");
    for (i, target) in targets.iter().enumerate() {
        let _ = writeln!(
            script,
            "mv -f \"$cairn_base/.cairn-staging-$$-{i}\" {}",
            shell_quote(target)
        );
    }
    script.push_str("fi\nset +e\n");
    script.push_str(&stat_command(targets));
    script.push_str(" || true\n");
    script
}

/// Lines that write `content` to `path` (quoted for the shell) with
/// exactly `mode`, by the shell's `printf`, a builtin: the umask gives the
/// mode as the file is made, and only a mode `printf` cannot make (execute
/// or set-id bits) costs a `chmod`. When the builtin fails, the content is
/// written again through `dd`, whose message names the cause (a full disk,
/// a folder it may not write). The caller restores the shell's umask
/// (`$CAIRN_UMASK`, set by the shell loop).
fn write_file_lines(path: &str, content: &str, mode: u32) -> String {
    let mode = mode & 0o7777;
    let plain = mode & 0o7111 == 0;
    let umask = if plain { !mode & 0o777 } else { 0o077 };
    let mut lines = format!(
        "cairn_c={content}\n[ ! -e {path} ] || rm -f {path}\numask {umask:03o}\nprintf '%s' \"$cairn_c\" 2>/dev/null > {path} || printf '%s' \"$cairn_c\" | dd of={path} status=none\n",
        content = shell_quote(content),
    );
    if !plain {
        let _ = writeln!(lines, "chmod {mode:o} {path}");
    }
    lines
}

/// Where each of `files` lands under `dest`, in the set's order.
fn targets_of(dest: &str, files: &BTreeMap<String, ShipFile>) -> Vec<String> {
    files
        .keys()
        .map(|rel| target_path(dest, rel).to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::FileData;
    use crate::bundle::stream::StreamCache;
    use crate::transport::ssh::shells::test_loop::TestLoop;
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::sync::Arc;

    fn files() -> BTreeMap<String, ShipFile> {
        [("a.txt", "alpha\n"), ("conf/b.conf", "beta = 2\n")]
            .into_iter()
            .map(|(rel, text)| (rel.to_string(), text_file(text, 0o644)))
            .collect()
    }

    fn stream(files: &BTreeMap<String, ShipFile>) -> Vec<u8> {
        let entries: Vec<(String, ShipFile)> =
            files.iter().map(|(r, f)| (r.clone(), f.clone())).collect();
        StreamCache::default()
            .get(&entries, false)
            .unwrap()
            .to_vec()
            .unwrap()
    }

    /// The step up that replaces `dirname` ends at `/` or `.`, so the
    /// search for the nearest existing folder always ends.
    #[test]
    fn a_staging_base_steps_up_without_a_process() {
        for (base, parent) in [
            ("/opt/bench", "/opt"),
            ("/opt", "/"),
            ("/opt/bench/", "/opt/bench"),
            ("opt/bench", "opt"),
            ("bench", "."),
        ] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "cairn_base='{base}'; {PARENT_OF_BASE}; printf %s \"$cairn_base\""
                ))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), parent, "{base}");
        }
    }

    /// Runs `script` with `sh`, `stdin` fed to it, as the host's shell would
    /// (this process stands for the shell, `shell_dir` for its folder).
    fn sh(script: &str, stdin: &[u8], shell_dir: &Path) -> std::process::Output {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("CAIRN_SHELL_PID", std::process::id().to_string())
            .env("CAIRN_SHELL_DIR", shell_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Staging folders left in `dir`.
    fn staging_in(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".cairn-staging-"))
            .collect()
    }

    #[test]
    fn files_staged_with_the_probe_are_moved_into_place_by_the_task() {
        let tmp = tempfile::tempdir().unwrap();
        let shell_dir = tmp.path().join("shell");
        std::fs::create_dir(&shell_dir).unwrap();
        let dest = tmp.path().join("opt/app").to_string_lossy().into_owned();
        let files = files();
        let staged = sh(
            &stage_script(&dest, &files, false),
            &stream(&files),
            &shell_dir,
        );
        assert!(staged.status.success(), "{staged:?}");
        let (fresh, folder) = parse_staged(&staged.stdout).expect("staged");
        assert!(fresh, "the destination did not exist");
        assert!(
            !tmp.path().join("opt").exists(),
            "staging puts nothing in place and makes no folder"
        );
        assert_eq!(Path::new(&folder).parent(), Some(tmp.path()));
        assert_eq!(
            std::fs::read_to_string(shell_dir.join("staged")).unwrap(),
            format!("{folder}\n"),
            "the shell's list of what to remove if the task never comes"
        );
        let targets = targets_of(&dest, &files);
        let placed = sh(
            &place_script(&dest, &files, &targets, (fresh, &folder)),
            b"",
            &shell_dir,
        );
        assert!(placed.status.success(), "{placed:?}");
        assert_eq!(
            std::fs::read_to_string(format!("{dest}/conf/b.conf")).unwrap(),
            "beta = 2\n"
        );
        let stats = parse_stats(&String::from_utf8_lossy(&placed.stdout));
        assert!(targets.iter().all(|t| stats.contains_key(t)), "{stats:?}");
        assert!(staging_in(tmp.path()).is_empty());
        // The staging is gone now: placing again moves nothing and says so.
        let again = sh(
            &place_script(&dest, &files, &targets, (fresh, &folder)),
            b"",
            &shell_dir,
        );
        assert_eq!(again.status.code(), Some(7));
        assert!(String::from_utf8_lossy(&again.stderr).contains("are gone"));
    }

    #[test]
    fn a_destination_made_after_staging_gets_the_files_one_by_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("app").to_string_lossy().into_owned();
        let files = files();
        let staged = sh(
            &stage_script(&dest, &files, false),
            &stream(&files),
            tmp.path(),
        );
        let (fresh, folder) = parse_staged(&staged.stdout).expect("staged");
        assert!(fresh);
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(format!("{dest}/kept.txt"), "not cairn's\n").unwrap();
        let targets = targets_of(&dest, &files);
        let placed = sh(
            &place_script(&dest, &files, &targets, (fresh, &folder)),
            b"",
            tmp.path(),
        );
        assert!(placed.status.success(), "{placed:?}");
        assert_eq!(
            std::fs::read_to_string(format!("{dest}/a.txt")).unwrap(),
            "alpha\n"
        );
        assert_eq!(
            std::fs::read_to_string(format!("{dest}/kept.txt")).unwrap(),
            "not cairn's\n"
        );
        assert!(staging_in(tmp.path()).is_empty());
    }

    /// A text file for a set, with `mode`.
    fn text_file(text: &str, mode: u32) -> ShipFile {
        ShipFile::from_bytes(Arc::new(text.as_bytes().to_vec()), mode)
    }

    /// A file set of text files: (path in the set, text, mode).
    fn text_files(files: &[(&str, &str, u32)]) -> BTreeMap<String, ShipFile> {
        files
            .iter()
            .map(|(rel, text, mode)| (rel.to_string(), text_file(text, *mode)))
            .collect()
    }

    /// Runs [`inline_script`] for `files` to `dest` with `sh`, its shell's
    /// umask 027, and prints the umask it ends with last.
    fn ship_inline(dest: &str, files: &BTreeMap<String, ShipFile>) -> std::process::Output {
        let targets = targets_of(dest, files);
        let contents = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(inline_contents(files))
            .expect("small text files go inline");
        let script = format!(
            "umask 027\nCAIRN_UMASK=0027\n{}umask\n",
            inline_script(dest, files, &targets, &contents)
        );
        let out = sh(&script, b"", Path::new("/nonexistent"));
        assert!(out.status.success(), "{out:?}");
        let stats = parse_stats(&String::from_utf8_lossy(&out.stdout));
        assert!(targets.iter().all(|t| stats.contains_key(t)), "{stats:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).ends_with("0027\n"),
            "the shell's umask is back: {out:?}"
        );
        out
    }

    fn mode_of(path: &str) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn small_text_files_are_written_by_the_script_into_a_new_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("opt/app").to_string_lossy().into_owned();
        let files = text_files(&[
            ("a.txt", "it's \"quoted\" $HOME `x`\n\n", 0o644),
            ("bin/run", "#!/bin/sh\necho hi\n", 0o755),
            ("conf/secret", "no newline at the end", 0o600),
        ]);
        ship_inline(&dest, &files);
        assert_eq!(
            std::fs::read_to_string(format!("{dest}/a.txt")).unwrap(),
            "it's \"quoted\" $HOME `x`\n\n",
            "written byte for byte, trailing newlines kept"
        );
        assert_eq!(
            std::fs::read_to_string(format!("{dest}/conf/secret")).unwrap(),
            "no newline at the end"
        );
        assert_eq!(mode_of(&format!("{dest}/a.txt")), 0o644);
        assert_eq!(mode_of(&format!("{dest}/bin/run")), 0o755);
        assert_eq!(mode_of(&format!("{dest}/conf/secret")), 0o600);
        assert_eq!(mode_of(&dest), 0o755);
        assert!(staging_in(&tmp.path().join("opt")).is_empty());
    }

    #[test]
    fn small_text_files_replace_their_old_versions_and_leave_no_staging() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("app").to_string_lossy().into_owned();
        std::fs::create_dir_all(format!("{dest}/conf")).unwrap();
        std::fs::write(format!("{dest}/conf/b.conf"), "old\n").unwrap();
        std::fs::write(format!("{dest}/kept.txt"), "not cairn's\n").unwrap();
        let files = text_files(&[
            ("conf/b.conf", "beta = 3\n", 0o640),
            ("new/c.sh", "exit 0\n", 0o750),
        ]);
        ship_inline(&dest, &files);
        assert_eq!(
            std::fs::read_to_string(format!("{dest}/conf/b.conf")).unwrap(),
            "beta = 3\n"
        );
        assert_eq!(mode_of(&format!("{dest}/conf/b.conf")), 0o640);
        assert_eq!(mode_of(&format!("{dest}/new/c.sh")), 0o750);
        assert_eq!(
            std::fs::read_to_string(format!("{dest}/kept.txt")).unwrap(),
            "not cairn's\n"
        );
        assert!(staging_in(Path::new(&dest)).is_empty());
        // A single file goes beside its place, and replaces it.
        let single: BTreeMap<String, ShipFile> =
            [(String::new(), text_file("one\n", 0o644))].into();
        let one = format!("{dest}/one.conf");
        ship_inline(&one, &single);
        assert_eq!(std::fs::read_to_string(&one).unwrap(), "one\n");
        assert!(staging_in(Path::new(&dest)).is_empty());
    }

    #[tokio::test]
    async fn only_small_text_files_go_inline() {
        let set =
            |file: ShipFile| -> BTreeMap<String, ShipFile> { [("f".to_string(), file)].into() };
        assert!(
            inline_contents(&set(text_file("text\n", 0o644)))
                .await
                .is_some()
        );
        assert!(inline_contents(&BTreeMap::new()).await.is_none());
        let big = "x".repeat(usize::try_from(INLINE_LIMIT).unwrap() + 1);
        assert!(
            inline_contents(&set(text_file(&big, 0o644)))
                .await
                .is_none()
        );
        assert!(
            inline_contents(&set(text_file("a\0b", 0o644)))
                .await
                .is_none()
        );
        let mut binary = text_file("ab", 0o644);
        binary.data = FileData::Bytes(Arc::new(vec![0xff, 0xfe]));
        assert!(inline_contents(&set(binary)).await.is_none());
        // Not the length the plan gave (the file changed since): the
        // stream, which says so.
        let mut changed = text_file("abc", 0o644);
        changed.entry.size = 2;
        assert!(inline_contents(&set(changed)).await.is_none());
    }

    /// Staged with the probe, but the task never came (the plan changed its
    /// mind, the run stopped): the host's shell removes it when it ends.
    #[tokio::test]
    async fn staging_no_task_took_goes_with_the_shell() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("app").to_string_lossy().into_owned();
        let files = files();
        let data = stream(&files);
        let script = stage_script(&dest, &files, false);
        let mut shell = TestLoop::start(&[]).await;
        let ran = shell.run(&script, &data, 0).await;
        assert_eq!(ran.code, 0, "{}", String::from_utf8_lossy(&ran.stderr));
        let (_, folder) = parse_staged(&ran.stdout).expect("staged");
        assert!(Path::new(&folder).is_dir());
        assert!(shell.finish().await);
        assert!(!Path::new(&folder).exists(), "removed with the shell");
        assert!(staging_in(tmp.path()).is_empty());
        assert!(!Path::new(&dest).exists());
    }
}
