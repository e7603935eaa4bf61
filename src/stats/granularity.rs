//! Bucket size (API.md §4.3).
use chrono::TimeDelta;

/// Most buckets one response may hold.
pub const MAX_BUCKETS: i64 = 10_000;

/// The granularity in seconds for a window of `range`: `requested` or the auto choice, then
/// raised until the window holds at most [`MAX_BUCKETS`] buckets.
pub fn choose(range: TimeDelta, requested: Option<i64>) -> i64 {
    let g = requested.unwrap_or_else(|| auto(range));
    cap(range, g)
}

fn auto(range: TimeDelta) -> i64 {
    let hours = |h: i64| TimeDelta::hours(h);
    if range <= hours(2) {
        300
    } else if range <= hours(12) {
        3600
    } else if range <= hours(72) {
        21_600
    } else if range <= hours(14 * 24) {
        43_200
    } else {
        86_400
    }
}

fn cap(range: TimeDelta, g: i64) -> i64 {
    let micros = i128::from(range.num_microseconds().unwrap_or(i64::MAX));
    let limit = i128::from(MAX_BUCKETS) * i128::from(g) * 1_000_000;
    if micros > limit {
        let floor_range_over_cap = micros / (i128::from(MAX_BUCKETS) * 1_000_000);
        g.max(i64::try_from(floor_range_over_cap).unwrap_or(i64::MAX - 1) + 1)
    } else {
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_granularity_follows_the_range_thresholds() {
        assert_eq!(choose(TimeDelta::minutes(90), None), 300);
        assert_eq!(choose(TimeDelta::hours(2), None), 300);
        assert_eq!(choose(TimeDelta::hours(6), None), 3600);
        assert_eq!(choose(TimeDelta::days(2), None), 21_600);
        assert_eq!(choose(TimeDelta::days(7), None), 43_200);
        assert_eq!(choose(TimeDelta::days(31), None), 86_400);
        assert_eq!(choose(TimeDelta::zero(), None), 300);
    }

    #[test]
    fn the_cap_raises_granularity_to_at_most_ten_thousand_buckets() {
        assert_eq!(choose(TimeDelta::days(31), Some(60)), 268);
        assert_eq!(choose(TimeDelta::days(1), Some(1)), 9);
        assert_eq!(choose(TimeDelta::seconds(10_000), Some(1)), 1);
        assert_eq!(choose(TimeDelta::seconds(10_001), Some(1)), 2);
        assert_eq!(choose(TimeDelta::days(31), Some(86_400 * 40)), 86_400 * 40);
    }
}
