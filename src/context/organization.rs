//! Who does the work and when: teams, agents, their shifts and on-call
//! rotations, the business calendar, and a deployment's organization taken
//! into the running store.

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::{Context, Customer, World};

/// The hours a team or agent works, in its own time zone or else the
/// business calendar's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    pub start_hour: u32,
    pub end_hour: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<chrono_tz::Tz>,
}

impl Shift {
    /// All day, every day.
    pub const ALWAYS: Shift = Shift {
        start_hour: 0,
        end_hour: 24,
        timezone: None,
    };

    /// Whether the shift covers the instant `at`.
    pub fn covers_at(self, at: DateTime<Utc>, calendar: &Calendar) -> bool {
        let tz = self
            .timezone
            .or(calendar.timezone)
            .unwrap_or(chrono_tz::UTC);
        self.covers(at.with_timezone(&tz).hour())
    }

    pub fn covers(self, hour: u32) -> bool {
        if self.start_hour <= self.end_hour {
            hour >= self.start_hour && hour < self.end_hour
        } else {
            hour >= self.start_hour || hour < self.end_hour
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    pub process: String,
    pub skills: Vec<String>,
    pub capacity: u32,
    pub load: u32,
    pub shift: Shift,
    /// Agents who take the team's work in turn, a week each, when nobody
    /// with the skill is on shift.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oncall: Vec<String>,
}

impl Team {
    /// Who is on call at `at`: the rotation's agent for that ISO week.
    pub fn on_call(&self, at: DateTime<Utc>) -> Option<&str> {
        let n = self.oncall.len();
        if n == 0 {
            return None;
        }
        let week = at.iso_week();
        let index = (week.year().rem_euclid(400) as usize * 53 + week.week() as usize) % n;
        self.oncall.get(index).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub team: String,
    pub skills: Vec<String>,
    pub capacity: u32,
    pub load: u32,
    pub shift: Shift,
}

/// A change recorded somewhere (a deploy, a configuration push): what
/// policies deciding on an alert see beside it, as it may explain it.
/// Business hours: weekdays between two hours in a time zone (UTC for the
/// simulated company), except holidays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    pub open_hour: u32,
    pub close_hour: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<chrono_tz::Tz>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<chrono::NaiveDate>,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar {
            open_hour: 8,
            close_hour: 18,
            timezone: None,
            holidays: Vec::new(),
        }
    }
}

impl Calendar {
    pub fn is_business_hours(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.timezone.unwrap_or(chrono_tz::UTC));
        let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
        weekday
            && local.hour() >= self.open_hour
            && local.hour() < self.close_hour
            && !self.holidays.contains(&local.date_naive())
    }
}

impl Context {
    /// Takes a deployment's organization: teams, agents, services, customers
    /// and the calendar as `world` has them, keeping each team's and
    /// agent's load and each service's health as they are now. Teams and
    /// agents the organization no longer has leave the store.
    pub fn take_organization(&mut self, world: World) {
        // Overrides set at run time outlive the files' edits.
        let mut roster = world.roster;
        roster.keep_overrides(&self.roster);
        if roster != self.roster {
            self.roster = roster;
            self.dirty.insert(super::ROSTER_KEY.to_string());
        }
        let old_teams = std::mem::take(&mut self.teams);
        for mut t in world.teams {
            t.load = old_teams.get(&t.id).map_or(0, |o| o.load);
            self.dirty.insert(format!("team/{}", t.id));
            self.teams.insert(t.id.clone(), t);
        }
        for id in old_teams.keys().filter(|id| !self.teams.contains_key(*id)) {
            self.dirty.insert(format!("team/{id}"));
        }
        let old_agents = std::mem::take(&mut self.agents);
        for mut a in world.agents {
            a.load = old_agents.get(&a.id).map_or(0, |o| o.load);
            self.dirty.insert(format!("agent/{}", a.id));
            self.agents.insert(a.id.clone(), a);
        }
        for id in old_agents
            .keys()
            .filter(|id| !self.agents.contains_key(*id))
        {
            self.dirty.insert(format!("agent/{id}"));
        }
        for mut s in world.services {
            if let Some(old) = self.services.get(&s.id) {
                s.health = old.health;
                s.latency_ms = old.latency_ms;
            }
            self.dirty.insert(format!("service/{}", s.id));
            self.services.insert(s.id.clone(), s);
        }
        self.services_changed();
        for c in world.customers {
            let escalated = self.customers.get(&c.id).is_some_and(|o| o.open_escalation);
            self.dirty.insert(format!("customer/{}", c.id));
            self.customers.insert(
                c.id.clone(),
                Customer {
                    open_escalation: escalated || c.open_escalation,
                    ..c
                },
            );
        }
        self.calendar = world.calendar;
        self.dirty.insert("calendar/default".into());
    }
}
