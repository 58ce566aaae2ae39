//! Reaching people: who they are and how to reach them (`Person`), who is
//! on call when (`schedule`), whom to page and in what order
//! (`escalation`), and pages themselves (`pages`: notified, escalated,
//! acknowledged, resolved, every attempt kept). Pure data and state
//! machines with the time passed in; the engine owns the book of pages and
//! journals it, the intake delivers the notifications.

pub mod escalation;
pub mod pages;
pub mod schedule;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use escalation::{EscalationPolicy, Level, Target};
pub use pages::{Attempt, Delivery, Page, PageBook, PageState};
pub use schedule::{OnCall, Override, Schedule};

/// A way to reach a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
    Slack,
    /// A JSON webhook, signed with an HMAC-SHA256 header.
    Webhook,
    /// Email over SMTP.
    Email,
    /// PagerDuty's Events API v2 (the address is an integration's routing
    /// key): signalbox in front of a PagerDuty or Opsgenie a team has.
    #[serde(rename = "pagerduty")]
    PagerDuty,
}

impl Method {
    pub fn parse(text: &str) -> Option<Method> {
        match text {
            "slack" => Some(Method::Slack),
            "webhook" => Some(Method::Webhook),
            "email" => Some(Method::Email),
            "pagerduty" => Some(Method::PagerDuty),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Slack => "slack",
            Method::Webhook => "webhook",
            Method::Email => "email",
            Method::PagerDuty => "pagerduty",
        }
    }
}

/// How urgent a page is: which of a person's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    High,
    Low,
}

/// One step of a person's notification rules: this method, this long
/// after the page reached them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub method: Method,
    #[serde(with = "seconds")]
    pub after: Duration,
}

impl Rule {
    /// `"slack"`, `"email after 2m"`.
    pub fn parse(text: &str) -> Option<Rule> {
        let (method, after) = match text.split_once(" after ") {
            Some((m, after)) => {
                let after = humantime::parse_duration(after.trim()).ok()?;
                (m, Duration::from_std(after).ok()?)
            }
            None => (text, Duration::zero()),
        };
        Some(Rule {
            method: Method::parse(method.trim())?,
            after,
        })
    }
}

/// A person who can be paged: where to reach them, and in what order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub team: String,
    /// Address by method: a webhook URL, an email address, a routing key.
    /// Written out (journaled, answered) only as `shown` has it: a Slack
    /// URL or a routing key is a credential.
    #[serde(serialize_with = "shown_contact")]
    pub contact: BTreeMap<Method, String>,
    /// Notification rules for urgent pages, then for the others.
    pub urgent: Vec<Rule>,
    pub low: Vec<Rule>,
}

impl Person {
    /// The rules for `urgency`, keeping those whose method has an address;
    /// with none written, every method they have, at once.
    pub fn rules(&self, urgency: Urgency) -> Vec<Rule> {
        let written = match urgency {
            Urgency::High => &self.urgent,
            Urgency::Low if self.low.is_empty() => &self.urgent,
            Urgency::Low => &self.low,
        };
        let usable: Vec<Rule> = written
            .iter()
            .filter(|r| self.contact.contains_key(&r.method))
            .cloned()
            .collect();
        if !usable.is_empty() || !written.is_empty() {
            return usable;
        }
        self.contact
            .keys()
            .map(|&method| Rule {
                method,
                after: Duration::zero(),
            })
            .collect()
    }
}

/// The people, schedules and escalation policies of a deployment, with the
/// overrides set at run time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Roster {
    pub people: BTreeMap<String, Person>,
    pub schedules: BTreeMap<String, Schedule>,
    pub policies: BTreeMap<String, EscalationPolicy>,
    /// Each team's escalation policy.
    pub team_policies: BTreeMap<String, String>,
    /// Each team's lead: paged when a level of its policy reaches nobody.
    #[serde(default)]
    pub team_leads: BTreeMap<String, String>,
    /// Journaled; kept across reloads and restarts.
    #[serde(default)]
    pub overrides: Vec<Override>,
}

