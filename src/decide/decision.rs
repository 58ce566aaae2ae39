//! What a decision is: the record that explains it (`Decision`, with its
//! options' scores, policy hits, contributions and mode), the choice of
//! options a signal type offers (`Choice`), and the case to decide
//! (`Case`).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::policy::{PolicyHit, Priority, Role};
use super::{celval, ramp};
use crate::context::Snapshot;
use crate::playbook::Playbook;
use crate::signal::Signal;

/// How a decision was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The model was confident enough and no policy asked for a person.
    Auto,
    /// A policy forced the option.
    Forced,
    /// Rules alone (model off): the playbook default or a forced option.
    Rules,
    /// Sent to the review queue.
    Review,
    /// A context-only signal: recorded, nothing to choose.
    Record,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Forced => "forced",
            Mode::Rules => "rules",
            Mode::Review => "review",
            Mode::Record => "record",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionScore {
    pub option: String,
    pub score: f64,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden_by: Vec<String>,
    /// The labelled examples the model had of the option (importance
    /// weighted) when it scored it; none for rules alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<f64>,
}

/// What policies read for a decision besides the signal: the `context`
/// variable's fields and the services' health. Journaled with the
/// decision, so a candidate policy can be evaluated over it in replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyInput {
    pub fields: Value,
    /// Shared with the other decisions taken under the same health.
    pub services: Arc<Value>,
}

impl PolicyInput {
    pub fn view(&self) -> celval::ContextView<'_> {
        celval::ContextView::new(&self.fields).with("services", &self.services)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    pub weight: f64,
}

/// One decision, with everything needed to explain it after the fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub id: String,
    pub signal_id: String,
    /// The signal's source: with its id, what identifies it.
    #[serde(default)]
    pub signal_source: String,
    pub signal_type: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub class: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: DateTime<Utc>,
    pub snapshot: Snapshot,
    pub features: Vec<String>,
    pub options: Vec<OptionScore>,
    pub policy_hits: Vec<PolicyHit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_errors: Vec<String>,
    pub policy_version: String,
    pub model_version: String,
    /// The playbook, steps and organization it was decided under (a
    /// deployment's versions; empty for the embedded demo).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rules_version: String,
    pub proposal: String,
    pub confidence: f64,
    pub margin: f64,
    pub threshold: f64,
    pub contributions: Vec<Contribution>,
    pub explored: bool,
    pub propensity: f64,
    pub mode: Mode,
    pub review_role: Role,
    pub priority: Priority,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub deadline: DateTime<Utc>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub review_deadline: DateTime<Utc>,
    pub safe_default: String,
    pub why: String,
    /// What a shadow candidate beside the live policy chose (it never acts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowChoice>,
    /// Taken during a guarded ramp: which arm took it and each policy's
    /// chance of what it did (`propensity` is then their mixture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<ramp::RampMark>,
    /// What policies read (none for a record-only decision, and in records
    /// journaled before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_input: Option<PolicyInput>,
}

/// A shadow candidate's choice for a decision: its proposal and whether it
/// would have acted alone or asked a person, without exploring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowChoice {
    pub proposal: String,
    pub mode: Mode,
    pub policy_version: String,
    /// The candidate model checkpoint it scored with; empty: the live model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_version: String,
}

impl Decision {
    pub fn needs_review(&self) -> bool {
        self.mode == Mode::Review
    }

    pub fn score_of(&self, option: &str) -> Option<&OptionScore> {
        self.options.iter().find(|o| o.option == option)
    }
}

/// The choice to make: which options, their defaults, the SLA.
#[derive(Debug, Clone)]
pub struct Choice<'a> {
    pub class: &'a str,
    pub options: &'a [String],
    pub default: &'a str,
    pub safe_default: &'a str,
    pub sla: Duration,
    pub review_window: Duration,
    pub unrecognised: bool,
    /// Its one option does nothing (no steps, no fan-out).
    pub records: bool,
}

impl Choice<'_> {
    /// A context-only signal type: its play offers one option that does
    /// nothing (`record`), so there is nothing for policies or the model to
    /// choose. (One option with steps is still decided: policies may force
    /// it, review it or forbid it.)
    pub fn record_only(&self) -> bool {
        self.options.len() == 1 && !self.unrecognised && self.records
    }
}

impl<'a> Choice<'a> {
    /// The per-order choice of a fan-out, with the SLA and review window
    /// of the choice it branches from.
    pub fn of_fanout(fanout: &'a crate::playbook::Fanout, like: &Choice<'a>) -> Choice<'a> {
        Choice {
            class: &fanout.class,
            options: &fanout.options,
            default: &fanout.default,
            safe_default: &fanout.default,
            sla: like.sla,
            review_window: like.review_window,
            unrecognised: false,
            records: false,
        }
    }
}

/// The choice a signal type offers; uncatalogued types get the
/// `unrecognised` play, which always goes to review.
pub fn choice_for<'a>(playbook: &'a Playbook, kind: &str) -> Choice<'a> {
    let (play, unrecognised) = match playbook.play(kind) {
        Some(play) => (play, false),
        None => (&playbook.unrecognised, true),
    };
    Choice {
        class: &play.class,
        options: &play.options,
        default: &play.default,
        safe_default: &play.safe_default,
        sla: Duration::minutes(i64::from(play.sla_minutes)),
        review_window: Duration::minutes(i64::from(play.review_minutes)),
        unrecognised,
        records: play
            .options
            .first()
            .is_some_and(|o| playbook.option_steps(o).is_empty()),
    }
}

/// The choice of a signal that only adds to what is known (a repeat of an
/// alert still open): one option, `record`, in the class of `like`.
pub fn record_choice<'a>(like: &Choice<'a>) -> Choice<'a> {
    static RECORD: std::sync::LazyLock<[String; 1]> =
        std::sync::LazyLock::new(|| ["record".to_string()]);
    Choice {
        options: &RECORD[..],
        default: "record",
        safe_default: "record",
        unrecognised: false,
        records: true,
        ..like.clone()
    }
}

/// What is to be decided: a signal (or one branch of its fan-out, with
/// `parent` the decision it branches from), the subject, the snapshot of
/// what was read for it and its features (from `features::extract` or
/// `features::for_order`).
pub struct Case<'a> {
    pub id: String,
    pub parent: Option<String>,
    pub signal: &'a Signal,
    pub subject: &'a str,
    pub snapshot: Snapshot,
    pub features: Vec<String>,
    pub choice: &'a Choice<'a>,
    pub now: DateTime<Utc>,
}
