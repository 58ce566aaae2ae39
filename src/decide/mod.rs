//! The decision layer: candidates from the playbook, policies in CEL, scores
//! from the learned model, and the choice between acting and asking a person.
//!
//! `Decider::decide` is pure with respect to the outside world: it reads the
//! signal, the context and its own model and returns a `Decision` record that
//! holds everything needed to explain it later. It never does IO.

pub mod celval;

pub mod features;
pub mod model;

pub mod policy;
pub mod reads;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::context::{Context, Snapshot};
use crate::playbook::Playbook;
use crate::playbook::steps::StepCatalogue;
use crate::signal::Signal;
use model::Model;
use policy::{OptionView, PolicyHit, PolicySet, Priority, Role};

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
}

impl Choice<'_> {
    /// A context-only signal type: its play offers one option, `record`,
    /// so there is nothing for policies or the model to choose.
    pub fn record_only(&self) -> bool {
        self.options.len() == 1 && !self.unrecognised
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
        ..like.clone()
    }
}

/// Makes decisions; owns the model and the exploration randomness.
pub struct Decider {
    pub playbook: Arc<Playbook>,
    pub steps: Arc<StepCatalogue>,
    pub policy: Arc<PolicySet>,
    pub model: Model,
    /// Off for the rules-only baseline.
    pub learning: bool,
    rng: ChaCha8Rng,
    option_views: std::collections::HashMap<String, OptionView>,
}

const TOP_CONTRIBUTIONS: usize = 6;

