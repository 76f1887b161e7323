//! Counting words, in one place, so that no message says "1 hosts" or
//! "All 1 checked host match": a count and its noun ([`count`]), a plural
//! ending ([`plural`]), and a verb that agrees with its count ([`agrees`]).

/// `"s"` when `n` is not one: `format!("{n} host{}", plural(n))`.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `n` and `noun`, in the plural unless `n` is one: "1 host", "2 hosts",
/// "3 processes", "0 matches".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if ["s", "sh", "ch", "x"].iter().any(|end| noun.ends_with(end)) {
        format!("{n} {noun}es")
    } else {
        format!("{n} {noun}s")
    }
}

/// The verb form that agrees with `n` things: `agrees(n, "matches", "match")`.
pub fn agrees<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1, "host"), "1 host");
        assert_eq!(count(0, "host"), "0 hosts");
        assert_eq!(count(2, "process"), "2 processes");
        assert_eq!(count(3, "match"), "3 matches");
        assert_eq!(count(2, "host lock"), "2 host locks");
        assert_eq!(format!("task{}", plural(1)), "task");
        assert_eq!(agrees(1, "matches", "match"), "matches");
        assert_eq!(agrees(4, "matches", "match"), "match");
    }
}
