//! The Clusterfile as written: reading it, and parsing its TOML into the raw
//! types, with spans.
//!
//! Text flows through three rooms: `read` loads the file into a
//! [`SourceFile`](crate::diagnostic::SourceFile), `parse` turns it into a
//! [`RawClusterfile`] (every syntax and type error collected, not just the
//! first), and [`raw`] defines those types, which mirror the TOML key for
//! key (and generate the JSON schema). Nothing here judges meaning: that is
//! `model::validate`, which takes the raw types and the [`Recovered`] names
//! of items that failed to parse. `edit` is the way back: `cairn add` and
//! `cairn delete` rewrite the hosts of the text, formatting kept. `address`
//! is the syntax of a host address and of ranges, which both validation and
//! `edit` read.

pub mod address;
pub mod edit;
mod parse;
pub mod raw;
mod read;

pub use parse::{Recovered, parse};
pub use raw::RawClusterfile;
pub use read::{LoadError, read};
