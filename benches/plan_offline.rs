//! Compile + hash + plan (`--offline`) of a generated Clusterfile with
//! 1,000 hosts × 20 steps (19,001 tasks: one step runs on the first master
//! only), as `cairn plan --offline` does it: read, validate, build and seal
//! the graph, key every task, diff against the state, render the text.
//!
//! Two cases: `cold` (no state: everything is new) and `recorded` (every
//! task recorded with its current key: the plan is "no changes", and the
//! cost includes reading a 19,001-record state). Target: under 1 s.

use std::fmt::Write as _;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

fn generated_clusterfile(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from(
        "version = 1\nname = \"bench\"\n\n[vars]\nregistry = \"sealos.hub\"\nk8s_version = \"1.29.3\"\n\n\
         [[hosts]]\naddress = \"10.0.0.1-3\"\nroles = [\"master\"]\n\n\
         [[hosts]]\naddress = \"10.1.0.1-10.1.3.229\"\nroles = [\"node\"]\n\n",
    );
    for i in 0..20 {
        let _ = write!(
            text,
            "[[steps]]\nname = \"s{i:02}\"\nrun = \"echo step {i} ${{registry}} ${{k8s_version}} ${{host.address}}\"\n"
        );
        if i > 0 {
            let _ = writeln!(text, "after = [\"s{:02}\"]", i - 1);
        }
        if i == 10 {
            text.push_str("on = \"master[0]\"\ncapture = \"token\"\n");
        }
        if i == 12 {
            text.push_str("check = \"test -f /etc/x\"\n");
        }
        text.push('\n');
    }
    let path = dir.join("Clusterfile");
    std::fs::write(&path, text).expect("write the Clusterfile");
    path
}

/// `cairn plan --offline`, as the command runs it.
fn plan(file: &Path, rt: &tokio::runtime::Runtime) -> cairn::pipeline::Planned {
    cairn::pipeline::plan(
        file,
        &cairn::pipeline::Targets::default(),
        cairn::pipeline::Probe::Offline,
        rt,
    )
    .expect("plans")
}

/// Writes a state in which every task is recorded with its current key.
fn record_everything(file: &Path, rt: &tokio::runtime::Runtime) {
    use cairn::state::{RecordDetail, TaskRecord};
    let planned = plan(file, rt);
    let mut state = (*planned.refreshed.compiled.state).clone();
    for (seq, change) in planned.plan.changes.iter().enumerate() {
        state.tasks.insert(
            change.id.clone(),
            TaskRecord {
                key: change.key.clone().expect("key"),
                inputs: change.inputs.clone().expect("inputs"),
                detail: RecordDetail::Step {
                    captured: Some("token".into()),
                    captured_masked: false,
                    undo: None,
                    undo_vars: std::collections::BTreeMap::new(),
                    cwd: None,
                },
                finished_at: "2026-01-01T00:00:00Z".into(),
                seq: seq as u64,
            },
        );
    }
    planned.state_dir().create().expect("state dir");
    planned
        .state_dir()
        .compact(&mut state)
        .expect("write state");
}

fn plan_offline(c: &mut Criterion) {
    let rt = cairn::pipeline::runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = generated_clusterfile(dir.path());
    let style = cairn::report::Style::plain();
    let mut group = c.benchmark_group("plan_offline_1000x20");
    group.sample_size(20);
    group.bench_function("cold", |b| {
        b.iter(|| {
            let planned = plan(&file, &rt);
            assert_eq!(planned.plan.changes.len(), 19_001);
            cairn::report::plan_text(&planned.plan, style, false).len()
        });
    });
    record_everything(&file, &rt);
    group.bench_function("recorded", |b| {
        b.iter(|| {
            let planned = plan(&file, &rt);
            assert!(!planned.plan.has_changes());
            cairn::report::plan_text(&planned.plan, style, false).len()
        });
    });
    group.finish();
}

/// Rescanning an unchanged bundle hits the (size, mtime, inode) cache: no file is read.
fn bundle_rescan(c: &mut Criterion) {
    use cairn::bundle::manifest::{HashCache, scan};
    let dir = tempfile::tempdir().expect("temp dir");
    // 64 files of 4 MiB: 256 MiB, enough that hashing would show.
    let blob: Vec<u8> = (0..4 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for i in 0..64 {
        let sub = dir.path().join(format!("d{}", i % 8));
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join(format!("f{i}.bin")), &blob).expect("write");
    }
    // Age the files past the racy window so the cache keeps them.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for entry in walkdir::WalkDir::new(dir.path())
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
    {
        std::fs::File::options()
            .write(true)
            .open(entry.path())
            .and_then(|f| f.set_modified(old))
            .expect("set mtime");
    }
    let cache = HashCache::default();
    let mut group = c.benchmark_group("bundle_256MiB");
    group.sample_size(10);
    group.bench_function("first_scan", |b| {
        b.iter(|| {
            scan(dir.path(), &HashCache::default())
                .expect("scan")
                .files
                .len()
        });
    });
    scan(dir.path(), &cache).expect("warm the cache");
    group.bench_function("rescan_cached", |b| {
        b.iter(|| scan(dir.path(), &cache).expect("scan").files.len());
    });
    group.finish();
}

criterion_group!(benches, plan_offline, bundle_rescan);
criterion_main!(benches);
