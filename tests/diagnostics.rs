//! What a user sees for each broken Clusterfile in fixtures/broken: the full
//! miette report, snapshotted (insta), with the only machine-specific part,
//! the checkout's absolute path, redacted.

use std::path::{Path, PathBuf};

fn broken_fixtures() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("fixtures/broken")
        .expect("tests run from the package root")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_broken_fixture_is_reported_with_spans_and_help() {
    let root = std::fs::canonicalize(".")
        .expect("cwd")
        .display()
        .to_string();
    let fixtures = broken_fixtures();
    assert!(fixtures.len() >= 15, "the broken fixtures are there");
    for path in fixtures {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let Err(error) = cairn::pipeline::Loaded::read(&path).and_then(|loaded| loaded.check())
        else {
            panic!("{} should not validate", path.display())
        };
        let text = cairn::diagnostic::render_plain(&error).replace(&root, "[ROOT]");
        // Every problem points into the file, except those about the whole file.
        assert!(
            text.contains(&format!("[{}:", path.display())),
            "{name}: no span in\n{text}"
        );
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn binary_exits_1_and_prints_file_line_and_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["validate", "--no-color", "-f", "fixtures/broken/cycle.toml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("circular dependency a -> c -> b -> a"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fixtures/broken/cycle.toml:20:10"),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: remove one of these `after` entries"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn invalid_clusterfile_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Clusterfile");
    std::fs::write(&file, "version = 1\nname = \"x\"\n[[hosts]]\naddress = \"localhost\"\ntransport = \"local\"\n[[steps]]\nname = \"a\"\nrun = \"touch ran\"\nafter = [\"nope\"]\n").unwrap();
    for args in [vec!["plan"], vec!["apply", "--auto-approve"], vec!["graph"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("Clusterfile")],
        "no state, no output, nothing run"
    );
    assert!(!Path::new(&dir.path().join("ran")).exists());
}

/// A Clusterfile that uses every key of every section, and refers to
/// everything it defines: hosts by role and name, elements by `after`, a
/// bundle by a config, variables of `[vars]` and of a host, a secret, a
/// capture. Written to `dir` with the files it needs.
fn every_key_clusterfile(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/app.yaml"), "a: 0\n").unwrap();
    std::fs::write(dir.join("token.txt"), "s3cret\n").unwrap();
    r#"version = 1
name = "x"

[ssh]
user = "root"
port = 22
identity = "~/.ssh/id"
sudo = false
sudo_password = "file:token.txt"
host_keys = "accept-new"
jump = "root@10.0.0.9"
connect_timeout = "10s"

[vars]
greeting = "hi"
token = { secret = "file:token.txt" }

[[hosts]]
address = "127.0.0.1"
name = "h1"
roles = ["web"]
transport = "local"
vars = { port = 80 }
ssh = { port = 22 }

[[hosts]]
address = "127.0.0.2"
name = "h2"
roles = ["db"]
transport = "local"

[[bundles]]
name = "site"
source = "site"
kind = "rootfs"
on = ["web"]
dest = "out/site"
templates = ["*.tmpl"]
after = ["prep"]

[[files]]
name = "motd"
content = "${greeting}"
dest = "out/motd"
template = false
mode = "0644"
owner = "root:root"
on = "web"
after = ["site"]

[[configs]]
bundle = "site"
path = "app.yaml"
strategy = "merge"
data = "a: 1"

[[steps]]
name = "prep"
on = "h1"
run = "echo ${greeting} ${port}"
cwd = "/tmp"
capture = "version"
check = "true"
undo = "true"
timeout = "5s"
retries = 1
once = false

[[steps]]
name = "use"
on = ["web", "db"]
run = "echo ${version} ${token}"
after = ["prep@h1", "motd"]
"#
    .to_string()
}

/// The problems found in `text`, as "line: message" for a readable failure.
fn problems_in(dir: &Path, text: &str) -> Vec<String> {
    let source = cairn::diagnostic::SourceFile {
        path: dir.join("Clusterfile"),
        text: std::sync::Arc::new(text.to_string()),
    };
    match cairn::pipeline::Loaded::from_source(source).and_then(|loaded| loaded.check()) {
        Ok(_) => Vec::new(),
        Err(cairn::error::CairnError::Invalid(invalid)) => invalid
            .problems
            .iter()
            .map(|p| {
                let line = p
                    .problem
                    .span
                    .as_ref()
                    .map_or(0, |s| text[..s.start].matches('\n').count() + 1);
                format!("{line}: {}", p.problem.message)
            })
            .collect(),
        Err(other) => vec![format!("not a Clusterfile error: {other}")],
    }
}

