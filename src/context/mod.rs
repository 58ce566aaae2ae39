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
mod tests {
    use super::*;
    use serde_json::Map;

    /// Applies a signal with the fold the shipped playbook names for its type.
    fn apply(ctx: &mut Context, signal: &Signal) -> Result<Vec<String>, ContextError> {
        let fold = match signal.kind.as_str() {
            "order.shipped" => "order.ended",
            kind => kind,
        };
        ctx.apply(signal, Some(fold))
    }

    fn signal(kind: &str, subject: &str, data: Value) -> Signal {
        let Value::Object(data) = data else {
            panic!("test data must be an object")
        };
        Signal {
            id: "x".into(),
            source: "test".into(),
            kind: kind.into(),
            subject: subject.into(),
            time: DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            data: Value::Object(data),
            ..Signal::default()
        }
    }

    /// `FIELDS` (what `validate` lets a step carry) is what policies see.
    #[test]
    fn the_fields_named_are_the_fields_policies_see() {
        let ctx = Context::default();
        let fields = ctx.policy_fields(&signal("x", "order/1", json!({})), &Snapshot::new());
        let mut seen: Vec<&str> = fields
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        seen.extend(["services", "changes"]);
        seen.sort_unstable();
        let mut named = Context::FIELDS.to_vec();
        named.sort_unstable();
        assert_eq!(seen, named);
    }

    #[test]
    fn orders_are_indexed_by_supplier_until_shipped() {
        let mut ctx = Context::default();
        apply(
            &mut ctx,
            &signal(
                "order.placed",
                "order/1",
                json!({"customer": "c1", "supplier": "s1", "value": 10.0}),
            ),
        )
        .unwrap();
        assert_eq!(ctx.open_orders_of("s1").len(), 1);
        apply(
            &mut ctx,
            &signal("order.shipped", "order/1", Value::Object(Map::new())),
        )
        .unwrap();
        assert!(ctx.open_orders_of("s1").is_empty());
        let dirty = ctx.take_dirty();
        assert_eq!(dirty[0].0, "order/1");
        assert!(ctx.take_dirty().is_empty());
    }

    #[test]
    fn decisions_in_one_window_of_changes_share_one_view() {
        let mut ctx = Context::default();
        let mut at = signal("ticket.opened", "customer/c1", json!({}));
        let changes = |ctx: &mut Context, at: &Signal| {
            let view = ctx.policy_view(at, &Snapshot::new());
            assert!(view.fields.get("changes").is_none(), "held apart");
            view.changes
        };
        let none = changes(&mut ctx, &at);
        assert!(std::sync::Arc::ptr_eq(&none, &SharedView::no_changes()));
        let deploy = signal(
            "change.recorded",
            "service/payments",
            json!({"summary": "deploy 1.2"}),
        );
        apply(&mut ctx, &deploy).unwrap();
        let first = changes(&mut ctx, &at);
        assert_eq!(first.value()[0]["summary"], "deploy 1.2");
        at.time += Duration::minutes(30);
        let later = changes(&mut ctx, &at);
        assert!(std::sync::Arc::ptr_eq(&first, &later), "the same changes");
        // Out of the window: none again.
        at.time += CHANGES_WINDOW;
        assert!(changes(&mut ctx, &at).is_empty());
    }

    #[test]
    fn health_changes_are_applied() {
        let mut ctx = Context::default();
        let services = |ctx: &mut Context| {
            let order = signal("order.placed", "order/1", json!({}));
            let view = ctx.policy_view(&order, &Snapshot::new());
            Some(view.services.value().clone())
        };
        assert_eq!(services(&mut ctx), Some(json!({})));
        apply(
            &mut ctx,
            &signal(
                "health.changed",
                "service/payments",
                json!({"health": "down"}),
            ),
        )
        .unwrap();
        assert_eq!(ctx.service_health("payments"), Some(Health::Down));
        // Policies see it too, and each later change.
        assert_eq!(services(&mut ctx), Some(json!({"payments": "down"})));
        ctx.set_health("payments", Health::Up);
        assert_eq!(services(&mut ctx), Some(json!({"payments": "up"})));
        ctx.restore(
            "service/email",
            json!({"id": "email", "health": "degraded", "latency_ms": 5}),
        )
        .unwrap();
        assert_eq!(
            services(&mut ctx),
            Some(json!({"payments": "up", "email": "degraded"}))
        );
    }

