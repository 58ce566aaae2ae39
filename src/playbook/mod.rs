//! The playbook: which options exist for each signal type (this file) and
//! the step templates they are assembled from (`steps`), as data. Below
//! both the decision layer, which chooses among the options, and the flow
//! layer, which runs their steps.

pub mod fold;
pub mod group;
pub mod hold;
pub mod inhibit;
pub mod maintenance;
pub mod steps;

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::CatalogueError;
use steps::StepCatalogue;

/// What the engine may do about one signal type.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignalPlay {
    /// Decision class: picks the confidence threshold and groups metrics.
    pub class: String,
    pub options: Vec<String>,
    /// What the rules alone would choose.
    pub default: String,
    /// What an unanswered review item takes at its final deadline.
    pub safe_default: String,
    pub sla_minutes: u32,
    pub review_minutes: u32,
    /// A built-in fold (`fold::BUILT_IN`) that updates the context.
    #[serde(default)]
    pub fold: Option<String>,
    /// Context updates declared as data, in CEL over the signal.
    #[serde(default)]
    pub update: Vec<fold::Update>,
    /// The `data` fields signals of this type carry, by JSON type (`"int"`,
    /// `"string?"` for an optional one); none: `data` is open.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// How signals of this type group into incidents; none: each is its
    /// own.
    #[serde(default)]
    pub group: Option<group::Grouping>,
    /// Hold-offs of alerts of this type: transient (wait before deciding)
    /// and flapping (hold while it flaps).
    #[serde(default)]
    pub hold: Option<hold::HoldOff>,
    /// Whether an item of this type that resolved by itself at the source
    /// (its alert resolved while it waited for a person) teaches the model
    /// that its proposal was wrong. By default it does not: an alert that
    /// went away says nothing of whether paging for it was right.
    #[serde(default)]
    pub resolution_teaches: bool,
    /// What a good outcome asks besides being done within the SLA: that
    /// the alert does not fire again within this span of its resolution
    /// (`reopen = "24h"`). A flow whose alert does is `reopened`, a bad
    /// outcome, and a decision still awaiting its label learns it.
    #[serde(default, deserialize_with = "hold::some_duration")]
    pub reopen: Option<chrono::Duration>,
    /// The `data` field holding the time the work is promised by (RFC
    /// 3339, e.g. an order's delivery date): where a signal carries it, its
    /// flow's deadline (what within SLA is judged against) is that time
    /// instead of `sla_minutes` from now. A policy's `deadline` still wins.
    #[serde(default)]
    pub due: Option<String>,
    /// The types whose flows a signal of this type ends, for the same
    /// subject (`ends = ["order.placed"]` on `order.delivered`): such a
    /// flow is judged when that signal comes (within SLA if by its
    /// deadline), and `late` if none has come by then.
    #[serde(default)]
    pub ends: Vec<String>,
}

/// One option: the steps it assembles, or a fan-out.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlayOption {
    pub label: String,
    #[serde(default)]
    pub steps: Vec<String>,
    #[serde(default)]
    pub fanout: Option<String>,
}

/// A fan-out across the open orders of a supplier: a per-order choice, the
/// steps that follow it, and who gets told.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fanout {
    pub class: String,
    pub options: Vec<String>,
    pub default: String,
    #[serde(default)]
    pub then: Vec<String>,
    #[serde(default)]
    pub notify: Option<String>,
    #[serde(default)]
    pub notify_tiers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    #[serde(rename = "signal")]
    pub signals: BTreeMap<String, SignalPlay>,
    pub unrecognised: SignalPlay,
    #[serde(rename = "option")]
    pub options: BTreeMap<String, PlayOption>,
    #[serde(default, rename = "fanout")]
    pub fanouts: BTreeMap<String, Fanout>,
    /// Inhibition rules, in order.
    #[serde(default, rename = "inhibit")]
    pub inhibits: Vec<inhibit::InhibitRule>,
    /// Maintenance windows.
    #[serde(default, rename = "maintenance")]
    pub maintenance: Vec<maintenance::Window>,
    /// Each type's `update` tables, compiled.
    #[serde(skip)]
    pub updates: fold::Compiled,
    /// Each type's declared `fields`, read.
    #[serde(skip)]
    pub data_fields: BTreeMap<String, crate::signal::fields::Fields>,
}

