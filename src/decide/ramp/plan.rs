//! A ramp's plan, read from its file: the candidate, the classes it
//! covers, its steps of coverage, how long each waits for outcomes, and the
//! gates a step must pass.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::playbook::Playbook;

#[derive(Debug, Error, PartialEq)]
pub enum RampError {
    #[error("{file}: cannot read: {error}")]
    Io { file: String, error: String },
    #[error("{file}: not a valid ramp: {error}")]
    Invalid { file: String, error: String },
}

/// The ramp file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RampFile {
    candidate: PathBuf,
    #[serde(default)]
    classes: Vec<String>,
    steps: Vec<f64>,
    hold: u64,
    #[serde(default = "default_settle")]
    settle: String,
    #[serde(default)]
    gates: Gates,
}

fn default_settle() -> String {
    "4h".into()
}

/// Where a step's gates pass and fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gates {
    /// Fails when the candidate arm's override rate (overrides per answer
    /// from people) exceeds the live arm's by more than this.
    pub max_override_increase: f64,
    /// Answers each arm needs before its override rate is read.
    pub min_answers: u64,
    /// Outcomes each arm needs before the within-SLA and lower-bound gates
    /// read anything (with fewer they are inconclusive).
    pub min_outcomes: u64,
    /// Fails when the candidate arm's within-SLA rate is below the live
    /// arm's by more than this, and the gap is significant (its 95 %
    /// interval excludes zero).
    pub max_sla_drop: f64,
    /// The 95 % interval of the off-policy difference (candidate − live):
    /// passes when its lower bound is at least this; fails when the
    /// candidate is worse beyond doubt (the upper bound below zero) and
    /// the difference itself is below this; inconclusive otherwise.
    pub min_lower_bound: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            max_override_increase: 0.10,
            min_answers: 20,
            min_outcomes: 20,
            max_sla_drop: 0.05,
            min_lower_bound: -0.05,
        }
    }
}

/// A ramp as planned: the candidate, what it covers and how it is gated.
#[derive(Debug, Clone, PartialEq)]
pub struct RampPlan {
    /// The candidate policy file (relative paths are taken from the ramp
    /// file's directory).
    pub candidate: PathBuf,
    /// The decision classes it ramps; empty: all of them.
    pub classes: Vec<String>,
    /// Coverage of each step, as shares in (0, 1), increasing. A last step
    /// of 100 % in the file is the promotion itself.
    pub steps: Vec<f64>,
    /// Ramped decisions (either arm) a step reads: its batch.
    pub hold: u64,
    /// How long after its batch is full a step waits for the batch's
    /// outcomes before its gates are read (sooner if every one is in).
    pub settle: chrono::Duration,
    pub gates: Gates,
}

impl RampPlan {
    pub fn load(path: &Path, playbook: &Playbook) -> Result<RampPlan, RampError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RampError::Io {
            file: file.clone(),
            error: e.to_string(),
        })?;
        let mut plan = RampPlan::parse(&text, &file, playbook)?;
        if plan.candidate.is_relative()
            && let Some(dir) = path.parent()
        {
            plan.candidate = dir.join(&plan.candidate);
        }
        Ok(plan)
    }

    pub fn parse(text: &str, file: &str, playbook: &Playbook) -> Result<RampPlan, RampError> {
        let invalid = |error: String| RampError::Invalid {
            file: file.to_string(),
            error,
        };
        let parsed: RampFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let known: std::collections::BTreeSet<&str> = playbook
            .signals
            .values()
            .map(|p| p.class.as_str())
            .chain(playbook.fanouts.values().map(|f| f.class.as_str()))
            .collect();
        for class in &parsed.classes {
            if !known.contains(class.as_str()) {
                let known: Vec<&str> = known.iter().copied().collect();
                return Err(invalid(format!(
                    "classes: no decision class `{class}` in the playbook (classes: {})",
                    known.join(", ")
                )));
            }
        }
        let mut steps = parsed.steps;
        if steps.last() == Some(&100.0) {
            steps.pop();
        }
        if steps.is_empty() {
            return Err(invalid(
                "steps: at least one step of coverage below 100 % is needed".into(),
            ));
        }
        let mut last = 0.0;
        for &step in &steps {
            if !(step > last && step < 100.0) {
                return Err(invalid(format!(
                    "steps: `{step}` is not a percentage above the step before and below 100 \
                     (steps increase; a last 100 is the promotion)"
                )));
            }
            last = step;
        }
        if parsed.hold == 0 {
            return Err(invalid("hold: must be at least 1 decision".into()));
        }
        let settle = crate::decide::policy::parse_duration(&parsed.settle)
            .map_err(|e| invalid(format!("settle: {e}")))?;
        let g = &parsed.gates;
        for (name, value) in [
            ("gates.max_override_increase", g.max_override_increase),
            ("gates.max_sla_drop", g.max_sla_drop),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(format!(
                    "{name}: `{value}` is not a share in [0, 1]"
                )));
            }
        }
        if !(-1.0..=1.0).contains(&g.min_lower_bound) {
            return Err(invalid(format!(
                "gates.min_lower_bound: `{}` is not a difference in [-1, 1]",
                g.min_lower_bound
            )));
        }
        Ok(RampPlan {
            candidate: parsed.candidate,
            classes: parsed.classes,
            steps: steps.into_iter().map(|s| s / 100.0).collect(),
            hold: parsed.hold,
            settle,
            gates: parsed.gates,
        })
    }

    pub fn covers(&self, class: &str) -> bool {
        covers(&self.classes, class)
    }
}

/// Whether a ramp over `classes` (empty: all) covers `class`.
pub fn covers(classes: &[String], class: &str) -> bool {
    classes.is_empty() || classes.iter().any(|c| c == class)
}
