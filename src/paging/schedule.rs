//! On-call schedules: layers of people taking turns, each with a rotation
//! length, a handoff time and optional restrictions, in the schedule's time
//! zone; the last layer that covers a moment wins, and an override (a
//! person, from, to) wins over every layer. Rotations of days or weeks hand
//! off at the same local time across daylight-saving changes (a day is 23
//! or 25 hours then); rotations of hours are counted in elapsed time.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// How long each member's turn lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rotation {
    /// Elapsed hours.
    Hours(u32),
    /// Local days: the handoff stays at the same local time.
    Days(u32),
}

impl Rotation {
    /// `"12h"`, `"1d"`, `"2w"`.
    pub fn parse(text: &str) -> Option<Rotation> {
        let text = text.trim();
        let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
        let n: u32 = n.parse().ok().filter(|n| *n > 0)?;
        match unit.trim() {
            "h" | "hour" | "hours" => Some(Rotation::Hours(n)),
            "d" | "day" | "days" => Some(Rotation::Days(n)),
            "w" | "week" | "weeks" => n.checked_mul(7).map(Rotation::Days),
            _ => None,
        }
    }
}

/// When a layer covers: on these weekdays, from one local time to another
/// (an end at or before the start runs past midnight into the next day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restriction {
    /// Monday first.
    pub days: [bool; 7],
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl Restriction {
    /// `"mon-fri 09:00-17:00"`, `"sat,sun 00:00-24:00"`, `"18:00-08:00"`
    /// (every day).
    pub fn parse(text: &str) -> Option<Restriction> {
        let text = text.trim();
        let (days, hours) = match text.rsplit_once(' ') {
            Some((days, hours)) => (parse_days(days.trim())?, hours),
            None => ([true; 7], text),
        };
        let (from, to) = hours.split_once('-')?;
        Some(Restriction {
            days,
            from: parse_time(from)?,
            to: parse_time(to)?,
        })
    }

    /// Whether the restriction covers `local`.
    fn covers(&self, local: NaiveDateTime) -> bool {
        let day = local.weekday().num_days_from_monday() as usize;
        let time = local.time();
        if self.from < self.to {
            return self.days[day] && time >= self.from && time < self.to;
        }
        // Past midnight (or the whole day): the evening part belongs to the
        // day it starts on, the morning part to the day before.
        let yesterday = (day + 6) % 7;
        (self.days[day] && time >= self.from) || (self.days[yesterday] && time < self.to)
    }
}

/// `HH:MM`, with `24:00` as the end of the day.
fn parse_time(text: &str) -> Option<NaiveTime> {
    let text = text.trim();
    if text == "24:00" {
        return NaiveTime::from_hms_opt(0, 0, 0);
    }
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

/// `mon-fri`, `sat,sun`, `mon,wed-fri`.
fn parse_days(text: &str) -> Option<[bool; 7]> {
    let mut days = [false; 7];
    for part in text.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b) = (weekday(a)?, weekday(b)?);
        let mut d = a;
        loop {
            days[d] = true;
            if d == b {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Some(days)
}

fn weekday(text: &str) -> Option<usize> {
    text.trim()
        .parse::<Weekday>()
        .ok()
        .map(|d| d.num_days_from_monday() as usize)
}

/// One layer: members in turn from `start` (local), each for a rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub members: Vec<String>,
    /// When the first member's first turn begins, in the schedule's zone:
    /// its time of day is the handoff time.
    pub start: NaiveDateTime,
    pub rotation: Rotation,
    /// None: always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restrictions: Vec<Restriction>,
}

impl Layer {
    /// Whose turn it is at `at` (`local` in the schedule's zone), with the
    /// turn's index; none before the start, outside the restrictions, or
    /// with no members.
    fn member(&self, at: DateTime<Utc>, local: NaiveDateTime, tz: Tz) -> Option<(usize, &str)> {
        if self.members.is_empty() || local < self.start {
            return None;
        }
        if !self.restrictions.is_empty() && !self.restrictions.iter().any(|r| r.covers(local)) {
            return None;
        }
        let turn = self.turn(at, local, tz)?;
        let index = (turn % self.members.len() as u64) as usize;
        Some((turn as usize, self.members[index].as_str()))
    }

    /// How many whole rotations have passed since the start.
    fn turn(&self, at: DateTime<Utc>, local: NaiveDateTime, tz: Tz) -> Option<u64> {
        match self.rotation {
            Rotation::Hours(h) => {
                let start = first_instant(tz, self.start)?;
                let hours = (at - start).num_minutes().div_euclid(60);
                u64::try_from(hours.div_euclid(i64::from(h))).ok()
            }
            // Naive local time: the handoff stays at the same wall-clock
            // time whatever the offset does in between.
            Rotation::Days(d) => {
                let minutes = (local - self.start).num_minutes();
                u64::try_from(minutes.div_euclid(i64::from(d) * 24 * 60)).ok()
            }
        }
    }

    /// The next moment after `at` at which this layer's turn changes.
    fn next_handoff(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&tz).naive_local();
        match self.rotation {
            Rotation::Hours(h) => {
                let start = first_instant(tz, self.start)?;
                let step = Duration::hours(i64::from(h));
                let passed = if at < start {
                    0
                } else {
                    (at - start).num_seconds() / step.num_seconds() + 1
                };
                Some(start + step * i32::try_from(passed).ok()?)
            }
            Rotation::Days(d) => {
                let step = Duration::days(i64::from(d));
                let passed = if local < self.start {
                    0
                } else {
                    (local - self.start).num_seconds() / step.num_seconds() + 1
                };
                let next = self.start + step * i32::try_from(passed).ok()?;
                first_instant(tz, next)
            }
        }
    }
}

