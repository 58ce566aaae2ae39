//! Decision-quality metrics, for the whole run and per hour of engine time:
//! automation, review and override rates, agreement with operators,
//! outcomes within SLA, cycle time percentiles and team utilisation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decide::Mode;

/// Upper bounds (minutes) of the cycle-time histogram buckets.
const CYCLE_BUCKETS: &[f64] = &[
    1.0,
    2.0,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
    180.0,
    240.0,
    360.0,
    480.0,
    720.0,
    1440.0,
    f64::INFINITY,
];

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Tally {
    pub signals: u64,
    pub duplicates: u64,
    pub decisions: u64,
    pub auto: u64,
    pub forced: u64,
    pub rules: u64,
    pub review: u64,
    pub record: u64,
    pub approvals: u64,
    pub overrides: u64,
    pub rejections: u64,
    pub safe_defaults: u64,
    pub escalations: u64,
    pub outcomes: u64,
    pub within_sla: u64,
    /// Outcomes of the work itself (flows that ended with a verdict), and
    /// those within SLA: what a deployment without `outcome.recorded`
    /// signals reads.
    pub work_outcomes: u64,
    pub work_within_sla: u64,
    /// Of those within SLA, flows whose alert fired again within their
    /// type's `reopen` span (taken out of `work_within_sla`).
    pub reopened: u64,
    pub flows_done: u64,
    pub flows_failed: u64,
    pub flows_compensated: u64,
    pub cycle_histogram: Vec<u64>,
    pub utilisation_sum: BTreeMap<String, f64>,
    pub utilisation_samples: u64,
    /// Judged by whoever knows the truth (the simulator): proposals that were right.
    pub judged: u64,
    pub judged_right: u64,
    /// Signals that could not be decided and were quarantined.
    pub quarantined: u64,
    /// Policy rules that failed to evaluate (and were applied at their
    /// strictest).
    pub policy_errors: u64,
    /// Decisions a shadow candidate also made, and those where it proposed
    /// the live proposal.
    pub shadowed: u64,
    pub shadow_agreed: u64,
    /// Shadowed decisions a person answered with an option (approved or
    /// overrode), and those where the candidate had proposed that option.
    #[serde(default)]
    pub shadow_answered: u64,
    #[serde(default)]
    pub shadow_people_agreed: u64,
    /// Review items the advisor proposed for; those people answered with
    /// an option, and those where it had proposed that option.
    #[serde(default)]
    pub advised: u64,
    #[serde(default)]
    pub advised_answered: u64,
    #[serde(default)]
    pub advised_agreed: u64,
}

impl Tally {
    pub fn count_decision(&mut self, mode: Mode) {
        self.decisions += 1;
        match mode {
            Mode::Auto => self.auto += 1,
            Mode::Forced => self.forced += 1,
            Mode::Rules => self.rules += 1,
            Mode::Review => self.review += 1,
            Mode::Record => self.record += 1,
        }
    }

    pub fn count_cycle(&mut self, minutes: f64) {
        if self.cycle_histogram.len() != CYCLE_BUCKETS.len() {
            self.cycle_histogram = vec![0; CYCLE_BUCKETS.len()];
        }
        let slot = CYCLE_BUCKETS
            .iter()
            .position(|&b| minutes <= b)
            .unwrap_or(CYCLE_BUCKETS.len() - 1);
        self.cycle_histogram[slot] += 1;
    }

    /// `n` of `d`, when there is any `d`.
    pub fn ratio(n: u64, d: u64) -> Option<f64> {
        (d > 0).then(|| n as f64 / d as f64)
    }

    /// Decisions that had something to choose.
    fn choices(&self) -> u64 {
        self.decisions - self.record
    }

    pub fn summary(&self) -> Summary {
        let answered = self.approvals + self.overrides + self.rejections;
        Summary {
            signals: self.signals,
            duplicates: self.duplicates,
            decisions: self.decisions,
            automation_rate: Tally::ratio(self.auto + self.forced + self.rules, self.choices()),
            review_rate: Tally::ratio(self.review, self.choices()),
            override_rate: Tally::ratio(self.overrides, answered),
            agreement_with_operators: Tally::ratio(self.approvals, answered),
            safe_defaults: self.safe_defaults,
            escalations: self.escalations,
            // Stated outcomes where there are any; else the work's own.
            outcomes: if self.outcomes > 0 {
                self.outcomes
            } else {
                self.work_outcomes
            },
            within_sla: match self.outcomes {
                0 => Tally::ratio(self.work_within_sla, self.work_outcomes),
                n => Tally::ratio(self.within_sla, n),
            },
            agreement_with_truth: Tally::ratio(self.judged_right, self.judged),
            shadow_agreement: Tally::ratio(self.shadow_agreed, self.shadowed),
            shadow_people_agreement: Tally::ratio(self.shadow_people_agreed, self.shadow_answered),
            advisor_agreement: Tally::ratio(self.advised_agreed, self.advised_answered),
            cycle_p50_minutes: self.percentile(0.50),
            cycle_p95_minutes: self.percentile(0.95),
            flows_done: self.flows_done,
            flows_failed: self.flows_failed,
            flows_compensated: self.flows_compensated,
            utilisation: self
                .utilisation_sum
                .iter()
                .map(|(team, sum)| (team.clone(), sum / self.utilisation_samples.max(1) as f64))
                .collect(),
        }
    }

