//! Pages: a person must hear of something now. A page notifies its
//! policy's first level by each person's notification rules; if nobody
//! acknowledges within the level's delay, the next level is paged, and the
//! round repeats up to the policy's repeats. Acknowledging stops the
//! escalation for everyone; resolving ends the page. Every attempt (who,
//! which method, when, delivered or failed with the answer) is kept on the
//! page; a failed attempt moves that person on to their next method.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Method, Roster, Urgency};

/// Where a page stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageState {
    Triggered,
    Acknowledged,
    Resolved,
}

impl PageState {
    pub fn as_str(self) -> &'static str {
        match self {
            PageState::Triggered => "triggered",
            PageState::Acknowledged => "acknowledged",
            PageState::Resolved => "resolved",
        }
    }
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "answer")]
pub enum Delivery {
    /// Handed to the channel; no answer yet.
    Sending,
    Delivered(String),
    Failed(String),
}

/// What an attempt tells its person's channel: the page, or (to a
/// channel that keeps alerts of its own, PagerDuty) that it was
/// acknowledged or resolved here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tells {
    #[default]
    Page,
    Acknowledged,
    Resolved,
}

impl Tells {
    fn is_page(&self) -> bool {
        *self == Tells::Page
    }
}

/// One notification of one person by one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// From 1, per page: with the page's id, the idempotency key.
    pub n: u32,
    pub person: String,
    pub method: Method,
    pub level: usize,
    pub round: u32,
    pub at: DateTime<Utc>,
    pub delivery: Delivery,
    #[serde(default, skip_serializing_if = "Tells::is_page")]
    pub tells: Tells,
}

/// A notification not yet sent: a person's rule, due at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Due {
    pub person: String,
    /// Index into the person's rules for the page's urgency.
    pub rule: usize,
    pub at: DateTime<Utc>,
}

/// A page and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub id: String,
    pub policy: String,
    pub urgency: Urgency,
    /// One line: what needs a person.
    pub title: String,
    /// Why: the decision's reason and the rules that fired.
    pub why: String,
    pub subject: String,
    /// What it is about, for the evidence: a decision, a flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    /// The review item it is about (paged while nobody answers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_id: Option<String>,
    /// The signal that led to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_id: Option<String>,
    /// The incident it is about, and how many alerts that has gathered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<(String, u64)>,
    pub state: PageState,
    pub level: usize,
    pub round: u32,
    /// When the current level was paged.
    pub level_since: DateTime<Utc>,
    pub opened: DateTime<Utc>,
    /// Who acknowledged or resolved it, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<(String, DateTime<Utc>)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<(String, DateTime<Utc>)>,
    pub attempts: Vec<Attempt>,
    #[serde(default)]
    pub due: Vec<Due>,
    /// What went wrong on the way: a level that reached nobody.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A notification to send now: the attempt, and where it goes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Send {
    pub page_id: String,
    pub attempt: u32,
    pub person: String,
    pub method: Method,
    pub address: String,
    pub tells: Tells,
    /// The page as it stands, for the message.
    pub page: Box<Page>,
}

/// Why an action on a page was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PageRefused {
    #[error("no page {0}")]
    Unknown(String),
    #[error("page {id} is already {state}")]
    Done { id: String, state: &'static str },
    #[error("escalation policy `{0}` is not in the deployment")]
    NoPolicy(String),
}

/// Resolved pages kept in memory (for `GET /v1/pages?state=all` and the
/// figures), at most.
const KEPT_RESOLVED: usize = 1_000;

/// What opens a page.
pub struct Opening {
    pub policy: String,
    pub urgency: Urgency,
    pub title: String,
    pub why: String,
    pub subject: String,
    pub decision_id: Option<String>,
    pub flow_id: Option<String>,
    pub review_id: Option<String>,
    pub signal_id: Option<String>,
    pub incident: Option<(String, u64)>,
    /// How long the first level waits (an incident's group wait, for more
    /// alerts to join before anyone is told).
    pub hold: chrono::Duration,
}

/// Every page in memory: open ones, and those that ended recently.
#[derive(Debug, Default)]
pub struct PageBook {
    pub pages: BTreeMap<String, Page>,
    next: u64,
    pub numbering: crate::Numbering,
    /// Changed since the last take (for the journal).
    changed: Vec<String>,
    /// Pages acknowledged or resolved whose channels that keep alerts of
    /// their own are yet to be told (at the next tick).
    to_tell: Vec<(String, Tells)>,
}

