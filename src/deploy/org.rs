//! organization.toml: the calendar, teams, agents, services, executors and
//! customers of the operation, read into a `World` the engine starts from.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::problem::{Problem, Source};
use crate::context::{Agent, Calendar, Customer, Health, Service, Shift, Team, Tier, World};
use crate::intake::probe::ProbeConfig;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgFile {
    calendar: Option<CalendarFile>,
    #[serde(default, rename = "team")]
    teams: Vec<TeamFile>,
    #[serde(default, rename = "agent")]
    agents: Vec<AgentFile>,
    /// People who take no steps but are paged (same fields as agents).
    #[serde(default, rename = "person")]
    persons: Vec<AgentFile>,
    #[serde(default, rename = "schedule")]
    schedules: Vec<super::roster::ScheduleFile>,
    #[serde(default, rename = "escalation")]
    escalations: Vec<super::roster::EscalationFile>,
    #[serde(default, rename = "service")]
    services: Vec<ServiceFile>,
    #[serde(default)]
    executors: BTreeMap<String, Spanned<String>>,
    #[serde(default, rename = "customer")]
    customers: Vec<CustomerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    timezone: Option<Spanned<String>>,
    hours: Option<Spanned<String>>,
    #[serde(default)]
    holidays: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamFile {
    id: Spanned<String>,
    #[serde(default)]
    process: String,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default = "team_capacity")]
    capacity: u32,
    shift: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    oncall: Vec<Spanned<String>>,
    /// The team's escalation policy (`[[escalation]]`).
    escalation: Option<Spanned<String>>,
    /// Who is paged when a level of the team's policy reaches nobody.
    lead: Option<Spanned<String>>,
}

fn team_capacity() -> u32 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    id: Spanned<String>,
    team: Spanned<String>,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default = "agent_capacity")]
    capacity: u32,
    shift: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    /// How they are paged.
    #[serde(default)]
    contact: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    urgent: Vec<Spanned<String>>,
    #[serde(default)]
    low: Vec<Spanned<String>>,
}

fn agent_capacity() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    id: Spanned<String>,
    owner: Option<Spanned<String>>,
    probe: Option<Spanned<ProbeFile>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeFile {
    url: String,
    interval: Option<String>,
    timeout: Option<String>,
    expect_status: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerFile {
    id: Spanned<String>,
    #[serde(default)]
    name: String,
    #[serde(default = "bronze")]
    tier: Tier,
}

fn bronze() -> Tier {
    Tier::Bronze
}

/// What an executor named in steps.toml is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorKind {
    /// An HTTP endpoint the step is POSTed to.
    Webhook(String),
    /// A task for people.
    Manual,
}

/// The organization, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Organization {
    pub world: World,
    pub executors: BTreeMap<String, ExecutorKind>,
    /// Health probes declared on services.
    pub probes: Vec<ProbeConfig>,
}

/// A text that is not `HH:MM-HH:MM` in whole hours.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{text:?} is not hours like \"08:00-18:00\" (whole hours, 00:00 to 24:00)")]
pub struct HoursError {
    pub text: String,
}

/// `HH:MM-HH:MM` in whole hours (the end may be 24:00; an end before the
/// start runs past midnight).
pub fn parse_hours(text: &str) -> Result<(u32, u32), HoursError> {
    let bad = || HoursError {
        text: text.to_string(),
    };
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let hour = |t: &str| -> Result<u32, HoursError> {
        let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m != 0 || h > 24 {
            return Err(bad());
        }
        Ok(h)
    };
    let (start, end) = (hour(a)?, hour(b)?);
    if start == 24 || start == end {
        return Err(bad());
    }
    Ok((start, end))
}

pub(super) fn parse_tz(
    src: &Source<'_>,
    tz: &Spanned<String>,
    out: &mut Vec<Problem>,
) -> Option<chrono_tz::Tz> {
    match chrono_tz::Tz::from_str(tz.get_ref()) {
        Ok(tz) => Some(tz),
        Err(_) => {
            out.push(src.at(
                tz.span().start,
                format!(
                    "time zone {:?} is not an IANA name like \"Europe/Berlin\"",
                    tz.get_ref()
                ),
            ));
            None
        }
    }
}

fn parse_shift(
    src: &Source<'_>,
    shift: &Option<Spanned<String>>,
    tz: &Option<Spanned<String>>,
    out: &mut Vec<Problem>,
) -> Shift {
    let timezone = tz.as_ref().and_then(|t| parse_tz(src, t, out));
    let Some(shift) = shift else {
        return Shift {
            timezone,
            ..Shift::ALWAYS
        };
    };
    match parse_hours(shift.get_ref()) {
        Ok((start_hour, end_hour)) => Shift {
            start_hour,
            end_hour,
            timezone,
        },
        Err(e) => {
            out.push(src.at(shift.span().start, format!("shift: {e}")));
            Shift::ALWAYS
        }
    }
}

