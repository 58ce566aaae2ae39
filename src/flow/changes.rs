//! What the journal receives of the flows at a flush: the flows changed
//! since the last one, and for a big flow only its changed steps.

use super::book::FlowBook;
use super::types::{Flow, Step};

/// Steps beyond which a flow is journaled as a row of its own plus a row
/// per step, and only changed steps are written at a flush. A fan-out over
/// a big supplier's open orders has thousands of steps; rewriting all of
/// them whenever one changes made every commit megabytes long.
pub const BIG_FLOW: usize = 64;

/// A flow as the journal receives it at a flush.
#[derive(Debug)]
pub struct FlowChange {
    /// The flow; for a big flow, without its steps.
    pub flow: Flow,
    /// For a big flow, its steps that changed since the last flush (all
    /// of them the first time), by index.
    pub steps: Option<Vec<(usize, Step)>>,
}

fn step_fingerprint(step: &Step) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    step.hash(&mut h);
    h.finish()
}

impl FlowBook {
    /// The flows changed since the last call, as the journal writes them.
    pub fn take_changed(&mut self) -> Vec<FlowChange> {
        let mut out = Vec::with_capacity(self.dirty.len());
        for id in std::mem::take(&mut self.dirty) {
            let Some(flow) = self.flows.get(&id) else {
                continue;
            };
            if flow.steps.len() <= BIG_FLOW && !self.journaled_steps.contains_key(&id) {
                out.push(FlowChange {
                    flow: Flow::clone(flow),
                    steps: None,
                });
                continue;
            }
            // Once journaled by step, a flow stays so (its steps are read
            // from their rows).
            let marks = self.journaled_steps.entry(id.clone()).or_default();
            let mut changed = Vec::new();
            for (i, step) in flow.steps.iter().enumerate() {
                let mark = step_fingerprint(step);
                if marks.get(i) != Some(&mark) {
                    changed.push((i, step.clone()));
                    if let Some(m) = marks.get_mut(i) {
                        *m = mark;
                    } else {
                        marks.push(mark);
                    }
                }
            }
            if flow.state.is_terminal() {
                self.journaled_steps.remove(&id);
            }
            out.push(FlowChange {
                flow: flow.header(),
                steps: Some(changed),
            });
        }
        out
    }

    /// Notes that a recovered flow's steps are in the journal as they are
    /// (a big flow's rows), so the next flush does not write them again.
    pub fn journaled_by_step(&mut self, id: &str) {
        if let Some(flow) = self.flows.get(id) {
            let marks = flow.steps.iter().map(step_fingerprint).collect();
            self.journaled_steps.insert(id.to_string(), marks);
        }
    }
}
