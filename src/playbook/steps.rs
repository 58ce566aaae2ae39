//! Step templates: the building blocks flows are assembled from, as data.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::CatalogueError;

/// One kind of step a process can perform.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepTemplate {
    pub process: String,
    pub skill: String,
    /// Only people of this team take it (else anyone with the skill).
    #[serde(default)]
    pub team: Option<String>,
    /// Typical minutes for a person.
    pub minutes: u32,
    /// Executor that can do this step without a person.
    #[serde(default)]
    pub automation: Option<String>,
    /// The service the automation depends on.
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default = "default_auto_seconds")]
    pub auto_seconds: u32,
    /// The step that undoes this one when its flow fails.
    #[serde(default)]
    pub compensate: Option<String>,
    /// The escalation policy (`[[escalation]]` in organization.toml) paged
    /// when the step starts; the page ends with the step's flow.
    #[serde(default)]
    pub page: Option<String>,
    /// What its automation's webhook body carries besides ids: field name
    /// → a path into the signal or the decision's context
    /// (`signal.data.job`, `context.customer.tier`).
    #[serde(default)]
    pub carries: BTreeMap<String, String>,
}

fn default_auto_seconds() -> u32 {
    60
}

/// All step templates by name (`process.step`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StepCatalogue {
    #[serde(rename = "step")]
    pub steps: BTreeMap<String, StepTemplate>,
}

pub const DEFAULT_STEPS: &str = include_str!("../../playbooks/steps.toml");

impl StepCatalogue {
    pub fn parse(text: &str, origin: &str) -> Result<StepCatalogue, CatalogueError> {
        let catalogue: StepCatalogue = toml::from_str(text).map_err(|e| CatalogueError::Parse {
            file: origin.to_string(),
            error: e.to_string(),
        })?;
        for (name, step) in &catalogue.steps {
            if let Some(undo) = &step.compensate
                && !catalogue.steps.contains_key(undo)
            {
                return Err(CatalogueError::Reference {
                    file: origin.to_string(),
                    item: name.clone(),
                    missing: undo.clone(),
                });
            }
        }
        Ok(catalogue)
    }

    pub fn get(&self, name: &str) -> Option<&StepTemplate> {
        self.steps.get(name)
    }
}
