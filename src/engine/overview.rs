//! The engine's state at a glance: services, teams, breakers, figures,
//! quarantine, open tasks, versions. What the console draws beside the
//! events, built on the engine's thread, and sent whole to attached
//! consoles (`GET /v1/state`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::flow::FlowState;
use crate::flow::route::BreakerState;
use crate::metrics::Summary;

/// Quarantined signals listed, at most.
const QUARANTINE_SHOWN: usize = 50;

/// A service's health as the Health view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRow {
    pub id: String,
    pub health: String,
    pub latency_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamRow {
    pub id: String,
    pub process: String,
    pub capacity: u32,
    pub load: u32,
    pub on_shift: bool,
    pub shift: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerRow {
    pub executor: String,
    pub state: BreakerState,
    pub failures: u32,
    pub trips: u32,
}

/// The advisor's breaker, as the advisor beside the engine last said it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdvisorRow {
    pub model: String,
    pub open: bool,
    /// Why it is (or last was) open.
    pub why: String,
    pub failures_in_a_row: u32,
    pub trips: u64,
}

/// The state of things the engine reports besides its events: what the
/// console shows beside them, and `GET /v1/state` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub now: DateTime<Utc>,
    pub business_hours: bool,
    pub model_version: String,
    pub policy_version: String,
    /// The deployment's playbook, steps and organization (empty for the demo).
    pub rules_version: String,
    pub services: Vec<ServiceRow>,
    pub teams: Vec<TeamRow>,
    pub breakers: Vec<BreakerRow>,
    /// The breaker on the model, once it has opened.
    #[serde(default)]
    pub model_breaker: Option<crate::decide::watch::BreakerState>,
    /// The advisor's breaker, where an advisor runs beside the engine.
    #[serde(default)]
    pub advisor: Option<AdvisorRow>,
    /// The guarded ramp in progress (or the last one), and what its current
    /// step has read so far.
    #[serde(default)]
    pub ramp: Option<crate::decide::ramp::RampState>,
    #[serde(default)]
    pub ramp_step: Option<crate::decide::ramp::StepTally>,
    /// Classes the model does not simply decide (`[model] mode`): who
    /// decides each now.
    #[serde(default)]
    pub class_modes: Vec<super::apprentice::ClassMode>,
    pub total: Summary,
    pub hourly: Vec<Summary>,
    /// The same hours for the rules-only shadow run on the same stream.
    pub baseline_hourly: Vec<Summary>,
    pub signals: u64,
    pub open_reviews: usize,
    /// When the oldest open review item was opened.
    #[serde(default)]
    pub oldest_review: Option<DateTime<Utc>>,
    /// How long a claim holds a review item, in seconds.
    #[serde(default = "claim_expiry_secs")]
    pub claim_expiry_secs: i64,
    pub active_flows: usize,
    /// Flows in flight (not waiting for a person) past their SLA warning
    /// or their deadline.
    pub sla_at_risk: usize,
    /// Signals held in quarantine, and the newest of them (newest first).
    pub quarantined: u64,
    pub quarantine: Vec<crate::journal::Quarantined>,
    /// What the noise rules hold: alerts held off now, and signals held
    /// since start by why.
    #[serde(default)]
    pub noise: Noise,
    /// Clients following the server's event stream (attached consoles), as
    /// the server counts them; none in the embedded console.
    #[serde(default)]
    pub attached: Option<usize>,
    /// Open tasks, most urgent first (at most `TASKS_SHOWN`).
    pub tasks: Vec<crate::flow::Task>,
    /// Pages, open ones first, then those ended most recently (at most
    /// `PAGES_SHOWN`).
    #[serde(default)]
    pub pages: Vec<crate::paging::Page>,
    /// Each schedule: who is on call now, next, and the next gap.
    #[serde(default)]
    pub rota: Vec<crate::paging::Rota>,
    /// Pages by state, mean time to acknowledge, the channels' deliveries.
    #[serde(default)]
    pub paging: super::PageFigures,
    /// Each decision class with a review budget: items open, budget.
    #[serde(default)]
    pub review_budgets: Vec<(String, usize, usize)>,
    /// Incidents, open ones first (at most `PAGES_SHOWN`).
    #[serde(default)]
    pub incidents: Vec<crate::flow::incident::IncidentRow>,
    /// Silences: pending, active, and those that ended in the last days.
    #[serde(default)]
    pub silences: Vec<crate::noise::Silence>,
    pub data_dir: PathBuf,
}

