//! What every JSON document and event line cairn prints carries, first:
//! the version of its format ([`JSON_VERSION`], see docs/json.md), when it
//! was printed (RFC 3339 UTC, to the millisecond) and the run it belongs to
//! (the run id, which also names an apply's task log folder), so that a CI
//! log or a log shipper can rebuild the timeline of runs.

use serde::Serialize;

/// The version of cairn's JSON output formats: raised when a field changes
/// meaning or goes away, not when one is added (docs/json.md).
pub(super) const JSON_VERSION: u32 = 1;

/// `body`'s fields after `version`, `time` and `run`.
#[derive(Serialize)]
pub(super) struct Stamped<'a, T: Serialize> {
    version: u32,
    time: String,
    run: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

/// `body`, stamped now.
pub(super) fn stamped<T: Serialize>(body: &T) -> Stamped<'_, T> {
    Stamped {
        version: JSON_VERSION,
        time: now(),
        run: crate::state::run_id(),
        body,
    }
}

/// Now, as the JSON says it: `2026-12-01T17:40:02.123Z`.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::stamped;

    #[test]
    fn a_stamp_comes_first_with_milliseconds_in_utc() {
        #[derive(serde::Serialize)]
        struct Body {
            event: &'static str,
        }
        let line = serde_json::to_string(&stamped(&Body { event: "x" })).unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(line.starts_with("{\"version\":1,\"time\":\""), "{line}");
        let time = value["time"].as_str().unwrap();
        assert_eq!(time.len(), "2026-12-01T17:40:02.123Z".len(), "{time}");
        assert!(time.ends_with('Z') && time.as_bytes()[19] == b'.', "{time}");
        assert_eq!(value["run"], crate::state::run_id());
        assert_eq!(value["event"], "x");
    }
}
