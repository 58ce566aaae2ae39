//! One model for a cluster (`EngineConfig::shared_model`). Every
//! partition's labelled examples go to the cluster's model stream, and
//! every partition's model learns from that stream alone, in its order:
//! its own examples too, once they come back. The same start and the same
//! updates in the same order make the same model everywhere (learning is
//! deterministic), a few milliseconds behind the newest example. The
//! model is checkpointed with the stream position it has learnt through
//! (`THROUGH_KEY`), so a partition rebuilt elsewhere goes on from there.

use chrono::{DateTime, Utc};

use super::Engine;
use crate::journal::{Feedback, Record};

/// The journal's meta key for the model stream's position the last
/// checkpoint has learnt through.
pub const THROUGH_KEY: &str = "model_through";

/// Where a shared model stands in the cluster's model stream.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// The last position learnt.
    pub through: u64,
    /// Examples learnt from the stream, and their count at the last
    /// checkpoint.
    applied: i64,
    checkpoint_at: i64,
}

impl Engine {
    /// Learns the model stream's examples after the last it learnt, in
    /// order (each with its position); checkpoints every so many.
    pub fn learn_shared(&mut self, updates: Vec<(u64, Feedback)>, now: DateTime<Utc>) {
        let Some(mut shared) = self.learning.shared.take() else {
            return;
        };
        for (position, fb) in updates {
            if position <= shared.through {
                continue;
            }
            if self.decider.learning {
                self.watch_label(&fb.option, &fb.features, fb.label, fb.importance, now);
                self.decider
                    .learn(&fb.option, &fb.features, fb.label, fb.importance);
            }
            shared.through = position;
            shared.applied += 1;
        }
        let due = shared.applied - shared.checkpoint_at >= self.learning.checkpoint_every;
        if due {
            shared.checkpoint_at = shared.applied;
        }
        self.learning.shared = Some(shared);
        if due {
            self.checkpoint();
        }
    }

    /// The model stream's position the model has learnt through (none:
    /// the model is this journal's own).
    pub fn model_through(&self) -> Option<u64> {
        self.learning.shared.as_ref().map(|s| s.through)
    }

    /// Whether the model learns from the cluster's model stream only.
    pub(super) fn learns_shared(&self) -> bool {
        self.learning.shared.is_some()
    }

    /// What a checkpoint of a shared model also journals: its position.
    pub(super) fn shared_checkpoint(&self) -> Option<Record> {
        let shared = self.learning.shared.as_ref()?;
        Some(Record::Meta {
            key: THROUGH_KEY.into(),
            value: shared.through.to_string(),
        })
    }

    /// At a restart: the position the checkpoint learnt through (the
    /// examples after it come from the stream again, not the journal).
    pub(super) fn restore_shared(&mut self, meta: Option<&String>) {
        if let Some(shared) = self.learning.shared.as_mut() {
            shared.through = meta.and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(i: usize, option: &str, label: f64) -> Feedback {
        Feedback {
            decision_id: format!("D{i:07}"),
            option: option.into(),
            label,
            importance: 1.0,
            source: "operator".into(),
            features: vec![format!("type=ticket.opened"), format!("n={}", i % 3)],
            time: Utc::now(),
        }
    }

    fn shared_engine(dir: &std::path::Path) -> Engine {
        let mut config = crate::engine::EngineConfig::new(dir, 7);
        config.shared_model = true;
        Engine::open(config, crate::context::World::default(), Utc::now()).unwrap()
    }

    #[test]
    fn two_partitions_learning_one_stream_hold_the_same_model() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut a, mut b) = (shared_engine(d1.path()), shared_engine(d2.path()));
        let stream: Vec<(u64, Feedback)> = (0..50)
            .map(|i| (i as u64 + 1, example(i, "handle_ticket", (i % 2) as f64)))
            .collect();
        // In different batches, and one of them seeing a repeat.
        a.learn_shared(stream.clone(), Utc::now());
        b.learn_shared(stream[..20].to_vec(), Utc::now());
        b.learn_shared(stream[10..].to_vec(), Utc::now());
        let (ma, mb) = (a.decider.model.checkpoint(), b.decider.model.checkpoint());
        assert_eq!(
            serde_json::to_string(&ma).unwrap(),
            serde_json::to_string(&mb).unwrap()
        );
        assert_eq!(a.decider.model.version(), b.decider.model.version());
        assert_eq!(a.model_through(), Some(50));
        assert_eq!(b.model_through(), Some(50));
    }

    #[test]
    fn a_checkpoint_keeps_its_position_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::engine::EngineConfig::new(dir.path(), 7);
        config.shared_model = true;
        config.checkpoint_every = 10;
        let mut engine =
            Engine::open(config, crate::context::World::default(), Utc::now()).unwrap();
        let stream: Vec<(u64, Feedback)> = (0..25)
            .map(|i| (i as u64 + 1, example(i, "handle_ticket", 1.0)))
            .collect();
        engine.learn_shared(stream, Utc::now());
        let version = engine.decider.model.version();
        engine.flush().unwrap().wait().unwrap();
        engine.close().unwrap();
        let back = shared_engine(dir.path());
        // The checkpoint at 25 examples (the second, at 20, was due at the
        // batch's end): the model and its place in the stream.
        assert_eq!(back.model_through(), Some(25));
        assert_eq!(back.decider.model.version(), version);
    }
}