/// Reads organization.toml; every problem found is pushed to `out`.
pub fn read(src: &Source<'_>, out: &mut Vec<Problem>) -> Option<Organization> {
    let file: OrgFile = match toml::from_str(src.text) {
        Ok(f) => f,
        Err(e) => {
            out.push(src.toml(&e));
            return None;
        }
    };
    let before = out.len();
    let mut ids = Ids::default();
    let calendar = file
        .calendar
        .as_ref()
        .map(|c| read_calendar(src, c, out))
        .unwrap_or_default();
    let (teams, agents) = read_people(src, &file, &mut ids, out);
    let (services, probes) = read_services(src, &file, &mut ids, out);
    let executors = read_executors(src, &file, out);
    let mut customers = Vec::new();
    for c in &file.customers {
        ids.check(src, "customer", &c.id, out);
        customers.push(Customer {
            id: c.id.get_ref().clone(),
            name: c.name.clone(),
            tier: c.tier,
            open_escalation: false,
        });
    }
    let reaches: Vec<super::roster::Reach> = file
        .agents
        .iter()
        .chain(&file.persons)
        .map(|a| super::roster::Reach {
            contact: a.contact.clone(),
            urgent: a.urgent.clone(),
            low: a.low.clone(),
        })
        .collect();
    let roster_files = super::roster::RosterFiles {
        people: file
            .agents
            .iter()
            .chain(&file.persons)
            .zip(&reaches)
            .map(|(a, reach)| (&a.id, a.team.get_ref().as_str(), reach))
            .collect(),
        teams: file
            .teams
            .iter()
            .map(|t| (&t.id, t.escalation.as_ref(), t.lead.as_ref()))
            .collect(),
        schedules: &file.schedules,
        escalations: &file.escalations,
        timezone: calendar.timezone,
    };
    let roster = super::roster::read(src, &roster_files, out);
    let world = World {
        calendar,
        teams,
        agents,
        services,
        customers,
        roster,
        ..World::default()
    };
    (out.len() == before).then_some(Organization {
        world,
        executors,
        probes,
    })
}

/// Ids seen so far, by kind: each must be usable in an entity key, once.
#[derive(Default)]
struct Ids(BTreeSet<String>);

impl Ids {
    fn check(
        &mut self,
        src: &Source<'_>,
        kind: &str,
        id: &Spanned<String>,
        out: &mut Vec<Problem>,
    ) {
        let text = id.get_ref();
        if text.is_empty() || text.contains('/') {
            out.push(src.at(
                id.span().start,
                format!("{kind} id {text:?} must be non-empty, without '/'"),
            ));
        } else if !self.0.insert(format!("{kind}/{text}")) {
            out.push(src.at(
                id.span().start,
                format!("{kind} `{text}` is declared twice"),
            ));
        }
    }
}

fn read_calendar(src: &Source<'_>, c: &CalendarFile, out: &mut Vec<Problem>) -> Calendar {
    let mut calendar = Calendar {
        timezone: c.timezone.as_ref().and_then(|t| parse_tz(src, t, out)),
        ..Calendar::default()
    };
    if let Some(hours) = &c.hours {
        match parse_hours(hours.get_ref()) {
            Ok((open, close)) if open < close => {
                calendar.open_hour = open;
                calendar.close_hour = close;
            }
            Ok(_) => out.push(src.at(
                hours.span().start,
                "business hours must not run past midnight",
            )),
            Err(e) => out.push(src.at(hours.span().start, format!("hours: {e}"))),
        }
    }
    for day in &c.holidays {
        match chrono::NaiveDate::parse_from_str(day.get_ref(), "%Y-%m-%d") {
            Ok(d) => calendar.holidays.push(d),
            Err(_) => out.push(src.at(
                day.span().start,
                format!(
                    "holiday {:?} is not a date like \"2026-12-25\"",
                    day.get_ref()
                ),
            )),
        }
    }
    calendar
}