impl PageBook {
    /// Opens a page and pages its first level at once.
    pub fn open(
        &mut self,
        opening: Opening,
        roster: &Roster,
        now: DateTime<Utc>,
    ) -> Result<String, PageRefused> {
        if !roster.policies.contains_key(&opening.policy) {
            return Err(PageRefused::NoPolicy(opening.policy));
        }
        self.next = self.numbering.after(self.next);
        let id = format!("P{:07}", self.next);
        let mut page = Page {
            id: id.clone(),
            policy: opening.policy,
            urgency: opening.urgency,
            title: opening.title,
            why: opening.why,
            subject: opening.subject,
            decision_id: opening.decision_id,
            flow_id: opening.flow_id,
            review_id: opening.review_id,
            signal_id: opening.signal_id,
            incident: opening.incident,
            state: PageState::Triggered,
            level: 0,
            round: 0,
            level_since: now,
            opened: now,
            acknowledged: None,
            resolved: None,
            attempts: Vec::new(),
            due: Vec::new(),
            notes: Vec::new(),
        };
        page_level(
            &mut page,
            roster,
            now + opening.hold.max(chrono::Duration::zero()),
        );
        self.pages.insert(id.clone(), page);
        self.changed.push(id.clone());
        Ok(id)
    }

    /// Restores a journaled page (a restart), keeping ids above it.
    pub fn restore(&mut self, page: Page) {
        self.taken(&page.id);
        self.pages.insert(page.id.clone(), page);
    }

    /// An id the journal holds: new pages are numbered above it.
    pub fn taken(&mut self, id: &str) {
        if let Some(n) = id.strip_prefix('P').and_then(|n| n.parse::<u64>().ok()) {
            self.next = self.next.max(n);
        }
    }

    /// Lets go of the oldest resolved pages past `KEPT_RESOLVED` (the
    /// journal keeps them all): memory follows open pages.
    fn forget_resolved(&mut self) {
        let resolved: Vec<String> = self
            .pages
            .values()
            .filter(|p| p.state == PageState::Resolved)
            .map(|p| p.id.clone())
            .collect();
        let over = resolved.len().saturating_sub(KEPT_RESOLVED);
        for id in resolved.into_iter().take(over) {
            self.pages.remove(&id);
        }
    }

    /// The notifications due by `now`, and escalations whose delay ran out.
    pub fn tick(&mut self, roster: &Roster, now: DateTime<Utc>) -> Vec<Send> {
        if self.pages.len() > KEPT_RESOLVED * 2 {
            self.forget_resolved();
        }
        let mut out = Vec::new();
        for (id, tells) in std::mem::take(&mut self.to_tell) {
            if let Some(page) = self.pages.get_mut(&id) {
                tell(page, tells, roster, now, &mut out);
                self.changed.push(id);
            }
        }
        for page in self.pages.values_mut() {
            if page.state != PageState::Triggered {
                continue;
            }
            let before = (page.level, page.round, page.attempts.len());
            escalate(page, roster, now);
            send_due(page, roster, now, &mut out);
            if before != (page.level, page.round, page.attempts.len()) {
                self.changed.push(page.id.clone());
            }
        }
        out
    }

