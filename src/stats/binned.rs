//! Exact latency percentiles that read only the latencies near each percentile (migration
//! 0011, README "How /calls/stats stays fast").
//!
//! A rollup group (a slot's calls, or one op's) with more than [`LISTED_MAX`] finished calls
//! keeps its latencies sorted in pages (see [`page_ranks`]), and a summary: count, exact sum,
//! min, max and a histogram, the count per bin (bins ~2% wide, see [`bin`]). To answer a
//! percentile of a bucket, the histograms of its groups (and the bins of any latencies it has
//! one by one) are merged to find the bin that holds each wanted rank and how many values lie
//! below that bin; only the pages holding that bin are read in each group; the value at the
//! rank is selected exactly among the bucket's values in that bin. So a request's cost grows
//! with its buckets and groups, not with its calls. Pure: the store reads what
//! [`Binned::pages`] asks for.
use chrono::{DateTime, Utc};

use super::slots::Span;

/// Latencies per page (8 bytes each: a page row stays inline, under 2 KB; larger pages, tried
/// for an hour's top 1/16, each fill a block of their own and read slower than the extra page).
pub const PAGE_VALUES: usize = 240;
/// Most latencies a group lists one by one instead of paging them.
pub const LISTED_MAX: usize = 128;
/// Mantissa bits a bin keeps: 32 bins per power of two, each at most 1/32 of its lower edge wide.
const MANTISSA_BITS: u32 = 5;

/// A latency in whole microseconds: latencies are differences of microsecond timestamps, so
/// `ms × 1000` is within rounding of an integer.
pub fn micros(latency_ms: f64) -> i128 {
    (latency_ms * 1000.0).round() as i128
}

/// The bin of `value`: the sign, exponent and top mantissa bits of its total-order key, so
/// bins ascend with `f64::total_cmp`.
pub fn bin(value: f64) -> u32 {
    let bits = value.to_bits();
    let key = if bits >> 63 == 1 { !bits } else { bits | 1 << 63 };
    (key >> (52 - MANTISSA_BITS)) as u32
}

/// The ranks `[start, end)` that page `page` of a group of `n` sorted latencies holds. Pages
/// are cut from the top (page 0 holds the largest [`PAGE_VALUES`]) so that the high
/// percentiles a dashboard asks (p95, p99) mostly share one page.
pub fn page_ranks(n: u64, page: u64) -> (u64, u64) {
    let size = PAGE_VALUES as u64;
    let end = n.saturating_sub(page * size);
    (end.saturating_sub(size), end)
}

/// The page of a group of `n` sorted latencies that holds rank `rank` (< n).
fn page_holding(n: u64, rank: u64) -> u64 {
    (n - 1 - rank) / PAGE_VALUES as u64
}

/// A group's sorted latencies cut into its pages, page 0 first (see [`page_ranks`]).
pub fn pages(sorted: &[f64]) -> impl Iterator<Item = &[f64]> {
    sorted.rchunks(PAGE_VALUES)
}

/// A paged group's latencies, as its rollup row keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub count: u64,
    /// Their sum in whole microseconds (see [`micros`]).
    pub micros: i128,
    pub min: f64,
    pub max: f64,
    /// How many are exactly 0 and exactly 1 (`count_false` / `count_true`).
    pub zeros: u64,
    pub ones: u64,
    /// (bin, count) of each non-empty bin, ascending.
    pub bins: Vec<(u32, u64)>,
}

impl Summary {
    /// The summary of latencies sorted by `f64::total_cmp`; None when there are none.
    pub fn of_sorted(sorted: &[f64]) -> Option<Self> {
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let mut summary = Self { count: sorted.len() as u64, micros: 0, min, max, zeros: 0, ones: 0, bins: Vec::new() };
        for &value in sorted {
            summary.micros += micros(value);
            summary.zeros += u64::from(value == 0.0);
            summary.ones += u64::from(value == 1.0);
            let b = bin(value);
            match summary.bins.last_mut() {
                Some((last, count)) if *last == b => *count += 1,
                _ => summary.bins.push((b, 1)),
            }
        }
        Some(summary)
    }
}

/// Consecutive latencies of one page of one group: what [`Binned::pages`] asks the store to
/// read (only a wanted bin's values, so little crosses the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageSlice {
    pub span: Span,
    pub slot: DateTime<Utc>,
    /// 0 for a whole slot, 1.. for its (op, root-ness) groups.
    pub part: i32,
    pub page: i32,
    /// The first latency's position in the page, and how many.
    pub first: i32,
    pub count: i32,
}

/// Slices of consecutive pages of one group, for one bucket, read by one index range probe:
/// the first page's slice (`head`), the last's (`tail`, the same slice for a single page) and
/// every page between them whole. A wanted bin of ~14,000 latencies an hour spans two or three
/// pages; a probe each cost more than reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRun {
    pub bucket: usize,
    pub head: PageSlice,
    pub tail: PageSlice,
}

