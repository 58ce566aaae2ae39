//! Hold-offs wired into the engine (`playbook::hold`, `noise::holdoff`).
//! A firing alert of a type with a transient hold-off is paused, with no
//! decision yet: if it resolves within the hold-off it is recorded as
//! transient and never pages; otherwise it is decided when the hold-off
//! ends, saying it waited. Each firing and resolution of an alert counts
//! as a state change; enough within the window make it flapping, and its
//! firings are recorded as held until it has been stable for a while,
//! when the last firing (if it still fires) is decided.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Engine;
use super::incidents::Held;
use crate::playbook::hold::HoldOff;
use crate::signal::Signal;

impl Engine {
    /// The hold-off of firing alerts (`hold` on `alert.firing`).
    fn alert_hold(&self) -> Option<HoldOff> {
        self.decider.playbook.play("alert.firing")?.hold.clone()
    }

    /// Counts a firing's or resolution's state change; tells the
    /// receivers of `flapping` when an alert starts to flap. A resolution
    /// of a paused alert records the paused firing as transient.
    pub(super) fn hold_off_change(&mut self, signal: &Signal, now: DateTime<Utc>) {
        let firing = match signal.kind.as_str() {
            "alert.firing" => true,
            "alert.resolved" => false,
            _ => return,
        };
        let Some(fingerprint) = signal.data_str("fingerprint") else {
            return;
        };
        let Some(hold) = self.alert_hold() else {
            return;
        };
        if !firing && let Some(paused) = self.alerts.hold.paused.remove(fingerprint) {
            let held = Held::Transient {
                fired: paused.since,
                after: now - paused.since,
                hold: paused.until - paused.since,
            };
            self.decide_taken(paused.signal, Some(held), None, now);
        }
        let Some(flap) = &hold.flap else {
            return;
        };
        if self.alerts.hold.change(fingerprint, firing, flap, now) {
            let notice = super::notices::Notice {
                event: "flapping",
                text: format!(
                    "alert {fingerprint} ({}) changed state {} times within {}: held as flapping, \
                     recorded and not paged, until it is stable for {}",
                    signal.subject,
                    flap.changes,
                    minutes(flap.within),
                    minutes(flap.stable()),
                ),
                reference: fingerprint.to_string(),
                subject: signal.subject.clone(),
                time: now,
            };
            self.notice(notice);
        }
    }

    /// A firing alert that would be decided now but whose type holds it
    /// off as a possible transient: paused, with no decision yet.
    pub(super) fn pause(&mut self, signal: &Arc<Signal>, now: DateTime<Utc>) -> bool {
        if signal.kind != "alert.firing" {
            return false;
        }
        let (Some(fingerprint), Some(hold)) = (
            signal.data_str("fingerprint"),
            self.alert_hold().and_then(|h| h.transient),
        ) else {
            return false;
        };
        self.alerts
            .hold
            .pause(fingerprint, Arc::clone(signal), hold, now);
        tracing::debug!(signal = %signal.id, fingerprint, "paused as a possible transient");
        true
    }

    /// A firing alert repeated while it is paused.
    pub(super) fn paused_repeat(&self, signal: &Signal) -> Option<Held> {
        if signal.kind != "alert.firing" {
            return None;
        }
        let p = self
            .alerts
            .hold
            .paused
            .get(signal.data_str("fingerprint")?)?;
        Some(Held::Paused { until: p.until })
    }

    /// A firing of an alert that flaps: held, and kept to be decided once
    /// it is stable.
    pub(super) fn flapping(&mut self, signal: &Signal) -> Option<Held> {
        if signal.kind != "alert.firing" {
            return None;
        }
        let fingerprint = signal.data_str("fingerprint")?;
        let flap = self.alerts.hold.flapping(fingerprint)?;
        let held = Held::Flapping {
            since: flap.flapping_since?,
            changes: flap.flapped,
        };
        self.alerts.hold.hold(fingerprint, signal);
        Some(held)
    }

