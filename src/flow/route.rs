//! Routing: who does a step (an automation, an agent or a team), and the
//! circuit breakers that keep steps away from executors that keep failing.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::context::{Context, Health};
use crate::playbook::steps::StepTemplate;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Assignee {
    Automation { executor: String, service: String },
    Agent { agent: String, team: String },
    Team { team: String },
}

impl Assignee {
    pub fn label(&self) -> String {
        match self {
            Assignee::Automation { executor, .. } => format!("automation:{executor}"),
            Assignee::Agent { agent, team } => format!("agent:{agent} ({team})"),
            Assignee::Team { team } => format!("team:{team}"),
        }
    }

    pub fn team(&self) -> Option<&str> {
        match self {
            Assignee::Agent { team, .. } | Assignee::Team { team } => Some(team),
            Assignee::Automation { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// One executor's breaker: opens after `threshold` failures in a row, lets
/// one probe through after `cooldown`, closes when the probe succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breaker {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    pub opened_at: Option<DateTime<Utc>>,
    pub probe_in_flight: bool,
    pub trips: u32,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            opened_at: None,
            probe_in_flight: false,
            trips: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Breakers {
    pub by_executor: BTreeMap<String, Breaker>,
    pub threshold: u32,
    pub cooldown: Duration,
    /// Executors whose breaker opened since the last `take_tripped`, with
    /// their failures in a row.
    tripped: Vec<(String, u32)>,
}

impl Default for Breakers {
    fn default() -> Self {
        Breakers {
            by_executor: BTreeMap::new(),
            threshold: 5,
            cooldown: Duration::minutes(2),
            tripped: Vec::new(),
        }
    }
}

impl Breakers {
    /// Whether a call may go to this executor now; moves open breakers whose
    /// cooldown has passed to half-open and lets exactly one probe through.
    pub fn allow(&mut self, executor: &str, now: DateTime<Utc>) -> bool {
        let cooldown = self.cooldown;
        let breaker = self.by_executor.entry(executor.to_string()).or_default();
        match breaker.state {
            BreakerState::Closed => true,
            BreakerState::Open => {
                if breaker.opened_at.is_some_and(|t| now >= t + cooldown) {
                    breaker.state = BreakerState::HalfOpen;
                    breaker.probe_in_flight = true;
                    true
                } else {
                    false
                }
            }
            BreakerState::HalfOpen => {
                if breaker.probe_in_flight {
                    false
                } else {
                    breaker.probe_in_flight = true;
                    true
                }
            }
        }
    }

    pub fn record(&mut self, executor: &str, success: bool, now: DateTime<Utc>) {
        let threshold = self.threshold;
        let breaker = self.by_executor.entry(executor.to_string()).or_default();
        breaker.probe_in_flight = false;
        if success {
            breaker.consecutive_failures = 0;
            breaker.state = BreakerState::Closed;
            breaker.opened_at = None;
            return;
        }
        breaker.consecutive_failures += 1;
        let trip = breaker.state == BreakerState::HalfOpen
            || (breaker.state == BreakerState::Closed && breaker.consecutive_failures >= threshold);
        if trip {
            breaker.state = BreakerState::Open;
            breaker.opened_at = Some(now);
            breaker.trips += 1;
            let failures = breaker.consecutive_failures;
            self.tripped.push((executor.to_string(), failures));
        }
    }

    /// Breakers that opened since the last call.
    pub fn take_tripped(&mut self) -> Vec<(String, u32)> {
        std::mem::take(&mut self.tripped)
    }

    pub fn state(&self, executor: &str) -> BreakerState {
        self.by_executor
            .get(executor)
            .map_or(BreakerState::Closed, |b| b.state)
    }
}

pub struct Router;

/// Why a step has nobody to do it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("no automation available and nobody has skill `{skill}`")]
pub struct NoRoute {
    pub skill: String,
}

impl Router {
    /// Picks who does a step. Automation first (unless `people_only`), while
    /// its service is not down and its breaker allows; otherwise the agent
    /// with the skill who is on shift and least loaded; otherwise the least
    /// loaded team with the skill, on shift if any is.
    pub fn route(
        template: &StepTemplate,
        context: &Context,
        breakers: &mut Breakers,
        now: DateTime<Utc>,
        people_only: bool,
    ) -> Result<Assignee, NoRoute> {
        if !people_only && let Some(executor) = &template.automation {
            let service = template.service.clone().unwrap_or_else(|| executor.clone());
            // Never send work to a service that is down; route around a
            // degraded one (people with the skill take it instead).
            let avoid = matches!(
                context.service_health(&service),
                Some(Health::Down | Health::Degraded)
            );
            if !avoid && breakers.allow(executor, now) {
                return Ok(Assignee::Automation {
                    executor: executor.clone(),
                    service,
                });
            }
        }
        let calendar = &context.calendar;
        let utilisation = |load: u32, capacity: u32| f64::from(load) / f64::from(capacity.max(1));
        let of_team = |team: &str| template.team.as_deref().is_none_or(|t| t == team);
        let agent = context
            .agents
            .values()
            .filter(|a| of_team(&a.team) && a.skills.iter().any(|s| s == &template.skill))
            .filter(|a| a.shift.covers_at(now, calendar) && a.load < a.capacity)
            .min_by(|a, b| {
                utilisation(a.load, a.capacity)
                    .total_cmp(&utilisation(b.load, b.capacity))
                    .then_with(|| a.id.cmp(&b.id))
            });
        if let Some(agent) = agent {
            return Ok(Assignee::Agent {
                agent: agent.id.clone(),
                team: agent.team.clone(),
            });
        }
        // Nobody with the skill on shift and free: whoever is on call.
        let on_call = context
            .teams
            .values()
            .filter(|t| of_team(&t.id) && t.skills.iter().any(|s| s == &template.skill))
            .filter(|t| !t.shift.covers_at(now, calendar))
            .find_map(|t| {
                let agent = context.agents.get(t.on_call(now)?)?;
                Some(Assignee::Agent {
                    agent: agent.id.clone(),
                    team: t.id.clone(),
                })
            });
        if let Some(on_call) = on_call {
            return Ok(on_call);
        }
        let team = context
            .teams
            .values()
            .filter(|t| of_team(&t.id) && t.skills.iter().any(|s| s == &template.skill))
            .min_by(|a, b| {
                b.shift
                    .covers_at(now, calendar)
                    .cmp(&a.shift.covers_at(now, calendar))
                    .then_with(|| {
                        utilisation(a.load, a.capacity).total_cmp(&utilisation(b.load, b.capacity))
                    })
                    .then_with(|| a.id.cmp(&b.id))
            });
        match team {
            Some(team) => Ok(Assignee::Team {
                team: team.id.clone(),
            }),
            None => Err(NoRoute {
                skill: template.skill.clone(),
            }),
        }
    }
}

/// How much slower a person works when their team is loaded or off shift.
pub fn load_factor(assignee: &Assignee, context: &Context) -> f64 {
    let Some(team) = assignee.team().and_then(|t| context.teams.get(t)) else {
        return 1.0;
    };
    let utilisation = f64::from(team.load) / f64::from(team.capacity.max(1));
    let queued = if matches!(assignee, Assignee::Team { .. }) {
        1.5
    } else {
        1.0
    };
    (1.0 + utilisation.max(0.0)) * queued
}

/// Counts a step against its assignee's load. Loads are not journaled: they
/// follow from the running steps of active flows, and recovery recounts them.
pub fn take(assignee: &Assignee, context: &mut Context) {
    adjust(assignee, context, true);
}

/// Gives the load back when a step ends.
pub fn release(assignee: &Assignee, context: &mut Context) {
    adjust(assignee, context, false);
}

fn adjust(assignee: &Assignee, context: &mut Context, up: bool) {
    let step = |load: &mut u32| {
        *load = if up {
            load.saturating_add(1)
        } else {
            load.saturating_sub(1)
        };
    };
    if let Assignee::Agent { agent, .. } = assignee
        && let Some(a) = context.agents.get_mut(agent)
    {
        step(&mut a.load);
    }
    if let Some(team) = assignee.team().map(str::to_string)
        && let Some(t) = context.teams.get_mut(&team)
    {
        step(&mut t.load);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::minutes(minutes)
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let mut b = Breakers::default();
        for _ in 0..5 {
            assert!(b.allow("x", at(0)));
            b.record("x", false, at(0));
        }
        assert_eq!(b.state("x"), BreakerState::Open);
        assert!(!b.allow("x", at(1)));
        assert!(b.allow("x", at(3)), "one probe after the cooldown");
        assert!(!b.allow("x", at(3)), "only one probe at a time");
        b.record("x", true, at(3));
        assert_eq!(b.state("x"), BreakerState::Closed);
    }

    #[test]
    fn automation_is_routed_around_a_degraded_or_down_service() {
        use crate::context::{Agent, Health, Service, Shift, World};
        let shift = Shift {
            start_hour: 0,
            end_hour: 24,
            timezone: None,
        };
        let mut world = World::default();
        world.services.push(Service {
            id: "carrier".into(),
            health: Health::Up,
            latency_ms: 50,
            owner: None,
        });
        world.agents.push(Agent {
            id: "ana".into(),
            team: "warehouse".into(),
            skills: vec!["shipping".into()],
            capacity: 3,
            load: 0,
            shift,
        });
        let mut context = Context::from_world(world);
        let template: StepTemplate = toml::from_str(
            "process = \"fulfillment\"\nskill = \"shipping\"\nminutes = 30\nautomation = \"carrier-api\"\nservice = \"carrier\"\n",
        )
        .unwrap();
        let mut b = Breakers::default();
        let route =
            |c: &Context, b: &mut Breakers| Router::route(&template, c, b, at(0), false).unwrap();
        assert!(matches!(
            route(&context, &mut b),
            Assignee::Automation { .. }
        ));
        for health in [Health::Degraded, Health::Down] {
            context.set_health("carrier", health);
            assert!(
                matches!(route(&context, &mut b), Assignee::Agent { .. }),
                "{health:?}"
            );
        }
    }

    /// Nobody with the skill on shift: the team's on-call agent of the week
    /// takes it; a step bound to a team goes only to that team.
    #[test]
    fn off_shift_work_goes_to_whoever_is_on_call() {
        use crate::context::{Agent, Shift, Team, World};
        let day = Shift {
            start_hour: 8,
            end_hour: 18,
            timezone: Some(chrono_tz::Europe::Berlin),
        };
        let agent = |id: &str, team: &str| Agent {
            id: id.into(),
            team: team.into(),
            skills: vec!["sre".into()],
            capacity: 2,
            load: 0,
            shift: day,
        };
        let world = World {
            teams: vec![
                Team {
                    id: "sre".into(),
                    process: "incident".into(),
                    skills: vec!["sre".into()],
                    capacity: 4,
                    load: 0,
                    shift: day,
                    oncall: vec!["dana".into(), "emil".into()],
                },
                Team {
                    id: "dba".into(),
                    process: "incident".into(),
                    skills: vec!["sre".into()],
                    capacity: 4,
                    load: 0,
                    shift: Shift::ALWAYS,
                    oncall: vec![],
                },
            ],
            agents: vec![agent("dana", "sre"), agent("emil", "sre")],
            ..World::default()
        };
        let context = Context::from_world(world);
        let template: StepTemplate = toml::from_str(
            "process = \"incident\"\nskill = \"sre\"\nteam = \"sre\"\nminutes = 30\n",
        )
        .unwrap();
        let mut b = Breakers::default();
        // 09:00 UTC is 10:00 in Berlin: dana, on shift and least loaded.
        let by_day = Router::route(&template, &context, &mut b, at(0), false).unwrap();
        assert_eq!(
            by_day,
            Assignee::Agent {
                agent: "dana".into(),
                team: "sre".into()
            }
        );
        // 23:00 in Berlin: the week's on-call agent, never the always-on dba team.
        let night = at(13 * 60);
        let on_call = context.teams["sre"].on_call(night).unwrap().to_string();
        let by_night = Router::route(&template, &context, &mut b, night, false).unwrap();
        assert_eq!(
            by_night,
            Assignee::Agent {
                agent: on_call,
                team: "sre".into()
            }
        );
    }

    #[test]
    fn a_failed_probe_reopens() {
        let mut b = Breakers::default();
        for _ in 0..5 {
            b.record("x", false, at(0));
        }
        assert!(b.allow("x", at(3)));
        b.record("x", false, at(3));
        assert_eq!(b.state("x"), BreakerState::Open);
        assert_eq!(b.by_executor["x"].trips, 2);
    }
}
