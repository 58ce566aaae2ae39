//! The entity store: what signalbox knows about the business when it decides.
//!
//! Signals update it (`Context::apply`); a decision reads a `Snapshot` of the
//! entities it touches, and that snapshot is stored with the decision so the
//! decision can be explained later even after the entities have changed.
//! Changed entities are tracked so the journal persists only what moved.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::signal::Signal;

mod apply;
mod organization;
mod views;

pub use apply::ContextError;
pub use organization::{Agent, Calendar, Shift, Team};
pub use views::{SharedView, ViewError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Bronze,
    Silver,
    Gold,
    Platinum,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Bronze => "bronze",
            Tier::Silver => "silver",
            Tier::Gold => "gold",
            Tier::Platinum => "platinum",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    #[serde(default)]
    pub open_escalation: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderState {
    Open,
    Shipped,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub customer: String,
    pub supplier: String,
    pub value: f64,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub promised: DateTime<Utc>,
    pub state: OrderState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Supplier {
    pub id: String,
    pub name: String,
    pub reliability: f64,
    #[serde(default)]
    pub alternate: Option<String>,
    #[serde(default, serialize_with = "crate::timefmt::option::serialize")]
    pub delayed_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    Degraded,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }

    pub fn parse(text: &str) -> Option<Health> {
        match text {
            "up" | "ok" | "healthy" => Some(Health::Up),
            "degraded" | "slow" => Some(Health::Degraded),
            "down" | "failed" | "unhealthy" => Some(Health::Down),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub health: Health,
    pub latency_ms: u32,
    /// The team that owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub source: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: DateTime<Utc>,
}

/// Changes kept, at most, and for how long before a signal they count.
const CHANGES_KEPT: usize = 20;
const CHANGES_WINDOW: Duration = Duration::hours(2);

/// The entity key under which the recent changes are journaled.
const CHANGES_KEY: &str = "changes/recent";

/// The entity key under which the roster and its overrides are journaled.
pub const ROSTER_KEY: &str = "roster/default";

/// Everything the store holds, as one serialisable value (the world a
/// simulator starts from, or what a restart reloads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct World {
    pub customers: Vec<Customer>,
    pub orders: Vec<Order>,
    pub suppliers: Vec<Supplier>,
    pub services: Vec<Service>,
    pub teams: Vec<Team>,
    pub agents: Vec<Agent>,
    pub calendar: Calendar,
    /// People's contact methods, schedules and escalation policies.
    #[serde(default, skip_serializing_if = "crate::paging::Roster::is_empty")]
    pub roster: crate::paging::Roster,
}

/// The entities one decision read, keyed by entity key (`order/1042`), as
/// the JSON text they had then. Text, not a `Value` tree: a snapshot is
/// only ever journaled and shown, and building a tree for each entity a
/// decision reads, to print and free it, cost the engine more than reading
/// the entities.
pub type Snapshot = BTreeMap<String, EntityJson>;

/// One entity as JSON text, written as it is wherever it is serialised.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntityJson(Box<RawValue>);

impl EntityJson {
    fn of<T: Serialize>(entity: &T) -> Option<EntityJson> {
        serde_json::value::to_raw_value(entity).ok().map(EntityJson)
    }

    /// JSON `null`, for an entity that is gone.
    fn null() -> EntityJson {
        EntityJson::of(&()).expect("unit serialises as null")
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for EntityJson {
    fn eq(&self, other: &EntityJson) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Display for EntityJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The live entity store.
#[derive(Debug, Default)]
pub struct Context {
    pub customers: crate::FastMap<String, Customer>,
    pub orders: crate::FastMap<String, Order>,
    pub suppliers: crate::FastMap<String, Supplier>,
    /// Private so that every change goes through `services_changed`.
    services: BTreeMap<String, Service>,
    /// Every service's health as policies see it (`context.services`),
    /// rebuilt when a service changes rather than for every decision.
    services_view: views::Kept,
    /// The changes in the window before the last decision as policies saw
    /// them (`context.changes`), kept while the window holds the same.
    changes_view: views::Kept,
    pub teams: BTreeMap<String, Team>,
    pub agents: BTreeMap<String, Agent>,
    pub calendar: Calendar,
    /// Open orders per supplier, kept beside `orders` for the fan-out.
    open_by_supplier: crate::FastMap<String, BTreeSet<String>>,
    /// The newest changes recorded (`change.recorded`), oldest first.
    changes: std::collections::VecDeque<Change>,
    /// Entities of kinds the store has no type for (`host/web-1`), as the
    /// fields signals gave them, by key.
    records: BTreeMap<String, Value>,
    /// Who is paged and how, with the overrides set at run time
    /// (journaled as the entity `roster/default`).
    pub roster: crate::paging::Roster,
    dirty: BTreeSet<String>,
}

/// What policies see as `context` for one decision (`Context::policy_view`):
/// its own fields, and `services` and `changes`, held apart (the store
/// keeps them ready rather than copying them for every decision).
pub struct PolicyView {
    pub fields: Value,
    /// Service ids to health names. Shared by every decision taken while
    /// the services' health stays as it is (a decision keeps it: one copy,
    /// not one per decision; the journal keeps it once).
    pub services: std::sync::Arc<SharedView>,
    /// The changes recorded in the window before the signal, shared in the
    /// same way by the decisions that see the same ones.
    pub changes: std::sync::Arc<SharedView>,
}

/// A journaled entity that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("entity key {0:?} has no kind")]
    NoKind(String),
    #[error("entity {key}: {error}")]
    Body {
        key: String,
        #[source]
        error: serde_json::Error,
    },
}

/// Splits `kind/id` into its parts.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
}

impl Context {
    pub fn from_world(world: World) -> Context {
        let mut context = Context {
            calendar: world.calendar.clone(),
            roster: world.roster,
            ..Context::default()
        };
        for c in world.customers {
            context.customers.insert(c.id.clone(), c);
        }
        for o in world.orders {
            context.put_order(o);
        }
        for s in world.suppliers {
            context.suppliers.insert(s.id.clone(), s);
        }
        for s in world.services {
            context.services.insert(s.id.clone(), s);
        }
        context.services_changed();
        for t in world.teams {
            context.teams.insert(t.id.clone(), t);
        }
        for a in world.agents {
            context.agents.insert(a.id.clone(), a);
        }
        context.dirty.clear();
        context
    }

    /// Restores one entity from its journaled JSON; unknown kinds are refused.
    pub fn restore(&mut self, key: &str, body: Value) -> Result<(), RestoreError> {
        let (kind, _) = split_key(key).ok_or_else(|| RestoreError::NoKind(key.to_string()))?;
        let bad = |error: serde_json::Error| RestoreError::Body {
            key: key.to_string(),
            error,
        };
        if body.is_null() && kind != "changes" {
            // Gone (an organization that no longer has it).
            let id = split_key(key).map_or("", |(_, id)| id);
            match kind {
                "customer" => drop(self.customers.remove(id)),
                "order" => drop(self.orders.remove(id)),
                "supplier" => drop(self.suppliers.remove(id)),
                "service" => {
                    self.services.remove(id);
                    self.services_changed();
                }
                "team" => drop(self.teams.remove(id)),
                "agent" => drop(self.agents.remove(id)),
                _ => drop(self.records.remove(key)),
            }
            self.dirty.remove(key);
            return Ok(());
        }
        match kind {
            "customer" => {
                let c: Customer = serde_json::from_value(body).map_err(bad)?;
                self.customers.insert(c.id.clone(), c);
            }
            "order" => {
                let o: Order = serde_json::from_value(body).map_err(bad)?;
                self.put_order(o);
            }
            "supplier" => {
                let s: Supplier = serde_json::from_value(body).map_err(bad)?;
                self.suppliers.insert(s.id.clone(), s);
            }
            "service" => {
                let s: Service = serde_json::from_value(body).map_err(bad)?;
                self.services.insert(s.id.clone(), s);
                self.services_changed();
            }
            "team" => {
                let t: Team = serde_json::from_value(body).map_err(bad)?;
                self.teams.insert(t.id.clone(), t);
            }
            "agent" => {
                let a: Agent = serde_json::from_value(body).map_err(bad)?;
                self.agents.insert(a.id.clone(), a);
            }
            "calendar" => {
                self.calendar = serde_json::from_value(body).map_err(bad)?;
            }
            "changes" => {
                self.changes = serde_json::from_value(body).map_err(bad)?;
            }
            "roster" => {
                let mut roster: crate::paging::Roster =
                    serde_json::from_value(body).map_err(bad)?;
                // Addresses are journaled only as shown (never whole): the
                // deployment's files give them back when it is taken.
                for person in roster.people.values_mut() {
                    person.contact.clear();
                }
                self.roster = roster;
            }
            _ => {
                self.records.insert(key.to_string(), body);
            }
        }
        self.dirty.remove(key);
        Ok(())
    }

    /// Every entity as (key, JSON), for the first write of a new journal.
    pub fn all_entities(&self) -> Vec<(String, EntityJson)> {
        let mut out = Vec::new();
        for key in self.keys() {
            if let Some(v) = self.entity_json(&key) {
                out.push((key, v));
            }
        }
        out.push((
            "calendar/default".into(),
            EntityJson::of(&self.calendar).unwrap_or_else(EntityJson::null),
        ));
        out
    }

    fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        keys.extend(self.customers.keys().map(|k| format!("customer/{k}")));
        keys.extend(self.orders.keys().map(|k| format!("order/{k}")));
        keys.extend(self.suppliers.keys().map(|k| format!("supplier/{k}")));
        keys.extend(self.services.keys().map(|k| format!("service/{k}")));
        keys.extend(self.teams.keys().map(|k| format!("team/{k}")));
        keys.extend(self.agents.keys().map(|k| format!("agent/{k}")));
        keys.extend(self.records.keys().cloned());
        if !self.roster.is_empty() {
            keys.push(ROSTER_KEY.to_string());
        }
        keys
    }

    /// How many entities changed since the last `take_dirty`.
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// The entities changed since the last call, as (key, JSON or null when removed).
    pub fn take_dirty(&mut self) -> Vec<(String, EntityJson)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|key| {
                let value = self.entity_json(&key).unwrap_or_else(EntityJson::null);
                (key, value)
            })
            .collect()
    }

    pub fn mark_dirty(&mut self, key: String) {
        self.dirty.insert(key);
    }

    fn put_order(&mut self, order: Order) {
        let set = self
            .open_by_supplier
            .entry(order.supplier.clone())
            .or_default();
        if order.state == OrderState::Open {
            set.insert(order.id.clone());
        } else {
            set.remove(&order.id);
        }
        self.dirty.insert(format!("order/{}", order.id));
        self.orders.insert(order.id.clone(), order);
    }

    /// Open orders waiting on a supplier, oldest id first.
    pub fn open_orders_of(&self, supplier: &str) -> Vec<&Order> {
        self.open_by_supplier
            .get(supplier)
            .map(|ids| ids.iter().filter_map(|id| self.orders.get(id)).collect())
            .unwrap_or_default()
    }

    /// The JSON of one entity by key, if it exists.
    pub fn entity_json(&self, key: &str) -> Option<EntityJson> {
        let (kind, id) = split_key(key)?;
        match kind {
            "customer" => EntityJson::of(self.customers.get(id)?),
            "order" => EntityJson::of(self.orders.get(id)?),
            "supplier" => EntityJson::of(self.suppliers.get(id)?),
            "service" => EntityJson::of(self.services.get(id)?),
            "team" => EntityJson::of(self.teams.get(id)?),
            "agent" => EntityJson::of(self.agents.get(id)?),
            "calendar" => EntityJson::of(&self.calendar),
            "changes" if !self.changes.is_empty() => EntityJson::of(&self.changes),
            "changes" => None,
            "roster" => EntityJson::of(&self.roster),
            _ => EntityJson::of(self.records.get(key)?),
        }
    }

    /// The customer a subject belongs to: the customer itself, or an order's.
    pub fn customer_of(&self, signal: &Signal) -> Option<&Customer> {
        if let Some(id) = signal.data_str("customer") {
            return self.customers.get(id);
        }
        match split_key(&signal.subject)? {
            ("customer", id) => self.customers.get(id),
            ("order", id) => self.customers.get(&self.orders.get(id)?.customer),
            _ => None,
        }
    }

    pub fn service_health(&self, service: &str) -> Option<Health> {
        self.services.get(service).map(|s| s.health)
    }

    /// The entities a decision on this signal reads, as stored JSON.
    pub fn snapshot(&self, signal: &Signal) -> Snapshot {
        let mut snapshot = Snapshot::new();
        let mut add = |key: String| {
            if let Some(v) = self.entity_json(&key) {
                snapshot.insert(key, v);
            }
        };
        if !signal.subject.is_empty() {
            add(signal.subject.clone());
        }
        if let Some(c) = self.customer_of(signal) {
            add(format!("customer/{}", c.id));
        }
        if let Some(("order", id)) = split_key(&signal.subject)
            && let Some(order) = self.orders.get(id)
        {
            add(format!("supplier/{}", order.supplier));
        }
        for key in ["supplier", "service"] {
            if let Some(id) = signal.data_str(key) {
                add(format!("{key}/{id}"));
            }
        }
        if signal.kind.starts_with("alert.") {
            add(CHANGES_KEY.to_string());
        }
        snapshot
    }

    /// The changes recorded in the window before `at`, as policies see them
    /// (the view kept if they are the ones the last decision saw).
    fn changes_before(&mut self, at: DateTime<Utc>) -> std::sync::Arc<SharedView> {
        let shown = Value::Array(
            self.changes
                .iter()
                .filter(|c| c.time <= at && at - c.time <= CHANGES_WINDOW)
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect(),
        );
        self.changes_view.of(shown)
    }

    pub fn services(&self) -> &BTreeMap<String, Service> {
        &self.services
    }

    /// Sets a known service's health (a `health.changed` signal does this
    /// as the engine applies it).
    pub fn set_health(&mut self, service: &str, health: Health) {
        if let Some(s) = self.services.get_mut(service) {
            s.health = health;
            self.services_changed();
        }
    }

    /// The alerts on a service have resolved: the health they had taken
    /// from it comes back. Whether it changed.
    pub fn alerts_cleared(&mut self, service: &str) -> bool {
        let Some(s) = self.services.get_mut(service) else {
            return false;
        };
        if s.health == Health::Up {
            return false;
        }
        s.health = Health::Up;
        self.services_changed();
        self.dirty.insert(format!("service/{service}"));
        true
    }

    fn services_changed(&mut self) {
        let map: serde_json::Map<String, Value> = self
            .services
            .values()
            .map(|s| (s.id.clone(), Value::from(s.health.as_str())))
            .collect();
        // Unchanged health keeps the view every decision since shares.
        self.services_view.of(Value::Object(map));
    }

    /// The `context` variable policies see for a signal: its own fields,
    /// and `services` and `changes`, the views the store keeps. (Mutable:
    /// the changes' view is kept for the next decision that sees the same.)
    pub fn policy_view(&mut self, signal: &Signal, snapshot: &Snapshot) -> PolicyView {
        PolicyView {
            fields: self.policy_fields(signal, snapshot),
            services: self
                .services_view
                .get()
                .map_or_else(SharedView::no_services, std::sync::Arc::clone),
            changes: self.changes_before(signal.time),
        }
    }

    /// The fields of `context` as policies (and step templates' `carries`)
    /// read it: `policy_fields`, and the shared views beside them.
    pub const FIELDS: [&str; 9] = [
        "customer",
        "tier",
        "open_escalation",
        "order",
        "business_hours",
        "entities",
        "subject",
        "services",
        "changes",
    ];

    fn policy_fields(&self, signal: &Signal, snapshot: &Snapshot) -> Value {
        let customer = self.customer_of(signal);
        let order = match split_key(&signal.subject) {
            Some(("order", id)) => self.orders.get(id),
            _ => None,
        };
        json!({
            "customer": customer.map(|c| json!({
                "id": c.id, "tier": c.tier.as_str(), "open_escalation": c.open_escalation,
            })).unwrap_or(Value::Null),
            "tier": customer.map(|c| c.tier.as_str()).unwrap_or("none"),
            "open_escalation": customer.map(|c| c.open_escalation).unwrap_or(false),
            "order": order.map(|o| json!({"id": o.id, "value": o.value, "supplier": o.supplier}))
                .unwrap_or(Value::Null),
            "business_hours": self.calendar.is_business_hours(signal.time),
            "entities": snapshot.len(),
            // An entity of a kind declared in the deployment (`host/web-1`).
            "subject": self.records.get(&signal.subject).cloned().unwrap_or(Value::Null),
        })
    }
}

#[cfg(test)]
mod tests;
