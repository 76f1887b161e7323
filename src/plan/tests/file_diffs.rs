//! Unit tests of `plan::file_diffs`: which hosts and files are read, and
//! how two versions of a file compare.

use std::sync::Arc;

use super::*;

use crate::graph::testing::Fixture;
use crate::plan::test_world::World;
use crate::plan::{DiffOptions, diff};

/// Two hosts (nothing connects), a bundle and a `[[files]]` entry rendered
/// with a var.
fn clusterfile(greeting: &str) -> String {
    format!(
        r#"version = 1
name = "t"

[vars]
greeting = "{greeting}"

[[hosts]]
address = "10.0.0.1"
name = "m0"
roles = ["master"]

[[hosts]]
address = "10.0.0.2"
name = "n0"
roles = ["node"]

[[bundles]]
name = "web"
source = "web"
dest = "/srv/web"

[[files]]
name = "motd"
content = "${{greeting}}\n"
dest = "/etc/motd"
"#
    )
}

/// The fixture with greeting `a`, and a state as if it had been applied.
fn applied() -> (Fixture, State) {
    let mut world = World::with_files(
        &clusterfile("a"),
        &[("web/index.html", "hi\n"), ("web/app.conf", "x = 1\n")],
    );
    world.converge();
    (world.fixture, world.state)
}

/// Which hosts `plan --diff` would read from, and what, for the
/// fixture's plan with `refresh`.
fn hosts_read(fixture: &Fixture, state: &State, refresh: &Refresh) -> Vec<(String, Vec<String>)> {
    let graph = fixture.graph(&state.salt);
    let plan = diff(
        &fixture.model,
        &graph,
        state,
        refresh,
        &DiffOptions::default(),
    );
    let sources = DiffSources {
        plan: &plan,
        model: &fixture.model,
        graph: &graph,
        state,
        refresh,
    };
    reads(&pending_files(sources))
        .into_iter()
        .map(|(name, _, paths)| (name, paths))
        .collect()
}

#[test]
fn only_hosts_with_changed_files_are_read_and_only_those_files() {
    let (mut fixture, state) = applied();
    assert_eq!(
        hosts_read(&fixture, &state, &Refresh::default()),
        vec![],
        "nothing changes: no host is asked"
    );
    // A file edited by hand on n0 only: n0 is read, for that file only.
    let mut refresh = Refresh::default();
    refresh.observations.insert(
        TaskId::parse("bundle.web@n0").unwrap(),
        Observation::Files(BTreeMap::from([(
            "index.html".to_string(),
            Observed::Hashed("edited".into()),
        )])),
    );
    assert_eq!(
        hosts_read(&fixture, &state, &refresh),
        vec![("n0".to_string(), vec!["/srv/web/index.html".to_string()])]
    );
    // A var every host's motd renders: both hosts, that file only.
    fixture.rewrite(&clusterfile("b"));
    let motd = vec!["/etc/motd".to_string()];
    assert_eq!(
        hosts_read(&fixture, &state, &Refresh::default()),
        vec![("m0".to_string(), motd.clone()), ("n0".to_string(), motd)]
    );
}

fn ship(bytes: &[u8]) -> ShipFile {
    ShipFile::from_bytes(Arc::new(bytes.to_vec()), 0o644)
}

#[test]
fn content_is_compared_masked_and_only_when_both_sides_are_text() {
    let scrubber = Scrubber::new(vec!["hunter2".into()]);
    let joined = |old: &str, new: &str| format!("{old}|{new}");
    let found = |b: &[u8]| FileRead::Content(b.to_vec());
    let new = ship(b"pw = hunter2\nmore\n");
    let compare_with = |read: Option<&FileRead>| compare(Some(&new), read, &scrubber, joined);
    assert_eq!(
        compare_with(Some(&found(b"pw = hunter2\n"))),
        Some((
            FileDiffKind::Changed,
            Some("pw = ***\n|pw = ***\nmore\n".into())
        ))
    );
    assert_eq!(compare_with(Some(&found(b"pw = hunter2\nmore\n"))), None);
    assert_eq!(
        compare_with(Some(&FileRead::Missing)),
        Some((FileDiffKind::New, Some("|pw = ***\nmore\n".into())))
    );
    assert_eq!(
        compare_with(Some(&found(&[0xff, 0xfe]))),
        Some((FileDiffKind::Binary, None))
    );
    assert_eq!(
        compare_with(Some(&FileRead::TooLarge { size: 1 << 30 })),
        Some((FileDiffKind::TooLarge, None))
    );
    assert_eq!(compare_with(None), Some((FileDiffKind::Unreadable, None)));
    assert_eq!(
        compare(None, None, &scrubber, joined),
        Some((FileDiffKind::Removed, None))
    );
    let big = vec![b'a'; usize::try_from(DIFF_LIMIT_BYTES).unwrap() + 1];
    assert_eq!(
        compare(Some(&ship(&big)), Some(&found(b"x")), &scrubber, joined),
        Some((FileDiffKind::TooLarge, None))
    );
}
