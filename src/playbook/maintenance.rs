//! Maintenance windows (`[[maintenance]]` in playbook.toml): recurring
//! time intervals, in Alertmanager's `time_intervals` shape, during which
//! signals that match the window's matchers are recorded and page nobody.
//!
//! ```toml
//! [[maintenance]]
//! name = "database-nightly"
//! matchers = ['service="database"']
//! [[maintenance.interval]]
//! times = [{ start = "23:00", end = "24:00" }, { start = "00:00", end = "02:00" }]
//! weekdays = ["monday:friday"]
//! location = "Europe/Berlin"
//! ```
//!
//! An interval holds a moment when every field it gives holds it (`times`,
//! `weekdays`, `days_of_month` (negative from the month's end), `months`,
//! `years`; each a list of values or `a:b` ranges), in its `location`
//! (UTC by default). A range of times does not cross midnight: two ranges
//! do, as in Alertmanager.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc};
use serde::Deserialize;

use crate::signal::labels::{Matcher, parse_matcher};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub name: String,
    /// Matchers as written: `service="database"`, `team=~"sre|dba"`.
    pub matchers: Vec<String>,
    #[serde(rename = "interval")]
    pub intervals: Vec<Interval>,
    #[serde(skip)]
    compiled: Vec<Matcher>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    #[serde(default)]
    pub times: Vec<TimeRange>,
    #[serde(default)]
    pub weekdays: Vec<String>,
    #[serde(default)]
    pub days_of_month: Vec<String>,
    #[serde(default)]
    pub months: Vec<String>,
    #[serde(default)]
    pub years: Vec<String>,
    /// An IANA time zone (default UTC).
    #[serde(default)]
    pub location: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// `HH:MM`, from 00:00.
    pub start: String,
    /// `HH:MM`, up to 24:00; after `start`.
    pub end: String,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl Window {
    /// Reads its matchers and checks its intervals; why it cannot be used.
    pub fn compile(&mut self) -> Result<(), String> {
        if self.matchers.is_empty() {
            return Err("names no matcher: it would hold every signal".into());
        }
        self.compiled = self
            .matchers
            .iter()
            .map(|w| {
                let m = parse_matcher(w)
                    .ok_or_else(|| format!("matcher {w:?} is not like name=\"value\""))?;
                m.check()?;
                Ok(m)
            })
            .collect::<Result<_, String>>()?;
        if self.intervals.is_empty() {
            return Err("has no [[maintenance.interval]]".into());
        }
        for i in &self.intervals {
            i.check()?;
        }
        Ok(())
    }

    /// Whether it holds a signal of these labels at `at`.
    pub fn holds(&self, labels: &BTreeMap<String, String>, at: DateTime<Utc>) -> bool {
        self.compiled.iter().all(|m| m.matches(labels))
            && self.intervals.iter().any(|i| i.contains(at))
    }
}

impl Interval {
    fn check(&self) -> Result<(), String> {
        if let Some(zone) = &self.location {
            zone.parse::<chrono_tz::Tz>()
                .map_err(|_| format!("location {zone:?} is not an IANA time zone"))?;
        }
        for t in &self.times {
            let (start, end) = (minutes(&t.start), minutes(&t.end));
            match (start, end) {
                (Some(s), Some(e)) if s < e => {}
                _ => {
                    return Err(format!(
                        "times {}–{}: write HH:MM from 00:00 to 24:00, the end after the start (two ranges cross midnight)",
                        t.start, t.end
                    ));
                }
            }
        }
        let named = |v: &str, names: &[&str]| names.iter().position(|n| *n == v).map(|i| i as i64);
        for w in &self.weekdays {
            ranges(w, |v| named(v, &WEEKDAYS)).ok_or(format!("weekday {w:?}"))?;
        }
        for m in &self.months {
            ranges(m, |v| {
                named(v, &MONTHS).map(|i| i + 1).or_else(|| v.parse().ok())
            })
            .ok_or(format!("month {m:?}"))?;
        }
        for d in &self.days_of_month {
            ranges(d, |v| {
                v.parse().ok().filter(|n: &i64| *n != 0 && n.abs() <= 31)
            })
            .ok_or(format!("day of month {d:?}"))?;
        }
        for y in &self.years {
            ranges(y, |v| v.parse().ok()).ok_or(format!("year {y:?}"))?;
        }
        Ok(())
    }

