//! Flows: the work a decision sets in motion, across processes.
//!
//! The flow state machine lives here and only here; the decision layer never
//! touches it. A flow is a small DAG of steps (each step may wait on others),
//! assembled at run time from step templates. `FlowBook` holds every flow and
//! advances them on `tick`, given the time and the context (for routing);
//! executors (`executor`) say what becomes of each step.

pub mod assemble;
mod book;
mod changes;
mod compensate;
pub mod executor;
pub mod incident;
pub mod outcome;
pub mod route;
mod run;
pub mod task;
mod types;

pub use book::{FlowBook, FlowFilter, KEEP_FINISHED};
pub use changes::{BIG_FLOW, FlowChange};
pub use executor::{Dispatch, Executor, Plan, StepStart};
pub use task::{Task, TaskAction, TaskError, TaskFilter};
pub use types::{ExecutionSettings, Flow, FlowEvent, FlowEventKind, FlowState, Step, StepState};

#[cfg(test)]
mod tests {
    use super::compensate::undo_steps;
    use super::*;
    use crate::context::Context;
    use crate::playbook::steps::{DEFAULT_STEPS, StepCatalogue};
    use chrono::{DateTime, Duration, Utc};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Every step ends well a minute after it starts: the machine's moves
    /// without the simulator's draws.
    struct Steady;

    impl Executor for Steady {
        fn name(&self) -> &str {
            "steady"
        }

        fn start(&mut self, step: &StepStart<'_>, _: &Context) -> Plan {
            Plan::Ends {
                due: step.now + Duration::minutes(1),
                success: true,
            }
        }
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 31, 9, 0, 0).unwrap()
            + Duration::minutes(minutes)
    }

    /// A flow whose second step fails for good after its first was done:
    /// the first is undone, then the flow ends compensated, and it stops
    /// waking up.
    #[test]
    fn a_failed_step_runs_the_undo_of_what_was_done() {
        let catalogue = StepCatalogue::parse(DEFAULT_STEPS, "steps").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let world = crate::sim::world::northwind(&mut rng, at(0));
        let mut context = Context::from_world(world);
        let mut pick = Step::new("fulfillment.pick", "fulfillment", "order/o1", vec![]);
        pick.state = StepState::Done;
        pick.finished = Some(at(0));
        let mut ship = Step::new("fulfillment.ship", "fulfillment", "order/o1", vec![0]);
        // A person's step that fails is not retried.
        ship.state = StepState::Running;
        ship.attempts = 1;
        ship.will_succeed = false;
        ship.due = Some(at(1));
        let flow = Flow {
            id: "F1".into(),
            decision_id: "D1".into(),
            signal_id: "s1".into(),
            signal_type: "order.placed".into(),
            subject: "order/o1".into(),
            class: "fulfillment".into(),
            option: "standard_fulfillment".into(),
            state: FlowState::Running,
            created: at(0),
            deadline: at(600),
            steps: vec![pick, ship],
            ..Flow::default()
        };
        let mut book = FlowBook {
            executor: Box::new(Steady),
            ..FlowBook::default()
        };
        book.insert(flow, at(0));
        let mut finished = Vec::new();
        for m in (1..600).step_by(5) {
            finished.extend(book.tick(at(m), &mut context, &catalogue));
        }
        let flow = book.get("F1").unwrap();
        assert_eq!(flow.state, FlowState::Compensated, "{:?}", flow.steps);
        assert_eq!(finished, vec!["F1".to_string()]);
        let undo: Vec<_> = flow.steps.iter().filter(|s| s.compensation).collect();
        assert_eq!(undo.len(), 1);
        assert_eq!(undo[0].template, "fulfillment.restock");
        assert_eq!(undo[0].state, StepState::Done);
        assert!(book.wake.is_empty(), "a finished flow has no timer");
    }

    /// A fan-out over two orders (replan, then move the promised date, for
    /// each) where a later step failed: within an order the date is restored
    /// before the replan is cancelled; the two orders are undone side by
    /// side, not one after the other.
    #[test]
    fn undo_follows_each_chain_backwards_and_chains_run_side_by_side() {
        let catalogue = StepCatalogue::parse(DEFAULT_STEPS, "steps").unwrap();
        let done = |template: &str, subject: &str, after: Vec<usize>| {
            let mut s = Step::new(template, "procurement", subject, after);
            s.state = StepState::Done;
            s
        };
        let steps = vec![
            done("procurement.replan_order", "order/o1", vec![]),
            done("fulfillment.move_promised_date", "order/o1", vec![0]),
            done("procurement.replan_order", "order/o2", vec![]),
            done("fulfillment.move_promised_date", "order/o2", vec![2]),
            // Nothing to undo for a notice, but what it came after waits
            // for nothing on its account.
            done("customer_service.notify_customer", "customer/c1", vec![3]),
        ];
        let undo = undo_steps(&steps, &catalogue);
        let named: Vec<(String, String, Vec<usize>)> = undo
            .iter()
            .map(|s| (s.template.clone(), s.subject.clone(), s.after.clone()))
            .collect();
        // Numbered from 5, newest first.
        assert_eq!(
            named,
            vec![
                (
                    "fulfillment.restore_promised_date".into(),
                    "order/o2".into(),
                    vec![]
                ),
                (
                    "procurement.cancel_replan".into(),
                    "order/o2".into(),
                    vec![5]
                ),
                (
                    "fulfillment.restore_promised_date".into(),
                    "order/o1".into(),
                    vec![]
                ),
                (
                    "procurement.cancel_replan".into(),
                    "order/o1".into(),
                    vec![7]
                ),
            ]
        );
        assert!(undo.iter().all(|s| s.compensation));
    }
}
