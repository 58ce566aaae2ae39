//! Escalation policies: levels of targets (a schedule's on-call person, a
//! person, a team's on-call people) paged in turn, each given a delay to
//! acknowledge before the next level is paged, the whole round repeated a
//! number of times.

use chrono::Duration;
use serde::{Deserialize, Serialize};

/// Whom a level pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Target {
    Schedule(String),
    Person(String),
    Team(String),
}

impl Target {
    /// `"schedule:sre-primary"`, `"person:dana"`, `"team:sre"`.
    pub fn parse(text: &str) -> Option<Target> {
        let (kind, id) = text.split_once(':')?;
        let id = id.trim().to_string();
        if id.is_empty() {
            return None;
        }
        match kind.trim() {
            "schedule" => Some(Target::Schedule(id)),
            "person" => Some(Target::Person(id)),
            "team" => Some(Target::Team(id)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Schedule(id) => write!(f, "schedule:{id}"),
            Target::Person(id) => write!(f, "person:{id}"),
            Target::Team(id) => write!(f, "team:{id}"),
        }
    }
}

/// One level: its targets, and how long they have to acknowledge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub targets: Vec<Target>,
    #[serde(with = "super::seconds")]
    pub after: Duration,
}

/// Levels paged in turn, repeated `repeats` more times when nobody
/// acknowledges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationPolicy {
    pub id: String,
    pub levels: Vec<Level>,
    pub repeats: u32,
}
