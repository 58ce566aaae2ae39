//! Bad input against the real engine on a real SQLite journal: named where it
//! is refused, decided where it is odd but valid, never a stop.

use crate::common;

use serde_json::json;
use signalbox::decide::Mode;
use signalbox::engine::Ingested;
use signalbox::journal::read;
use signalbox::signal::{Signal, SignalError};
use signalbox::sim::default_start;

#[test]
fn malformed_json_names_the_problem() {
    let err = Signal::from_json("{\"id\": \"x\", ", default_start()).unwrap_err();
    assert!(matches!(err, SignalError::Malformed { .. }), "{err:?}");
    let err = Signal::from_json(
        r#"{"specversion":"1.0","id":"x","source":"s","time":"2026-01-01T00:00:00Z"}"#,
        default_start(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("type"),
        "names the missing field: {err}"
    );
    let err = Signal::from_json(
        r#"{"specversion":"1.0","id":7,"source":"s","type":"t"}"#,
        default_start(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("id"),
        "names the wrong field: {err}"
    );
}

#[test]
fn unknown_type_is_journaled_and_sent_to_review() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let out = engine.ingest(
        common::signal("u-1", "fleet.teleport", "truck/7", json!({"x": 1})),
        default_start(),
    );
    let Ingested::Decided { decision_id, mode } = out else {
        panic!("not decided: {out:?}")
    };
    assert_eq!(mode, Mode::Review);
    engine.flush().unwrap().wait().unwrap();
    let items = engine.open_reviews();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].decision.id, decision_id);
    assert!(
        items[0].decision.why.contains("unrecognised"),
        "{}",
        items[0].decision.why
    );
    engine.close().unwrap();
    let counts = read::counts(dir.path()).unwrap();
    assert_eq!(
        (counts.signals, counts.decided_signals, counts.open_reviews),
        (1, 1, 1)
    );
}

#[test]
fn duplicate_id_is_counted_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let s = common::signal(
        "dup-1",
        "ticket.opened",
        "customer/c0001",
        json!({"customer": "c0001", "text": "where is my order"}),
    );
    assert!(matches!(
        engine.ingest(s.clone(), default_start()),
        Ingested::Decided { .. }
    ));
    assert_eq!(engine.ingest(s, default_start()), Ingested::Duplicate);
    assert_eq!(engine.counts().duplicates, 1);
    engine.close().unwrap();
    let counts = read::counts(dir.path()).unwrap();
    assert_eq!((counts.signals, counts.decisions), (1, 1));
    // Also across a restart: the journal remembers the id.
    let mut engine = common::engine(dir.path());
    let again = common::signal(
        "dup-1",
        "ticket.opened",
        "customer/c0001",
        json!({"customer": "c0001"}),
    );
    assert_eq!(engine.ingest(again, default_start()), Ingested::Duplicate);
    engine.close().unwrap();
    assert_eq!(read::counts(dir.path()).unwrap().signals, 1);
}

#[test]
fn odd_but_valid_data_is_decided_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let shapes = [
        json!({"amount": 18446744073709551615u64, "nested": {"a": [1, [2, [3, {"b": null}]]]}}),
        json!({"text": "ünïcödé ✓ \u{0000} — \"quoted\"", "list": [], "map": {}}),
        json!({"amount": -1.5e300, "flag": true, "customer": 42}),
        json!({"supplier": ["not", "a", "string"], "value": "not a number"}),
    ];
    for (i, data) in shapes.into_iter().enumerate() {
        for kind in [
            "approval.requested",
            "order.placed",
            "ticket.opened",
            "alert.firing",
            "mystery.kind",
        ] {
            let s = common::signal(&format!("odd-{i}-{kind}"), kind, "order/x1", data.clone());
            assert!(matches!(
                engine.ingest(s, default_start()),
                Ingested::Decided { .. }
            ));
        }
    }
    engine.flush().unwrap().wait().unwrap();
    engine.close().unwrap();
    assert_eq!(read::counts(dir.path()).unwrap().undecided_signals, 0);
}

#[test]
fn a_context_only_signal_is_recorded_without_consulting_policies_or_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    // A gold customer: the vip-priority rule matches their signals.
    let gold = engine
        .context
        .customers
        .values()
        .find(|c| c.tier.as_str() == "gold")
        .expect("Northwind has gold customers")
        .id
        .clone();
    let decided = |i: Ingested| match i {
        Ingested::Decided { decision_id, .. } => decision_id,
        other => panic!("not decided: {other:?}"),
    };
    let placed = decided(engine.ingest(
        common::signal(
            "p1",
            "order.placed",
            "order/zz1",
            json!({"customer": gold, "supplier": "baltic", "value": 500.0}),
        ),
        default_start(),
    ));
    let shipped = decided(engine.ingest(
        common::signal(
            "s1",
            "order.shipped",
            "order/zz1",
            json!({"customer": gold, "carrier": "NorthExpress"}),
        ),
        default_start(),
    ));
    engine.flush().unwrap().wait().unwrap();
    let placed = read::explain(dir.path(), &placed)
        .unwrap()
        .unwrap()
        .decision;
    let shipped = read::explain(dir.path(), &shipped)
        .unwrap()
        .unwrap()
        .decision;
    assert!(
        placed.policy_hits.iter().any(|h| h.rule == "vip-priority"),
        "{:?}",
        placed.policy_hits
    );
    assert!(!placed.features.is_empty());
    // The shipment has nothing to choose: recorded with what it read.
    assert_eq!(shipped.mode, Mode::Record);
    assert_eq!(shipped.proposal, "record");
    assert!(shipped.policy_hits.is_empty(), "{:?}", shipped.policy_hits);
    assert!(shipped.features.is_empty());
    assert!(shipped.snapshot.contains_key("order/zz1"));
    assert!(shipped.why.contains("nothing to choose"), "{}", shipped.why);
}
