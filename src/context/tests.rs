//! Tests of `context`.

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