    /// A person acknowledges: escalation stops for everyone.
    pub fn acknowledge(
        &mut self,
        id: &str,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<&Page, PageRefused> {
        self.end(id, who, now, PageState::Acknowledged)
    }

    /// The page is over.
    pub fn resolve(
        &mut self,
        id: &str,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<&Page, PageRefused> {
        self.end(id, who, now, PageState::Resolved)
    }

    fn end(
        &mut self,
        id: &str,
        who: &str,
        now: DateTime<Utc>,
        to: PageState,
    ) -> Result<&Page, PageRefused> {
        let page = self
            .pages
            .get_mut(id)
            .ok_or_else(|| PageRefused::Unknown(id.to_string()))?;
        let done = page.state == PageState::Resolved
            || (page.state == PageState::Acknowledged && to == PageState::Acknowledged);
        if done {
            return Err(PageRefused::Done {
                id: id.to_string(),
                state: page.state.as_str(),
            });
        }
        page.state = to;
        page.due.clear();
        self.to_tell.push((
            id.to_string(),
            match to {
                PageState::Acknowledged => Tells::Acknowledged,
                _ => Tells::Resolved,
            },
        ));
        match to {
            PageState::Acknowledged => page.acknowledged = Some((who.to_string(), now)),
            _ => page.resolved = Some((who.to_string(), now)),
        }
        self.changed.push(id.to_string());
        Ok(page)
    }

    /// What became of an attempt; a failure moves that person on to their
    /// next method at once.
    pub fn delivered(
        &mut self,
        id: &str,
        attempt: u32,
        result: Result<String, String>,
        now: DateTime<Utc>,
    ) {
        let Some(page) = self.pages.get_mut(id) else {
            return;
        };
        let Some(a) = page.attempts.iter_mut().find(|a| a.n == attempt) else {
            return;
        };
        let failed = result.is_err();
        a.delivery = match result {
            Ok(answer) => Delivery::Delivered(answer),
            Err(answer) => Delivery::Failed(answer),
        };
        let person = a.person.clone();
        if failed && page.state == PageState::Triggered {
            // The next rule of theirs not yet due comes now.
            if let Some(d) = page
                .due
                .iter_mut()
                .filter(|d| d.person == person)
                .min_by_key(|d| d.rule)
            {
                d.at = d.at.min(now);
            }
        }
        self.changed.push(id.to_string());
    }

    /// Pages changed since the last call, as they stand now.
    pub fn take_changed(&mut self) -> Vec<Page> {
        let mut ids = std::mem::take(&mut self.changed);
        ids.sort();
        ids.dedup();
        ids.iter()
            .filter_map(|id| self.pages.get(id).cloned())
            .collect()
    }

    /// Open pages about a flow.
    pub fn open_for_flow(&self, flow_id: &str) -> Vec<String> {
        self.pages
            .values()
            .filter(|p| p.state != PageState::Resolved && p.flow_id.as_deref() == Some(flow_id))
            .map(|p| p.id.clone())
            .collect()
    }
}

/// A page as text, for the console's detail and `explain`: what, why,
/// where it stands, every attempt and what is due next.
pub fn describe(page: &Page) -> Vec<String> {
    let time = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let mut out = vec![
        format!(
            "{} {} ({:?}) · policy {} · level {} · round {}",
            page.id,
            page.state.as_str(),
            page.urgency,
            page.policy,
            page.level + 1,
            page.round + 1
        ),
        page.title.clone(),
        format!("why: {}", page.why),
        format!("opened {}", time(&page.opened)),
    ];
    if let Some((who, at)) = &page.acknowledged {
        out.push(format!("acknowledged by {who} at {}", time(at)));
    }
    if let Some((who, at)) = &page.resolved {
        out.push(format!("resolved by {who} at {}", time(at)));
    }
    if let Some((incident, alerts)) = &page.incident {
        out.push(format!("incident {incident}: {alerts} alerts"));
    }
    out.push(format!("attempts ({}):", page.attempts.len()));
    for a in &page.attempts {
        let how = match &a.delivery {
            Delivery::Sending => "sending".to_string(),
            Delivery::Delivered(answer) => format!("delivered: {answer}"),
            Delivery::Failed(why) => format!("FAILED: {why}"),
        };
        let tells = match a.tells {
            Tells::Page => String::new(),
            Tells::Acknowledged => " (tells: acknowledged)".into(),
            Tells::Resolved => " (tells: resolved)".into(),
        };
        out.push(format!(
            "  #{} {} {} by {} · level {} round {}{tells} · {how}",
            a.n,
            a.at.format("%H:%M:%S"),
            a.person,
            a.method.as_str(),
            a.level + 1,
            a.round + 1
        ));
    }
    for note in &page.notes {
        out.push(format!("note: {note}"));
    }
    if !page.due.is_empty() {
        out.push("due:".into());
        for d in &page.due {
            out.push(format!(
                "  {} (rule {}) at {}",
                d.person,
                d.rule + 1,
                time(&d.at)
            ));
        }
    }
    out
}

/// Schedules the current level's people by their rules, from now.
fn page_level(page: &mut Page, roster: &Roster, now: DateTime<Utc>) {
    page.level_since = now;
    page.due.clear();
    let Some(level) = roster
        .policies
        .get(&page.policy)
        .and_then(|p| p.levels.get(page.level))
    else {
        return;
    };
    for person in roster.people_for(&level.targets, now) {
        due_for(page, roster, &person, now);
    }
    if !page.due.is_empty() {
        return;
    }
    // Nobody on call, or nobody with a way to be reached: the team's lead
    // hears of it, and the page says so.
    let level = page.level + 1;
    match roster.lead_for(&page.policy).map(String::from) {
        Some(lead) => {
            due_for(page, roster, &lead, now);
            page.notes.push(format!(
                "{}: level {level} reached nobody; the team's lead {lead} is paged",
                now.format("%Y-%m-%d %H:%M UTC")
            ));
        }
        None => page.notes.push(format!(
            "{}: level {level} reached nobody, and the team has no lead to page",
            now.format("%Y-%m-%d %H:%M UTC")
        )),
    }
    tracing::warn!(page = %page.id, level, "a page's level reached nobody");
}

/// Schedules `person`'s rules for the page's urgency, from now.
fn due_for(page: &mut Page, roster: &Roster, person: &str, now: DateTime<Utc>) {
    let rules = roster
        .people
        .get(person)
        .map(|p| p.rules(page.urgency))
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        page.due.push(Due {
            person: person.to_string(),
            rule: i,
            at: now + rule.after,
        });
    }
}

/// The next level (or round) once the current level's delay ran out.
fn escalate(page: &mut Page, roster: &Roster, now: DateTime<Utc>) {
    let Some(policy) = roster.policies.get(&page.policy) else {
        return;
    };
    let Some(level) = policy.levels.get(page.level) else {
        return;
    };
    if now < page.level_since + level.after {
        return;
    }
    if page.level + 1 < policy.levels.len() {
        page.level += 1;
    } else if page.round < policy.repeats {
        page.round += 1;
        page.level = 0;
    } else {
        // The last level of the last round: nobody more to page.
        page.level_since = now;
        page.due.clear();
        return;
    }
    page_level(page, roster, now);
}

/// Attempts for the rules that came due.
fn send_due(page: &mut Page, roster: &Roster, now: DateTime<Utc>, out: &mut Vec<Send>) {
    let (due, later): (Vec<Due>, Vec<Due>) = page.due.drain(..).partition(|d| d.at <= now);
    page.due = later;
    for d in due {
        let Some(person) = roster.people.get(&d.person) else {
            continue;
        };
        let Some(rule) = person.rules(page.urgency).get(d.rule).cloned() else {
            continue;
        };
        let Some(address) = person.contact.get(&rule.method) else {
            continue;
        };
        attempt(page, &d.person, rule.method, address, Tells::Page, now, out);
    }
}

/// Tells each PagerDuty its page reached (not refused) that the page was
/// acknowledged or resolved here, so that its own escalation stops too.
fn tell(page: &mut Page, tells: Tells, roster: &Roster, now: DateTime<Utc>, out: &mut Vec<Send>) {
    let mut told: Vec<String> = Vec::new();
    let reached: Vec<String> = page
        .attempts
        .iter()
        .filter(|a| a.method == Method::PagerDuty && a.tells == Tells::Page)
        .filter(|a| !matches!(a.delivery, Delivery::Failed(_)))
        .map(|a| a.person.clone())
        .collect();
    for person in reached {
        let Some(address) = roster
            .people
            .get(&person)
            .and_then(|p| p.contact.get(&Method::PagerDuty))
        else {
            continue;
        };
        if told.contains(address) {
            continue;
        }
        told.push(address.clone());
        attempt(page, &person, Method::PagerDuty, address, tells, now, out);
    }
}

/// Records an attempt on the page and queues it to go out.
fn attempt(
    page: &mut Page,
    person: &str,
    method: Method,
    address: &str,
    tells: Tells,
    now: DateTime<Utc>,
    out: &mut Vec<Send>,
) {
    let n = page.attempts.len() as u32 + 1;
    page.attempts.push(Attempt {
        n,
        person: person.to_string(),
        method,
        level: page.level,
        round: page.round,
        at: now,
        delivery: Delivery::Sending,
        tells,
    });
    out.push(Send {
        page_id: page.id.clone(),
        attempt: n,
        person: person.to_string(),
        method,
        address: address.to_string(),
        tells,
        page: Box::new(page.clone()),
    });
}

#[cfg(test)]
mod tests;
