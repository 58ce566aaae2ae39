//! `/metrics` in the Prometheus text format (0.0.4), written by
//! `prometheus-client`, which escapes every label value (`\\`, `"`,
//! newline): a signal type or executor name can neither forge a series
//! nor break a scrape. Every label takes a bounded set of values: signal
//! types are those of the playbook (any other is counted as `other`),
//! endpoints and statuses are the intake's own.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::engine::host::Status as EngineStats;

/// Labels of one series, in their order on the line.
type Labels = Vec<(&'static str, String)>;

/// What the intake itself counts, as requests arrive.
#[derive(Debug, Default, Clone)]
pub struct IntakeCounters {
    accepted: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
}

impl IntakeCounters {
    /// Signals acknowledged (durable in the intake log) by an endpoint.
    pub fn accepted(&self, endpoint: &'static str, n: u64) {
        self.accepted
            .get_or_create(&vec![("endpoint", endpoint.to_string())])
            .inc_by(n);
    }

    /// A request refused by an endpoint with a status.
    pub fn refused(&self, endpoint: &'static str, status: u16) {
        self.refused
            .get_or_create(&vec![
                ("endpoint", endpoint.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g: Gauge<f64, AtomicU64> = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn counters<'a>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, u64)> + 'a,
) {
    let family = Family::<Labels, Counter>::default();
    for (labels, n) in series {
        family.get_or_create(&labels).inc_by(n);
    }
    registry.register(name, help, family);
}

fn float_gauges<'a>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, f64)> + 'a,
) {
    let family = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for (labels, v) in series {
        family.get_or_create(&labels).set(v);
    }
    registry.register(name, help, family);
}

fn gauges<'a>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, i64)> + 'a,
) {
    let family = Family::<Labels, Gauge>::default();
    for (labels, v) in series {
        family.get_or_create(&labels).set(v);
    }
    registry.register(name, help, family);
}

/// The whole exposition for one scrape.
// Over 80 lines: one metric family after another, in the order /metrics shows them.
pub fn render(
    intake: &IntakeCounters,
    stats: &EngineStats,
    backlog: u64,
    log: &crate::intake::log::IntakeLog,
    stream: Option<&crate::intake::events::EventHub>,
    advisor: Option<&crate::engine::overview::AdvisorRow>,
) -> String {
    let mut r = Registry::default();
    intake_metrics(&mut r, intake, stats, backlog, log, stream);
    decision_metrics(&mut r, stats);
    candidate_metrics(&mut r, stats);
    if let Some(advisor) = advisor {
        gauge(
            &mut r,
            "signalbox_advisor_breaker_open",
            "1 while the advisor's breaker is open (nothing is asked of it)",
            f64::from(u8::from(advisor.open)),
        );
        counter(
            &mut r,
            "signalbox_advisor_breaker_trips",
            "Times the advisor's breaker has opened",
            advisor.trips,
        );
    }
    state_metrics(&mut r, stats);
    outcome_metrics(&mut r, stats);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &r);
    out
}

/// What came in: signals by type and outcome, the HTTP intake's counts and
/// backlog, the event stream, and the latencies from 202 to decision.
fn intake_metrics(
    r: &mut Registry,
    intake: &IntakeCounters,
    stats: &EngineStats,
    backlog: u64,
    log: &crate::intake::log::IntakeLog,
    stream: Option<&crate::intake::events::EventHub>,
) {
    counters(
        r,
        "signalbox_signals",
        "Signals the engine took in, by type (`other` for types outside the playbook) and outcome",
        stats.signals.iter().map(|(kind, outcome, n)| {
            (
                vec![("type", kind.clone()), ("outcome", outcome.to_string())],
                *n,
            )
        }),
    );
    r.register(
        "signalbox_intake_accepted",
        "Signals acknowledged by the HTTP intake, by endpoint",
        intake.accepted.clone(),
    );
    r.register(
        "signalbox_refused",
        "Requests refused, by endpoint and status",
        intake.refused.clone(),
    );
    gauge(
        r,
        "signalbox_intake_backlog",
        "Signals acknowledged and not yet decided",
        backlog as f64,
    );
    if let Some(hub) = stream {
        let sent = hub.sent();
        let read = |n: &AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        gauge(
            r,
            "signalbox_event_stream_clients",
            "Clients following GET /v1/events",
            hub.clients() as f64,
        );
        counter(
            r,
            "signalbox_event_stream_events",
            "Events sent on GET /v1/events, over all clients",
            read(&sent.events),
        );
        counter(
            r,
            "signalbox_event_stream_bytes",
            "Bytes sent on GET /v1/events as written (compressed or not), over all clients",
            read(&sent.bytes),
        );
        counter(
            r,
            "signalbox_event_stream_cut_off",
            "Clients of GET /v1/events cut off for falling behind",
            read(&sent.cut_off),
        );
    }
    r.register(
        "signalbox_decision_latency_seconds",
        "From a signal's 202 to its decision being durable in the journal",
        log.decision_latency(),
    );
    r.register(
        "signalbox_intake_log_commit_seconds",
        "How long each commit of the intake log took",
        log.commit_latency(),
    );
}

/// How decisions went: the journal's commits, decisions by mode, the
/// quarantine, policy errors.
fn decision_metrics(r: &mut Registry, stats: &EngineStats) {
    if let Some(commits) = &stats.journal_commits {
        r.register(
            "signalbox_journal_commit_duration_seconds",
            "How long each journal commit took",
            commits.clone(),
        );
    }
    counters(
        r,
        "signalbox_decisions",
        "Decisions by mode",
        stats
            .decisions_by_mode
            .iter()
            .map(|(mode, n)| (vec![("mode", mode.clone())], *n)),
    );
    counter(
        r,
        "signalbox_quarantined",
        "Signals that could not be decided and were quarantined",
        stats.quarantined,
    );
    gauge(
        r,
        "signalbox_quarantine_held",
        "Signals held in quarantine now",
        stats.quarantine_held as f64,
    );
    counter(
        r,
        "signalbox_policy_errors",
        "Policy rules that failed to evaluate (applied at their strictest)",
        stats.policy_errors,
    );
}

/// The candidates beside the live rules, and the breaker on the model.
fn candidate_metrics(r: &mut Registry, stats: &EngineStats) {
    if stats.shadowed > 0 {
        counter(
            r,
            "signalbox_shadow_decisions",
            "Decisions a shadow candidate also made (it never acts)",
            stats.shadowed,
        );
        gauge(
            r,
            "signalbox_shadow_agreement",
            "Share of shadowed decisions where the candidate proposed the live proposal",
            stats.shadow_agreed as f64 / stats.shadowed as f64,
        );
    }
    gauge(
        r,
        "signalbox_model_breaker_open",
        "1 while the breaker on the model is open (decisions by rules alone)",
        f64::from(u8::from(stats.model_breaker_open)),
    );
    counter(
        r,
        "signalbox_model_breaker_trips",
        "Times the breaker on the model has opened",
        u64::from(stats.model_breaker_trips),
    );
    gauge(
        r,
        "signalbox_ramp_coverage",
        "Share of its classes' decisions a ramping candidate policy takes (0 with no ramp in progress)",
        stats.ramp_coverage,
    );
    gauge(
        r,
        "signalbox_ramp_paused",
        "1 while a ramp waits for a lead (a gate was inconclusive)",
        f64::from(u8::from(stats.ramp_paused)),
    );
    counter(
        r,
        "signalbox_advisor_proposals",
        "Review items the advisor proposed an option for",
        stats.advised,
    );
    if stats.advised_answered > 0 {
        gauge(
            r,
            "signalbox_advisor_people_agreement",
            "Share of the items the advisor proposed for, answered by people, where they chose its proposal",
            stats.advised_agreed as f64 / stats.advised_answered as f64,
        );
    }
    if stats.shadow_answered > 0 {
        gauge(
            r,
            "signalbox_shadow_people_agreement",
            "Share of shadowed decisions people answered where the candidate proposed their choice",
            stats.shadow_people_agreed as f64 / stats.shadow_answered as f64,
        );
    }
}

/// What is open now: the review queue, flows by state, breakers, pages,
/// the journal's last commit.
fn state_metrics(r: &mut Registry, stats: &EngineStats) {
    gauges(
        r,
        "signalbox_pages",
        "Pages in memory by state",
        stats
            .pages_by_state
            .iter()
            .map(|(state, n)| (vec![("state", state.clone())], *n as i64)),
    );
    float_gauges(
        r,
        "signalbox_page_mean_time_to_acknowledge_seconds",
        "Mean time from a page's opening to its acknowledgement, by team (pages in memory)",
        stats
            .acknowledge_seconds
            .iter()
            .map(|(team, s)| (vec![("team", team.clone())], *s)),
    );
    gauge(
        r,
        "signalbox_review_queue_depth",
        "Open review items",
        stats.open_reviews as f64,
    );
    gauges(
        r,
        "signalbox_flows",
        "Flows in memory by state",
        stats
            .flows_by_state
            .iter()
            .map(|(state, n)| (vec![("state", state.clone())], *n as i64)),
    );
    gauges(
        r,
        "signalbox_breaker_open",
        "Circuit breakers (1 when open or half open)",
        stats.breakers.iter().map(|(executor, state)| {
            (
                vec![("executor", executor.clone()), ("state", state.clone())],
                i64::from(state != "closed"),
            )
        }),
    );
    gauge(
        r,
        "signalbox_journal_commit_seconds",
        "Duration of the last journal commit",
        stats.last_commit_micros as f64 / 1e6,
    );
    counter(
        r,
        "signalbox_journal_commits",
        "Journal commits",
        stats.commits,
    );
}

/// Noise held, outcomes and who decides: what the operation made of its
/// signals.
fn outcome_metrics(r: &mut Registry, stats: &EngineStats) {
    counters(
        r,
        "signalbox_signals_held",
        "Signals recorded without work of their own, by what held them (repeat, grouped, silenced, maintenance, inhibited, transient, flapping)",
        stats
            .held
            .iter()
            .map(|(reason, n)| (vec![("reason", reason.clone())], *n)),
    );
    gauge(
        r,
        "signalbox_incidents_open",
        "Incidents open",
        stats.open_incidents as f64,
    );
    counters(
        r,
        "signalbox_outcomes",
        "Outcomes with a verdict by where they come from (work: how flows ended; stated: outcome.recorded signals) and whether within SLA",
        stats.outcomes.iter().flat_map(|(source, n, within)| {
            [
                (
                    vec![
                        ("source", source.to_string()),
                        ("within_sla", "true".to_string()),
                    ],
                    *within,
                ),
                (
                    vec![
                        ("source", source.to_string()),
                        ("within_sla", "false".to_string()),
                    ],
                    n.saturating_sub(*within),
                ),
            ]
        }),
    );
    counter(
        r,
        "signalbox_flows_reopened",
        "Flows done in time whose alert fired again within their type's reopen span (bad outcomes)",
        stats.reopened,
    );
    gauges(
        r,
        "signalbox_classes_deciding",
        "Decision classes whose model mode is rules or apprentice, by who decides each now",
        [
            (vec![("by", "rules".to_string())], stats.deciding.0 as i64),
            (vec![("by", "model".to_string())], stats.deciding.1 as i64),
        ],
    );
    counter(
        r,
        "signalbox_incidents_opened",
        "Incidents opened in this journal",
        stats.incidents_opened,
    );
    gauges(
        r,
        "signalbox_alerts_held_off",
        "Alerts held off now: paused as possible transients, or flapping",
        [
            (
                vec![("state", "paused".to_string())],
                stats.held_off.0 as i64,
            ),
            (
                vec![("state", "flapping".to_string())],
                stats.held_off.1 as i64,
            ),
        ],
    );
}

/// The content type of `render`'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_label_values_are_escaped_and_cannot_forge_series() {
        let stats = EngineStats {
            signals: vec![(
                "evil\"} 1\nsignalbox_forged_total{x=\"1".to_string(),
                "decided",
                3,
            )],
            breakers: vec![("it's \\ \"odd\"".to_string(), "open".to_string())],
            ..EngineStats::default()
        };
        let intake = IntakeCounters::default();
        intake.refused("signals", 400);
        let dir = tempfile::tempdir().unwrap();
        let (log, _writer) = crate::intake::log::IntakeLog::open(dir.path()).unwrap();
        let hub = crate::intake::events::EventHub::new(0);
        let advisor = crate::engine::overview::AdvisorRow {
            open: true,
            trips: 2,
            ..Default::default()
        };
        let text = render(&intake, &stats, 7, &log, Some(&hub), Some(&advisor));
        assert!(text.contains("signalbox_advisor_breaker_open 1"), "{text}");
        assert!(
            text.contains("signalbox_advisor_breaker_trips_total 2"),
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("signalbox_forged")),
            "{text}"
        );
        assert!(
            text.contains(r#"type="evil\"} 1\nsignalbox_forged_total{x=\"1""#),
            "{text}"
        );
        assert!(text.contains(r#"executor="it's \\ \"odd\"""#), "{text}");
        assert!(text.contains("signalbox_intake_backlog 7"), "{text}");
        assert!(
            text.contains("signalbox_event_stream_events_total 0"),
            "{text}"
        );
        assert!(
            text.contains("signalbox_decision_latency_seconds_count 0"),
            "{text}"
        );
        assert!(
            text.contains(r#"signalbox_refused_total{endpoint="signals",status="400"} 1"#),
            "{text}"
        );
        // Every line is a comment or `name{labels} value`.
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("signalbox_"),
                "{line}"
            );
        }
    }
}
