//! Bundle metadata (`bundle.toml`) and hooks, on the local transport: the
//! fixture bundles `hooked` (a rootfs with every kind of hook, default vars
//! and a default config) and `hooked-app` (an app with a `cmd`) whose
//! scripts append what they see to `out/hooks.log`. Covered: the order
//! sealos gives hooks, the bundle's vars exported to them, what a var change
//! reruns, overrides in the Clusterfile, default configs before the user's,
//! clean hooks on reset and when a bundle leaves, and a bad `bundle.toml`.

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout};

const CLUSTERFILE: &str = r#"version = 1
name = "hooks"

[vars]
greeting = "hello"

[[hosts]]
address = "localhost"
name = "local"
transport = "local"
roles = ["master"]

[[bundles]]
name = "hooked"
source = "hooked"
dest = "out/hooked"

[[bundles]]
name = "app"
source = "hooked-app"
dest = "out/app"

[[steps]]
name = "ready"
after = ["hooked"]
run = "echo ready >> out/hooks.log"
"#;

fn sandbox() -> Sandbox {
    let s = Sandbox::new();
    s.write("Clusterfile", CLUSTERFILE);
    s
}

fn log(s: &Sandbox) -> Vec<String> {
    s.read("out/hooks.log")
        .lines()
        .map(str::to_string)
        .collect()
}

fn position(lines: &[String], prefix: &str) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("`{prefix}` ran: {lines:?}"))
}

#[test]
fn hooks_run_in_sealos_order_with_the_bundles_vars_exported() {
    let s = sandbox();
    let plan = s.run(&["plan"]);
    assert!(
        stdout(&plan).contains("+ hook.hooked.init@local"),
        "{}",
        stdout(&plan)
    );
    s.apply();
    let lines = log(&s);
    let check = position(&lines, "check ");
    let cri = position(&lines, "init-cri ");
    let registry = position(&lines, "init-registry ");
    let init = position(&lines, "init ");
    let cmd = position(&lines, "cmd ");
    let ready = position(&lines, "ready");
    assert!(check < cri && check < registry, "{lines:?}");
    assert!(cri < init && registry < init, "{lines:?}");
    assert!(
        init < cmd && cmd < ready,
        "after the bundle waits for its hooks: {lines:?}"
    );
    assert!(
        lines.contains(&"init sealos.hub fast".to_string()),
        "bundle defaults are exported: {lines:?}"
    );
    assert!(
        lines.contains(&"init-cri sealos.hub".to_string()),
        "a script named alone is found on PATH (the scripts folder): {lines:?}"
    );
    assert!(
        lines.contains(&"cmd sealos.hub".to_string()),
        "`${{x}}` in bundle.toml is the shell's: {lines:?}"
    );
    assert!(
        lines.contains(&"app kind: App".to_string()),
        "the app's cmd ran in its dest: {lines:?}"
    );
    assert!(
        !s.path("out/hooked/bundle.toml").exists(),
        "bundle.toml is never shipped"
    );
    let show = s.run(&["state", "show", "hook.hooked.init@local"]);
    assert_eq!(show.status.code(), Some(0), "{}", stderr(&show));
    assert!(
        stdout(&show).contains("sh init.sh") && stdout(&show).contains("sh clean.sh"),
        "{}",
        stdout(&show)
    );
    let graph = s.run(&["graph", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&graph.stdout).unwrap();
    let hook = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "hook.hooked.check@local")
        .expect("the check hook is in the graph");
    assert_eq!(hook["kind"], "hook");
    assert_eq!(hook["after"], serde_json::json!(["bundle.hooked@local"]));
    assert!(s.planned_actions().is_empty(), "a second plan is empty");
}

