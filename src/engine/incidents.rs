//! Incidents wired into the engine. A firing alert whose fingerprint has
//! a flow still open is a repeat; one whose type groups
//! (`playbook::group`) and whose key has an open incident joins it. Either
//! is recorded, with why, and opens nothing of its own. The first alert of
//! a key is decided, and its flow becomes the incident's. A resolution
//! closes the incident's flow only once its last alert has resolved.

use chrono::{DateTime, Utc};

use super::Engine;
use crate::decide::{Decision, Mode};
use crate::flow::incident::{Incident, IncidentBook, IncidentState, Member, Resolution};
use crate::journal::Record;
use crate::signal::Signal;

/// Firing alerts, the incidents they make, and the silences that hold
/// signals back.
#[derive(Default)]
pub(super) struct Alerts {
    /// The flow each firing alert belongs to (its own, or its incident's),
    /// by fingerprint.
    pub opened_by: crate::FastMap<String, String>,
    pub incidents: IncidentBook,
    pub silences: crate::noise::SilenceBook,
    /// Firing alerts that inhibit others, by rule.
    pub inhibit: crate::noise::InhibitBook,
    /// Alerts paused as possible transients, and flapping ones.
    pub hold: crate::noise::holdoff::HoldBook,
    /// Signals held since start, by why (`Held::reason`).
    pub held: std::collections::BTreeMap<&'static str, u64>,
    /// How long a silence may last (`[silences] max_length`).
    pub silence_max: Option<chrono::Duration>,
    /// When the last incident notice went out.
    pub incidents_told: Option<DateTime<Utc>>,
}

/// Incidents named in one incident notice, at most (the count goes on).
const INCIDENTS_TOLD: usize = 20;

/// How long before a silence ends its owner is told.
const SILENCE_WARNING: i64 = 15;

/// Why a person's resolution of an incident was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IncidentRefused {
    #[error("no incident {0}")]
    Unknown(String),
    #[error("incident {0} is already resolved")]
    Resolved(String),
}

/// Why a signal is recorded instead of being decided on its own.
pub(super) enum Held {
    /// The same alert, still open in this flow.
    Repeat(String),
    /// An alert of an open incident's group.
    Grouped {
        incident: String,
        flow: String,
        labels: String,
    },
    /// Matched by an active silence.
    Silenced(Box<crate::noise::Silence>),
    /// In a maintenance window of the playbook.
    Maintenance(String),
    /// A target of an inhibition rule while a source alert fires.
    Inhibited {
        rule: usize,
        text: String,
        values: Vec<String>,
        by: String,
    },
    /// A repeat of an alert paused as a possible transient.
    Paused { until: DateTime<Utc> },
    /// A paused alert that resolved within its hold-off.
    Transient {
        fired: DateTime<Utc>,
        after: chrono::Duration,
        hold: chrono::Duration,
    },
    /// A firing of an alert that flaps.
    Flapping { since: DateTime<Utc>, changes: u32 },
}

impl Held {
    /// What held it, as `/metrics` counts it.
    pub fn reason(&self) -> &'static str {
        match self {
            Held::Repeat(_) | Held::Paused { .. } => "repeat",
            Held::Grouped { .. } => "grouped",
            Held::Silenced(_) => "silenced",
            Held::Maintenance(_) => "maintenance",
            Held::Inhibited { .. } => "inhibited",
            Held::Transient { .. } => "transient",
            Held::Flapping { .. } => "flapping",
        }
    }

    /// The decision's `why` for a signal held so.
    pub fn why(&self) -> String {
        match self {
            Held::Repeat(flow) => format!("repeat of the alert still open in {flow}: recorded"),
            Held::Grouped {
                incident,
                flow,
                labels,
            } => format!(
                "grouped into incident {incident} ({labels}): recorded; its flow {flow} answers for it"
            ),
            Held::Inhibited {
                rule,
                text,
                values,
                by,
            } => format!(
                "inhibited by rule {} ({text}) while alert {by} fires{}: recorded",
                rule + 1,
                match values.is_empty() {
                    true => String::new(),
                    false => format!(" (equal: {})", values.join(", ")),
                }
            ),
            Held::Paused { until } => format!(
                "repeat of an alert held as a possible transient until {}: recorded",
                until.format("%H:%M:%S")
            ),
            Held::Transient { fired, after, hold } => format!(
                "transient: fired at {} and resolved {}s later, within its hold-off of {}s: recorded, never paged",
                fired.format("%H:%M:%S"),
                after.num_seconds(),
                hold.num_seconds()
            ),
            Held::Flapping { since, changes } => format!(
                "flapping since {} ({changes} state changes): recorded, not paged; decided once stable if it still fires",
                since.format("%H:%M:%S")
            ),
            Held::Maintenance(name) => {
                format!("in maintenance window {name:?}: recorded")
            }
            Held::Silenced(s) => format!(
                "silenced by {} ({}) until {}, made by {}: {:?}: recorded",
                s.id,
                s.text(),
                s.ends_at.format("%Y-%m-%d %H:%M UTC"),
                s.created_by,
                s.comment
            ),
        }
    }
}