    /// Paused alerts whose hold-off is over are decided; flaps that have
    /// been stable long enough end, and the firing each held back (if it
    /// still fires) is decided.
    pub(super) fn tick_holds(&mut self, now: DateTime<Utc>) {
        if self.alerts.hold.paused.is_empty() && self.alerts.hold.alerts.is_empty() {
            return;
        }
        for paused in self.alerts.hold.due(now) {
            let note = format!(
                "held {} as a possible transient (fired {}): still firing, decided now",
                minutes(paused.until - paused.since),
                paused.since.format("%H:%M:%S")
            );
            self.release_held(paused.signal, note, now);
        }
        let flap = self.alert_hold().and_then(|h| h.flap);
        for settled in self.alerts.hold.settle(now, flap.as_ref()) {
            tracing::info!(fingerprint = %settled.fingerprint, changes = settled.changes, "flap over");
            let Some(firing) = settled.firing else {
                continue;
            };
            let note = format!(
                "flapped from {} ({} state changes), stable firing since: decided now",
                settled.since.format("%H:%M:%S"),
                settled.changes
            );
            self.release_held(Arc::new(firing), note, now);
        }
    }

    /// Decides a signal held off until now, guarded like any signal.
    fn release_held(&mut self, signal: Arc<Signal>, note: String, now: DateTime<Utc>) {
        let decided = Arc::clone(&signal);
        let _ = self.guarded(&signal, now, move |engine| {
            Ok(engine.decide_taken(decided, None, Some(note), now))
        });
    }

    /// Alerts held off now: paused, and flapping.
    pub fn held_off_now(&self) -> (usize, usize) {
        (
            self.alerts.hold.paused.len(),
            self.alerts.hold.flapping_count(),
        )
    }
}

