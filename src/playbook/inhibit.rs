//! Inhibition rules (`[[inhibit]]` in playbook.toml), as Alertmanager's
//! `inhibit_rules`: while an alert matching `source` fires, a signal
//! matching `target` whose `equal` labels carry the same values as that
//! alert's is held (a datacenter down holds the warnings of its
//! services). A signal that matches the source too is never held by it.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::signal::labels::{Matcher, parse_matcher};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Matchers as written: `alertname="DatacenterDown"`, `severity=~"warning|info"`.
    pub source: Vec<String>,
    pub target: Vec<String>,
    /// Labels whose values must be equal in the source and the target.
    #[serde(default)]
    pub equal: Vec<String>,
    #[serde(skip)]
    source_matchers: Vec<Matcher>,
    #[serde(skip)]
    target_matchers: Vec<Matcher>,
}

impl InhibitRule {
    /// Reads its matchers; why it cannot be used.
    pub fn compile(&mut self) -> Result<(), String> {
        let read = |written: &[String], side: &str| -> Result<Vec<Matcher>, String> {
            if written.is_empty() {
                return Err(format!(
                    "{side} names no matcher: it would match everything"
                ));
            }
            written
                .iter()
                .map(|w| {
                    let m = parse_matcher(w).ok_or_else(|| {
                        format!("{side} {w:?} is not a matcher like name=\"value\"")
                    })?;
                    m.check()?;
                    Ok(m)
                })
                .collect()
        };
        self.source_matchers = read(&self.source, "source")?;
        self.target_matchers = read(&self.target, "target")?;
        Ok(())
    }

    /// Whether a signal of these labels can inhibit others by this rule.
    pub fn is_source(&self, labels: &BTreeMap<String, String>) -> bool {
        self.source_matchers.iter().all(|m| m.matches(labels))
    }

    /// Whether a signal of these labels is what this rule holds back (and
    /// not a source of it as well).
    pub fn is_target(&self, labels: &BTreeMap<String, String>) -> bool {
        self.target_matchers.iter().all(|m| m.matches(labels)) && !self.is_source(labels)
    }

    /// The values of its `equal` labels in `labels`.
    pub fn equal_values(&self, labels: &BTreeMap<String, String>) -> Vec<String> {
        self.equal
            .iter()
            .map(|l| labels.get(l).cloned().unwrap_or_default())
            .collect()
    }

    /// As a decision's reason says it.
    pub fn text(&self) -> String {
        format!(
            "source {} → target {}{}",
            self.source.join(" "),
            self.target.join(" "),
            match self.equal.is_empty() {
                true => String::new(),
                false => format!(", equal {}", self.equal.join(", ")),
            }
        )
    }
}
