//! The `data` fields a signal type declares: their JSON types and which
//! are required (`fields = { ticket = "string", summary = "string?" }`).
//!
//! Declared fields do two things. A signal of the type that lacks a
//! required field, or carries one of the wrong type, is refused by name
//! (`data.ticket`) instead of failing somewhere inside a rule or an update.
//! And `validate` type-checks every CEL expression that reads
//! `signal.data` of that type against them (`cel_check`): a rule
//! reading a field the type does not declare is an error, not a rule that
//! never fires. A type that declares nothing keeps `data` open.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::signal::SignalError;

/// The JSON type of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Int,
    Number,
    Bool,
    List,
    Object,
    Any,
}

impl FieldType {
    pub const NAMES: &'static str = "string, int, number, bool, list, object, any";

    fn parse(text: &str) -> Option<FieldType> {
        Some(match text {
            "string" => FieldType::String,
            "int" => FieldType::Int,
            "number" => FieldType::Number,
            "bool" => FieldType::Bool,
            "list" => FieldType::List,
            "object" => FieldType::Object,
            "any" => FieldType::Any,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::List => "list",
            FieldType::Object => "object",
            FieldType::Any => "any",
        }
    }

    fn holds(self, value: &Value) -> bool {
        match self {
            FieldType::String => value.is_string(),
            FieldType::Int => value.is_i64() || value.is_u64(),
            FieldType::Number => value.is_number(),
            FieldType::Bool => value.is_boolean(),
            FieldType::List => value.is_array(),
            FieldType::Object => value.is_object(),
            FieldType::Any => true,
        }
    }
}

/// One declared field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub kind: FieldType,
    pub required: bool,
}

/// The fields one signal type declares, by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fields(pub BTreeMap<String, Field>);

/// A declared field whose type is not one there is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "field `{name}`: type {text:?} is not one of {} (a trailing ? makes it optional)",
    FieldType::NAMES
)]
pub struct FieldTypeError {
    pub name: String,
    pub text: String,
}

impl Fields {
    /// Reads the declarations (`"string"`, `"int?"`…); an error names the
    /// field and says what types there are.
    pub fn parse(declared: &BTreeMap<String, String>) -> Result<Fields, FieldTypeError> {
        let mut out = BTreeMap::new();
        for (name, text) in declared {
            let (base, required) = match text.strip_suffix('?') {
                Some(base) => (base, false),
                None => (text.as_str(), true),
            };
            let kind = FieldType::parse(base.trim()).ok_or_else(|| FieldTypeError {
                name: name.clone(),
                text: text.clone(),
            })?;
            out.insert(name.clone(), Field { kind, required });
        }
        Ok(Fields(out))
    }

    /// Refuses `data` that lacks a required field or holds one of the
    /// wrong type (null counts as absent), naming it.
    pub fn check(&self, data: &Value) -> Result<(), SignalError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let empty = serde_json::Map::new();
        let object = match data {
            Value::Object(map) => map,
            Value::Null => &empty,
            other => {
                return Err(SignalError::wrong_type(
                    "data",
                    "an object (this type declares fields)",
                    other,
                ));
            }
        };
        for (name, field) in &self.0 {
            match object.get(name) {
                None | Some(Value::Null) if field.required => {
                    return Err(SignalError::missing(
                        format!("data.{name}"),
                        "a value: this signal type requires it",
                    ));
                }
                Some(value) if !value.is_null() && !field.kind.holds(value) => {
                    return Err(SignalError::Invalid {
                        field: format!("data.{name}").into(),
                        reason: format!(
                            "expected {}, found {}",
                            field.kind.as_str(),
                            crate::signal::json_kind(value)
                        ),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Fields {
        let declared = [("ticket", "string"), ("summary", "string?"), ("n", "int?")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Fields::parse(&declared).unwrap()
    }

    #[test]
    fn a_missing_or_mistyped_field_is_named() {
        let e = fields().check(&Value::Null).unwrap_err();
        assert!(e.to_string().contains("`data.ticket`"), "{e}");
        let e = fields()
            .check(&json!({"ticket": "T1", "n": "3"}))
            .unwrap_err();
        assert!(e.to_string().contains("`data.n`"), "{e}");
        assert!(fields().check(&json!({"ticket": "T1", "extra": 1})).is_ok());
        assert!(Fields::default().check(&json!(3)).is_ok());
    }

    #[test]
    fn an_unknown_type_is_named() {
        let declared = [("a".to_string(), "strng".to_string())].into();
        let e = Fields::parse(&declared).unwrap_err().to_string();
        assert!(e.contains("field `a`") && e.contains("strng"), "{e}");
    }
}