impl Roster {
    /// Nobody to page: the demo, or a deployment without people's contacts.
    pub fn is_empty(&self) -> bool {
        self.people.is_empty() && self.schedules.is_empty() && self.policies.is_empty()
    }

    /// Who is on call at `at` on each schedule (of `team` only, if given).
    pub fn on_call(&self, at: DateTime<Utc>, team: Option<&str>) -> Vec<OnCall> {
        self.schedules
            .values()
            .filter(|s| team.is_none_or(|t| s.team == t))
            .map(|s| s.on_call(at, &self.overrides))
            .collect()
    }

    /// The people a level's targets name at `at`: a schedule's on-call
    /// person, a person, a team's on-call people (its schedules), each once.
    pub fn people_for(&self, targets: &[Target], at: DateTime<Utc>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |p: String| {
            if !out.contains(&p) {
                out.push(p);
            }
        };
        for target in targets {
            match target {
                Target::Person(p) => add(p.clone()),
                Target::Schedule(s) => {
                    if let Some(p) = self
                        .schedules
                        .get(s)
                        .and_then(|s| s.on_call(at, &self.overrides).person)
                    {
                        add(p);
                    }
                }
                Target::Team(t) => {
                    for on in self.on_call(at, Some(t)) {
                        if let Some(p) = on.person {
                            add(p);
                        }
                    }
                }
            }
        }
        out
    }

    /// Each schedule (of `team` only, if given) at `at`: who is on call and
    /// until when, who comes next, and the first gap within a week.
    pub fn rota(&self, at: DateTime<Utc>, team: Option<&str>) -> Vec<Rota> {
        self.schedules
            .values()
            .filter(|s| team.is_none_or(|t| s.team == t))
            .map(|s| {
                let now = s.on_call(at, &self.overrides);
                let next = now.until.map(|t| s.on_call(t, &self.overrides));
                let gap = s.gaps(at, Duration::days(7)).into_iter().next();
                Rota { now, next, gap }
            })
            .collect()
    }

    /// The lead of the team whose escalation policy `policy` is.
    pub fn lead_for(&self, policy: &str) -> Option<&str> {
        self.team_policies
            .iter()
            .filter(|(_, p)| p.as_str() == policy)
            .find_map(|(team, _)| self.team_leads.get(team))
            .map(String::as_str)
    }

    /// Keeps the overrides of `from` (set at run time) over this roster's
    /// schedules, as a reload keeps them.
    pub fn keep_overrides(&mut self, from: &Roster) {
        self.overrides = from.overrides.clone();
    }
}

/// A schedule now and next: the On-call view's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rota {
    pub now: OnCall,
    /// Who is on call once `now` ends.
    pub next: Option<OnCall>,
    /// The first stretch within a week when nobody is (layers only).
    pub gap: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// An address as it may be journaled or shown: an email address whole;
/// a URL's scheme and host (its path holds the token of a Slack webhook);
/// a routing key's last four characters.
pub fn shown(method: Method, address: &str) -> String {
    match method {
        Method::Email => address.to_string(),
        Method::Slack | Method::Webhook => match reqwest::Url::parse(address) {
            Ok(url) => format!("{}://{}/…", url.scheme(), url.host_str().unwrap_or("")),
            Err(_) => "…".to_string(),
        },
        Method::PagerDuty => {
            let tail: String = address.chars().rev().take(4).collect();
            format!("…{}", tail.chars().rev().collect::<String>())
        }
    }
}

fn shown_contact<S: serde::Serializer>(
    contact: &BTreeMap<Method, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(contact.len()))?;
    for (method, address) in contact {
        map.serialize_entry(method, &shown(*method, address))?;
    }
    map.end()
}

/// A duration as whole seconds.
pub(crate) mod seconds {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::seconds(i64::deserialize(d)?))
    }
}
