//! `GET /v1/state` on a cluster node: every partition's state, merged into
//! the one a console starts from.
//!
//! Counts add up (signals, open items, flows, quarantined, held, pages by
//! state, a team's load); lists are joined (review items, flows, tasks,
//! pages, incidents, quarantine; silences once by id); a rate is the
//! partitions' rates weighted by what they count (decisions, outcomes);
//! a percentile of cycle time is the partitions' weighted by flows done,
//! which is an approximation (the exact figure needs every flow); what
//! every partition holds alike (versions, the rota, the ramp) is the
//! first's. The event id is the node's own (the cluster's event stream),
//! read before the partitions were asked: what follows it may repeat what
//! the state already holds, and a console applies it again harmlessly.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::api::Answer;
use crate::engine::overview::{FLOWS_SHOWN, Noise, Overview, PAGES_SHOWN, State, TASKS_SHOWN};
use crate::intake::Refusal;
use crate::metrics::Summary;

pub(super) fn merge(
    answers: Vec<Answer>,
    last_event: Option<u64>,
    attached: Option<usize>,
) -> Result<Response, Refusal> {
    if let Some(refused) = answers.iter().position(|a| !a.status.is_success()) {
        return Ok(answers.into_iter().nth(refused).map_or_else(
            || StatusCode::BAD_GATEWAY.into_response(),
            Answer::into_response,
        ));
    }
    let mut states = Vec::with_capacity(answers.len());
    for answer in &answers {
        let state: State = serde_json::from_slice(&answer.body).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                format!("partition {}'s state: {e}", answer.partition),
            )
        })?;
        states.push((answer.partition, state));
    }
    let mut merged = merge_states(states).ok_or_else(|| {
        Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "no partition answered").retry_later()
    })?;
    merged.last_event_id = last_event.unwrap_or(0);
    merged.overview.attached = attached;
    Ok((StatusCode::OK, axum::Json(merged)).into_response())
}

/// The states as one (none without any), with the review items' cursor
/// made of each partition's (`cursor`).
pub(super) fn merge_states(states: Vec<(u32, State)>) -> Option<State> {
    let mut next = BTreeMap::new();
    // One model in the cluster: partitions differ only while an example
    // is on its way, and then the merged state says so.
    let updates = |v: &str| v.rsplit_once('@').and_then(|(_, n)| n.parse::<u64>().ok());
    let versions: Vec<&String> = states
        .iter()
        .map(|(_, s)| &s.overview.model_version)
        .collect();
    let lowest = versions
        .iter()
        .min_by_key(|v| updates(v))
        .map(|v| v.to_string());
    let highest = versions
        .iter()
        .max_by_key(|v| updates(v))
        .map(|v| v.to_string());
    let mut iter = states.into_iter();
    let (first_p, mut merged) = iter.next()?;
    if let Some(own) = merged.next.take() {
        next.insert(first_p, own);
    }
    for (p, state) in iter {
        if let Some(own) = state.next {
            next.insert(p, own);
        }
        merged.overview = merge_overviews(merged.overview, state.overview);
        merged.reviews.extend(state.reviews);
        merged.flows.extend(state.flows);
    }
    merged
        .flows
        .sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
    merged.flows.truncate(FLOWS_SHOWN);
    if let (Some(lowest), Some(highest)) = (lowest, highest)
        && lowest != highest
    {
        merged.overview.model_version = format!("{lowest} to {highest}");
    }
    merged.next = super::cursor::Cursor::pack(&next);
    Some(merged)
}