    /// Any number JSON can carry is refused with the field, not a panic,
    /// and leaves the store as it was.
    #[test]
    fn out_of_range_values_are_refused_by_field() {
        let mut ctx = Context::from_world(World {
            suppliers: vec![Supplier {
                id: "baltic".into(),
                name: "Baltic".into(),
                reliability: 0.9,
                alternate: None,
                delayed_until: None,
            }],
            ..World::default()
        });
        for hours in [1e10, -1e10, 1e300, -1e300, f64::MAX, 2.0e13] {
            let err = apply(
                &mut ctx,
                &signal(
                    "supplier.delayed",
                    "supplier/baltic",
                    json!({ "delay_hours": hours }),
                ),
            )
            .unwrap_err();
            assert_eq!(err.field, "data.delay_hours", "{hours}: {err}");
        }
        assert_eq!(ctx.suppliers["baltic"].delayed_until, None);
        assert!(ctx.take_dirty().is_empty());
        // The end of the calendar: no room for the default promise.
        let mut late = signal(
            "order.placed",
            "order/9",
            json!({"customer": "c1", "supplier": "baltic"}),
        );
        late.time = DateTime::<Utc>::MAX_UTC;
        assert_eq!(apply(&mut ctx, &late).unwrap_err().field, "time");
        apply(
            &mut ctx,
            &signal(
                "supplier.delayed",
                "supplier/baltic",
                json!({ "delay_hours": 48.5 }),
            ),
        )
        .unwrap();
        assert!(ctx.suppliers["baltic"].delayed_until.is_some());
    }

    /// A CRM or CMDB keeps entities current: known kinds must still read
    /// as themselves, other kinds keep the fields given.
    #[test]
    fn entities_are_upserted_by_signal() {
        let mut ctx = Context::default();
        let upsert = |ctx: &mut Context, data: Value| {
            ctx.apply(
                &signal("entity.upserted", "", data),
                Some("entity.upserted"),
            )
        };
        upsert(
            &mut ctx,
            json!({"kind": "customer", "id": "acme", "fields": {"tier": "gold", "name": "Acme"}}),
        )
        .unwrap();
        assert_eq!(ctx.customers["acme"].tier, Tier::Gold);
        upsert(
            &mut ctx,
            json!({"kind": "customer", "id": "acme", "fields": {"tier": "platinum"}}),
        )
        .unwrap();
        assert_eq!(ctx.customers["acme"].name, "Acme", "fields not given stay");
        assert_eq!(ctx.customers["acme"].tier, Tier::Platinum);
        let err = upsert(
            &mut ctx,
            json!({"kind": "customer", "id": "acme", "fields": {"tier": "diamond"}}),
        )
        .unwrap_err();
        assert_eq!(err.field, "data.fields");
        assert_eq!(
            ctx.customers["acme"].tier,
            Tier::Platinum,
            "a refused change changes nothing"
        );
        upsert(
            &mut ctx,
            json!({"kind": "host", "id": "web-1", "fields": {"rack": "b4"}}),
        )
        .unwrap();
        assert_eq!(
            ctx.entity_json("host/web-1").unwrap().as_str(),
            r#"{"id":"web-1","rack":"b4"}"#
        );
        for bad in [
            json!({"id": "x"}),
            json!({"kind": "host", "id": "a/b"}),
            json!({"kind": "host", "id": "x", "fields": 3}),
        ] {
            assert!(upsert(&mut ctx, bad.clone()).is_err(), "{bad}");
        }
        // Journaled as changed, and restored as it was.
        let dirty = ctx.take_dirty();
        let mut back = Context::default();
        for (key, body) in dirty {
            back.restore(&key, serde_json::from_str(body.as_str()).unwrap())
                .unwrap();
        }
        assert_eq!(back.customers["acme"].tier, Tier::Platinum);
        assert!(back.entity_json("host/web-1").is_some());
    }

    #[test]
    fn shifts_wrap_midnight() {
        let night = Shift {
            start_hour: 22,
            end_hour: 6,
            timezone: None,
        };
        assert!(night.covers(23) && night.covers(3) && !night.covers(12));
    }
}