pub const DEFAULT_PLAYBOOK: &str = include_str!("../../playbooks/default.toml");

impl Playbook {
    /// Refuses a signal whose `data` lacks a field its type requires, or
    /// holds one of the wrong type, naming it.
    pub fn check_data(
        &self,
        kind: &str,
        data: &serde_json::Value,
    ) -> Result<(), crate::signal::SignalError> {
        match self.data_fields.get(kind) {
            Some(fields) => fields.check(data),
            None => Ok(()),
        }
    }

    /// Parses a playbook and checks every name it uses exists.
    pub fn parse(
        text: &str,
        origin: &str,
        steps: &StepCatalogue,
    ) -> Result<Playbook, CatalogueError> {
        let playbook = Playbook::parse_alone(text, origin)?;
        playbook.check_names(origin, steps)?;
        Ok(playbook)
    }

    /// Parses a playbook, its updates and field declarations, without
    /// checking the names it uses against steps (`validate` checks the
    /// policies against it even when the steps file has problems).
    pub fn parse_alone(text: &str, origin: &str) -> Result<Playbook, CatalogueError> {
        let mut playbook: Playbook = toml::from_str(text).map_err(|e| CatalogueError::Parse {
            file: origin.to_string(),
            error: e.to_string(),
        })?;
        for (kind, play) in &playbook.signals {
            let declared = crate::signal::fields::Fields::parse(&play.fields).map_err(|e| {
                CatalogueError::Invalid {
                    file: origin.to_string(),
                    item: kind.clone(),
                    reason: e.to_string(),
                }
            })?;
            if !declared.0.is_empty() {
                playbook.data_fields.insert(kind.clone(), declared);
            }
            let checked = play.group.as_ref().map(group::Grouping::check);
            let held = play.hold.as_ref().map(hold::HoldOff::check);
            if let Some(Err(reason)) = checked.into_iter().chain(held).find(Result::is_err) {
                return Err(CatalogueError::Invalid {
                    file: origin.to_string(),
                    item: kind.clone(),
                    reason,
                });
            }
        }
        for (n, rule) in playbook.inhibits.iter_mut().enumerate() {
            rule.compile().map_err(|reason| CatalogueError::Invalid {
                file: origin.to_string(),
                item: format!("inhibit {}", n + 1),
                reason,
            })?;
        }
        for w in playbook.maintenance.iter_mut() {
            w.compile().map_err(|reason| CatalogueError::Invalid {
                file: origin.to_string(),
                item: format!("maintenance {}", w.name),
                reason,
            })?;
        }
        playbook.updates = fold::Compiled::of(&playbook.signals, &playbook.data_fields, origin)?;
        Ok(playbook)
    }