/// The instant a local time names: the earlier of two in a repeated hour,
/// the end of the gap for one skipped by a change to summer time.
fn first_instant(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(local + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// A person on call in place of the layers, for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub id: String,
    pub schedule: String,
    pub person: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Who set it, and when.
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A team's schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: String,
    pub team: String,
    #[serde(with = "tz_name")]
    pub timezone: Tz,
    pub layers: Vec<Layer>,
}

/// Who is on call at a moment, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnCall {
    pub schedule: String,
    pub team: String,
    /// None: a gap.
    pub person: Option<String>,
    /// `override` (with its id), `layer N` (from 1), or `gap`.
    pub by: String,
    /// The next moment the answer may change (a handoff, a restriction's
    /// edge, an override's start or end), within a week.
    pub until: Option<DateTime<Utc>>,
}

impl Schedule {
    /// Who is on call at `at`, with `overrides` (any schedule's: those of
    /// others are ignored).
    pub fn on_call(&self, at: DateTime<Utc>, overrides: &[Override]) -> OnCall {
        let (person, by) = self.who(at, overrides);
        OnCall {
            schedule: self.id.clone(),
            team: self.team.clone(),
            until: self.next_change(at, overrides, person.as_deref()),
            person,
            by,
        }
    }

    fn who(&self, at: DateTime<Utc>, overrides: &[Override]) -> (Option<String>, String) {
        let over = overrides
            .iter()
            .filter(|o| o.schedule == self.id && o.from <= at && at < o.to)
            .max_by_key(|o| o.at);
        if let Some(o) = over {
            return (Some(o.person.clone()), format!("override {}", o.id));
        }
        let local = at.with_timezone(&self.timezone).naive_local();
        for (i, layer) in self.layers.iter().enumerate().rev() {
            if let Some((_, person)) = layer.member(at, local, self.timezone) {
                return (Some(person.to_string()), format!("layer {}", i + 1));
            }
        }
        (None, "gap".into())
    }

    /// The first moment after `at` (within a week) whose answer differs
    /// from `now`'s, to the minute.
    fn next_change(
        &self,
        at: DateTime<Utc>,
        overrides: &[Override],
        now: Option<&str>,
    ) -> Option<DateTime<Utc>> {
        let mut candidates: Vec<DateTime<Utc>> = overrides
            .iter()
            .filter(|o| o.schedule == self.id)
            .flat_map(|o| [o.from, o.to])
            .chain(
                self.layers
                    .iter()
                    .filter_map(|l| l.next_handoff(at, self.timezone)),
            )
            .filter(|t| *t > at)
            .collect();
        // Restrictions' edges: every quarter of an hour of the next week is
        // a candidate (restrictions are written in minutes of the day).
        let mut t = at + Duration::minutes(15 - i64::from(at.minute_of_quarter()));
        while t < at + Duration::days(7) {
            candidates.push(t);
            t += Duration::minutes(15);
        }
        candidates.sort();
        candidates.dedup();
        candidates
            .into_iter()
            .find(|t| self.who(*t, overrides).0.as_deref() != now)
    }

    /// The stretches in `[from, from + span)` when nobody is on call, to
    /// the quarter hour.
    pub fn gaps(&self, from: DateTime<Utc>, span: Duration) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        // On the quarter hours (every zone's offset is whole quarters).
        let past = i64::from(from.minute_of_quarter()) * 60 + from.timestamp().rem_euclid(60);
        let mut t = from - Duration::seconds(past);
        while t < from + span {
            let next = t + Duration::minutes(15);
            if self.who(t, &[]).0.is_none() {
                match out.last_mut() {
                    Some(last) if last.1 == t => last.1 = next,
                    _ => out.push((t, next)),
                }
            }
            t = next;
        }
        out
    }
}

/// Minutes past the last quarter hour.
trait QuarterHour {
    fn minute_of_quarter(&self) -> u32;
}

impl QuarterHour for DateTime<Utc> {
    fn minute_of_quarter(&self) -> u32 {
        use chrono::Timelike;
        self.minute() % 15
    }
}

