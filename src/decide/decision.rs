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
use crate::context::{SharedView, Snapshot};
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
/// variable's own fields, and the views many decisions share (the services'
/// health, the changes recorded before it). Journaled with the decision, so
/// a candidate policy can be evaluated over it in replay: the fields whole,
/// the shared views by version (`services_view`, `changes_view`; the
/// journal keeps each view once, and a view with nothing in it is not
/// named).
///
/// Records journaled before the views were kept apart hold the services'
/// view itself (`services`) and the changes among the fields; they read as
/// they were written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "StoredInput")]
pub struct PolicyInput {
    pub fields: Value,
    pub services: ViewRef,
    /// None where `fields` holds the changes (or, in the oldest records,
    /// nothing of them).
    pub changes: Option<ViewRef>,
}

/// A shared view as a decision holds it: the view, or only its version
/// (a decision read back, until the reader resolves it; the journal's
/// readers always do, or say which view is missing).
#[derive(Debug, Clone)]
pub enum ViewRef {
    Held(Arc<SharedView>),
    Named(String),
}

impl ViewRef {
    pub fn version(&self) -> &str {
        match self {
            ViewRef::Held(view) => view.version(),
            ViewRef::Named(version) => version,
        }
    }

    /// The view, if it is held.
    pub fn held(&self) -> Option<&SharedView> {
        match self {
            ViewRef::Held(view) => Some(view),
            ViewRef::Named(_) => None,
        }
    }

    /// A held view with nothing in it (a named one is never empty: an
    /// empty one is not named).
    fn is_empty(&self) -> bool {
        self.held().is_some_and(SharedView::is_empty)
    }
}

/// Two references to a view are equal when they name the same version.
impl PartialEq for ViewRef {
    fn eq(&self, other: &ViewRef) -> bool {
        self.version() == other.version()
    }
}

impl PolicyInput {
    /// The `context` variable policies see; `None` while a shared view is
    /// only named (see `resolve`).
    pub fn view(&self) -> Option<celval::ContextView<'_>> {
        let changes = match &self.changes {
            Some(changes) => Some(changes.held()?),
            None => None,
        };
        Some(context_view(&self.fields, self.services.held()?, changes))
    }

    /// Each shared view only named, as `lookup` finds it by what it is
    /// (`services`, `changes`) and version (an empty one needs no lookup:
    /// `SharedView::empty`).
    pub fn resolve<E>(
        &mut self,
        mut lookup: impl FnMut(&'static str, &str) -> Result<Arc<SharedView>, E>,
    ) -> Result<(), E> {
        let parts = [
            ("services", Some(&mut self.services)),
            ("changes", self.changes.as_mut()),
        ];
        for (kind, part) in parts {
            let Some(part) = part else { continue };
            if let ViewRef::Named(version) = part {
                let view = match SharedView::empty(version) {
                    Some(view) => view,
                    None => lookup(kind, version)?,
                };
                *part = ViewRef::Held(view);
            }
        }
        Ok(())
    }

    /// Its shared views, with what each is (`services`, `changes`).
    pub fn views(&self) -> impl Iterator<Item = (&'static str, &ViewRef)> {
        [
            ("services", Some(&self.services)),
            ("changes", self.changes.as_ref()),
        ]
        .into_iter()
        .filter_map(|(kind, part)| Some((kind, part?)))
    }

    /// The shared views it names that are not empty: what the journal
    /// keeps apart from the decision.
    pub fn shared(&self) -> impl Iterator<Item = (&'static str, &ViewRef)> {
        self.views().filter(|(_, part)| !part.is_empty())
    }
}

/// The `context` variable over a decision's fields and its shared views.
pub fn context_view<'a>(
    fields: &'a Value,
    services: &'a SharedView,
    changes: Option<&'a SharedView>,
) -> celval::ContextView<'a> {
    let view = celval::ContextView::new(fields).with("services", services.value());
    match changes {
        Some(changes) => view.with("changes", changes.value()),
        None => view,
    }
}

/// The journal's form: the fields, and each shared view that is not empty
/// by version.
impl Serialize for PolicyInput {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("PolicyInput", 3)?;
        out.serialize_field("fields", &self.fields)?;
        for (kind, part) in self.shared() {
            let key = match kind {
                "services" => "services_view",
                _ => "changes_view",
            };
            out.serialize_field(key, part.version())?;
        }
        out.end()
    }
}

/// A policy input as a record holds it, in either form (see `PolicyInput`).
#[derive(Deserialize)]
struct StoredInput {
    fields: Value,
    /// The services' view itself, in records journaled before it was kept
    /// apart.
    #[serde(default)]
    services: Option<Value>,
    #[serde(default)]
    services_view: Option<String>,
    #[serde(default)]
    changes_view: Option<String>,
}