#[test]
fn a_var_change_reruns_only_the_hooks_that_see_it() {
    let s = sandbox();
    s.apply();
    let plan = s.run(&["plan", "--var", "registryDomain=my.hub"]);
    let text = stdout(&plan);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    assert!(
        text.contains(
            "~ hook.hooked.check@local          var registryDomain changed (\"sealos.hub\" -> \"my.hub\", from --var)"
        ),
        "{text}"
    );
    assert!(
        !text.contains("hook.app.cmd"),
        "the app declares no such var: {text}"
    );
    let out = s.run(&["apply", "--auto-approve", "--var", "registryDomain=my.hub"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        log(&s).contains(&"init my.hub fast".to_string()),
        "{:?}",
        log(&s)
    );
    // A var no bundle declares reruns no hook.
    let plan = s.run(&[
        "plan",
        "--var",
        "registryDomain=my.hub",
        "--var",
        "greeting=hi",
    ]);
    assert!(
        !stdout(&plan).contains("hook."),
        "greeting is not exported to any hook: {}",
        stdout(&plan)
    );
    // A bundle's defaults are the whole Clusterfile's: a step reads one with `${}`.
    s.write(
        "Clusterfile",
        &format!(
            "{CLUSTERFILE}\n[[steps]]\nname = \"uses-default\"\nrun = \"echo step ${{registryDomain}} >> out/hooks.log\"\n"
        ),
    );
    s.apply();
    assert!(
        log(&s).contains(&"step sealos.hub".to_string()),
        "{:?}",
        log(&s)
    );
    // The Clusterfile's [vars] win over the bundle's defaults, host vars over both.
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"hello\"\nmode = \"slow\"",
    );
    s.edit(
        "Clusterfile",
        "roles = [\"master\"]",
        "roles = [\"master\"]\nvars = { registryDomain = \"host.hub\" }",
    );
    s.apply();
    assert!(
        log(&s).contains(&"init host.hub slow".to_string()),
        "{:?}",
        log(&s)
    );
}

#[test]
fn the_clusterfile_overrides_disables_and_adds_hooks() {
    let s = sandbox();
    s.edit(
        "Clusterfile",
        "dest = \"out/hooked\"",
        "dest = \"out/hooked\"\nhooks = { init = \"echo \\\"init-override ${greeting} $registryDomain\\\" >> ../../hooks.log\", check = false, init-extra = \"echo extra >> ../../hooks.log\" }\ncmd = false",
    );
    let plan = s.run(&["plan"]);
    let text = stdout(&plan);
    assert!(
        !text.contains("hook.hooked.check") && !text.contains("hook.hooked.cmd"),
        "{text}"
    );
    s.apply();
    let lines = log(&s);
    assert!(
        lines.contains(&"init-override hello sealos.hub".to_string()),
        "`${{}}` is cairn's in a Clusterfile override, `$x` the shell's: {lines:?}"
    );
    assert!(
        position(&lines, "extra") < position(&lines, "init-override"),
        "{lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("check") || l.starts_with("cmd")),
        "{lines:?}"
    );
    // Changing an override reruns that hook, said in the plan.
    s.edit(
        "Clusterfile",
        "init-override ${greeting}",
        "init-override2 ${greeting}",
    );
    let plan = s.run(&["plan"]);
    assert!(
        stdout(&plan).contains("~ hook.hooked.init@local") && stdout(&plan).contains("run changed"),
        "{}",
        stdout(&plan)
    );
}

#[test]
fn default_configs_apply_before_the_clusterfiles() {
    let s = sandbox();
    s.apply();
    let patched = s.read("out/hooked/etc/hooked.yaml");
    assert!(
        patched.contains("port: 5000") && patched.contains("domain: sealos.hub"),
        "{patched}"
    );
    s.write(
        "Clusterfile",
        &format!(
            "{CLUSTERFILE}\n[[configs]]\nbundle = \"hooked\"\npath = \"etc/hooked.yaml\"\ndata = \"registry:\\n  port: 6000\\n\"\n"
        ),
    );
    s.apply();
    let patched = s.read("out/hooked/etc/hooked.yaml");
    assert!(
        patched.contains("port: 6000"),
        "the user's patch wins: {patched}"
    );
}

