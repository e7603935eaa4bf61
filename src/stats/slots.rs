//! Where a window can be answered from 15-minute rollups (migration 0006) and where it must
//! read raw calls.
//!
//! A rollup slot is a UTC quarter hour. Slots can stand in for raw calls only where every
//! bucket boundary falls on a quarter hour, so that each slot lies inside one bucket; the
//! window's own edges need not: the partial quarter hours at either end are read raw. Call
//! rollups are also kept per UTC hour ([`Span::Hour`]): where every boundary falls on an hour
//! (UTC, or any zone on whole hours, at hourly or longer buckets), whole hours read one row
//! each instead of four.
use chrono::{DateTime, TimeDelta, Utc};

use super::buckets::BucketGrid;

pub const SLOT_SECONDS: i64 = 900;
const HOUR_SECONDS: i64 = 3600;

/// What a call rollup row spans: one slot, or the UTC hour of four slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Span {
    Quarter,
    Hour,
}

impl Span {
    /// As stored (`minutes`).
    pub fn minutes(self) -> i16 {
        match self {
            Self::Quarter => 15,
            Self::Hour => 60,
        }
    }

    pub fn from_minutes(minutes: i16) -> Option<Self> {
        match minutes {
            15 => Some(Self::Quarter),
            60 => Some(Self::Hour),
            _ => None,
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Self::Quarter => SLOT_SECONDS,
            Self::Hour => HOUR_SECONDS,
        }
    }

    /// The start of the span holding `t`.
    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let seconds = self.seconds();
        DateTime::from_timestamp(t.timestamp().div_euclid(seconds) * seconds, 0).unwrap_or(t)
    }

    /// Whether a span starts at `t`.
    fn starts(self, t: DateTime<Utc>) -> bool {
        self.floor(t) == t
    }

    /// The first span start at or after `t`.
    fn ceil(self, t: DateTime<Utc>) -> DateTime<Utc> {
        if self.starts(t) {
            t
        } else {
            self.floor(t) + TimeDelta::seconds(self.seconds())
        }
    }
}

