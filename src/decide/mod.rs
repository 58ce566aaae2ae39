//! The decision layer: candidates from the playbook, policies in CEL, scores
//! from the learned model, and the choice between acting and asking a person.
//!
//! `Decider::decide` is pure with respect to the outside world: it reads the
//! signal, the context and its own model and returns a `Decision` record that
//! holds everything needed to explain it later. It never does IO.

pub mod apprentice;
pub mod candidate;
pub mod celval;

pub mod estimate;
pub mod features;
pub mod fold;
pub mod model;
pub mod pick;

pub mod policy;
pub mod ramp;
pub mod reads;
pub mod watch;

mod by_mode;
mod decision;
pub use decision::{
    Case, Choice, Contribution, Decision, Mode, OptionScore, PolicyInput, ShadowChoice, ViewRef,
    choice_for, context_view, record_choice,
};

use std::sync::Arc;

use chrono::Duration;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::context::{Context, PolicyView};
use crate::playbook::Playbook;
use crate::playbook::steps::StepCatalogue;
use crate::signal::Signal;
use apprentice::ModelMode;
pub use candidate::{Candidate, CandidateFiles};
use model::Model;
use policy::{OptionView, PolicyHit, PolicySet, Priority, Role, Verdict};

/// What policy and the model made of a case, before it becomes a
/// `Decision`.
struct Ruling {
    options: Vec<OptionScore>,
    policy_hits: Vec<PolicyHit>,
    policy_errors: Vec<String>,
    threshold: f64,
    review_role: Role,
    priority: Priority,
    /// A deadline policy set, shorter than the play's.
    deadline: Option<Duration>,
    pick: pick::Pick,
    shadow: Option<ShadowChoice>,
    input: Option<PolicyInput>,
    /// The policy that took it (the live one, or a ramp's candidate).
    policy_version: String,
    ramp: Option<ramp::RampMark>,
    apprentice: Option<apprentice::ApprenticeMark>,
}

/// A journaled decision as a candidate would take it (`Decider::redecide`).
#[derive(Debug, Clone)]
pub struct Redecision {
    pub pick: pick::Pick,
    pub threshold: f64,
    pub hits: Vec<PolicyHit>,
    /// As policy allows them, in the playbook's order.
    pub options: Vec<OptionScore>,
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
    option_views: OptionViews,
    /// See `Decision::rules_version`.
    pub rules_version: String,
    /// A candidate deciding beside the live rules, never acting.
    pub shadow: Option<Candidate>,
    /// The model's breaker is open (`watch`): decisions are the rules'
    /// alone while the model goes on scoring and learning beside them.
    pub model_held: bool,
    /// A candidate taking a share of the decisions (a guarded ramp).
    pub ramp: Option<RampArm>,
    /// Who decides each apprentice class, and the readings that move it
    /// (`apprentice`).
    pub apprentice: apprentice::Apprentice,
}

/// A ramp's candidate and its coverage, as the engine sets them
/// (`ramp::Ramp` keeps the rest).
#[derive(Debug)]
pub struct RampArm {
    pub id: String,
    pub step: usize,
    /// The batch decisions are read in; none while the step's is full.
    pub batch: Option<u32>,
    pub coverage: f64,
    /// Empty: every class.
    pub classes: Vec<String>,
    /// Its policies (a ramp's candidate has no playbook or model of its own).
    pub candidate: Candidate,
}

impl RampArm {
    /// The candidate's policies.
    fn policy(&self) -> Option<&Arc<PolicySet>> {
        self.candidate.policy.as_ref()
    }
}

