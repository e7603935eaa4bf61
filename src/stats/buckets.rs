//! Wall-clock buckets in an IANA timezone (API.md §4.4).
//!
//! A call's label is its local time floored to a multiple of `g` seconds (counted from the
//! naive epoch); a label's instant is the first instant whose local time is at least the label.
//! Labels with the same instant are one bucket, so the 02:00 label of a spring-forward night
//! joins 03:00, and the 01:00 label of a fall-back night covers both 01:00 hours.
//!
//! The window is cut into segments of constant UTC offset; inside one, local time is the
//! instant plus the offset, so labels and the bucket of any instant are plain arithmetic.
use std::collections::HashMap;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

const MICROS: i64 = 1_000_000;

/// The buckets of one window, and the map from instants to them.
#[derive(Debug, Clone)]
pub struct BucketGrid {
    tz: Tz,
    granularity_micros: i64,
    /// Offset segments: (first instant in µs, offset in µs), ascending.
    segments: Vec<(i64, i64)>,
    /// Bucket instants, ascending.
    instants: Vec<DateTime<Utc>>,
    /// Label (local µs since the naive epoch) → bucket index.
    by_label: HashMap<i64, usize>,
    window: (i64, i64),
}

impl BucketGrid {
    /// Every bucket of `[start, end)` at `granularity` seconds in `tz`, including empty ones.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>, granularity: i64, tz: Tz) -> Self {
        let window = (micros(start), micros(end));
        let granularity_micros = granularity.saturating_mul(MICROS).max(1);
        let mut grid = Self {
            tz,
            granularity_micros,
            segments: Vec::new(),
            instants: Vec::new(),
            by_label: HashMap::new(),
            window,
        };
        if window.0 >= window.1 {
            return grid;
        }
        grid.segments = offset_segments(tz, window.0, window.1);
        let mut labels: HashMap<i64, DateTime<Utc>> = HashMap::new();
        for (i, &(from, offset)) in grid.segments.iter().enumerate() {
            let to = grid.segments.get(i + 1).map_or(window.1, |s| s.0);
            let first = (from + offset).div_euclid(granularity_micros);
            let last = (to - 1 + offset).div_euclid(granularity_micros);
            for k in first..=last {
                let label = k * granularity_micros;
                labels.entry(label).or_insert_with(|| instant_of_label(tz, label));
            }
        }
        let mut instants: Vec<DateTime<Utc>> = labels.values().copied().collect();
        instants.sort_unstable();
        instants.dedup();
        for (label, instant) in labels {
            let index = instants.binary_search(&instant).expect("every label's instant is listed");
            grid.by_label.insert(label, index);
        }
        grid.instants = instants;
        grid
    }

    /// Bucket instants, ascending.
    pub fn instants(&self) -> &[DateTime<Utc>] {
        &self.instants
    }

    pub fn len(&self) -> usize {
        self.instants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instants.is_empty()
    }

    /// The index of the bucket holding `t`, or None when `t` is outside the window.
    pub fn bucket_of(&self, t: DateTime<Utc>) -> Option<usize> {
        let t = micros(t);
        if t < self.window.0 || t >= self.window.1 {
            return None;
        }
        let segment = self.segments.partition_point(|s| s.0 <= t).checked_sub(1)?;
        let label = (t + self.segments[segment].1).div_euclid(self.granularity_micros) * self.granularity_micros;
        self.by_label.get(&label).copied()
    }

    /// The bucket's `timestamp`: its instant in the timezone with a numeric offset.
    pub fn timestamp(&self, index: usize) -> String {
        self.instants[index].with_timezone(&self.tz).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn offset_micros(tz: Tz, t: i64) -> i64 {
    let utc = DateTime::from_timestamp_micros(t).unwrap_or_default().naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()) * MICROS
}