/// Every slot of the hours that hold `slots`, ascending: what a rebuild of `slots` rebuilds,
/// since an hour's rollups are built from its four slots at once.
pub fn whole_hours(slots: &[DateTime<Utc>]) -> Vec<DateTime<Utc>> {
    let mut out: Vec<DateTime<Utc>> = slots
        .iter()
        .flat_map(|&slot| {
            let hour = Span::Hour.floor(slot);
            (0..4).map(move |k| hour + TimeDelta::seconds(k * SLOT_SECONDS))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A window cut into the part rollups answer and the raw edges around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Whole slots: `[first slot start, last slot end)`.
    pub slots: (DateTime<Utc>, DateTime<Utc>),
    /// The rest of the window, read raw (zero, one or two ranges).
    pub raw: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Whether every bucket boundary inside the slots is on an hour, so that whole hours may
    /// be read from hour rows.
    pub hours: bool,
}

/// Cut `[start, end)` for rollups, or None when the grid has a bucket boundary off the quarter
/// hours inside the whole slots, or the window holds no whole slot.
pub fn split(grid: &BucketGrid, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Split> {
    let split = split_window(start, end)?;
    let (first, last) = split.slots;
    let inside: Vec<DateTime<Utc>> = grid.instants().iter().copied().filter(|t| first < *t && *t < last).collect();
    let hours = inside.iter().all(|t| Span::Hour.starts(*t));
    inside.iter().all(|t| Span::Quarter.starts(*t)).then_some(Split { hours, ..split })
}

/// Cut `[start, end)` into its whole slots and the partial ones at its edges, or None when it
/// holds no whole slot.
pub fn split_window(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Split> {
    let (first, last) = (Span::Quarter.ceil(start), floor(end));
    if first >= last {
        return None;
    }
    let raw = [(start, first), (last, end)].into_iter().filter(|(a, b)| a < b).collect();
    Some(Split { slots: (first, last), raw, hours: false })
}

/// `[from, to)`.
pub type Range = (DateTime<Utc>, DateTime<Utc>);

/// Every instant a call can start at (years 1 to 9999; both ends are slot starts).
pub fn all_time() -> Range {
    let first = DateTime::from_timestamp(-62_135_596_800, 0).expect("year 1");
    let last = DateTime::from_timestamp(253_402_300_800, 0).expect("year 10000");
    (first, last)
}

/// What one stream of a stats request reads: whole slots from rollups, the rest raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Ranges of whole slots, ascending and disjoint.
    pub slots: Vec<Range>,
    /// Ranges read as raw rows.
    pub raw: Vec<Range>,
    /// Whether whole hours of `slots` may be read from hour rows (see [`Split::hours`]).
    pub hours: bool,
}

impl Plan {
    /// Read everything in `[start, end)` raw.
    pub fn raw(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self { slots: Vec::new(), raw: vec![(start, end)], hours: false }
    }

    /// Rollups for the whole slots of `split`, raw rows for the rest; all raw without a split.
    pub fn new(split: Option<Split>, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        match split {
            Some(Split { slots, raw, hours }) => Self { slots: vec![slots], raw, hours },
            None => Self::raw(start, end),
        }
    }

    /// The call rollup reads of the plan's slots: the whole hours of each range from hour rows
    /// when the grid allows, the quarter hours around them (and everything otherwise) from
    /// slot rows.
    pub fn call_spans(&self) -> Vec<(Span, Range)> {
        let mut reads = Vec::new();
        for &(from, to) in &self.slots {
            let (first_hour, last_hour) = (Span::Hour.ceil(from), Span::Hour.floor(to));
            if !self.hours || first_hour >= last_hour {
                reads.push((Span::Quarter, (from, to)));
                continue;
            }
            reads.extend(
                [
                    (Span::Quarter, (from, first_hour)),
                    (Span::Hour, (first_hour, last_hour)),
                    (Span::Quarter, (last_hour, to)),
                ]
                .into_iter()
                .filter(|(_, (a, b))| a < b),
            );
        }
        reads
    }

    /// The same plan with every slot that holds one of `instants` strictly inside it read raw
    /// instead (a price that takes effect mid-slot: the slot's sums mix two prices).
    pub fn without(&self, instants: impl IntoIterator<Item = DateTime<Utc>>) -> Self {
        self.without_slots(instants.into_iter().filter(|t| !Span::Quarter.starts(*t)).map(floor))
    }

    /// The same plan with the slots starting at `slots` read raw instead (adjacent ones as one
    /// range).
    pub fn without_slots(&self, slots: impl IntoIterator<Item = DateTime<Utc>>) -> Self {
        let mut cut: Vec<DateTime<Utc>> =
            slots.into_iter().filter(|t| self.slots.iter().any(|(from, to)| from <= t && t < to)).collect();
        cut.sort_unstable();
        cut.dedup();
        let mut plan = Self { slots: Vec::new(), raw: self.raw.clone(), hours: self.hours };
        for &(from, to) in &self.slots {
            let mut next = from;
            for &slot in cut.iter().filter(|s| from <= **s && **s < to) {
                if next < slot {
                    plan.slots.push((next, slot));
                }
                match plan.raw.last_mut() {
                    Some(last) if last.1 == slot => last.1 = slot_end(slot),
                    _ => plan.raw.push((slot, slot_end(slot))),
                }
                next = slot_end(slot);
            }
            if next < to {
                plan.slots.push((next, to));
            }
        }
        plan
    }

    /// From the first slot to the end of the last: what must be fresh before reading.
    pub fn slot_span(&self) -> Option<Range> {
        Some((self.slots.first()?.0, self.slots.last()?.1))
    }
}

/// The end of the slot starting at `slot`.
pub fn slot_end(slot: DateTime<Utc>) -> DateTime<Utc> {
    slot + TimeDelta::seconds(SLOT_SECONDS)
}

/// The start of the slot holding `t`.
pub fn floor(t: DateTime<Utc>) -> DateTime<Utc> {
    Span::Quarter.floor(t)
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
    fn a_mid_slot_instant_sends_its_slot_to_the_raw_reads_and_a_boundary_instant_does_not() {
        let start = utc("2025-01-01T00:07:00Z");
        let end = utc("2025-01-01T03:00:00Z");
        let plan = Plan::new(split_of("UTC", "2025-01-01T00:07:00Z", "2025-01-01T03:00:00Z", 3600), start, end);
        assert_eq!(plan.slots, vec![(utc("2025-01-01T00:15:00Z"), end)]);
        let cut = plan.without([
            utc("2025-01-01T01:20:00Z"),
            utc("2025-01-01T01:25:00Z"),
            utc("2025-01-01T02:00:00Z"),
            utc("2025-01-01T00:10:00Z"),
            utc("2025-01-05T00:10:00Z"),
        ]);
        assert_eq!(
            cut.slots,
            vec![(utc("2025-01-01T00:15:00Z"), utc("2025-01-01T01:15:00Z")), (utc("2025-01-01T01:30:00Z"), end)]
        );
        assert_eq!(
            cut.raw,
            vec![(start, utc("2025-01-01T00:15:00Z")), (utc("2025-01-01T01:15:00Z"), utc("2025-01-01T01:30:00Z"))]
        );
        assert_eq!(cut.slot_span(), Some((utc("2025-01-01T00:15:00Z"), end)));
        assert_eq!(Plan::raw(start, end).slot_span(), None);
    }

    #[test]
    fn whole_hours_are_read_from_hour_rows_only_where_every_boundary_is_on_an_hour() {
        let (start, end) = ("2025-01-01T00:07:00Z", "2025-01-02T02:50:00Z");
        let plan = |tz: &str, granularity| Plan::new(split_of(tz, start, end, granularity), utc(start), utc(end));
        let hourly = plan("UTC", 3600);
        assert_eq!(
            hourly.call_spans(),
            vec![
                (Span::Quarter, (utc("2025-01-01T00:15:00Z"), utc("2025-01-01T01:00:00Z"))),
                (Span::Hour, (utc("2025-01-01T01:00:00Z"), utc("2025-01-02T02:00:00Z"))),
                (Span::Quarter, (utc("2025-01-02T02:00:00Z"), utc("2025-01-02T02:45:00Z"))),
            ]
        );
        assert_eq!(plan("America/New_York", 86_400).call_spans().len(), 3, "New York's days start on UTC hours");
        // Kathmandu's days start at :15, half-hour buckets at :30: quarter hours only.
        for quarters in [plan("Asia/Kathmandu", 86_400), plan("UTC", 1800)] {
            assert_eq!(quarters.call_spans(), vec![(Span::Quarter, quarters.slots[0])]);
        }
        // A stale quarter hour is read raw; the rest of its hour from slot rows.
        let cut = hourly.without_slots([utc("2025-01-01T05:30:00Z")]);
        assert_eq!(
            cut.call_spans()[1..5],
            [
                (Span::Hour, (utc("2025-01-01T01:00:00Z"), utc("2025-01-01T05:00:00Z"))),
                (Span::Quarter, (utc("2025-01-01T05:00:00Z"), utc("2025-01-01T05:30:00Z"))),
                (Span::Quarter, (utc("2025-01-01T05:45:00Z"), utc("2025-01-01T06:00:00Z"))),
                (Span::Hour, (utc("2025-01-01T06:00:00Z"), utc("2025-01-02T02:00:00Z"))),
            ]
        );
    }

    #[test]
    fn a_rebuild_widens_its_slots_to_their_whole_hours() {
        let slots = [utc("2025-01-01T00:30:00Z"), utc("2025-01-01T00:45:00Z"), utc("2025-01-01T03:00:00Z")];
        let hours: Vec<String> = whole_hours(&slots).iter().map(|t| t.format("%H:%M").to_string()).collect();
        assert_eq!(hours, ["00:00", "00:15", "00:30", "00:45", "03:00", "03:15", "03:30", "03:45"]);
        assert_eq!(Span::Hour.floor(utc("1969-12-31T23:59:59Z")), utc("1969-12-31T23:00:00Z"));
    }

    #[test]
    fn a_window_without_a_whole_slot_is_read_raw() {
        assert!(split_of("UTC", "2025-01-01T00:01:00Z", "2025-01-01T00:20:00Z", 3600).is_none());
    }
}
