//! organization.toml's paging half: people's contact methods and
//! notification rules (on `[[agent]]` or `[[person]]`), `[[schedule]]`s
//! with their layers, `[[escalation]]` policies with their levels, and
//! each team's policy; read into a `paging::Roster`, every reference
//! checked, problems at `FILE:LINE`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use serde::Deserialize;
use toml::Spanned;

use super::problem::{Problem, Source};
use crate::paging::schedule::{Layer, Restriction, Rotation};
use crate::paging::{EscalationPolicy, Level, Method, Person, Roster, Rule, Schedule, Target};

/// How a person is reached (part of `[[agent]]` / `[[person]]`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Reach {
    /// Address by method: `slack` and `webhook` URLs, an `email` address.
    #[serde(default)]
    pub contact: BTreeMap<String, Spanned<String>>,
    /// Notification rules for urgent pages: `"slack"`, `"email after 2m"`.
    #[serde(default)]
    pub urgent: Vec<Spanned<String>>,
    #[serde(default)]
    pub low: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleFile {
    id: Spanned<String>,
    team: Spanned<String>,
    timezone: Option<Spanned<String>>,
    #[serde(default, rename = "layer")]
    layers: Vec<LayerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerFile {
    members: Spanned<Vec<String>>,
    /// `"2026-11-30 09:00"`: the first turn's start, local; its time of
    /// day is the handoff.
    start: Spanned<String>,
    rotation: Spanned<String>,
    #[serde(default)]
    restrict: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EscalationFile {
    id: Spanned<String>,
    #[serde(default)]
    repeats: u32,
    #[serde(default, rename = "level")]
    levels: Vec<LevelFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelFile {
    targets: Vec<Spanned<String>>,
    after: Spanned<String>,
}

/// What the roster is read from.
pub(super) struct RosterFiles<'a> {
    /// Each person: id, team, how to reach them.
    pub people: Vec<(&'a Spanned<String>, &'a str, &'a Reach)>,
    /// Each team, its escalation policy and its lead.
    pub teams: Vec<TeamPaging<'a>>,
    pub schedules: &'a [ScheduleFile],
    pub escalations: &'a [EscalationFile],
    /// The calendar's zone, for schedules that name none.
    pub timezone: Option<chrono_tz::Tz>,
}

/// A team's id, escalation policy and lead, as written.
pub(super) type TeamPaging<'a> = (
    &'a Spanned<String>,
    Option<&'a Spanned<String>>,
    Option<&'a Spanned<String>>,
);

/// Reads and checks the roster; problems go to `out`.
pub(super) fn read(src: &Source<'_>, files: &RosterFiles<'_>, out: &mut Vec<Problem>) -> Roster {
    let mut roster = Roster::default();
    for (id, team, reach) in &files.people {
        let person = read_person(src, id.get_ref(), team, reach, out);
        roster.people.insert(person.id.clone(), person);
    }
    let teams: BTreeSet<&str> = files
        .teams
        .iter()
        .map(|(t, _, _)| t.get_ref().as_str())
        .collect();
    for s in files.schedules {
        if let Some(schedule) = read_schedule(src, s, &teams, &roster, files.timezone, out) {
            roster.schedules.insert(schedule.id.clone(), schedule);
        }
    }
    for e in files.escalations {
        if let Some(policy) = read_policy(src, e, &teams, &roster, out) {
            roster.policies.insert(policy.id.clone(), policy);
        }
    }
    for (team, _, lead) in &files.teams {
        let Some(lead) = lead else { continue };
        match roster.people.get(lead.get_ref()) {
            Some(p) if !p.contact.is_empty() => {
                roster
                    .team_leads
                    .insert(team.get_ref().clone(), lead.get_ref().clone());
            }
            Some(_) => out.push(src.at(
                lead.span().start,
                format!("lead `{}` has no contact to be paged by", lead.get_ref()),
            )),
            None => out.push(src.at(
                lead.span().start,
                format!(
                    "lead `{}` is not an [[agent]] or [[person]]",
                    lead.get_ref()
                ),
            )),
        }
    }
    for (team, policy, _) in &files.teams {
        let Some(policy) = policy else { continue };
        if !roster.policies.contains_key(policy.get_ref()) {
            out.push(src.at(
                policy.span().start,
                format!("escalation `{}` is not an [[escalation]]", policy.get_ref()),
            ));
        }
        roster
            .team_policies
            .insert(team.get_ref().clone(), policy.get_ref().clone());
    }
    unreachable(src, files, &roster, out);
    roster
}

fn read_person(
    src: &Source<'_>,
    id: &str,
    team: &str,
    reach: &Reach,
    out: &mut Vec<Problem>,
) -> Person {
    let mut contact = BTreeMap::new();
    for (method, address) in &reach.contact {
        let at = address.span().start;
        let Some(m) = Method::parse(method) else {
            out.push(src.at(
                at,
                format!(
                    "person `{id}`: contact `{method}` is not slack, webhook, email or pagerduty"
                ),
            ));
            continue;
        };
        let text = address.get_ref();
        let fits = match m {
            Method::Email => text.contains('@') && !text.contains(char::is_whitespace),
            // An Events API v2 integration key: 32 letters and digits.
            Method::PagerDuty => {
                text.len() == 32 && text.chars().all(|c| c.is_ascii_alphanumeric())
            }
            Method::Slack | Method::Webhook => {
                reqwest::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
            }
        };
        if !fits {
            out.push(src.at(
                at,
                match m {
                    Method::PagerDuty => format!(
                        "person `{id}`: pagerduty {:?} is not an Events API v2 integration key (32 letters and digits)",
                        crate::paging::shown(m, text)
                    ),
                    _ => format!("person `{id}`: {method} address {text:?} is not usable"),
                },
            ));
            continue;
        }
        contact.insert(m, text.clone());
    }
    let mut rules = |written: &[Spanned<String>]| -> Vec<Rule> {
        let mut rules = Vec::new();
        for r in written {
            match Rule::parse(r.get_ref()) {
                Some(rule) if contact.contains_key(&rule.method) => rules.push(rule),
                Some(rule) => out.push(src.at(
                    r.span().start,
                    format!(
                        "person `{id}`: rule {:?} uses {}, which they have no contact for",
                        r.get_ref(),
                        rule.method.as_str()
                    ),
                )),
                None => out.push(src.at(
                    r.span().start,
                    format!(
                        "person `{id}`: rule {:?} is not like \"slack\" or \"email after 2m\"",
                        r.get_ref()
                    ),
                )),
            }
        }
        rules
    };
    let urgent = rules(&reach.urgent);
    let low = rules(&reach.low);
    Person {
        id: id.to_string(),
        team: team.to_string(),
        contact,
        urgent,
        low,
    }
}

fn read_schedule(
    src: &Source<'_>,
    s: &ScheduleFile,
    teams: &BTreeSet<&str>,
    roster: &Roster,
    default_tz: Option<chrono_tz::Tz>,
    out: &mut Vec<Problem>,
) -> Option<Schedule> {
    let id = s.id.get_ref();
    let before = out.len();
    if !teams.contains(s.team.get_ref().as_str()) {
        out.push(src.at(
            s.team.span().start,
            format!(
                "schedule `{id}`: team `{}` is not a [[team]]",
                s.team.get_ref()
            ),
        ));
    }
    let timezone = match &s.timezone {
        Some(tz) => super::org::parse_tz(src, tz, out)?,
        None => default_tz.unwrap_or(chrono_tz::UTC),
    };
    if s.layers.is_empty() {
        out.push(src.at(
            s.id.span().start,
            format!("schedule `{id}` has no [[schedule.layer]]"),
        ));
    }
    let layers: Vec<Layer> = s
        .layers
        .iter()
        .filter_map(|l| read_layer(src, id, l, roster, out))
        .collect();
    (out.len() == before).then(|| Schedule {
        id: id.clone(),
        team: s.team.get_ref().clone(),
        timezone,
        layers,
    })
}

fn read_layer(
    src: &Source<'_>,
    schedule: &str,
    l: &LayerFile,
    roster: &Roster,
    out: &mut Vec<Problem>,
) -> Option<Layer> {
    let before = out.len();
    let mut bad =
        |at: usize, what: String| out.push(src.at(at, format!("schedule `{schedule}`: {what}")));
    for m in l.members.get_ref() {
        if !roster.people.contains_key(m) {
            bad(
                l.members.span().start,
                format!("member `{m}` is not an [[agent]] or [[person]]"),
            );
        }
    }
    if l.members.get_ref().is_empty() {
        bad(l.members.span().start, "a layer needs members".into());
    }
    let start = NaiveDateTime::parse_from_str(l.start.get_ref(), "%Y-%m-%d %H:%M");
    if start.is_err() {
        bad(
            l.start.span().start,
            format!(
                "start {:?} is not like \"2026-11-30 09:00\"",
                l.start.get_ref()
            ),
        );
    }
    let rotation = Rotation::parse(l.rotation.get_ref());
    if rotation.is_none() {
        bad(
            l.rotation.span().start,
            format!(
                "rotation {:?} is not like \"12h\", \"1d\" or \"1w\"",
                l.rotation.get_ref()
            ),
        );
    }
    let mut restrictions = Vec::new();
    for r in &l.restrict {
        match Restriction::parse(r.get_ref()) {
            Some(r) => restrictions.push(r),
            None => bad(
                r.span().start,
                format!(
                    "restriction {:?} is not like \"mon-fri 09:00-17:00\"",
                    r.get_ref()
                ),
            ),
        }
    }
    if out.len() != before {
        return None;
    }
    Some(Layer {
        members: l.members.get_ref().clone(),
        start: start.ok()?,
        rotation: rotation?,
        restrictions,
    })
}

fn read_policy(
    src: &Source<'_>,
    e: &EscalationFile,
    teams: &BTreeSet<&str>,
    roster: &Roster,
    out: &mut Vec<Problem>,
) -> Option<EscalationPolicy> {
    let id = e.id.get_ref();
    let before = out.len();
    if e.levels.is_empty() {
        out.push(src.at(
            e.id.span().start,
            format!("escalation `{id}` has no [[escalation.level]]"),
        ));
    }
    let mut levels = Vec::new();
    for l in &e.levels {
        let mut targets = Vec::new();
        for t in &l.targets {
            let known = match Target::parse(t.get_ref()) {
                Some(Target::Person(p)) if roster.people.contains_key(&p) => {
                    Some(Target::Person(p))
                }
                Some(Target::Schedule(s)) if roster.schedules.contains_key(&s) => {
                    Some(Target::Schedule(s))
                }
                Some(Target::Team(t)) if teams.contains(t.as_str()) => Some(Target::Team(t)),
                _ => None,
            };
            match known {
                Some(target) => targets.push(target),
                None => out.push(src.at(
                    t.span().start,
                    format!(
                        "escalation `{id}`: target {:?} is not schedule:ID, person:ID or team:ID of this organization",
                        t.get_ref()
                    ),
                )),
            }
        }
        match crate::decide::policy::parse_duration(l.after.get_ref()) {
            Ok(after) if after > chrono::Duration::zero() => {
                levels.push(crate::paging::Level { targets, after })
            }
            _ => out.push(src.at(
                l.after.span().start,
                format!(
                    "escalation `{id}`: after {:?} is not a duration like 5m",
                    l.after.get_ref()
                ),
            )),
        }
    }
    (out.len() == before).then(|| EscalationPolicy {
        id: id.clone(),
        levels,
        repeats: e.repeats,
    })
}

/// A person a schedule or a policy pages who has no way to be reached.
fn unreachable(src: &Source<'_>, files: &RosterFiles<'_>, roster: &Roster, out: &mut Vec<Problem>) {
    let mut paged: BTreeSet<&str> = BTreeSet::new();
    for s in roster.schedules.values() {
        paged.extend(
            s.layers
                .iter()
                .flat_map(|l| l.members.iter().map(String::as_str)),
        );
    }
    for p in roster.policies.values() {
        for t in p.levels.iter().flat_map(|l: &Level| &l.targets) {
            if let Target::Person(id) = t {
                paged.insert(id);
            }
        }
    }
    for (id, _, _) in &files.people {
        let person = roster.people.get(id.get_ref());
        if paged.contains(id.get_ref().as_str()) && person.is_some_and(|p| p.contact.is_empty()) {
            out.push(src.at(
                id.span().start,
                format!(
                    "person `{}` is paged (a schedule or an escalation names them) but has no contact",
                    id.get_ref()
                ),
            ));
        }
    }
}