impl Decider {
    pub fn new(
        playbook: Arc<Playbook>,
        steps: Arc<StepCatalogue>,
        policy: Arc<PolicySet>,
        model: Model,
        learning: bool,
        seed: u64,
    ) -> Decider {
        Decider {
            playbook,
            steps,
            policy,
            model,
            learning,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_dec1),
            option_views: std::collections::HashMap::new(),
        }
    }

    fn option_view(&self, name: &str) -> Value {
        let steps = self.playbook.option_steps(name);
        let processes: std::collections::BTreeSet<&str> = steps
            .iter()
            .filter_map(|s| self.steps.get(s).map(|t| t.process.as_str()))
            .collect();
        let automated = steps
            .iter()
            .any(|s| self.steps.get(s).is_some_and(|t| t.automation.is_some()));
        json!({
            "name": name,
            "steps": steps,
            "services": self.playbook.option_services(name, &self.steps),
            "processes": processes,
            "automated": automated,
        })
    }

    /// Decides one choice for a signal. `features` are the base features
    /// (from `features::extract` or `features::for_order`).
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &mut self,
        id: String,
        parent: Option<String>,
        signal: &Signal,
        subject: &str,
        context: &Context,
        snapshot: Snapshot,
        features: Vec<String>,
        choice: &Choice<'_>,
        now: DateTime<Utc>,
    ) -> Decision {
        if choice.record_only() {
            return self.record(id, parent, signal, subject, snapshot, choice, now);
        }
        let policy = Arc::clone(&self.policy);
        let policy_context = context.policy_view(signal, &snapshot);
        // An option's view depends only on the catalogue: build it once.
        for name in choice.options {
            if !self.option_views.contains_key(name) {
                let value = self.option_view(name);
                let view = OptionView {
                    name: name.clone(),
                    value,
                };
                self.option_views.insert(name.clone(), view);
            }
        }
        let views: Vec<&OptionView> = choice
            .options
            .iter()
            .filter_map(|name| self.option_views.get(name))
            .collect();
        let verdict = policy.evaluate(
            &signal.kind,
            &celval::Json::signal(signal, subject),
            celval::ContextView::of(&policy_context),
            &views,
        );

        let mut options: Vec<OptionScore> = choice
            .options
            .iter()
            .map(|name| {
                let forbidden_by = verdict.forbidden.get(name).cloned().unwrap_or_default();
                let score = self.model.predict(&self.model.indices(name, &features));
                OptionScore {
                    option: name.clone(),
                    score,
                    allowed: forbidden_by.is_empty(),
                    forbidden_by,
                }
            })
            .collect();
        let allowed: Vec<usize> = (0..options.len()).filter(|&i| options[i].allowed).collect();

        let forced = verdict
            .forced
            .as_ref()
            .filter(|f| options.iter().any(|o| &o.option == *f && o.allowed));
        // Best allowed option by score; ties go to the playbook default, then
        // to catalogue order, so a cold model proposes what the rules would.
        let best = allowed.iter().copied().max_by(|&a, &b| {
            let (sa, sb) = (options[a].score, options[b].score);
            sa.total_cmp(&sb)
                .then_with(|| {
                    (options[a].option == choice.default)
                        .cmp(&(options[b].option == choice.default))
                })
                .then_with(|| b.cmp(&a))
        });
        let runner_up = allowed
            .iter()
            .copied()
            .filter(|&i| Some(i) != best)
            .map(|i| options[i].score)
            .fold(f64::NEG_INFINITY, f64::max);

        let threshold = policy.threshold(choice.class);
        let mut explored = false;
        let mut propensity = 1.0;
        let (proposal, confidence, margin, mode, why);
        if allowed.is_empty() {
            proposal = choice.safe_default.to_string();
            (confidence, margin, mode) = (0.0, 0.0, Mode::Review);
            why = "every option is forbidden by policy; a person must choose".to_string();
        } else if let Some(forced) = forced {
            proposal = forced.clone();
            confidence = options
                .iter()
                .find(|o| &o.option == forced)
                .map_or(0.0, |o| o.score);
            margin = 1.0;
            mode = if verdict.require_review {
                Mode::Review
            } else {
                Mode::Forced
            };
            why = format!("forced by policy to `{forced}`");
        } else if !self.learning {
            let default_allowed = options
                .iter()
                .any(|o| o.option == choice.default && o.allowed);
            proposal = if default_allowed {
                choice.default.to_string()
            } else {
                options[allowed[0]].option.clone()
            };
            (confidence, margin) = (1.0, 1.0);
            mode = if verdict.require_review || choice.unrecognised {
                Mode::Review
            } else {
                Mode::Rules
            };
            why = "rules only: playbook default".to_string();
        } else {
            let best = best.unwrap_or(allowed[0]);
            let best_score = options[best].score;
            let m = if runner_up.is_finite() {
                best_score - runner_up
            } else {
                1.0
            };
            let evidence = self.model.evidence(&options[best].option);
            let seasoned = evidence >= policy.min_evidence;
            let confident = seasoned && best_score >= threshold && m >= policy.min_margin;
            let mut pick = best;
            // Explore only where the engine would act on its own anyway: an
            // item going to a person shows the model's best guess.
            if confident && !verdict.require_review && !choice.unrecognised && allowed.len() > 1 {
                let k = allowed.len() as f64;
                let epsilon = policy.explore;
                if self.rng.random::<f64>() < epsilon {
                    pick = allowed[self.rng.random_range(0..allowed.len())];
                }
                explored = pick != best;
                propensity = if pick == best {
                    1.0 - epsilon + epsilon / k
                } else {
                    epsilon / k
                };
            }
            proposal = options[pick].option.clone();
            confidence = options[pick].score;
            margin = m;
            if choice.unrecognised {
                mode = Mode::Review;
                why = "unrecognised signal type: a person must look".to_string();
            } else if verdict.require_review {
                mode = Mode::Review;
                why = "policy requires review".to_string();
            } else if explored {
                mode = Mode::Auto;
                why = format!("exploring (propensity {propensity:.3})");
            } else if confident {
                mode = Mode::Auto;
                why = format!("confidence {best_score:.2} ≥ {threshold:.2}, margin {m:.2}");
            } else if !seasoned {
                mode = Mode::Review;
                why = format!(
                    "only {evidence:.0} labelled examples for `{}` (needs {:.0} before acting alone)",
                    options[best].option, policy.min_evidence
                );
            } else {
                mode = Mode::Review;
                why = format!(
                    "confidence {best_score:.2} below {threshold:.2} or margin {m:.2} below {:.2}",
                    policy.min_margin
                );
            }
        }
        if choice.unrecognised && mode != Mode::Review {
            // Unreachable by construction above; kept explicit for the audit.
            tracing::warn!(signal = %signal.id, "unrecognised signal not sent to review");
        }

        let contributions = self.contributions(&proposal, &features);
        options.sort_by(|a, b| b.allowed.cmp(&a.allowed).then(b.score.total_cmp(&a.score)));
        let deadline = now + verdict.deadline.unwrap_or(choice.sla);
        let review_deadline = now
            + choice
                .review_window
                .min(verdict.deadline.unwrap_or(choice.review_window));
        Decision {
            id,
            parent,
            signal_id: signal.id.clone(),
            signal_source: signal.source.clone(),
            signal_type: signal.kind.clone(),
            subject: subject.to_string(),
            class: choice.class.to_string(),
            time: now,
            snapshot,
            features,
            options,
            policy_hits: verdict.hits,
            policy_errors: verdict.errors,
            policy_version: policy.version.clone(),
            model_version: self.model_version(),
            proposal,
            confidence,
            margin,
            threshold,
            contributions,
            explored,
            propensity,
            mode,
            review_role: verdict.review_role.unwrap_or(Role::Operator),
            priority: verdict.priority,
            deadline,
            review_deadline,
            safe_default: choice.safe_default.to_string(),
            why,
        }
    }

    /// The model's version as decisions record it; "off" for rules only.
    pub fn model_version(&self) -> String {
        if self.learning {
            self.model.version()
        } else {
            "off".into()
        }
    }

    /// The decision on a context-only signal (`Choice::record_only`): it is
    /// recorded with the snapshot of what it read. Policies and the model
    /// are not consulted: whatever they said, there is one option, no flow
    /// and no review item, so their hits would only be noise in the audit.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        id: String,
        parent: Option<String>,
        signal: &Signal,
        subject: &str,
        snapshot: Snapshot,
        choice: &Choice<'_>,
        now: DateTime<Utc>,
    ) -> Decision {
        let option = choice.options.first().cloned().unwrap_or_default();
        Decision {
            id,
            parent,
            signal_id: signal.id.clone(),
            signal_source: signal.source.clone(),
            signal_type: signal.kind.clone(),
            subject: subject.to_string(),
            class: choice.class.to_string(),
            time: now,
            snapshot,
            features: Vec::new(),
            options: vec![OptionScore {
                option: option.clone(),
                score: 1.0,
                allowed: true,
                forbidden_by: Vec::new(),
            }],
            policy_hits: Vec::new(),
            policy_errors: Vec::new(),
            policy_version: self.policy.version.clone(),
            model_version: self.model_version(),
            proposal: option,
            confidence: 1.0,
            margin: 1.0,
            threshold: self.policy.threshold(choice.class),
            contributions: Vec::new(),
            explored: false,
            propensity: 1.0,
            mode: Mode::Record,
            review_role: Role::Operator,
            priority: Priority::default(),
            deadline: now + choice.sla,
            review_deadline: now + choice.review_window,
            safe_default: choice.safe_default.to_string(),
            why: "context-only signal: recorded (nothing to choose: policies and model not consulted)"
                .to_string(),
        }
    }

    /// The features that pushed the chosen option's score most, either way.
    fn contributions(&self, option: &str, features: &[String]) -> Vec<Contribution> {
        let mut out: Vec<Contribution> = std::iter::once("bias")
            .chain(features.iter().map(String::as_str))
            .map(|f| Contribution {
                feature: f.to_string(),
                weight: self.model.weight(self.model.index(option, f)),
            })
            .filter(|c| c.weight != 0.0)
            .collect();
        out.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
        out.truncate(TOP_CONTRIBUTIONS);
        out
    }

    /// Learns from one labelled example: `option` taken with `features` led to
    /// `label` (1 = within SLA / the right call, 0 = not).
    pub fn learn(&mut self, option: &str, features: &[String], label: f64, importance: f64) {
        let indices = self.model.indices(option, features);
        self.model.update(&indices, label, importance);
        self.model.note_example(option, importance);
    }
}
