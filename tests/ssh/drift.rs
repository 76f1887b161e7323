//! Drift over SSH, for monitoring: each host named with its address; hand
//! edits of every kind (content with a diff, binary, deleted, mode, owner);
//! a reimaged host found by its missing receipts; Prometheus metrics that
//! keep an unreachable host's last check; drift beside a running
//! apply, which it neither waits for nor disturbs; and `plan --diff`, whose
//! old side is what each host has now, hand edits included.

use super::*;

/// A `[[files]]` entry whose owner the Clusterfile sets.
const OWNED: &str = r#"
[[files]]
name = "owned"
content = "owned = yes\n"
dest = "/opt/app/owned.conf"
owner = "root:root"
"#;

/// `drift ARGS --json`, its exit code checked, as JSON.
fn drift_json(c: &Cluster, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = vec!["drift", "--json"];
    all.extend_from_slice(args);
    let out = c.run(&all);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("drift --json is JSON")
}

/// The report's entry for `host`.
fn host_entry<'a>(report: &'a serde_json::Value, host: &str) -> &'a serde_json::Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("{host} in {report:#}"))
}

/// The changed file at `path` in a host's entry.
fn file_entry<'a>(host: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    host["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} in {host:#}"))
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn drift_names_the_host_and_the_file_edited_by_hand() {
    let c = Cluster::new(3);
    c.apply_ok();
    let drift = c.run(&["drift"]);
    assert_eq!(drift.status.code(), Some(0), "{}", stdout(&drift));
    // The refresh read each host's facts.
    let plan: serde_json::Value =
        serde_json::from_slice(&c.run(&["plan", "--json"]).stdout).unwrap();
    assert_eq!(plan["hosts"]["host1"]["hostname"], "host1");
    assert_eq!(plan["hosts"]["host1"]["zstd"], true);
    assert_eq!(plan["hosts"]["host1"]["arch"], std::env::consts::ARCH);
    let conf = c.host(2).read("/opt/app/app.conf").unwrap();

    c.host(2).write(
        "/opt/app/app.conf",
        &format!("{conf}# manual edit on the host (drift)\n"),
    );
    let drift = c.run(&["drift", "--json"]);
    assert_eq!(drift.status.code(), Some(2), "{}", stderr(&drift));
    let report: serde_json::Value = serde_json::from_slice(&drift.stdout).unwrap();
    let hosts = report["hosts"].as_array().unwrap();
    let drifted: Vec<&serde_json::Value> = hosts.iter().filter(|h| h["in_sync"] == false).collect();
    assert_eq!(drifted.len(), 1);
    assert_eq!(drifted[0]["host"], "host2");
    assert_eq!(drifted[0]["address"], c.host(2).address.as_str());
    let reasons = drifted[0]["drifted"][0]["reasons"].to_string();
    assert!(reasons.contains("/opt/app/app.conf"), "{reasons}");
    // Read-only: nothing repaired.
    assert!(
        c.host(2)
            .read("/opt/app/app.conf")
            .unwrap()
            .contains("manual edit")
    );
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn drift_diff_reads_back_every_kind_of_hand_edit_and_apply_repairs_them() {
    let c = Cluster::with(3, "", OWNED);
    c.apply_ok();
    drift_json(&c, &["--diff"], 0);
    let h = c.host(2);
    let conf = h.read("/opt/app/app.conf").unwrap();
    h.write("/opt/app/app.conf", &format!("{conf}# tuned by hand\n"));
    std::fs::write(h.path("/opt/app/current/docs/readme.txt"), [0u8, 0xff, 10]).unwrap();
    let edits = h.exec(
        "rm /opt/app/current/conf/b.conf && chmod 600 /opt/app/current/conf/a.conf && chown 65534:65534 /opt/app/owned.conf",
    );
    assert!(edits.status.success(), "{edits:?}");

    let report = drift_json(&c, &["--diff"], 2);
    for other in ["host0", "host1"] {
        assert_eq!(host_entry(&report, other)["in_sync"], true);
    }
    let host = host_entry(&report, "host2");
    assert_eq!(host["address"], h.address.as_str());
    let conf = file_entry(host, "/opt/app/app.conf");
    assert_eq!(conf["change"], "modified");
    assert_eq!(conf["diff"]["status"], "differs");
    let unified = conf["diff"]["unified"].as_str().unwrap();
    assert!(
        unified.contains("+# tuned by hand") && unified.contains("(on host2)"),
        "{unified}"
    );
    let readme = file_entry(host, "/opt/app/current/docs/readme.txt");
    assert_eq!(readme["diff"]["status"], "binary");
    assert_eq!(
        file_entry(host, "/opt/app/current/conf/b.conf")["change"],
        "deleted"
    );
    let a = file_entry(host, "/opt/app/current/conf/a.conf");
    assert_eq!(
        (&a["change"], &a["was"], &a["now"], &a["diff"]["status"]),
        (
            &"mode".into(),
            &"0644".into(),
            &"0600".into(),
            &"same".into()
        ),
        "{a}"
    );
    let owned = file_entry(host, "/opt/app/owned.conf");
    assert_eq!(owned["change"], "owner", "{owned}");
    assert_eq!(owned["was"], "root:root");
    assert_ne!(owned["now"], "root:root");
    assert_eq!(owned["diff"]["status"], "same");

    let text = stdout(&c.run(&["drift", "--diff"]));
    assert!(
        text.contains(&format!("host2 ({})", h.address))
            && text.contains("+# tuned by hand")
            && text.contains("binary file differs")
            && text.contains("(root:root -> "),
        "{text}"
    );
    assert!(
        h.read("/opt/app/app.conf")
            .unwrap()
            .contains("tuned by hand"),
        "read-only"
    );

    // Everything drift found, an apply repairs: a plan then has nothing to do.
    c.apply_ok();
    let stat = h.exec("stat -c %U:%G /opt/app/owned.conf");
    assert_eq!(String::from_utf8_lossy(&stat.stdout).trim(), "root:root");
    drift_json(&c, &["--diff"], 0);
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_reimaged_host_is_reported_by_its_missing_receipts() {
    let c = Cluster::new(2);
    c.apply_ok();
    let wiped = c.host(1).exec("rm -rf /var/lib/cairn /opt/app");
    assert!(wiped.status.success(), "{wiped:?}");
    let report = drift_json(&c, &[], 2);
    assert_eq!(host_entry(&report, "host0")["in_sync"], true);
    let host = host_entry(&report, "host1");
    let missing: Vec<&str> = host["missing_receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for task in ["bundle.app@host1", "file.app-conf@host1", "step.join@host1"] {
        assert!(missing.contains(&task), "{task} in {missing:?}");
    }
    assert_eq!(file_entry(host, "/opt/app/app.conf")["change"], "deleted");
    let text = stdout(&c.run(&["drift"]));
    assert!(
        text.contains("receipts missing") && text.contains("an apply does its tasks there again"),
        "{text}"
    );
}

/// The gauge `name` of `host` in a metrics file, as text.
fn host_gauge(text: &str, name: &str, host: &TestHost) -> Option<String> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let found: Vec<String> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == name
                && s.labels.get("cluster") == Some("e2e")
                && s.labels.get("host") == Some(host.name.as_str())
                && s.labels.get("address") == Some(host.address.as_str())
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v.to_string(),
            ref other => panic!("{name} is {other:?}"),
        })
        .collect();
    assert!(found.len() <= 1, "{name}: {found:?}");
    found.into_iter().next()
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn metrics_keep_an_unreachable_hosts_last_check_and_say_it_is_unreachable() {
    let c = Cluster::new(3);
    c.apply_ok();
    let metrics = c.path("textfile/cairn.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let path = metrics.to_str().unwrap();
    let out = c.run(&["drift", "--prometheus", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = std::fs::read_to_string(&metrics).unwrap();
    for h in &c.hosts.hosts {
        assert_eq!(
            host_gauge(&first, "cairn_drift_host_reachable", h).as_deref(),
            Some("1")
        );
        assert_eq!(
            host_gauge(&first, "cairn_drift_host_drifted_tasks", h).as_deref(),
            Some("0")
        );
    }
    let checked = host_gauge(
        &first,
        "cairn_drift_host_last_checked_timestamp_seconds",
        c.host(1),
    )
    .unwrap();

    c.host(1).power_off();
    let out = c.run(&["--json", "drift", "--prometheus", path]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unchecked"][0]["host"], "host1");
    assert_eq!(
        report["unchecked"][0]["address"],
        c.host(1).address.as_str()
    );
    let second = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(
        host_gauge(&second, "cairn_drift_host_reachable", c.host(1)).as_deref(),
        Some("0")
    );
    assert_eq!(
        host_gauge(
            &second,
            "cairn_drift_host_last_checked_timestamp_seconds",
            c.host(1)
        ),
        Some(checked),
        "kept from the run that last reached it"
    );
    assert_eq!(
        host_gauge(&second, "cairn_drift_host_drifted_tasks", c.host(1)),
        None,
        "nothing is claimed about a host that was not checked"
    );
    assert_eq!(
        host_gauge(&second, "cairn_drift_host_reachable", c.host(0)).as_deref(),
        Some("1")
    );
}

/// A step that holds the apply, and so its locks, until `/tmp/go` appears
/// on its host (or its timeout, which would fail the apply).
const GATED: &str = r#"
[[steps]]
name = "gated"
after = ["install"]
run = "touch /tmp/gated-started; while [ ! -f /tmp/go ]; do sleep 0.1; done; echo gated done"
timeout = "120s"
"#;

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn drift_runs_beside_an_apply_that_holds_the_locks_without_waiting_or_breaking_it() {
    let c = Cluster::with(2, "", GATED);
    for h in &c.hosts.hosts {
        h.write("/tmp/go", "");
    }
    c.apply_ok();
    // The gated step changes, so the next apply runs it again, and it waits.
    let text = std::fs::read_to_string(c.path("Clusterfile")).unwrap();
    c.edit(
        "Clusterfile",
        &text.replace(
            "touch /tmp/gated-started;",
            "touch /tmp/gated-started; true;",
        ),
    );
    for h in &c.hosts.hosts {
        h.exec("rm -f /tmp/go /tmp/gated-started");
    }
    let apply = c
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for h in &c.hosts.hosts {
        wait_for(h, "/tmp/gated-started");
    }
    // The apply holds the cluster's state lock and every host's lock now.
    let owner_before: Vec<String> = c
        .hosts
        .hosts
        .iter()
        .map(|h| h.read("/var/lib/cairn/e2e/lock.owner").unwrap_or_default())
        .collect();
    for (h, owner) in c.hosts.hosts.iter().zip(&owner_before) {
        assert!(owner.contains("cairn apply"), "{} lock: {owner:?}", h.name);
    }
    let conf = c.host(1).read("/opt/app/app.conf").unwrap();
    c.host(1).write(
        "/opt/app/app.conf",
        &format!("{conf}# edited during the apply\n"),
    );

    // Drift answers while the apply waits: had it waited for either lock,
    // /tmp/go would never appear and the gated step would time out.
    let report = drift_json(&c, &["--diff"], 2);
    assert_eq!(report["unchecked"], serde_json::json!([]), "{report:#}");
    let host1 = host_entry(&report, "host1");
    let edited = file_entry(host1, "/opt/app/app.conf");
    assert!(
        edited["diff"]["unified"]
            .as_str()
            .unwrap()
            .contains("+# edited during the apply"),
        "{edited}"
    );
    for (h, owner) in c.hosts.hosts.iter().zip(&owner_before) {
        assert_eq!(
            &h.read("/var/lib/cairn/e2e/lock.owner").unwrap_or_default(),
            owner,
            "drift left {}'s lock alone",
            h.name
        );
    }

    c.host(1).write("/opt/app/app.conf", &conf);
    for h in &c.hosts.hosts {
        h.write("/tmp/go", "");
    }
    let applied = apply.wait_with_output().unwrap();
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&applied),
        stderr(&applied)
    );
    drift_json(&c, &[], 0);
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn plan_diff_shows_what_each_host_has_now_as_the_old_side() {
    let c = Cluster::new(2);
    c.apply_ok();
    // host1's rendered config edited by hand; a bundle file changed here.
    let h = c.host(1);
    let conf = h.read("/opt/app/app.conf").unwrap();
    h.write("/opt/app/app.conf", &format!("{conf}# tuned by hand\n"));
    c.edit("app/conf/a.conf", "alpha = 2\n");

    let out = c.run(&["plan", "--diff"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "--- /opt/app/app.conf (on host1)",
        "+++ /opt/app/app.conf (after apply)",
        "-# tuned by hand\n",
        "--- /opt/app/current/conf/a.conf (on host0)",
        "--- /opt/app/current/conf/a.conf (on host1)",
        "-alpha = 1\n",
        "+alpha = 2\n",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    assert!(
        !text.contains("/opt/app/app.conf (on host0)") && !text.contains("b.conf"),
        "only the files that change are diffed:\n{text}"
    );

    let out = c.run(&["plan", "--diff", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let diffs_of = |task: &str| {
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ch| ch["task"] == task)
            .unwrap_or_else(|| panic!("no {task} in {plan:#}"))["diffs"]
            .clone()
    };
    let conf = &diffs_of("file.app-conf@host1")[0];
    assert_eq!(
        (&conf["path"], &conf["kind"]),
        (&"/opt/app/app.conf".into(), &"changed".into()),
        "{conf}"
    );
    assert!(
        conf["unified"]
            .as_str()
            .unwrap()
            .contains("-# tuned by hand")
    );
    assert!(diffs_of("file.app-conf@host0").is_null(), "nothing to diff");
    let bundle = diffs_of("bundle.app@host0");
    assert_eq!(bundle.as_array().map(Vec::len), Some(1), "{bundle}");
    assert_eq!(bundle[0]["path"], "/opt/app/current/conf/a.conf");
    // Read-only: the hand edit is still there.
    assert!(
        h.read("/opt/app/app.conf")
            .unwrap()
            .contains("# tuned by hand")
    );
}
