//! Saved plans stand alone: `plan -o FILE` records the Clusterfile (path and
//! hash), the values given from outside and the targets; `apply FILE` works
//! from any folder, refuses a changed Clusterfile or another `-f`, and
//! `show FILE` prints the plan again. A plan is never written into a
//! missing folder, and an old-format file is refused by name.

use crate::support::sandbox::Sandbox;
use crate::support::{cairn, stderr, stdout};

#[test]
fn a_plan_made_with_f_applies_from_another_folder_as_its_hint_says() {
    let s = Sandbox::new();
    std::fs::create_dir(s.path("plans")).unwrap();
    std::fs::rename(s.path("Clusterfile"), s.path("plans/cluster.toml")).unwrap();
    std::fs::rename(s.path("web"), s.path("plans/web")).unwrap();
    let out = s.run(&[
        "plan",
        "-f",
        "plans/cluster.toml",
        "--var",
        "greeting=bonjour",
        "-o",
        "x.plan",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("To apply exactly this plan: cairn apply x.plan\n"),
        "{}",
        stdout(&out)
    );
    // The hint, run as printed, where it was printed...
    let hinted = s.run(&["apply", "x.plan"]);
    assert_eq!(hinted.status.code(), Some(0), "{}", stderr(&hinted));
    assert_eq!(s.read("plans/out/announce"), "bonjour v1\n");
    // ...and a new plan applied from somewhere else entirely.
    s.edit(
        "plans/cluster.toml",
        "greeting = \"hello\"",
        "greeting = \"hi\"",
    );
    let out = s.run(&["plan", "-f", "plans/cluster.toml", "-o", "y.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let elsewhere = tempfile::tempdir().unwrap();
    let plan = s.path("y.plan");
    let applied = cairn(elsewhere.path(), &["apply", plan.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert_eq!(s.read("plans/out/announce"), "hi v1\n");
    assert!(
        !elsewhere.path().join(".cairn").exists(),
        "the state stays beside the Clusterfile"
    );
}

#[test]
fn a_changed_clusterfile_or_another_one_refuses_the_saved_plan() {
    let s = Sandbox::new();
    let out = s.run(&["plan", "--var", "port=8081", "-o", "tonight.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"changed\"",
    );
    let refused = s.run(&["apply", "tonight.plan"]);
    assert_eq!(refused.status.code(), Some(1));
    let text = stderr(&refused);
    assert!(
        text.contains("the Clusterfile changed since the plan tonight.plan was made"),
        "{text}"
    );
    // The hint makes the same plan again, from anywhere (compared without
    // whitespace: miette wraps help lines).
    let real = std::fs::canonicalize(s.root()).unwrap();
    let hint = format!(
        "run `cairn plan -f {}/Clusterfile --var port=8081 -o tonight.plan` again",
        real.display()
    );
    let squash = |t: &str| t.split_whitespace().collect::<String>();
    assert!(squash(&text).contains(&squash(&hint)), "{text}");
    assert!(!s.path("out").exists(), "nothing ran");
    s.edit(
        "Clusterfile",
        "greeting = \"changed\"",
        "greeting = \"hello\"",
    );
    s.write("Other", &s.read("Clusterfile"));
    let other = s.run(&["apply", "-f", "Other", "tonight.plan"]);
    assert_eq!(other.status.code(), Some(1));
    assert!(
        stderr(&other).contains("was made from"),
        "{}",
        stderr(&other)
    );
    assert!(
        stderr(&other).contains("leave out -f"),
        "{}",
        stderr(&other)
    );
    let vars = s.run(&["apply", "tonight.plan", "--var", "greeting=x"]);
    assert_eq!(vars.status.code(), Some(1));
    assert!(
        stderr(&vars).contains("cannot be given with a saved plan"),
        "{}",
        stderr(&vars)
    );
    let same = s.run(&["apply", "-f", "Clusterfile", "tonight.plan"]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert_eq!(s.read("out/announce"), "hello v1\n");
}

#[test]
fn a_plan_is_never_written_into_a_missing_folder() {
    let s = Sandbox::new();
    let out = s.run(&["plan", "-o", "missing/dir/x.plan"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("the folder missing/dir does not exist"),
        "{text}"
    );
    assert!(!s.path("missing").exists(), "no folder was created");
    assert!(stdout(&out).is_empty(), "nothing planned: {}", stdout(&out));
}

#[test]
fn an_old_saved_plan_is_refused_by_name() {
    let s = Sandbox::new();
    // What `plan -o` wrote before plans recorded their Clusterfile: the bare plan document.
    let plan = s.run(&["plan", "--json"]);
    s.write("old.plan", &stdout(&plan));
    let out = s.run(&["apply", "old.plan"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("a saved plan of format 1"), "{text}");
    assert!(text.contains("does not record its Clusterfile"), "{text}");
    assert!(text.contains("`cairn plan -o FILE`"), "{text}");
}

#[test]
fn show_prints_a_saved_plan_as_plan_did() {
    let s = Sandbox::new();
    let planned = s.run(&["plan", "--limit", "local", "-o", "x.plan"]);
    assert_eq!(planned.status.code(), Some(0), "{}", stderr(&planned));
    let shown = s.run(&["show", "x.plan"]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    let text = stdout(&shown);
    assert!(
        text.starts_with("Saved plan x.plan for cluster `fixture`, made from "),
        "{text}"
    );
    assert!(text.contains("with --limit local"), "{text}");
    let plan_text = stdout(&planned);
    let body = plan_text
        .split_once("\nSaved the plan")
        .map_or(plan_text.as_str(), |(b, _)| b);
    assert!(text.contains(body), "show:\n{text}\nplan:\n{body}");
    let json = s.run(&["show", "x.plan", "--json"]);
    let mut shown: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let mut fresh: serde_json::Value =
        serde_json::from_slice(&s.run(&["plan", "--json"]).stdout).unwrap();
    for stamp in ["time", "run"] {
        assert!(shown[stamp].is_string(), "show --json is stamped: {shown}");
        shown[stamp].take();
        fresh[stamp].take();
    }
    assert_eq!(shown, fresh, "show --json is plan --json");
    // A plan saved with --limit applies with it, without it being given again.
    let applied = s.run(&["apply", "x.plan"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
}
