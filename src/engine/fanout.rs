//! Fan-out: an option that spreads over a supplier's open orders takes one
//! sub-decision per order (its own snapshot, features and choice), and the
//! steps that follow from each.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Engine, EngineEvent};
use crate::context::{Snapshot, split_key};
use crate::decide::{Case, Choice, Decision, Mode, features};
use crate::flow::Step;
use crate::flow::assemble::{Branch, fanout_steps, steps_for};
use crate::journal::Record;
use crate::signal::Signal;

impl Engine {
    /// The steps of `option` for this decision, each carrying what its
    /// template names of the signal and the decision's context.
    pub(super) fn assemble(
        &mut self,
        decision: &Decision,
        option: &str,
        signal: &Signal,
        choice: &Choice<'_>,
        now: DateTime<Utc>,
    ) -> Vec<Step> {
        let mut steps = self.assemble_steps(decision, option, signal, choice, now);
        let view = decision.policy_input.as_ref().and_then(|i| i.view());
        crate::flow::assemble::carry(&mut steps, &self.decider.steps, signal, view);
        steps
    }

    /// The steps of `option`; a fan-out takes one sub-decision per
    /// affected order.
    // Over 80 lines: one branch decision per open order, built in one pass.
    fn assemble_steps(
        &mut self,
        decision: &Decision,
        option: &str,
        signal: &Signal,
        choice: &Choice<'_>,
        now: DateTime<Utc>,
    ) -> Vec<Step> {
        let playbook = Arc::clone(&self.decider.playbook);
        let steps = Arc::clone(&self.decider.steps);
        let Some(fanout_name) = playbook.options.get(option).and_then(|o| o.fanout.clone()) else {
            return steps_for(option, &decision.subject, &playbook, &steps);
        };
        let Some(fanout) = playbook.fanouts.get(&fanout_name) else {
            return Vec::new();
        };
        let supplier = split_key(&decision.subject)
            .map(|(_, id)| id.to_string())
            .unwrap_or_default();
        let orders: Vec<_> = self
            .context
            .open_orders_of(&supplier)
            .into_iter()
            .cloned()
            .collect();
        let sub_choice = Choice::of_fanout(fanout, choice);
        let mut branches = Vec::new();
        for order in orders {
            let mut snapshot = Snapshot::new();
            for key in [
                format!("order/{}", order.id),
                format!("customer/{}", order.customer),
                format!("supplier/{}", order.supplier),
            ] {
                if let Some(v) = self.context.entity_json(&key) {
                    snapshot.insert(key, v);
                }
            }
            if let Some(alt) = self
                .context
                .suppliers
                .get(&order.supplier)
                .and_then(|s| s.alternate.clone())
                && let Some(v) = self.context.entity_json(&format!("supplier/{alt}"))
            {
                snapshot.insert(format!("supplier/{alt}"), v);
            }
            let features = features::for_order(signal, &order, &self.context);
            let n = self.new_id();
            let subject = format!("order/{}", order.id);
            let case = Case {
                id: format!("D{n:07}"),
                parent: Some(decision.id.clone()),
                signal,
                subject: &subject,
                snapshot,
                features,
                choice: &sub_choice,
                now,
            };
            let mut sub = self.decider.decide(case, &mut self.context);
            if sub.mode == Mode::Review {
                // The parent decision is the one a person reviews; a branch
                // takes the best allowed option and says so.
                sub.mode = self.decider.branch_mode();
                sub.why = format!(
                    "fan-out branch of {}: best allowed option ({})",
                    decision.id, sub.why
                );
            }
            let notify = self
                .context
                .customers
                .get(&order.customer)
                .is_some_and(|c| fanout.notify_tiers.iter().any(|t| t == c.tier.as_str()));
            branches.push(Branch {
                order: order.id.clone(),
                customer: order.customer.clone(),
                choice: sub.proposal.clone(),
                notify,
            });
            let sub = Arc::new(sub);
            self.ramp_decided(&sub, now);
            self.outbox.records.push(Record::Decision(Arc::clone(&sub)));
            self.emit(EngineEvent::Decision(Arc::clone(&sub)));
            self.settled(&sub, &sub.proposal.clone(), now);
        }
        fanout_steps(fanout, &branches, &playbook, &steps)
    }
}
