//! Drift: changes made on the host by hand, as `plan` finds them and
//! `apply` repairs them; and `cairn drift`, whose text, JSON and exit code
//! are pinned whole by snapshots in each state a host can be in (in sync,
//! drifted, pending), so that a rewrite of drift reproduces them.

use std::process::Output;

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout};

/// Runs `cairn drift` and `cairn drift --json`, checks that both exit
/// `code` and that the JSON parses, and snapshots both transcripts as
/// `NAME` and `NAME_json`.
fn drift_snapshots(s: &Sandbox, name: &str, code: i32) {
    let check = |args: &[&str]| -> Output {
        let out = s.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}:\n{}",
            s.transcript(&out)
        );
        out
    };
    let text = check(&["drift"]);
    let json = check(&["drift", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&json.stdout).expect("drift --json is JSON");
    insta::assert_snapshot!(name.to_string(), s.transcript(&text));
    insta::assert_snapshot!(format!("{name}_json"), s.transcript(&json));
}

#[test]
fn changes_made_on_the_host_are_found_and_repaired() {
    let s = Sandbox::new();
    s.apply();
    s.write("out/web/index.html", "defaced\n");
    std::fs::write(s.path("out/web/extra.txt"), "mine\n").unwrap();
    let plan = stdout(&s.run(&["plan"]));
    assert!(
        plan.contains("~ bundle.web@local") && plan.contains("changed on the host: index.html"),
        "{plan}"
    );
    let offline = stdout(&s.run(&["plan", "--offline"]));
    assert!(
        offline.contains("No changes") && offline.contains("offline"),
        "offline plans do not look: {offline}"
    );
    s.apply();
    assert_eq!(s.read("out/web/index.html"), "hello from cairn\n");
    assert_eq!(
        s.read("out/web/extra.txt"),
        "mine\n",
        "files cairn did not ship are kept"
    );
}

#[test]
fn drift_right_after_an_apply_is_in_sync_and_exits_0() {
    let s = Sandbox::new();
    s.apply();
    drift_snapshots(&s, "in_sync", 0);
}

#[test]
fn drift_names_files_edited_by_hand_exits_2_and_repairs_nothing() {
    let s = Sandbox::new();
    s.apply();
    // One file shipped by a bundle, one by a [[files]] entry (whose reason
    // names its dest, the sandbox's path: redacted).
    s.write("out/web/index.html", "defaced\n");
    s.write("out/motd", "edited by hand\n");
    drift_snapshots(&s, "edited_by_hand", 2);
    assert_eq!(s.read("out/web/index.html"), "defaced\n", "read-only");
    assert_eq!(s.read("out/motd"), "edited by hand\n", "read-only");
}

#[test]
fn drift_lists_a_change_not_applied_yet_as_pending_and_exits_2() {
    let s = Sandbox::new();
    s.apply();
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    drift_snapshots(&s, "pending", 2);
    assert_eq!(s.read("out/motd"), "hello from fixture\n", "read-only");
}

/// A secret the fixture's template ships, so that diffs must mask it.
const TOKEN: &str = "t0ken-VALUE-77aa";

