//! The command-line contract itself: exit codes for every command (usage
//! errors included), the confirmation read from stdin, shell completions,
//! the manual page, and `graph --json`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::Stdio;

use clap::CommandFactory;

use crate::support::sandbox::Sandbox;
use crate::support::{cairn, stderr, stdout};

/// Every subcommand path, nested ones too: `["plan"]`, `["state", "show"]`.
fn every_command() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, path: &[String], all: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands() {
            let mut here = path.to_vec();
            here.push(sub.get_name().to_string());
            all.push(here.clone());
            walk(sub, &here, all);
        }
    }
    let mut all = Vec::new();
    walk(&cairn::cli::Cli::command(), &[], &mut all);
    assert!(all.len() >= 15, "{all:?}");
    all
}

/// Runs every command with `extra` after it, in an empty folder, and hands
/// each result to `check`.
fn for_every_command(extra: &str, check: impl Fn(&[&str], &std::process::Output)) {
    let dir = tempfile::tempdir().unwrap();
    for command in every_command() {
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push(extra);
        check(&args, &cairn(dir.path(), &args).output().unwrap());
    }
}

#[test]
fn a_usage_error_exits_1_with_clap_s_message_for_every_command() {
    for_every_command("--no-such-flag", |args, out| {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(1), "cairn {args:?}: {err}");
        // clap's own words (`exec` takes the flag as its command and asks for `--on`).
        assert!(err.starts_with("error: "), "cairn {args:?}: {err}");
        assert!(err.contains("Usage: cairn"), "cairn {args:?}: {err}");
    });
}

#[test]
fn help_exits_0_for_every_command() {
    for_every_command("--help", |args, out| {
        assert_eq!(
            out.status.code(),
            Some(0),
            "cairn {args:?}: {}",
            stderr(out)
        );
        assert!(stdout(out).contains("Usage: cairn"), "cairn {args:?}");
    });
}

/// `out`, from `cairn args`, exited 1 and says `says` on stderr.
fn assert_refused(args: &[&str], out: &std::process::Output, says: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "cairn {args:?}: {}{}",
        stdout(out),
        stderr(out)
    );
    assert!(
        stderr(out).contains(says),
        "cairn {args:?}: {}",
        stderr(out)
    );
}

#[test]
fn other_usage_errors_exit_1_never_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage: cairn"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (&["drift", "--limt", "box2"], "unexpected argument '--limt'"),
        (&["state", "show"], "required arguments were not provided"),
        (&["state"], "Usage: cairn state"),
        (&["exec", "--", "uptime"], "--on <SELECTOR>"),
        (&["apply", "--lock-timeout", "soon"], "invalid value 'soon'"),
        (&["completions", "tcsh"], "invalid value 'tcsh'"),
        (
            &["completions", "bash", "--json"],
            "--json does not apply here",
        ),
        (&["man", "--json"], "--json does not apply here"),
        (&["apply", "--parallelism", "0"], "must be at least 1"),
        (&["reset", "--parallelism", "0"], "must be at least 1"),
        (
            &["exec", "--on", "x", "--parallelism", "0", "--", "true"],
            "must be at least 1",
        ),
        (
            &["cp", "--on", "x", "--parallelism", "0", "a", "b"],
            "must be at least 1",
        ),
        (
            &["add", "10.0.0.9", "--role", "web", "--parallelism", "0"],
            "must be at least 1",
        ),
        (
            &["delete", "h1", "--parallelism", "x3"],
            "invalid value 'x3'",
        ),
    ];
    for (args, says) in cases {
        assert_refused(args, &cairn(dir.path(), args).output().unwrap(), says);
    }
    for args in [&["--version"][..], &["help"], &["help", "plan"]] {
        let out = cairn(dir.path(), args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "cairn {args:?}");
    }
}

#[test]
fn a_missing_clusterfile_exits_1_for_every_command_that_reads_one_and_says_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["validate"],
        &["plan"],
        &["plan", "--detailed-exitcode"],
        &["apply", "--auto-approve"],
        &["drift"],
        &["graph"],
        &["state", "list"],
        &["reset", "--auto-approve"],
        &["delete", "h1"],
        &["exec", "--on", "h1", "--", "true"],
        &["unlock", "--auto-approve"],
    ];
    for args in cases {
        let out = cairn(dir.path(), args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "cairn {args:?}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "cairn {args:?} says the OS error once: {err}"
        );
    }
}