/// The slices [`Binned::pages`] asked for (tagged with their bucket), as runs of consecutive
/// pages. Reading a page between two slices whole adds no wanted value twice: a page is in
/// one run at most, and [`Binned::add_page`] keeps only the values of wanted bins.
pub fn page_runs(slices: &[(usize, PageSlice)]) -> Vec<PageRun> {
    let mut runs: Vec<PageRun> = Vec::with_capacity(slices.len());
    for &(bucket, slice) in slices {
        match runs.last_mut() {
            Some(run)
                if run.bucket == bucket
                    && (run.tail.span, run.tail.slot, run.tail.part) == (slice.span, slice.slot, slice.part)
                    && run.tail.page.checked_add(1) == Some(slice.page) =>
            {
                run.tail = slice;
            }
            _ => runs.push(PageRun { bucket, head: slice, tail: slice }),
        }
    }
    runs
}

/// A bin holding wanted ranks: how many of the bucket's values lie in lower bins.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    bin: u32,
    below: u64,
}

/// A paged group of a bucket: where its pages are, and its histogram.
#[derive(Debug)]
struct PagedGroup {
    span: Span,
    slot: DateTime<Utc>,
    part: i32,
    bins: Vec<(u32, u64)>,
}

/// One bucket's percentiles of latencies from paged groups: their histograms, then the values
/// of the wanted bins as pages arrive.
#[derive(Debug, Default)]
pub struct Binned {
    groups: Vec<PagedGroup>,
    /// The ranks asked (ascending), and the bins that hold them.
    ranks: Vec<usize>,
    wanted: Vec<Wanted>,
    /// The values read from pages that fall in a wanted bin.
    picked: Vec<f64>,
}

impl Binned {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// A paged group of this bucket, by its span, slot, part and histogram.
    pub fn add_group(&mut self, span: Span, slot: DateTime<Utc>, part: i32, bins: Vec<(u32, u64)>) {
        self.groups.push(PagedGroup { span, slot, part, bins });
    }

    /// Find the bins holding `ranks` (ascending) among the groups' values and `listed`, and
    /// push the pages that hold those bins onto `pages`.
    pub fn pages(&mut self, listed: &[f64], ranks: Vec<usize>, pages: &mut Vec<PageSlice>) {
        self.wanted = wanted_bins(&self.groups, listed, &ranks);
        self.ranks = ranks;
        for PagedGroup { span, slot, part, bins } in &self.groups {
            let n: u64 = bins.iter().map(|&(_, count)| count).sum();
            let group_start = pages.len();
            // Ranks inside the group of each wanted bin's values, from its running count.
            let (mut before, mut j) = (0u64, 0);
            for wanted in &self.wanted {
                while bins.get(j).is_some_and(|&(b, _)| b < wanted.bin) {
                    before += bins[j].1;
                    j += 1;
                }
                let Some(&(b, count)) = bins.get(j) else { break };
                if b == wanted.bin {
                    let (from, to) = (before, before + count);
                    for page in page_holding(n, to - 1)..=page_holding(n, from) {
                        let (start, end) = page_ranks(n, page);
                        let first = from.max(start) - start;
                        let count = to.min(end) - start - first;
                        pages.push(PageSlice {
                            span: *span,
                            slot: *slot,
                            part: *part,
                            page: page as i32,
                            first: first as i32,
                            count: count as i32,
                        });
                    }
                }
            }
            // One read a page: the slices of a page (p95 and p99 often share the top one) merge
            // into the span that covers them; values between them are dropped by their bins.
            let slices = &mut pages[group_start..];
            slices.sort_unstable_by_key(|s| (s.page, s.first));
            let mut merged = group_start;
            for k in group_start..pages.len() {
                let slice = pages[k];
                if merged > group_start && pages[merged - 1].page == slice.page {
                    let last = &mut pages[merged - 1];
                    last.count = (slice.first + slice.count).max(last.first + last.count) - last.first;
                } else {
                    pages[merged] = slice;
                    merged += 1;
                }
            }
            pages.truncate(merged);
        }
    }

    /// Values of one slice read for this bucket (each slice once).
    pub fn add_page(&mut self, values: impl IntoIterator<Item = f64>) {
        for value in values {
            if self.wanted.iter().any(|w| w.bin == bin(value)) {
                self.picked.push(value);
            }
        }
    }