/// Open tasks the Tasks view lists, at most.
pub const TASKS_SHOWN: usize = 500;

/// Pages the Pages view lists, at most.
pub const PAGES_SHOWN: usize = 200;

/// Builds the status from the engine's state.
pub fn status(engine: &Engine, now: DateTime<Utc>) -> Overview {
    Overview {
        now,
        business_hours: engine.context.calendar.is_business_hours(now),
        model_version: engine.model_version(),
        policy_version: engine.policy().version.clone(),
        rules_version: engine.versions().rules,
        services: engine
            .context
            .services()
            .values()
            .map(|s| ServiceRow {
                id: s.id.clone(),
                health: s.health.as_str().to_string(),
                latency_ms: s.latency_ms,
            })
            .collect(),
        teams: engine
            .context
            .teams
            .values()
            .map(|t| TeamRow {
                id: t.id.clone(),
                process: t.process.clone(),
                capacity: t.capacity,
                load: t.load,
                on_shift: t.shift.covers_at(now, &engine.context.calendar),
                shift: format!("{:02}–{:02}", t.shift.start_hour, t.shift.end_hour),
            })
            .collect(),
        breakers: engine
            .flows
            .breakers
            .by_executor
            .iter()
            .map(|(executor, b)| BreakerRow {
                executor: executor.clone(),
                state: b.state,
                failures: b.consecutive_failures,
                trips: b.trips,
            })
            .collect(),
        model_breaker: engine.model_breaker().cloned(),
        advisor: engine.advisor.clone(),
        ramp: engine.ramp().cloned(),
        ramp_step: engine.ramp_step().cloned(),
        class_modes: engine.class_modes(),
        total: engine.metrics.total.summary(),
        hourly: engine.metrics.hourly(),
        baseline_hourly: Vec::new(),
        signals: engine.counts().signals,
        open_reviews: engine.reviews.open_count(),
        oldest_review: engine.reviews.oldest_open().map(|i| i.created),
        claim_expiry_secs: engine.reviews.claim_expiry().num_seconds(),
        active_flows: engine.flows.active_count(),
        sla_at_risk: engine
            .flows
            .active()
            .filter(|f| f.state != FlowState::WaitingHuman && (f.escalated || f.breached))
            .count(),
        quarantined: engine.quarantine().held,
        noise: {
            let (paused, flapping) = engine.held_off_now();
            Noise {
                paused,
                flapping,
                held: engine.held_counts(),
            }
        },
        quarantine: engine
            .quarantine()
            .recent
            .iter()
            .rev()
            .take(QUARANTINE_SHOWN)
            .cloned()
            .collect(),
        attached: None,
        tasks: {
            let mut tasks = engine.tasks(&crate::flow::TaskFilter::default());
            tasks.truncate(TASKS_SHOWN);
            tasks
        },
        pages: engine.pages_shown(PAGES_SHOWN),
        rota: engine.rota(now),
        paging: engine.page_figures(),
        review_budgets: engine.reviews.budgets(now),
        incidents: engine.incident_rows(PAGES_SHOWN),
        silences: engine.silences(),
        data_dir: engine.data_dir().to_path_buf(),
    }
}

/// Active flows a state snapshot carries, at most (the newest).
pub const FLOWS_SHOWN: usize = 2_000;

