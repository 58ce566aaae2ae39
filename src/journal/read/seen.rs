//! What a noise replay reads: every journaled signal in journal order,
//! streamed, and what people were shown per hour (incidents, pages and
//! review items opened, by the times their records keep).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::{open_existing, sql};
use crate::journal::JournalError;
use crate::signal::Signal;

/// What on-call saw in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Shown {
    pub signals: u64,
    pub incidents: u64,
    pub pages: u64,
    pub reviews: u64,
}

/// The hour `t` falls in.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// Calls `each` with every journaled signal in journal order, without
/// holding them all; how many were read and how many were unreadable
/// (skipped, and said).
pub fn each_signal(dir: &Path, mut each: impl FnMut(Signal)) -> Result<(u64, u64), JournalError> {
    let (conn, path) = open_existing(dir)?;
    let mut stmt = conn
        .prepare("SELECT body FROM signals ORDER BY seq")
        .map_err(sql(&path))?;
    let mut rows = stmt.query([]).map_err(sql(&path))?;
    let (mut read, mut unreadable) = (0, 0);
    while let Some(row) = rows.next().map_err(sql(&path))? {
        let body: String = row.get(0).map_err(sql(&path))?;
        match Signal::from_json(&body, Utc::now()) {
            Ok(signal) => {
                read += 1;
                each(signal);
            }
            Err(e) => {
                unreadable += 1;
                tracing::warn!(error = %e, "a journaled signal is unreadable: left out of the replay");
            }
        }
    }
    Ok((read, unreadable))
}

/// Incidents, pages and review items opened per hour, as journaled, and
/// signals taken in per hour (by their own time).
pub fn shown_by_hour(dir: &Path) -> Result<BTreeMap<DateTime<Utc>, Shown>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let mut hours: BTreeMap<DateTime<Utc>, Shown> = BTreeMap::new();
    type Count = fn(&mut Shown);
    let queries: [(&str, Count); 4] = [
        ("SELECT time FROM signals", |s| s.signals += 1),
        (
            "SELECT json_extract(body, '$.opened') FROM incidents",
            |s| s.incidents += 1,
        ),
        ("SELECT json_extract(body, '$.opened') FROM pages", |s| {
            s.pages += 1
        }),
        ("SELECT json_extract(body, '$.created') FROM reviews", |s| {
            s.reviews += 1
        }),
    ];
    for (query, count) in queries {
        let mut stmt = conn.prepare(query).map_err(sql(&path))?;
        let mut rows = stmt.query([]).map_err(sql(&path))?;
        while let Some(row) = rows.next().map_err(sql(&path))? {
            let text: Option<String> = row.get(0).map_err(sql(&path))?;
            // A record without a readable time counts nowhere.
            let Some(at) = text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()) else {
                continue;
            };
            count(hours.entry(hour_of(at.with_timezone(&Utc))).or_default());
        }
    }
    Ok(hours)
}

/// How many journaled signals whose own time is at or after `since`
/// `matches` says yes to (a silence's preview). Unreadable ones count for
/// nothing.
pub fn count_since(
    dir: &Path,
    since: DateTime<Utc>,
    matches: impl Fn(&Signal) -> bool,
) -> Result<u64, JournalError> {
    let (conn, path) = open_existing(dir)?;
    // Times are journaled as RFC 3339 in UTC: their text sorts as they do.
    let mut stmt = conn
        .prepare("SELECT body FROM signals WHERE time >= ?1")
        .map_err(sql(&path))?;
    let mut rows = stmt.query([since.to_rfc3339()]).map_err(sql(&path))?;
    let mut n = 0;
    while let Some(row) = rows.next().map_err(sql(&path))? {
        let body: String = row.get(0).map_err(sql(&path))?;
        if Signal::from_json(&body, Utc::now()).is_ok_and(|s| matches(&s)) {
            n += 1;
        }
    }
    Ok(n)
}
