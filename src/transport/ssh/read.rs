//! Reading files back from a host in one command (see `transport::read`).
//!
//! One `stat` names what is at every path (size and type); the regular
//! files within the limit then come back as one `tar` stream, which carries
//! any bytes (a file's content may be binary) with their lengths. Two
//! processes on the host however many files are asked for, one round trip
//! on the host's shell.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::time::Duration;

use super::SshTransport;
use crate::transport::{FileRead, TransportError, shell_quote};

/// Ends the `stat` lines; the tar stream follows.
const STATS_END: &str = "__CAIRN_STATS_END__";

/// How long reading a host's files may take.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

impl SshTransport {
    /// What is at each of `paths` now, the content of regular files up to
    /// `limit` bytes, in the order asked.
    pub(crate) async fn read_files(
        &self,
        paths: &[String],
        limit: u64,
    ) -> Result<Vec<FileRead>, TransportError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .exec(&read_script(paths, limit), None, Some(READ_TIMEOUT))
            .await?;
        if !out.success() {
            return Err(self.error(format!(
                "reading files back failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_read(&out.stdout, paths, limit).map_err(|why| self.error(why))
    }
}

/// The host's side: `stat` lines, [`STATS_END`], then a tar stream of the
/// regular files within `limit` (dereferencing links, as `sha256sum`
/// in the probe does).
fn read_script(paths: &[String], limit: u64) -> String {
    let mut quoted = String::new();
    for p in paths {
        quoted.push(' ');
        quoted.push_str(&shell_quote(p));
    }
    let mut script = String::new();
    let _ = write!(
        script,
        "cairn_s=$(stat -L -c '%s %f %n' --{quoted} 2>/dev/null)\n\
         printf '%s\\n{STATS_END}\\n' \"$cairn_s\"\n\
         set --\n\
         while read -r cairn_z cairn_m cairn_p; do\n\
         \x20 case \"$cairn_m\" in 8???) [ \"$cairn_z\" -le {limit} ] && [ -r \"$cairn_p\" ] && set -- \"$@\" \"$cairn_p\";; esac\n\
         done <<CAIRN_STATS\n$cairn_s\nCAIRN_STATS\n\
         [ $# -eq 0 ] || tar -c -h -f - -- \"$@\" 2>/dev/null\n\
         exit 0\n"
    );
    script
}

/// Reads what [`read_script`] printed.
fn parse_read(stdout: &[u8], paths: &[String], limit: u64) -> Result<Vec<FileRead>, String> {
    let end = format!("\n{STATS_END}\n");
    let split = stdout
        .windows(end.len())
        .position(|w| w == end.as_bytes())
        .ok_or("reading files back: the host's answer was cut short")?;
    let stats_text = String::from_utf8_lossy(&stdout[..split]);
    let tar_bytes = &stdout[split + end.len()..];

    // path -> (size, regular file)
    let mut stats: HashMap<&str, (u64, bool)> = HashMap::new();
    for line in stats_text.lines() {
        let mut fields = line.splitn(3, ' ');
        let (Some(size), Some(mode), Some(path)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(size), Ok(mode)) = (size.parse::<u64>(), u32::from_str_radix(mode, 16)) else {
            continue;
        };
        stats.insert(path, (size, mode & 0o170_000 == 0o100_000));
    }

    // Member name (tar drops a leading `/`) -> bytes.
    let mut contents: HashMap<String, Vec<u8>> = HashMap::new();
    if !tar_bytes.is_empty() {
        let mut archive = tar::Archive::new(tar_bytes);
        let entries = archive
            .entries()
            .map_err(|e| format!("reading files back: {e}"))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| format!("reading files back: {e}"))?;
            let name = entry
                .path()
                .map_err(|e| format!("reading files back: {e}"))?
                .to_string_lossy()
                .into_owned();
            let bytes = if entry.header().entry_type().is_hard_link() {
                // Two of the paths are one file: tar sends its bytes once.
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.to_string_lossy().into_owned());
                match target.and_then(|t| contents.get(&t)) {
                    Some(b) => b.clone(),
                    None => continue,
                }
            } else {
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("reading files back: {e}"))?;
                bytes
            };
            contents.insert(name, bytes);
        }
    }

    Ok(paths
        .iter()
        .map(|path| match stats.get(path.as_str()) {
            None => FileRead::Missing,
            Some((_, false)) => FileRead::NotAFile,
            Some((size, true)) if *size > limit => FileRead::TooLarge { size: *size },
            Some(_) => match contents.remove(path.trim_start_matches('/')) {
                // It grew between the stat and the read.
                Some(bytes) if bytes.len() as u64 > limit => FileRead::TooLarge {
                    size: bytes.len() as u64,
                },
                Some(bytes) => FileRead::Content(bytes),
                None => FileRead::Unreadable,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script, run by `sh` here, over files in a temp folder.
    fn read_here(paths: &[String], limit: u64) -> Vec<FileRead> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(read_script(paths, limit))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        parse_read(&out.stdout, paths, limit).unwrap()
    }

    #[test]
    fn reads_text_binary_and_odd_names_and_says_what_it_did_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        std::fs::write(at("a.conf"), "alpha = 1\n").unwrap();
        std::fs::write(at("with space 'quoted'"), "x").unwrap();
        std::fs::write(at("bin"), [0u8, 159, 146, 150, 0, 10]).unwrap();
        std::fs::write(at("big"), vec![b'x'; 100]).unwrap();
        std::fs::write(at("empty"), "").unwrap();
        std::fs::hard_link(at("a.conf"), at("same-as-a")).unwrap();
        std::fs::create_dir(at("folder")).unwrap();
        let paths: Vec<String> = [
            "a.conf",
            "with space 'quoted'",
            "bin",
            "big",
            "empty",
            "same-as-a",
            "folder",
            "gone",
        ]
        .iter()
        .map(|n| at(n))
        .collect();
        let found = read_here(&paths, 50);
        assert_eq!(
            found,
            vec![
                FileRead::Content(b"alpha = 1\n".to_vec()),
                FileRead::Content(b"x".to_vec()),
                FileRead::Content(vec![0, 159, 146, 150, 0, 10]),
                FileRead::TooLarge { size: 100 },
                FileRead::Content(Vec::new()),
                FileRead::Content(b"alpha = 1\n".to_vec()),
                FileRead::NotAFile,
                FileRead::Missing,
            ]
        );
    }

    #[test]
    fn an_answer_cut_short_is_an_error() {
        assert!(parse_read(b"12 81a4 /x\n", &["/x".into()], 10).is_err());
    }
}
