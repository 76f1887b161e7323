//! One image layer laid over the folder the layers below it made.
//!
//! A layer is a tar of changes: files and folders to add or replace, and
//! whiteouts saying what to take away (`.wh.NAME` removes `NAME` from the
//! layers below; `.wh..wh..opq` in a folder empties it of everything the
//! layers below put there). Nothing may land outside the root: a name with
//! `..` or an absolute name is refused, and a symbolic link whose target
//! is absolute or climbs out is rewritten to the same place inside the
//! root, as a container would see it (its `/` is the image's root), so
//! scanning the unpacked bundle, which follows links, never reads this
//! machine's own files. Device files and fifos are skipped, and links
//! that lead nowhere in the image or to a folder holding them are dropped
//! once all layers are laid: a bundle ships files. Owners are not kept (shipping sets its own); modes are.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// The name of an opaque whiteout: the folder holding it starts empty.
const OPAQUE: &str = ".wh..wh..opq";
/// The prefix of a whiteout: `.wh.NAME` removes `NAME`.
const WHITEOUT: &str = ".wh.";

/// Applies the layer tar `reader` over `root`. `layer` names it in errors.
pub(super) fn apply(reader: impl Read, root: &Path, layer: &str) -> Result<(), String> {
    let mut archive = tar::Archive::new(reader);
    // What this layer made: an opaque whiteout empties only what was below.
    let mut this_layer: HashSet<PathBuf> = HashSet::new();
    let bad = |e: std::io::Error| format!("layer {layer} is not a readable tar: {e}");
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let rel = inside_name(&raw).ok_or_else(|| {
            format!(
                "layer {layer}: entry `{}` leaves the image's root (`..` or an absolute path)",
                raw.display()
            )
        })?;
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue; // the root itself
        };
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let io = |e: std::io::Error| format!("layer {layer}: `{}`: {e}", rel.display());
        if name == OPAQUE {
            empty_below(root, &parent, &this_layer).map_err(io)?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            remove(&root.join(&parent).join(hidden)).map_err(io)?;
            continue;
        }
        let dest = root.join(&rel);
        std::fs::create_dir_all(root.join(&parent)).map_err(io)?;
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().map_err(bad)? & 0o7777;
        if kind.is_dir() {
            if dest.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                remove(&dest).map_err(io)?;
            }
            std::fs::create_dir_all(&dest).map_err(io)?;
            // Writable by us, whatever the image says: later entries land in it.
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode | 0o700))
                .map_err(io)?;
        } else if kind.is_file() {
            remove(&dest).map_err(io)?;
            entry.set_preserve_permissions(true);
            entry.unpack(&dest).map_err(io)?;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).map_err(io)?;
        } else if kind.is_symlink() {
            let target = entry.link_name().map_err(bad)?.unwrap_or_default();
            let target = contained_link(&rel, &target);
            remove(&dest).map_err(io)?;
            std::os::unix::fs::symlink(&target, &dest).map_err(io)?;
        } else if kind.is_hard_link() {
            let target = entry.link_name().map_err(bad)?.unwrap_or_default();
            let target = inside_name(&target).ok_or_else(|| {
                format!(
                    "layer {layer}: hard link `{}` points out of the image's root (`{}`)",
                    rel.display(),
                    target.display()
                )
            })?;
            remove(&dest).map_err(io)?;
            std::fs::hard_link(root.join(&target), &dest).map_err(io)?;
        } else {
            continue; // devices, fifos: nothing a bundle ships
        }
        for ancestor in rel.ancestors() {
            this_layer.insert(ancestor.to_path_buf());
        }
    }
    Ok(())
}

