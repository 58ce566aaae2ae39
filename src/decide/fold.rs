//! A signal type's declared context updates (`playbook::fold`), evaluated
//! over one signal: which entity gets which fields. Pure; the engine hands
//! the result to `Context::upsert`.

use serde_json::{Map, Value};

use super::celval::Json;
use crate::cel_bounded::Bounded;
use crate::context::ContextError;
use crate::playbook::fold::CompiledUpdate;
use crate::signal::Signal;

/// One entity to create or update.
#[derive(Debug, Clone, PartialEq)]
pub struct Upsert {
    pub kind: String,
    pub id: String,
    pub fields: Map<String, Value>,
}

/// What the updates of `signal`'s type say to change. An expression that
/// fails, or gives an id that is not a non-empty string, is an error naming
/// the update and field.
pub fn evaluate(updates: &[CompiledUpdate], signal: &Signal) -> Result<Vec<Upsert>, ContextError> {
    let mut out = Vec::with_capacity(updates.len());
    static ENV: std::sync::OnceLock<std::sync::Arc<cel::Env>> = std::sync::OnceLock::new();
    let env = ENV.get_or_init(|| std::sync::Arc::new(cel::Env::stdlib()));
    for (n, update) in updates.iter().enumerate() {
        let mut scope = cel::Context::with_env(std::sync::Arc::clone(env));
        scope.add_variable_as_val("signal", Box::new(Json::signal(signal, &signal.subject)));
        let budget = crate::cel_bounded::Budget::install(&mut scope);
        let field = |what: &str| format!("update {} ({}).{what}", n + 1, update.entity);
        let run = |what: &str, program: &Bounded| -> Result<Value, ContextError> {
            let value = program
                .execute(&scope, &budget)
                .map_err(|e| ContextError::new(&field(what), e.to_string()))?;
            value
                .json()
                .map_err(|e| ContextError::new(&field(what), e.to_string()))
        };
        if let Some(when) = &update.when {
            match run("when", when)? {
                Value::Bool(true) => {}
                Value::Bool(false) => continue,
                other => {
                    return Err(ContextError::new(
                        &field("when"),
                        format!("gives {other}, not a boolean"),
                    ));
                }
            }
        }
        let id = match run("id", &update.id)? {
            Value::String(s) if !s.is_empty() && !s.contains('/') => s,
            Value::Number(n) => n.to_string(),
            other => {
                return Err(ContextError::new(
                    &field("id"),
                    format!("gives {other}, not an id (a non-empty string without '/')"),
                ));
            }
        };
        let mut fields = Map::new();
        for (name, program) in &update.set {
            fields.insert(name.clone(), run(&format!("set.{name}"), program)?);
        }
        out.push(Upsert {
            kind: update.entity.clone(),
            id,
            fields,
        });
    }
    Ok(out)
}
