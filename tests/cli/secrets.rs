//! Secrets: the host gets the value; output, run logs and state never hold
//! it, not even when a step captures it; a saved plan keys them with the
//! salt its apply uses.

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout};

#[test]
fn secrets_never_reach_output_logs_or_state() {
    let s = Sandbox::new();
    let secret = "s3cr3t-VALUE-9f8e";
    s.add_token_secret();
    s.edit(
        "Clusterfile",
        "run = \"mkdir -p out && echo ran >> out/independent.log\"",
        "run = \"mkdir -p out && echo ${token} > out/delivered && echo token=${token}; echo ${token} >&2; exit 1\"",
    );
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"echo v1 # uses ${token}\"",
    );
    let plan = s
        .command(&["plan"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();

    let apply = s
        .command(&["apply", "--auto-approve"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(apply.status.code(), Some(1), "the step fails on purpose");
    let json = s
        .command(&["apply", "--auto-approve", "--json"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();
    let shown = s
        .command(&["state", "list"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(
        s.read("out/delivered"),
        format!("{secret}\n"),
        "the host gets the value"
    );
    for (what, text) in [
        ("plan", stdout(&plan) + &stderr(&plan)),
        ("apply", stdout(&apply) + &stderr(&apply)),
        ("apply --json", stdout(&json) + &stderr(&json)),
        ("state list", stdout(&shown)),
        ("state and logs", s.state_text()),
    ] {
        assert!(!text.contains(secret), "{what} leaks the secret:\n{text}");
    }
    assert!(
        stdout(&apply).contains("    ***"),
        "the failure's tail is scrubbed, not dropped: {}",
        stdout(&apply)
    );
    assert!(s.state_text().contains("token=***"), "so is the run log");

    assert!(
        s.state_text().contains("secret:"),
        "keys hold a salted hash"
    );
}

#[test]
fn a_captured_value_holding_a_secret_is_passed_on_but_never_stored() {
    let s = Sandbox::new();
    let secret = "pa55-WORD-1234";
    s.write(
        "Clusterfile",
        "version = 1\nname = \"cap\"\n\n[vars]\npw = { secret = \"env:CAIRN_TEST_PW\" }\n\n\
         [[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[steps]]\nname = \"mint\"\nrun = \"echo user:${pw}\"\ncapture = \"creds\"\n\n\
         [[steps]]\nname = \"use\"\nafter = [\"mint\"]\nrun = \"mkdir -p out && echo ${creds} > out/creds\"\n",
    );
    let run = |args: &[&str]| {
        s.command(args)
            .env("CAIRN_TEST_PW", secret)
            .output()
            .unwrap()
    };
    let first = run(&["apply", "--auto-approve"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(
        s.read("out/creds"),
        format!("user:{secret}\n"),
        "the consumer got the real value"
    );
    assert!(
        !s.state_text().contains(secret),
        "the state keeps it masked"
    );
    assert!(s.state_text().contains("\"captured_masked\": true"));
    // A later run that needs the value, without the producer rerunning, says how to get it.
    s.edit(
        "Clusterfile",
        "echo ${creds} > out/creds",
        "echo ${creds} >> out/creds",
    );
    let second = run(&["apply", "--auto-approve"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stdout(&second).contains("`${creds}` has no value")
            && stdout(&second).contains("--replace"),
        "{}",
        stdout(&second)
    );
    let third = run(&["apply", "--auto-approve", "--replace", "step.mint"]);
    assert_eq!(third.status.code(), Some(0), "{}", stdout(&third));
    assert_eq!(
        s.read("out/creds"),
        format!("user:{secret}\nuser:{secret}\n")
    );
}

#[test]
fn a_first_saved_plan_with_secrets_applies() {
    let s = Sandbox::new();
    s.add_token_secret();
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"echo v1 # ${token}\"",
    );
    let run = |args: &[&str]| {
        s.command(args)
            .env("CAIRN_TEST_TOKEN", "t0k3n")
            .output()
            .unwrap()
    };
    let plan = run(&["plan", "-o", "first.plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let apply = run(&["apply", "first.plan"]);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "the salt keying the secret is the same at plan and apply: {}",
        stderr(&apply)
    );
}

#[test]
fn a_secret_capture_is_masked_everywhere_and_captured_again_when_a_new_reader_needs_it() {
    let s = Sandbox::new();
    // The host makes the token: it is in no Clusterfile text, so in no key.
    let token = "kubeadm join 10.0.0.1:6443 --token abcdef.42x1000001";
    let minted = "kubeadm join 10.0.0.1:6443 --token abcdef.$((6*7))x$((1000*1000+1))";
    s.write(
        "Clusterfile",
        &format!(
            "version = 1\nname = \"cap\"\n\n\
             [[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
             [[steps]]\nname = \"init\"\nrun = \"mkdir -p out && echo init >> out/init.log\"\nonce = true\n\n\
             [[steps]]\nname = \"join-command\"\nafter = [\"init\"]\n\
             run = \"echo mint >> out/mint.log && echo \\\"{minted}\\\"\"\ncapture = \"join\"\ncapture_secret = true\n\n\
             [[steps]]\nname = \"join\"\nafter = [\"join-command\"]\n\
             run = \"echo ${{join}} > out/joined-a && echo joined: ${{join}}\"\n"
        ),
    );
    let first = s.command(&["apply", "--auto-approve"]).output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(
        s.read("out/joined-a"),
        format!("{token}\n"),
        "the reader got the value"
    );
    let json = s
        .command(&["state", "show", "step.join-command@local", "--json"])
        .output()
        .unwrap();
    let logs: String = walkdir::WalkDir::new(s.path(".cairn"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        logs.contains("joined: ***"),
        "the run log holds the masked line"
    );
    for (what, text) in [
        ("apply output", stdout(&first) + &stderr(&first)),
        ("state show", stdout(&json)),
        ("the state folder and run logs", logs),
    ] {
        assert!(
            !text.contains("42x1000001"),
            "{what} holds the token:\n{text}"
        );
    }

    // Nothing reads it again: nothing reruns.
    let again = s
        .command(&["plan", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));

    // A new reader runs: the capture runs again for it, init (once) does not,
    // and the reader that is done stays done.
    s.edit(
        "Clusterfile",
        "capture_secret = true\n",
        "capture_secret = true\n\n[[steps]]\nname = \"join-b\"\nafter = [\"join-command\"]\nrun = \"echo ${join} > out/joined-b\"\n",
    );
    let plan = s.command(&["plan"]).output().unwrap();
    let text = stdout(&plan);
    assert!(
        text.contains("captures ${join} again for step.join-b@local"),
        "{text}"
    );
    assert!(
        !text.contains("step.join@local"),
        "the done reader stays: {text}"
    );
    assert!(!text.contains("step.init@local"), "{text}");
    let second = s.command(&["apply", "--auto-approve"]).output().unwrap();
    assert_eq!(second.status.code(), Some(0), "{}", stdout(&second));
    assert_eq!(s.read("out/joined-b"), format!("{token}\n"));
    assert_eq!(s.read("out/mint.log"), "mint\nmint\n");
    assert_eq!(s.read("out/init.log"), "init\n");
    assert!(!stdout(&second).contains("42x1000001"));
}

#[test]
fn capture_secret_without_capture_is_one_clear_error() {
    let s = Sandbox::new();
    s.write(
        "Clusterfile",
        "version = 1\nname = \"cap\"\n\n\
         [[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[steps]]\nname = \"mint\"\nrun = \"echo x\"\ncapture_secret = true\n",
    );
    let out = s.command(&["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("`capture_secret` without `capture`"),
        "{text}"
    );
    assert!(text.contains("capture = \"NAME\""), "{text}");
}

#[test]
fn a_secret_captured_by_a_once_step_is_warned_about_before_a_new_reader_fails() {
    let s = Sandbox::new();
    s.write(
        "Clusterfile",
        "version = 1\nname = \"cap\"\n\n\
         [[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[steps]]\nname = \"init\"\nrun = \"echo t-$((40+2))\"\ncapture = \"join\"\ncapture_secret = true\nonce = true\n\n\
         [[steps]]\nname = \"join\"\nafter = [\"init\"]\nrun = \"mkdir -p out && echo ${join} > out/a\"\n",
    );
    let first = s.command(&["apply", "--auto-approve"]).output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(s.read("out/a"), "t-42\n");
    s.edit("Clusterfile", "> out/a", "> out/b");
    let plan = s.command(&["plan"]).output().unwrap();
    let text = stdout(&plan) + &stderr(&plan);
    assert!(
        text.contains("step.join@local reads ${join}, a secret that step.init@local captured once"),
        "{text}"
    );
}
