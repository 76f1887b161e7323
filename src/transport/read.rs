//! Reading files back from a host, each up to a size limit: what
//! `cairn drift --diff` compares with what cairn shipped, and what
//! `cairn plan --diff` compares with what an apply would write.
//!
//! Each asks only for the files that differ, all of a host's in
//! one round trip ([`super::Transport::read_files`]); the answer comes back
//! in the order asked, one [`FileRead`] per path. A file over the limit is
//! not read at all: a diff of it would not be read by anyone either.

/// What a host holds at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRead {
    /// Nothing is there.
    Missing,
    /// Something other than a regular file (a folder, a device).
    NotAFile,
    /// A regular file longer than the limit: its size, its bytes not read.
    TooLarge { size: u64 },
    /// A regular file that could not be read (permissions).
    Unreadable,
    /// The file's bytes.
    Content(Vec<u8>),
}