#[test]
fn clean_hooks_undo_init_hooks_in_reverse_on_reset_and_when_the_bundle_leaves() {
    let s = sandbox();
    s.apply();
    let out = s.run(&["reset", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = log(&s);
    let clean = position(&lines, "clean ");
    assert!(clean < position(&lines, "clean-cri "), "{lines:?}");
    assert!(clean < position(&lines, "clean-registry "), "{lines:?}");
    assert_eq!(
        lines[clean], "clean sealos.hub fast",
        "undo sees the vars too"
    );
    assert!(
        !s.path("out/hooked/scripts").exists(),
        "files removed after the cleans"
    );

    std::fs::remove_file(s.path("out/hooks.log")).unwrap();
    s.apply();
    s.write(
        "Clusterfile",
        &CLUSTERFILE
            .replace(
                "[[bundles]]\nname = \"hooked\"\nsource = \"hooked\"\ndest = \"out/hooked\"\n",
                "",
            )
            .replace("after = [\"hooked\"]\n", ""),
    );
    s.apply();
    let lines = log(&s);
    assert!(
        position(&lines, "clean ") < position(&lines, "clean-cri "),
        "the bundle left: its cleans ran: {lines:?}"
    );
}

#[test]
fn a_bad_bundle_toml_is_a_validation_error_naming_the_file_and_key() {
    let s = sandbox();
    for (text, expected) in [
        ("kind = \"rootfs\"\nlabels = 1\n", "labels"),
        ("kind = \"image\"\n", "image"),
        ("[hooks]\nprepare = \"x\"\n", "unknown hook `prepare`"),
        ("[hooks]\nclean-x = \"x\"\n", "no `init-x`"),
        ("[vars]\nport = [1]\n", "`port`"),
    ] {
        s.write("hooked/bundle.toml", text);
        let out = s.run(&["validate"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(err.contains("bundle.toml"), "{text}: {err}");
        assert!(err.contains(expected), "{text}: {err}");
    }
    s.write("hooked/bundle.toml", "");
    s.edit(
        "Clusterfile",
        "dest = \"out/hooked\"",
        "dest = \"out/hooked\"\nhooks = { boot = \"x\" }",
    );
    let out = s.run(&["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown hook `boot`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_secret_a_bundle_declares_reaches_its_hooks_and_nothing_else() {
    let s = sandbox();
    let secret = "s3cr3t-pass";
    s.edit(
        "hooked/bundle.toml",
        "mode = \"fast\"",
        "mode = \"fast\"\nregistryPassword = \"\"",
    );
    s.edit(
        "hooked/bundle.toml",
        "init = \"sh init.sh\"",
        "init = \"sh init.sh && printf %s \\\"$registryPassword\\\" > ../../password && echo \\\"$registryPassword\\\"\"",
    );
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"hello\"\nregistryPassword = { secret = \"env:CAIRN_TEST_TOKEN\" }",
    );
    let out = s
        .command(&["apply", "--auto-approve"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.read("out/password"), secret, "exported to the hook");
    assert!(!stdout(&out).contains(secret) && !stderr(&out).contains(secret));
    assert!(
        !s.state_text().contains(secret),
        "neither state, receipts nor run logs hold it"
    );
    let show = s
        .command(&["state", "show", "hook.hooked.init@local"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert!(
        stdout(&show).contains("registryPassword") && !stdout(&show).contains(secret),
        "in the key as a salted hash: {}",
        stdout(&show)
    );
    // Its undo reads it from its source again.
    let out = s
        .command(&["reset", "--auto-approve"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn limit_and_replace_name_hooks_like_steps() {
    let s = sandbox();
    s.apply();
    let out = s.run(&[
        "apply",
        "--auto-approve",
        "--replace",
        "hook.hooked.init",
        "--limit",
        "local",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("-/+ hook.hooked.init@local") && text.contains("forced by --replace"),
        "{text}"
    );
    let lines = log(&s);
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("clean ")).count(),
        1,
        "a replace undoes the hook (its clean) before running it again: {lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("init ")).count(),
        2,
        "{lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("check ")).count(),
        1,
        "what it waits for does not rerun: {lines:?}"
    );
}
