//! "Did you mean": the known name closest to an unknown one, by edit
//! distance, offered in help texts when it is close enough to be a typo.

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

/// Levenshtein distance, one row at a time.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_closest() {
        assert_eq!(edit_distance("node", "nod"), 1);
        assert_eq!(
            closest("nod", ["master", "node"].iter()),
            Some("node".into())
        );
        assert_eq!(closest("xyz", ["master", "node"].iter()), None);
    }
}