/// Teams and agents, each naming only what exists.
fn read_people(
    src: &Source<'_>,
    file: &OrgFile,
    ids: &mut Ids,
    out: &mut Vec<Problem>,
) -> (Vec<Team>, Vec<Agent>) {
    let team_ids: BTreeSet<&str> = file.teams.iter().map(|t| t.id.get_ref().as_str()).collect();
    let agent_ids: BTreeSet<&str> = file
        .agents
        .iter()
        .map(|a| a.id.get_ref().as_str())
        .collect();
    let mut teams = Vec::new();
    for t in &file.teams {
        ids.check(src, "team", &t.id, out);
        for a in t
            .oncall
            .iter()
            .filter(|a| !agent_ids.contains(a.get_ref().as_str()))
        {
            out.push(src.at(
                a.span().start,
                format!("on-call agent `{}` is not an [[agent]]", a.get_ref()),
            ));
        }
        teams.push(Team {
            id: t.id.get_ref().clone(),
            process: t.process.clone(),
            skills: t.skills.clone(),
            capacity: t.capacity,
            load: 0,
            shift: parse_shift(src, &t.shift, &t.timezone, out),
            oncall: t.oncall.iter().map(|a| a.get_ref().clone()).collect(),
        });
    }
    let mut agents = Vec::new();
    for a in &file.agents {
        ids.check(src, "agent", &a.id, out);
        if !team_ids.contains(a.team.get_ref().as_str()) {
            out.push(src.at(
                a.team.span().start,
                format!("team `{}` is not a [[team]]", a.team.get_ref()),
            ));
        }
        agents.push(Agent {
            id: a.id.get_ref().clone(),
            team: a.team.get_ref().clone(),
            skills: a.skills.clone(),
            capacity: a.capacity,
            load: 0,
            shift: parse_shift(src, &a.shift, &a.timezone, out),
        });
    }
    (teams, agents)
}

/// Services (up until a signal or probe says otherwise) and their probes.
fn read_services(
    src: &Source<'_>,
    file: &OrgFile,
    ids: &mut Ids,
    out: &mut Vec<Problem>,
) -> (Vec<Service>, Vec<ProbeConfig>) {
    let team_ids: BTreeSet<&str> = file.teams.iter().map(|t| t.id.get_ref().as_str()).collect();
    let mut services = Vec::new();
    let mut probes = Vec::new();
    for s in &file.services {
        ids.check(src, "service", &s.id, out);
        if let Some(owner) = &s.owner
            && !team_ids.contains(owner.get_ref().as_str())
        {
            out.push(src.at(
                owner.span().start,
                format!("owner `{}` is not a [[team]]", owner.get_ref()),
            ));
        }
        if let Some(p) = &s.probe {
            let probe = p.get_ref().clone();
            let config = ProbeConfig {
                name: s.id.get_ref().clone(),
                url: probe.url,
                interval: probe.interval.unwrap_or_else(|| "10s".into()),
                timeout: probe.timeout.unwrap_or_else(|| "2s".into()),
                expect_status: probe.expect_status.unwrap_or(200),
            };
            match config.check() {
                Ok(_) => probes.push(config),
                Err(e) => out.push(src.at(p.span().start, format!("probe: {e}"))),
            }
        }
        services.push(Service {
            id: s.id.get_ref().clone(),
            health: Health::Up,
            latency_ms: 0,
            owner: s.owner.as_ref().map(|o| o.get_ref().clone()),
        });
    }
    (services, probes)
}

/// Executors: `manual`, or an http(s) URL.
fn read_executors(
    src: &Source<'_>,
    file: &OrgFile,
    out: &mut Vec<Problem>,
) -> BTreeMap<String, ExecutorKind> {
    let mut executors = BTreeMap::new();
    for (name, target) in &file.executors {
        let text = target.get_ref();
        let at = target.span().start;
        let kind = if text == "manual" {
            ExecutorKind::Manual
        } else if text.starts_with("https://") || text.starts_with("http://") {
            match reqwest::Url::parse(text) {
                Ok(_) => ExecutorKind::Webhook(text.clone()),
                Err(e) => {
                    out.push(src.at(at, format!("executor `{name}`: {text:?} is not a URL: {e}")));
                    continue;
                }
            }
        } else {
            out.push(src.at(
                at,
                format!("executor `{name}`: {text:?} is neither \"manual\" nor an http(s):// URL"),
            ));
            continue;
        };
        executors.insert(name.clone(), kind);
    }
    executors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_parse_in_whole_hours() {
        assert_eq!(parse_hours("08:00-18:00"), Ok((8, 18)));
        assert_eq!(parse_hours("22:00-06:00"), Ok((22, 6)));
        assert_eq!(parse_hours("00:00-24:00"), Ok((0, 24)));
        for bad in ["8-18", "08:30-18:00", "25:00-01:00", "09:00-09:00", "x"] {
            assert!(parse_hours(bad).is_err(), "{bad}");
        }
    }
}