impl Engine {
    /// Whether `signal` is held: a repeat of an open alert, or an alert
    /// that joins an open incident.
    pub(super) fn held_by(&mut self, signal: &Signal, now: DateTime<Utc>) -> Option<Held> {
        if let Some(flow) = self.open_flow_of(signal) {
            return Some(Held::Repeat(flow));
        }
        if let Some(paused) = self.paused_repeat(signal) {
            return Some(paused);
        }
        let playbook = std::sync::Arc::clone(&self.decider.playbook);
        let rules = &playbook.inhibits;
        let windows = &playbook.maintenance;
        if !self.alerts.silences.silences.is_empty() || !rules.is_empty() || !windows.is_empty() {
            let labels = crate::noise::labels(signal);
            // A firing alert inhibits by the rules it is a source of, even
            // when a silence holds it.
            if signal.kind == "alert.firing"
                && let Some(fp) = signal.data_str("fingerprint")
            {
                self.alerts.inhibit.firing(rules, &labels, fp);
            }
            if let Some(s) = self.alerts.silences.holding(&labels, now) {
                return Some(Held::Silenced(Box::new(s.clone())));
            }
            // The window that counts is the signal's own time.
            if let Some(w) = windows.iter().find(|w| w.holds(&labels, signal.time)) {
                return Some(Held::Maintenance(w.name.clone()));
            }
            if let Some(h) = self.alerts.inhibit.holding(rules, &labels) {
                return Some(Held::Inhibited {
                    rule: h.rule,
                    text: rules.get(h.rule).map(|r| r.text()).unwrap_or_default(),
                    values: h.values,
                    by: h.by,
                });
            }
        }
        if let Some(flapping) = self.flapping(signal) {
            return Some(flapping);
        }
        let grouping = self.decider.playbook.play(&signal.kind)?.group.as_ref()?;
        let (key, labels) = grouping.key(&signal.kind, signal);
        let incident = self.alerts.incidents.open_for(&key)?;
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Some(Held::Grouped {
            incident: incident.id.clone(),
            flow: incident.flow_id.clone(),
            labels: labels.join(", "),
        })
    }

    /// After a signal's decision: a grouped alert joins its incident; the
    /// first decided alert of a grouping type opens one around flow
    /// `flow_id`.
    pub(super) fn group(
        &mut self,
        signal: &Signal,
        decision: &Decision,
        held: Option<&Held>,
        flow_id: &str,
    ) {
        let member = Member {
            signal_id: signal.id.clone(),
            fingerprint: signal.data_str("fingerprint").map(String::from),
            subject: signal.subject.clone(),
            at: signal.time,
            resolved: None,
        };
        if let Some(h) = held {
            *self.alerts.held.entry(h.reason()).or_default() += 1;
        }
        match held {
            Some(Held::Grouped { incident, flow, .. }) => {
                if let Some(f) = &member.fingerprint {
                    self.alerts.opened_by.insert(f.clone(), flow.clone());
                }
                self.alerts.incidents.join(incident, member);
            }
            Some(_) => {}
            None if decision.mode != Mode::Record => {
                let Some(grouping) = self
                    .decider
                    .playbook
                    .play(&signal.kind)
                    .and_then(|p| p.group.clone())
                else {
                    return;
                };
                let key = grouping.key(&signal.kind, signal);
                let id =
                    self.alerts
                        .incidents
                        .open(&signal.kind, key, (&decision.id, flow_id), member);
                tracing::debug!(incident = %id, flow = flow_id, "incident opened");
            }
            None => {}
        }
    }

