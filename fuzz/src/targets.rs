//! The bodies of cairn's fuzz targets, apart from libFuzzer, so that the
//! main test suite (`tests/fuzz_regressions.rs`) runs the inputs that once
//! crashed them through exactly the same code.
//!
//! Inputs may name local paths (a bundle `source`, a `file:` secret), and
//! cairn reads what they name: that is its job, not a bug, but a fuzzer
//! that finds `source = "/"` would spend its time hashing the whole
//! machine. So every target works in a sandbox folder holding copies of the
//! fixtures, and a Clusterfile whose local paths leave it is skipped
//! ([`leaves_sandbox`]) rather than run.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cairn::diagnostic::{SourceFile, render_plain};
use cairn::graph::TaskGraph;
use cairn::pipeline::Loaded;
use cairn::plan::{DiffOptions, Refresh};
use cairn::report::{Style, plan_text};
use cairn::state::{State, StateDir};
use toml::de::{DeTable, DeValue};

/// A Clusterfile through everything `cairn validate` does: bytes → UTF-8
/// text → parse → validate → compile the task graph (bundles scanned,
/// templates rendered) → on failure, the diagnostic rendered as a user
/// reads it. Any input may be invalid; none may panic.
pub struct ClusterfileTarget {
    /// Where the fuzzed Clusterfile is said to be; it is never written.
    path: PathBuf,
}

impl ClusterfileTarget {
    /// Fills `sandbox` with copies of what the seed Clusterfiles name:
    /// `web`, `bundles/web`, `quickstart/`, `secret.txt`, `not-utf8.tmpl`.
    pub fn new(repository: &Path, sandbox: &Path) -> ClusterfileTarget {
        let copy = |from: &str, to: &str| copy_in(&repository.join(from), &sandbox.join(to));
        copy("fixtures/local/web", "web");
        copy("fixtures/bundles", "bundles");
        copy("fixtures/broken/secret.txt", "secret.txt");
        copy("fixtures/broken/not-utf8.tmpl", "not-utf8.tmpl");
        copy("plans/quickstart", "quickstart");
        ClusterfileTarget {
            path: sandbox.join("Clusterfile"),
        }
    }

    /// Runs one input; `false` when it was skipped: not UTF-8 (cairn reads
    /// a Clusterfile with `read_to_string`, so such bytes never get
    /// further), or naming paths outside the sandbox.
    pub fn run(&self, data: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(data) else {
            return false;
        };
        if leaves_sandbox(text) {
            return false;
        }
        let source = SourceFile {
            path: self.path.clone(),
            text: Arc::new(text.to_string()),
        };
        if let Err(error) = Loaded::from_source(source).and_then(|loaded| loaded.check()) {
            let report = render_plain(&error);
            assert!(!report.is_empty(), "an error renders as something");
        }
        true
    }
}

/// A cluster's recorded state: arbitrary bytes as `.cairn/<cluster>/`'s
/// `state.json` and `journal.jsonl`, loaded the way every command loads
/// them (the snapshot read, the journal replayed over it), then used the
/// way plan and apply use them: diffed against the graph of fixtures/local
/// (offline), the plan rendered as text and JSON, and the state written
/// back as `compact` writes it, which must read again. A damaged state may
/// be refused with an error; nothing may panic.
///
/// Input: the state file's bytes, a line `#journal.jsonl`, the journal's
/// bytes. Without that line the whole input is the journal and there is
/// no state file (as after a first apply killed mid-run).
pub struct StateTarget {
    loaded: Loaded,
    graph: TaskGraph,
    dir: StateDir,
}

/// The line between the state file and the journal in a `StateTarget` input.
const JOURNAL_LINE: &[u8] = b"#journal.jsonl\n";

impl StateTarget {
    /// Compiles fixtures/local once; the state files go in `sandbox`.
    pub fn new(repository: &Path, sandbox: &Path) -> StateTarget {
        let loaded = Loaded::read(&repository.join("fixtures/local/Clusterfile"))
            .expect("fixtures/local is valid");
        let graph = loaded.check().expect("fixtures/local compiles");
        let dir = StateDir::new(sandbox, &loaded.model.name);
        dir.create().expect("can create the state folder");
        StateTarget { loaded, graph, dir }
    }

    pub fn run(&self, data: &[u8]) {
        let (state_file, journal) = split_state_input(data);
        match state_file {
            Some(bytes) => std::fs::write(self.dir.state_file(), bytes),
            None => std::fs::remove_file(self.dir.state_file()).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }),
        }
        .expect("can write the state file into the sandbox");
        std::fs::write(self.dir.journal_file(), journal).expect("can write the journal");
        let Ok(mut state) = self.dir.load() else {
            return;
        };
        let options = DiffOptions {
            offline: true,
            ..DiffOptions::default()
        };
        let plan = cairn::plan::diff(
            &self.loaded.model,
            &self.graph,
            &state,
            &Refresh::default(),
            &options,
        );
        assert!(!plan_text(&plan, Style::plain(), false).is_empty());
        serde_json::to_string(&plan.to_json()).expect("a plan serializes");
        // What `compact` writes at the end of an apply, without the fsync.
        state.prune_manifests();
        let written = serde_json::to_vec_pretty(&state).expect("a state serializes");
        if let Err(error) = serde_json::from_slice::<State>(&written) {
            panic!("a state cairn writes does not read back: {error}");
        }
    }
}

/// Splits a `StateTarget` input at its first `#journal.jsonl` line.
fn split_state_input(data: &[u8]) -> (Option<&[u8]>, &[u8]) {
    if let Some(journal) = data.strip_prefix(JOURNAL_LINE) {
        return (Some(b""), journal);
    }
    let marker = [b"\n", JOURNAL_LINE].concat();
    match data.windows(marker.len()).position(|w| w == marker) {
        Some(at) => (Some(&data[..=at]), &data[at + marker.len()..]),
        None => (None, data),
    }
}

/// Copies a file or a folder, recursively.
fn copy_in(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("can create a sandbox folder");
        for entry in std::fs::read_dir(from).expect("fixture folder is readable") {
            let entry = entry.expect("fixture folder is readable");
            copy_in(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).expect("can copy a fixture into the sandbox");
    }
}

/// Whether a Clusterfile names a local path that leaves the sandbox: a
/// `source` or a `file:` secret that is absolute, starts at `~`, or climbs
/// with `..`. Text that is not valid TOML never reaches the code that reads
/// paths (cairn stops at syntax errors), so it does not leave.
pub fn leaves_sandbox(text: &str) -> bool {
    let (root, errors) = DeTable::parse_recoverable(text);
    errors.is_empty() && table_leaves(root.get_ref())
}

fn table_leaves(table: &DeTable<'_>) -> bool {
    table
        .iter()
        .any(|(key, value)| value_leaves(value.get_ref(), key.get_ref() == "source"))
}

fn value_leaves(value: &DeValue<'_>, is_source: bool) -> bool {
    match value {
        DeValue::String(text) => {
            let path = match text.strip_prefix("file:") {
                Some(path) => path,
                None if is_source => text,
                None => return false,
            };
            path.starts_with('~')
                || Path::new(path)
                    .components()
                    .any(|c| matches!(c, Component::RootDir | Component::ParentDir))
        }
        DeValue::Array(items) => items.iter().any(|v| value_leaves(v.get_ref(), is_source)),
        DeValue::Table(table) => table_leaves(table),
        _ => false,
    }
}
