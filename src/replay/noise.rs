//! Noise replay: a candidate noise configuration (a playbook's `group`,
//! `hold`, `[[inhibit]]` and `[[maintenance]]`) run over a journal's
//! signals, to see what on-call would have been shown, hour by hour,
//! against what they were shown.
//!
//! The candidate is a real engine on a scratch journal, under the
//! deployment's organization, policies and steps with the candidate
//! playbook; it takes the journal's signals in journal order on a clock
//! made of their own times (never going back), ticking its timers (group
//! waits, hold-offs, review windows) as the clock moves. It acts on
//! nothing: nothing is sent, and no person answers, so its review items
//! wait until their windows close (the review budget bounds them as it
//! would). Its model starts fresh: where the live model had learned to
//! decide otherwise, the candidate decides by the rules.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::engine::{Engine, EngineError, EngineEvent};
use crate::journal::read::seen::{Shown, each_signal, hour_of, shown_by_hour};

/// How often the scratch journal is flushed (memory stays bounded).
const FLUSH_EVERY: u64 = 2_000;

/// One hour: what was shown, and what the candidate would have shown.
#[derive(Debug, Clone, Serialize)]
pub struct Hour {
    pub hour: DateTime<Utc>,
    pub seen: Shown,
    pub candidate: Shown,
}

#[derive(Debug, Clone, Serialize)]
pub struct NoiseReport {
    pub signals: u64,
    pub unreadable: u64,
    pub hours: Vec<Hour>,
    /// Signals the candidate held, by what held them.
    pub held: Vec<(String, u64)>,
}

/// Counts what one step of the candidate showed at `at`.
struct Counter {
    hours: BTreeMap<DateTime<Utc>, Shown>,
    incidents: u64,
    pages: crate::FastSet<String>,
}

impl Counter {
    fn count(&mut self, engine: &mut Engine, at: DateTime<Utc>) {
        let shown = self.hours.entry(hour_of(at)).or_default();
        let opened = engine.incidents_opened();
        shown.incidents += opened.saturating_sub(self.incidents);
        self.incidents = opened;
        for send in engine.take_sends() {
            if self.pages.insert(send.page_id) {
                shown.pages += 1;
            }
        }
        for event in engine.take_events() {
            match event {
                EngineEvent::ReviewOpened(_) => shown.reviews += 1,
                EngineEvent::Signal {
                    duplicate: false, ..
                } => shown.signals += 1,
                _ => {}
            }
        }
    }
}