    /// An alert of flow `flow_id` resolved: whether the flow is done with
    /// (its own alert, or its incident's last).
    pub(super) fn alert_resolved_in(
        &mut self,
        flow_id: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> bool {
        !matches!(
            self.alerts
                .incidents
                .alert_resolved(flow_id, fingerprint, now),
            Some(Resolution::StillFiring { .. })
        )
    }

    /// A flow ended: its incident, if it is one's, is over.
    pub(super) fn end_incident_of(&mut self, flow_id: &str, now: DateTime<Utc>) {
        let open = self
            .alerts
            .incidents
            .of_flow(flow_id)
            .filter(|i| i.state == IncidentState::Open)
            .map(|i| i.id.clone());
        if let Some(id) = open {
            self.alerts.incidents.resolve(&id, "its flow ended", now);
        }
    }

    /// A person resolves an incident: its flow closes (its pages resolved,
    /// its review item settled), as when its last alert resolves.
    pub fn resolve_incident(
        &mut self,
        id: &str,
        actor: &crate::review::Actor,
        now: DateTime<Utc>,
    ) -> Result<Incident, IncidentRefused> {
        let incident = self
            .alerts
            .incidents
            .incidents
            .get(id)
            .ok_or_else(|| IncidentRefused::Unknown(id.to_string()))?;
        if incident.state == IncidentState::Resolved {
            return Err(IncidentRefused::Resolved(id.to_string()));
        }
        let flow = incident.flow_id.clone();
        let firing: Vec<String> = incident.firing.iter().cloned().collect();
        self.alerts.incidents.resolve(id, &actor.name, now);
        for f in firing {
            self.alerts.opened_by.remove(&f);
        }
        let note = format!("incident {id} resolved by {}", actor.name);
        self.close_flow(&flow, &actor.name, &note, now);
        self.alerts
            .incidents
            .incidents
            .get(id)
            .cloned()
            .ok_or_else(|| IncidentRefused::Unknown(id.to_string()))
    }

    /// Incidents, newest first: the open ones, or all in memory.
    pub fn incidents(&self, open_only: bool) -> Vec<Incident> {
        self.alerts
            .incidents
            .incidents
            .values()
            .rev()
            .filter(|i| !open_only || i.state == IncidentState::Open)
            .cloned()
            .collect()
    }

    /// At most `n` incidents as rows: the open ones, newest first, then
    /// those resolved, newest first.
    pub fn incident_rows(&self, n: usize) -> Vec<crate::flow::incident::IncidentRow> {
        let mut all: Vec<&Incident> = self.alerts.incidents.incidents.values().rev().collect();
        all.sort_by_key(|i| i.state == IncidentState::Resolved);
        all.into_iter().take(n).map(Incident::row).collect()
    }

    /// How many incidents this journal has opened.
    pub fn incidents_opened(&self) -> u64 {
        self.alerts.incidents.opened()
    }

    /// How many incidents are open.
    pub fn open_incidents(&self) -> usize {
        self.alerts
            .incidents
            .incidents
            .values()
            .filter(|i| i.state == IncidentState::Open)
            .count()
    }

    /// One incident in memory.
    pub fn incident(&self, id: &str) -> Option<Incident> {
        self.alerts.incidents.incidents.get(id).cloned()
    }

    /// Incidents changed since the last flush, for the journal.
    pub(super) fn incident_records(&mut self) -> Vec<Record> {
        self.alerts
            .incidents
            .take_changed()
            .into_iter()
            .map(|i| Record::Incident(Box::new(i)))
            .collect()
    }

    /// Open incidents as journaled, after a restart: their alerts still
    /// firing belong to their flows again.
    pub(super) fn restore_incidents(&mut self, incidents: Vec<Incident>, last: Option<&str>) {
        if let Some(last) = last {
            self.alerts.incidents.taken(last);
        }
        for incident in incidents {
            for f in &incident.firing {
                self.alerts
                    .opened_by
                    .insert(f.clone(), incident.flow_id.clone());
            }
            self.alerts.incidents.restore(incident);
        }
    }
}

impl Engine {
    /// Makes or changes a silence, as `actor`.
    pub fn put_silence(
        &mut self,
        asked: crate::noise::silence::NewSilence,
        actor: &crate::review::Actor,
        now: DateTime<Utc>,
    ) -> Result<crate::noise::Silence, crate::noise::SilenceRefused> {
        let max = self.alerts.silence_max;
        let id = self.alerts.silences.put(asked, actor, max, now)?;
        self.alerts
            .silences
            .silences
            .get(&id)
            .cloned()
            .ok_or(crate::noise::SilenceRefused::Unknown(id))
    }