/// The fixture with a secret in its rendered template and a `check` on
/// `announce`, applied.
fn applied_with_secret_and_check() -> Sandbox {
    let s = Sandbox::new();
    s.add_token_secret();
    s.edit(
        "web/etc/web.conf.tmpl",
        "greeting = {{ greeting }}",
        "greeting = {{ greeting }}\ntoken = {{ token }}",
    );
    s.edit(
        "Clusterfile",
        "run = \"echo ${greeting} ${version} > out/announce\"",
        "run = \"echo ${greeting} ${version} > out/announce\"\ncheck = \"test -f out/announce\"",
    );
    let out = with_secret(&s, &["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", s.transcript(&out));
    s
}

fn with_secret(s: &Sandbox, args: &[&str]) -> Output {
    s.command(args)
        .env("CAIRN_TEST_TOKEN", TOKEN)
        .output()
        .unwrap()
}

#[test]
fn drift_diff_shows_every_kind_of_hand_edit_with_secrets_masked() {
    let s = applied_with_secret_and_check();
    assert!(s.read("out/web/etc/web.conf").contains(TOKEN));
    // Text edited (the secret on a context line), binary, deleted, another
    // mode, a [[files]] file edited, and a check that now fails.
    s.edit(
        "out/web/etc/web.conf",
        "greeting = hello",
        "greeting = hi\n# tuned by hand",
    );
    std::fs::write(s.path("out/web/index.html"), [0u8, 0xff, 0xfe, b'\n']).unwrap();
    std::fs::remove_file(s.path("out/web/bin/install.sh")).unwrap();
    std::fs::set_permissions(
        s.path("out/web/etc/app.yaml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    s.write("out/motd", "hello from fixture\nand a line by hand\n");
    std::fs::remove_file(s.path("out/announce")).unwrap();

    let text = with_secret(&s, &["drift", "--diff"]);
    let json = with_secret(&s, &["drift", "--diff", "--json"]);
    for out in [&text, &json] {
        assert_eq!(out.status.code(), Some(2), "{}", s.transcript(out));
        assert!(
            !s.transcript(out).contains(TOKEN),
            "the secret leaks:\n{}",
            s.transcript(out)
        );
    }
    insta::assert_snapshot!("every_kind_with_diff", s.transcript(&text));
    insta::assert_snapshot!("every_kind_with_diff_json", s.transcript(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let host = &report["hosts"][0];
    assert_eq!(host["failing_checks"][0]["task"], "step.announce@local");
    assert_eq!(host["failing_checks"][0]["exit_code"], 1);
    // Without --diff, no content is read and no `diff` key appears.
    let plain = with_secret(&s, &["drift", "--json"]);
    assert!(!stdout(&plain).contains("\"diff\""), "{}", stdout(&plain));
    assert_eq!(
        s.read("out/motd"),
        "hello from fixture\nand a line by hand\n",
        "read-only"
    );
}

#[test]
fn drift_diff_says_when_the_shipped_version_is_gone_or_a_file_is_too_large() {
    let s = Sandbox::new();
    s.apply();
    // The Clusterfile changed since motd shipped: what was shipped cannot be rebuilt.
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    s.write("out/motd", "edited by hand\n");
    s.write("out/web/index.html", &"x".repeat(300 * 1024));
    let out = s.run(&["drift", "--diff", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", s.transcript(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let status_of = |task: &str| {
        let files = report["hosts"][0]["files"].as_array().unwrap();
        let file = files.iter().find(|f| f["task"] == task).unwrap();
        assert_eq!(file["change"], "modified", "{file}");
        file["diff"]["status"].as_str().unwrap().to_string()
    };
    assert_eq!(status_of("file.motd@local"), "shipped_unavailable");
    assert_eq!(status_of("bundle.web@local"), "too_large");
    let text = stdout(&s.run(&["drift", "--diff"]));
    assert!(
        text.contains("what cairn shipped is no longer available")
            && text.contains("file differs (over 256 KiB: not shown)"),
        "{text}"
    );
}

#[test]
fn a_host_holding_none_of_its_receipts_is_reported_as_reimaged() {
    let s = Sandbox::new();
    s.apply();
    let receipts = s.path(".cairn/fixture/receipts/local");
    assert!(
        receipts.is_dir(),
        "this machine's receipts live in the state folder"
    );
    std::fs::remove_dir_all(&receipts).unwrap();
    drift_snapshots(&s, "receipts_missing", 2);
    let out = s.run(&["drift", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing = report["hosts"][0]["missing_receipts"].as_array().unwrap();
    assert!(
        missing.iter().any(|t| t == "bundle.web@local")
            && missing.iter().any(|t| t == "step.init@local"),
        "{missing:?}"
    );
}

/// Checks an exposition-format text line by line (prometheus-parse skips
/// what it does not understand, so the test makes sure nothing was
/// skipped), then the Prometheus naming conventions, then parses it.
fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    use prometheus_parse::LineInfo;
    let mut seen = Vec::new();
    let mut described: Option<String> = None;
    let mut typed: Option<String> = None;
    let mut samples = 0;
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Doc { metric_name, .. } => {
                assert!(
                    !seen.contains(&metric_name.to_string()),
                    "{metric_name} twice"
                );
                seen.push(metric_name.to_string());
                described = Some(metric_name.to_string());
            }
            LineInfo::Type {
                metric_name,
                sample_type,
                ..
            } => {
                assert_eq!(
                    described.as_deref(),
                    Some(metric_name.as_str()),
                    "HELP before TYPE"
                );
                assert_eq!(
                    sample_type,
                    prometheus_parse::SampleType::Gauge,
                    "{metric_name}"
                );
                typed = Some(metric_name);
            }
            LineInfo::Sample { metric_name, .. } => {
                assert_eq!(
                    typed.as_deref(),
                    Some(metric_name),
                    "samples follow their TYPE"
                );
                samples += 1;
            }
            other => panic!("not exposition format: {line:?} ({other:?})"),
        }
    }
    for name in &seen {
        assert!(name.starts_with("cairn_drift_"), "{name}");
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name}"
        );
        assert!(
            !name.ends_with("_total"),
            "{name}: gauges do not end in _total"
        );
        assert!(
            !name.contains("timestamp") || name.ends_with("_timestamp_seconds"),
            "{name}: times in seconds"
        );
    }
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    assert_eq!(scrape.samples.len(), samples);
    scrape
}

/// The one gauge `name` with `labels`, as its text (`1`, `1700000000`).
fn gauge(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> String {
    let found: Vec<String> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v.to_string(),
            ref other => panic!("{name} is {other:?}"),
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].clone()
}

#[test]
fn drift_writes_prometheus_metrics_atomically_for_the_textfile_collector() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::new();
    s.apply();
    s.write("out/web/index.html", "defaced\n");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::create_dir(s.path("textfile")).unwrap();
    let out = s.run(&["drift", "--prometheus", "textfile/cairn.prom"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the exit code is drift's: {}",
        s.transcript(&out)
    );
    let path = s.path("textfile/cairn.prom");
    let text = std::fs::read_to_string(&path).unwrap();
    let names: Vec<_> = std::fs::read_dir(s.path("textfile"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["cairn.prom"], "no temp file left beside it");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o044,
        0o044,
        "readable by the collector's user"
    );
    let scrape = parse_metrics(&text);
    let host = [
        ("cluster", "fixture"),
        ("host", "local"),
        ("address", "localhost"),
    ];
    assert_eq!(gauge(&scrape, "cairn_drift_host_reachable", &host), "1");
    assert_eq!(gauge(&scrape, "cairn_drift_host_drifted_tasks", &host), "1");
    assert_eq!(gauge(&scrape, "cairn_drift_host_changed_files", &host), "1");
    assert_eq!(gauge(&scrape, "cairn_drift_host_in_sync", &host), "0");
    let checked = gauge(
        &scrape,
        "cairn_drift_host_last_checked_timestamp_seconds",
        &host,
    );
    assert!(
        checked.parse::<u64>().unwrap() >= before,
        "{checked} >= {before}"
    );
    let cluster = [("cluster", "fixture")];
    assert_eq!(gauge(&scrape, "cairn_drift_in_sync", &cluster), "0");
    assert_eq!(gauge(&scrape, "cairn_drift_drifted_tasks", &cluster), "1");
    assert_eq!(
        gauge(
            &scrape,
            "cairn_drift_hosts",
            &[("cluster", "fixture"), ("state", "out_of_sync")]
        ),
        "1"
    );
    assert_eq!(
        gauge(&scrape, "cairn_drift_last_run_timestamp_seconds", &cluster),
        checked
    );
    for doc in scrape.docs.values() {
        assert!(!doc.is_empty());
    }

    // Repaired: the next run replaces the file whole.
    s.apply();
    let out = s.run(&["drift", "--prometheus", "textfile/cairn.prom"]);
    assert_eq!(out.status.code(), Some(0), "{}", s.transcript(&out));
    let scrape = parse_metrics(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(gauge(&scrape, "cairn_drift_host_in_sync", &host), "1");
    assert_eq!(gauge(&scrape, "cairn_drift_in_sync", &cluster), "1");
}

#[test]
fn a_metrics_file_that_cannot_be_written_is_an_error_that_says_so() {
    let s = Sandbox::new();
    s.apply();
    // The folder exists; the file cannot be put there (a folder holds its name).
    std::fs::create_dir_all(s.path("textfile/cairn.prom/taken")).unwrap();
    let out = s.run(&["drift", "--prometheus", "textfile/cairn.prom"]);
    assert_eq!(out.status.code(), Some(1), "{}", s.transcript(&out));
    assert!(
        stderr(&out).contains("failed to write the metrics file"),
        "{}",
        s.transcript(&out)
    );
    assert!(
        stdout(&out).contains("matches the Clusterfile"),
        "the report still prints"
    );
}

#[test]
fn drift_takes_no_lock_and_runs_beside_an_apply() {
    let s = Sandbox::new();
    s.apply();
    // A step that holds the apply (and its cluster lock) until told to go on.
    s.edit(
        "Clusterfile",
        "run = \"mkdir -p out && echo ran >> out/independent.log\"",
        "run = \"mkdir -p out && touch out/started && while [ ! -f out/go ]; do sleep 0.05; done\"\ntimeout = \"60s\"",
    );
    let apply = s
        .command(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_until("the apply's step started", || {
        s.path("out/started").exists()
    });
    // While the apply waits: drift answers at once (if it waited for a lock,
    // the step would never be told to go on and the apply would time out).
    let drift = s.run(&["drift", "--json"]);
    assert_eq!(drift.status.code(), Some(2), "{}", s.transcript(&drift));
    let report: serde_json::Value = serde_json::from_slice(&drift.stdout).unwrap();
    assert_eq!(
        report["hosts"][0]["pending"][0]["task"],
        "step.independent@local"
    );
    s.write("out/go", "");
    let applied = apply.wait_with_output().unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", s.transcript(&applied));
    drift_snapshots(&s, "in_sync", 0);
}
