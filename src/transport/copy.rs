//! Ad hoc copies (`cairn cp`): where a copy lands, as `cp -r` decides it,
//! whatever the transport.
//!
//! `cp SRC DEST` puts SRC *into* DEST when DEST ends with `/` or is a
//! folder, under SRC's own name, and makes SRC *be* DEST otherwise; `SRC/.`
//! copies the folder's contents into DEST. A transport looks at DEST (and
//! DEST/NAME) on its host in one round trip, reports what each is
//! ([`PathKind`]), and [`copy_target`] decides, refusing to put a file where
//! a folder is or a folder where a file is (a rename would otherwise move
//! it inside, or fail halfway).

/// What a path on a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Missing,
    File,
    Folder,
}

impl PathKind {
    /// Parses the word the look-up scripts print: `missing`, `file` or `folder`.
    pub(super) fn parse(word: &str) -> Option<PathKind> {
        match word.trim() {
            "missing" => Some(PathKind::Missing),
            "file" => Some(PathKind::File),
            "folder" => Some(PathKind::Folder),
            _ => None,
        }
    }
}

/// A shell snippet printing `missing`, `file` or `folder` for the quoted path `path_q`.
pub(super) fn kind_snippet(path_q: &str) -> String {
    format!(
        "if [ -d {path_q} ]; then echo folder; elif [ -e {path_q} ] || [ -L {path_q} ]; then echo file; else echo missing; fi\n"
    )
}

/// What is copied: one file, or a folder (by name, or only its contents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopySource<'a> {
    File {
        name: &'a str,
    },
    Folder {
        name: &'a str,
    },
    /// `SRC/.`: what the folder holds, not the folder itself.
    Contents,
}

impl CopySource<'_> {
    /// The name DEST/NAME would have, if SRC can go into DEST.
    pub(super) fn name(&self) -> Option<&str> {
        match self {
            CopySource::File { name } | CopySource::Folder { name } => Some(name),
            CopySource::Contents => None,
        }
    }
}

/// `dest` joined with `name`, without doubling a `/`.
pub(super) fn join(dest: &str, name: &str) -> String {
    if dest.ends_with('/') {
        format!("{dest}{name}")
    } else {
        format!("{dest}/{name}")
    }
}

/// The path a copy of `source` lands at, given what DEST (`dest_kind`) and
/// DEST/NAME (`inner_kind`) are on the host; the error says why it cannot.
pub(super) fn copy_target(
    dest: &str,
    source: CopySource<'_>,
    dest_kind: PathKind,
    inner_kind: PathKind,
) -> Result<String, String> {
    let into = source
        .name()
        .filter(|_| dest.ends_with('/') || dest_kind == PathKind::Folder);
    let (target, kind) = if let Some(name) = into {
        (join(dest, name), inner_kind)
    } else {
        let trimmed = dest.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() && !dest.is_empty() {
            "/"
        } else {
            trimmed
        };
        (trimmed.to_string(), dest_kind)
    };
    replace_conflict(&target, source, kind)?;
    Ok(target)
}

/// Why `source` cannot land at `target`, which is a `kind` now: a file never
/// replaces a folder, nor a folder a file.
pub fn replace_conflict(
    target: &str,
    source: CopySource<'_>,
    kind: PathKind,
) -> Result<(), String> {
    match (source, kind) {
        (CopySource::File { .. }, PathKind::Folder) => Err(format!(
            "{target} is a folder; a file cannot replace it (copy into it with a `/` at the end of DEST)"
        )),
        (CopySource::Folder { .. } | CopySource::Contents, PathKind::File) => Err(format!(
            "{target} exists and is not a folder; a folder cannot replace it"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CopySource::{Contents, File, Folder};
    use PathKind::{File as Regular, Folder as Dir, Missing};

    #[test]
    fn lands_where_cp_would_put_it() {
        let file = File { name: "a.conf" };
        let folder = Folder { name: "conf" };
        // DEST missing: the copy becomes DEST.
        assert_eq!(
            copy_target("/etc/x.conf", file, Missing, Missing),
            Ok("/etc/x.conf".into())
        );
        assert_eq!(
            copy_target("/opt/c", folder, Missing, Missing),
            Ok("/opt/c".into())
        );
        // DEST a folder, or ending with `/`: into it, under its own name.
        assert_eq!(
            copy_target("/etc", file, Dir, Missing),
            Ok("/etc/a.conf".into())
        );
        assert_eq!(
            copy_target("/opt/new/", folder, Missing, Missing),
            Ok("/opt/new/conf".into())
        );
        assert_eq!(
            copy_target("/opt", folder, Dir, Dir),
            Ok("/opt/conf".into())
        );
        // Contents: into DEST itself, whatever it is called.
        assert_eq!(
            copy_target("/opt/c/", Contents, Dir, Dir),
            Ok("/opt/c".into())
        );
        assert_eq!(copy_target("/", Contents, Dir, Dir), Ok("/".into()));
        // Replacing a file by a file is the point.
        assert_eq!(
            copy_target("/etc/x", file, Regular, Missing),
            Ok("/etc/x".into())
        );
    }

    #[test]
    fn a_file_never_replaces_a_folder_nor_a_folder_a_file() {
        let error = copy_target("/etc/", File { name: "app" }, Dir, Dir).unwrap_err();
        assert!(error.starts_with("/etc/app is a folder"), "{error}");
        let error = copy_target("/etc/x", Folder { name: "c" }, Regular, Missing).unwrap_err();
        assert!(error.contains("not a folder"), "{error}");
        assert!(copy_target("/etc/x", Contents, Regular, Regular).is_err());
    }
}
