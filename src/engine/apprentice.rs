//! Apprentice mode (`decide::apprentice`), wired in: each settled decision
//! of an apprentice class keeps who decided it and what the other side
//! would have picked; its outcome and people's answers are the readings;
//! when a class changes hands the decider is told, the switch is journaled
//! (an audit entry, and the classes the model holds as meta for a
//! restart), announced (a `model` notice) and shown (`Overview::class_modes`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Engine, notices};
use crate::decide::Decision;
use crate::decide::apprentice::{Answer, Journaled, ModelMode, Reading, Side, Switch};
use crate::journal::{AuditEntry, Record};

/// The journal meta key holding the classes the model has taken over.
pub const APPRENTICE_KEY: &str = "apprentice";

/// What an apprentice class's settled decision keeps until its outcome:
/// its class, and its reading but for the reward.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    class: Box<str>,
    reading: Reading,
}

impl Seen {
    /// For a decision settled on `option`, when its class apprentices.
    pub(super) fn of(decision: &Decision, option: &str) -> Option<Seen> {
        let mark = decision.apprentice.as_ref()?;
        let score = |name: &str| decision.score_of(name).map_or(0.0, |o| o.score);
        let reading = Reading {
            by: mark.by,
            reward: 0.0,
            agree: mark.other == option,
            // A person's choice, or the side's own pick, counts as certain
            // unless the model explored.
            propensity: if option == decision.proposal {
                decision.propensity
            } else {
                1.0
            },
            predicted_done: score(option),
            predicted_other: score(&mark.other),
        };
        Some(Seen {
            class: decision.class.as_str().into(),
            reading,
        })
    }
}

/// Per class, who decides, as the Overview shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMode {
    pub class: String,
    /// As policy sets it.
    pub mode: ModelMode,
    /// Who decides now.
    pub by: Side,
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
}

/// How many of `modes` the model decides now.
pub fn decided_by_model(modes: &[ClassMode]) -> usize {
    modes.iter().filter(|c| c.by == Side::Model).count()
}

impl Engine {
    /// An apprentice decision's outcome: 1 within SLA, 0 not.
    /// Not read while the model's breaker holds it: no class changes
    /// hands to a model its breaker does not trust.
    pub(super) fn apprentice_outcome(&mut self, seen: &Seen, reward: f64, now: DateTime<Utc>) {
        if self.decider.policy.model_mode(&seen.class) != ModelMode::Apprentice
            || self.decider.model_held
        {
            return;
        }
        let reading = Reading {
            reward,
            ..seen.reading
        };
        if let Some(switch) = self.decider.apprentice.outcome(&seen.class, reading, now) {
            self.class_switched(switch);
        }
    }

    /// A person chose `chosen` on an apprentice decision: was it the
    /// model's pick, was it the rules'?
    pub(super) fn apprentice_answer(&mut self, decision: &Decision, chosen: &str) {
        let Some(mark) = &decision.apprentice else {
            return;
        };
        let (model, rules) = mark.picks(&decision.proposal);
        let answer = Answer {
            model: model == chosen,
            rules: rules == chosen,
        };
        self.decider
            .apprentice
            .answered(&decision.class, answer, decision.time);
    }

    pub(super) fn class_switched(&mut self, switch: Switch) {
        let text = switch.describe();
        tracing::info!(class = %switch.class, to = switch.to.as_str(), "{text}");
        self.outbox.records.push(Record::Audit(AuditEntry {
            kind: "model_mode".into(),
            ref_id: switch.class.clone(),
            decision_id: String::new(),
            time: switch.at,
            body: json!({ "switch": switch, "model": self.decider.model_version() }),
        }));
        match serde_json::to_string(&self.decider.apprentice.taken()) {
            Ok(value) => self.outbox.records.push(Record::Meta {
                key: APPRENTICE_KEY.into(),
                value,
            }),
            Err(e) => tracing::error!(error = %e, "the apprentice classes could not be kept"),
        }
        self.notice(notices::Notice {
            event: "model",
            text,
            reference: switch.class.clone(),
            subject: format!("class/{}", switch.class),
            time: switch.at,
        });
    }

    /// Takes the journaled classes the model holds after a restart.
    pub(super) fn resume_apprentice(&mut self, journaled: &str) {
        match serde_json::from_str::<Journaled>(journaled) {
            Ok(taken) => self.decider.apprentice.resume(taken),
            Err(e) => {
                tracing::error!(error = %e, "the journaled apprentice classes are unreadable: the rules decide them")
            }
        }
    }