/// Runs the journal in `dir` through `engine` (the candidate, opened on a
/// scratch journal) and sets what it shows beside what the journal shows.
pub fn replay_noise(dir: &Path, mut engine: Engine) -> Result<NoiseReport, EngineError> {
    let seen = shown_by_hour(dir)?;
    let mut counter = Counter {
        hours: BTreeMap::new(),
        incidents: engine.incidents_opened(),
        pages: Default::default(),
    };
    let mut clock: Option<DateTime<Utc>> = None;
    let mut failed: Option<EngineError> = None;
    let mut taken = 0u64;
    let (signals, unreadable) = each_signal(dir, |signal| {
        let at = clock.map_or(signal.time, |c| c.max(signal.time));
        clock = Some(at);
        engine.tick(at);
        engine.ingest(signal, at);
        counter.count(&mut engine, at);
        taken += 1;
        if taken.is_multiple_of(FLUSH_EVERY) && failed.is_none() {
            failed = flush(&mut engine).err();
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    // Past the last signal: hold-offs and group waits run out.
    if let Some(last) = clock {
        let after = last + Duration::minutes(15);
        engine.tick(after);
        counter.count(&mut engine, last);
    }
    flush(&mut engine)?;
    let mut hours: BTreeMap<DateTime<Utc>, Hour> = BTreeMap::new();
    let blank = |hour| Hour {
        hour,
        seen: Shown::default(),
        candidate: Shown::default(),
    };
    for (hour, s) in seen {
        hours.entry(hour).or_insert_with(|| blank(hour)).seen = s;
    }
    for (hour, c) in counter.hours {
        hours.entry(hour).or_insert_with(|| blank(hour)).candidate = c;
    }
    Ok(NoiseReport {
        signals,
        unreadable,
        hours: hours.into_values().collect(),
        held: engine.held_counts(),
    })
}

fn flush(engine: &mut Engine) -> Result<(), EngineError> {
    engine.flush()?.wait()?;
    Ok(())
}

/// The report as a table: per hour, signals, then incidents, pages and
/// review items as seen → as the candidate would have shown them.
pub fn render(report: &NoiseReport, candidate: &str) -> String {
    let mut out = format!(
        "noise replay of {} signals ({} unreadable, left out) with {candidate}\n",
        report.signals, report.unreadable
    );
    out.push_str(&format!(
        "{:<17} {:>8}  {:>16}  {:>16}  {:>16}\n",
        "hour (UTC)", "signals", "incidents", "pages", "review items"
    ));
    let arrow = |a: u64, b: u64| format!("{a} → {b}");
    let mut total = (Shown::default(), Shown::default());
    for h in &report.hours {
        out.push_str(&format!(
            "{:<17} {:>8}  {:>16}  {:>16}  {:>16}\n",
            h.hour.format("%Y-%m-%d %H:00"),
            h.seen.signals.max(h.candidate.signals),
            arrow(h.seen.incidents, h.candidate.incidents),
            arrow(h.seen.pages, h.candidate.pages),
            arrow(h.seen.reviews, h.candidate.reviews),
        ));
        for (sum, add) in [(&mut total.0, &h.seen), (&mut total.1, &h.candidate)] {
            sum.signals += add.signals;
            sum.incidents += add.incidents;
            sum.pages += add.pages;
            sum.reviews += add.reviews;
        }
    }
    out.push_str(&format!(
        "{:<17} {:>8}  {:>16}  {:>16}  {:>16}\n",
        "total",
        total.0.signals.max(total.1.signals),
        arrow(total.0.incidents, total.1.incidents),
        arrow(total.0.pages, total.1.pages),
        arrow(total.0.reviews, total.1.reviews),
    ));
    let held: Vec<String> = report
        .held
        .iter()
        .map(|(why, n)| format!("{why} {n}"))
        .collect();
    out.push_str(&format!(
        "held by the candidate: {}\n",
        if held.is_empty() {
            "nothing".to_string()
        } else {
            held.join(" · ")
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{alert, starter, starter_playbook};

    /// Ten alerts on ten services were ten incidents; a candidate grouping
    /// by source would have shown one, holding nine as grouped.
    #[test]
    fn a_candidate_grouping_shows_one_incident_where_ten_were_seen() {
        let live_dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now() - Duration::hours(3);
        let mut live = starter(live_dir.path(), t0);
        for n in 0..10 {
            let at = t0 + Duration::seconds(n);
            let a = alert(
                &format!("a{n}"),
                "alert.firing",
                &format!("f{n}"),
                &format!("s{n}"),
                at,
            );
            live.ingest(a, at);
        }
        flush(&mut live).unwrap();
        drop(live);
        let scratch = tempfile::tempdir().unwrap();
        let candidate = starter_playbook(scratch.path(), t0, |text| {
            text.replace(
                "group = { by = [\"subject\"] }",
                "group = { by = [\"source\"] }",
            )
        });
        let report = replay_noise(&live_dir.path().join("data"), candidate).unwrap();
        assert_eq!((report.signals, report.unreadable), (10, 0));
        let total = |f: fn(&Hour) -> (u64, u64)| {
            report
                .hours
                .iter()
                .map(f)
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        };
        assert_eq!(
            total(|h| (h.seen.incidents, h.candidate.incidents)),
            (10, 1)
        );
        assert_eq!(total(|h| (h.seen.signals, h.candidate.signals)), (10, 10));
        assert!(
            report.held.contains(&("grouped".to_string(), 9)),
            "{:?}",
            report.held
        );
        let text = render(&report, "by source");
        assert!(text.contains("10 → 1"), "{text}");
        assert!(text.contains("held by the candidate: grouped 9"), "{text}");
    }
}
