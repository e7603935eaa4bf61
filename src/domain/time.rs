//! Datetimes as the API reads and writes them (API.md §1).
//!
//! Read: RFC 3339 / ISO 8601 with `T` or a space, an optional fraction and an optional offset;
//! no offset means UTC; offsets are converted; anything finer than a microsecond is truncated,
//! because that is what Postgres stores. Written: UTC with `Z`, six fraction digits only when
//! the fraction is non-zero (`2025-01-15T11:00:00.250000Z`).
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SubsecRound, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::de_error;

/// An instant with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().trunc_subsecs(6))
    }

    /// Parse the forms API.md §1 allows. Dates alone are midnight UTC.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let normalised = if text.len() > 10 && text.as_bytes()[10] == b' ' {
            let mut s = text.to_string();
            s.replace_range(10..11, "T");
            s
        } else {
            text.to_string()
        };
        let parsed = if let Ok(dt) = DateTime::parse_from_rfc3339(&normalised) {
            dt.with_timezone(&Utc)
        } else if let Ok(naive) = NaiveDateTime::parse_from_str(&normalised, "%Y-%m-%dT%H:%M:%S%.f") {
            naive.and_utc()
        } else if let Ok(naive) = NaiveDateTime::parse_from_str(&normalised, "%Y-%m-%dT%H:%M") {
            naive.and_utc()
        } else if let Ok(date) = NaiveDate::parse_from_str(&normalised, "%Y-%m-%d") {
            date.and_hms_opt(0, 0, 0)?.and_utc()
        } else {
            return None;
        };
        Self(parsed.trunc_subsecs(6)).in_range()
    }

    /// Years 1 to 9999 only: ISO 8601's range, and safely inside Postgres' (which rejects
    /// some instants chrono accepts, and would answer with an error instead of a 422).
    /// Leap seconds (`23:59:60`) are refused too: Postgres has none, and would move the
    /// instant into the next minute.
    fn in_range(self) -> Option<Self> {
        let leap_second = self.0.nanosecond() >= 1_000_000_000;
        ((1..=9999).contains(&self.0.year()) && !leap_second).then_some(self)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(value: DateTime<Utc>) -> Self {
        Self(value.trunc_subsecs(6))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.nanosecond() == 0 {
            write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%SZ"))
        } else {
            write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        fn not_a_datetime<E: serde::de::Error>() -> E {
            de_error("datetime_parsing", "Input should be a valid datetime (ISO 8601, e.g. 2025-01-15T11:00:00Z)")
        }
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an ISO 8601 datetime")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).ok_or_else(not_a_datetime)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timestamp, E> {
                DateTime::from_timestamp(v, 0).and_then(|t| Timestamp(t).in_range()).ok_or_else(|| {
                    de_error("datetime_parsing", "Input should be a valid datetime, the number is out of range")
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map_err(|_| {
                        de_error("datetime_parsing", "Input should be a valid datetime, the number is out of range")
                    })
                    .and_then(|v| self.visit_i64(v))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Timestamp, E> {
                Err(not_a_datetime())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Timestamp, E> {
                Err(not_a_datetime())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Timestamp, A::Error> {
                Err(not_a_datetime())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Timestamp, A::Error> {
                Err(not_a_datetime())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Timestamp, E> {
                let micros = (v * 1_000_000.0).trunc();
                if !micros.is_finite() || micros.abs() > 8.0e15 * 1_000.0 {
                    return Err(de_error(
                        "datetime_parsing",
                        "Input should be a valid datetime, the number is out of range",
                    ));
                }
                DateTime::from_timestamp_micros(micros as i64).and_then(|t| Timestamp(t).in_range()).ok_or_else(|| {
                    de_error("datetime_parsing", "Input should be a valid datetime, the number is out of range")
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Timestamp::parse(s).expect(s).to_string()
    }

    #[test]
    fn offsets_are_converted_to_utc_and_offsetless_values_are_utc() {
        assert_eq!(p("2025-01-15T16:30:00+05:30"), "2025-01-15T11:00:00Z");
        assert_eq!(p("2025-01-15T11:00:00"), "2025-01-15T11:00:00Z");
        assert_eq!(p("2025-01-15 11:00:00Z"), "2025-01-15T11:00:00Z");
    }

    #[test]
    fn fractions_print_six_digits_only_when_non_zero_and_truncate_below_a_microsecond() {
        assert_eq!(p("2025-01-15T11:00:00.25Z"), "2025-01-15T11:00:00.250000Z");
        assert_eq!(p("2025-01-15T11:00:00.000000Z"), "2025-01-15T11:00:00Z");
        assert_eq!(p("2025-01-15T11:00:00.1234569Z"), "2025-01-15T11:00:00.123456Z");
    }

    #[test]
    fn leap_seconds_are_refused() {
        assert!(Timestamp::parse("2016-12-31T23:59:60Z").is_none());
        assert!(Timestamp::parse("2016-12-31T23:59:60.5+00:00").is_none());
        assert!(Timestamp::parse("2016-12-31T23:59:59.999999Z").is_some());
    }

    #[test]
    fn years_outside_one_to_9999_are_refused() {
        assert!(Timestamp::parse("0001-01-01T00:00:00Z").is_some());
        assert!(Timestamp::parse("9999-12-31T23:59:59.999999Z").is_some());
        assert!(Timestamp::parse("0000-12-31T23:59:59Z").is_none());
        let far_past: Result<Timestamp, _> = serde_json::from_str("-8000000000000");
        assert!(far_past.is_err());
    }

    #[test]
    fn garbage_is_not_a_datetime() {
        assert!(Timestamp::parse("yesterday").is_none());
        assert!(Timestamp::parse("2025-13-01T00:00:00Z").is_none());
    }
}
