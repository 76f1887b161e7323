//! Reading files back on this machine (see `transport::read`): each path
//! looked at, regular files within the limit read whole.

use std::io::Read as _;
use std::path::Path;

use crate::transport::FileRead;

/// What is at each of `paths`, in order; links are followed, as the probe's hashing does.
pub(super) fn read_files(paths: &[String], limit: u64) -> Vec<FileRead> {
    paths
        .iter()
        .map(|p| read_one(Path::new(p), limit))
        .collect()
}

fn read_one(path: &Path, limit: u64) -> FileRead {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileRead::Missing,
        Err(_) => return FileRead::Unreadable,
    };
    if !meta.is_file() {
        return FileRead::NotAFile;
    }
    if meta.len() > limit {
        return FileRead::TooLarge { size: meta.len() };
    }
    let Ok(file) = std::fs::File::open(path) else {
        return FileRead::Unreadable;
    };
    // One byte past the limit tells a file that grew since the stat.
    let mut bytes = Vec::new();
    match file.take(limit + 1).read_to_end(&mut bytes) {
        Ok(n) if n as u64 > limit => FileRead::TooLarge { size: n as u64 },
        Ok(_) => FileRead::Content(bytes),
        Err(_) => FileRead::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_within_the_limit_and_says_what_it_did_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        std::fs::write(at("a"), "alpha\n").unwrap();
        std::fs::write(at("big"), vec![b'x'; 11]).unwrap();
        std::fs::create_dir(at("folder")).unwrap();
        let found = read_files(&[at("a"), at("big"), at("folder"), at("gone")], 10);
        assert_eq!(
            found,
            vec![
                FileRead::Content(b"alpha\n".to_vec()),
                FileRead::TooLarge { size: 11 },
                FileRead::NotAFile,
                FileRead::Missing,
            ]
        );
    }
}
