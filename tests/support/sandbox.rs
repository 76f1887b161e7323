//! A [`Sandbox`]: fixtures/local copied into a temp dir, where the CLI tests
//! run the real binary. The fixture's one host uses the local transport, so
//! everything cairn writes (its `out/` and its state in `.cairn/`) stays in
//! the temp dir, which is removed when the sandbox is dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{cairn, stderr, stdout, transcript};

pub(crate) struct Sandbox {
    dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Sandbox {
    pub(crate) fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(Path::new("fixtures/local"), dir.path());
        Sandbox { dir }
    }

    /// The temp dir itself: the Clusterfile's folder.
    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub(crate) fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    pub(crate) fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} has no `{from}`");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// Adds `token`, a secret read from `CAIRN_TEST_TOKEN`, to the fixture's `[vars]`.
    pub(crate) fn add_token_secret(&self) {
        self.edit(
            "Clusterfile",
            "port = 8080",
            "port = 8080\ntoken = { secret = \"env:CAIRN_TEST_TOKEN\" }",
        );
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        cairn(self.dir.path(), args)
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("cairn runs")
    }

    pub(crate) fn apply(&self) -> Output {
        let out = self.run(&["apply", "--auto-approve"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "apply failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        out
    }

    pub(crate) fn plan_json(&self) -> serde_json::Value {
        let out = self.run(&["plan", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("plan --json is JSON")
    }

    /// Task → action, for tasks that change.
    pub(crate) fn planned_actions(&self) -> Vec<(String, String)> {
        let plan = self.plan_json();
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["action"] != "noop")
            .map(|c| {
                (
                    c["task"].as_str().unwrap().to_string(),
                    c["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// [`transcript`] of a run here, with the temp dir's path (which changes
    /// with every run) redacted to `[SANDBOX]`, and the time and run id of
    /// its JSON to `[TIME]` and `[RUN]`.
    pub(crate) fn transcript(&self, out: &Output) -> String {
        let mut text = redact_json_string(&transcript(out), "time", "[TIME]");
        text = redact_json_string(&text, "run", "[RUN]");
        let real = std::fs::canonicalize(self.root()).unwrap();
        for dir in [real.as_path(), self.root()] {
            text = text.replace(&dir.display().to_string(), "[SANDBOX]");
        }
        text
    }

    /// Every file under the sandbox's `.cairn`, as text.
    pub(crate) fn state_text(&self) -> String {
        let mut all = String::new();
        for entry in walkdir::WalkDir::new(self.path(".cairn")) {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                all.push_str(&String::from_utf8_lossy(
                    &std::fs::read(entry.path()).unwrap(),
                ));
            }
        }
        all
    }
}

/// `text` with the string value of every JSON field `key` replaced by `with`.
fn redact_json_string(text: &str, key: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    let opening = [format!("\"{key}\": \""), format!("\"{key}\":\"")];
    while let Some((at, len)) = opening
        .iter()
        .filter_map(|o| rest.find(o.as_str()).map(|at| (at, o.len())))
        .min()
    {
        let value_start = at + len;
        let Some(value_len) = rest[value_start..].find('"') else {
            break;
        };
        out.push_str(&rest[..value_start]);
        out.push_str(with);
        rest = &rest[value_start + value_len..];
    }
    out.push_str(rest);
    out
}
