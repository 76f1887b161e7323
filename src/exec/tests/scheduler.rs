//! Unit tests of `exec::scheduler`, kept beside it in a file of their own:
//! the real [`execute`] on real local hosts: a Clusterfile in a temp
//! folder goes through the pipeline (read, compile, refresh, plan), and
//! its steps write marker files beside it. Results are read on disk and
//! from the events, never from timing; a step that waits for another
//! process waits for a file, bounded.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;

use super::{DEFAULT_PER_HOST, ExecOptions, FailurePolicy, PlanFeed, Run, Seen, execute};
use crate::exec::{Event, Outcome, RunSummary};
use crate::pipeline::{self, Loaded, Probe, Targets};
use crate::state::{Journal, State};

/// The CLI's default `--parallelism`.
const DEFAULT_PARALLELISM: usize = crate::cli::DEFAULT_PARALLELISM;

/// Two hosts on this machine, `a` and `b`.
const HOSTS: &str = "version = 1\nname = \"sched\"\n\n\
    [[hosts]]\naddress = \"localhost\"\nname = \"a\"\ntransport = \"local\"\n\n\
    [[hosts]]\naddress = \"127.0.0.1\"\nname = \"b\"\ntransport = \"local\"\n\n";

/// A shell snippet that waits until `file` exists, giving up (exit 7)
/// after about `seconds`.
fn wait_for(file: &str, seconds: u32) -> String {
    let tries = seconds * 20;
    format!(
        "i=0; while [ ! -f {file} ]; do i=$((i+1)); [ $i -gt {tries} ] && exit 7; sleep 0.05; done"
    )
}

/// A Clusterfile of [`HOSTS`] and `steps` in a temp folder.
struct Cluster {
    dir: tempfile::TempDir,
}

/// What one run did: its summary, every event in order, and the state
/// loaded from the state folder the moment `execute` returned.
struct Applied {
    summary: RunSummary,
    events: Vec<Event>,
    state: State,
}

impl Cluster {
    fn new(steps: &str) -> Cluster {
        let cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
        };
        cluster.write(steps);
        cluster
    }

    /// Replaces the Clusterfile's steps.
    fn write(&self, steps: &str) {
        std::fs::write(self.path("Clusterfile"), format!("{HOSTS}{steps}")).unwrap();
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    fn apply(&self, parallelism: usize, on_failure: FailurePolicy) -> Applied {
        self.apply_watching(parallelism, on_failure, |_, _| {})
    }

    /// Plans and executes as `cairn apply` does, calling `watch` with
    /// each event as it is sent, while the run goes on.
    fn apply_watching(
        &self,
        parallelism: usize,
        on_failure: FailurePolicy,
        mut watch: impl FnMut(&Event, &Path),
    ) -> Applied {
        let rt = pipeline::runtime();
        let loaded = Loaded::read(&self.path("Clusterfile")).expect("a valid Clusterfile");
        // Waits a little: another test thread's step, forked but not yet
        // exec'd, briefly shares every open file of this process, and so
        // this test's own lock file of the previous run (seen once under load).
        let _lock = loaded
            .lock_cluster(&crate::state::LockPolicy::new(
                crate::state::LockHolder::current("scheduler tests"),
                std::time::Duration::from_secs(10),
                std::sync::Arc::new(|_: &crate::state::LockNotice| {}),
            ))
            .unwrap();
        let planned = loaded
            .compile()
            .unwrap()
            .refresh(&Targets::default(), Probe::Read, &rt)
            .unwrap()
            .plan();
        assert!(planned.plan.unreachable.is_empty(), "local hosts refresh");
        let dir = planned.state_dir().clone();
        let journal = Journal::open(&dir.journal_file()).unwrap();
        let compiled = &planned.refreshed.compiled;
        let (events, received) = mpsc::channel();
        let run = Run {
            model: compiled.loaded.model.clone(),
            graph: compiled.graph.clone(),
            state: compiled.state.clone(),
            plan: PlanFeed::Whole(&planned.plan),
            refresh: Seen::Whole(planned.refreshed.refresh.clone()),
            fleet: planned.refreshed.fleet.clone(),
            operator: "tester@here".into(),
            journal: journal.appender(),
            events,
            forget_hosts: std::collections::BTreeSet::new(),
        };
        let options = ExecOptions {
            parallelism,
            per_host: DEFAULT_PER_HOST,
            log_dir: dir.new_run_log_dir(),
            on_failure,
        };
        let rt_ref = &rt;
        let (summary, events) = std::thread::scope(|s| {
            let running = s.spawn(move || rt_ref.block_on(execute(run, options)));
            // Ends when `execute` returns and drops its sender.
            let events: Vec<Event> = received
                .iter()
                .inspect(|e| watch(e, self.dir.path()))
                .collect();
            (running.join().expect("execute does not panic"), events)
        });
        // Loaded before the journal closes and nothing compacts: what
        // execute recorded was on disk when it returned.
        let state = dir.load().unwrap();
        drop(journal);
        planned.finish(&rt);
        Applied {
            summary,
            events,
            state,
        }
    }
}

