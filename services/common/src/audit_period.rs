//! `[DEFAULT] instance_usage_audit_period`: the usage audit's periods
//! (nova's `utils.last_completed_audit_period` and
//! `notifications.audit_period_bounds`).
//!
//! A period is an `hour`, `day`, `month` (the default) or `year`,
//! optionally shifted by `@N`: `hour@N` starts at minute N, `day@N` at
//! N:00 UTC, `month@N` on the Nth, `year@N` on the first of month N.
//! Times are naive UTC, as nova's.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};

use crate::conf::{Conf, ConfError};

/// A period's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// An hour.
    Hour,
    /// A day.
    Day,
    /// A month (nova's default).
    Month,
    /// A year.
    Year,
}

/// `[DEFAULT] instance_usage_audit_period`: a unit and its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPeriod {
    /// The unit.
    pub unit: Unit,
    /// The `@N` offset (0: none).
    pub offset: u32,
}

impl Default for AuditPeriod {
    fn default() -> Self {
        AuditPeriod {
            unit: Unit::Month,
            offset: 0,
        }
    }
}

impl FromStr for AuditPeriod {
    type Err = String;

    /// nova's `^(hour|month|day|year)(@([0-9]+))?$`; an offset that cannot
    /// name a minute, an hour, a day of the month or a month is refused
    /// here (nova would fail every audit with it).
    fn from_str(s: &str) -> Result<Self, String> {
        let (unit, offset) = match s.split_once('@') {
            Some((u, o)) if !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()) => {
                (u, o.parse::<u32>().map_err(|e| e.to_string())?)
            }
            Some(_) => return Err("an offset after @ must be a number".into()),
            None => (s, 0),
        };
        let (unit, max) = match unit {
            "hour" => (Unit::Hour, 59),
            "day" => (Unit::Day, 23),
            "month" => (Unit::Month, 31),
            "year" => (Unit::Year, 12),
            _ => return Err("expected hour, day, month or year, with an optional @N".into()),
        };
        if offset > max {
            return Err(format!("the offset of {s} is above {max}"));
        }
        Ok(AuditPeriod { unit, offset })
    }
}

impl fmt::Display for AuditPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = match self.unit {
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Month => "month",
            Unit::Year => "year",
        };
        if self.offset == 0 {
            f.write_str(u)
        } else {
            write!(f, "{u}@{}", self.offset)
        }
    }
}

fn ymd(year: i32, month: u32, day: u32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(0, 0, 0)
}

