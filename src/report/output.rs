//! [`Output`]: where a command's results and warnings go, as text or JSON.
//!
//! Commands never print themselves: they hand what they have to `Output`,
//! which renders it (with colour when stdout is a terminal, see `Style`) and
//! writes it, results to stdout and warnings to stderr. A run's progress
//! goes through a [`Reporter`] the same `Output` starts.

use std::path::Path;

use serde::Serialize;

use super::drift::drift_text;
use super::edit::{
    HostsEdited, edit_kept_text, hosts_edited_json, hosts_edited_text, not_applied_text,
};
use super::file_diff::plan_diffs_text;
use super::locks::{
    LockSurvey, Unlocked, lock_notice_text, survey_text, unlock_json, unlocked_text,
};
use super::plan::plan_text;
use super::progress::eprintln_above_status;
use super::prompt::{self, Confirmation};
use super::stamp::stamped;
use super::state::{
    Forgotten, StateMoved, state_list_json, state_list_text, state_moved_text, state_removed_text,
    state_show,
};
use super::validate::{Validated, invalid_json, validated_json, validated_text};
use super::{AdhocReport, Mode, Reporter, Style};
use crate::ids::TaskId;
use crate::model::Scrubber;
use crate::plan::{DriftReport, FileDiffs, Plan};
use crate::state::{LockNotice, State, TaskRecord};

/// How a command's output is shown.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    style: Style,
    json: bool,
    /// `--expand`: plans one line per task, even where many hosts share a change.
    expand: bool,
}

impl Output {
    /// `json`: `--json` was given.
    /// Whether `--json` was asked for (a command that refuses to print
    /// something in text may still give it in JSON).
    pub fn is_json(&self) -> bool {
        self.json
    }

    pub fn new(style: Style, json: bool) -> Output {
        // The run id is the time the command started, whenever it is first printed.
        let _ = crate::state::run_id();
        Output {
            style,
            json,
            expand: false,
        }
    }

    /// With `--expand`: plans one line per task, ungrouped.
    #[must_use]
    pub fn expanded(self, expand: bool) -> Output {
        Output { expand, ..self }
    }

    /// Text a command produced whole (the DOT graph, the JSON schema), as is.
    pub fn raw(&self, text: &str) {
        out!("{text}");
    }

