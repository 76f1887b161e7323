//! Fixtures for tests of the stages after validation: a Clusterfile written
//! into a temp folder beside the files it ships, read, parsed and validated
//! by the real stages, and compiled by the real builder. Nothing connects:
//! hosts are plain SSH addresses or `transport = "local"`, and compiling
//! only reads the folder.

use std::path::Path;

use super::{CompileError, CompileOptions, TaskGraph, compile};
use crate::bundle::manifest::HashCache;
use crate::diagnostic::Problems;
use crate::model::Model;

/// A Clusterfile and its files in a temp folder, validated into a model.
pub(crate) struct Fixture {
    dir: tempfile::TempDir,
    pub(crate) model: Model,
}

impl Fixture {
    /// Writes `files` (path relative to the Clusterfile, text) and then the
    /// Clusterfile, and validates it; panics naming every problem.
    pub(crate) fn new(clusterfile: &str, files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().expect("a temp folder");
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("inside the folder"))
                .expect("can make the file's folder");
            std::fs::write(&path, text).expect("can write the file");
        }
        let model = load(dir.path(), clusterfile);
        Fixture { dir, model }
    }

    /// Replaces the Clusterfile, in the same folder, and validates it again.
    pub(crate) fn rewrite(&mut self, clusterfile: &str) {
        self.model = load(self.dir.path(), clusterfile);
    }

    /// Compiles the model with `salt` for secret fingerprints.
    pub(crate) fn compile(&self, salt: &str) -> Result<TaskGraph, Vec<CompileError>> {
        let cache = HashCache::default();
        let options = CompileOptions {
            salt,
            hash_cache: &cache,
            cache_dir: self.dir.path().join(".cairn/cache"),
        };
        compile(&self.model, &options)
    }

    /// Compiles, panicking with every error if that fails.
    pub(crate) fn graph(&self, salt: &str) -> TaskGraph {
        self.compile(salt).unwrap_or_else(|errors| {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("compiles: {errors:?}")
        })
    }
}

fn load(dir: &Path, clusterfile: &str) -> Model {
    let path = dir.join("Clusterfile");
    std::fs::write(&path, clusterfile).expect("can write the Clusterfile");
    let source = crate::clusterfile::read(&path).expect("can read the Clusterfile");
    let mut problems = Problems::default();
    let model = crate::clusterfile::parse(&source, &mut problems).and_then(|(raw, recovered)| {
        crate::model::validate(&source, &raw, &recovered, &mut problems)
    });
    match model {
        Some(model) if problems.is_empty() => model,
        _ => {
            let messages: Vec<&str> = problems.0.iter().map(|p| p.message.as_str()).collect();
            panic!("the Clusterfile is valid: {messages:?}\n{clusterfile}")
        }
    }
}
