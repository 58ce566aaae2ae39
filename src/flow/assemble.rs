//! Assembly: turning a chosen option into the steps of a flow.

use super::Step;
use crate::playbook::steps::StepCatalogue;
use crate::playbook::{Fanout, Playbook};

/// The steps of a plain option, one after another, all on `subject`.
pub fn steps_for(
    option: &str,
    subject: &str,
    playbook: &Playbook,
    catalogue: &StepCatalogue,
) -> Vec<Step> {
    let Some(play) = playbook.options.get(option) else {
        return Vec::new();
    };
    // Sized to the chain: a flow keeps its steps for as long as it runs.
    let mut steps = Vec::with_capacity(play.steps.len());
    chain_after(&play.steps, subject, catalogue, &mut steps, None);
    steps
}

/// Appends `templates` as a chain, the first after `previous`, each after the
/// one before; returns the index of the last step appended.
fn chain_after(
    templates: &[String],
    subject: &str,
    catalogue: &StepCatalogue,
    steps: &mut Vec<Step>,
    mut previous: Option<usize>,
) -> Option<usize> {
    for name in templates {
        let process = catalogue
            .get(name)
            .map_or("unknown", |t| t.process.as_str());
        steps.push(Step::new(
            name,
            process,
            subject,
            previous.into_iter().collect(),
        ));
        previous = Some(steps.len() - 1);
    }
    previous
}

/// One affected order in a fan-out, with the choice made for it.
#[derive(Debug, Clone)]
pub struct Branch {
    pub order: String,
    pub customer: String,
    pub choice: String,
    pub notify: bool,
}

/// The steps of a fan-out: for each order its chosen option, then the
/// follow-up steps (moving the promised date), then telling the customer
/// where their tier warrants it. Branches run side by side.
pub fn fanout_steps(
    fanout: &Fanout,
    branches: &[Branch],
    playbook: &Playbook,
    catalogue: &StepCatalogue,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for branch in branches {
        let subject = format!("order/{}", branch.order);
        let choice_steps = playbook
            .options
            .get(&branch.choice)
            .map(|o| o.steps.clone())
            .unwrap_or_default();
        let last = chain_after(&choice_steps, &subject, catalogue, &mut steps, None);
        let last = chain_after(&fanout.then, &subject, catalogue, &mut steps, last);
        if branch.notify
            && let Some(notify) = &fanout.notify
        {
            let customer = format!("customer/{}", branch.customer);
            chain_after(
                std::slice::from_ref(notify),
                &customer,
                catalogue,
                &mut steps,
                last,
            );
        }
    }
    steps
}
