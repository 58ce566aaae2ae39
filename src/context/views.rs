//! The parts of what policies read that many decisions share: every
//! service's health (`context.services`) and the changes recorded in the
//! window before a signal (`context.changes`). Each is one value with a
//! version, the hash of its JSON text, made when it changes rather than for
//! every decision: a decision holds it by reference, and the journal keeps
//! it once and has each decision name it by version.

use std::sync::{Arc, LazyLock};

use serde_json::Value;

/// A value many decisions share, with its JSON text and its version.
///
/// Guarantee: `version` is `version_of(text)` and `text` is `value`'s JSON
/// text, so a view read back from the journal is the one the decision
/// named, or is refused (`SharedView::read`).
#[derive(Debug, PartialEq)]
pub struct SharedView {
    version: String,
    text: String,
    value: Value,
}

/// A view's text that does not hash to the version it is kept under.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("its text is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("its text hashes to {found}, not to its version")]
    Altered { found: String },
}

/// The version of a view's JSON text: the first 8 bytes of its SHA-256, in
/// hex.
pub fn version_of(text: &str) -> String {
    crate::hash::hex_digest(&[text.as_bytes()], 8)
}

impl SharedView {
    /// The view of `value`, versioned.
    pub fn new(value: Value) -> SharedView {
        let text = value.to_string();
        SharedView {
            version: version_of(&text),
            text,
            value,
        }
    }

    /// A view as the journal keeps it: its version and its text, checked
    /// against each other.
    pub fn read(version: &str, text: String) -> Result<SharedView, ViewError> {
        let found = version_of(&text);
        if found != version {
            return Err(ViewError::Altered { found });
        }
        let value = serde_json::from_str(&text)?;
        Ok(SharedView {
            version: found,
            text,
            value,
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Its JSON text, as the journal keeps it.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// No service, or no change: what a decision need not name (a reader
    /// takes a decision naming none as naming the empty one).
    pub fn is_empty(&self) -> bool {
        match &self.value {
            Value::Object(map) => map.is_empty(),
            Value::Array(items) => items.is_empty(),
            _ => false,
        }
    }

    /// The services' view with no service.
    pub fn no_services() -> Arc<SharedView> {
        static EMPTY: LazyLock<Arc<SharedView>> =
            LazyLock::new(|| Arc::new(SharedView::new(Value::Object(serde_json::Map::new()))));
        Arc::clone(&EMPTY)
    }

    /// The empty view with version `version`, if it is one (no view names
    /// an empty one, which is never journaled; a record that does still
    /// reads).
    pub fn empty(version: &str) -> Option<Arc<SharedView>> {
        [SharedView::no_services(), SharedView::no_changes()]
            .into_iter()
            .find(|view| view.version() == version)
    }

    /// The changes' view with no change.
    pub fn no_changes() -> Arc<SharedView> {
        static EMPTY: LazyLock<Arc<SharedView>> =
            LazyLock::new(|| Arc::new(SharedView::new(Value::Array(Vec::new()))));
        Arc::clone(&EMPTY)
    }
}

/// The view the store holds of one shared part, kept until its value
/// changes: decisions taken in between share it (and its version). None
/// until a value is first given.
#[derive(Debug, Default)]
pub(super) struct Kept(Option<Arc<SharedView>>);

impl Kept {
    /// The view of `value`: the one kept if its value is the same, else a
    /// new one (the shared empty one for no value), kept from now on.
    pub(super) fn of(&mut self, value: Value) -> Arc<SharedView> {
        match &self.0 {
            Some(kept) if kept.value == value => Arc::clone(kept),
            _ => {
                let view = match &value {
                    Value::Object(map) if map.is_empty() => SharedView::no_services(),
                    Value::Array(items) if items.is_empty() => SharedView::no_changes(),
                    _ => Arc::new(SharedView::new(value)),
                };
                self.0 = Some(Arc::clone(&view));
                view
            }
        }
    }

    /// The view kept, if a value was given.
    pub(super) fn get(&self) -> Option<&Arc<SharedView>> {
        self.0.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_view_is_versioned_by_its_text_and_read_back_only_unaltered() {
        let view = SharedView::new(json!({"payments": "down", "erp": "up"}));
        assert_eq!(view.text(), r#"{"erp":"up","payments":"down"}"#);
        assert_eq!(view.version().len(), 16);
        let again = SharedView::read(view.version(), view.text().to_string()).unwrap();
        assert_eq!(again, view);
        let altered = SharedView::read(view.version(), r#"{"erp":"up","payments":"up"}"#.into());
        assert!(
            matches!(altered, Err(ViewError::Altered { .. })),
            "{altered:?}"
        );
        assert!(SharedView::no_services().is_empty() && SharedView::no_changes().is_empty());
        assert_ne!(
            SharedView::no_services().version(),
            SharedView::no_changes().version()
        );
    }

    #[test]
    fn a_kept_view_changes_only_with_its_value() {
        let mut kept = Kept::default();
        assert!(kept.get().is_none());
        let first = kept.of(json!([]));
        assert!(Arc::ptr_eq(&first, &SharedView::no_changes()));
        let deploy = kept.of(json!([{"summary": "deploy"}]));
        assert!(Arc::ptr_eq(
            &deploy,
            &kept.of(json!([{"summary": "deploy"}]))
        ));
        assert_ne!(deploy.version(), first.version());
        assert!(kept.get().is_some_and(|k| Arc::ptr_eq(k, &deploy)));
    }
}
