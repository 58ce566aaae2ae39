//! Quarantine: a signal the engine cannot decide (an error, or a panic
//! caught at `guard::catching`) is journaled with the error, counted and
//! set aside; the engine goes on with the next one. A restart does not
//! retry it; an operator may (`retry`), or set it aside for good (`drop`).

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Engine, EngineError, EngineEvent, guard};
use crate::decide::Decision;
use crate::journal::{QuarantineState, Quarantined, Record, read};
use crate::review::Actor;
use crate::signal::Signal;

/// Held entries kept in memory for the console, newest last; the journal
/// keeps them all.
const RECENT: usize = 200;

/// What the engine keeps of its quarantine: how many signals are held,
/// and the newest of them.
#[derive(Debug, Default, Clone)]
pub struct QuarantineBook {
    pub held: u64,
    /// Since the engine started.
    pub quarantined: u64,
    pub recent: VecDeque<Quarantined>,
}

impl QuarantineBook {
    pub(super) fn restore(entries: Vec<Quarantined>) -> QuarantineBook {
        let held = entries.len() as u64;
        // Newest first from the journal; newest last here.
        let recent = entries.into_iter().take(RECENT).rev().collect();
        QuarantineBook {
            held,
            quarantined: 0,
            recent,
        }
    }

    fn hold(&mut self, entry: Quarantined) {
        self.held += 1;
        self.quarantined += 1;
        self.recent
            .retain(|q| !same(q, &entry.signal_id, &entry.source));
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(entry);
    }

    fn release(&mut self, id: &str, source: &str) {
        self.held = self.held.saturating_sub(1);
        self.recent.retain(|q| !same(q, id, source));
    }
}

fn same(q: &Quarantined, id: &str, source: &str) -> bool {
    q.signal_id == id && q.source == source
}

/// What a lead does with a held signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Retry,
    Drop,
}

/// What releasing a held signal came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Released {
    /// Retried, and decided.
    Decided(String),
    /// Retried, failed again, and held again with this error.
    HeldAgain(String),
    /// Retried, and paused as a possible transient (`Ingested::Paused`).
    Paused,
    Dropped(Quarantined),
}

/// Why an operator's quarantine action was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuarantineError {
    #[error("signal `{0}` is not held in quarantine")]
    NotHeld(String),
    #[error("several sources sent a signal `{id}` ({sources}): name the source")]
    Ambiguous { id: String, sources: String },
    #[error("only a lead may retry or drop a quarantined signal; {0} is not one")]
    NotALead(String),
}

