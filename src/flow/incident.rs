//! Incidents: alerts of one group (`playbook::group`) while any of them is
//! firing. The first alert of a group is decided and its flow is the
//! incident's; alerts that join later are recorded into it instead of
//! opening items of their own. The incident resolves when every alert in
//! it has resolved (its flow then closes as a resolved alert's does), or
//! when a person resolves it. Pure state, with the time passed in; the
//! engine holds the book and journals every change.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Alerts listed on an incident, at most (the count goes on).
pub const MEMBERS_KEPT: usize = 500;

/// Resolved incidents kept in memory, at most (the journal keeps all).
const KEPT_RESOLVED: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Open,
    Resolved,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// One alert of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub signal_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub subject: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<DateTime<Utc>>,
}

/// Alerts grouped while any of them fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    /// The signal type it groups.
    pub kind: String,
    /// The grouping's key, and the values that made it.
    pub key: String,
    pub labels: Vec<(String, String)>,
    pub state: IncidentState,
    pub opened: DateTime<Utc>,
    /// The decision of its first alert, and the flow that runs for it.
    pub decision_id: String,
    pub flow_id: String,
    /// Its alerts, the first `MEMBERS_KEPT` of them.
    pub members: Vec<Member>,
    /// Alerts that joined it, all of them.
    pub alerts: u64,
    /// Fingerprints still firing.
    pub firing: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<(String, DateTime<Utc>)>,
    /// When people were last told of it (its page, once its group's wait
    /// was over, or a notice since), and how many alerts it had then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub told: Option<(DateTime<Utc>, u64)>,
}

/// A notice due about an open incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Telling {
    pub id: String,
    pub group: String,
    pub subject: String,
    pub alerts: u64,
    pub firing: usize,
    pub opened: DateTime<Utc>,
    /// Alerts that joined since people were last told; none: a repeat.
    pub joined: u64,
}

/// An incident as a table shows it: without its list of alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRow {
    pub id: String,
    pub kind: String,
    /// Its group's values, `subject=service/api`.
    pub group: String,
    /// The same, as paths and values.
    #[serde(default)]
    pub labels: Vec<(String, String)>,
    pub state: IncidentState,
    pub opened: DateTime<Utc>,
    pub alerts: u64,
    pub firing: usize,
    pub decision_id: String,
    pub flow_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<(String, DateTime<Utc>)>,
}

impl Incident {
    pub fn row(&self) -> IncidentRow {
        let group: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        IncidentRow {
            id: self.id.clone(),
            kind: self.kind.clone(),
            group: group.join(", "),
            labels: self.labels.clone(),
            state: self.state,
            opened: self.opened,
            alerts: self.alerts,
            firing: self.firing.len(),
            decision_id: self.decision_id.clone(),
            flow_id: self.flow_id.clone(),
            resolved: self.resolved.clone(),
        }
    }
}

/// What joining an alert, or its resolution, did to an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Other alerts of the incident still fire.
    StillFiring { incident: String, firing: usize },
    /// It was the last: the incident is resolved.
    Resolved { incident: String },
}

/// Every incident in memory: the open ones, and those resolved lately.
#[derive(Debug, Default)]
pub struct IncidentBook {
    pub incidents: BTreeMap<String, Incident>,
    /// Open incidents by key, and every incident by its flow.
    by_key: BTreeMap<String, String>,
    by_flow: BTreeMap<String, String>,
    next: u64,
    pub numbering: crate::Numbering,
    changed: Vec<String>,
}

impl IncidentBook {
    /// Incidents opened in this journal (the last id's number).
    pub fn opened(&self) -> u64 {
        self.numbering.count(self.next)
    }

    /// The open incident of `key`, if there is one.
    pub fn open_for(&self, key: &str) -> Option<&Incident> {
        self.incidents.get(self.by_key.get(key)?)
    }

    /// The incident whose flow is `flow_id`.
    pub fn of_flow(&self, flow_id: &str) -> Option<&Incident> {
        self.incidents.get(self.by_flow.get(flow_id)?)
    }

    /// Opens an incident around its first alert, decided as `decision_id`
    /// with flow `flow_id`.
    pub fn open(
        &mut self,
        kind: &str,
        (key, labels): (String, Vec<(String, String)>),
        (decision_id, flow_id): (&str, &str),
        first: Member,
    ) -> String {
        self.next = self.numbering.after(self.next);
        let id = format!("I{:07}", self.next);
        let mut incident = Incident {
            id: id.clone(),
            kind: kind.to_string(),
            key: key.clone(),
            labels,
            state: IncidentState::Open,
            opened: first.at,
            decision_id: decision_id.to_string(),
            flow_id: flow_id.to_string(),
            members: Vec::new(),
            alerts: 0,
            firing: BTreeSet::new(),
            resolved: None,
            told: None,
        };
        add(&mut incident, first);
        self.by_key.insert(key, id.clone());
        self.by_flow.insert(flow_id.to_string(), id.clone());
        self.incidents.insert(id.clone(), incident);
        self.changed.push(id.clone());
        id
    }