/// What decisions are made under, besides the model: the playbook, the
/// step templates and the policies, as one set that is replaced whole.
#[derive(Debug, Clone)]
pub struct Rules {
    pub steps: Arc<StepCatalogue>,
    pub playbook: Arc<Playbook>,
    pub policy: Arc<PolicySet>,
    /// The playbook's, steps' and organization's version (`Decision::rules_version`).
    pub version: String,
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
            option_views: OptionViews::new(),
            rules_version: String::new(),
            shadow: None,
            model_held: false,
            apprentice: apprentice::Apprentice::new(Default::default()),
            ramp: None,
        }
    }

    /// Decides under `rules` from now on (the model stays).
    pub fn replace_rules(&mut self, rules: Rules) {
        self.playbook = rules.playbook;
        self.steps = rules.steps;
        self.policy = rules.policy;
        self.rules_version = rules.version;
        self.option_views.clear();
        if let Some(shadow) = &mut self.shadow {
            shadow.forget_views();
        }
    }

    /// Decides one case: the policies and the model rank its options, and
    /// `pick` chooses between acting and asking a person.
    pub fn decide(&mut self, case: Case<'_>, context: &mut Context) -> Decision {
        let choice = case.choice;
        if choice.record_only() {
            return self.record(case);
        }
        let PolicyView {
            fields,
            services,
            changes,
        } = context.policy_view(case.signal, &case.snapshot);
        let view = context_view(&fields, &services, Some(&changes));
        self.build_option_views(choice.options);
        let (kind, signal) = (
            &case.signal.kind,
            celval::Json::signal(case.signal, case.subject),
        );
        // A ramp's candidate takes the decisions of its arm.
        let ramped = self
            .ramp
            .as_ref()
            .filter(|r| ramp::covers(&r.classes, choice.class))
            .map(|r| {
                let candidate = r
                    .policy()
                    .map_or_else(|| Arc::clone(&self.policy), Arc::clone);
                let mark = ramp::RampMark {
                    ramp: r.id.clone(),
                    step: r.step,
                    batch: r.batch.unwrap_or(0),
                    arm: ramp::arm_for(&r.id, &case.id, r.coverage),
                    coverage: r.coverage,
                    candidate: 0.0,
                    live: 0.0,
                };
                (candidate, mark)
            });
        let policy = match &ramped {
            Some((candidate, mark)) if mark.arm == ramp::Arm::Candidate => Arc::clone(candidate),
            _ => Arc::clone(&self.policy),
        };
        let score = |name: &str| self.model_score(name, &case.features);
        let (verdict, options) = self.rank(
            &self.option_views,
            &policy,
            choice,
            (kind, &signal),
            view,
            score,
        );
        let threshold = policy.threshold(choice.class);
        let ranked = pick::Ranked {
            options: &options,
            choice,
            verdict: &verdict,
            policy: &policy,
            threshold,
        };
        let (pick, apprentice) = self.pick_by_mode(&ranked, choice.class);
        let branch = case.parent.is_some();
        let features = &case.features;
        let shadow = self.shadow_choice(&case, (kind, &signal), view);
        // The other arm's chance of what this one did.
        let mark = ramped.map(|(candidate, mut mark)| {
            let other = match mark.arm {
                ramp::Arm::Candidate => Arc::clone(&self.policy),
                ramp::Arm::Live => candidate,
            };
            let (other_options, best) = self.best_pick(
                (&other, None, None),
                choice,
                (kind, &signal),
                view,
                features,
                branch,
            );
            let review = pick.mode == Mode::Review && !branch;
            let theirs = ramp::chance(&best, &other_options, &pick.proposal, review);
            (mark.candidate, mark.live) = match mark.arm {
                ramp::Arm::Candidate => (pick.propensity, theirs),
                ramp::Arm::Live => (theirs, pick.propensity),
            };
            mark
        });
        let ruling = Ruling {
            options,
            policy_hits: verdict.hits,
            policy_errors: verdict.errors,
            threshold,
            review_role: verdict.review_role.unwrap_or(Role::Operator),
            priority: verdict.priority,
            deadline: verdict.deadline,
            pick,
            shadow,
            input: Some(PolicyInput {
                fields,
                services: ViewRef::Held(services),
                changes: Some(ViewRef::Held(changes)),
            }),
            policy_version: policy.version.clone(),
            ramp: mark,
            apprentice,
        };
        self.decision(case, ruling)
    }

    /// `policy`'s best pick for a case, scored by `model` (the live one if
    /// none), without exploring (`rng` is left as it was), with the options
    /// as it allows them; a fan-out branch's is taken as the engine takes
    /// the live one's.
    fn best_pick(
        &mut self,
        (policy, model, views): (&PolicySet, Option<&Model>, Option<&OptionViews>),
        choice: &Choice<'_>,
        signal: (&str, &celval::Json),
        view: celval::ContextView<'_>,
        features: &[String],
        branch: bool,
    ) -> (Vec<OptionScore>, pick::Pick) {
        let learning = self.learning;
        let score = |name: &str| match model {
            Some(m) => (
                m.predict(&m.indices(name, features)),
                learning.then(|| m.evidence(name)),
            ),
            None => self.model_score(name, features),
        };
        let views = views.unwrap_or(&self.option_views);
        let (verdict, options) = self.rank(views, policy, choice, signal, view, score);
        let ranked = pick::Ranked {
            options: &options,
            choice,
            verdict: &verdict,
            policy,
            threshold: policy.threshold(choice.class),
        };
        let learner = (self.learning && !self.model_held).then_some(pick::Learner {
            rng: &mut self.rng,
            explore: false,
        });
        let mut pick = ranked.pick(learner);
        self.as_branch(branch, &mut pick);
        (options, pick)
    }

    /// An option's score by the model and the evidence behind it (none
    /// while learning is off).
    fn model_score(&self, name: &str, features: &[String]) -> (f64, Option<f64>) {
        let score = self.model.predict(&self.model.indices(name, features));
        (score, self.learning.then(|| self.model.evidence(name)))
    }

    /// What `policy` says of the choice's options, and each option as
    /// `score` scores it and `policy` allows it.
    fn rank(
        &self,
        views: &OptionViews,
        policy: &PolicySet,
        choice: &Choice<'_>,
        (kind, signal): (&str, &celval::Json),
        view: celval::ContextView<'_>,
        score: impl Fn(&str) -> (f64, Option<f64>),
    ) -> (Verdict, Vec<OptionScore>) {
        let views: Vec<&OptionView> = choice
            .options
            .iter()
            .filter_map(|name| views.get(name))
            .collect();
        let verdict = policy.evaluate(kind, signal, view, &views);
        let options = choice
            .options
            .iter()
            .map(|name| {
                let forbidden_by = verdict.forbidden.get(name).cloned().unwrap_or_default();
                let (score, evidence) = score(name);
                OptionScore {
                    option: name.clone(),
                    score,
                    allowed: forbidden_by.is_empty(),
                    forbidden_by,
                    evidence,
                }
            })
            .collect();
        (verdict, options)
    }

    /// What this decider's policies and playbook would make of a journaled
    /// decision, never acting and without exploring (`Pick::spread` says
    /// how often it would): the verdict remade over the policy input the
    /// record keeps, each option scored as the record says, or by this
    /// decider's model over the record's features (`rescore`), or, with
    /// learning off, by rules alone. `None` for a record that keeps no
    /// policy input (journaled before it did), whose shared views are only
    /// named (not read through the journal's readers, which resolve them)
    /// or whose play this playbook no longer has.
    pub fn redecide(
        &mut self,
        record: &Decision,
        signal: &Signal,
        rescore: bool,
    ) -> Option<Redecision> {
        let view = record.policy_input.as_ref()?.view()?;
        let playbook = Arc::clone(&self.playbook);
        let choice = match &record.parent {
            // A branch of a fan-out: the per-order choice of its class.
            Some(_) => {
                let like = choice_for(&playbook, &record.signal_type);
                let fanout = playbook
                    .fanouts
                    .values()
                    .find(|f| f.class == record.class)?;
                Choice::of_fanout(fanout, &like)
            }
            None => choice_for(&playbook, &record.signal_type),
        };
        self.build_option_views(choice.options);
        let cel_signal = celval::Json::signal(signal, &record.subject);
        let policy = Arc::clone(&self.policy);
        let learning = self.learning;
        let score = |name: &str| {
            if !learning {
                (0.0, None)
            } else if rescore {
                self.model_score(name, &record.features)
            } else {
                // An option the record did not score: nothing learned of it.
                record
                    .score_of(name)
                    .map_or((0.0, Some(0.0)), |o| (o.score, o.evidence))
            }
        };
        let (verdict, options) = self.rank(
            &self.option_views,
            &policy,
            &choice,
            (&signal.kind, &cel_signal),
            view,
            score,
        );
        let threshold = policy.threshold(choice.class);
        let mut pick = pick::Ranked {
            options: &options,
            choice: &choice,
            verdict: &verdict,
            policy: &policy,
            threshold,
        }
        .pick(learning.then_some(pick::Learner {
            rng: &mut self.rng,
            explore: false,
        }));
        self.as_branch(record.parent.is_some(), &mut pick);
        Some(Redecision {
            pick,
            threshold,
            hits: verdict.hits,
            options,
        })
    }

    /// Each option's view for policies (it depends only on the catalogue:
    /// built once per option).
    fn build_option_views(&mut self, names: &[String]) {
        build_views(&mut self.option_views, &self.playbook, &self.steps, names);
    }

    /// What the shadow candidate (its policies, playbook and model, each
    /// the live one where it has none) makes of a case: its best, never
    /// exploring; none without a candidate, or when the candidate playbook
    /// has no such fan-out branch.
    fn shadow_choice(
        &mut self,
        case: &Case<'_>,
        signal: (&str, &celval::Json),
        view: celval::ContextView<'_>,
    ) -> Option<ShadowChoice> {
        // Taken out while it decides (read beside `rng`).
        let mut candidate = self.shadow.take()?;
        let policy = candidate
            .policy
            .clone()
            .unwrap_or_else(|| Arc::clone(&self.policy));
        let model_version = candidate
            .model
            .as_ref()
            .map(Model::version)
            .unwrap_or_default();
        let own = candidate
            .playbook
            .as_deref()
            .map(|p| shadow_play(p, signal.0, case.parent.is_some(), case.choice.class));
        let choice = match &own {
            None => Some(case.choice.clone()),
            Some(own) => own.clone(),
        };
        let shadow = choice.map(|choice| {
            let (proposal, mode) = if choice.record_only() {
                (choice.default.to_string(), Mode::Record)
            } else {
                let own_views = match &candidate.playbook {
                    Some(p) => {
                        build_views(&mut candidate.views, p, &self.steps, choice.options);
                        Some(&candidate.views)
                    }
                    None => None,
                };
                let (_, best) = self.best_pick(
                    (&policy, candidate.model.as_ref(), own_views),
                    &choice,
                    signal,
                    view,
                    &case.features,
                    case.parent.is_some(),
                );
                (best.proposal, best.mode)
            };
            ShadowChoice {
                proposal,
                mode,
                policy_version: policy.version.clone(),
                model_version,
            }
        });
        self.shadow = Some(candidate);
        shadow
    }

    /// How a fan-out branch that would have asked a person is taken: the
    /// parent decision is the one a person reviews, so the branch takes its
    /// best allowed option.
    pub fn branch_mode(&self) -> Mode {
        if self.learning {
            Mode::Auto
        } else {
            Mode::Rules
        }
    }

    /// A pick for a fan-out branch (`branch`) that would ask a person is
    /// taken as `branch_mode` says.
    fn as_branch(&self, branch: bool, pick: &mut pick::Pick) {
        if branch && pick.mode == Mode::Review {
            pick.mode = self.branch_mode();
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
    fn record(&self, case: Case<'_>) -> Decision {
        let option = case.choice.options.first().cloned().unwrap_or_default();
        let ruling = Ruling {
            options: vec![OptionScore {
                option: option.clone(),
                score: 1.0,
                allowed: true,
                forbidden_by: Vec::new(),
                evidence: None,
            }],
            policy_hits: Vec::new(),
            policy_errors: Vec::new(),
            threshold: self.policy.threshold(case.choice.class),
            review_role: Role::Operator,
            priority: Priority::default(),
            deadline: None,
            shadow: None,
            input: None,
            policy_version: self.policy.version.clone(),
            ramp: None,
            apprentice: None,
            pick: pick::Pick {
                proposal: option,
                confidence: 1.0,
                margin: 1.0,
                mode: Mode::Record,
                why: "context-only signal: recorded (nothing to choose: policies and model not consulted)"
                    .to_string(),
                explored: false,
                propensity: 1.0,
                spread: 0.0,
            },
        };
        self.decision(case, ruling)
    }

    /// The one place a `Decision` is put together.
    fn decision(&self, case: Case<'_>, mut ruling: Ruling) -> Decision {
        let Case {
            id,
            parent,
            signal,
            subject,
            snapshot,
            features,
            choice,
            now,
        } = case;
        let pick = ruling.pick;
        let contributions = if pick.mode == Mode::Record {
            Vec::new()
        } else {
            self.contributions(&pick.proposal, &features)
        };
        ruling
            .options
            .sort_by(|a, b| b.allowed.cmp(&a.allowed).then(b.score.total_cmp(&a.score)));
        let deadline = match ruling.deadline {
            Some(by_policy) => now + by_policy,
            None => promised(choice, signal, &mut ruling.policy_errors).unwrap_or(now + choice.sla),
        };
        let review_deadline = now
            + choice
                .review_window
                .min(ruling.deadline.unwrap_or(choice.review_window));
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
            options: ruling.options,
            policy_hits: ruling.policy_hits,
            policy_errors: ruling.policy_errors,
            policy_version: ruling.policy_version,
            model_version: self.model_version(),
            rules_version: self.rules_version.clone(),
            proposal: pick.proposal,
            confidence: pick.confidence,
            margin: pick.margin,
            threshold: ruling.threshold,
            contributions,
            explored: pick.explored,
            propensity: ruling
                .ramp
                .as_ref()
                .map_or(pick.propensity, ramp::RampMark::logged),
            mode: pick.mode,
            review_role: ruling.review_role,
            priority: ruling.priority,
            deadline,
            review_deadline,
            safe_default: choice.safe_default.to_string(),
            why: pick.why,
            shadow: ruling.shadow,
            ramp: ruling.ramp,
            apprentice: ruling.apprentice,
            unrecognised: choice.unrecognised,
            policy_input: ruling.input,
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

    /// The model's chance that `option` succeeds on these features.
    pub fn predict(&self, option: &str, features: &[String]) -> f64 {
        self.model.predict(&self.model.indices(option, features))
    }

    /// Learns from one labelled example (`Model::learn`).
    pub fn learn(&mut self, option: &str, features: &[String], label: f64, importance: f64) {
        self.model.learn(option, features, label, importance);
    }
}

/// Options' views for policies, by name.
pub(crate) type OptionViews = std::collections::HashMap<String, OptionView>;

/// The time a signal says its work is promised by, in the field its type
/// names (`Choice::due`); one that does not read as a time is said among
/// the decision's policy errors (the SLA stands).
fn promised(
    choice: &Choice<'_>,
    signal: &Signal,
    errors: &mut Vec<String>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let field = choice.due?;
    let text = signal.data_str(field)?;
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => Some(t.with_timezone(&chrono::Utc)),
        Err(e) => {
            errors.push(format!(
                "due: data.{field} {text:?} is not an RFC 3339 time ({e}); the SLA stands"
            ));
            None
        }
    }
}

/// Builds the views of `names` under `playbook` that `views` lacks.
fn build_views(
    views: &mut OptionViews,
    playbook: &Playbook,
    steps: &StepCatalogue,
    names: &[String],
) {
    for name in names {
        if !views.contains_key(name) {
            let value = option_view(playbook, steps, name);
            let view = OptionView {
                name: name.clone(),
                value,
            };
            views.insert(name.clone(), view);
        }
    }
}

/// An option as policies see it: its steps, services, processes, and
/// whether any step is automated.
fn option_view(playbook: &Playbook, catalogue: &StepCatalogue, name: &str) -> Value {
    let steps = playbook.option_steps(name);
    let processes: std::collections::BTreeSet<&str> = steps
        .iter()
        .filter_map(|s| catalogue.get(s).map(|t| t.process.as_str()))
        .collect();
    let automated = steps
        .iter()
        .any(|s| catalogue.get(s).is_some_and(|t| t.automation.is_some()));
    json!({
        "name": name,
        "steps": steps,
        "services": playbook.option_services(name, catalogue),
        "processes": processes,
        "automated": automated,
    })
}

/// The choice a candidate playbook offers for a signal type, or for the
/// fan-out branch of `class` (none when it has no such branch).
fn shadow_play<'a>(
    playbook: &'a Playbook,
    kind: &str,
    branch: bool,
    class: &str,
) -> Option<Choice<'a>> {
    let like = choice_for(playbook, kind);
    if !branch {
        return Some(like);
    }
    let fanout = playbook.fanouts.values().find(|f| f.class == class)?;
    Some(Choice::of_fanout(fanout, &like))
}