/// Values of another type than `value`'s, each of which is wrong for its key.
fn wrong_types(section: &str, key: &str, value: &str) -> Vec<String> {
    if section == "[vars]" {
        // A variable may hold any value; only a secret's source has a type.
        return if value.contains("secret") {
            vec!["{ secret = 5 }".into()]
        } else {
            Vec::new()
        };
    }
    if value.starts_with('"') {
        vec!["5".into(), "{ a = 1 }".into()]
    } else if value.starts_with('[') {
        // `on` takes one selector or a list: only a number is the wrong type.
        let first = value
            .trim_matches(['[', ']'])
            .split(',')
            .next()
            .unwrap_or("\"x\"")
            .trim()
            .to_string();
        if key == "on" {
            vec!["5".into()]
        } else {
            vec![first, "5".into()]
        }
    } else if value.starts_with('{') {
        vec!["5".into(), "\"x\"".into()]
    } else if value == "true" || value == "false" {
        vec!["\"yes\"".into()]
    } else {
        vec!["\"x\"".into(), "[1]".into()]
    }
}

#[test]
fn a_value_of_the_wrong_type_is_one_error_whatever_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = every_key_clusterfile(dir.path());
    assert_eq!(
        problems_in(dir.path(), &base),
        Vec::<String>::new(),
        "the base is valid"
    );
    let lines: Vec<&str> = base.lines().collect();
    let mut section = String::new();
    let mut tried = 0;
    let mut failures = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with('[') {
            section = (*line).to_string();
            continue;
        }
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        for wrong in wrong_types(&section, key, value) {
            let mut mutated = lines.clone();
            let replaced = format!("{key} = {wrong}");
            mutated[i] = &replaced;
            let text = mutated.join("\n") + "\n";
            let problems = problems_in(dir.path(), &text);
            tried += 1;
            if problems.len() != 1 {
                failures.push(format!(
                    "line {} in {section}: `{replaced}` gave {} problems:\n    {}",
                    i + 1,
                    problems.len(),
                    problems.join("\n    ")
                ));
            }
        }
    }
    assert!(tried > 60, "every key was tried ({tried})");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_secret_whose_source_is_missing_is_one_error_not_also_an_undefined_variable() {
    let dir = tempfile::tempdir().unwrap();
    let text = "version = 1\nname = \"x\"\n[vars]\ntoken = { secret = \"env:CAIRN_TEST_SURELY_UNSET\" }\n\
                [[hosts]]\naddress = \"localhost\"\ntransport = \"local\"\n\
                [[steps]]\nname = \"a\"\nrun = \"echo ${token}\"\n";
    assert_eq!(
        problems_in(dir.path(), text),
        ["4: secret `token`: environment variable `CAIRN_TEST_SURELY_UNSET` is not set"]
    );
}

#[test]
fn a_list_written_as_a_string_says_how_to_write_it_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let text = "version = 1\nname = \"x\"\n\
                [[hosts]]\naddress = \"localhost\"\nname = \"h1\"\nroles = \"web\"\ntransport = \"local\"\n\
                [[steps]]\nname = \"a\"\non = \"web\"\nrun = \"true\"\n";
    let source = cairn::diagnostic::SourceFile {
        path: dir.path().join("Clusterfile"),
        text: std::sync::Arc::new(text.to_string()),
    };
    let Err(cairn::error::CairnError::Invalid(invalid)) =
        cairn::pipeline::Loaded::from_source(source)
    else {
        panic!("roles = \"web\" is invalid")
    };
    let problems: Vec<_> = invalid.problems.iter().map(|p| &p.problem).collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(
        problems[0].message,
        "wrong type for `roles`: expected a list, found string \"web\""
    );
    assert_eq!(
        problems[0].help.as_deref(),
        Some("write it as `roles = [\"web\"]`")
    );
}

