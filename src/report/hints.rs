//! Hints that run as printed: a `` `cairn …` `` command suggested anywhere
//! in cairn's output gets the `-f PATH`, `--var` and `--var-file` this
//! invocation was given, so that copying it does what it says.
//!
//! Hints are written in many rooms (errors, reasons, lock notices) as
//! `` `cairn apply` ``; they cannot all know how cairn was invoked, and
//! should not have to. The output's edge can: `report` passes every text it
//! prints through [`runnable`], once [`remember_invocation`] has been told.
//! Left as they are: a hint that already says `-f` or `--var` (a saved
//! plan's remake command), and a lock holder's recorded command line
//! (`(pid 4242, `cairn apply`, …`), which is history, not advice.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::show::shell_word;

/// The words this invocation added to plain `cairn SUBCOMMAND`.
#[derive(Debug, Default)]
struct Invocation {
    /// `-f PATH`, when `-f` was given and is not `Clusterfile`.
    file: Option<String>,
    /// `--var …` and `--var-file …`, in the order given.
    vars: Vec<String>,
}

static INVOCATION: RwLock<Option<Invocation>> = RwLock::new(None);

/// Subcommands that take `--var` and `--var-file`.
const TAKE_VARS: [&str; 7] = [
    "validate", "plan", "apply", "drift", "reset", "add", "delete",
];

/// Tells the output how cairn was invoked; a saved plan tells it again,
/// with the Clusterfile and values it records.
pub fn remember_invocation(file: Option<&Path>, vars: &[String], var_files: &[PathBuf]) {
    let file = file
        .filter(|f| *f != Path::new("Clusterfile"))
        .map(|f| format!("-f {}", shell_word(f)));
    let vars = var_files
        .iter()
        .map(|f| format!("--var-file {}", shell_word(f)))
        .chain(
            vars.iter()
                .map(|v| format!("--var {}", shell_word(Path::new(v)))),
        )
        .collect();
    *INVOCATION.write().expect("not poisoned") = Some(Invocation { file, vars });
}

/// `text` with each hinted command completed as this invocation needs.
pub(super) fn runnable(text: &str) -> Cow<'_, str> {
    match &*INVOCATION.read().expect("not poisoned") {
        Some(invocation) if invocation.file.is_some() || !invocation.vars.is_empty() => {
            Cow::Owned(complete(text, invocation))
        }
        _ => Cow::Borrowed(text),
    }
}

fn complete(text: &str, invocation: &Invocation) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(at) = rest.find("cairn ") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        // A hint is a code span that starts with the command, or pipes into
        // it (`echo yes | cairn apply`); it ends where the span does.
        let is_hint = out.ends_with('`') || (out.ends_with("| ") && out.contains('`'));
        // A lock holder: `(pid 4242, `cairn apply`, started …)`.
        let recorded_command = out.strip_suffix(", `").is_some_and(|b| {
            b.rsplit_once("(pid ")
                .is_some_and(|(_, pid)| pid.chars().all(|c| c.is_ascii_digit()))
        });
        if !is_hint || recorded_command {
            out.push_str("cairn ");
            rest = &from["cairn ".len()..];
            continue;
        }
        let end = from.find('`').unwrap_or(from.len());
        let (hint, after) = from.split_at(end);
        out.push_str(&complete_one(hint, invocation));
        rest = after;
    }
    out.push_str(rest);
    out
}

/// One `cairn SUB …` hint (without its backticks), completed.
fn complete_one(hint: &str, invocation: &Invocation) -> String {
    let words: Vec<&str> = hint.split(' ').collect();
    let says_file = words.iter().any(|w| *w == "-f" || w.starts_with("--file"));
    let says_vars = words.iter().any(|w| w.starts_with("--var"));
    // `apply PLAN` and `show PLAN` read everything from the plan, and take
    // neither -f nor --var besides.
    let names_a_plan = matches!(words.get(1), Some(&("apply" | "show")))
        && words[2..].iter().any(|w| !w.starts_with('-'));
    if names_a_plan {
        return hint.to_string();
    }
    let mut completed = vec!["cairn".to_string()];
    if let (Some(file), false) = (&invocation.file, says_file) {
        completed.push(file.clone());
    }
    let mut words = words.into_iter().skip(1);
    if let Some(sub) = words.next() {
        completed.push(sub.to_string());
        if TAKE_VARS.contains(&sub) && !says_vars {
            completed.extend(invocation.vars.iter().cloned());
        }
    }
    completed.extend(words.map(str::to_string));
    completed.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation() -> Invocation {
        Invocation {
            file: Some("-f plans/web.toml".into()),
            vars: vec!["--var 'v=1 2'".into()],
        }
    }

    #[test]
    fn hints_get_the_file_and_the_vars_where_they_apply() {
        let i = invocation();
        assert_eq!(
            complete("fix them and run `cairn apply` again", &i),
            "fix them and run `cairn -f plans/web.toml apply --var 'v=1 2'` again"
        );
        assert_eq!(
            complete("or `cairn state rm node3` forgets it; `cairn unlock`", &i),
            "or `cairn -f plans/web.toml state rm node3` forgets it; `cairn -f plans/web.toml unlock`"
        );
        assert_eq!(
            complete("pipe the answer (`echo yes | cairn apply`)", &i),
            "pipe the answer (`echo yes | cairn -f plans/web.toml apply --var 'v=1 2'`)"
        );
    }

    #[test]
    fn complete_hints_and_recorded_commands_are_left_alone() {
        let i = invocation();
        let remake = "run `cairn plan -f /abs/Clusterfile --var a=b -o x.plan` again";
        assert_eq!(complete(remake, &i), remake);
        let holder = "held by alice@laptop (pid 4242, `cairn apply`, started 2026-01-01)";
        let drift = "Run `cairn plan` to see the changes, `cairn apply` to repair them.";
        assert_eq!(
            complete(drift, &i),
            "Run `cairn -f plans/web.toml plan --var 'v=1 2'` to see the changes, `cairn -f plans/web.toml apply --var 'v=1 2'` to repair them."
        );
        assert_eq!(complete(holder, &i), holder);
        assert_eq!(complete("no hint here", &i), "no hint here");
        let prose = "To apply exactly this plan: cairn apply x.plan";
        assert_eq!(complete(prose, &i), prose);
        let saved = "leave out -f: `cairn apply x.plan` reads the Clusterfile the plan names";
        assert_eq!(complete(saved, &i), saved);
    }
}
