//! Where a window can be answered from 15-minute rollups (migration 0006) and where it must
//! read raw calls.
//!
//! A rollup slot is a UTC quarter hour. Slots can stand in for raw calls only where every
//! bucket boundary falls on a quarter hour, so that each slot lies inside one bucket; the
//! window's own edges need not: the partial quarter hours at either end are read raw.
use chrono::{DateTime, TimeDelta, Utc};

use super::buckets::BucketGrid;

pub const SLOT_SECONDS: i64 = 900;

/// A window cut into the part rollups answer and the raw edges around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Whole slots: `[first slot start, last slot end)`.
    pub slots: (DateTime<Utc>, DateTime<Utc>),
    /// The rest of the window, read raw (zero, one or two ranges).
    pub raw: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Cut `[start, end)` for rollups, or None when the grid has a bucket boundary off the quarter
/// hours inside the whole slots, or the window holds no whole slot.
pub fn split(grid: &BucketGrid, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Split> {
    let first = ceil(start);
    let last = floor(end);
    if first >= last {
        return None;
    }
    let inside = |t: &&DateTime<Utc>| first < **t && **t < last;
    if !grid.instants().iter().filter(inside).all(|t| is_slot_start(*t)) {
        return None;
    }
    let raw = [(start, first), (last, end)].into_iter().filter(|(a, b)| a < b).collect();
    Some(Split { slots: (first, last), raw })
}

/// The end of the slot starting at `slot`.
pub fn slot_end(slot: DateTime<Utc>) -> DateTime<Utc> {
    slot + TimeDelta::seconds(SLOT_SECONDS)
}

fn is_slot_start(t: DateTime<Utc>) -> bool {
    t.timestamp_subsec_micros() == 0 && t.timestamp().rem_euclid(SLOT_SECONDS) == 0
}

fn floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = t.timestamp().div_euclid(SLOT_SECONDS) * SLOT_SECONDS;
    DateTime::from_timestamp(seconds, 0).unwrap_or(t)
}

fn ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    if is_slot_start(t) {
        t
    } else {
        slot_end(floor(t))
    }
}

#[cfg(test)]
mod tests {
    use chrono_tz::Tz;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn split_of(tz: &str, start: &str, end: &str, granularity: i64) -> Option<Split> {
        let (start, end) = (utc(start), utc(end));
        split(&BucketGrid::new(start, end, granularity, tz.parse::<Tz>().unwrap()), start, end)
    }

    #[test]
    fn an_aligned_window_is_all_slots() {
        let s = split_of("UTC", "2025-01-01T00:00:00Z", "2025-01-31T00:00:00Z", 21_600).unwrap();
        assert_eq!(s.slots, (utc("2025-01-01T00:00:00Z"), utc("2025-01-31T00:00:00Z")));
        assert!(s.raw.is_empty());
    }

    #[test]
    fn unaligned_edges_are_read_raw() {
        let s = split_of("UTC", "2025-01-01T00:07:03.5Z", "2025-01-02T10:20:00Z", 3600).unwrap();
        assert_eq!(s.slots, (utc("2025-01-01T00:15:00Z"), utc("2025-01-02T10:15:00Z")));
        assert_eq!(
            s.raw,
            vec![
                (utc("2025-01-01T00:07:03.5Z"), utc("2025-01-01T00:15:00Z")),
                (utc("2025-01-02T10:15:00Z"), utc("2025-01-02T10:20:00Z"))
            ]
        );
    }

    #[test]
    fn new_york_days_across_a_dst_change_fall_on_quarter_hours() {
        assert!(split_of("America/New_York", "2025-03-01T00:00:00Z", "2025-03-31T00:00:00Z", 86_400).is_some());
        assert!(split_of("Asia/Kathmandu", "2025-03-01T00:00:00Z", "2025-03-31T00:00:00Z", 3600).is_some());
    }

    #[test]
    fn buckets_shorter_than_a_slot_or_off_the_quarter_hours_need_raw_calls() {
        assert!(split_of("UTC", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", 300).is_none());
        assert!(split_of("UTC", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", 1000).is_none());
        // Local mean time before 1883 has offsets of odd seconds.
        assert!(split_of("America/New_York", "1850-01-01T00:00:00Z", "1850-01-10T00:00:00Z", 86_400).is_none());
    }

    #[test]
    fn a_window_without_a_whole_slot_is_read_raw() {
        assert!(split_of("UTC", "2025-01-01T00:01:00Z", "2025-01-01T00:20:00Z", 3600).is_none());
    }
}