    /// The value at each rank given to [`Binned::pages`], with the same `listed`: (rank,
    /// value). None when the pages did not hold what the histograms promised.
    pub fn resolve(&self, listed: &[f64]) -> Option<Vec<(usize, f64)>> {
        let mut out = Vec::with_capacity(self.ranks.len());
        let mut ranks = self.ranks.iter().copied().peekable();
        for (k, wanted) in self.wanted.iter().enumerate() {
            let end = self.wanted.get(k + 1).map(|next| next.below);
            let mut values: Vec<f64> =
                self.picked.iter().chain(listed).copied().filter(|&v| bin(v) == wanted.bin).collect();
            values.sort_unstable_by(f64::total_cmp);
            while let Some(rank) = ranks.next_if(|&r| end.is_none_or(|end| (r as u64) < end)) {
                let at = (rank as u64).checked_sub(wanted.below)?;
                out.push((rank, *values.get(usize::try_from(at).ok()?)?));
            }
        }
        ranks.next().is_none().then_some(out)
    }
}

/// The bins holding `ranks` (ascending) among the values of `groups` and `listed`.
fn wanted_bins(groups: &[PagedGroup], listed: &[f64], ranks: &[usize]) -> Vec<Wanted> {
    let bins = || groups.iter().flat_map(|group| group.bins.iter().copied()).chain(listed.iter().map(|&v| (bin(v), 1)));
    let (Some(low), Some(high)) = (bins().map(|(b, _)| b).min(), bins().map(|(b, _)| b).max()) else {
        return Vec::new();
    };
    // Merged counts: one array over the bins in use (latencies span a few hundred of them),
    // sorted pairs when they spread wider.
    let merged: Vec<(u32, u64)> = if high - low < 1 << 16 {
        let mut dense = vec![0u64; (high - low + 1) as usize];
        bins().for_each(|(b, count)| dense[(b - low) as usize] += count);
        dense.iter().enumerate().filter(|(_, &c)| c > 0).map(|(i, &c)| (low + i as u32, c)).collect()
    } else {
        let mut pairs: Vec<(u32, u64)> = bins().collect();
        pairs.sort_unstable_by_key(|&(b, _)| b);
        pairs.chunk_by(|a, b| a.0 == b.0).map(|run| (run[0].0, run.iter().map(|&(_, c)| c).sum())).collect()
    };
    let mut wanted = Vec::new();
    let mut below = 0u64;
    let mut ranks = ranks.iter().map(|&r| r as u64).peekable();
    for (b, count) in merged {
        if ranks.peek().is_none() {
            break;
        }
        if ranks.next_if(|&r| r < below + count).is_some() {
            wanted.push(Wanted { bin: b, below });
            while ranks.next_if(|&r| r < below + count).is_some() {}
        }
        below += count;
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_ascend_with_the_total_order_of_floats() {
        let values = [f64::NEG_INFINITY, -1e300, -2.0, -1.0, -0.0, 0.0, 1e-300, 0.5, 1.0, 1.02, 1.04, 2.0, 1e300];
        for pair in values.windows(2) {
            assert!(bin(pair[0]) <= bin(pair[1]), "{pair:?}");
        }
        assert_eq!(bin(1.0), bin(1.02));
        assert!(bin(1.0) < bin(1.04));
    }

    /// Groups of sorted values cut into pages as the store keeps them; the bucket's other
    /// values listed.
    fn answer(groups: &[Vec<f64>], listed: &[f64], ranks: &[usize]) -> Option<Vec<(usize, f64)>> {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let mut binned = Binned::default();
        for (part, values) in groups.iter().enumerate() {
            binned.add_group(Span::Quarter, t, part as i32, Summary::of_sorted(values).unwrap().bins);
        }
        let mut pages = Vec::new();
        binned.pages(listed, ranks.to_vec(), &mut pages);
        pages.sort_unstable();
        pages.dedup();
        for slice in &pages {
            let (start, end) = page_ranks(groups[slice.part as usize].len() as u64, slice.page as u64);
            assert!(slice.count > 0 && start + (slice.first + slice.count) as u64 <= end);
        }
        // Read as the store reads them: a run's first and last slices, the pages between whole.
        let tagged: Vec<(usize, PageSlice)> = pages.iter().map(|&slice| (0, slice)).collect();
        for PageRun { head, tail, .. } in page_runs(&tagged) {
            let values = &groups[head.part as usize];
            for page in head.page..=tail.page {
                let (start, end) = page_ranks(values.len() as u64, page as u64);
                let (first, count) = match page {
                    p if p == head.page => (head.first as u64, head.count as u64),
                    p if p == tail.page => (tail.first as u64, tail.count as u64),
                    _ => (0, end - start),
                };
                let from = (start + first) as usize;
                binned.add_page(values[from..from + count as usize].iter().copied());
            }
        }
        binned.resolve(listed)
    }

    #[test]
    fn slices_of_consecutive_pages_of_one_group_and_bucket_make_one_run() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let slice = |part: i32, page: i32| PageSlice { span: Span::Hour, slot: t, part, page, first: 3, count: 5 };
        let slices = [
            (0, slice(1, 0)),
            (0, slice(1, 1)),
            (0, slice(1, 2)),
            (0, slice(1, 4)),
            (0, slice(2, 5)),
            (1, slice(2, 6)),
        ];
        let runs: Vec<(usize, i32, i32, i32)> =
            page_runs(&slices).iter().map(|r| (r.bucket, r.head.part, r.head.page, r.tail.page)).collect();
        // A gap, another group and another bucket each start a run.
        assert_eq!(runs, [(0, 1, 0, 2), (0, 1, 4, 4), (0, 2, 5, 5), (1, 2, 6, 6)]);
    }

    #[test]
    fn the_value_at_each_rank_is_the_one_a_full_sort_finds() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            seed >> 11
        };
        for round in 0..200 {
            let group_count = 1 + (next() % 5) as usize;
            let mut groups = Vec::new();
            for _ in 0..group_count {
                // Some groups of many pages, as an hour holds at 10M calls (~14,000).
                let n = 1 + (next() % if round % 5 == 4 { 20_000 } else { 1_000 }) as usize;
                // Few distinct values in some rounds (ties across pages and bins), spread in others.
                let mut values: Vec<f64> = (0..n)
                    .map(|_| match round % 3 {
                        0 => (next() % 7) as f64,
                        1 => (next() % 2_000_000) as f64 / 1000.0,
                        _ => ((next() % 4_000) as f64 / 100.0).exp() / 1e6 - 1.0,
                    })
                    .collect();
                values.sort_unstable_by(f64::total_cmp);
                groups.push(values);
            }
            let listed: Vec<f64> = (0..next() % 50).map(|_| (next() % 30_000) as f64 / 7.0).collect();
            let mut all: Vec<f64> = groups.iter().flatten().chain(&listed).copied().collect();
            all.sort_unstable_by(f64::total_cmp);
            let mut ranks: Vec<usize> = (0..6).map(|_| next() as usize % all.len()).collect();
            ranks.extend([0, all.len() - 1]);
            ranks.sort_unstable();
            ranks.dedup();
            let expected: Vec<(usize, f64)> = ranks.iter().map(|&r| (r, all[r])).collect();
            assert_eq!(answer(&groups, &listed, &ranks), Some(expected), "round {round}");
        }
    }

    #[test]
    fn a_page_that_does_not_hold_what_the_histogram_promised_is_noticed() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let values: Vec<f64> = (0..500).map(f64::from).collect();
        let mut binned = Binned::default();
        binned.add_group(Span::Hour, t, 0, Summary::of_sorted(&values).unwrap().bins);
        let mut pages = Vec::new();
        binned.pages(&[], vec![250], &mut pages);
        // 500 values: page 0 holds ranks 260..500, page 1 ranks 20..260.
        assert_eq!(pages, vec![PageSlice { span: Span::Hour, slot: t, part: 0, page: 1, first: 228, count: 4 }]);
        assert_eq!(binned.resolve(&[]), None, "no page was read");
    }

    #[test]
    fn pages_cut_from_the_top_hold_the_ranks_page_ranks_gives_and_page_holding_finds() {
        for n in [1usize, 129, 239, 240, 241, 3_839, 3_841, 5_000, 14_003, 14_400, 20_000] {
            let sorted: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let mut end = n as u64;
            for (k, page) in pages(&sorted).enumerate() {
                let (start, stop) = page_ranks(n as u64, k as u64);
                assert_eq!(stop, end, "n {n} page {k} is contiguous with the one above");
                assert_eq!(page, &sorted[start as usize..stop as usize], "n {n} page {k}");
                assert!(page.len() <= PAGE_VALUES, "n {n} page {k}");
                for rank in start..stop {
                    assert_eq!(page_holding(n as u64, rank), k as u64, "n {n} rank {rank}");
                }
                end = start;
            }
            assert_eq!(end, 0, "n {n}: the pages hold every value");
            // p95 and p99 (both ranks percentile_cont interpolates between) share the top page.
            let top = page_ranks(n as u64, 0).0;
            if n <= 4_000 {
                assert!(((n - 1) as f64 * 0.95).floor() as u64 >= top, "n {n}");
            }
        }
    }

    #[test]
    fn a_summary_counts_sums_and_bins_its_values() {
        let s = Summary::of_sorted(&[0.0, 0.0, 1.0, 1.001, 1.5, 2.25]).unwrap();
        assert_eq!((s.count, s.micros, s.min, s.max, s.zeros, s.ones), (6, 5_751, 0.0, 2.25, 2, 1));
        assert_eq!(s.bins.iter().map(|&(_, c)| c).collect::<Vec<_>>(), vec![2, 2, 1, 1]);
        assert_eq!(Summary::of_sorted(&[]), None);
    }
}
