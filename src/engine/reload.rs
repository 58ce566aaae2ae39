//! A deployment's rules and organization replaced while the engine runs:
//! applied whole between two signals, and journaled with who asked and what
//! changed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::Engine;
use crate::context::World;
use crate::decide::Rules;
use crate::flow::executor::Webhooks;
use crate::journal::{AuditEntry, Record};
use crate::review::Actor;

/// The versions decisions are made under.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Versions {
    pub policy: String,
    pub model: String,
    pub rules: String,
}

/// A validated deployment to take.
#[derive(Debug, Clone)]
pub struct Reload {
    pub rules: Rules,
    pub world: World,
    /// Webhook executors, by name.
    pub webhooks: std::collections::BTreeMap<String, String>,
    /// What changed, for the journal.
    pub summary: String,
}

impl Engine {
    pub fn versions(&self) -> Versions {
        Versions {
            policy: self.decider.policy.version.clone(),
            model: self.model_version(),
            rules: self.decider.rules_version.clone(),
        }
    }

    /// Takes a deployment's rules, organization and executors; journaled.
    /// Flows already running keep the steps they were assembled with.
    pub fn reload(&mut self, reload: Reload, actor: &Actor, now: DateTime<Utc>) -> Versions {
        let before = self.versions();
        self.replace_rules(reload.rules, Some(reload.world));
        self.flows.webhooks.set_urls(reload.webhooks);
        let after = self.versions();
        self.outbox.records.push(Record::Audit(AuditEntry {
            kind: "config".into(),
            ref_id: format!("{} {}", after.policy, after.rules),
            decision_id: String::new(),
            time: now,
            body: json!({
                "actor": actor.name, "role": actor.role.as_str(), "summary": reload.summary,
                "before": before, "after": after,
            }),
        }));
        tracing::info!(actor = %actor.name, summary = %reload.summary, "configuration reloaded");
        self.emit(super::EngineEvent::Reloaded(after.clone()));
        after
    }
}

impl Webhooks {
    /// Replaces the executors' URLs; steps already queued keep theirs.
    pub fn set_urls(&mut self, urls: std::collections::BTreeMap<String, String>) {
        *self = Webhooks::with_queue(urls, self.take());
    }
}
