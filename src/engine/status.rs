//! The engine's figures as `/metrics` reads them (`Status`): decisions,
//! queues, flows, breakers, pages, noise held, outcomes, who decides; one
//! snapshot taken on the engine's thread.

use super::Engine;

/// The engine's state as `/metrics` shows it.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub decisions_by_mode: Vec<(String, u64)>,
    pub open_reviews: usize,
    pub flows_by_state: Vec<(String, u64)>,
    pub breakers: Vec<(String, String)>,
    pub last_commit_micros: u64,
    pub commits: u64,
    /// Signals taken in, by type (`other` outside the playbook) and outcome.
    pub signals: Vec<(String, &'static str, u64)>,
    /// Quarantined since start, and held now.
    pub quarantined: u64,
    pub quarantine_held: u64,
    pub policy_errors: u64,
    /// Decisions a shadow candidate also made, and those it agreed on.
    pub shadowed: u64,
    pub shadow_agreed: u64,
    /// Shadowed decisions people answered with an option, and those where
    /// the candidate had proposed it.
    pub shadow_answered: u64,
    pub shadow_people_agreed: u64,
    /// Items the advisor proposed for; those people answered with an
    /// option, and those where they chose its proposal.
    pub advised: u64,
    pub advised_answered: u64,
    pub advised_agreed: u64,
    /// The breaker on the model: open now, and times it opened.
    pub model_breaker_open: bool,
    pub model_breaker_trips: u32,
    /// The ramp in progress: its candidate's coverage (0 with none), and
    /// whether it waits for a lead.
    pub ramp_coverage: f64,
    pub ramp_paused: bool,
    /// How long each journal commit took.
    pub journal_commits: Option<prometheus_client::metrics::histogram::Histogram>,
    /// Pages in memory by state, and each team's mean time to acknowledge.
    pub pages_by_state: Vec<(String, u64)>,
    pub acknowledge_seconds: Vec<(String, f64)>,
    /// Signals held (recorded without work of their own) by why, and
    /// incidents open.
    pub held: Vec<(String, u64)>,
    pub open_incidents: usize,
    pub incidents_opened: u64,
    /// Outcomes with a verdict, and those within SLA: of the work itself
    /// (how flows ended), and stated by `outcome.recorded` signals.
    pub outcomes: [(&'static str, u64, u64); 2],
    /// Flows done in time whose alert fired again within their type's
    /// `reopen` span.
    pub reopened: u64,
    /// Classes not simply the model's (`[model] mode`), by who decides
    /// each now: (rules, model).
    pub deciding: (usize, usize),
    /// Alerts held off now: paused as possible transients, and flapping.
    pub held_off: (usize, usize),
}

/// The engine's state for `/metrics`.
pub fn status(engine: &Engine) -> Status {
    let pages = engine.page_figures();
    let t = &engine.metrics.total;
    let mut signals: Vec<(String, &'static str, u64)> = engine
        .signal_tally()
        .iter()
        .flat_map(|(kind, t)| {
            [
                ("decided", t.decided),
                ("duplicate", t.duplicate),
                ("quarantined", t.quarantined),
            ]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(outcome, n)| (kind.clone(), outcome, n))
        })
        .collect();
    signals.sort();
    let mut flows: std::collections::BTreeMap<String, u64> = Default::default();
    for f in engine.flows.flows.values() {
        *flows.entry(f.state.as_str().to_string()).or_default() += 1;
    }
    let journal = engine.journal_stats();
    Status {
        decisions_by_mode: vec![
            ("auto".into(), t.auto),
            ("forced".into(), t.forced),
            ("rules".into(), t.rules),
            ("review".into(), t.review),
            ("record".into(), t.record),
        ],
        open_reviews: engine.reviews.open_count(),
        flows_by_state: flows.into_iter().collect(),
        breakers: engine
            .flows
            .breakers
            .by_executor
            .iter()
            .map(|(e, b)| (e.clone(), b.state.as_str().to_string()))
            .collect(),
        last_commit_micros: journal.last_commit_micros,
        commits: journal.commits,
        signals,
        quarantined: engine.quarantine().quarantined,
        quarantine_held: engine.quarantine().held,
        policy_errors: t.policy_errors,
        shadowed: t.shadowed,
        shadow_agreed: t.shadow_agreed,
        shadow_answered: t.shadow_answered,
        shadow_people_agreed: t.shadow_people_agreed,
        advised: t.advised,
        advised_answered: t.advised_answered,
        advised_agreed: t.advised_agreed,
        model_breaker_open: engine.model_breaker().is_some_and(|b| b.open),
        model_breaker_trips: engine.model_breaker().map_or(0, |b| b.trips),
        ramp_coverage: engine
            .ramp()
            .filter(|r| !r.status.finished())
            .map_or(0.0, |r| r.coverage()),
        ramp_paused: engine
            .ramp()
            .is_some_and(|r| r.status == crate::decide::ramp::Status::Paused),
        journal_commits: Some(engine.journal_commits()),
        pages_by_state: pages.by_state,
        held: engine.held_counts(),
        open_incidents: engine.open_incidents(),
        incidents_opened: engine.incidents_opened(),
        outcomes: {
            let t = &engine.metrics.total;
            [
                ("work", t.work_outcomes, t.work_within_sla),
                ("stated", t.outcomes, t.within_sla),
            ]
        },
        reopened: engine.metrics.total.reopened,
        deciding: {
            let modes = engine.class_modes();
            let model = super::apprentice::decided_by_model(&modes);
            (modes.len() - model, model)
        },
        held_off: engine.held_off_now(),
        acknowledge_seconds: pages.acknowledge_seconds,
    }
}
