//! `plan --diff` and `apply --diff`: every file an apply would write or
//! remove, against what the host has now (a bundle's file, a rendered
//! template, a `[[files]]` entry, a hand-edited file), as unified diffs in
//! the text and in the plan JSON; binary files, new and removed files said
//! so; secrets masked on both sides; nothing written by a plan.

use std::process::Output;

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout};

/// The fixture with a binary file and a file to be dropped later in its
/// bundle, applied.
fn applied_with_extra_files() -> Sandbox {
    let s = Sandbox::new();
    std::fs::write(s.path("web/logo.bin"), [0u8, 1, 2, 0xff, b'\n']).unwrap();
    s.write("web/old.txt", "to be dropped\n");
    s.apply();
    s
}

fn plan_ok(s: &Sandbox, args: &[&str]) -> String {
    let out = s.run(args);
    assert_eq!(out.status.code(), Some(0), "{}", s.transcript(&out));
    stdout(&out)
}

/// One of each change: a bundle file edited, a template's var, a
/// `[[files]]` entry's content, a binary file, a file the bundle drops, and
/// a shipped file edited by hand on the host.
fn edit_everything(s: &Sandbox) {
    s.edit(
        "web/index.html",
        "hello from cairn",
        "hello from cairn, edited",
    );
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    s.edit(
        "Clusterfile",
        "content = \"${greeting} from ${cluster}\\n\"",
        "content = \"${greeting} from ${cluster}\\nwelcome\\n\"",
    );
    std::fs::write(s.path("web/logo.bin"), [0u8, 1, 3, 0xff, b'\n']).unwrap();
    std::fs::remove_file(s.path("web/old.txt")).unwrap();
    s.edit(
        "out/web/etc/app.yaml",
        "workers: 4",
        "workers: 4\nhand: edit",
    );
}

