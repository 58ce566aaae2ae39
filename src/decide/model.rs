//! The learned scorer: logistic regression over hashed features of
//! signal × context × option, updated one example at a time (as contextual
//! bandits do), with per-weight AdaGrad step sizes.
//!
//! It predicts the probability that choosing an option leads to an outcome
//! within SLA. Everything is deterministic: the same examples in the same
//! order give the same weights, which is what lets a restart rebuild the model
//! from a checkpoint plus the feedback journaled after it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A feature index into the weight table.
pub type Feature = u32;

pub const DEFAULT_BITS: u32 = 18;

#[derive(Debug, Clone)]
pub struct Model {
    bits: u32,
    weights: Vec<f32>,
    grad_sq: Vec<f32>,
    learning_rate: f32,
    l2: f32,
    updates: u64,
    /// Labelled examples seen per option, weighted by importance.
    evidence: BTreeMap<String, f64>,
}

/// The non-zero weights of a model, as the journal stores them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub bits: u32,
    pub updates: u64,
    pub entries: Vec<(u32, f32, f32)>,
    #[serde(default)]
    pub evidence: BTreeMap<String, f64>,
}

fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash ^= u64::from(b'|');
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Default for Model {
    fn default() -> Self {
        Model::new(DEFAULT_BITS)
    }
}

impl Model {
    pub fn new(bits: u32) -> Model {
        let size = 1usize << bits;
        Model {
            bits,
            weights: vec![0.0; size],
            grad_sq: vec![0.0; size],
            learning_rate: 0.3,
            l2: 1e-6,
            updates: 0,
            evidence: BTreeMap::new(),
        }
    }

    /// Hashes a base feature name crossed with an option into an index.
    pub fn index(&self, option: &str, feature: &str) -> Feature {
        (fnv1a(&[option, feature]) & ((1u64 << self.bits) - 1)) as Feature
    }

    /// All indices for an option: its bias plus each feature crossed with it.
    pub fn indices(&self, option: &str, features: &[String]) -> Vec<Feature> {
        let mut out = Vec::with_capacity(features.len() + 1);
        out.push(self.index(option, "bias"));
        out.extend(features.iter().map(|f| self.index(option, f)));
        out
    }

    pub fn predict(&self, indices: &[Feature]) -> f64 {
        let z: f64 = indices
            .iter()
            .map(|&i| f64::from(self.weights[i as usize]))
            .sum();
        sigmoid(z)
    }

    pub fn weight(&self, index: Feature) -> f64 {
        f64::from(self.weights[index as usize])
    }

    /// One step of logistic loss on a labelled example; returns the loss before.
    pub fn update(&mut self, indices: &[Feature], label: f64, importance: f64) -> f64 {
        let p = self.predict(indices);
        let gradient = ((p - label) * importance) as f32;
        for &i in indices {
            let i = i as usize;
            let g = gradient + self.l2 * self.weights[i];
            self.grad_sq[i] += g * g;
            self.weights[i] -= self.learning_rate * g / (self.grad_sq[i].sqrt() + 1e-6);
        }
        self.updates += 1;
        let p = p.clamp(1e-9, 1.0 - 1e-9);
        -(label * p.ln() + (1.0 - label) * (1.0 - p).ln())
    }

    /// Counts one labelled example for an option.
    /// Learns from one labelled example: `option` taken with `features` led
    /// to `label` (1 = within SLA / the right call, 0 = not), counting
    /// `importance` times.
    pub fn learn(&mut self, option: &str, features: &[String], label: f64, importance: f64) {
        let indices = self.indices(option, features);
        self.update(&indices, label, importance);
        self.note_example(option, importance);
    }

    pub fn note_example(&mut self, option: &str, importance: f64) {
        *self.evidence.entry(option.to_string()).or_default() += importance;
    }

    pub fn evidence(&self, option: &str) -> f64 {
        self.evidence.get(option).copied().unwrap_or(0.0)
    }

    pub fn updates(&self) -> u64 {
        self.updates
    }

    pub fn version(&self) -> String {
        format!("logreg-{}b@{}", self.bits, self.updates)
    }

    pub fn checkpoint(&self) -> Checkpoint {
        let entries = self
            .weights
            .iter()
            .zip(&self.grad_sq)
            .enumerate()
            .filter(|(_, (w, g))| **w != 0.0 || **g != 0.0)
            .map(|(i, (w, g))| (i as u32, *w, *g))
            .collect();
        Checkpoint {
            bits: self.bits,
            updates: self.updates,
            entries,
            evidence: self.evidence.clone(),
        }
    }

    pub fn restore(checkpoint: &Checkpoint) -> Result<Model, CheckpointError> {
        if !(8..=24).contains(&checkpoint.bits) {
            return Err(CheckpointError::Bits(checkpoint.bits));
        }
        let mut model = Model::new(checkpoint.bits);
        for &(i, w, g) in &checkpoint.entries {
            let slot = i as usize;
            if slot >= model.weights.len() {
                return Err(CheckpointError::Index(i));
            }
            model.weights[slot] = w;
            model.grad_sq[slot] = g;
        }
        model.updates = checkpoint.updates;
        model.evidence = checkpoint.evidence.clone();
        Ok(model)
    }
}

/// A model checkpoint that does not fit a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint has {0} bits, expected 8 to 24")]
    Bits(u32),
    #[error("checkpoint index {0} is outside the weight table")]
    Index(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_which_option_works_where() {
        let mut model = Model::new(12);
        let vip = vec!["tier=gold".to_string()];
        let plain = vec!["tier=bronze".to_string()];
        for _ in 0..200 {
            model.update(&model.indices("expedite", &vip), 1.0, 1.0);
            model.update(&model.indices("standard", &vip), 0.0, 1.0);
            model.update(&model.indices("expedite", &plain), 0.0, 1.0);
            model.update(&model.indices("standard", &plain), 1.0, 1.0);
        }
        assert!(model.predict(&model.indices("expedite", &vip)) > 0.8);
        assert!(model.predict(&model.indices("standard", &vip)) < 0.2);
        assert!(model.predict(&model.indices("standard", &plain)) > 0.8);
    }

    #[test]
    fn a_checkpoint_restores_the_same_predictions() {
        let mut model = Model::new(10);
        let f = vec!["a".to_string(), "b".to_string()];
        for label in [1.0, 0.0, 1.0, 1.0] {
            model.update(&model.indices("x", &f), label, 1.0);
        }
        let back = Model::restore(&model.checkpoint()).unwrap();
        let idx = model.indices("x", &f);
        assert_eq!(back.predict(&idx), model.predict(&idx));
        assert_eq!(back.updates(), 4);
    }
}