fn merge_overviews(mut a: Overview, b: Overview) -> Overview {
    a.now = a.now.max(b.now);
    let mut teams: BTreeMap<String, crate::engine::overview::TeamRow> = BTreeMap::new();
    for team in a.teams.drain(..).chain(b.teams) {
        teams
            .entry(team.id.clone())
            .and_modify(|t| t.load += team.load)
            .or_insert(team);
    }
    a.teams = teams.into_values().collect();
    let mut services: BTreeMap<String, crate::engine::overview::ServiceRow> = BTreeMap::new();
    for service in a.services.drain(..).chain(b.services) {
        services
            .entry(service.id.clone())
            .and_modify(|s| {
                if health_rank(&service.health) > health_rank(&s.health) {
                    *s = service.clone();
                }
            })
            .or_insert(service);
    }
    a.services = services.into_values().collect();
    let mut breakers: BTreeMap<String, crate::engine::overview::BreakerRow> = BTreeMap::new();
    for row in a.breakers.drain(..).chain(b.breakers) {
        breakers
            .entry(row.executor.clone())
            .and_modify(|r| {
                if row.failures + row.trips > r.failures + r.trips {
                    *r = row.clone();
                }
            })
            .or_insert(row);
    }
    a.breakers = breakers.into_values().collect();
    a.total = merge_summaries(&a.total, &b.total);
    a.hourly = merge_hours(&a.hourly, &b.hourly);
    a.baseline_hourly = merge_hours(&a.baseline_hourly, &b.baseline_hourly);
    a.signals += b.signals;
    a.open_reviews += b.open_reviews;
    a.oldest_review = match (a.oldest_review, b.oldest_review) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    a.active_flows += b.active_flows;
    a.sla_at_risk += b.sla_at_risk;
    a.quarantined += b.quarantined;
    a.quarantine.extend(b.quarantine);
    a.noise = merge_noise(a.noise, b.noise);
    a.tasks.extend(b.tasks);
    a.tasks.truncate(TASKS_SHOWN);
    a.pages.extend(b.pages);
    a.pages.sort_by_key(|p| std::cmp::Reverse(p.opened));
    a.pages.truncate(PAGES_SHOWN);
    a.paging.by_state = add_by_key(&a.paging.by_state, &b.paging.by_state);
    a.paging.acknowledge_seconds =
        mean_by_key(&a.paging.acknowledge_seconds, &b.paging.acknowledge_seconds);
    let mut channels: BTreeMap<String, crate::engine::ChannelRow> = BTreeMap::new();
    for row in a.paging.channels.drain(..).chain(b.paging.channels) {
        channels
            .entry(row.method.clone())
            .and_modify(|r| {
                r.delivered += row.delivered;
                r.failed += row.failed;
                r.sending += row.sending;
                if row.last_failure > r.last_failure {
                    r.failing = row.failing;
                    r.last_failure = row.last_failure.clone();
                }
            })
            .or_insert(row);
    }
    a.paging.channels = channels.into_values().collect();
    let mut budgets: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (class, open, budget) in a.review_budgets.drain(..).chain(b.review_budgets) {
        let entry = budgets.entry(class).or_insert((0, budget));
        entry.0 += open;
    }
    a.review_budgets = budgets.into_iter().map(|(c, (o, b))| (c, o, b)).collect();
    a.incidents.extend(b.incidents);
    for silence in b.silences {
        if !a.silences.iter().any(|s| s.id == silence.id) {
            a.silences.push(silence);
        }
    }
    a
}

/// A service's health, worse is higher: the merged row is the worst a
/// partition saw.
fn health_rank(health: &str) -> u8 {
    match health {
        "down" => 2,
        "degraded" => 1,
        _ => 0,
    }
}

fn merge_noise(a: Noise, b: Noise) -> Noise {
    Noise {
        paused: a.paused + b.paused,
        flapping: a.flapping + b.flapping,
        held: add_by_key(&a.held, &b.held),
    }
}

fn add_by_key(a: &[(String, u64)], b: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut sums: Vec<(String, u64)> = a.to_vec();
    for (key, n) in b {
        match sums.iter_mut().find(|(k, _)| k == key) {
            Some((_, sum)) => *sum += n,
            None => sums.push((key.clone(), *n)),
        }
    }
    sums
}

fn mean_by_key(a: &[(String, f64)], b: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut means: Vec<(String, f64)> = a.to_vec();
    for (key, x) in b {
        match means.iter_mut().find(|(k, _)| k == key) {
            Some((_, m)) => *m = (*m + x) / 2.0,
            None => means.push((key.clone(), *x)),
        }
    }
    means
}

fn merge_hours(a: &[Summary], b: &[Summary]) -> Vec<Summary> {
    let empty = Summary::default();
    (0..a.len().max(b.len()))
        .map(|i| merge_summaries(a.get(i).unwrap_or(&empty), b.get(i).unwrap_or(&empty)))
        .collect()
}

