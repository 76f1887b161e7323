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