impl Overview {
    /// Who decides, where the model does not simply decide every class:
    /// "model decides 2 of 5 classes (apprentice)", or none.
    pub fn deciding(&self) -> Option<String> {
        let modes = &self.class_modes;
        if modes.is_empty() {
            return None;
        }
        let by_model = super::apprentice::decided_by_model(modes);
        let how = if self.apprentice_share().is_some() {
            "apprentice"
        } else {
            "mode rules"
        };
        Some(format!(
            "model decides {by_model} of {} classes ({how})",
            modes.len()
        ))
    }

    /// With any class in apprentice mode: how many of the classes not
    /// simply the model's it decides now, of how many.
    pub fn apprentice_share(&self) -> Option<(usize, usize)> {
        let modes = &self.class_modes;
        let apprentice = crate::decide::apprentice::ModelMode::Apprentice;
        modes
            .iter()
            .any(|c| c.mode == apprentice)
            .then(|| (super::apprentice::decided_by_model(modes), modes.len()))
    }

    /// How long a claim holds an item, as a duration (a server's figure
    /// out of range reads as a year at most).
    pub fn claim_expiry(&self) -> chrono::Duration {
        let year = 365 * 24 * 3600;
        chrono::Duration::try_seconds(self.claim_expiry_secs.clamp(0, year)).unwrap_or_default()
    }
}

fn claim_expiry_secs() -> i64 {
    crate::review::CLAIM_EXPIRY.num_seconds()
}

/// Everything a console starts from, consistent with a place in the event
/// stream: what follows `last_event_id` is what changed since.
/// What the noise rules hold back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    /// Firing alerts paused now as possible transients.
    pub paused: usize,
    /// Alerts flapping now.
    pub flapping: usize,
    /// Signals held since start by why (repeat, grouped, silenced,
    /// maintenance, inhibited, transient, flapping).
    pub held: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub last_event_id: u64,
    pub overview: Overview,
    /// Open review items: one page of them, in id order (`page`).
    pub reviews: Vec<crate::review::ReviewItem>,
    /// Flows in flight, newest first (at most `FLOWS_SHOWN`).
    pub flows: Vec<crate::flow::Flow>,
    /// The cursor of the next page of review items, if there are more:
    /// `GET /v1/state?after=…` gives it (with the flows left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl State {
    /// The overview alone (`GET /v1/state?part=overview`).
    pub fn overview(engine: &Engine, now: DateTime<Utc>) -> State {
        State {
            last_event_id: engine.last_event_id(),
            overview: status(engine, now),
            reviews: Vec::new(),
            flows: Vec::new(),
            next: None,
        }
    }

    /// The state with one page of review items (and the flows, on the
    /// first page only).
    pub fn of(engine: &Engine, now: DateTime<Utc>, page: &crate::page::Page) -> State {
        let flows = match page.after {
            Some(_) => Vec::new(),
            None => {
                // The newest by reference, then only those copied: a storm
                // has 100,000s in flight.
                let newest = |a: &&crate::flow::Flow, b: &&crate::flow::Flow| {
                    b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id))
                };
                let mut flows: Vec<&crate::flow::Flow> = engine.flows.active().collect();
                if flows.len() > FLOWS_SHOWN {
                    flows.select_nth_unstable_by(FLOWS_SHOWN - 1, newest);
                    flows.truncate(FLOWS_SHOWN);
                }
                flows.sort_by(newest);
                flows.into_iter().cloned().collect()
            }
        };
        let reviews = engine.reviews_page(page);
        State {
            last_event_id: engine.last_event_id(),
            overview: status(engine, now),
            reviews: reviews.items,
            flows,
            next: reviews.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::EngineEvent;

    /// What the event stream sends reads back as the same event (an
    /// attached console folds it as the embedded one does).
    #[test]
    fn events_read_back_from_their_json() {
        let app = crate::console::fixture::app();
        let item = app.reviews.values().next().unwrap().clone();
        let event = EngineEvent::ReviewOpened(item.clone());
        let json = serde_json::to_value(&event).unwrap();
        let back: EngineEvent = serde_json::from_value(json).unwrap();
        let EngineEvent::ReviewOpened(read) = back else {
            panic!("not a review")
        };
        assert_eq!(read, item);
    }
}