    /// Every class of the playbook that is not `on`, with who decides it.
    pub fn class_modes(&self) -> Vec<ClassMode> {
        let classes: std::collections::BTreeSet<&str> = (self.decider.playbook.classes())
            .filter(|c| !matches!(*c, "context" | "unrecognised"))
            .collect();
        let taken = self.decider.apprentice.taken();
        classes
            .into_iter()
            .filter_map(|class| {
                let mode = self.decider.policy.model_mode(class);
                let since = taken.get(class).map(|h| h.since);
                let by = match mode {
                    ModelMode::On => return None,
                    ModelMode::Rules => Side::Rules,
                    ModelMode::Apprentice if since.is_some() => Side::Model,
                    ModelMode::Apprentice => Side::Rules,
                };
                Some(ClassMode {
                    class: class.to_string(),
                    mode,
                    by,
                    since,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Duration;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use crate::decide::apprentice::{ModelMode, Side};
    use crate::engine::Engine;
    use crate::sim::run::{RunOptions, run};

    /// Seed 1 of Northwind in apprentice mode for `hours`, the model
    /// corrupted at `corrupt_at` if given, journaled in `data`.
    fn apprentice_run(data: &std::path::Path, hours: Duration, corrupt_at: Option<Duration>) {
        let options = RunOptions {
            seed: 1,
            duration: hours,
            speed: None,
            data_dir: data.to_path_buf(),
            learning: true,
            policy_file: None,
            candidates: Default::default(),
            corrupt_model_at: corrupt_at,
            restore_model_at: None,
            ramp_at: Duration::hours(2),
            model_mode: Some(ModelMode::Apprentice),
        };
        run(&options).unwrap();
    }

    /// Six simulated hours of Northwind in apprentice mode: the model takes
    /// a class over on its outcomes, every switch is journaled with the
    /// readings that made it, and a restart keeps the classes it holds.
    #[test]
    fn the_model_takes_a_class_over_on_a_simulated_run_and_keeps_it_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("run");
        apprentice_run(&data, Duration::hours(6), None);
        let switches = crate::journal::read::audit_entries(&data, "model_mode").unwrap();
        assert!(
            switches.iter().any(|s| s.body["switch"]["to"] == "model"),
            "{switches:?}"
        );
        for s in &switches {
            let low = s.body["switch"]["readings"]["difference"][0].as_f64();
            assert!(low.is_some_and(|l| l > 0.0), "{}", s.body);
        }
        // While the rules held a class, some of the model's differing picks
        // were tried in their place, each with its chance and the rules'
        // pick it replaced; the takeovers read their outcomes.
        let mut trials = Vec::new();
        crate::journal::read::each_replayable(&data, None, None, |r| {
            if r.decision
                .apprentice
                .as_ref()
                .is_some_and(|a| a.instead_of.is_some())
            {
                trials.push(r.decision);
            }
        })
        .unwrap();
        assert!(trials.len() > 10, "{} trials", trials.len());
        for t in &trials {
            let mark = t.apprentice.as_ref().unwrap();
            assert_eq!(mark.by, Side::Rules, "{t:?}");
            assert_eq!(mark.other, t.proposal, "{t:?}");
            assert_ne!(mark.instead_of.as_ref(), Some(&t.proposal), "{t:?}");
            assert!(t.explored, "{t:?}");
            assert!((t.propensity - 0.05).abs() < 1e-9, "{t:?}");
            assert!(
                matches!(
                    t.mode,
                    crate::decide::Mode::Auto | crate::decide::Mode::Review
                ),
                "{t:?}"
            );
        }
        let tried: u64 = (switches.iter())
            .filter_map(|s| s.body["switch"]["readings"]["trials"].as_u64())
            .sum();
        assert!(tried > 0, "{switches:?}");
        // Who holds each class after the last switch.
        let mut expected = std::collections::BTreeSet::new();
        for s in &switches {
            match s.body["switch"]["to"].as_str() {
                Some("model") => expected.insert(s.ref_id.clone()),
                _ => expected.remove(&s.ref_id),
            };
        }
        let mut rules = Engine::shipped_rules(None).unwrap();
        Arc::get_mut(&mut rules.policy)
            .unwrap()
            .set_mode(ModelMode::Apprentice);
        let mut config = crate::sim::engine_config(&data, 1);
        config.rules = Some(rules);
        let start = crate::sim::default_start();
        let world = crate::sim::world::northwind(&mut ChaCha8Rng::seed_from_u64(1), start);
        let now = start + Duration::hours(6);
        let engine = Engine::open(config, world, now).unwrap();
        let held: std::collections::BTreeSet<String> = engine
            .class_modes()
            .into_iter()
            .filter(|c| c.by == Side::Model)
            .map(|c| c.class)
            .collect();
        assert_eq!(held, expected);
        let overview = crate::engine::overview::status(&engine, now);
        let deciding = overview.deciding().unwrap_or_default();
        assert!(
            deciding.starts_with(&format!("model decides {} of ", expected.len())),
            "{deciding}"
        );
    }

    /// Six hours in apprentice mode, then a corrupted checkpoint in place
    /// of the model (a change that makes it worse): the classes the model
    /// had taken go back to the rules, each switch journaled with why.
    #[test]
    fn a_model_made_worse_hands_its_classes_back_on_a_simulated_run() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("run");
        apprentice_run(&data, Duration::hours(9), Some(Duration::hours(6)));
        let switches = crate::journal::read::audit_entries(&data, "model_mode").unwrap();
        let corrupted = crate::sim::default_start() + Duration::hours(6);
        let taken: Vec<_> = switches
            .iter()
            .filter(|s| s.time < corrupted && s.body["switch"]["to"] == "model")
            .map(|s| s.ref_id.clone())
            .collect();
        assert!(!taken.is_empty(), "{switches:?}");
        for class in &taken {
            let back = switches.iter().find(|s| {
                s.time >= corrupted && &s.ref_id == class && s.body["switch"]["to"] == "rules"
            });
            let back = back.unwrap_or_else(|| panic!("{class} handed back: {switches:?}"));
            assert!(back.body["switch"]["why"].is_string(), "{}", back.body);
        }
    }
}
