//! `cairn graph`: the task graph as Graphviz DOT.

use crate::support::sandbox::Sandbox;
use crate::support::stdout;

#[test]
fn graph_is_dot_with_every_edge() {
    let s = Sandbox::new();
    let out = s.run(&["graph"]);
    assert_eq!(out.status.code(), Some(0));
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph cairn {"), "{dot}");
    assert!(
        dot.contains("\"bundle.web@local\" -> \"step.install@local\";"),
        "{dot}"
    );
    assert!(
        dot.contains("\"step.version@local\" -> \"step.announce@local\";"),
        "{dot}"
    );
}