/// A duration as people say it: "90s", "2m", "1h 30m".
fn minutes(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    match s {
        s if s < 120 && s % 60 != 0 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use crate::engine::{Engine, Ingested};
    use crate::journal::Record;
    use crate::testkit::{alert, open_starter, starter_firing};

    /// The whys of the decisions made for signal `id` since the last
    /// flush.
    fn whys(engine: &mut Engine, id: &str) -> Vec<String> {
        let records = engine.outbox.records.iter();
        records
            .filter_map(|r| match r {
                Record::Decision(d) if d.signal_id == id => Some(d.why.clone()),
                _ => None,
            })
            .collect()
    }

    fn firing(id: &str, fp: &str, at: chrono::DateTime<Utc>) -> crate::signal::Signal {
        alert(id, "alert.firing", fp, "api", at)
    }

    fn resolved(id: &str, fp: &str, at: chrono::DateTime<Utc>) -> crate::signal::Signal {
        alert(id, "alert.resolved", fp, "api", at)
    }

    #[test]
    fn a_transient_alert_is_recorded_never_paged_and_teaches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        let mut engine = starter_firing(dir.path(), t0, r#"hold = { transient = "2m" }"#);
        let feedback = engine.learning.feedback;
        assert!(matches!(
            engine.ingest(firing("f1", "a", t0), t0),
            Ingested::Paused
        ));
        assert_eq!(engine.held_off_now(), (1, 0));
        let t1 = t0 + Duration::seconds(50);
        engine.ingest(resolved("r1", "a", t1), t1);
        engine.tick(t0 + Duration::minutes(5));
        assert_eq!(engine.held_off_now(), (0, 0));
        assert_eq!(engine.reviews.open_count(), 0, "no review item");
        assert!(engine.pages(false).is_empty(), "no page");
        assert_eq!(engine.learning.feedback, feedback, "nothing learned");
        let why = whys(&mut engine, "f1");
        assert_eq!(why.len(), 1, "one decision: {why:?}");
        assert!(why[0].starts_with("transient: fired at"), "{}", why[0]);
        assert!(why[0].contains("resolved 50s later"), "{}", why[0]);
        assert!(engine.held_counts().contains(&("transient".to_string(), 1)));
    }

    #[test]
    fn an_alert_still_firing_after_its_hold_off_is_decided_then_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        let mut engine = starter_firing(dir.path(), t0, r#"hold = { transient = "2m" }"#);
        engine.ingest(firing("f1", "b", t0), t0);
        let t = t0 + Duration::seconds(30);
        engine.ingest(firing("f2", "b", t), t);
        assert!(
            whys(&mut engine, "f2")[0]
                .starts_with("repeat of an alert held as a possible transient")
        );
        engine.tick(t0 + Duration::seconds(119));
        assert_eq!(
            engine.reviews.open_count() + engine.flows.active_count(),
            0,
            "still paused"
        );
        engine.tick(t0 + Duration::minutes(2));
        assert_eq!(engine.held_off_now(), (0, 0));
        assert_eq!(engine.flows.active_count(), 1, "decided: its flow runs");
        let why = whys(&mut engine, "f1");
        assert!(
            why[0].starts_with("held 2m as a possible transient"),
            "{why:?}"
        );
        // Paused again after a restart, from the journal: it had no decision.
        let dir2 = tempfile::tempdir().unwrap();
        let mut engine = starter_firing(dir2.path(), t0, r#"hold = { transient = "2m" }"#);
        engine.ingest(firing("f1", "c", t0), t0);
        engine.flush().unwrap();
        drop(engine);
        let later = t0 + Duration::seconds(10);
        let mut engine = open_starter(dir2.path(), later, |_| {});
        assert_eq!(engine.held_off_now(), (1, 0), "paused again");
        engine.tick(later + Duration::minutes(2));
        assert_eq!(engine.flows.active_count(), 1);
    }

    #[test]
    fn a_flapping_alert_is_held_until_stable_then_decided_once() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        let line = r#"hold = { flap = { changes = 4, within = "10m", stable = "15m" } }"#;
        let mut engine = starter_firing(dir.path(), t0, line);
        let at = |m: i64| t0 + Duration::minutes(m);
        engine.ingest(firing("f1", "d", at(0)), at(0));
        engine.ingest(resolved("r1", "d", at(1)), at(1));
        engine.ingest(firing("f2", "d", at(2)), at(2));
        engine.ingest(resolved("r2", "d", at(3)), at(3));
        let flapping: Vec<_> = engine
            .take_notices()
            .into_iter()
            .filter(|n| n.event == "flapping")
            .collect();
        assert_eq!(flapping.len(), 1, "told once it flaps");
        assert!(
            flapping[0]
                .text
                .contains("changed state 4 times within 10m"),
            "{}",
            flapping[0].text
        );
        engine.ingest(firing("f3", "d", at(4)), at(4));
        engine.ingest(resolved("r3", "d", at(5)), at(5));
        engine.ingest(firing("f4", "d", at(6)), at(6));
        assert_eq!(
            engine.flows.active_count(),
            0,
            "flapping firings open nothing"
        );
        assert!(whys(&mut engine, "f4")[0].starts_with("flapping since"));
        assert_eq!(engine.held_off_now(), (0, 1));
        let held = engine.held_counts();
        assert!(held.contains(&("flapping".to_string(), 2)), "{held:?}");
        // The flap survives a restart.
        engine.flush().unwrap();
        drop(engine);
        let mut engine = open_starter(dir.path(), at(7), |_| {});
        assert_eq!(
            engine.held_off_now(),
            (0, 1),
            "still flapping after a restart"
        );
        engine.tick(at(20));
        assert_eq!(
            engine.flows.active_count(),
            0,
            "14 quiet minutes: not yet stable"
        );
        engine.tick(at(21));
        assert_eq!(engine.held_off_now(), (0, 0));
        assert_eq!(
            engine.flows.active_count(),
            1,
            "stable and firing: decided once"
        );
        let why = whys(&mut engine, "f4");
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].starts_with("flapped from"), "{}", why[0]);
    }
}
