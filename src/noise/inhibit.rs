//! Which alerts inhibit others now: for each rule (`playbook::inhibit`),
//! the firing source alerts by the values of the rule's `equal` labels.
//! An alert starts inhibiting when it fires and stops when it resolves; the
//! book is journaled whole when it changes, and read back at a restart.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::playbook::inhibit::InhibitRule;

/// The journal meta key holding the book.
pub const INHIBITORS_KEY: &str = "inhibitors";

/// What holds a target back: the rule, the equal values, a source alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Inhibited {
    pub rule: usize,
    pub values: Vec<String>,
    pub by: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "Stored", from = "Stored")]
pub struct InhibitBook {
    /// Rule index → equal values → fingerprints of firing source alerts.
    active: BTreeMap<usize, BTreeMap<Vec<String>, BTreeSet<String>>>,
    changed: bool,
}

/// The book as JSON holds it (a map keyed by a list is not JSON): each
/// rule, equal values and firing sources.
type Stored = Vec<(usize, Vec<String>, BTreeSet<String>)>;

impl From<InhibitBook> for Stored {
    fn from(book: InhibitBook) -> Stored {
        book.active
            .into_iter()
            .flat_map(|(rule, by)| by.into_iter().map(move |(v, f)| (rule, v, f)))
            .collect()
    }
}

impl From<Stored> for InhibitBook {
    fn from(stored: Stored) -> InhibitBook {
        let mut book = InhibitBook::default();
        for (rule, values, firing) in stored {
            book.active.entry(rule).or_default().insert(values, firing);
        }
        book
    }
}

impl InhibitBook {
    /// An alert of these labels fires: it inhibits by each rule it is a
    /// source of.
    pub fn firing(
        &mut self,
        rules: &[InhibitRule],
        labels: &BTreeMap<String, String>,
        fingerprint: &str,
    ) {
        for (i, rule) in rules.iter().enumerate() {
            if rule.is_source(labels) {
                let firing = self
                    .active
                    .entry(i)
                    .or_default()
                    .entry(rule.equal_values(labels))
                    .or_default();
                self.changed |= firing.insert(fingerprint.to_string());
            }
        }
    }

    /// An alert resolved: it inhibits no more.
    pub fn resolved(&mut self, fingerprint: &str) {
        for by_values in self.active.values_mut() {
            for firing in by_values.values_mut() {
                self.changed |= firing.remove(fingerprint);
            }
            by_values.retain(|_, f| !f.is_empty());
        }
        self.active.retain(|_, v| !v.is_empty());
    }

    /// What holds back a signal of these labels now, if anything.
    pub fn holding(
        &self,
        rules: &[InhibitRule],
        labels: &BTreeMap<String, String>,
    ) -> Option<Inhibited> {
        for (&i, by_values) in &self.active {
            let Some(rule) = rules.get(i) else { continue };
            if !rule.is_target(labels) {
                continue;
            }
            let values = rule.equal_values(labels);
            if let Some(by) = by_values.get(&values).and_then(|f| f.iter().next()) {
                return Some(Inhibited {
                    rule: i,
                    values,
                    by: by.clone(),
                });
            }
        }
        None
    }

    /// Whether anything inhibits now.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The book as JSON if it changed since the last call.
    pub fn take_changed(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        match serde_json::to_string(self) {
            Ok(json) => Some(json),
            Err(e) => {
                tracing::error!(error = %e, "the inhibitors could not be kept");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> InhibitRule {
        let mut r: InhibitRule = toml::from_str(
            "source = ['alertname=\"DatacenterDown\"']\ntarget = ['severity=\"warning\"']\nequal = ['dc']",
        )
        .unwrap();
        r.compile().unwrap();
        r
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A datacenter down holds its own warnings, not another's, and not
    /// once it has resolved.
    #[test]
    fn a_firing_source_holds_targets_with_equal_labels() {
        let rules = [rule()];
        let mut book = InhibitBook::default();
        let down = labels(&[("alertname", "DatacenterDown"), ("dc", "fra")]);
        book.firing(&rules, &down, "dc-fra");
        assert!(book.take_changed().is_some());
        let fra = labels(&[("severity", "warning"), ("dc", "fra")]);
        let ams = labels(&[("severity", "warning"), ("dc", "ams")]);
        let critical = labels(&[("severity", "critical"), ("dc", "fra")]);
        assert_eq!(
            book.holding(&rules, &fra).map(|h| h.by),
            Some("dc-fra".into())
        );
        assert!(book.holding(&rules, &ams).is_none());
        assert!(book.holding(&rules, &critical).is_none());
        let both = labels(&[
            ("alertname", "DatacenterDown"),
            ("severity", "warning"),
            ("dc", "fra"),
        ]);
        assert!(
            book.holding(&rules, &both).is_none(),
            "a source is never its own target"
        );
        let json = serde_json::to_string(&book).unwrap();
        let back: InhibitBook = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.holding(&rules, &fra).map(|h| h.by),
            Some("dc-fra".into())
        );
        book.resolved("dc-fra");
        assert!(book.holding(&rules, &fra).is_none());
        assert!(book.is_empty());
        let mut bad: InhibitRule = toml::from_str("source = []\ntarget = ['a=\"b\"']").unwrap();
        assert!(bad.compile().is_err());
    }
}
