//! Words in messages, in one place. Counting, so that no message says
//! "1 hosts" or "All 1 checked host match": a count and its noun
//! ([`count`]), a plural ending ([`plural`]), a verb that agrees with its
//! count ([`agrees`]). And "did you mean": the known name closest to an
//! unknown one ([`closest`]), offered when it is close enough to be a typo;
//! every layer uses it, from the Clusterfile's keys up to `--limit`.

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

/// The candidate closest to `name` by edit distance, if close enough to be a typo.
pub fn closest<'a, S: AsRef<str> + 'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a S>,
) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for candidate in candidates {
        let c = candidate.as_ref();
        if c == name {
            continue;
        }
        let d = edit_distance(name, c);
        if d <= (name.len().max(2) / 3).max(1) && best.as_ref().is_none_or(|(bd, _)| d < *bd) {
            best = Some((d, c.to_string()));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal
/// string alignment): `rnu` is one typo away from `run`, as a person sees it.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between the first i chars of a and the first j of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
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

    #[test]
    fn edit_distance_and_closest() {
        assert_eq!(edit_distance("node", "nod"), 1);
        assert_eq!(edit_distance("rnu", "run"), 1);
        assert_eq!(edit_distance("lcoal", "local"), 1);
        assert_eq!(closest("nmae", ["name", "run"].iter()), Some("name".into()));
        assert_eq!(
            closest("nod", ["master", "node"].iter()),
            Some("node".into())
        );
        assert_eq!(closest("xyz", ["master", "node"].iter()), None);
    }
}
