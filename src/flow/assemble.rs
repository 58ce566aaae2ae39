//! Assembly: turning a chosen option into the steps of a flow.

use serde_json::Value;

use super::Step;
use super::types::Carried;
use crate::decide::celval::{ContextView, SIGNAL_FIELDS};
use crate::playbook::steps::StepCatalogue;
use crate::playbook::{Fanout, Playbook};
use crate::signal::Signal;

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

/// Whether `path` names something a step can carry: `signal.FIELD…` or
/// `context.FIELD…`, FIELD one that exists; why not.
pub fn check_path(path: &str) -> Result<(), String> {
    let mut parts = path.split('.');
    let (root, field) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let known: &[&str] = match root {
        "signal" => &SIGNAL_FIELDS,
        "context" => &crate::context::Context::FIELDS,
        _ => {
            return Err(format!(
                "{path:?} starts with neither `signal.` nor `context.`"
            ));
        }
    };
    if !known.contains(&field) {
        return Err(format!(
            "{path:?}: `{root}` has no field `{field}` (it has {})",
            known.join(", ")
        ));
    }
    if parts.any(str::is_empty) {
        return Err(format!("{path:?} has an empty part"));
    }
    Ok(())
}

/// Fills each step's `carries` as its template says, from the signal and
/// the decision's context. A path that leads nowhere carries `null`: the
/// automation sees that it is missing.
pub fn carry(
    steps: &mut [Step],
    catalogue: &StepCatalogue,
    signal: &Signal,
    context: Option<ContextView<'_>>,
) {
    for step in steps.iter_mut() {
        let Some(template) = catalogue.get(&step.template) else {
            continue;
        };
        if template.carries.is_empty() {
            continue;
        }
        let carried = template
            .carries
            .iter()
            .map(|(name, path)| (name.clone(), resolve(path, signal, context)))
            .collect();
        step.carries = Carried(carried);
    }
}

/// The value at `path`, or null.
fn resolve(path: &str, signal: &Signal, context: Option<ContextView<'_>>) -> Value {
    let mut parts = path.split('.');
    let root = parts.next();
    let Some(field) = parts.next() else {
        return Value::Null;
    };
    let start = match root {
        Some("signal") => signal_field(signal, field),
        Some("context") => context.and_then(|c| c.get(field)).cloned(),
        _ => None,
    };
    let mut at = start.unwrap_or(Value::Null);
    for part in parts {
        at = match at {
            Value::Object(mut map) => map.remove(part).unwrap_or(Value::Null),
            Value::Array(mut items) => match part.parse::<usize>() {
                Ok(i) if i < items.len() => items.swap_remove(i),
                _ => Value::Null,
            },
            _ => Value::Null,
        };
    }
    at
}

fn signal_field(signal: &Signal, field: &str) -> Option<Value> {
    let text = |s: &str| Value::String(s.to_string());
    Some(match field {
        "id" => text(&signal.id),
        "type" => text(&signal.kind),
        "source" => text(&signal.source),
        "subject" => text(&signal.subject),
        "severity" => signal.severity.map_or(Value::Null, |s| text(s.as_str())),
        "data" => signal.data.clone(),
        "datacontenttype" => signal.datacontenttype.as_deref().map_or(Value::Null, text),
        "extensions" => Value::Object(signal.extensions.clone()),
        _ => return None,
    })
}