impl Applied {
    /// Skipped tasks and why.
    fn skipped(&self) -> BTreeMap<String, String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::TaskSkipped { task, reason, .. } => Some((task.to_string(), reason.clone())),
                _ => None,
            })
            .collect()
    }

    /// Finished tasks and how.
    fn finished(&self) -> BTreeMap<String, Outcome> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::TaskFinished { task, outcome, .. } => Some((task.to_string(), *outcome)),
                _ => None,
            })
            .collect()
    }

    /// Failed tasks and their errors.
    fn failed(&self) -> BTreeMap<String, String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::TaskFailed { task, error, .. } => Some((task.to_string(), error.clone())),
                _ => None,
            })
            .collect()
    }

    /// Tasks recorded in the state.
    fn recorded(&self) -> Vec<String> {
        self.state.tasks.keys().map(ToString::to_string).collect()
    }

    /// The most tasks running at once, as the events tell it.
    fn most_running(&self) -> usize {
        let mut running = 0usize;
        let mut most = 0;
        for e in &self.events {
            match e {
                Event::TaskStarted { .. } => {
                    running += 1;
                    most = most.max(running);
                }
                Event::TaskFinished { .. } | Event::TaskFailed { .. } => running -= 1,
                _ => {}
            }
        }
        most
    }
}