/// Removes the symbolic links under `root` that a bundle cannot ship: those
/// that lead nowhere (a target the image does not hold, a loop) and those
/// that lead to a folder holding them (`bin/X11 -> .`), which would make
/// the bundle endless. A bundle ships what links point at. Returns how many.
pub(super) fn drop_unshippable_links(root: &Path) -> std::io::Result<usize> {
    let mut dropped = 0;
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        if !entry.path_is_symlink() {
            continue;
        }
        let leads_nowhere = std::fs::metadata(entry.path()).is_err();
        let encloses_itself = || {
            let target = std::fs::canonicalize(entry.path())?;
            let folder = std::fs::canonicalize(entry.path().parent().unwrap_or(root))?;
            Ok::<bool, std::io::Error>(folder.starts_with(target))
        };
        if leads_nowhere || encloses_itself()? {
            std::fs::remove_file(entry.path())?;
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// `name` relative to the root, or `None` when it climbs out or is absolute.
fn inside_name(name: &Path) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(rel)
}

/// The target of a link at `link` (relative to the root) that stays in the
/// root: an absolute target is taken from the root, and `..` stops there,
/// as in a chroot. Relative, so the unpacked folder can move.
fn contained_link(link: &Path, target: &Path) -> PathBuf {
    let folder = link.parent().unwrap_or(Path::new(""));
    let mut resolved: Vec<&std::ffi::OsStr> = if target.is_absolute() {
        Vec::new()
    } else {
        folder.iter().collect()
    };
    for component in target.components() {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let mut out = PathBuf::new();
    for _ in folder {
        out.push("..");
    }
    for part in resolved {
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Removes a file, link or folder (with its content); nothing there is fine.
fn remove(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Empties `folder` of what the layers below made (not of this layer's own).
fn empty_below(root: &Path, folder: &Path, made: &HashSet<PathBuf>) -> std::io::Result<()> {
    let Ok(children) = std::fs::read_dir(root.join(folder)) else {
        return Ok(());
    };
    for child in children {
        let child = child?;
        if !made.contains(&folder.join(child.file_name())) {
            remove(&child.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_inside_the_root() {
        let cases = [
            ("bin/sh", "/usr/bin/dash", "../usr/bin/dash"),
            ("bin/sh", "dash", "../bin/dash"),
            ("a/b/c", "../../../../etc/passwd", "../../etc/passwd"),
            ("top", "/", "."),
        ];
        for (link, target, want) in cases {
            assert_eq!(
                contained_link(Path::new(link), Path::new(target)),
                PathBuf::from(want),
                "{link} -> {target}"
            );
        }
        assert_eq!(inside_name(Path::new("./a/b")), Some(PathBuf::from("a/b")));
        assert_eq!(inside_name(Path::new("a/../../b")), None);
        assert_eq!(inside_name(Path::new("/etc/passwd")), None);
    }

    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, content) in entries {
            let mut header = tar::Header::new_gnu();
            if let Some(text) = content {
                header.set_size(text.len() as u64);
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                builder
                    .append_data(&mut header, name, text.as_bytes())
                    .unwrap();
            } else {
                header.set_size(0);
                header.set_mode(0o755);
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, name, &[][..]).unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn links_to_nothing_or_to_their_own_folder_are_dropped() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("real"), "x").unwrap();
        std::os::unix::fs::symlink("real", root.path().join("good")).unwrap();
        std::os::unix::fs::symlink("missing", root.path().join("dangling")).unwrap();
        std::os::unix::fs::symlink("loop", root.path().join("loop")).unwrap();
        std::fs::create_dir(root.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(".", root.path().join("bin/X11")).unwrap();
        std::os::unix::fs::symlink("..", root.path().join("bin/up")).unwrap();
        assert_eq!(drop_unshippable_links(root.path()).unwrap(), 4);
        assert!(root.path().join("good").exists());
        assert!(root.path().join("dangling").symlink_metadata().is_err());
    }

    #[test]
    fn whiteouts_remove_what_lies_below() {
        let root = tempfile::tempdir().unwrap();
        let lower = layer(&[
            ("etc/", None),
            ("etc/a", Some("a")),
            ("etc/b", Some("b")),
            ("opt/", None),
            ("opt/old", Some("old")),
        ]);
        apply(lower.as_slice(), root.path(), "1").unwrap();
        let upper = layer(&[
            ("etc/.wh.a", Some("")),
            ("opt/new", Some("new")),
            ("opt/.wh..wh..opq", Some("")),
        ]);
        apply(upper.as_slice(), root.path(), "2").unwrap();
        assert!(!root.path().join("etc/a").exists(), "whited out");
        assert!(root.path().join("etc/b").exists());
        assert!(!root.path().join("opt/old").exists(), "opaque folder");
        assert!(
            root.path().join("opt/new").exists(),
            "this layer's own file stays"
        );
    }

    #[test]
    fn an_entry_climbing_out_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut raw = layer(&[("xx/evil", Some("x"))]);
        // Rename the entry in place: the tar crate refuses to write `..` itself.
        let at = raw.windows(7).position(|w| w == b"xx/evil").unwrap();
        raw[at..at + 7].copy_from_slice(b"../evil");
        let mut header = tar::Header::from_byte_slice(&raw[..512]).clone();
        header.set_cksum();
        raw[..512].copy_from_slice(header.as_bytes());
        let error = apply(raw.as_slice(), root.path(), "1").unwrap_err();
        assert!(error.contains("leaves the image's root"), "{error}");
    }
}