/// Two partitions' figures as one: counts added, rates weighted by what
/// they are rates of.
pub(super) fn merge_summaries(a: &Summary, b: &Summary) -> Summary {
    let by = |x: Option<f64>, wx: u64, y: Option<f64>, wy: u64| weighted(x, wx, y, wy);
    let mut utilisation = a.utilisation.clone();
    for (team, u) in &b.utilisation {
        *utilisation.entry(team.clone()).or_default() += u;
    }
    let (da, db) = (a.decisions, b.decisions);
    let (oa, ob) = (a.outcomes, b.outcomes);
    let (fa, fb) = (a.flows_done, b.flows_done);
    Summary {
        signals: a.signals + b.signals,
        duplicates: a.duplicates + b.duplicates,
        decisions: da + db,
        automation_rate: by(a.automation_rate, da, b.automation_rate, db),
        review_rate: by(a.review_rate, da, b.review_rate, db),
        override_rate: by(a.override_rate, da, b.override_rate, db),
        agreement_with_operators: by(
            a.agreement_with_operators,
            da,
            b.agreement_with_operators,
            db,
        ),
        safe_defaults: a.safe_defaults + b.safe_defaults,
        escalations: a.escalations + b.escalations,
        outcomes: oa + ob,
        within_sla: by(a.within_sla, oa, b.within_sla, ob),
        agreement_with_truth: by(a.agreement_with_truth, oa, b.agreement_with_truth, ob),
        cycle_p50_minutes: by(a.cycle_p50_minutes, fa, b.cycle_p50_minutes, fb),
        cycle_p95_minutes: by(a.cycle_p95_minutes, fa, b.cycle_p95_minutes, fb),
        flows_done: fa + fb,
        flows_failed: a.flows_failed + b.flows_failed,
        flows_compensated: a.flows_compensated + b.flows_compensated,
        utilisation,
        shadow_agreement: by(a.shadow_agreement, da, b.shadow_agreement, db),
        shadow_people_agreement: by(a.shadow_people_agreement, da, b.shadow_people_agreement, db),
        advisor_agreement: by(a.advisor_agreement, da, b.advisor_agreement, db),
    }
}

/// The mean of two rates, each weighted by its count (a rate without a
/// count, or missing, weighs nothing).
fn weighted(x: Option<f64>, wx: u64, y: Option<f64>, wy: u64) -> Option<f64> {
    match (x, y) {
        (Some(x), Some(y)) if wx + wy > 0 => {
            Some((x * wx as f64 + y * wy as f64) / (wx + wy) as f64)
        }
        (Some(x), Some(_)) => Some(x),
        (x, y) => x.or(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_and_rates_weigh_by_what_they_count() {
        let a = Summary {
            signals: 10,
            decisions: 10,
            automation_rate: Some(1.0),
            outcomes: 1,
            within_sla: Some(0.0),
            ..Default::default()
        };
        let b = Summary {
            signals: 30,
            decisions: 30,
            automation_rate: Some(0.5),
            outcomes: 3,
            within_sla: Some(1.0),
            ..Default::default()
        };
        let m = merge_summaries(&a, &b);
        assert_eq!((m.signals, m.decisions, m.outcomes), (40, 40, 4));
        assert_eq!(m.automation_rate, Some(0.625));
        assert_eq!(m.within_sla, Some(0.75));
        let none = merge_summaries(&Summary::default(), &b);
        assert_eq!(
            none.within_sla,
            Some(1.0),
            "a partition without outcomes weighs nothing"
        );
    }

    #[test]
    fn partitions_whose_models_differ_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        let config = crate::engine::EngineConfig::new(dir.path(), 1);
        let engine =
            crate::engine::Engine::open(config, crate::context::World::default(), now).unwrap();
        let state = |version: &str| {
            let mut s = State::overview(&engine, now);
            s.overview.model_version = version.into();
            s
        };
        let same = merge_states(vec![(0, state("logreg-18b@3")), (1, state("logreg-18b@3"))]);
        assert_eq!(same.unwrap().overview.model_version, "logreg-18b@3");
        let apart = merge_states(vec![
            (0, state("logreg-18b@10")),
            (1, state("logreg-18b@9")),
        ]);
        assert_eq!(
            apart.unwrap().overview.model_version,
            "logreg-18b@9 to logreg-18b@10"
        );
    }

    #[test]
    fn held_signals_add_by_why() {
        let a = vec![("repeat".to_string(), 2), ("silenced".to_string(), 1)];
        let b = vec![("silenced".to_string(), 4), ("grouped".to_string(), 3)];
        assert_eq!(
            add_by_key(&a, &b),
            vec![
                ("repeat".to_string(), 2),
                ("silenced".to_string(), 5),
                ("grouped".to_string(), 3)
            ]
        );
    }
}