fn names(items: &[&str]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

#[test]
fn a_failed_step_skips_exactly_what_waits_for_it() {
    let c = Cluster::new(
        "[[steps]]\nname = \"bad\"\non = \"a\"\nrun = 'echo no >&2; exit 3'\n\n\
         [[steps]]\nname = \"child\"\non = \"a\"\nafter = [\"bad\"]\nrun = 'touch child-ran'\n\n\
         [[steps]]\nname = \"grandchild\"\non = \"a\"\nafter = [\"child\"]\nrun = 'touch grandchild-ran'\n\n\
         [[steps]]\nname = \"remote\"\non = \"b\"\nafter = [\"bad@a\"]\nrun = 'touch remote-ran'\n\n\
         [[steps]]\nname = \"free\"\nrun = 'touch free-${host.name}'\n",
    );
    let run = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
    assert_eq!(
        run.failed().into_keys().collect::<Vec<_>>(),
        names(&["step.bad@a"])
    );
    assert_eq!(run.summary.failed.len(), 1);
    let upstream = |of: &str| format!("upstream failed or not applied ({of})");
    assert_eq!(
        run.skipped(),
        BTreeMap::from([
            ("step.child@a".to_string(), upstream("step.bad@a")),
            ("step.grandchild@a".to_string(), upstream("step.child@a")),
            ("step.remote@b".to_string(), upstream("step.bad@a")),
        ]),
        "what waits for the failure, on its host and across hosts, and nothing else"
    );
    assert_eq!(run.summary.skipped, 3);
    assert_eq!(
        run.finished(),
        BTreeMap::from([
            ("step.free@a".to_string(), Outcome::Created),
            ("step.free@b".to_string(), Outcome::Created),
        ]),
        "independent work went on"
    );
    assert_eq!(run.summary.succeeded, 2);
    assert!(c.exists("free-a") && c.exists("free-b"));
    for marker in ["child-ran", "grandchild-ran", "remote-ran"] {
        assert!(!c.exists(marker), "{marker}: a skipped step ran");
    }
    assert_eq!(run.recorded(), names(&["step.free@a", "step.free@b"]));
}

#[test]
fn fail_fast_names_the_failure_for_everything_it_left_out() {
    // `last` waits for `later`, which --fail-fast never starts: it is
    // left out for the same reason, and says so.
    let c = Cluster::new(&format!(
        "[[steps]]\nname = \"bad\"\non = \"a\"\nrun = 'exit 3'\n\n\
         [[steps]]\nname = \"slow\"\non = \"a\"\nrun = '{}'\n\n\
         [[steps]]\nname = \"later\"\non = \"a\"\nafter = [\"slow\"]\nrun = 'true'\n\n\
         [[steps]]\nname = \"last\"\non = \"a\"\nafter = [\"later\"]\nrun = 'true'\n",
        wait_for("release", 20)
    ));
    let run = c.apply_watching(DEFAULT_PARALLELISM, FailurePolicy::FailFast, |e, dir| {
        if matches!(e, Event::TaskFailed { .. }) {
            std::fs::write(dir.join("release"), "").unwrap();
        }
    });
    let skipped = run.skipped();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    for (task, why) in &skipped {
        assert_eq!(
            why, "not started: step.bad@a failed and --fail-fast stops the run",
            "{task}"
        );
    }
}

#[test]
fn fail_fast_starts_nothing_new_and_lets_running_tasks_finish() {
    /// A policy, the tasks it skips with why, and the markers of the
    /// tasks after `slow` that run.
    struct Case {
        policy: FailurePolicy,
        skipped: &'static [(&'static str, &'static str)],
        ran_later: &'static [&'static str],
    }
    const NOT_STARTED: &str = "not started: step.bad@a failed and --fail-fast stops the run";
    const UPSTREAM: &str = "upstream failed or not applied (step.bad@a)";
    // `slow` runs beside `bad` and goes on only once the test has seen
    // bad's failure: it is running when the failure is handled.
    let steps = format!(
        "[[steps]]\nname = \"bad\"\non = \"a\"\nrun = 'exit 3'\n\n\
         [[steps]]\nname = \"child\"\non = \"a\"\nafter = [\"bad\"]\nrun = 'touch child-ran'\n\n\
         [[steps]]\nname = \"slow\"\non = \"a\"\nrun = '{}; touch slow-done'\n\n\
         [[steps]]\nname = \"later\"\non = \"a\"\nafter = [\"slow\"]\nrun = 'touch later-ran'\n\n\
         [[steps]]\nname = \"elsewhere\"\non = \"b\"\nafter = [\"slow@a\"]\nrun = 'touch elsewhere-ran'\n",
        wait_for("release", 20)
    );
    let cases = [
        Case {
            policy: FailurePolicy::SkipDependents,
            skipped: &[("step.child@a", UPSTREAM)],
            ran_later: &["later-ran", "elsewhere-ran"],
        },
        Case {
            policy: FailurePolicy::FailFast,
            skipped: &[
                ("step.child@a", UPSTREAM),
                ("step.elsewhere@b", NOT_STARTED),
                ("step.later@a", NOT_STARTED),
            ],
            ran_later: &[],
        },
    ];
    for Case {
        policy,
        skipped,
        ran_later,
    } in cases
    {
        let c = Cluster::new(&steps);
        let run = c.apply_watching(DEFAULT_PARALLELISM, policy, |e, dir| {
            if let Event::TaskFailed { task, .. } = e {
                assert_eq!(task.as_str(), "step.bad@a");
                std::fs::write(dir.join("release"), "").unwrap();
            }
        });
        assert_eq!(
            run.failed().into_keys().collect::<Vec<_>>(),
            names(&["step.bad@a"]),
            "{policy:?}"
        );
        let skipped: BTreeMap<String, String> = skipped
            .iter()
            .map(|(t, why)| ((*t).to_string(), (*why).to_string()))
            .collect();
        assert_eq!(run.skipped(), skipped, "{policy:?}");
        assert_eq!(run.summary.skipped, skipped.len(), "{policy:?}");
        assert!(
            c.exists("slow-done"),
            "{policy:?}: the running task finished"
        );
        assert_eq!(
            run.finished().get("step.slow@a"),
            Some(&Outcome::Created),
            "{policy:?}"
        );
        assert!(
            run.recorded().contains(&"step.slow@a".to_string()),
            "{policy:?}: and was recorded"
        );
        assert!(!c.exists("child-ran"), "{policy:?}");
        for marker in ["later-ran", "elsewhere-ran"] {
            assert_eq!(
                c.exists(marker),
                ran_later.contains(&marker),
                "{policy:?}: {marker}"
            );
        }
        if policy == FailurePolicy::FailFast {
            let failure = run
                .events
                .iter()
                .position(|e| matches!(e, Event::TaskFailed { .. }))
                .unwrap();
            assert!(
                !run.events[failure..]
                    .iter()
                    .any(|e| matches!(e, Event::TaskStarted { .. })),
                "nothing started after the failure: {:?}",
                run.events
            );
            assert_eq!(run.recorded(), names(&["step.slow@a"]));
        }
    }
}