impl Engine {
    /// Decides a signal inside the guard; on failure, puts it in quarantine
    /// and undoes what deciding it had queued.
    pub(super) fn decide_guarded(
        &mut self,
        signal: Arc<Signal>,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<Decision>>, String> {
        let decided = Arc::clone(&signal);
        self.guarded(&signal, now, move |engine| {
            engine.decide_signal(decided, now)
        })
    }

    /// Runs `decide` on `signal` so that a failure or a panic quarantines
    /// the signal and leaves nothing half-decided behind.
    pub(super) fn guarded<T>(
        &mut self,
        signal: &Arc<Signal>,
        now: DateTime<Utc>,
        decide: impl FnOnce(&mut Self) -> Result<T, EngineError>,
    ) -> Result<T, String> {
        let marks = (self.outbox.records.len(), self.outbox.events.len());
        let outcome = guard::catching(|| decide(self));
        let error = match outcome {
            Ok(Ok(done)) => return Ok(done),
            Ok(Err(e)) => e.to_string(),
            Err(panic) => panic,
        };
        // Nothing half-decided reaches the journal or the subscribers.
        self.outbox.records.truncate(marks.0);
        self.outbox.events.truncate(marks.1);
        tracing::warn!(signal = %signal.id, source = %signal.source, error = %error, "signal quarantined");
        self.hold(signal, &error, now);
        Err(error)
    }

    fn hold(&mut self, signal: &Signal, error: &str, now: DateTime<Utc>) {
        let entry = Quarantined {
            signal_id: signal.id.clone(),
            source: signal.source.clone(),
            kind: signal.kind.clone(),
            subject: signal.subject.clone(),
            error: error.to_string(),
            state: QuarantineState::Held,
            time: now,
            actor: crate::review::Actor::system().name,
            note: String::new(),
        };
        self.hold_entry(entry, now);
    }

    /// Holds a signal named by its journaled parts (one whose body could
    /// not be read back: the error says so).
    pub(super) fn hold_unreadable(&mut self, parts: [String; 4], error: &str, now: DateTime<Utc>) {
        let [signal_id, source, kind, subject] = parts;
        let entry = Quarantined {
            signal_id,
            source,
            kind,
            subject,
            error: format!("its journaled text cannot be read back: {error}"),
            state: QuarantineState::Held,
            time: now,
            actor: crate::review::Actor::system().name,
            note: String::new(),
        };
        self.hold_entry(entry, now);
    }

    fn hold_entry(&mut self, entry: Quarantined, now: DateTime<Utc>) {
        self.quarantine.hold(entry.clone());
        self.notice(super::notices::Notice {
            event: "quarantine",
            text: format!(
                "signal {} `{}` from {} quarantined: {}",
                entry.kind, entry.signal_id, entry.source, entry.error
            ),
            reference: entry.signal_id.clone(),
            subject: entry.subject.clone(),
            time: now,
        });
        self.metrics.at(now, |t| t.quarantined += 1);
        self.outbox.records.push(Record::Quarantine(entry.clone()));
        self.emit(EngineEvent::Quarantined(Box::new(entry)));
    }

    /// What the engine keeps of its quarantine.
    pub fn quarantine(&self) -> &QuarantineBook {
        &self.quarantine
    }

    /// The held entry for a signal, from the journal (`source` may be left
    /// out when only one source sent that id).
    fn held(&self, id: &str, source: Option<&str>) -> Result<Quarantined, EngineError> {
        let mut held: Vec<Quarantined> =
            read::quarantine(&self.dir, Some(QuarantineState::Held), i64::MAX)?
                .into_iter()
                .filter(|q| q.signal_id == id && source.is_none_or(|s| s == q.source))
                .collect();
        match held.len() {
            0 => Err(QuarantineError::NotHeld(id.to_string()).into()),
            1 => Ok(held.remove(0)),
            _ => Err(QuarantineError::Ambiguous {
                id: id.to_string(),
                sources: held
                    .iter()
                    .map(|q| q.source.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into()),
        }
    }

    /// A lead's call on a held signal: decide it again (it is held again,
    /// with the new error, should it fail again), or set it aside for good
    /// (it stays in the journal and is never decided).
    pub fn release_quarantined(
        &mut self,
        how: Release,
        id: &str,
        source: Option<&str>,
        actor: &Actor,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Released, EngineError> {
        check_lead(actor)?;
        let entry = self.held(id, source)?;
        match how {
            Release::Drop => Ok(Released::Dropped(self.release(
                entry,
                QuarantineState::Dropped,
                actor,
                note,
                now,
            ))),
            Release::Retry => {
                let signal = read::signal(&self.dir, &entry.signal_id, &entry.source)?
                    .ok_or_else(|| QuarantineError::NotHeld(id.to_string()))?;
                self.release(entry, QuarantineState::Retried, actor, note, now);
                Ok(match self.decide_guarded(Arc::new(signal), now) {
                    Ok(Some(decision)) => Released::Decided(decision.id.clone()),
                    Ok(None) => Released::Paused,
                    Err(error) => Released::HeldAgain(error),
                })
            }
        }
    }

    fn release(
        &mut self,
        entry: Quarantined,
        state: QuarantineState,
        actor: &Actor,
        note: &str,
        now: DateTime<Utc>,
    ) -> Quarantined {
        self.quarantine.release(&entry.signal_id, &entry.source);
        let entry = Quarantined {
            state,
            time: now,
            actor: actor.name.clone(),
            note: note.to_string(),
            ..entry
        };
        self.outbox.records.push(Record::Quarantine(entry.clone()));
        self.emit(EngineEvent::Quarantined(Box::new(entry.clone())));
        entry
    }
}

fn check_lead(actor: &Actor) -> Result<(), QuarantineError> {
    use crate::decide::policy::Role;
    if actor.role >= Role::Lead {
        Ok(())
    } else {
        Err(QuarantineError::NotALead(actor.name.clone()))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::engine::Ingested;
    use rand::SeedableRng;

    /// A signal type whose deciding panics (see `Engine::decide_signal`).
    pub(crate) const PANICS: &str = "test.panics";

    fn start() -> DateTime<Utc> {
        crate::sim::default_start()
    }

    fn open(dir: &std::path::Path) -> Engine {
        let world =
            crate::sim::world::northwind(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1), start());
        Engine::open(crate::sim::engine_config(dir, 1), world, start()).unwrap()
    }

    fn signal(id: &str, kind: &str) -> Signal {
        Signal {
            id: id.into(),
            source: "test".into(),
            kind: kind.into(),
            subject: "customer/c0001".into(),
            time: start(),
            ..Signal::default()
        }
    }

    /// A panic while deciding is caught, the signal held with the panic's
    /// message, nothing half-decided journaled, and the engine goes on; a
    /// restart does not decide it again, and a lead can take it back.
    #[test]
    fn a_panic_while_deciding_quarantines_the_signal_and_the_engine_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = open(dir.path());
        let out = engine.ingest(signal("boom", PANICS), start());
        let Ingested::Quarantined { error } = out else {
            panic!("{out:?}")
        };
        assert!(error.contains("a signal made to panic"), "{error}");
        let next = engine.ingest(signal("fine", "ticket.opened"), start());
        assert!(matches!(next, Ingested::Decided { .. }), "{next:?}");
        assert_eq!(engine.quarantine().held, 1);
        engine.flush().unwrap().wait().unwrap();
        engine.close().unwrap();

        let counts = read::counts(dir.path()).unwrap();
        assert_eq!((counts.quarantined, counts.undecided_signals), (1, 0));
        assert!(counts.chain_ok);
        let mut engine = open(dir.path());
        assert_eq!(engine.quarantine().held, 1, "not retried at a restart");
        let operator = Actor::new("ana", crate::decide::policy::Role::Operator);
        let mut release = |how, source, actor: &Actor, note| {
            engine.release_quarantined(how, "boom", source, actor, note, start())
        };
        assert!(release(Release::Retry, None, &operator, "").is_err());
        let lead = Actor::new("lars", crate::decide::policy::Role::Lead);
        let again = release(Release::Retry, None, &lead, "try again").unwrap();
        assert!(matches!(again, Released::HeldAgain(_)), "{again:?}");
        let dropped = release(Release::Drop, Some("test"), &lead, "it is a test").unwrap();
        assert!(
            matches!(&dropped, Released::Dropped(q) if q.state == QuarantineState::Dropped),
            "{dropped:?}"
        );
        assert_eq!(engine.quarantine().held, 0);
        engine.close().unwrap();
        let counts = read::counts(dir.path()).unwrap();
        assert_eq!(counts.quarantined, 0);
        assert!(counts.chain_ok);
    }
}