#[test]
fn a_misspelt_key_gets_a_did_you_mean() {
    let dir = tempfile::tempdir().unwrap();
    let text = "version = 1\nname = \"x\"\n[step]\n\
                [[hosts]]\naddress = \"localhost\"\nadress = \"x\"\n\
                [[steps]]\nname = \"a\"\nrun = \"true\"\ntimout = \"5s\"\n";
    let source = cairn::diagnostic::SourceFile {
        path: dir.path().join("Clusterfile"),
        text: std::sync::Arc::new(text.to_string()),
    };
    let Err(cairn::error::CairnError::Invalid(invalid)) =
        cairn::pipeline::Loaded::from_source(source)
    else {
        panic!("unknown keys are invalid")
    };
    let found: Vec<(&str, &str)> = invalid
        .problems
        .iter()
        .map(|p| {
            let help = p.problem.help.as_deref().unwrap_or_default();
            (
                p.problem.message.as_str(),
                help.split('?').next().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("unknown key `step`", "did you mean `steps`"),
            ("unknown key `adress`", "did you mean `address`"),
            ("unknown key `timout`", "did you mean `timeout`"),
        ]
    );
}

#[test]
fn a_misspelt_name_is_one_error_not_also_a_missing_name() {
    let dir = tempfile::tempdir().unwrap();
    let source = cairn::diagnostic::SourceFile {
        path: dir.path().join("Clusterfile"),
        text: std::sync::Arc::new("version = 1\nnme = \"x\"\n".to_string()),
    };
    let Err(cairn::error::CairnError::Invalid(invalid)) =
        cairn::pipeline::Loaded::from_source(source)
    else {
        panic!("a misspelt key is invalid")
    };
    let messages: Vec<&str> = invalid
        .problems
        .iter()
        .map(|p| p.problem.message.as_str())
        .collect();
    assert_eq!(messages, ["unknown key `nme`"]);
    assert!(
        invalid.problems[0]
            .problem
            .help
            .as_deref()
            .unwrap_or_default()
            .starts_with("did you mean `name`?"),
        "{:?}",
        invalid.problems[0].problem.help
    );
}

#[test]
fn a_wrong_value_is_one_error_and_what_depends_on_it_is_not_reported_again() {
    let dir = tempfile::tempdir().unwrap();
    let base = every_key_clusterfile(dir.path());
    let cases = [
        ("address = \"127.0.0.1\"", "address = \"10.0.0.9-10.0.0.1\""),
        ("roles = [\"web\"]", "roles = [\"we b\"]"),
        ("port = 22\n", "port = 70000\n"),
        ("host_keys = \"accept-new\"", "host_keys = \"bogus\""),
        ("connect_timeout = \"10s\"", "connect_timeout = \"soon\""),
        (
            "{ secret = \"file:token.txt\" }",
            "{ secret = \"file:missing.txt\" }",
        ),
        (
            "{ secret = \"file:token.txt\" }",
            "{ secret = \"env:CAIRN_TEST_SURELY_UNSET\" }",
        ),
        (
            "sudo_password = \"file:token.txt\"",
            "sudo_password = \"env:CAIRN_TEST_SURELY_UNSET\"",
        ),
        ("owner = \"root:root\"", "owner = \"root:\""),
        ("jump = \"root@10.0.0.9\"", "jump = \"root@\""),
        ("kind = \"rootfs\"", "kind = \"bogus\""),
        ("source = \"site\"", "source = \"nosuch\""),
        ("on = [\"web\"]", "on = [\"nosuch\"]"),
        ("templates = [\"*.tmpl\"]", "templates = [\"[a\"]"),
        ("after = [\"prep\"]", "after = [\"nosuch\"]"),
        ("mode = \"0644\"", "mode = \"999\""),
        ("strategy = \"merge\"", "strategy = \"bogus\""),
        ("path = \"app.yaml\"", "path = \"/abs\""),
        ("timeout = \"5s\"", "timeout = \"5 parsecs\""),
        ("retries = 1", "retries = 1000"),
        (
            "run = \"echo ${greeting} ${port}\"",
            "run = \"echo ${greeting\"",
        ),
        (
            "vars = { port = 80 }",
            "vars = { port = 80, prot = 1 }\nbogus = 1",
        ),
        ("name = \"prep\"", "name = \"prep\"\ntimout = \"5s\""),
    ];
    let mut failures = Vec::new();
    for (from, to) in cases {
        assert_eq!(base.matches(from).count(), 1, "{from}");
        let text = base.replace(from, to);
        let problems = problems_in(dir.path(), &text);
        if problems.len() != 1 {
            failures.push(format!(
                "`{to}` gave {} problems:\n    {}",
                problems.len(),
                problems.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_element_missing_its_name_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let base = every_key_clusterfile(dir.path());
    for name in ["name = \"site\"\n", "name = \"prep\"\n"] {
        let problems = problems_in(dir.path(), &base.replace(name, ""));
        assert_eq!(problems.len(), 1, "without {name}: {problems:#?}");
        assert!(problems[0].ends_with("missing key `name`"), "{problems:?}");
    }
}

#[test]
fn a_misspelt_section_is_one_error_not_also_everything_that_refers_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = every_key_clusterfile(dir.path());
    for (from, to) in [
        ("[[hosts]]", "[[host]]"),
        ("[[steps]]", "[[step]]"),
        ("[vars]", "[var]"),
    ] {
        let problems = problems_in(dir.path(), &base.replace(from, to));
        assert!(
            !problems.is_empty() && problems.iter().all(|p| p.contains("unknown key")),
            "{to}: {problems:#?}"
        );
    }
}
