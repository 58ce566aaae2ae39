//! Base features of a signal in its context, as readable names
//! (`tier=gold`, `amount~2^14`, `w=refund`). The model crosses each with the
//! option it scores; the names are kept so a decision can show which features
//! drove it.

use chrono::Timelike;
use serde_json::Value;

use crate::context::{Context, Order, split_key};
use crate::signal::Signal;

const MAX_WORDS: usize = 16;

/// Data keys that identify an entity rather than describe a situation;
/// crossing them with options would only memorise ids.
const IDENTITY_KEYS: &[&str] = &[
    "customer",
    "supplier",
    "order",
    "id",
    "fingerprint",
    "dedup_key",
    "promised",
    "ticket",
    "summary_id",
    "approval",
    "duplicate_of",
];

fn bucket(value: f64) -> String {
    if value <= 0.0 {
        return "0".into();
    }
    format!("2^{}", value.log2().floor() as i64)
}

/// The distinct words of a free text, as `w=` features (at most `MAX_WORDS`).
fn words(text: &str) -> impl Iterator<Item = String> {
    let mut words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect();
    words.sort();
    words.dedup();
    words.into_iter().take(MAX_WORDS).map(|w| format!("w={w}"))
}

pub fn extract(signal: &Signal, context: &Context) -> Vec<String> {
    let mut out = vec![format!("type={}", signal.kind)];
    if let Some(sev) = signal.severity {
        out.push(format!("sev={}", sev.as_str()));
    }
    if let Some(kind) = split_key(&signal.subject).map(|(k, _)| k) {
        out.push(format!("subject={kind}"));
    }
    let customer = context.customer_of(signal);
    out.push(format!(
        "tier={}",
        customer.map(|c| c.tier.as_str()).unwrap_or("none")
    ));
    if customer.is_some_and(|c| c.open_escalation) {
        out.push("open_escalation".into());
    }
    out.push(format!(
        "business_hours={}",
        context.calendar.is_business_hours(signal.time)
    ));
    out.push(format!("hour/4={}", signal.time.hour() / 4));
    if let Value::String(text) = &signal.data {
        out.extend(words(text));
    }
    let no_fields = serde_json::Map::new();
    let fields = signal.data.as_object().unwrap_or(&no_fields);
    for (key, value) in fields {
        if IDENTITY_KEYS.contains(&key.as_str()) {
            if key == "duplicate_of" {
                out.push("has_duplicate_of".into());
            }
            continue;
        }
        match value {
            Value::Bool(b) => out.push(format!("{key}={b}")),
            Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    out.push(format!("{key}~{}", bucket(f)));
                }
            }
            Value::String(s) if key == "text" || key == "summary" || s.len() > 40 => {
                out.extend(words(s));
            }
            Value::String(s) => out.push(format!("{key}={s}")),
            _ => {}
        }
    }
    if let Some(service) = signal.data_str("service")
        && let Some(health) = context.service_health(service)
    {
        out.push(format!("service_health={}", health.as_str()));
    }
    // Each service not up is a feature, up to a bound: in an outage of
    // hundreds of services, a feature per service made every decision (and
    // every open item, and the journal) hold hundreds of strings.
    let mut degraded = context
        .services()
        .values()
        .filter(|s| s.health.as_str() != "up");
    for service in degraded.by_ref().take(MAX_SERVICE_FEATURES) {
        out.push(format!("{}={}", service.id, service.health.as_str()));
    }
    if degraded.next().is_some() {
        out.push(format!("degraded_services>{MAX_SERVICE_FEATURES}"));
    }
    out
}

/// Services not up that are features of a decision, at most (in the order
/// of their ids); past it, one feature says there were more.
pub const MAX_SERVICE_FEATURES: usize = 16;

/// Extra features for the per-order choice inside a supplier-delay fan-out.
pub fn for_order(signal: &Signal, order: &Order, context: &Context) -> Vec<String> {
    let mut out = vec![format!("type={}", signal.kind), "subject=order".to_string()];
    if let Some(hours) = signal.data_f64("delay_hours") {
        out.push(format!("delay_hours~{}", bucket(hours)));
    }
    out.push(format!("order_value~{}", bucket(order.value)));
    let tier = context
        .customers
        .get(&order.customer)
        .map(|c| c.tier.as_str())
        .unwrap_or("none");
    out.push(format!("tier={tier}"));
    let alternate = context
        .suppliers
        .get(&order.supplier)
        .and_then(|s| s.alternate.as_ref())
        .and_then(|a| context.suppliers.get(a));
    match alternate {
        Some(alt) => out.push(format!("alternate_reliability~{:.1}", alt.reliability)),
        None => out.push("no_alternate".into()),
    }
    let slack_hours = (order.promised - signal.time).num_hours();
    out.push(format!("slack_hours~{}", bucket(slack_hours as f64)));
    out
}