#[test]
fn plan_exits_2_only_with_detailed_exitcode_and_changes() {
    let s = Sandbox::new();
    assert_eq!(s.run(&["plan"]).status.code(), Some(0));
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(2)
    );
    s.apply();
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0)
    );
}

/// Runs `cairn apply` in `s` with `input` on its stdin (none: stdin closed).
fn apply_answering(s: &Sandbox, input: Option<&str>) -> std::process::Output {
    let mut command = s.command(&["apply"]);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn the_confirmation_is_read_from_stdin_when_it_is_not_a_terminal() {
    let s = Sandbox::new();

    let out = apply_answering(&s, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("gave none; nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("echo yes | cairn apply"),
        "{}",
        stderr(&out)
    );

    let out = apply_answering(&s, Some("no\n"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("aborted: nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(2)
    );

    let out = apply_answering(&s, Some("yes\n"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Do you want to perform these actions? Only 'yes' will be accepted:"),
        "the question goes to stderr: {}",
        stderr(&out)
    );
    assert!(
        !stdout(&out).contains("Only 'yes'"),
        "stdout stays the plan's"
    );
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0)
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F _cairn"),
        ("zsh", "#compdef cairn"),
        ("fish", "complete -c cairn"),
        ("elvish", "edit:completion:arg-completer[cairn]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = cairn(dir.path(), &["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["apply", "drift", "unlock"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
}

#[test]
fn bash_accepts_the_bash_completion_script() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path(), &["completions", "bash"])
        .output()
        .unwrap();
    let script = dir.path().join("cairn.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(". {} && complete -p cairn", script.display()))
        .output()
        .expect("bash runs");
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(stdout(&check).contains("_cairn"), "{}", stdout(&check));
}

#[test]
fn the_manual_page_is_roff_with_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path(), &["man"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH cairn 1"), "{page}");
    for command in ["plan", "apply", "drift", "completions"] {
        assert!(page.contains(command), "the page names {command}");
    }

    let pages = dir.path().join("man1");
    let out = cairn(dir.path(), &["man", "--dir", pages.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a missing folder is refused");
    assert!(stderr(&out).contains("is not a folder"), "{}", stderr(&out));
    assert!(!pages.exists(), "and not created");

    std::fs::create_dir(&pages).unwrap();
    let out = cairn(dir.path(), &["man", "--dir", pages.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for page in ["cairn.1", "cairn-plan.1", "cairn-state-show.1"] {
        let text = std::fs::read_to_string(pages.join(page)).unwrap();
        assert!(text.starts_with(".ie"), "{page} is roff");
    }
}

#[test]
fn graph_json_lists_every_task_with_what_it_waits_for() {
    let s = Sandbox::new();
    let out = s.run(&["graph", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["version"], 1);
    let tasks = doc["tasks"].as_array().unwrap();
    let install = tasks
        .iter()
        .find(|t| t["id"] == "step.install@local")
        .expect("step.install@local");
    assert_eq!(install["kind"], "step");
    assert_eq!(install["host"], "local");
    assert!(
        install["after"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "bundle.web@local"),
        "{install}"
    );
    let position = |id: &str| tasks.iter().position(|t| t["id"] == id).unwrap();
    assert!(position("bundle.web@local") < position("step.install@local"));
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_the_output_not_cairn() {
    let s = Sandbox::new();
    s.apply();
    for command in [
        &["graph"][..],
        &["state", "list"],
        &["show"],
        &["plan", "--json"],
        &["man"],
    ] {
        // stdout is a pipe whose reader is already gone (as after `| head -1`):
        // the first write fails with EPIPE, every time.
        let (reader, writer) = nix::unistd::pipe().expect("a pipe");
        drop(reader);
        let out = s
            .command(command)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "cairn {command:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).is_empty(),
            "cairn {command:?}: {}",
            stderr(&out)
        );
    }
}

/// The first `` `…` `` span of `text` that holds `cairn `.
fn hinted_command(text: &str) -> String {
    text.split('`')
        .skip(1)
        .step_by(2)
        .find(|span| span.contains("cairn "))
        .unwrap_or_else(|| panic!("no hinted command in: {text}"))
        .to_string()
}

#[test]
fn a_hint_runs_as_printed_with_the_file_and_vars_it_was_given() {
    let s = Sandbox::new();
    s.write("other.toml", &s.read("Clusterfile"));
    std::fs::remove_file(s.path("Clusterfile")).unwrap();

    let out = s.run(&["-f", "other.toml", "apply", "--var", "port=9090"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let hint = hinted_command(&stderr(&out));
    assert_eq!(hint, "echo yes | cairn -f other.toml apply --var port=9090");

    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(hint.replace("cairn ", &format!("{} ", crate::support::CAIRN)))
        .current_dir(s.root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(
        ran.status.code(),
        Some(0),
        "the hint runs: {}",
        stderr(&ran)
    );
    let replan = s.run(&[
        "-f",
        "other.toml",
        "plan",
        "--var",
        "port=9090",
        "--detailed-exitcode",
    ]);
    assert_eq!(
        replan.status.code(),
        Some(0),
        "it applied what was asked: {}",
        stdout(&replan)
    );
}

#[test]
fn mistakes_found_by_a_new_user_are_refused_before_anything_runs() {
    let s = Sandbox::new();
    // A --limit that leaves out every host is a typo, not "no changes".
    let out = s.run(&["plan", "--limit", "!*", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("leaves no host at all"),
        "{}",
        stderr(&out)
    );

    // A plan saved onto a folder is refused before anything is printed.
    let out = s.run(&["plan", "-o", "."]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("it is a folder"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    // Metrics into a folder that does not exist: refused, the folder not made.
    let out = s.run(&["drift", "--prometheus", "nowhere/cairn.prom"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the folder nowhere does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(!s.path("nowhere").exists());

    // -f naming a folder says what -f wants.
    let out = s.run(&["-f", ".", "plan"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("-f names the Clusterfile itself (e.g. -f ./Clusterfile)"),
        "{}",
        stderr(&out)
    );

    // validate --json reports a bad --var as JSON too.
    let out = s.run(&["validate", "--json", "--var", "nope=1"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["valid"], false);
    assert!(
        doc["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`nope`"),
        "{doc}"
    );

    // A saved plan whose Clusterfile moved says so, and how to plan again.
    assert_eq!(s.run(&["plan", "-o", "x.plan"]).status.code(), Some(0));
    std::fs::rename(s.path("Clusterfile"), s.path("Moved")).unwrap();
    let out = s.run(&["apply", "x.plan"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the plan x.plan cannot be applied"), "{err}");
    assert_eq!(hinted_command(&err), "cairn plan -f NEW/PATH -o x.plan");
}

#[test]
fn names_that_are_almost_right_get_a_suggestion() {
    let s = Sandbox::new();
    let suggests = |args: &[&str], says: &str| assert_refused(args, &s.run(args), says);
    suggests(&["plan", "--limit", "lcoal"], "did you mean `local`?");
    suggests(
        &["plan", "--replace", "install"],
        "did you mean `step.install`?",
    );
    suggests(
        &["plan", "--replace", "step.instlal"],
        "did you mean `step.install`?",
    );
    suggests(
        &["exec", "--on", "lcoal", "--", "true"],
        "did you mean `local`?",
    );
    suggests(
        &["exec", "--on", "db*", "--", "true"],
        "unknown role or host `db*`",
    );
    let globbed = s.run(&["exec", "--on", "lo*", "--", "echo", "here"]);
    assert_eq!(globbed.status.code(), Some(0), "{}", stderr(&globbed));
    assert!(stdout(&globbed).contains("here"), "{}", stdout(&globbed));
    s.apply();
    suggests(
        &["state", "show", "step.install"],
        "name one host's task: step.install@local",
    );
    suggests(
        &["state", "show", "step.isntall@local"],
        "did you mean `step.install@local`?",
    );
}

#[test]
fn a_template_typo_is_one_error_naming_its_hosts_and_the_name_meant() {
    let s = Sandbox::new();
    let mut three_hosts = String::new();
    for i in 1..=3 {
        let _ = write!(
            three_hosts,
            "[[hosts]]\naddress = \"127.0.0.{i}\"\nname = \"h{i}\"\ntransport = \"local\"\nroles = [\"web\"]\n"
        );
    }
    s.edit(
        "Clusterfile",
        "[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\nroles = [\"web\"]\n",
        &three_hosts,
    );
    let template = "web/etc/web.conf.tmpl";
    s.write(
        template,
        &format!("{}{{{{ greting }}}}\n", s.read(template)),
    );
    let out = s.run(&["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Clusterfile has 1 error"), "{err}");
    assert!(err.contains("did you mean `greeting`?"), "{err}");
    assert!(err.contains("(hosts h1, h2, h3)"), "{err}");
}