    /// Checks that every option, step, fan-out and fold the playbook names
    /// exists.
    fn check_names(&self, origin: &str, steps: &StepCatalogue) -> Result<(), CatalogueError> {
        let playbook = self;
        let missing = |item: &str, name: &str| CatalogueError::Reference {
            file: origin.to_string(),
            item: item.to_string(),
            missing: name.to_string(),
        };
        let unrecognised = "unrecognised".to_string();
        let plays = playbook
            .signals
            .iter()
            .chain(std::iter::once((&unrecognised, &playbook.unrecognised)));
        for (kind, play) in plays {
            if let Some(f) = &play.fold
                && !fold::BUILT_IN.contains(&f.as_str())
            {
                return Err(CatalogueError::Invalid {
                    file: origin.to_string(),
                    item: kind.clone(),
                    reason: format!(
                        "fold `{f}` is not one of {}; declare `update` tables instead",
                        fold::BUILT_IN.join(", ")
                    ),
                });
            }
            for name in play
                .options
                .iter()
                .chain([&play.default, &play.safe_default])
            {
                if !playbook.options.contains_key(name) {
                    return Err(missing(kind, name));
                }
            }
            if !play.options.contains(&play.default) || !play.options.contains(&play.safe_default) {
                return Err(CatalogueError::Invalid {
                    file: origin.to_string(),
                    item: kind.clone(),
                    reason: "default and safe_default must be among its options".into(),
                });
            }
            if let Some(ended) = play
                .ends
                .iter()
                .find(|t| !playbook.signals.contains_key(*t))
            {
                return Err(missing(&format!("{kind} ends"), ended));
            }
            if let Some(due) = &play.due
                && !play.fields.is_empty()
                && !play.fields.contains_key(due)
            {
                return Err(CatalogueError::Invalid {
                    file: origin.to_string(),
                    item: kind.clone(),
                    reason: format!("due names `{due}`, which is not among its fields"),
                });
            }
        }
        for (name, option) in &playbook.options {
            for step in &option.steps {
                if steps.get(step).is_none() {
                    return Err(missing(name, step));
                }
            }
            if let Some(f) = &option.fanout
                && !playbook.fanouts.contains_key(f)
            {
                return Err(missing(name, f));
            }
        }
        for (name, fanout) in &playbook.fanouts {
            for option in fanout.options.iter().chain([&fanout.default]) {
                if !playbook.options.contains_key(option) {
                    return Err(missing(name, option));
                }
            }
            for step in fanout.then.iter().chain(fanout.notify.iter()) {
                if steps.get(step).is_none() {
                    return Err(missing(name, step));
                }
            }
        }
        Ok(())
    }

    /// The decision classes its signal types and fan-outs are in (a class
    /// once for each that names it).
    pub fn classes(&self) -> impl Iterator<Item = &str> {
        let plays = self.signals.values().map(|play| play.class.as_str());
        plays.chain(self.fanouts.values().map(|f| f.class.as_str()))
    }

    /// Whether a signal of another type ends flows of this one (`ends`).
    pub fn is_ended(&self, kind: &str) -> bool {
        self.signals
            .values()
            .any(|play| play.ends.iter().any(|t| t == kind))
    }

    /// The play for a signal type; `None` when the type is not catalogued.
    pub fn play(&self, kind: &str) -> Option<&SignalPlay> {
        self.signals.get(kind)
    }

    /// Every step an option may run, fan-outs included.
    pub fn option_steps(&self, option: &str) -> Vec<&str> {
        let Some(play) = self.options.get(option) else {
            return Vec::new();
        };
        let mut steps: Vec<&str> = play.steps.iter().map(String::as_str).collect();
        if let Some(fanout) = play.fanout.as_ref().and_then(|f| self.fanouts.get(f)) {
            for choice in &fanout.options {
                steps.extend(self.option_steps(choice));
            }
            steps.extend(fanout.then.iter().map(String::as_str));
            steps.extend(fanout.notify.iter().map(String::as_str));
        }
        steps
    }

    /// The services an option's automations depend on.
    pub fn option_services(&self, option: &str, catalogue: &StepCatalogue) -> BTreeSet<String> {
        self.option_steps(option)
            .into_iter()
            .filter_map(|s| catalogue.get(s)?.service.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::steps::DEFAULT_STEPS;

    #[test]
    fn the_shipped_playbook_is_consistent() {
        let steps = StepCatalogue::parse(DEFAULT_STEPS, "steps.toml").unwrap();
        let playbook = Playbook::parse(DEFAULT_PLAYBOOK, "default.toml", &steps).unwrap();
        assert!(playbook.play("supplier.delayed").is_some());
        let services = playbook.option_services("auto_approve", &steps);
        assert!(services.contains("payments"));
    }

    #[test]
    fn a_missing_option_is_named() {
        let steps = StepCatalogue::parse(DEFAULT_STEPS, "steps.toml").unwrap();
        let text = DEFAULT_PLAYBOOK.replace(
            "options = [\"record\"]\ndefault = \"record\"\nsafe_default = \"record\"\nsla_minutes = 60\nreview_minutes = 60\n\n[signal.\"outcome.recorded\"]",
            "options = [\"nope\"]\ndefault = \"record\"\nsafe_default = \"record\"\nsla_minutes = 60\nreview_minutes = 60\n\n[signal.\"outcome.recorded\"]",
        );
        let err = Playbook::parse(&text, "p.toml", &steps).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