impl From<StoredInput> for PolicyInput {
    fn from(stored: StoredInput) -> PolicyInput {
        // An older record holds its services' view inline, and its changes
        // (if any) among its fields.
        let older = stored.services.is_some();
        let services = match (stored.services, stored.services_view) {
            (Some(inline), _) => ViewRef::Held(match &inline {
                Value::Object(map) if map.is_empty() => SharedView::no_services(),
                _ => Arc::new(SharedView::new(inline)),
            }),
            (None, Some(version)) => ViewRef::Named(version),
            (None, None) => ViewRef::Held(SharedView::no_services()),
        };
        let changes = match stored.changes_view {
            Some(version) => Some(ViewRef::Named(version)),
            // The fields hold the changes as they were (a record written
            // again from an older one), or an older record has none.
            None if older || stored.fields.get("changes").is_some() => None,
            None => Some(ViewRef::Held(SharedView::no_changes())),
        };
        PolicyInput {
            fields: stored.fields,
            services,
            changes,
        }
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
    /// In an apprentice class: who decided, and the other side's pick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apprentice: Option<super::apprentice::ApprenticeMark>,
    /// Its signal's type is not in the playbook: the `unrecognised` play
    /// decided it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unrecognised: bool,
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

    /// The options its policies allow, in its order.
    pub fn allowed_options(&self) -> impl Iterator<Item = &str> {
        self.options
            .iter()
            .filter(|o| o.allowed)
            .map(|o| o.option.as_str())
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
    /// The data field holding the time the work is promised by, if the
    /// type names one (`SignalPlay::due`).
    pub due: Option<&'a str>,
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
            due: None,
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
        due: play.due.as_deref(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn services() -> Arc<SharedView> {
        Arc::new(SharedView::new(json!({"payments": "down", "erp": "up"})))
    }

    /// A lookup over the given views, as the journal's reader resolves.
    fn lookup(
        views: &[Arc<SharedView>],
    ) -> impl FnMut(&'static str, &str) -> Result<Arc<SharedView>, String> + '_ {
        |kind, version| {
            views
                .iter()
                .find(|v| v.version() == version)
                .cloned()
                .ok_or_else(|| format!("{kind} {version}"))
        }
    }

    #[test]
    fn the_journal_names_shared_views_by_version_and_reads_them_back() {
        let input = PolicyInput {
            fields: json!({"tier": "gold"}),
            services: ViewRef::Held(services()),
            changes: Some(ViewRef::Held(SharedView::no_changes())),
        };
        let text = serde_json::to_string(&input).unwrap();
        let version = services().version().to_string();
        // The empty changes' view is not named at all.
        assert_eq!(
            text,
            format!(r#"{{"fields":{{"tier":"gold"}},"services_view":"{version}"}}"#)
        );
        let mut read: PolicyInput = serde_json::from_str(&text).unwrap();
        assert!(read.view().is_none(), "only named until resolved");
        assert_eq!(read.services, ViewRef::Named(version.clone()));
        let missing = read.clone().resolve(lookup(&[]));
        assert_eq!(missing, Err(format!("services {version}")));
        read.resolve(lookup(&[services()])).unwrap();
        assert_eq!(read, input);
        let view = read.view().expect("resolved");
        assert_eq!(view.get("services"), Some(services().value()));
        assert_eq!(view.get("changes"), Some(&json!([])));
        assert_eq!(view.get("tier"), Some(&json!("gold")));
    }

    #[test]
    fn records_holding_the_views_inline_read_as_they_were_written() {
        // Written before the views were kept apart: the services' view
        // itself, and the changes among the fields.
        let old = r#"{"fields":{"tier":"gold","changes":[{"summary":"deploy"}]},
                      "services":{"payments":"down","erp":"up"}}"#;
        let read: PolicyInput = serde_json::from_str(old).unwrap();
        assert_eq!(read.changes, None);
        let view = read.view().expect("held inline");
        assert_eq!(view.get("services"), Some(services().value()));
        assert_eq!(view.get("changes"), Some(&json!([{"summary": "deploy"}])));
        // Written again, it names its services' view, and reads back alike.
        let again: PolicyInput = serde_json::from_str(&serde_json::to_string(&read).unwrap())
            .map(|mut again: PolicyInput| {
                again.resolve(lookup(&[services()])).unwrap();
                again
            })
            .unwrap();
        assert_eq!(again, read);
        // Older still: no changes at all, and no field for them.
        let oldest: PolicyInput =
            serde_json::from_str(r#"{"fields":{"tier":"gold"},"services":{}}"#).unwrap();
        assert_eq!(oldest.view().expect("held").get("changes"), None);
    }
}
