//! The floor of an FD: what real images score at the samples' n and with their classes. FD at n
//! is biased upwards, and far more when the classes' shares wander from set to set, so the real
//! images are drawn class by class to the plan `ddpm eval`'s samples follow (a fixed rotation),
//! and over several disjoint draws, so that one lucky or unlucky draw does not set every ratio.

/// Up to `max_sets` disjoint sets of indices into `labels`, each holding at position i an image of
/// class `asked[i]` (of any class where it is `None`, as for an unconditional model's samples),
/// taken from the end of the set backwards. Fewer when the images run out.
pub fn real_sets(labels: &[u8], asked: &[Option<usize>], max_sets: usize) -> Vec<Vec<usize>> {
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    // Popped from the back: the end of the set first.
    let mut any: Vec<usize> = (0..labels.len()).collect();
    let mut used = vec![false; labels.len()];
    let mut sets = Vec::new();
    'sets: while sets.len() < max_sets {
        let mut set = Vec::with_capacity(asked.len());
        for class in asked {
            let queue = match class {
                Some(c) if *c < classes => &mut by_class[*c],
                Some(_) => break 'sets,
                None => &mut any,
            };
            let next = loop {
                match queue.pop() {
                    Some(i) if used[i] => continue,
                    Some(i) => break i,
                    None => break 'sets,
                }
            };
            used[next] = true;
            set.push(next);
        }
        sets.push(set);
    }
    sets
}