    /// The upper bound of the bucket holding the q-th cycle time.
    fn percentile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.cycle_histogram.iter().sum();
        if total == 0 {
            return None;
        }
        let target = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.cycle_histogram.iter().enumerate() {
            seen += n;
            if seen >= target {
                return Some(CYCLE_BUCKETS[i].min(2880.0));
            }
        }
        None
    }
}

/// The figures a report prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub signals: u64,
    pub duplicates: u64,
    pub decisions: u64,
    pub automation_rate: Option<f64>,
    pub review_rate: Option<f64>,
    pub override_rate: Option<f64>,
    pub agreement_with_operators: Option<f64>,
    pub safe_defaults: u64,
    pub escalations: u64,
    pub outcomes: u64,
    pub within_sla: Option<f64>,
    pub agreement_with_truth: Option<f64>,
    pub cycle_p50_minutes: Option<f64>,
    pub cycle_p95_minutes: Option<f64>,
    pub flows_done: u64,
    pub flows_failed: u64,
    pub flows_compensated: u64,
    pub utilisation: BTreeMap<String, f64>,
    /// Where a shadow candidate decides beside the live policy: the share of
    /// its decisions that proposed the live proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_agreement: Option<f64>,
    /// Of the shadowed decisions people answered with an option, the share
    /// where the candidate had proposed the option they chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_people_agreement: Option<f64>,
    /// Of the items the advisor proposed for that people answered, the
    /// share where they chose its proposal.
    #[serde(default)]
    pub advisor_agreement: Option<f64>,
}

/// Whole-run and per-hour tallies, hours counted from `start`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub start: DateTime<Utc>,
    pub total: Tally,
    pub hours: Vec<Tally>,
}

impl Metrics {
    pub fn new(start: DateTime<Utc>) -> Metrics {
        Metrics {
            start,
            total: Tally::default(),
            hours: Vec::new(),
        }
    }

    /// Applies `f` to the whole-run tally and to the tally of `at`'s hour.
    pub fn at(&mut self, at: DateTime<Utc>, f: impl Fn(&mut Tally)) {
        f(&mut self.total);
        let hour = (at - self.start).num_hours().max(0) as usize;
        if self.hours.len() <= hour {
            self.hours.resize_with(hour + 1, Tally::default);
        }
        f(&mut self.hours[hour]);
    }

    pub fn hourly(&self) -> Vec<Summary> {
        self.hours.iter().map(Tally::summary).collect()
    }

    /// One summary over a range of hours.
    pub fn window(&self, hours: std::ops::Range<usize>) -> Tally {
        let mut sum = Tally::default();
        for t in self.hours.iter().skip(hours.start).take(hours.len()) {
            merge(&mut sum, t);
        }
        sum
    }
}

fn merge(into: &mut Tally, t: &Tally) {
    macro_rules! add {
        ($($f:ident),*) => { $( into.$f += t.$f; )* };
    }
    add!(
        signals,
        duplicates,
        decisions,
        auto,
        forced,
        rules,
        review,
        record,
        approvals,
        overrides,
        rejections,
        safe_defaults,
        escalations,
        outcomes,
        within_sla,
        work_outcomes,
        work_within_sla,
        reopened,
        flows_done,
        flows_failed,
        flows_compensated,
        utilisation_samples,
        judged,
        judged_right,
        quarantined,
        policy_errors
    );
    if into.cycle_histogram.len() < t.cycle_histogram.len() {
        into.cycle_histogram.resize(t.cycle_histogram.len(), 0);
    }
    for (i, n) in t.cycle_histogram.iter().enumerate() {
        into.cycle_histogram[i] += n;
    }
    for (team, v) in &t.utilisation_sum {
        *into.utilisation_sum.entry(team.clone()).or_default() += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut t = Tally::default();
        for m in [3.0, 3.0, 3.0, 50.0] {
            t.count_cycle(m);
        }
        let s = t.summary();
        assert_eq!(s.cycle_p50_minutes, Some(5.0));
        assert_eq!(s.cycle_p95_minutes, Some(60.0));
    }

    #[test]
    fn rates_leave_out_record_only_decisions() {
        let mut t = Tally::default();
        t.count_decision(Mode::Auto);
        t.count_decision(Mode::Review);
        t.count_decision(Mode::Record);
        assert_eq!(t.summary().automation_rate, Some(0.5));
    }
}
