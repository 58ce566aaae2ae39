//! The simulated executor: how long Northwind's automations and people
//! take over a step, and whether it works. The only place that draws a
//! step's outcome at random, each attempt from its own luck
//! (`super::draw`).

use chrono::Duration;
use rand::Rng;

use crate::context::{Context, Health};
use crate::flow::route::{self, Assignee};
use crate::flow::{Executor, Plan, StepStart};

/// Draws each step's duration and outcome: an automation fails more often
/// on a degraded service and always on one that is down; a person's time
/// grows with their team's load, and a person rarely fails.
#[derive(Debug)]
pub struct Simulated {
    seed: u64,
}

impl Simulated {
    /// The same seed draws the same outcomes (the engine's seed, so a run
    /// is reproducible from it).
    pub fn new(seed: u64) -> Simulated {
        Simulated { seed }
    }
}

impl Executor for Simulated {
    fn name(&self) -> &str {
        "simulated"
    }

    fn start(&mut self, step: &StepStart<'_>, context: &Context) -> Plan {
        let template = step.template;
        let flow = step.flow;
        let attempt = flow.steps.get(step.step).map_or(0, |s| s.attempts);
        let about = format!(
            "{}/{}/{}/{attempt}",
            flow.signal_id, flow.subject, step.step
        );
        let mut luck = super::draw::about(self.seed, "step", &about);
        match step.assignee {
            Assignee::Automation { service, .. } => {
                let fail_p = match context.service_health(service) {
                    Some(Health::Down) => 1.0,
                    Some(Health::Degraded) => 0.35,
                    _ => 0.02,
                };
                let success = luck.random::<f64>() >= fail_p;
                let secs = f64::from(template.auto_seconds) * luck.random_range(0.6..1.4);
                // A failure shows quickly.
                let secs = if success { secs } else { secs.min(30.0) };
                Plan::Ends {
                    due: step.now + Duration::seconds(secs as i64),
                    success,
                }
            }
            assignee => {
                let load_factor = route::load_factor(assignee, context);
                let minutes =
                    f64::from(template.minutes) * load_factor * luck.random_range(0.6..1.4);
                // People rarely fail a step, but they can: the flow compensates.
                let success = luck.random::<f64>() >= 0.01;
                Plan::Ends {
                    due: step.now + Duration::seconds((minutes * 60.0) as i64),
                    success,
                }
            }
        }
    }
}