    /// `cairn man --dir`: the pages written.
    pub fn man_pages_written(&self, dir: &Path, pages: &[std::path::PathBuf]) {
        outln!(
            "Wrote {} to {}: {}",
            crate::words::count(pages.len(), "manual page"),
            dir.display(),
            pages
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    /// `cairn import`: its warnings on stderr; the Clusterfile on stdout
    /// (no `written`), or where it was written; then what to do before
    /// using it (on stderr when the Clusterfile is on stdout).
    pub fn imported(&self, imported: &crate::import::Imported, written: Option<&Path>) {
        eprint!(
            "{}",
            super::import::import_warnings_text(&imported.warnings)
        );
        let next = super::import::imported_text(imported, written);
        if written.is_some() {
            out!("{next}");
        } else {
            out!("{}", imported.clusterfile);
            eprint!("{next}");
        }
    }

    /// Warnings the operator should see, whatever else is printed.
    pub fn warnings(self, notes: &[String]) {
        for note in notes {
            eprintln_above_status(&format!("warning: {}", super::hints::runnable(note)));
        }
    }

    /// A lock being waited for, said as it happens (a warning on stderr,
    /// whatever the format, like the other warnings).
    pub fn lock_notice(self, notice: &LockNotice) {
        // A streamed apply may be showing how far it is (`holding`).
        eprintln_above_status(&format!(
            "warning: {}",
            super::hints::runnable(&lock_notice_text(notice))
        ));
    }

    /// `cairn unlock`, before asking: every lock and its holder (text only;
    /// `--json` prints one document at the end, [`Output::unlocked`]).
    pub fn unlock_survey(&self, survey: &LockSurvey) {
        if !self.json {
            out!("{}", survey_text(survey, self.style));
        }
    }

    /// Asks before `cairn unlock` breaks the locks shown.
    pub fn confirm_unlock(&self) -> Confirmation {
        prompt::ask("Break these locks? Their holders' processes on the hosts are killed.")
    }

    /// `cairn unlock`, after: what each break did (with `--json`, the whole survey too).
    pub fn unlocked(&self, survey: &LockSurvey, done: &[Unlocked]) {
        if self.json {
            outln!("{}", unlock_json(survey, done));
        } else {
            out!("{}", unlocked_text(done, self.style));
        }
    }

    /// `cairn bundle inspect`: what a bundle source holds.
    pub fn bundle_inspected(&self, inspection: &crate::bundle::image::Inspection) {
        if self.json {
            outln!("{}", super::bundle::inspection_json(inspection));
        } else {
            out!("{}", super::bundle::inspection_text(inspection, self.style));
        }
    }

    /// `cairn bundle pack`: the archive written.
    pub fn bundle_packed(&self, packed: &crate::bundle::pack::Packed) {
        if self.json {
            outln!("{}", super::bundle::packed_json(packed));
        } else {
            out!("{}", super::bundle::packed_text(packed));
        }
    }

    /// `cairn validate`.
    pub fn validated(&self, file: &Path, cluster: &str, hosts: usize, tasks: usize) {
        let validated = Validated::new(cluster, hosts, tasks);
        if self.json {
            out!("{}", validated_json(&validated));
        } else {
            out!("{}", validated_text(file, &validated, self.style));
        }
    }

    /// `cairn validate --json` of an invalid Clusterfile: its problems as
    /// JSON on stdout, and `true`. Without `--json` nothing is printed here
    /// (`false`): the error itself is the text report.
    pub fn invalid_clusterfile(&self, invalid: &crate::diagnostic::InvalidClusterfile) -> bool {
        if self.json {
            out!("{}", invalid_json(invalid));
        }
        self.json
    }

    /// `cairn plan`: the plan document with `--json`, else its text.
    pub fn plan(&self, plan: &Plan) {
        if self.json {
            outln!(
                "{}",
                serde_json::to_string_pretty(&stamped(&plan.to_json())).expect("plan serializes")
            );
        } else {
            out!("{}", plan_text(plan, self.style, self.expand));
        }
    }

    /// `cairn graph`: DOT, or the JSON document with `--json`.
    pub fn graph(&self, graph: &crate::graph::TaskGraph, model: &crate::model::Model) {
        if self.json {
            outln!(
                "{}",
                serde_json::to_string_pretty(&stamped(&graph.to_json(model)))
                    .expect("graph serializes")
            );
        } else {
            out!("{}", graph.to_dot(model));
        }
    }

    /// `cairn plan --diff`: the plan with each change's file diffs, in the
    /// JSON document with `--json`, else after the plan's text.
    pub fn plan_with_diffs(&self, plan: &Plan, diffs: &FileDiffs) {
        if self.json {
            outln!(
                "{}",
                serde_json::to_string_pretty(&stamped(&plan.to_json().with_diffs(diffs)))
                    .expect("plan serializes")
            );
        } else {
            out!("{}", plan_text(plan, self.style, self.expand));
            out!("{}", plan_diffs_text(diffs, self.style));
        }
    }

    /// After `plan -o FILE`: how to apply exactly it.
    pub fn plan_saved(&self, path: &Path) {
        if !self.json {
            outln!(
                "\nSaved the plan to {}. To apply exactly this plan: cairn apply {}",
                path.display(),
                super::show::shell_word(path)
            );
        }
    }

    /// `cairn apply`, before it runs anything: the plan as the first JSON
    /// event with `--json`, else its text.
    pub fn apply_plan(&self, plan: &Plan) {
        self.apply_plan_showing(plan, None);
    }

    /// `cairn apply --diff`, before it runs anything: [`Output::apply_plan`]
    /// with each change's file diffs (in the plan event with `--json`).
    pub fn apply_plan_with_diffs(&self, plan: &Plan, diffs: &FileDiffs) {
        self.apply_plan_showing(plan, Some(diffs));
    }

    fn apply_plan_showing(self, plan: &Plan, diffs: Option<&FileDiffs>) {
        if self.json {
            #[derive(Serialize)]
            struct PlanEvent {
                event: &'static str,
                plan: crate::plan::PlanJson,
            }
            // As a value, so its keys come out sorted (the plan event has
            // always been printed this way; the other event lines are not).
            let json = plan.to_json();
            let event = serde_json::to_value(stamped(&PlanEvent {
                event: "plan",
                plan: match diffs {
                    Some(diffs) => json.with_diffs(diffs),
                    None => json,
                },
            }))
            .expect("plan serializes");
            outln!("{event}");
        } else {
            out!("{}", plan_text(plan, self.style, self.expand));
            if let Some(diffs) = diffs {
                out!("{}", plan_diffs_text(diffs, self.style));
            }
        }
    }

    /// Asks before an apply changes anything.
    pub fn confirm(&self) -> Confirmation {
        prompt::confirm()
    }

    /// Starts the reporter of a run: JSON lines with `--json`, progress bars
    /// on a terminal, plain lines otherwise.
    pub fn reporter(&self) -> Reporter {
        Reporter::start(Mode::detect(self.json), self.style)
    }

    /// What a streamed apply shows while it holds its events, until its
    /// plan is whole: how far it is (nothing with `--json`).
    pub fn hold_status(&self) -> super::HoldStatus {
        super::HoldStatus::start(Mode::detect(self.json), self.style)
    }

    /// [`Output::reporter`] of a streamed apply's events, held while its
    /// plan was made: `first`, then `events`.
    pub fn reporter_after(
        &self,
        first: Option<crate::exec::Event>,
        events: std::sync::mpsc::Receiver<crate::exec::Event>,
    ) -> Reporter {
        Reporter::start_after(Mode::detect(self.json), self.style, first, events)
    }

    /// `cairn drift`.
    pub fn drift(&self, report: &DriftReport) {
        if self.json {
            outln!(
                "{}",
                serde_json::to_string_pretty(&stamped(report)).expect("drift report serializes")
            );
        } else {
            out!("{}", drift_text(report, self.style));
        }
    }

    /// `cairn state list`.
    pub fn state_list(&self, state: &State, state_dir: &Path) {
        if self.json {
            outln!("{}", state_list_json(state));
        } else {
            out!("{}", state_list_text(state, state_dir, self.style));
        }
    }

    /// `cairn state rm`.
    pub fn state_removed(&self, forgotten: &[Forgotten]) {
        out!("{}", state_removed_text(forgotten));
    }

    /// `cairn state migrate` / `pull`.
    pub fn state_moved(&self, moved: &StateMoved) {
        if self.json {
            out!(
                "{}",
                serde_json::to_string_pretty(moved).expect("serializes")
            );
        } else {
            out!("{}", state_moved_text(moved));
        }
    }

    /// `cairn add` / `delete`: the edit just written.
    pub fn hosts_edited(&self, edit: &HostsEdited) {
        if self.json {
            out!("{}", hosts_edited_json(edit));
        } else {
            out!("{}", hosts_edited_text(edit, self.style));
        }
    }

    /// `cairn add` / `delete --no-apply`: the file is edited, nothing else.
    pub fn edit_not_applied(&self, apply: &str) {
        if !self.json {
            out!("{}", not_applied_text(apply));
        }
    }

    /// `cairn add` / `delete` whose apply failed: the edit stays.
    pub fn edit_kept(&self, apply: &str) {
        eprint!("{}", super::hints::runnable(&edit_kept_text(apply)));
    }

    /// `cairn exec` / `cairn cp`: shows each host's result as it comes.
    /// `verb` is what the summary says was done (`ran on`, `copied to`, `fetched from`);
    /// `source` the path a fetch brought back.
    pub fn adhoc(&self, verb: &'static str, source: Option<String>) -> AdhocReport {
        AdhocReport::new(self.style, self.json, verb, source)
    }

    /// `cairn state show TASK`: readable, or the record as JSON with `--json`.
    pub fn state_show(&self, task: &TaskId, record: &TaskRecord, scrubber: &Scrubber) {
        if self.json {
            out!("{}", state_show(task, record, scrubber));
        } else {
            out!(
                "{}",
                super::state::state_show_text(task, record, scrubber, self.style)
            );
        }
    }

    /// `cairn show PLAN`: the saved plan as `plan` printed it, or its plan
    /// document as `plan --json` did.
    pub fn saved_plan(&self, path: &Path, saved: &crate::plan::saved::SavedPlan) {
        if self.json {
            outln!(
                "{}",
                serde_json::to_string_pretty(&stamped(&saved.plan)).expect("plan serializes")
            );
        } else {
            out!(
                "{}",
                super::show::saved_plan_text(path, saved, self.style, self.expand)
            );
        }
    }

    /// `cairn show`: the recorded state per host (`apply`: how to record some, when nothing is).
    pub fn state_summary(
        &self,
        state: &State,
        model: Option<&crate::model::Model>,
        scrubber: &Scrubber,
        state_dir: &Path,
        apply: &str,
    ) {
        if self.json {
            outln!(
                "{}",
                super::show::state_summary_json(state, model, scrubber)
            );
        } else {
            out!(
                "{}",
                super::show::state_summary_text(
                    state, model, scrubber, state_dir, apply, self.style
                )
            );
        }
    }

    /// `cairn output`: every captured value.
    pub fn outputs(&self, values: &super::CapturedValues) {
        if self.json {
            outln!("{}", super::captured::outputs_json(values));
        } else {
            out!("{}", super::captured::outputs_text(values, self.style));
        }
    }

    /// `cairn output NAME`: its value alone, or one `HOST<TAB>VALUE` line per
    /// host where they differ.
    pub fn output_value(
        &self,
        name: &str,
        hosts: &std::collections::BTreeMap<String, super::CapturedValue>,
    ) {
        if self.json {
            outln!("{}", super::captured::output_json_text(name, hosts));
        } else {
            out!("{}", super::captured::output_text(hosts));
        }
    }
}
