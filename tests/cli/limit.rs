//! `--limit` with globs (`'h*'`, `'!h*'`, `'node?'`), matched against host
//! names, addresses and roles, on the fixture with more local hosts; a
//! glob that matches nothing is an error listing what exists.

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout};

/// The fixture with four local hosts: `local` and `node1` of role web,
/// `h1` of role web, `h2` of role db.
fn four_hosts() -> Sandbox {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "roles = [\"web\"]\n",
        "roles = [\"web\"]\n\n\
         [[hosts]]\naddress = \"localhost\"\nname = \"h1\"\ntransport = \"local\"\nroles = [\"web\"]\n\n\
         [[hosts]]\naddress = \"localhost\"\nname = \"h2\"\ntransport = \"local\"\nroles = [\"db\"]\n\n\
         [[hosts]]\naddress = \"localhost\"\nname = \"node1\"\ntransport = \"local\"\nroles = [\"web\"]\n",
    );
    s
}

/// The hosts `plan --offline --limit PATTERN` leaves out, as it prints them.
fn left_out(s: &Sandbox, pattern: &str) -> String {
    let out = s.run(&["plan", "--offline", "--limit", pattern]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{pattern}: {}",
        s.transcript(&out)
    );
    let text = stdout(&out);
    text.lines()
        .find_map(|l| l.strip_prefix("Left out by --limit: "))
        .unwrap_or_else(|| panic!("{pattern}: nothing left out in\n{text}"))
        .to_string()
}

#[test]
fn globs_select_hosts_by_name_and_role() {
    let s = four_hosts();
    assert_eq!(left_out(&s, "h*"), "local, node1");
    assert_eq!(left_out(&s, "!h*"), "h1, h2");
    assert_eq!(left_out(&s, "node?"), "h1, h2, local");
    // `d*` is no host's name: it matches the role db.
    assert_eq!(left_out(&s, "d*"), "h1, local, node1");
}

#[test]
fn a_glob_matching_nothing_is_an_error_listing_hosts_and_roles() {
    let s = four_hosts();
    let out = s.run(&["plan", "--offline", "--limit", "zz*"]);
    assert_eq!(out.status.code(), Some(1), "{}", s.transcript(&out));
    let text = stderr(&out);
    assert!(
        text.contains("--limit zz*: no host has this name"),
        "{text}"
    );
    assert!(
        text.contains("roles: db, web; hosts: local, h1, h2, node1"),
        "{text}"
    );
}

#[test]
fn the_help_says_globs_work() {
    let s = Sandbox::new();
    for command in ["plan", "apply", "drift", "reset"] {
        let out = s.run(&[command, "--help"]);
        assert!(
            stdout(&out).contains("'web*'"),
            "{command} --help: {}",
            stdout(&out)
        );
    }
}