#[test]
fn parallelism_bounds_how_many_tasks_run_at_once() {
    // Each step waits for the other's marker: both succeed only if they
    // overlap. Run one at a time, the first gives up (exit 7) and the
    // second then finds its marker; the bound only sets how long that
    // takes, so it is short there and generous where they must meet.
    // (parallelism, seconds a step waits, failures, most running at once)
    let cases = [(1, 1, 1, 1), (DEFAULT_PARALLELISM, 20, 0, 2)];
    for (parallelism, seconds, failures, most) in cases {
        let rendezvous = |me: &str, other: &str| {
            format!(
                "[[steps]]\nname = \"{me}\"\non = \"a\"\nrun = 'touch {me}-started; {}'\n\n",
                wait_for(&format!("{other}-started"), seconds)
            )
        };
        let c = Cluster::new(&format!(
            "{}{}",
            rendezvous("left", "right"),
            rendezvous("right", "left")
        ));
        let run = c.apply(parallelism, FailurePolicy::SkipDependents);
        let failed = run.failed();
        assert_eq!(
            failed.len(),
            failures,
            "parallelism {parallelism}: {failed:?}"
        );
        assert!(
            failed.values().all(|e| e == "exited with code 7"),
            "{failed:?}"
        );
        assert_eq!(run.summary.succeeded, 2 - failures);
        assert_eq!(run.most_running(), most, "parallelism {parallelism}");
    }
}

