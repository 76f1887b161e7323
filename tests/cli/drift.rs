//! Drift: changes made on the host by hand, as `plan` finds them and
//! `apply` repairs them.

use crate::support::sandbox::Sandbox;
use crate::support::stdout;

#[test]
fn changes_made_on_the_host_are_found_and_repaired() {
    let s = Sandbox::new();
    s.apply();
    s.write("out/web/index.html", "defaced\n");
    std::fs::write(s.path("out/web/extra.txt"), "mine\n").unwrap();
    let plan = stdout(&s.run(&["plan"]));
    assert!(
        plan.contains("~ bundle.web@local") && plan.contains("changed on the host: index.html"),
        "{plan}"
    );
    let offline = stdout(&s.run(&["plan", "--offline"]));
    assert!(
        offline.contains("No changes") && offline.contains("offline"),
        "offline plans do not look: {offline}"
    );
    s.apply();
    assert_eq!(s.read("out/web/index.html"), "hello from cairn\n");
    assert_eq!(
        s.read("out/web/extra.txt"),
        "mine\n",
        "files cairn did not ship are kept"
    );
}
