//! `cairn add` and `cairn delete` on the local transport: the Clusterfile
//! edited in place with its comments, edits that would not validate
//! refused with the file untouched, hosts found by name or address (and a
//! suggestion when none is), and the apply that follows, declined or
//! done. The SSH hosts of these Clusterfiles are never contacted: the
//! tests either stop at `--no-apply` or delete them before applying.

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout};

/// One host here, a range of database hosts and a named cache, with
/// comments everywhere an edit could lose them.
const FLEET: &str = r#"# Hosts of the edit tests.
version = 1
name = "fixture"

[[hosts]]
address = "localhost"   # this machine
name = "local"
transport = "local"
roles = ["web"]

# The database rack.
[[hosts]]
address = "127.0.0.20-23"   # four of them
roles = ["db"]

[[hosts]]
address = "127.0.0.40"
name = "cache"
roles = ["db"]

[[steps]]
name = "hello"   # kept as it is
on = "web"
run = "mkdir -p out && echo hi > out/hello"
"#;

fn fleet() -> Sandbox {
    let s = Sandbox::new();
    s.write("Clusterfile", FLEET);
    s
}

#[test]
fn add_with_no_apply_appends_an_entry_and_keeps_every_comment() {
    let s = fleet();
    let out = s.run(&[
        "add",
        "127.0.0.30",
        "--role",
        "db",
        "--name",
        "db9",
        "--no-apply",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        s.read("Clusterfile"),
        FLEET.replace(
            "name = \"cache\"\nroles = [\"db\"]\n",
            "name = \"cache\"\nroles = [\"db\"]\n\n[[hosts]]\naddress = \"127.0.0.30\"\nname = \"db9\"\nroles = [\"db\"]\n"
        )
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("Edited Clusterfile: 1 host added.\n  + db9  127.0.0.30:22  roles: db\n"),
        "{text}"
    );
    assert!(
        text.contains("+address = \"127.0.0.30\"\n"),
        "the diff: {text}"
    );
    assert!(
        text.ends_with("Clusterfile updated; not applied; run `cairn apply` to apply it.\n"),
        "{text}"
    );
    assert!(!s.path(".cairn").exists(), "--no-apply leaves no state");
}

#[test]
fn user_and_port_go_into_the_address() {
    let s = fleet();
    let out = s.run(&[
        "add",
        "127.0.0.50-51",
        "--role",
        "db",
        "--user",
        "ops",
        "--port",
        "2222",
        "--no-apply",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        s.read("Clusterfile")
            .ends_with("[[hosts]]\naddress = \"ops@127.0.0.50-51:2222\"\nroles = [\"db\"]\n\n[[steps]]\nname = \"hello\"   # kept as it is\non = \"web\"\nrun = \"mkdir -p out && echo hi > out/hello\"\n"),
        "{}",
        s.read("Clusterfile")
    );
    assert!(stdout(&out).contains("2 hosts added"), "{}", stdout(&out));
}

#[test]
fn delete_by_name_removes_the_entry() {
    let s = fleet();
    let out = s.run(&["delete", "cache", "--no-apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        s.read("Clusterfile"),
        FLEET.replace(
            "[[hosts]]\naddress = \"127.0.0.40\"\nname = \"cache\"\nroles = [\"db\"]\n\n",
            ""
        )
    );
    assert!(
        stdout(&out).contains("1 host removed.\n  - cache  127.0.0.40:22  roles: db\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn delete_by_address_cuts_it_out_of_its_range() {
    let s = fleet();
    let out = s.run(&["delete", "127.0.0.21", "--no-apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        s.read("Clusterfile"),
        FLEET.replace(
            "address = \"127.0.0.20-23\"   # four of them\nroles = [\"db\"]\n",
            "address = \"127.0.0.20\"   # four of them\nroles = [\"db\"]\n\n[[hosts]]\naddress = \"127.0.0.22-23\"\nroles = [\"db\"]\n"
        )
    );
    assert!(
        stdout(&out).contains("~ range 127.0.0.20-23 is now 127.0.0.20, 127.0.0.22-23"),
        "{}",
        stdout(&out)
    );
    // The address with its port, and with its user, name the same host.
    let s = fleet();
    let out = s.run(&[
        "delete",
        "root@127.0.0.40:22",
        "127.0.0.23:22",
        "--no-apply",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = s.read("Clusterfile");
    assert!(!text.contains("cache"), "{text}");
    assert!(
        text.contains("address = \"127.0.0.20-22\"   # four of them"),
        "{text}"
    );
}

#[test]
fn deleting_the_first_host_of_a_role_warns_that_role_0_moves() {
    let s = fleet();
    let out = s.run(&["delete", "127.0.0.20", "--no-apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warnings = stderr(&out);
    assert!(
        warnings.contains("warning: the first host of role `db` (`db[0]`) changes from ")
            && warnings.contains("(127.0.0.20:22) to ")
            && warnings.contains("(127.0.0.21:22)"),
        "{warnings}"
    );
    // Any other host: no warning.
    let s = fleet();
    let out = s.run(&["delete", "cache", "--no-apply"]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn an_edit_that_would_not_validate_is_refused_and_the_file_is_untouched() {
    let s = fleet();
    // Without `local`, the step's `on = "web"` selects nothing.
    let out = s.run(&["delete", "local", "--no-apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("refused: with this edit Clusterfile would not be valid; it was not changed"),
        "{err}"
    );
    assert!(
        err.contains("`web`"),
        "the problem in the edited text: {err}"
    );
    assert_eq!(
        std::fs::read(s.path("Clusterfile")).unwrap(),
        FLEET.as_bytes()
    );
    let names: Vec<_> = std::fs::read_dir(s.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("Clusterfile"))
        .collect();
    assert_eq!(names, ["Clusterfile"], "no temp file left");

    // An invalid role name, the same way.
    let out = s.run(&["add", "127.0.0.30", "--role", "d b", "--no-apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid role `d b`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(s.path("Clusterfile")).unwrap(),
        FLEET.as_bytes()
    );
}

#[test]
fn an_unknown_host_is_refused_with_a_suggestion() {
    let s = fleet();
    let out = s.run(&["delete", "cashe", "--no-apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no host `cashe` in the Clusterfile"), "{err}");
    assert!(err.contains("did you mean `cache`?"), "{err}");
    assert!(
        err.contains("local (localhost)") && err.contains("cache (127.0.0.40)"),
        "the hosts listed: {err}"
    );
    let out = s.run(&["delete", "127.0.0.99", "--no-apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no host `127.0.0.99`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.read("Clusterfile"), FLEET);
}

#[test]
fn adding_an_address_already_there_names_its_entry() {
    let s = fleet();
    let out = s.run(&["add", "127.0.0.22", "--role", "db", "--no-apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("127.0.0.22:22 is already host `")
            && err.contains("` (line 13: address = \"127.0.0.20-23\")"),
        "{err}"
    );
    // On another port, it is another host.
    let out = s.run(&["add", "127.0.0.22:2222", "--role", "db", "--no-apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_name_is_for_one_host() {
    let s = fleet();
    let out = s.run(&[
        "add",
        "127.0.0.30-31",
        "--role",
        "db",
        "--name",
        "x",
        "--no-apply",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--name names one host"),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.read("Clusterfile"), FLEET);
}

#[test]
fn a_declined_apply_keeps_the_edit_and_says_so() {
    let s = fleet();
    // No terminal to ask on (stdin is null) and no --auto-approve.
    let out = s.run(&["delete", "cache", "127.0.0.20-23"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Clusterfile updated; not applied; run `cairn apply` to apply it"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("+ step.hello@local"),
        "the plan was shown: {}",
        stdout(&out)
    );
    assert!(!s.read("Clusterfile").contains("127.0.0.2"));
    assert!(!s.path("out/hello").exists(), "nothing applied");
}

#[test]
fn an_approved_apply_runs_after_the_edit() {
    let s = fleet();
    let out = s.run(&["delete", "cache", "127.0.0.20-23", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("Apply complete!"), "{}", stdout(&out));
    assert_eq!(s.read("out/hello"), "hi\n");
    assert!(s.planned_actions().is_empty(), "converged");
}

#[test]
fn json_tells_the_edit_as_one_event() {
    let s = fleet();
    let out = s.run(&["--json", "delete", "127.0.0.21", "--no-apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(event["event"], "clusterfile_edited");
    assert_eq!(event["removed"][0]["address"], "127.0.0.21");
    assert_eq!(event["entries"][0]["change"], "split");
}