#[test]
fn plan_diff_shows_each_changed_file_with_the_hosts_content_as_the_old_side() {
    let s = applied_with_extra_files();
    edit_everything(&s);
    let text = plan_ok(&s, &["plan", "--diff"]);
    let index = s.path("out/web/index.html").display().to_string();
    for expected in [
        "Changes to files:",
        // A bundle's plain file.
        &format!("--- {index} (on local)"),
        &format!("+++ {index} (after apply)"),
        "-hello from cairn\n",
        "+hello from cairn, edited\n",
        // A template rendered with the changed var.
        "-greeting = hello\n",
        "+greeting = howdy\n",
        // The [[files]] entry: both its var and its content changed.
        "-hello from fixture\n",
        "+howdy from fixture\n",
        "+welcome\n",
        // Edited by hand on the host: the host's line is the old side.
        "-hand: edit\n",
        "logo.bin binary file differs",
        "old.txt (file will be removed)",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    assert!(
        !text.contains("install.sh"),
        "a file whose content does not change is not shown:\n{text}"
    );
    // Grouped per task, in plan order.
    let bundle = text.find("\n  bundle.web@local\n").expect("bundle group");
    let motd = text.find("\n  file.motd@local\n").expect("file group");
    assert!(bundle < motd, "{text}");
    // A plan reads; it writes nothing.
    assert_eq!(s.read("out/web/index.html"), "hello from cairn\n");
    assert_eq!(s.read("out/motd"), "hello from fixture\n");

    let plain = plan_ok(&s, &["plan"]);
    assert!(
        !plain.contains("Changes to files") && !plain.contains("@@") && !plain.contains("+++"),
        "no diff without --diff:\n{plain}"
    );
}

#[test]
fn plan_diff_json_adds_a_diffs_array_to_each_change() {
    let s = applied_with_extra_files();
    edit_everything(&s);
    let out = s.run(&["plan", "--diff", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", s.transcript(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let change = |task: &str| {
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["task"] == task)
            .unwrap_or_else(|| panic!("no {task}"))
            .clone()
    };
    let bundle = change("bundle.web@local");
    let diffs = bundle["diffs"].as_array().expect("diffs");
    let diff = |suffix: &str| {
        diffs
            .iter()
            .find(|d| d["path"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix} in {diffs:?}"))
    };
    assert_eq!(diff("index.html")["kind"], "changed");
    let unified = diff("index.html")["unified"].as_str().unwrap();
    assert!(
        unified.contains("-hello from cairn\n") && unified.contains("+hello from cairn, edited\n"),
        "{unified}"
    );
    assert_eq!(diff("logo.bin")["kind"], "binary");
    assert!(diff("logo.bin").get("unified").is_none());
    assert_eq!(diff("old.txt")["kind"], "removed");
    assert_eq!(diff("etc/web.conf")["kind"], "changed");
    let motd = change("file.motd@local");
    assert_eq!(motd["diffs"][0]["kind"], "changed");
    assert!(
        change("step.install@local").get("diffs").is_none(),
        "a step writes no file"
    );
    // Without --diff the document is as it was: no `diffs` anywhere.
    let without_diff = plan_ok(&s, &["plan", "--json"]);
    assert!(!without_diff.contains("\"diffs\""), "{without_diff}");
    // `apply --diff --json`: the plan event carries them too.
    let out = s.run(&["apply", "--diff", "--json", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", s.transcript(&out));
    let first = stdout(&out).lines().next().unwrap_or_default().to_string();
    let event: serde_json::Value = serde_json::from_str(&first).expect("a JSON event");
    assert_eq!(event["event"], "plan");
    let bundle = event["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["task"] == "bundle.web@local")
        .unwrap()
        .clone();
    assert!(
        bundle["diffs"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["kind"] == "binary")),
        "{bundle}"
    );
    assert_eq!(s.read("out/web/index.html"), "hello from cairn, edited\n");
}

/// A secret the template renders, so diffs must mask it.
const TOKEN: &str = "t0ken-VALUE-77aa";

fn with_secret(s: &Sandbox, args: &[&str]) -> Output {
    s.command(args)
        .env("CAIRN_TEST_TOKEN", TOKEN)
        .output()
        .unwrap()
}

#[test]
fn a_secret_in_a_rendered_template_is_masked_on_both_sides() {
    let s = Sandbox::new();
    s.add_token_secret();
    s.edit(
        "web/etc/web.conf.tmpl",
        "greeting = {{ greeting }}",
        "greeting = {{ greeting }}\ntoken = {{ token }} for {{ greeting }}",
    );
    let out = with_secret(&s, &["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", s.transcript(&out));
    assert!(s.read("out/web/etc/web.conf").contains(TOKEN));
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    for args in [&["plan", "--diff"][..], &["plan", "--diff", "--json"]] {
        let out = with_secret(&s, args);
        let all = s.transcript(&out);
        assert_eq!(out.status.code(), Some(0), "{all}");
        assert!(!all.contains(TOKEN), "the secret leaks:\n{all}");
    }
    let text = stdout(&with_secret(&s, &["plan", "--diff"]));
    assert!(
        text.contains("-token = *** for hello\n") && text.contains("+token = *** for howdy\n"),
        "{text}"
    );
}

#[test]
fn a_first_plan_diff_shows_new_files_and_apply_diff_shows_them_before_running() {
    let s = Sandbox::new();
    let text = plan_ok(&s, &["plan", "--diff"]);
    let motd = s.path("out/motd").display().to_string();
    assert!(
        text.contains(&format!("{motd} (new file)"))
            && text.contains("--- /dev/null")
            && text.contains("+hello from fixture\n"),
        "{text}"
    );
    let out = s.run(&["apply", "--diff", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", s.transcript(&out));
    let applied = stdout(&out);
    let diff_at = applied.find("+hello from fixture").expect("the diff");
    let run_at = applied.find("Applying 7 tasks").expect("the run");
    assert!(
        diff_at < run_at,
        "the diff comes before the run:\n{applied}"
    );
    assert_eq!(s.read("out/motd"), "hello from fixture\n");
    let again = plan_ok(&s, &["plan", "--diff"]);
    assert!(
        again.contains("No changes") && !again.contains("Changes to files"),
        "{again}"
    );
    let offline = s.run(&["plan", "--diff", "--offline"]);
    assert!(
        !offline.status.success() && stderr(&offline).contains("--offline"),
        "--diff needs the hosts: {}",
        s.transcript(&offline)
    );
}