    /// Whether `at` falls in it.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let zone: chrono_tz::Tz = self
            .location
            .as_deref()
            .and_then(|z| z.parse().ok())
            .unwrap_or(chrono_tz::UTC);
        let local = at.with_timezone(&zone);
        let minute = i64::from(local.hour() * 60 + local.minute());
        let times = self.times.is_empty()
            || self.times.iter().any(|t| {
                matches!((minutes(&t.start), minutes(&t.end)), (Some(s), Some(e)) if s <= minute && minute < e)
            });
        let named = |v: &str, names: &[&str]| names.iter().position(|n| *n == v).map(|i| i as i64);
        let weekday = i64::from(local.weekday().num_days_from_sunday());
        let weekdays = self.weekdays.is_empty()
            || self
                .weekdays
                .iter()
                .any(|w| within(w, weekday, |v| named(v, &WEEKDAYS)));
        let month = i64::from(local.month());
        let months = self.months.is_empty()
            || self.months.iter().any(|m| {
                within(m, month, |v| {
                    named(v, &MONTHS).map(|i| i + 1).or_else(|| v.parse().ok())
                })
            });
        let day = i64::from(local.day());
        let last = days_in_month(local.year(), local.month());
        let days = self.days_of_month.is_empty()
            || self.days_of_month.iter().any(|d| {
                within(d, day, |v| {
                    v.parse::<i64>()
                        .ok()
                        .map(|n| if n < 0 { last + 1 + n } else { n })
                })
            });
        let year = i64::from(local.year());
        let years = self.years.is_empty()
            || self
                .years
                .iter()
                .any(|y| within(y, year, |v| v.parse().ok()));
        times && weekdays && months && days && years
    }
}

/// `HH:MM` as minutes of the day, 24:00 included.
fn minutes(text: &str) -> Option<i64> {
    if text == "24:00" {
        return Some(24 * 60);
    }
    let t = NaiveTime::parse_from_str(text, "%H:%M").ok()?;
    Some(i64::from(t.hour() * 60 + t.minute()))
}

/// A value or an `a:b` range, each end read by `read`.
fn ranges(text: &str, read: impl Fn(&str) -> Option<i64>) -> Option<(i64, i64)> {
    let text = text.trim().to_lowercase();
    match text.split_once(':') {
        Some((a, b)) => Some((read(a.trim())?, read(b.trim())?)),
        None => {
            let v = read(&text)?;
            Some((v, v))
        }
    }
}

fn within(text: &str, value: i64, read: impl Fn(&str) -> Option<i64>) -> bool {
    ranges(text, read).is_some_and(|(a, b)| a <= value && value <= b)
}

fn days_in_month(year: i32, month: u32) -> i64 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| i64::from(d.day()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn window() -> Window {
        let mut w: Window = toml::from_str(
            r#"
name = "database-nightly"
matchers = ['service="database"']
[[interval]]
times = [{ start = "23:00", end = "24:00" }, { start = "00:00", end = "02:00" }]
weekdays = ["monday:friday"]
location = "Europe/Berlin"
"#,
        )
        .unwrap();
        w.compile().unwrap();
        w
    }

    fn db() -> BTreeMap<String, String> {
        [("service".to_string(), "database".to_string())].into()
    }

    /// 23:00–02:00 Berlin time on weekdays: across midnight, in winter
    /// (UTC+1) and in summer (UTC+2).
    #[test]
    fn a_window_across_midnight_in_berlin() {
        let w = window();
        let utc = |y, mo, d, h, mi| Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
        // Tuesday 2027-01-12: 23:30 Berlin is 22:30 UTC.
        assert!(w.holds(&db(), utc(2027, 1, 12, 22, 30)));
        assert!(!w.holds(&db(), utc(2027, 1, 12, 21, 30)), "22:30 Berlin");
        // Wednesday 01:30 Berlin is Wednesday 00:30 UTC.
        assert!(w.holds(&db(), utc(2027, 1, 13, 0, 30)));
        assert!(!w.holds(&db(), utc(2027, 1, 13, 1, 30)), "02:30 Berlin");
        // Summer: 23:30 Berlin on Tuesday 2027-07-13 is 21:30 UTC.
        assert!(w.holds(&db(), utc(2027, 7, 13, 21, 30)));
        // Saturday 2027-01-16 23:30 Berlin: not a weekday.
        assert!(!w.holds(&db(), utc(2027, 1, 16, 22, 30)));
        let web = [("service".to_string(), "web".to_string())].into();
        assert!(!w.holds(&web, utc(2027, 1, 12, 22, 30)));
    }

    #[test]
    fn bad_windows_are_refused() {
        let bad = |interval: &str| {
            let mut w: Window = toml::from_str(&format!(
                "name = \"x\"\nmatchers = ['a=\"b\"']\n[[interval]]\n{interval}\n"
            ))
            .unwrap();
            w.compile()
        };
        assert!(bad("times = [{ start = \"23:00\", end = \"02:00\" }]").is_err());
        assert!(bad("weekdays = [\"funday\"]").is_err());
        assert!(bad("location = \"Mars/Base\"").is_err());
        assert!(bad("days_of_month = [\"-1\", \"1:5\"]").is_ok());
        assert!(bad("months = [\"january:march\", \"12\"]").is_ok());
    }
}
