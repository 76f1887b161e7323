//! Variables from outside: `--var NAME=VALUE` and `--var-file FILE` over
//! `[vars]`, under a host's own `vars`; unknown names refused with a
//! suggestion; the plan's reason says where a changed value came from.

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout};

#[test]
fn precedence_is_vars_then_var_file_then_var_then_the_hosts_own() {
    let s = Sandbox::new();
    s.write("prod.toml", "greeting = \"from-file\"\nport = 9090\n");
    let out = s.run(&["apply", "--auto-approve", "--var-file", "prod.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.read("out/motd"), "from-file from fixture\n");
    assert!(
        s.read("out/web/etc/web.conf").contains(":9090"),
        "a var file keeps its TOML types"
    );
    let plan = s.run(&[
        "plan",
        "--var-file",
        "prod.toml",
        "--var",
        "greeting=from-cli",
    ]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    assert!(
        stdout(&plan).contains("var greeting changed (\"from-file\" -> \"from-cli\", from --var)"),
        "{}",
        stdout(&plan)
    );
    let plan = s.run(&["plan", "--var", "port=8081"]);
    assert!(
        stdout(&plan).contains("var greeting changed (\"from-file\" -> \"hello\")"),
        "a value back from [vars] names no outside source: {}",
        stdout(&plan)
    );
    // A host's own vars win over everything given from outside.
    s.edit(
        "Clusterfile",
        "roles = [\"web\"]",
        "roles = [\"web\"]\nvars = { greeting = \"host-own\" }",
    );
    let out = s.run(&["apply", "--auto-approve", "--var", "greeting=from-cli"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.read("out/motd"), "host-own from fixture\n");
}

#[test]
fn a_var_file_reason_names_the_file() {
    let s = Sandbox::new();
    s.apply();
    s.write("prod.toml", "greeting = \"salut\"\n");
    let plan = s.run(&["plan", "--var-file", "prod.toml"]);
    assert!(
        stdout(&plan)
            .contains("var greeting changed (\"hello\" -> \"salut\", from --var-file prod.toml)"),
        "{}",
        stdout(&plan)
    );
}

#[test]
fn unknown_malformed_or_secret_vars_are_clear_errors() {
    let s = Sandbox::new();
    let typo = s.run(&["validate", "--var", "greting=x"]);
    assert_eq!(typo.status.code(), Some(1));
    let text = stderr(&typo);
    assert!(
        text.contains("--var sets `greting`, which [vars] does not declare"),
        "{text}"
    );
    assert!(text.contains("did you mean `greeting`?"), "{text}");
    let malformed = s.run(&["plan", "--var", "greeting"]);
    assert_eq!(malformed.status.code(), Some(1));
    assert!(
        stderr(&malformed).contains("--var greeting: expected NAME=VALUE"),
        "{}",
        stderr(&malformed)
    );
    let mistyped = s.run(&["drift", "--var", "port=eighty"]);
    assert_eq!(mistyped.status.code(), Some(1));
    assert!(
        stderr(&mistyped).contains("`port` is an integer in [vars]"),
        "{}",
        stderr(&mistyped)
    );
    s.write("bad.toml", "greeting = \n");
    let bad_file = s.run(&["plan", "--var-file", "bad.toml"]);
    assert_eq!(bad_file.status.code(), Some(1));
    assert!(
        stderr(&bad_file).contains("the var file bad.toml is not valid TOML"),
        "{}",
        stderr(&bad_file)
    );
    s.add_token_secret();
    let secret = s
        .command(&["plan", "--var", "token=plain"])
        .env("CAIRN_TEST_TOKEN", "s3cr3t")
        .output()
        .unwrap();
    assert_eq!(secret.status.code(), Some(1));
    assert!(
        stderr(&secret).contains("a secret in [vars]"),
        "{}",
        stderr(&secret)
    );
    assert!(!stderr(&secret).contains("s3cr3t"));
    let ok = s
        .command(&["validate", "--var", "greeting=x", "--var", "port=1"])
        .env("CAIRN_TEST_TOKEN", "s3cr3t")
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
}

#[test]
fn add_and_reset_read_vars_too() {
    let s = Sandbox::new();
    let before = s.read("Clusterfile");
    let add = s.run(&[
        "add",
        "10.0.0.9",
        "--role",
        "web",
        "--no-apply",
        "--var",
        "gretting=x",
    ]);
    assert_eq!(add.status.code(), Some(1));
    assert!(
        stderr(&add).contains("did you mean `greeting`?"),
        "{}",
        stderr(&add)
    );
    assert_eq!(s.read("Clusterfile"), before, "nothing was written");
    let reset = s.run(&["reset", "--auto-approve", "--var", "port"]);
    assert_eq!(reset.status.code(), Some(1));
    assert!(
        stderr(&reset).contains("expected NAME=VALUE"),
        "{}",
        stderr(&reset)
    );
}
