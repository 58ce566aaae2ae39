//! Policies: rules over a signal and its context whose conditions are CEL.
//!
//! A policy file is refused whole if any part of it is wrong (TOML, a CEL
//! expression that does not compile, an effect naming an unknown option); the
//! caller keeps the last good `PolicySet`, so a bad edit never leaves the
//! engine without rules.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use cel::common::value::Val;
use cel::{Context as CelContext, Value as CelValue};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::apprentice::ModelMode;
use crate::cel_bounded::{Bounded, Budget};
use crate::playbook::Playbook;

/// Who may act on a review item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Lead,
    /// The engine itself (timeouts, safe defaults).
    System,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "lead" => Some(Role::Lead),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Lead => "lead",
            Role::System => "system",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn raised(self) -> Priority {
        match self {
            Priority::Low => Priority::Normal,
            Priority::Normal => Priority::High,
            _ => Priority::Urgent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum PolicyError {
    #[error("{file}: cannot read: {error}")]
    Io { file: String, error: String },
    #[error("{file}: not valid policy TOML: {error}")]
    Parse { file: String, error: String },
    #[error("{file}: rule `{rule}`: CEL {error}")]
    Cel {
        file: String,
        rule: String,
        error: String,
    },
    #[error("{file}: rule `{rule}`: {error}")]
    Rule {
        file: String,
        rule: String,
        error: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: String,
    #[serde(default)]
    scope: Scope,
    #[serde(default)]
    types: Vec<String>,
    when: String,
    #[serde(default)]
    require_review: bool,
    #[serde(default)]
    review_role: Option<String>,
    #[serde(default)]
    forbid: Vec<String>,
    #[serde(default)]
    forbid_option: bool,
    #[serde(default)]
    force: Option<String>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    deadline: Option<String>,
    reason: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Scope {
    #[default]
    Signal,
    Option,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSettings {
    #[serde(default = "default_margin")]
    min_margin: f64,
    #[serde(default = "default_explore")]
    explore: f64,
    #[serde(default = "default_min_evidence")]
    min_evidence: f64,
    /// Who decides: `rules`, `apprentice` or `on` (`decide::apprentice`),
    /// for every class but those named in `classes`.
    #[serde(default)]
    mode: ModelMode,
    #[serde(default)]
    classes: BTreeMap<String, ModelMode>,
}

fn default_min_evidence() -> f64 {
    12.0
}

fn default_margin() -> f64 {
    0.04
}
fn default_explore() -> f64 {
    0.05
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            min_margin: default_margin(),
            explore: default_explore(),
            min_evidence: default_min_evidence(),
            mode: ModelMode::default(),
            classes: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: String,
    #[serde(default)]
    thresholds: BTreeMap<String, f64>,
    #[serde(default)]
    model: ModelSettings,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleFile>,
}

struct Rule {
    spec: RuleFile,
    program: Bounded,
    review_role: Role,
    deadline: Option<Duration>,
    /// For an option-scoped rule that reads only `option` and fields of
    /// `context`: those fields, whose values (with the option's) fix its
    /// result.
    fixed_by: Option<Vec<String>>,
}

impl Rule {
    /// One rule from its file: compiled within the CEL bounds, its names
    /// and effects checked, and its condition type-checked against each
    /// signal type it applies to. Every problem found.
    fn read(spec: RuleFile, file: &str, playbook: &Playbook) -> Result<Rule, Vec<PolicyError>> {
        let rule_err = |error: String| PolicyError::Rule {
            file: file.to_string(),
            rule: spec.id.clone(),
            error,
        };
        let mut errors = Vec::new();
        let program = Bounded::compile(&spec.when).map_err(|e| {
            vec![PolicyError::Cel {
                file: file.to_string(),
                rule: spec.id.clone(),
                error: e.to_string(),
            }]
        })?;
        for option in spec.forbid.iter().chain(spec.force.iter()) {
            if !playbook.options.contains_key(option) {
                errors.push(rule_err(format!("names unknown option `{option}`")));
            }
        }
        for kind in &spec.types {
            if !playbook.signals.contains_key(kind) {
                errors.push(rule_err(format!(
                    "types names `{kind}`, which the playbook does not declare (a rule that would never fire)"
                )));
            }
        }
        for problem in type_problems(&spec, &program, playbook) {
            errors.push(PolicyError::Cel {
                file: file.to_string(),
                rule: spec.id.clone(),
                error: problem,
            });
        }
        if spec.forbid_option && spec.scope != Scope::Option {
            errors.push(rule_err("forbid_option needs scope = \"option\"".into()));
        }
        let review_role = match spec.review_role.as_deref() {
            None => Role::Operator,
            Some(text) => match Role::parse(text).filter(|r| *r != Role::Viewer) {
                Some(role) => role,
                None => {
                    errors.push(rule_err(format!(
                        "review_role `{text}` is not operator or lead"
                    )));
                    Role::Operator
                }
            },
        };
        let deadline = match spec.deadline.as_deref().map(parse_duration) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                errors.push(rule_err(e.to_string()));
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let fixed_by = match spec.scope {
            Scope::Option => {
                super::reads::Reads::of(program.expression()).only_option_and_context_fields()
            }
            Scope::Signal => None,
        };
        Ok(Rule {
            spec,
            program,
            review_role,
            deadline,
            fixed_by,
        })
    }
}

/// What `cel_check` finds in a rule's condition, for each signal type
/// it applies to (its `types`, or any type with `data` open).
fn type_problems(spec: &RuleFile, program: &Bounded, playbook: &Playbook) -> Vec<String> {
    use crate::cel_check::{Scope as Variables, check, context_ty, option_ty, signal_ty};
    let kinds: Vec<Option<&String>> = match spec.types.is_empty() {
        true => vec![None],
        false => spec.types.iter().map(Some).collect(),
    };
    let mut problems: Vec<String> = Vec::new();
    for kind in kinds {
        let data = kind.and_then(|k| playbook.data_fields.get(k));
        let mut variables = vec![("signal", signal_ty(data)), ("context", context_ty())];
        if spec.scope == Scope::Option {
            variables.push(("option", option_ty()));
        }
        for p in check(program.expression(), &Variables { variables }, true) {
            let p = format!("does not check: {p}");
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
    }
    problems
}

/// What an option-scoped rule gave.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Fired,
    Quiet,
    /// The error as the verdict lists it.
    Failed(String),
}

/// A rule's last outcome for an option, with the inputs it had.
struct Remembered {
    option: serde_json::Value,
    inputs: Vec<Option<serde_json::Value>>,
    outcome: Outcome,
}

/// The last outcome of each rule fixed by its inputs, per rule (by index)
/// and option name. Bounded by the rules times the catalogue's options.
#[derive(Default)]
struct Memo {
    by_rule: Vec<crate::FastMap<String, Remembered>>,
}

impl Memo {
    fn get(&self, rule: usize, option: &str) -> Option<&Remembered> {
        self.by_rule.get(rule)?.get(option)
    }

    fn put(&mut self, rule: usize, option: &str, remembered: Remembered) {
        if self.by_rule.len() <= rule {
            self.by_rule.resize_with(rule + 1, Default::default);
        }
        self.by_rule[rule].insert(option.to_string(), remembered);
    }
}

/// One rule that fired for a decision, as the audit shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyHit {
    pub rule: String,
    pub reason: String,
    pub effects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
}

/// What the policies say about one decision.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub require_review: bool,
    pub review_role: Option<Role>,
    pub forced: Option<String>,
    pub forbidden: HashMap<String, Vec<String>>,
    pub priority: Priority,
    pub deadline: Option<Duration>,
    pub hits: Vec<PolicyHit>,
    /// Rules whose expression failed at evaluation (a missing key, say).
    pub errors: Vec<String>,
}

/// A loaded, compiled policy file.
pub struct PolicySet {
    pub version: String,
    pub origin: String,
    thresholds: BTreeMap<String, f64>,
    pub min_margin: f64,
    pub explore: f64,
    /// Labelled examples (by weight) an option needs before the model may
    /// choose it on its own.
    pub min_evidence: f64,
    /// How far the model may decide, and per class where it differs.
    pub mode: ModelMode,
    modes: BTreeMap<String, ModelMode>,
    rules: Vec<Rule>,
    /// The CEL environment (standard macros), built once: building it per
    /// evaluation was a tenth of the decision time.
    env: Arc<cel::Env>,
    /// Outcomes of option-scoped rules fixed by their inputs (`Rule::fixed_by`).
    memo: Mutex<Memo>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("version", &self.version)
            .field("rules", &self.rules.len())
            .finish()
    }
}

pub const DEFAULT_POLICY: &str = include_str!("../../../policies/default.toml");

/// The variables of the `option` scope.
#[derive(Debug)]
pub struct OptionView {
    pub name: String,
    pub value: serde_json::Value,
}

impl PolicySet {
    pub fn load(path: &Path, playbook: &Playbook) -> Result<Arc<PolicySet>, PolicyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Io {
            file: file.clone(),
            error: e.to_string(),
        })?;
        PolicySet::parse(&text, &file, playbook).map(Arc::new)
    }

    /// Parses a policy file; the first problem, if any (`parse_all` gives
    /// them all).
    pub fn parse(text: &str, file: &str, playbook: &Playbook) -> Result<PolicySet, PolicyError> {
        PolicySet::parse_all(text, file, playbook).map_err(|errors| {
            errors.into_iter().next().unwrap_or(PolicyError::Parse {
                file: file.to_string(),
                error: "refused".into(),
            })
        })
    }

    /// Parses a policy file, compiling, bounding and type-checking every
    /// rule; every problem found, or the set.
    pub fn parse_all(
        text: &str,
        file: &str,
        playbook: &Playbook,
    ) -> Result<PolicySet, Vec<PolicyError>> {
        let parsed: PolicyFile = toml::from_str(text).map_err(|e| {
            vec![PolicyError::Parse {
                file: file.to_string(),
                error: e.to_string(),
            }]
        })?;
        let digest = Sha256::digest(text.as_bytes());
        let version = format!("{}+{}", parsed.version, &hex::encode(digest)[..8]);
        let mut rules = Vec::with_capacity(parsed.rules.len());
        let mut errors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for spec in parsed.rules {
            if !seen.insert(spec.id.clone()) {
                errors.push(PolicyError::Rule {
                    file: file.to_string(),
                    rule: spec.id.clone(),
                    error: "a rule with this id appears twice".into(),
                });
                continue;
            }
            match Rule::read(spec, file, playbook) {
                Ok(rule) => rules.push(rule),
                Err(mut found) => errors.append(&mut found),
            }
        }
        for (class, t) in &parsed.thresholds {
            if !(0.0..=1.0).contains(t) {
                errors.push(PolicyError::Rule {
                    file: file.to_string(),
                    rule: format!("thresholds.{class}"),
                    error: format!("{t} is not between 0 and 1"),
                });
            }
        }
        for class in parsed.model.classes.keys() {
            if !playbook.classes().any(|c| c == class) {
                errors.push(PolicyError::Rule {
                    file: file.to_string(),
                    rule: format!("model.classes.{class}"),
                    error: "names a class no signal type of the playbook is in".into(),
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PolicySet {
            version,
            origin: file.to_string(),
            thresholds: parsed.thresholds,
            min_margin: parsed.model.min_margin,
            explore: parsed.model.explore.clamp(0.0, 0.5),
            min_evidence: parsed.model.min_evidence.max(0.0),
            mode: parsed.model.mode,
            modes: parsed.model.classes,
            rules,
            env: Arc::new(cel::Env::stdlib()),
            memo: Mutex::new(Memo::default()),
        })
    }

    /// How many rules it has.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn default_set(playbook: &Playbook) -> Result<PolicySet, PolicyError> {
        PolicySet::parse(DEFAULT_POLICY, "policies/default.toml", playbook)
    }

    /// The confidence below which decisions of this class go to review.
    pub fn threshold(&self, class: &str) -> f64 {
        self.thresholds
            .get(class)
            .or_else(|| self.thresholds.get("default"))
            .copied()
            .unwrap_or(0.6)
    }

    /// How far the model may decide this class.
    pub fn model_mode(&self, class: &str) -> ModelMode {
        self.modes.get(class).copied().unwrap_or(self.mode)
    }

    /// Every class decided under `mode` (a run's `--model-mode`).
    pub fn set_mode(&mut self, mode: ModelMode) {
        self.mode = mode;
        self.modes.clear();
    }

    /// Every mode it sets, per class (and `default`), for people.
    pub fn model_modes(&self) -> BTreeMap<String, ModelMode> {
        let mut all = self.modes.clone();
        all.insert("default".into(), self.mode);
        all
    }

    /// Evaluates every rule for a signal (given as a CEL `signal` value) and
    /// its `context` and, for option-scoped rules, for each candidate
    /// option. An option-scoped rule that reads nothing but the option and
    /// some fields of `context` (see `reads`) runs again only when one of
    /// those changed since it last ran for that option.
    // Over 80 lines: one pass over the rules, each effect applied where it is read.
    pub fn evaluate(
        &self,
        kind: &str,
        signal: &dyn Val,
        context: super::celval::ContextView<'_>,
        options: &[&OptionView],
    ) -> Verdict {
        let mut verdict = Verdict::default();
        // Bound by reference (see `celval`): nothing is copied until a rule
        // reads it.
        let mut base = CelContext::with_env(Arc::clone(&self.env));
        base.add_variable_as_val("signal", signal.clone_as_boxed());
        base.add_variable_as_val("context", context.as_val());
        let budget = Budget::install(&mut base);
        let applies =
            |rule: &&Rule| rule.spec.types.is_empty() || rule.spec.types.iter().any(|t| t == kind);
        for rule in self.rules.iter().filter(applies) {
            if rule.spec.scope != Scope::Signal {
                continue;
            }
            match outcome(rule, rule.program.execute(&base, &budget)) {
                Outcome::Fired => self.apply(rule, None, &mut verdict),
                Outcome::Quiet => {}
                Outcome::Failed(error) => self.fail_closed(rule, None, error, &mut verdict),
            }
        }
        // Option-scoped rules: one scope per option, built only if a rule
        // has to run in it.
        let option_rules: Vec<(usize, &Rule)> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| applies(r))
            .filter(|(_, r)| r.spec.scope == Scope::Option)
            .collect();
        if option_rules.is_empty() {
            return verdict;
        }
        // The inputs of each rule whose result the option and some fields of
        // `context` fix, as they are for this decision.
        let inputs: Vec<Option<Vec<Option<&serde_json::Value>>>> = option_rules
            .iter()
            .map(|(_, r)| {
                r.fixed_by
                    .as_ref()
                    .map(|fields| fields.iter().map(|f| context.get(f)).collect())
            })
            .collect();
        let mut memo = self
            .memo
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for option in options {
            let mut scope = None;
            for ((index, rule), inputs) in option_rules.iter().zip(&inputs) {
                let remembered = inputs.as_ref().and_then(|inputs| {
                    memo.get(*index, &option.name).filter(|m| {
                        m.option == option.value
                            && m.inputs
                                .iter()
                                .map(Option::as_ref)
                                .eq(inputs.iter().copied())
                    })
                });
                let outcome = match remembered {
                    Some(m) => m.outcome.clone(),
                    None => {
                        let scope = scope.get_or_insert_with(|| {
                            let mut scope = base.new_inner_scope();
                            scope
                                .add_variable_as_val("option", super::celval::value(&option.value));
                            scope
                        });
                        let outcome = outcome(rule, rule.program.execute(scope, &budget));
                        if let Some(inputs) = inputs {
                            memo.put(
                                *index,
                                &option.name,
                                Remembered {
                                    option: option.value.clone(),
                                    inputs: inputs.iter().map(|v| v.cloned()).collect(),
                                    outcome: outcome.clone(),
                                },
                            );
                        }
                        outcome
                    }
                };
                match outcome {
                    Outcome::Fired => self.apply(rule, Some(&option.name), &mut verdict),
                    Outcome::Quiet => {}
                    Outcome::Failed(error) => {
                        self.fail_closed(rule, Some(&option.name), error, &mut verdict)
                    }
                }
            }
        }
        verdict
    }

    /// A rule that could not be evaluated (a string where it compares a
    /// number, a missing field, a value that is not a boolean) is taken at
    /// its strictest: its review and forbidding effects apply, as if it had
    /// fired, and the error is recorded. A broken input never lets a
    /// decision skip the people or the limits a rule puts on it.
    fn fail_closed(&self, rule: &Rule, option: Option<&str>, error: String, verdict: &mut Verdict) {
        let effects = restrict(rule, option, verdict);
        if !effects.is_empty() {
            verdict.hits.push(PolicyHit {
                rule: rule.spec.id.clone(),
                reason: format!(
                    "{} (applied because the rule failed: {error})",
                    rule.spec.reason
                ),
                effects,
                option: option.map(String::from),
            });
        }
        verdict.errors.push(error);
    }

    fn apply(&self, rule: &Rule, option: Option<&str>, verdict: &mut Verdict) {
        let spec = &rule.spec;
        let mut effects = restrict(rule, option, verdict);
        if let Some(force) = &spec.force
            && verdict.forced.is_none()
        {
            verdict.forced = Some(force.clone());
            effects.push(format!("force({force})"));
        }
        if let Some(p) = spec.priority {
            verdict.priority = verdict.priority.max(p);
            effects.push(format!("priority({})", p.as_str()));
        }
        if let Some(d) = rule.deadline {
            verdict.deadline = Some(verdict.deadline.map_or(d, |old| old.min(d)));
            effects.push(format!("deadline({}m)", d.num_minutes()));
        }
        verdict.hits.push(PolicyHit {
            rule: spec.id.clone(),
            reason: spec.reason.clone(),
            effects,
            option: option.map(String::from),
        });
    }
}

/// A rule's restricting effects on the verdict (review, its role, the
/// options it forbids), as the audit names them.
fn restrict(rule: &Rule, option: Option<&str>, verdict: &mut Verdict) -> Vec<String> {
    let spec = &rule.spec;
    let mut effects = Vec::new();
    if spec.require_review {
        verdict.require_review = true;
        verdict.review_role = verdict.review_role.max(Some(rule.review_role));
        effects.push(format!("require_review({})", rule.review_role.as_str()));
    }
    let forbidden = spec
        .forbid
        .iter()
        .map(String::as_str)
        .chain(option.filter(|_| spec.forbid_option));
    for name in forbidden {
        verdict
            .forbidden
            .entry(name.to_string())
            .or_default()
            .push(spec.id.clone());
        effects.push(format!("forbid({name})"));
    }
    effects
}

/// What a rule's evaluation came to; anything but a boolean is a failure.
fn outcome(rule: &Rule, result: Result<CelValue, cel::ExecutionError>) -> Outcome {
    match result {
        Ok(CelValue::Bool(true)) => Outcome::Fired,
        Ok(CelValue::Bool(false)) => Outcome::Quiet,
        Ok(other) => Outcome::Failed(format!(
            "{}: `when` gave {other:?}, not a boolean",
            rule.spec.id
        )),
        Err(e) => Outcome::Failed(format!("{}: {e}", rule.spec.id)),
    }
}

/// Why a text is not a duration.
#[derive(Debug, Error, PartialEq)]
pub enum DurationError {
    #[error("`{text}` is not a duration like 30m or 2h: {why}")]
    NotADuration { text: String, why: String },
    #[error("`{text}` is too long")]
    TooLong { text: String },
}

/// Parses "30m", "2h", "1h 30m" into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let std = humantime::parse_duration(text).map_err(|e| DurationError::NotADuration {
        text: text.to_string(),
        why: e.to_string(),
    })?;
    Duration::from_std(std).map_err(|_| DurationError::TooLong {
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests;
