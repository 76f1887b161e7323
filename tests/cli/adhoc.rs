//! `cairn exec` and `cairn cp` on the local transport: output grouped per
//! host, exit codes, `--json`, copies both ways, secrets masked, selectors
//! and Clusterfiles refused before anything runs, and nothing recorded.

use std::os::unix::fs::PermissionsExt;

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout};

/// Three hosts on this machine: `a` and `b` of role web, `c` of role db.
const THREE_HOSTS: &str = r#"version = 1
name = "adhoc"

[vars]
token = { secret = "env:CAIRN_TEST_TOKEN" }

[[hosts]]
address = "localhost"
name = "a"
transport = "local"
roles = ["web"]

[[hosts]]
address = "127.0.0.1"
name = "b"
transport = "local"
roles = ["web"]

[[hosts]]
address = "127.0.0.2"
name = "c"
transport = "local"
roles = ["db"]
"#;

const SECRET: &str = "s3cr3t-adhoc-4242";

fn three_hosts() -> Sandbox {
    let s = Sandbox::new();
    s.write("Clusterfile", THREE_HOSTS);
    s
}

/// stderr with miette's line wrapping undone: words joined by single spaces.
fn stderr_words(out: &std::process::Output) -> String {
    stderr(out).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run(s: &Sandbox, args: &[&str]) -> std::process::Output {
    s.command(args)
        .env("CAIRN_TEST_TOKEN", SECRET)
        .output()
        .expect("cairn runs")
}

/// Prints out, err and more with pauses between, so that streamed output
/// would interleave; the first host to make `lk` fails.
const NOISY: &str = "echo out-$$; sleep 0.2; echo err-$$ >&2; sleep 0.2; echo more-$$; mkdir lk 2>/dev/null && exit 1; exit 0";

#[test]
fn exec_groups_each_hosts_output_under_its_header_and_exits_1_when_one_fails() {
    let s = three_hosts();
    let out = run(&s, &["exec", "--on", "web,db", "--", NOISY]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    let headers: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("── "))
        .collect();
    assert_eq!(headers.len(), 3, "{text}");
    let mut failed = 0;
    for &i in &headers {
        // Header, then that host's stdout and its stderr, nothing of another's.
        let pid = lines[i + 1]
            .strip_prefix("out-")
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            lines[i + 1..i + 4],
            [
                format!("out-{pid}"),
                format!("more-{pid}"),
                format!("err-{pid}")
            ],
            "{text}"
        );
        failed += usize::from(lines[i].contains(" exit 1 "));
        assert!(
            lines[i].contains(" exit 1 ") || lines[i].contains(" exit 0 "),
            "{}",
            lines[i]
        );
    }
    assert_eq!(failed, 1, "{text}");
    for host in ["── a (localhost)", "── b (127.0.0.1)", "── c (127.0.0.2)"] {
        assert!(text.contains(host), "{host}: {text}");
    }
    assert!(text.contains("✗ 1 of 3 hosts failed: "), "{text}");
    assert!(
        stderr_words(&out).contains("exec failed on 1 of 3 hosts"),
        "{}",
        stderr(&out)
    );

    let out = run(&s, &["exec", "--on", "b", "--", "echo ok"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("── b (127.0.0.1) exit 0 ["));
    assert!(
        stdout(&out).contains("\nok\n\n✓ ran on 1 host\n"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(!s.path(".cairn").exists(), "exec records nothing");
}

#[test]
fn exec_json_is_one_object_per_host_and_line() {
    let s = three_hosts();
    let out = run(
        &s,
        &["--json", "exec", "--on", "web", "--on", "c", "--", NOISY],
    );
    assert_eq!(out.status.code(), Some(1));
    let results: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(results.len(), 3, "{}", stdout(&out));
    let mut hosts: Vec<&str> = results
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["a", "b", "c"]);
    let codes: Vec<i64> = results
        .iter()
        .map(|r| r["exit_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes.iter().filter(|&&c| c == 1).count(), 1, "{codes:?}");
    for r in &results {
        let pid = r["stdout"].as_str().unwrap().lines().next().unwrap();
        let pid = pid.strip_prefix("out-").unwrap();
        assert_eq!(r["stdout"], format!("out-{pid}\nmore-{pid}\n"));
        assert_eq!(r["stderr"], format!("err-{pid}\n"));
        assert!(r["address"].is_string() && r["duration_ms"].is_u64());
        assert!(r["error"].is_null());
    }

    // A command that times out has no exit code, and says why.
    let out = run(
        &s,
        &[
            "--json",
            "exec",
            "--on",
            "a",
            "--timeout",
            "300ms",
            "--",
            "sleep 5",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["exit_code"].is_null(), "{r}");
    assert!(r["error"].as_str().unwrap().contains("timed out"), "{r}");
}

#[test]
fn a_secret_printed_by_a_command_is_masked() {
    let s = three_hosts();
    let script = "echo token=$CAIRN_TEST_TOKEN; echo $CAIRN_TEST_TOKEN >&2";
    for json in [false, true] {
        let mut args = vec!["exec", "--on", "a", "--", script];
        if json {
            args.insert(0, "--json");
        }
        let out = run(&s, &args);
        let text = stdout(&out) + &stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(!text.contains(SECRET), "the secret leaks: {text}");
        assert!(text.contains("token=***"), "masked, not dropped: {text}");
    }
}

#[test]
fn a_bad_selector_or_clusterfile_is_refused_before_anything_runs() {
    let s = three_hosts();
    let out = run(&s, &["exec", "--on", "web,nope", "--", "touch ran"]);
    let text = stderr_words(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--on: unknown role or host `nope`"), "{text}");
    assert!(text.contains("roles: db, web; hosts: a, b, c"), "{text}");
    let out = run(&s, &["exec", "--on", "web[2]", "--", "touch ran"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_words(&out).contains("selector `web[2]` matches no host: role `web` has 2 hosts"),
        "{}",
        stderr(&out)
    );
    let out = run(&s, &["cp", "--on", "nope", "Clusterfile", "copied"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown role or host `nope`"));
    let out = run(&s, &["cp", "--from", "web", "Clusterfile", "fetched"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_words(&out).contains("--from web selects 2 hosts (a, b); a fetch comes from one"),
        "{}",
        stderr(&out)
    );

    s.edit(
        "Clusterfile",
        "roles = [\"db\"]",
        "roles = [\"db\"]\nport = \"x\"",
    );
    let out = run(&s, &["exec", "--on", "web", "--", "touch ran"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Clusterfile"), "{}", stderr(&out));
    assert!(!s.path("ran").exists(), "nothing ran anywhere");
    assert!(!s.path("copied").exists() && !s.path("fetched").exists());
}

#[test]
fn cp_copies_a_folder_to_hosts_and_fetches_it_back() {
    let s = Sandbox::new();
    // The fixture's bundle folder, with an executable script in it.
    let out = s.run(&["cp", "--on", "web", "web", "out/site"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("out/site: 4 files, "),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).ends_with("✓ copied to 1 host\n"),
        "{}",
        stdout(&out)
    );
    for rel in [
        "index.html",
        "bin/install.sh",
        "etc/app.yaml",
        "etc/web.conf.tmpl",
    ] {
        assert_eq!(
            s.read(&format!("out/site/{rel}")),
            s.read(&format!("web/{rel}"))
        );
    }
    let mode = |rel: &str| std::fs::metadata(s.path(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("out/site/bin/install.sh"), mode("web/bin/install.sh"));

    // A file into the folder now there, as `cp` does; one over it by name.
    s.write("note.txt", "v1\n");
    let out = s.run(&["cp", "--on", "local", "note.txt", "out/site"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.read("out/site/note.txt"), "v1\n");
    s.write("note.txt", "v2\n");
    let out = s.run(&["cp", "--on", "local", "note.txt", "out/site/note.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.read("out/site/note.txt"), "v2\n");
    // Into a folder by its trailing `/`; but a file never replaces a folder.
    let out = s.run(&["cp", "--on", "local", "note.txt", "out/site/etc/"]);
    assert_eq!(out.status.code(), Some(0));
    s.write("bin", "a file called bin\n");
    let out = s.run(&["cp", "--on", "local", "bin", "out/site/"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("out/site/bin is a folder; a file cannot replace it"),
        "{}",
        stdout(&out)
    );
    assert!(s.path("out/site/bin/install.sh").is_file());

    // Back: the folder by name into a new place, its contents into another.
    let out = s.run(&["--json", "cp", "--from", "local", "out/site", "back"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["host"], "local");
    assert_eq!(r["source"], "out/site");
    assert_eq!(r["dest"], "back");
    assert_eq!(r["files"], 6);
    assert!(r["error"].is_null());
    assert_eq!(s.read("back/etc/app.yaml"), s.read("web/etc/app.yaml"));
    assert_eq!(mode("back/bin/install.sh"), mode("web/bin/install.sh"));
    std::fs::create_dir(s.path("into")).unwrap();
    let out = s.run(&["cp", "--from", "local", "out/site", "into"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        s.read("into/site/note.txt"),
        "v2\n",
        "into the folder there"
    );
    let out = s.run(&["cp", "--from", "local", "out/site/.", "into"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.read("into/note.txt"), "v2\n", "what it holds, into it");
    let leftovers: Vec<_> = std::fs::read_dir(s.path("into"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".cairn"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging folders removed: {leftovers:?}"
    );

    let out = s.run(&["cp", "--from", "local", "out/none", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("✗ local (localhost): "),
        "{}",
        stdout(&out)
    );
    assert!(!s.path("x").exists());
    assert!(!s.path(".cairn").exists(), "cp records nothing");
}
