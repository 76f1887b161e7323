//! Refresh: read what is really on each host before planning.
//!
//! For every host, one probe looks at everything cairn recorded there:
//! the files it shipped (stat first, rehash only what changed) and the
//! `check` command of every step that has one. Hosts are probed in
//! parallel; within a host the probes of one refresh share one connection.
//! The result is a map of observations by task id, which `plan::diff`
//! compares with the records.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::NodeIndex;
use std::sync::Arc;

use crate::graph::{TaskGraph, TaskId, Work};
use crate::model::{HostId, Model};
use crate::state::{RecordDetail, State};
use crate::transport::{Observed, Transport};

/// What a probe found for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Shipped files, each as found.
    Files(BTreeMap<String, Observed>),
    /// A step's `check`: exit code (None: timed out or killed).
    Check { passed: bool, code: Option<i32> },
}

/// All observations of one refresh.
#[derive(Debug, Default)]
pub struct Refresh {
    pub observations: HashMap<TaskId, Observation>,
    /// Hosts that could not be probed, with why.
    pub unreachable: BTreeMap<String, String>,
}

/// The value `${name}` had on `host` when last captured, from the state.
pub fn recorded_capture(model: &Model, state: &State, host: HostId, name: &str) -> Option<String> {
    let (step, source_host) = model.capture_source(host, name)?;
    let id = TaskId::new(
        crate::model::ElementRef::Step(step),
        &model.steps[step].name,
        &model.host(source_host).name,
    );
    match &state.tasks.get(&id.0)?.detail {
        RecordDetail::Step { captured, .. } => captured.clone(),
        _ => None,
    }
}

/// Probes every host in `hosts` (ids into `model.hosts`).
pub async fn refresh(
    model: Arc<Model>,
    graph: &TaskGraph,
    state: Arc<State>,
    hosts: &[HostId],
) -> Refresh {
    // Each host's tasks, in dependency order, gathered in one pass over the graph.
    let mut tasks_of: HashMap<HostId, Vec<NodeIndex>> = HashMap::new();
    for &node in graph.topological() {
        tasks_of
            .entry(graph.task(node).host)
            .or_default()
            .push(node);
    }
    let mut jobs = tokio::task::JoinSet::new();
    for &host in hosts {
        let transport = match Transport::for_host(model.host(host), &model.base_dir) {
            Ok(t) => t,
            Err(error) => {
                let mut r = Refresh::default();
                r.unreachable
                    .insert(model.host(host).name.clone(), error.to_string());
                jobs.spawn(async move { r });
                continue;
            }
        };
        let nodes = tasks_of.remove(&host).unwrap_or_default();
        let probes = probes_for(&model, graph, &state, &nodes);
        let model = model.clone();
        let state = state.clone();
        jobs.spawn(async move { probe_host(&model, &state, host, transport, probes).await });
    }
    let mut all = Refresh::default();
    while let Some(result) = jobs.join_next().await {
        let r = result.expect("refresh tasks do not panic");
        all.observations.extend(r.observations);
        all.unreachable.extend(r.unreachable);
    }
    all
}

enum Probe {
    Files {
        id: TaskId,
        dest: String,
        shipped: BTreeMap<String, crate::state::ShippedFile>,
    },
    Check {
        id: TaskId,
        step: usize,
    },
}

fn probes_for(model: &Model, graph: &TaskGraph, state: &State, nodes: &[NodeIndex]) -> Vec<Probe> {
    let mut probes = Vec::new();
    for &node in nodes {
        let task = graph.task(node);
        match &task.work {
            Work::Step { step } => {
                if model.steps[*step].check.is_some() {
                    probes.push(Probe::Check {
                        id: task.id.clone(),
                        step: *step,
                    });
                }
            }
            Work::Bundle { .. } | Work::File { .. } => {
                if let Some((dest, shipped)) = state
                    .tasks
                    .get(&task.id.0)
                    .and_then(|r| r.detail.shipped_files())
                {
                    probes.push(Probe::Files {
                        id: task.id.clone(),
                        dest: dest.to_string(),
                        shipped,
                    });
                }
            }
        }
    }
    probes
}

async fn probe_host(
    model: &Model,
    state: &State,
    host: HostId,
    transport: Transport,
    probes: Vec<Probe>,
) -> Refresh {
    let mut out = Refresh::default();
    let name = model.host(host).name.clone();
    for probe in probes {
        match probe {
            Probe::Files { id, dest, shipped } => match transport.observe(&dest, &shipped).await {
                Ok(found) => {
                    out.observations.insert(id, Observation::Files(found));
                }
                Err(error) => {
                    out.unreachable.insert(name.clone(), error.to_string());
                    return out;
                }
            },
            Probe::Check { id, step } => {
                let s = &model.steps[step];
                let check = s.check.as_ref().expect("probe made for steps with a check");
                let captured = |n: &str| recorded_capture(model, state, host, n);
                // A check that reads a value not captured yet cannot pass: the step has not run.
                let Ok(script) = check.render(|n| model.resolve(host, n, &captured)) else {
                    out.observations.insert(
                        id,
                        Observation::Check {
                            passed: false,
                            code: None,
                        },
                    );
                    continue;
                };
                let cwd = s
                    .cwd
                    .as_ref()
                    .and_then(|c| c.render(|n| model.resolve(host, n, &captured)).ok());
                let timeout = s.timeout.or(Some(std::time::Duration::from_secs(60)));
                match transport.run(&script, cwd.as_deref(), timeout).await {
                    Ok(output) => {
                        out.observations.insert(
                            id,
                            Observation::Check {
                                passed: output.success(),
                                code: output.code,
                            },
                        );
                    }
                    Err(error) => {
                        // A missing cwd means the step has not set things up yet: not converged.
                        out.observations.insert(
                            id,
                            Observation::Check {
                                passed: false,
                                code: None,
                            },
                        );
                        if !error.to_string().contains("working directory") {
                            out.unreachable.insert(name.clone(), error.to_string());
                            return out;
                        }
                    }
                }
            }
        }
    }
    out
}