/// Split `[start, end)` where the UTC offset changes. Probes hourly (no zone changes its offset
/// twice within an hour), then narrows each change to the second.
fn offset_segments(tz: Tz, start: i64, end: i64) -> Vec<(i64, i64)> {
    const STEP: i64 = 3600 * MICROS;
    let mut segments = vec![(start, offset_micros(tz, start))];
    let mut probe = start;
    while probe < end - 1 {
        let next = (probe + STEP).min(end - 1);
        let current = segments.last().expect("one segment at least").1;
        if offset_micros(tz, next) != current {
            // The change lies in (probe, next]: binary search on whole seconds.
            let (mut lo, mut hi) = (probe, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_micros(tz, mid) == current {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            segments.push((hi, offset_micros(tz, hi)));
            probe = hi;
        } else {
            probe = next;
        }
    }
    segments
}

/// The first instant whose local time is at least `label` (local µs since the naive epoch):
/// the first occurrence of an ambiguous time, the end of the gap for a skipped one.
pub fn instant_of_label(tz: Tz, label: i64) -> DateTime<Utc> {
    let naive = |l: i64| DateTime::from_timestamp_micros(l).unwrap_or_default().naive_utc();
    if let Some(t) = earliest(tz, naive(label)) {
        return t;
    }
    // Inside a gap: walk forward a minute at a time to a valid local time, then narrow to the
    // first valid microsecond (gaps end on whole seconds, so this converges quickly).
    let (mut lo, mut hi) = (label, label + 60 * MICROS);
    let limit = label + 48 * 3600 * MICROS;
    while earliest(tz, naive(hi)).is_none() && hi < limit {
        lo = hi;
        hi += 60 * MICROS;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if earliest(tz, naive(mid)).is_some() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    earliest(tz, naive(hi)).unwrap_or_else(|| naive(label).and_utc())
}

fn earliest(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.to_utc()),
        LocalResult::Ambiguous(a, b) => Some(a.to_utc().min(b.to_utc())),
        LocalResult::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// A bucket's length.
    fn bucket_length(grid: &BucketGrid, index: usize, end: DateTime<Utc>) -> TimeDelta {
        let next = grid.instants.get(index + 1).copied().unwrap_or(end);
        next - grid.instants[index]
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn timestamps(tz: &str, start: &str, end: &str, g: i64) -> Vec<String> {
        let grid = BucketGrid::new(utc(start), utc(end), g, tz.parse().unwrap());
        (0..grid.len()).map(|i| grid.timestamp(i)).collect()
    }

    #[test]
    fn new_york_daily_buckets_start_at_local_midnight_across_spring_forward() {
        assert_eq!(
            timestamps("America/New_York", "2025-03-08T12:00:00Z", "2025-03-11T12:00:00Z", 86_400),
            [
                "2025-03-08T00:00:00-05:00",
                "2025-03-09T00:00:00-05:00",
                "2025-03-10T00:00:00-04:00",
                "2025-03-11T00:00:00-04:00"
            ]
        );
    }

    #[test]
    fn the_spring_forward_gap_label_joins_the_next_hour() {
        assert_eq!(
            timestamps("America/New_York", "2025-03-09T05:00:00Z", "2025-03-09T09:00:00Z", 3600),
            [
                "2025-03-09T00:00:00-05:00",
                "2025-03-09T01:00:00-05:00",
                "2025-03-09T03:00:00-04:00",
                "2025-03-09T04:00:00-04:00"
            ]
        );
    }

    #[test]
    fn the_fall_back_hour_is_one_two_hour_bucket() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let end = utc("2025-11-02T08:00:00Z");
        let grid = BucketGrid::new(utc("2025-11-02T03:00:00Z"), end, 3600, tz);
        let stamps: Vec<String> = (0..grid.len()).map(|i| grid.timestamp(i)).collect();
        assert_eq!(
            stamps,
            [
                "2025-11-01T23:00:00-04:00",
                "2025-11-02T00:00:00-04:00",
                "2025-11-02T01:00:00-04:00",
                "2025-11-02T02:00:00-05:00"
            ]
        );
        assert_eq!(bucket_length(&grid, 2, end), TimeDelta::hours(2));
        assert_eq!(grid.bucket_of(utc("2025-11-02T06:30:00Z")), Some(2));
    }

    #[test]
    fn kolkata_hours_are_offset_by_half_an_hour_from_utc() {
        assert_eq!(
            timestamps("Asia/Kolkata", "2025-01-15T00:00:00Z", "2025-01-15T03:00:00Z", 3600),
            [
                "2025-01-15T05:00:00+05:30",
                "2025-01-15T06:00:00+05:30",
                "2025-01-15T07:00:00+05:30",
                "2025-01-15T08:00:00+05:30"
            ]
        );
    }

    #[test]
    fn lord_howes_half_hour_fall_back_makes_a_ninety_minute_bucket() {
        let tz: Tz = "Australia/Lord_Howe".parse().unwrap();
        let end = utc("2025-04-05T17:00:00Z");
        let grid = BucketGrid::new(utc("2025-04-05T14:00:00Z"), end, 3600, tz);
        let stamps: Vec<String> = (0..grid.len()).map(|i| grid.timestamp(i)).collect();
        assert_eq!(stamps, ["2025-04-06T01:00:00+11:00", "2025-04-06T02:00:00+10:30", "2025-04-06T03:00:00+10:30"]);
        assert_eq!(bucket_length(&grid, 0, end), TimeDelta::minutes(90));
    }

    #[test]
    fn utc_five_minute_buckets_start_before_the_window() {
        assert_eq!(
            timestamps("UTC", "2025-01-15T11:02:30Z", "2025-01-15T11:20:00Z", 300),
            [
                "2025-01-15T11:00:00+00:00",
                "2025-01-15T11:05:00+00:00",
                "2025-01-15T11:10:00+00:00",
                "2025-01-15T11:15:00+00:00"
            ]
        );
    }

    #[test]
    fn an_empty_window_has_no_buckets_and_end_is_excluded() {
        let t = utc("2025-01-15T11:00:00Z");
        let empty = BucketGrid::new(t, t, 300, Tz::UTC);
        assert!(empty.is_empty());
        let grid = BucketGrid::new(t, utc("2025-01-15T11:10:00Z"), 300, Tz::UTC);
        assert_eq!(grid.bucket_of(utc("2025-01-15T11:10:00Z")), None);
        assert_eq!(grid.bucket_of(utc("2025-01-15T11:09:59.999999Z")), Some(1));
        assert_eq!(grid.bucket_of(utc("2025-01-15T10:59:59.999999Z")), None);
    }

    #[test]
    fn a_fold_inside_the_window_can_start_the_list_before_starts_own_bucket() {
        // 30-minute buckets from 01:50 EDT: after the fold, 01:00 EST belongs to 01:00 EDT's bucket.
        let grid = BucketGrid::new(
            utc("2025-11-02T05:50:00Z"),
            utc("2025-11-02T07:00:00Z"),
            1800,
            "America/New_York".parse().unwrap(),
        );
        assert_eq!(grid.instants()[0], utc("2025-11-02T05:00:00Z"));
        assert_eq!(grid.bucket_of(utc("2025-11-02T06:10:00Z")), Some(0));
        assert_eq!(grid.bucket_of(utc("2025-11-02T05:50:00Z")), Some(1));
    }
}
