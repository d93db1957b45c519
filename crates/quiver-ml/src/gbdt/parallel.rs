//! Static work splitting over scoped threads. Work is split into contiguous ranges decided by the
//! data alone (never by timing), so results are the same for any thread count.

use std::ops::Range;
use std::thread;

/// `0..n` cut into `parts` contiguous ranges of near-equal length (earlier ranges take the extra).
pub(crate) fn ranges(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|p| {
            let len = base + usize::from(p < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// Runs `f` on each item (in parallel over up to `threads` threads) and returns the results in item order.
pub(crate) fn map<I: Send, T: Send>(
    threads: usize,
    items: Vec<I>,
    f: impl Fn(I) -> T + Sync,
) -> Vec<T> {
    if threads <= 1 || items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    let n = items.len();
    let mut groups: Vec<Vec<I>> = Vec::new();
    let mut it = items.into_iter();
    for r in ranges(n, threads) {
        groups.push(it.by_ref().take(r.len()).collect());
    }
    let f = &f;
    thread::scope(|s| {
        let mut groups = groups.into_iter();
        let first = groups.next().unwrap_or_default();
        let handles: Vec<_> = groups
            .map(|g| s.spawn(move || g.into_iter().map(f).collect::<Vec<T>>()))
            .collect();
        let mut out: Vec<T> = first.into_iter().map(f).collect();
        for h in handles {
            out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}