/// The month before `(year, month)`.
fn prev_month(year: i32, month: u32) -> (i32, u32) {
    if month <= 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

impl AuditPeriod {
    /// `[DEFAULT] instance_usage_audit_period` (default `month`).
    pub fn from_conf(conf: &Conf) -> Result<Self, ConfError> {
        match conf
            .get("DEFAULT", "instance_usage_audit_period")
            .filter(|v| !v.is_empty())
        {
            None => Ok(Self::default()),
            Some(v) => v.parse().map_err(|e| {
                ConfError(format!(
                    "invalid value '{v}' for [DEFAULT] instance_usage_audit_period: {e}"
                ))
            }),
        }
    }

    /// The period most recently completed before `before` (nova's
    /// `last_completed_audit_period(before=...)`): `(begin, end)`, the end
    /// of one period being the beginning of the next. `None` when a
    /// `month@N` offset names a day the month lacks (nova fails there too).
    pub fn last_completed(&self, before: NaiveDateTime) -> Option<(NaiveDateTime, NaiveDateTime)> {
        let now = before;
        match self.unit {
            Unit::Month => {
                let day = self.offset.max(1);
                let mut end = ymd(now.year(), now.month(), day)?;
                if end >= now {
                    let (y, m) = prev_month(now.year(), now.month());
                    end = ymd(y, m, day)?;
                }
                let (y, m) = prev_month(end.year(), end.month());
                Some((ymd(y, m, day)?, end))
            }
            Unit::Year => {
                let month = self.offset.max(1);
                let end = ymd(now.year(), month, 1)?;
                if end >= now {
                    Some((
                        ymd(now.year() - 2, month, 1)?,
                        ymd(now.year() - 1, month, 1)?,
                    ))
                } else {
                    Some((ymd(now.year() - 1, month, 1)?, end))
                }
            }
            Unit::Day => {
                let mut end = now.date().and_hms_opt(self.offset, 0, 0)?;
                if end >= now {
                    end -= Duration::days(1);
                }
                Some((end - Duration::days(1), end))
            }
            Unit::Hour => {
                let mut end = now
                    .with_minute(self.offset)?
                    .with_second(0)?
                    .with_nanosecond(0)?;
                if end >= now {
                    end -= Duration::hours(1);
                }
                Some((end - Duration::hours(1), end))
            }
        }
    }

    /// The current period so far: from the end of the last completed one
    /// to `now` (nova's `audit_period_bounds(current_period=True)`).
    pub fn current(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let begin = self
            .last_completed(now.naive_utc())
            .map_or(now, |(_, end)| end.and_utc());
        (begin, now)
    }
}

/// Python's `str()` of a naive datetime: microseconds only when there are
/// some (`2026-11-01 00:00:00`, `2026-12-06 14:03:05.123456`).
pub fn py_str(t: &NaiveDateTime) -> String {
    if t.nanosecond() / 1000 == 0 {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap_or_default()
    }

    fn period(p: &str, before: &str) -> (String, String) {
        let p: AuditPeriod = p.parse().unwrap_or_default();
        let (b, e) = p.last_completed(at(before)).unwrap_or_default();
        (py_str(&b), py_str(&e))
    }

    fn pair(b: &str, e: &str) -> (String, String) {
        (b.to_owned(), e.to_owned())
    }

    // The cases of nova's tests/unit/test_utils.py AuditPeriodTest
    // (before = 2012-03-05 08:42:23.000007 there).
    #[test]
    fn periods_are_novas() {
        let now = "2012-03-05 08:42:23.000007";
        assert_eq!(
            period("hour", now),
            pair("2012-03-05 07:00:00", "2012-03-05 08:00:00")
        );
        assert_eq!(
            period("hour@10", now),
            pair("2012-03-05 07:10:00", "2012-03-05 08:10:00")
        );
        assert_eq!(
            period("hour@59", now),
            pair("2012-03-05 06:59:00", "2012-03-05 07:59:00")
        );
        assert_eq!(
            period("day", now),
            pair("2012-03-04 00:00:00", "2012-03-05 00:00:00")
        );
        assert_eq!(
            period("day@6", now),
            pair("2012-03-04 06:00:00", "2012-03-05 06:00:00")
        );
        assert_eq!(
            period("day@10", now),
            pair("2012-03-03 10:00:00", "2012-03-04 10:00:00")
        );
        assert_eq!(
            period("month", now),
            pair("2012-02-01 00:00:00", "2012-03-01 00:00:00")
        );
        assert_eq!(
            period("month@2", now),
            pair("2012-02-02 00:00:00", "2012-03-02 00:00:00")
        );
        assert_eq!(
            period("month@15", now),
            pair("2012-01-15 00:00:00", "2012-02-15 00:00:00")
        );
        assert_eq!(
            period("year", now),
            pair("2011-01-01 00:00:00", "2012-01-01 00:00:00")
        );
        assert_eq!(
            period("year@2", now),
            pair("2011-02-01 00:00:00", "2012-02-01 00:00:00")
        );
        assert_eq!(
            period("year@6", now),
            pair("2010-06-01 00:00:00", "2011-06-01 00:00:00")
        );
        // A period ending exactly now is not completed yet.
        assert_eq!(
            period("month", "2026-01-01 00:00:00"),
            pair("2025-11-01 00:00:00", "2025-12-01 00:00:00")
        );
        assert_eq!(
            period("month", "2026-01-15 00:00:00"),
            pair("2025-12-01 00:00:00", "2026-01-01 00:00:00")
        );
    }

    #[test]
    fn bad_periods_are_refused() {
        for bad in [
            "week", "month@", "month@x", "hour@60", "day@24", "year@13", "month@32",
        ] {
            assert!(bad.parse::<AuditPeriod>().is_err(), "{bad}");
        }
        assert_eq!(
            "month@15".parse::<AuditPeriod>().map(|p| p.to_string()),
            Ok("month@15".to_owned())
        );
        // 31st of a month without one: no period, as nova fails.
        let p: AuditPeriod = "month@31".parse().unwrap_or_default();
        assert!(p.last_completed(at("2026-03-05 00:00:00")).is_none());
    }

    #[test]
    fn the_current_period_starts_where_the_last_ended() {
        let now = at("2012-10-29 13:42:11").and_utc();
        let (b, e) = AuditPeriod::default().current(now);
        assert_eq!(py_str(&b.naive_utc()), "2012-10-01 00:00:00");
        assert_eq!(e, now);
    }
}
