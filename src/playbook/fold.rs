//! How a signal type updates the context: a built-in fold, named, or
//! `update` tables that say which entity, which id and which fields, each
//! a CEL expression over the signal. Compiled here; evaluated by
//! `decide::fold`, applied by `Context::upsert`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::SignalPlay;
use crate::CatalogueError;

/// The folds written in Rust, by name (`Context::apply`).
pub const BUILT_IN: &[&str] = &[
    "order.placed",
    "order.ended",
    "supplier.delayed",
    "health.changed",
    "change.recorded",
    "escalation",
    "entity.upserted",
];

/// One declared update: `entity` is a kind (`service`, `team`, `host`...),
/// `id` a CEL expression giving the entity's id, `set` field → CEL.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Update {
    pub entity: String,
    pub id: String,
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Only when this holds (CEL, default true).
    #[serde(default)]
    pub when: Option<String>,
}

/// One update, compiled.
#[derive(Debug)]
pub struct CompiledUpdate {
    pub entity: String,
    pub id: crate::cel_bounded::Bounded,
    pub set: Vec<(String, crate::cel_bounded::Bounded)>,
    pub when: Option<crate::cel_bounded::Bounded>,
}

/// Every type's updates, compiled once when the playbook is read.
#[derive(Debug, Clone, Default)]
pub struct Compiled(Arc<BTreeMap<String, Vec<CompiledUpdate>>>);

/// Derived from the `update` tables, which the playbook compares.
impl PartialEq for Compiled {
    fn eq(&self, _: &Compiled) -> bool {
        true
    }
}

impl Compiled {
    /// Compiles every type's updates, each within the CEL bounds and
    /// type-checked against `signal` with the data the type declares
    /// (`fields`); `when` must give a boolean.
    pub fn of(
        signals: &BTreeMap<String, SignalPlay>,
        fields: &BTreeMap<String, crate::signal::fields::Fields>,
        origin: &str,
    ) -> Result<Compiled, CatalogueError> {
        let mut out = BTreeMap::new();
        for (kind, play) in signals {
            let mut compiled = Vec::new();
            for (n, update) in play.update.iter().enumerate() {
                let scope = crate::cel_check::Scope {
                    variables: vec![("signal", crate::cel_check::signal_ty(fields.get(kind)))],
                };
                let program = |what: &str, text: &str| {
                    let invalid = |reason: String| CatalogueError::Invalid {
                        file: origin.to_string(),
                        item: format!("{kind} update {} {what}", n + 1),
                        reason,
                    };
                    let program = crate::cel_bounded::Bounded::compile(text)
                        .map_err(|e| invalid(format!("CEL {e}")))?;
                    let problems =
                        crate::cel_check::check(program.expression(), &scope, what == "when");
                    match problems.first() {
                        Some(p) => Err(invalid(format!("CEL does not check: {p}"))),
                        None => Ok(program),
                    }
                };
                if update.entity.is_empty() || update.entity.contains('/') {
                    return Err(CatalogueError::Invalid {
                        file: origin.to_string(),
                        item: format!("{kind} update {}", n + 1),
                        reason: format!("entity {:?} must be a kind without '/'", update.entity),
                    });
                }
                let mut set = Vec::new();
                for (field, text) in &update.set {
                    set.push((field.clone(), program(&format!("set.{field}"), text)?));
                }
                compiled.push(CompiledUpdate {
                    entity: update.entity.clone(),
                    id: program("id", &update.id)?,
                    set,
                    when: update
                        .when
                        .as_deref()
                        .map(|w| program("when", w))
                        .transpose()?,
                });
            }
            if !compiled.is_empty() {
                out.insert(kind.clone(), compiled);
            }
        }
        Ok(Compiled(Arc::new(out)))
    }

    /// The updates declared for a signal type.
    pub fn for_kind(&self, kind: &str) -> &[CompiledUpdate] {
        self.0.get(kind).map_or(&[], Vec::as_slice)
    }
}