    /// An alert joins an open incident.
    pub fn join(&mut self, id: &str, member: Member) {
        if let Some(incident) = self.incidents.get_mut(id) {
            add(incident, member);
            self.changed.push(id.to_string());
        }
    }

    /// An alert of the incident of flow `flow_id` resolved at the source;
    /// `None` if the flow is no incident's.
    pub fn alert_resolved(
        &mut self,
        flow_id: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Option<Resolution> {
        let id = self.by_flow.get(flow_id)?.clone();
        let incident = self.incidents.get_mut(&id)?;
        incident.firing.remove(fingerprint);
        for m in incident.members.iter_mut() {
            if m.fingerprint.as_deref() == Some(fingerprint) && m.resolved.is_none() {
                m.resolved = Some(now);
            }
        }
        self.changed.push(id.clone());
        if !incident.firing.is_empty() {
            return Some(Resolution::StillFiring {
                firing: incident.firing.len(),
                incident: id,
            });
        }
        self.resolve(&id, "its alerts resolved at the source", now);
        Some(Resolution::Resolved { incident: id })
    }

    /// The incident is over (its alerts resolved, a person said so, or its
    /// flow ended); a new alert of its key opens another.
    pub fn resolve(&mut self, id: &str, who: &str, now: DateTime<Utc>) -> Option<&Incident> {
        let incident = self.incidents.get_mut(id)?;
        if incident.state == IncidentState::Resolved {
            return None;
        }
        incident.state = IncidentState::Resolved;
        incident.resolved = Some((who.to_string(), now));
        if self.by_key.get(&incident.key).map(String::as_str) == Some(id) {
            self.by_key.remove(&incident.key);
        }
        self.changed.push(id.to_string());
        self.forget_resolved();
        self.incidents.get(id)
    }

    /// Notices due now about open incidents (as `timing_of` says for each
    /// kind): alerts that joined since people were last told, at most once
    /// per `interval`; otherwise, one still firing, once per `repeat`. The
    /// first telling is its page, when its `wait` is over.
    /// With `emit` false, only notes each new incident's first telling.
    pub fn tellings(
        &mut self,
        now: DateTime<Utc>,
        emit: bool,
        timing_of: impl Fn(&str) -> Option<crate::playbook::group::Timing>,
    ) -> Vec<Telling> {
        let mut out = Vec::new();
        for id in self.by_key.values() {
            let Some(incident) = self.incidents.get_mut(id) else {
                continue;
            };
            let Some(timing) = timing_of(&incident.kind) else {
                continue;
            };
            let Some((told, count)) = incident.told else {
                if now >= incident.opened + timing.wait {
                    incident.told = Some((incident.opened + timing.wait, incident.alerts));
                    self.changed.push(id.clone());
                }
                continue;
            };
            if !emit {
                continue;
            }
            let since = now - told;
            let joined = incident.alerts.saturating_sub(count);
            let due = match (timing.interval, timing.repeat) {
                (Some(i), _) if joined > 0 && since >= i => true,
                (_, Some(r)) if !incident.firing.is_empty() && since >= r => true,
                _ => false,
            };
            if !due {
                continue;
            }
            incident.told = Some((now, incident.alerts));
            self.changed.push(id.clone());
            let row = incident.row();
            out.push(Telling {
                id: id.clone(),
                group: row.group,
                subject: incident
                    .members
                    .first()
                    .map(|m| m.subject.clone())
                    .unwrap_or_default(),
                alerts: incident.alerts,
                firing: incident.firing.len(),
                opened: incident.opened,
                joined,
            });
        }
        out
    }

    /// Restores a journaled incident (a restart); new ids go above it.
    pub fn restore(&mut self, incident: Incident) {
        self.taken(&incident.id);
        if incident.state == IncidentState::Open {
            self.by_key
                .insert(incident.key.clone(), incident.id.clone());
        }
        self.by_flow
            .insert(incident.flow_id.clone(), incident.id.clone());
        self.incidents.insert(incident.id.clone(), incident);
    }

    /// An id the journal holds: new incidents are numbered above it.
    pub fn taken(&mut self, id: &str) {
        if let Some(n) = id.strip_prefix('I').and_then(|n| n.parse::<u64>().ok()) {
            self.next = self.next.max(n);
        }
    }

    /// Incidents changed since the last call, as they stand.
    pub fn take_changed(&mut self) -> Vec<Incident> {
        let mut ids = std::mem::take(&mut self.changed);
        ids.sort();
        ids.dedup();
        ids.iter()
            .filter_map(|id| self.incidents.get(id).cloned())
            .collect()
    }

    /// Lets go of the oldest resolved incidents past `KEPT_RESOLVED`.
    fn forget_resolved(&mut self) {
        if self.incidents.len() <= KEPT_RESOLVED * 2 {
            return;
        }
        let resolved: Vec<(String, String)> = self
            .incidents
            .values()
            .filter(|i| i.state == IncidentState::Resolved)
            .map(|i| (i.id.clone(), i.flow_id.clone()))
            .collect();
        let over = resolved.len().saturating_sub(KEPT_RESOLVED);
        for (id, flow) in resolved.into_iter().take(over) {
            self.incidents.remove(&id);
            self.by_flow.remove(&flow);
        }
    }
}

fn add(incident: &mut Incident, member: Member) {
    incident.alerts += 1;
    if let Some(f) = &member.fingerprint {
        incident.firing.insert(f.clone());
    }
    if incident.members.len() < MEMBERS_KEPT {
        incident.members.push(member);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn alert(n: u32, minute: i64) -> Member {
        Member {
            signal_id: format!("a{n}"),
            fingerprint: Some(format!("f{n}")),
            subject: "service/api".into(),
            at: at(minute),
            resolved: None,
        }
    }

    /// Alerts join the open incident of their key; it resolves with its
    /// last alert, and the key then opens a new one.
    #[test]
    fn an_incident_lives_while_any_of_its_alerts_fires() {
        let mut book = IncidentBook::default();
        let key = ("k".to_string(), vec![("data.service".into(), "api".into())]);
        let id = book.open("alert.firing", key.clone(), ("D1", "F1"), alert(1, 0));
        assert_eq!(book.open_for("k").map(|i| i.id.as_str()), Some(id.as_str()));
        book.join(&id, alert(2, 1));
        book.join(&id, alert(2, 2));
        assert_eq!(book.incidents[&id].alerts, 3);
        assert_eq!(book.incidents[&id].firing.len(), 2);
        assert_eq!(
            book.alert_resolved("F1", "f1", at(3)),
            Some(Resolution::StillFiring {
                incident: id.clone(),
                firing: 1
            })
        );
        assert_eq!(
            book.alert_resolved("F1", "f2", at(4)),
            Some(Resolution::Resolved {
                incident: id.clone()
            })
        );
        assert!(book.open_for("k").is_none());
        assert_eq!(book.alert_resolved("F9", "f1", at(5)), None);
        let again = book.open("alert.firing", key, ("D2", "F2"), alert(3, 6));
        assert_ne!(again, id);
        assert_eq!(book.take_changed().len(), 2);
    }

    /// Told once its wait is over (its page), then of alerts that joined
    /// at most once per interval, and again while it fires once per
    /// repeat, on a simulated clock.
    #[test]
    fn people_hear_of_an_incident_after_wait_then_per_interval_and_repeat() {
        let mut book = IncidentBook::default();
        let timing = |_: &str| {
            Some(crate::playbook::group::Timing {
                wait: Duration::seconds(30),
                interval: Some(Duration::minutes(5)),
                repeat: Some(Duration::hours(4)),
            })
        };
        let key = (
            "k".to_string(),
            vec![("subject".into(), "service/api".into())],
        );
        let id = book.open("alert.firing", key, ("D1", "F1"), alert(1, 0));
        book.join(&id, alert(2, 0));
        assert!(book.tellings(at(0), true, timing).is_empty());
        // 30 s: its page carries both alerts; nothing more to tell.
        assert!(book.tellings(at(1), true, timing).is_empty());
        assert_eq!(book.incidents[&id].told.map(|t| t.1), Some(2));
        book.join(&id, alert(3, 2));
        book.join(&id, alert(4, 3));
        assert!(
            book.tellings(at(5), true, timing).is_empty(),
            "4.5 minutes since its page"
        );
        let told = book.tellings(at(6), true, timing);
        assert_eq!(told.len(), 1);
        assert_eq!((told[0].joined, told[0].alerts, told[0].firing), (2, 4, 4));
        assert!(
            book.tellings(at(12), true, timing).is_empty(),
            "nothing new"
        );
        let repeat = book.tellings(at(6 + 240), true, timing);
        assert_eq!(repeat.len(), 1);
        assert_eq!(repeat[0].joined, 0, "a repeat");
        for n in 1..=4 {
            book.alert_resolved("F1", &format!("f{n}"), at(250));
        }
        assert!(
            book.tellings(at(600), true, timing).is_empty(),
            "resolved: never again"
        );
    }
}