    /// Ends a silence now, as `actor` (its owner, or a lead).
    pub fn expire_silence(
        &mut self,
        id: &str,
        actor: &crate::review::Actor,
        now: DateTime<Utc>,
    ) -> Result<crate::noise::Silence, crate::noise::SilenceRefused> {
        self.alerts.silences.expire(id, actor, now).cloned()
    }

    /// Open review items whose signal every matcher matches (a silence's
    /// preview).
    pub fn open_items_matching(&self, matchers: &[crate::noise::Matcher]) -> usize {
        self.reviews
            .open_items()
            .into_iter()
            .filter(|item| {
                let labels = crate::noise::labels(&item.signal);
                matchers.iter().all(|m| m.matches(&labels))
            })
            .count()
    }

    /// Signals held since start, by why.
    pub fn held_counts(&self) -> Vec<(String, u64)> {
        self.alerts
            .held
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    /// Silences in memory: pending, active, and lately expired.
    pub fn silences(&self) -> Vec<crate::noise::Silence> {
        self.alerts.silences.silences.values().cloned().collect()
    }

    /// Open incidents people are due to hear of again: alerts that joined
    /// since (at most once per group `interval`), or still firing after
    /// `repeat`; the receivers of `incident` are told.
    /// All the incidents due go in one notice, at most once per the
    /// shortest interval or repeat of the playbook's groupings: a storm is
    /// one message per interval, not one per incident.
    pub(super) fn tick_incidents(&mut self, now: DateTime<Utc>) {
        let playbook = std::sync::Arc::clone(&self.decider.playbook);
        let timing_of = |kind: &str| Some(playbook.play(kind)?.group.as_ref()?.timing());
        let cadence = playbook
            .signals
            .values()
            .filter_map(|p| p.group.as_ref())
            .flat_map(|g| {
                let t = g.timing();
                [t.interval, t.repeat]
            })
            .flatten()
            .min();
        let emit = cadence.is_some_and(|c| self.alerts.incidents_told.is_none_or(|t| now - t >= c));
        let due = self.alerts.incidents.tellings(now, emit, timing_of);
        let Some(first) = due.first() else {
            return;
        };
        self.alerts.incidents_told = Some(now);
        let (reference, subject) = (first.id.clone(), first.subject.clone());
        let lines: Vec<String> = due.iter().map(telling).collect();
        let text = match lines.len() {
            1 => lines.concat(),
            n if n <= INCIDENTS_TOLD => format!("{n} incidents: {}", lines.join("; ")),
            n => format!(
                "{n} incidents: {}; and {} more (GET /v1/incidents)",
                lines[..INCIDENTS_TOLD].join("; "),
                n - INCIDENTS_TOLD
            ),
        };
        let notice = super::notices::Notice {
            event: "incident",
            text,
            reference,
            subject,
            time: now,
        };
        self.notice(notice);
    }

    /// Silences about to end: their owners are told, once.
    pub(super) fn tick_silences(&mut self, now: DateTime<Utc>) {
        let window = chrono::Duration::minutes(SILENCE_WARNING);
        for s in self.alerts.silences.ending(now, window) {
            let notice = super::notices::Notice {
                event: "silence",
                text: format!(
                    "silence {} ({}) by {} ends at {} (held {} signals): {:?}; renew it or let it end",
                    s.id,
                    s.text(),
                    s.created_by,
                    s.ends_at.format("%H:%M UTC"),
                    s.held,
                    s.comment
                ),
                reference: s.id.clone(),
                subject: s.created_by.clone(),
                time: now,
            };
            self.notice(notice);
        }
    }

    /// Silences changed since the last flush, and the inhibitors if they
    /// changed, for the journal.
    pub(super) fn silence_records(&mut self) -> Vec<Record> {
        let mut out: Vec<Record> = self
            .alerts
            .silences
            .take_changed()
            .into_iter()
            .map(|s| Record::Silence(Box::new(s)))
            .collect();
        if let Some(value) = self.alerts.inhibit.take_changed() {
            out.push(Record::Meta {
                key: crate::noise::inhibit::INHIBITORS_KEY.into(),
                value,
            });
        }
        if let Some(value) = self.alerts.hold.take_changed() {
            out.push(Record::Meta {
                key: crate::noise::holdoff::FLAPPING_KEY.into(),
                value,
            });
        }
        out
    }
}

/// One incident's line in an incident notice.
fn telling(t: &crate::flow::incident::Telling) -> String {
    match t.joined {
        0 => format!(
            "incident {} ({}) still open since {}: {} of {} alerts firing",
            t.id,
            t.group,
            t.opened.format("%H:%M UTC"),
            t.firing,
            t.alerts
        ),
        n => format!(
            "incident {} ({}): {n} more alert{} since last told, {} of {} firing, open since {}",
            t.id,
            t.group,
            if n == 1 { "" } else { "s" },
            t.firing,
            t.alerts,
            t.opened.format("%H:%M UTC")
        ),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use crate::testkit::{alert, starter_playbook};

    /// Two incidents that gained alerts are told in one notice, and the
    /// next notice waits the interval, however many incidents come due.
    #[test]
    fn incidents_due_together_are_one_notice_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        let mut engine = starter_playbook(dir.path(), t0, |text| {
            text.replace(
                "group = { by = [\"subject\"] }",
                "group = { by = [\"subject\"], interval = \"5m\" }",
            )
        });
        let at = |s: i64| t0 + Duration::seconds(s);
        let mut n = 0;
        let mut fire = |engine: &mut crate::engine::Engine, service: &str, when| {
            n += 1;
            let a = alert(
                &format!("a{n}"),
                "alert.firing",
                &format!("f{n}"),
                service,
                when,
            );
            engine.ingest(a, when);
        };
        fire(&mut engine, "api", at(0));
        fire(&mut engine, "db", at(0));
        engine.tick(at(1));
        for _ in 0..3 {
            fire(&mut engine, "api", at(60));
            fire(&mut engine, "db", at(60));
        }
        engine.tick(at(200));
        let told = |engine: &mut crate::engine::Engine| -> Vec<String> {
            let notices = engine.take_notices();
            notices
                .into_iter()
                .filter(|n| n.event == "incident")
                .map(|n| n.text)
                .collect()
        };
        assert!(told(&mut engine).is_empty(), "within the interval");
        engine.tick(at(302));
        let first = told(&mut engine);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(
            first[0].starts_with("2 incidents: incident I0000001"),
            "{}",
            first[0]
        );
        assert!(
            first[0].contains("3 more alerts since last told"),
            "{}",
            first[0]
        );
        fire(&mut engine, "api", at(310));
        engine.tick(at(400));
        assert!(told(&mut engine).is_empty(), "the next waits the interval");
        engine.tick(at(603));
        let second = told(&mut engine);
        assert_eq!(second.len(), 1);
        assert!(second[0].starts_with("incident I0000001"), "{}", second[0]);
    }
}
