//! Compensation: what undoes the work of a flow that failed.

use super::types::{Step, StepState};
use crate::playbook::steps::StepCatalogue;

/// The compensation steps for what was done, as a saga undoes it: a done
/// step is undone only after the undo of every done step that came after
/// it in its own chain, so work is undone newest first where one piece
/// built on another, while independent chains (one per order of a
/// fan-out) are undone side by side. A done step without an undo template
/// passes its ordering on to the undo of what it came after.
pub(super) fn undo_steps(steps: &[Step], catalogue: &StepCatalogue) -> Vec<Step> {
    let base = steps.len();
    let template_of = |step: &Step| {
        catalogue
            .get(&step.template)
            .and_then(|t| t.compensate.as_ref())
            .and_then(|c| catalogue.get(c).map(|t| (c, t)))
    };
    // Undo steps are numbered newest first.
    let mut undo_index: Vec<Option<usize>> = vec![None; base];
    let mut undo: Vec<Step> = Vec::new();
    for (i, step) in steps.iter().enumerate().rev() {
        if step.state != StepState::Done || step.compensation {
            continue;
        }
        if let Some((c, t)) = template_of(step) {
            undo_index[i] = Some(base + undo.len());
            let mut s = Step::new(c, &t.process, &step.subject, Vec::new());
            s.compensation = true;
            undo.push(s);
        }
    }
    // Done steps that came directly after each step.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); base];
    for (j, step) in steps.iter().enumerate() {
        if step.state == StepState::Done && !step.compensation {
            for &d in &step.after {
                if let Some(list) = dependents.get_mut(d) {
                    list.push(j);
                }
            }
        }
    }
    // What the undo of step i waits for: the undos of its dependents, or,
    // for a dependent with no undo of its own, what that one would wait for.
    // Dependents come later in the list, so walking backwards finds theirs
    // settled first.
    let mut waits: Vec<Vec<usize>> = vec![Vec::new(); base];
    for i in (0..base).rev() {
        let mut w: Vec<usize> = Vec::new();
        for &j in &dependents[i] {
            match undo_index[j] {
                Some(u) => w.push(u),
                None if j > i => w.extend(waits[j].iter().copied()),
                None => {}
            }
        }
        w.sort_unstable();
        w.dedup();
        waits[i] = w;
    }
    for (i, u) in undo_index.iter().enumerate() {
        if let Some(u) = u {
            undo[u - base].after = std::mem::take(&mut waits[i]);
        }
    }
    undo
}