#[test]
fn a_captured_value_reaches_the_steps_that_read_it() {
    let c = Cluster::new(
        "[[steps]]\nname = \"own\"\ncapture = \"mine\"\nrun = 'echo mine-${host.name}'\n\n\
         [[steps]]\nname = \"read\"\nafter = [\"own\"]\nrun = 'echo ${mine} > read-${host.name}'\n\n\
         [[steps]]\nname = \"leader\"\non = \"a\"\ncapture = \"lead\"\nrun = 'echo lead-${host.name}'\n\n\
         [[steps]]\nname = \"follow\"\nafter = [\"leader@*\"]\nrun = 'echo ${lead} > follow-${host.name}'\n",
    );
    let run = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
    assert!(run.summary.failed.is_empty(), "{:?}", run.failed());
    // (file, what it holds)
    let cases = [
        ("read-a", "mine-a"),
        ("read-b", "mine-b"),
        ("follow-a", "lead-a"),
        ("follow-b", "lead-a"),
    ];
    for (file, value) in cases {
        assert_eq!(c.read(file), format!("{value}\n"), "{file}");
    }
}

#[test]
fn every_finished_task_is_journaled_and_an_adopted_one_is_not_counted() {
    let c = Cluster::new(
        "[[steps]]\nname = \"work\"\nrun = 'echo ran >> work-${host.name}'\n\n\
         [[steps]]\nname = \"ready\"\non = \"a\"\ncheck = 'test -f ready'\nrun = 'touch ready-ran'\n\n\
         [[steps]]\nname = \"bad\"\non = \"b\"\nrun = 'exit 3'\n",
    );
    std::fs::write(c.path("ready"), "").unwrap();
    let run = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
    assert_eq!(
        run.finished(),
        BTreeMap::from([
            ("step.ready@a".to_string(), Outcome::Adopted),
            ("step.work@a".to_string(), Outcome::Created),
            ("step.work@b".to_string(), Outcome::Created),
        ])
    );
    assert_eq!(
        run.recorded(),
        run.finished().into_keys().collect::<Vec<_>>(),
        "every finished task, and only those, is in the journal"
    );
    assert_eq!(run.summary.succeeded, 2, "the adopted task is not counted");
    assert_eq!(run.summary.failed.len(), 1);
    assert!(!c.exists("ready-ran"), "adopted without running");
    assert_eq!(c.read("work-a"), "ran\n");
    // Recorded, a second run has nothing to do but the failed task.
    let again = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
    assert_eq!(
        again.failed().into_keys().collect::<Vec<_>>(),
        names(&["step.bad@b"])
    );
    assert!(again.finished().is_empty(), "{:?}", again.finished());
    assert_eq!(c.read("work-a"), "ran\n");
}

#[test]
fn destroys_run_before_the_graphs_tasks() {
    let c = Cluster::new(
        "[[steps]]\nname = \"old\"\nrun = 'true'\nundo = 'echo undo-${host.name} >> order.log'\n",
    );
    let first = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
    assert_eq!(first.summary.succeeded, 2);
    c.write("[[steps]]\nname = \"new\"\nrun = 'echo new-${host.name} >> order.log'\n");
    let run = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
    assert!(run.summary.failed.is_empty(), "{:?}", run.failed());
    assert_eq!(
        run.finished(),
        BTreeMap::from([
            ("step.new@a".to_string(), Outcome::Created),
            ("step.new@b".to_string(), Outcome::Created),
            ("step.old@a".to_string(), Outcome::Destroyed),
            ("step.old@b".to_string(), Outcome::Destroyed),
        ])
    );
    let first_new = run
        .events
        .iter()
        .position(|e| matches!(e, Event::TaskStarted { task, .. } if task.as_str().starts_with("step.new")))
        .unwrap();
    let last_destroy = run
        .events
        .iter()
        .rposition(|e| {
            matches!(
                e,
                Event::TaskFinished {
                    outcome: Outcome::Destroyed,
                    ..
                }
            )
        })
        .unwrap();
    assert!(last_destroy < first_new, "{:?}", run.events);
    let order = c.read("order.log");
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(lines.len(), 4, "{order}");
    assert!(
        lines[..2].iter().all(|l| l.starts_with("undo-"))
            && lines[2..].iter().all(|l| l.starts_with("new-")),
        "undos first, on the hosts too: {order}"
    );
    assert_eq!(run.recorded(), names(&["step.new@a", "step.new@b"]));
}
