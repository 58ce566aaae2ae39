//! Folding a signal's facts into the store, one kind of signal at a time.
//! A value out of range for what it says is refused by field, and changes
//! nothing.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::{
    CHANGES_KEPT, CHANGES_KEY, Change, Context, Health, Order, OrderState, Service, split_key,
};
use crate::signal::Signal;

/// A signal whose facts cannot be folded into the store: a value out of
/// range for what it says (a date past the calendar's end, say).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ContextError {
    /// Where in the signal, e.g. `data.delay_hours`.
    pub field: String,
    pub reason: String,
}

impl ContextError {
    pub fn new(field: &str, reason: impl Into<String>) -> ContextError {
        ContextError {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// A new entity of a known kind gets what the organization file would
/// give it by default, so that a CRM can create one with a few fields.
fn fill_defaults(kind: &str, mut body: Value) -> Value {
    let defaults = match kind {
        "customer" => serde_json::json!({"name": "", "tier": "bronze"}),
        "service" => serde_json::json!({"health": "up", "latency_ms": 0}),
        "team" => serde_json::json!({"process": "", "skills": [], "capacity": 10, "load": 0,
            "shift": {"start_hour": 0, "end_hour": 24}}),
        "agent" => serde_json::json!({"team": "", "skills": [], "capacity": 3, "load": 0,
            "shift": {"start_hour": 0, "end_hour": 24}}),
        "supplier" => serde_json::json!({"name": "", "reliability": 1.0}),
        _ => Value::Null,
    };
    if let (Value::Object(map), Value::Object(defaults)) = (&mut body, defaults) {
        for (k, v) in defaults {
            map.entry(k).or_insert(v);
        }
    }
    body
}

/// `at` moved by `minutes` (any finite number a JSON document can carry),
/// or why it cannot be.
fn shifted(at: DateTime<Utc>, minutes: f64, field: &str) -> Result<DateTime<Utc>, ContextError> {
    // An f64 beyond i64 saturates on `as`; `try_minutes` then refuses it,
    // as it refuses what would not fit a duration.
    let whole = minutes.round();
    Duration::try_minutes(whole as i64)
        .filter(|_| whole.is_finite() && whole.abs() < 9.0e15)
        .and_then(|d| at.checked_add_signed(d))
        .ok_or_else(|| {
            ContextError::new(
                field,
                format!(
                    "{minutes} minutes from {} is outside the calendar",
                    at.to_rfc3339()
                ),
            )
        })
}

impl Context {
    /// Folds a signal's facts into the store. Returns the entity keys it
    /// touched; a signal whose values cannot be folded changes nothing.
    /// `fold` is the built-in fold the signal's type names in the playbook
    /// (`playbook::fold::BUILT_IN`); none folds nothing.
    pub fn apply(
        &mut self,
        signal: &Signal,
        fold: Option<&str>,
    ) -> Result<Vec<String>, ContextError> {
        let id = split_key(&signal.subject).map(|(_, id)| id.to_string());
        let touched = match fold {
            Some("order.placed") => self.order_placed(signal, id)?,
            Some("order.ended") => self.order_ended(signal, id),
            Some("supplier.delayed") => self.supplier_delayed(signal, id)?,
            Some("health.changed") => self.health_changed(signal, id),
            Some("change.recorded") => self.change_recorded(signal),
            Some("escalation") => self.escalation(signal),
            Some("entity.upserted") => Some(self.entity_upserted(signal)?),
            _ => None,
        };
        Ok(touched.into_iter().collect())
    }

    /// `entity.upserted`: `data.kind`, `data.id` and `data.fields` (an
    /// object), from a CRM or CMDB keeping entities current.
    fn entity_upserted(&mut self, signal: &Signal) -> Result<String, ContextError> {
        let text = |field: &str| {
            signal
                .data_str(field)
                .filter(|s| !s.is_empty() && !s.contains('/'))
                .ok_or_else(|| {
                    ContextError::new(
                        &format!("data.{field}"),
                        "must be a non-empty string without '/'",
                    )
                })
        };
        let (kind, id) = (text("kind")?, text("id")?);
        let fields = match signal.data.get("fields") {
            Some(Value::Object(map)) => map.clone(),
            None => serde_json::Map::new(),
            Some(_) => return Err(ContextError::new("data.fields", "must be an object")),
        };
        self.upsert(kind, id, fields, "data.fields")
    }

    /// Creates or updates one entity with `fields`. A known kind (customer,
    /// service, team, agent, supplier, order) must still read as one after
    /// the change; any other kind is kept as the fields given. `origin`
    /// names where the fields came from, for errors.
    pub fn upsert(
        &mut self,
        kind: &str,
        id: &str,
        fields: serde_json::Map<String, Value>,
        origin: &str,
    ) -> Result<String, ContextError> {
        let key = format!("{kind}/{id}");
        let mut body = match self.entity_json(&key) {
            Some(json) => serde_json::from_str::<Value>(json.as_str()).unwrap_or(Value::Null),
            None => Value::Null,
        };
        if !body.is_object() {
            body = serde_json::json!({ "id": id });
        }
        if let Value::Object(map) = &mut body {
            for (k, v) in fields {
                // The id is the key's; a team's or agent's load is the
                // engine's own count of running steps.
                if k == "id" || (k == "load" && matches!(kind, "team" | "agent")) {
                    continue;
                }
                map.insert(k, v);
            }
            map.insert("id".into(), Value::from(id));
        }
        let known = matches!(
            kind,
            "customer" | "order" | "supplier" | "service" | "team" | "agent"
        );
        if known {
            let filled = fill_defaults(kind, body);
            self.restore(&key, filled).map_err(|e| {
                ContextError::new(origin, format!("{key} would not be a valid {kind}: {e}"))
            })?;
        } else {
            self.records.insert(key.clone(), body);
        }
        self.dirty.insert(key.clone());
        Ok(key)
    }

    /// Marks `key` changed, and says so.
    fn touched(&mut self, key: String) -> Option<String> {
        self.dirty.insert(key.clone());
        Some(key)
    }

    fn order_placed(
        &mut self,
        signal: &Signal,
        id: Option<String>,
    ) -> Result<Option<String>, ContextError> {
        let (Some(id), Some(customer), Some(supplier)) =
            (id, signal.data_str("customer"), signal.data_str("supplier"))
        else {
            return Ok(None);
        };
        let promised = match signal
            .data_str("promised")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            Some(t) => t.with_timezone(&Utc),
            None => shifted(signal.time, 3.0 * 24.0 * 60.0, "time")?,
        };
        self.put_order(Order {
            id: id.clone(),
            customer: customer.to_string(),
            supplier: supplier.to_string(),
            value: signal.data_f64("value").unwrap_or(0.0),
            promised,
            state: OrderState::Open,
        });
        Ok(Some(format!("order/{id}")))
    }

    fn order_ended(&mut self, signal: &Signal, id: Option<String>) -> Option<String> {
        let mut order = id.and_then(|id| self.orders.get(&id).cloned())?;
        order.state = if signal.kind == "order.shipped" {
            OrderState::Shipped
        } else {
            OrderState::Cancelled
        };
        let key = format!("order/{}", order.id);
        self.put_order(order);
        Some(key)
    }

    fn supplier_delayed(
        &mut self,
        signal: &Signal,
        id: Option<String>,
    ) -> Result<Option<String>, ContextError> {
        let Some(supplier) = id.and_then(|id| self.suppliers.get_mut(&id)) else {
            return Ok(None);
        };
        let hours = signal.data_f64("delay_hours").unwrap_or(24.0);
        if hours < 0.0 {
            return Err(ContextError::new(
                "data.delay_hours",
                format!("{hours} is negative; a delay is 0 hours or more"),
            ));
        }
        supplier.delayed_until = Some(shifted(signal.time, hours * 60.0, "data.delay_hours")?);
        let key = format!("supplier/{}", supplier.id);
        Ok(self.touched(key))
    }

    fn health_changed(&mut self, signal: &Signal, id: Option<String>) -> Option<String> {
        let service = id.or_else(|| signal.data_str("service").map(String::from))?;
        let health = signal.data_str("health").and_then(Health::parse)?;
        let latency = signal.data_f64("latency_ms").unwrap_or(0.0) as u32;
        let entry = self
            .services
            .entry(service.clone())
            .or_insert_with(|| Service {
                id: service.clone(),
                health,
                latency_ms: latency,
                owner: None,
            });
        entry.health = health;
        if latency > 0 {
            entry.latency_ms = latency;
        }
        self.services_changed();
        self.touched(format!("service/{service}"))
    }

    fn change_recorded(&mut self, signal: &Signal) -> Option<String> {
        let summary = signal.data_str("summary")?;
        let service = signal.data_str("service").map(String::from).or_else(|| {
            match split_key(&signal.subject) {
                Some(("service", id)) => Some(id.to_string()),
                _ => None,
            }
        });
        if self.changes.len() >= CHANGES_KEPT {
            self.changes.pop_front();
        }
        self.changes.push_back(Change {
            summary: summary.to_string(),
            service,
            source: signal.source.clone(),
            time: signal.time,
        });
        self.touched(CHANGES_KEY.to_string())
    }

    /// A ticket that says it is an escalation, or an escalation opened or
    /// resolved: the customer's open escalation.
    fn escalation(&mut self, signal: &Signal) -> Option<String> {
        let escalated = match signal.kind.as_str() {
            "escalation.opened" => Some(true),
            "escalation.resolved" => Some(false),
            _ => signal
                .data
                .get("escalation")
                .and_then(Value::as_bool)
                .filter(|e| *e),
        }?;
        let customer = self.customer_of(signal).map(|c| c.id.clone())?;
        let c = self.customers.get_mut(&customer)?;
        c.open_escalation = escalated;
        self.touched(format!("customer/{customer}"))
    }
}
