//! Property tests: the bucket grid and the percentiles against deliberately naive references
//! (brute-force scans over time, textbook formulas) on random windows, zones and sizes.
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::aggregate::percentile;
use super::buckets::BucketGrid;

/// Zones with windows that open a few hours before one of their 2025 offset changes (or an
/// ordinary day for zones without DST), where bucket bugs would hide.
const CASES: &[(&str, &str)] = &[
    ("UTC", "2025-01-15T00:00:00Z"),
    ("America/New_York", "2025-03-09T04:00:00Z"),
    ("America/New_York", "2025-11-02T03:00:00Z"),
    ("Europe/London", "2025-03-30T00:00:00Z"),
    ("Europe/London", "2025-10-26T00:00:00Z"),
    ("Australia/Lord_Howe", "2025-04-05T12:00:00Z"),
    ("Australia/Lord_Howe", "2025-10-04T14:00:00Z"),
    ("America/St_Johns", "2025-11-02T02:00:00Z"),
    ("Pacific/Chatham", "2025-04-05T12:00:00Z"),
    ("Asia/Kolkata", "2025-01-15T00:00:00Z"),
    ("Asia/Kathmandu", "2025-01-15T00:00:00Z"),
];
const GRANULARITIES: &[i64] = &[1, 7, 60, 300, 900, 1800, 3600, 5400, 7200, 21_600, 43_200, 86_400];

fn local_seconds(tz: Tz, t: DateTime<Utc>) -> i64 {
    t.with_timezone(&tz).naive_local().and_utc().timestamp()
}

/// The first instant whose local time is ≥ `label`, by scanning forward from well before it.
fn naive_instant(tz: Tz, label: i64) -> DateTime<Utc> {
    let mut minute = DateTime::from_timestamp(label - 15 * 3600, 0).unwrap();
    while local_seconds(tz, minute) < label {
        minute += TimeDelta::minutes(1);
    }
    let mut second = minute - TimeDelta::seconds(59);
    while local_seconds(tz, second) < label {
        second += TimeDelta::seconds(1);
    }
    second
}

fn naive_bucket(tz: Tz, t: DateTime<Utc>, g: i64) -> DateTime<Utc> {
    let local_micros = t.with_timezone(&tz).naive_local().and_utc().timestamp_micros();
    let label_seconds = local_micros.div_euclid(g * 1_000_000) * g;
    naive_instant(tz, label_seconds)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_instant_lands_in_the_bucket_the_naive_definition_gives(
        case in 0..CASES.len(),
        g_index in 0..GRANULARITIES.len(),
        start_offset_s in 0i64..(6 * 3600),
        length_s in 1i64..(2 * 86_400),
        samples in prop::collection::vec(0.0f64..1.0, 1..60),
    ) {
        let (zone, anchor) = CASES[case];
        let tz: Tz = zone.parse().unwrap();
        let g = GRANULARITIES[g_index];
        let start = DateTime::parse_from_rfc3339(anchor).unwrap().to_utc() + TimeDelta::seconds(start_offset_s) + TimeDelta::microseconds(start_offset_s % 1000);
        let length = TimeDelta::seconds(length_s.min(g * 2000));
        let end = start + length;
        let grid = BucketGrid::new(start, end, g, tz);

        prop_assert!(grid.instants().windows(2).all(|w| w[0] < w[1]), "instants ascend");
        prop_assert!(*grid.instants().last().unwrap() < end);
        prop_assert!(grid.instants()[0] <= start);
        for fraction in samples.iter().chain([0.0].iter()) {
            let t = start + TimeDelta::microseconds((length.num_microseconds().unwrap() as f64 * fraction) as i64);
            let index = grid.bucket_of(t).expect("an instant of the window has a bucket");
            prop_assert_eq!(grid.instants()[index], naive_bucket(tz, t, g), "t = {}", t);
        }
    }

    #[test]
    fn percentiles_match_the_textbook_rank_formula(
        mut values in prop::collection::vec(-1e6f64..1e6, 1..200),
        p in 0.0f64..=100.0,
    ) {
        values.sort_by(f64::total_cmp);
        let rank = p / 100.0 * (values.len() - 1) as f64;
        let (lower, upper) = (rank.floor() as usize, rank.ceil() as usize);
        let expected = values[lower] + (values[upper] - values[lower]) * (rank - lower as f64);
        let got = percentile(&values, p).unwrap();
        prop_assert!((got - expected).abs() <= 1e-9 * expected.abs().max(1.0), "{} vs {}", got, expected);
        prop_assert!(got >= values[0] && got <= values[values.len() - 1]);
    }
}