/// A time zone as its IANA name.
mod tz_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn local(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn schedule() -> Schedule {
        Schedule {
            id: "sre".into(),
            team: "sre".into(),
            timezone: berlin(),
            layers: vec![
                Layer {
                    members: vec!["dana".into(), "emil".into()],
                    start: local("2026-10-19 09:00"),
                    rotation: Rotation::parse("1w").unwrap(),
                    restrictions: vec![],
                },
                Layer {
                    members: vec!["fay".into()],
                    start: local("2026-10-19 09:00"),
                    rotation: Rotation::parse("1d").unwrap(),
                    restrictions: vec![Restriction::parse("mon-fri 09:00-17:00").unwrap()],
                },
            ],
        }
    }

    /// The weekly handoff stays at 09:00 Berlin across the end of summer
    /// time (25 October 2026): 07:00 UTC before, 08:00 UTC after.
    #[test]
    fn a_weekly_handoff_keeps_its_local_time_across_daylight_saving() {
        let s = schedule();
        // Sunday 25 October, 08:59 Berlin (CET, UTC+1 since 03:00): still dana.
        assert_eq!(
            s.on_call(at("2026-10-26T07:59:00Z"), &[]).person.as_deref(),
            Some("dana")
        );
        // Monday 26 October 09:00 Berlin = 08:00 UTC: emil's week.
        let monday = s.on_call(at("2026-10-26T08:00:00Z"), &[]);
        assert_eq!(
            monday.person.as_deref(),
            Some("fay"),
            "fay's weekday layer wins"
        );
        assert_eq!(
            s.on_call(at("2026-10-26T16:00:00Z"), &[]).person.as_deref(),
            Some("emil")
        );
        // The week before, 09:00 Berlin was 07:00 UTC.
        let before = s.on_call(at("2026-10-19T06:59:00Z"), &[]);
        assert_eq!(before.person, None, "before the start: a gap");
        assert_eq!(
            s.on_call(at("2026-10-24T12:00:00Z"), &[]).person.as_deref(),
            Some("dana")
        );
    }

    /// The restriction's layer wins inside its hours, the rotation outside.
    #[test]
    fn the_last_layer_that_covers_wins() {
        let s = schedule();
        // Wednesday 21 October 10:00 Berlin (CEST, UTC+2).
        let wed = s.on_call(at("2026-10-21T08:00:00Z"), &[]);
        assert_eq!(
            (wed.person.as_deref(), wed.by.as_str()),
            (Some("fay"), "layer 2")
        );
        assert_eq!(wed.until, Some(at("2026-10-21T15:00:00Z")), "17:00 Berlin");
        let evening = s.on_call(at("2026-10-21T16:00:00Z"), &[]);
        assert_eq!(
            (evening.person.as_deref(), evening.by.as_str()),
            (Some("dana"), "layer 1")
        );
    }

    /// An override wins over every layer, for its time only.
    #[test]
    fn an_override_wins_for_its_time() {
        let s = schedule();
        let o = Override {
            id: "O1".into(),
            schedule: "sre".into(),
            person: "gus".into(),
            from: at("2026-10-24T00:00:00Z"),
            to: at("2026-10-25T00:00:00Z"),
            by: "lead".into(),
            at: at("2026-10-20T00:00:00Z"),
        };
        let during = s.on_call(at("2026-10-24T12:00:00Z"), std::slice::from_ref(&o));
        assert_eq!(
            (during.person.as_deref(), during.until),
            (Some("gus"), Some(o.to))
        );
        let after = s.on_call(at("2026-10-25T00:00:00Z"), &[o]);
        assert_eq!(after.person.as_deref(), Some("dana"));
    }

    /// A night restriction runs past midnight into the next day.
    #[test]
    fn restrictions_parse_and_cross_midnight() {
        let night = Restriction::parse("fri 22:00-06:00").unwrap();
        assert!(night.covers(local("2026-10-23 23:00")), "Friday night");
        assert!(
            night.covers(local("2026-10-24 05:59")),
            "Saturday early: Friday's night"
        );
        assert!(!night.covers(local("2026-10-24 06:00")));
        assert!(
            !night.covers(local("2026-10-24 23:00")),
            "Saturday night is not Friday's"
        );
        assert!(Restriction::parse("someday 09:00-17:00").is_none());
        assert_eq!(Rotation::parse("2w"), Some(Rotation::Days(14)));
        assert_eq!(Rotation::parse("0d"), None);
    }

    /// Gaps are found to the quarter hour.
    #[test]
    fn gaps_are_where_no_layer_covers() {
        let mut s = schedule();
        s.layers.remove(0);
        // Week of 26 October: fay covers weekdays 09:00-17:00 only.
        let gaps = s.gaps(at("2026-10-26T08:00:00Z"), Duration::days(1));
        assert_eq!(
            gaps,
            vec![(at("2026-10-26T16:00:00Z"), at("2026-10-27T08:00:00Z"))]
        );
    }
}
