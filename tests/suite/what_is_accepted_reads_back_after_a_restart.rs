//! Whatever the three intake formats accept, the engine decides, journals
//! and reads back after a restart as it was: signals, decisions, review
//! items and the answers to them, flows, entities, quarantine, feedback,
//! checkpoints and meta. Nothing accepted can make a start fail (a time
//! with an offset that lands past year 9999 once did), and `check` finds
//! the chain whole with nothing undecided.
//!
//! `cargo test` runs a short pass; `benches/fuzz.sh` runs it long
//! (`PROPTEST_CASES`), each case ending with a restart and a check.

use crate::common;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use signalbox::decide::policy::Role;
use signalbox::review::{Action, Actor};
use signalbox::signal::{Signal, alertmanager, pagerduty, wire};

fn now() -> DateTime<Utc> {
    signalbox::sim::default_start()
}

/// An RFC 3339 time anywhere in the years the format can write, with any
/// offset: most land where the journal keeps them, some do not.
fn any_time() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            3 => proptest::sample::select(&[0, 1, 1969, 1970, 2026, 8999, 9000, 9999][..]),
            1 => 0..=9999u32,
        ],
        prop_oneof![Just(12u32), Just(1u32), 1..=12u32],
        prop_oneof![Just(31u32), Just(1u32), 1..=28u32],
        prop_oneof![Just(23u32), Just(0u32), 0..24u32],
        0..60u32,
        -1439..=1439i32,
        any::<bool>(),
    )
        .prop_map(|(y, mo, d, h, mi, offset, zulu)| {
            let zone = if zulu {
                "Z".to_string()
            } else {
                let sign = if offset < 0 { '-' } else { '+' };
                let o = offset.unsigned_abs();
                format!("{sign}{:02}:{:02}", o / 60, o % 60)
            };
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:00{zone}")
        })
}

fn kind() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(
        &[
            "ticket.opened",
            "order.placed",
            "supplier.delayed",
            "approval.requested",
            "alert.firing",
            "health.changed",
            "outcome.recorded",
            "something.new",
        ][..],
    )
}

fn data() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        proptest::sample::select(&[1e300, -1e10, 0.5, 20000.0][..]).prop_map(Value::from),
        proptest::sample::select(
            &[
                "c0001", "baltic", "payments", "down", "critical", "", "order/1"
            ][..]
        )
        .prop_map(Value::from),
    ];
    let keys = proptest::sample::select(
        &[
            "customer",
            "supplier",
            "amount",
            "delay_hours",
            "service",
            "health",
            "value",
            "known_vendor",
            "order",
            "decision_id",
            "within_sla",
            "ticket",
            "items",
        ][..],
    );
    prop::collection::btree_map(keys, leaf, 0..6)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// A request body of one of the three formats, with its parser's answer.
fn accepted(body: &(u8, String, &'static str, Value, u32)) -> Vec<Signal> {
    let (format, time, kind, data, n) = body;
    match format % 3 {
        0 => {
            let e = json!({"specversion": "1.0", "id": format!("e{n}"), "source": "prop",
                           "type": kind, "subject": "customer/c0001", "time": time, "data": data});
            wire::structured(e.to_string().as_bytes(), now(), false).unwrap_or_default()
        }
        1 => {
            let firing = n % 2 == 0;
            let w = json!({"version": "4", "status": "firing", "receiver": "r", "groupKey": "{}:{}",
                "alerts": [{"status": if firing { "firing" } else { "resolved" },
                    "labels": {"alertname": format!("A{}", n % 3), "service": "payments",
                               "severity": "critical"},
                    "annotations": {}, "startsAt": time, "endsAt": if firing { "0001-01-01T00:00:00Z" } else { time },
                    "generatorURL": "", "fingerprint": format!("{:016x}", n % 3)}]});
            alertmanager::parse(w.to_string().as_bytes(), now()).unwrap_or_default()
        }
        _ => {
            let action = ["trigger", "acknowledge", "resolve"][(*n % 3) as usize];
            let e = json!({"routing_key": "R0UT1NGK3Y0000000000000000000001",
                "event_action": action, "dedup_key": format!("k{}", n % 2),
                "payload": {"summary": "s", "source": "db1", "severity": "error",
                            "timestamp": time}});
            pagerduty::parse(e.to_string().as_bytes(), now(), b"key")
                .map(|e| vec![e.signal])
                .unwrap_or_default()
        }
    }
}

/// What a restart must give back as it was.
fn held(engine: &signalbox::engine::Engine) -> (Vec<Value>, Vec<Value>, Vec<(String, String)>) {
    let mut reviews: Vec<Value> = engine
        .open_reviews()
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    reviews.sort_by_key(|r| r["id"].to_string());
    let mut flows: Vec<Value> = engine
        .flows
        .active()
        .map(|f| serde_json::to_value(f).unwrap())
        .collect();
    flows.sort_by_key(|f| f["id"].to_string());
    let mut entities: Vec<(String, String)> = engine
        .context
        .all_entities()
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_string(&v).unwrap()))
        .collect();
    entities.sort();
    (reviews, flows, entities)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn everything_accepted_reads_back_after_a_restart(
        bodies in prop::collection::vec((any::<u8>(), any_time(), kind(), data(), 0..1000u32), 1..24),
        answer in any::<u8>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = common::engine(dir.path());
        let mut sent = Vec::new();
        for body in &bodies {
            for signal in accepted(body) {
                sent.push(signal.clone());
                engine.ingest(signal, now());
            }
        }
        // People's answers are records too.
        let open: Vec<String> = engine.open_reviews().iter().map(|r| r.id.clone()).collect();
        let lead = Actor::new("prop", Role::Lead);
        for (i, id) in open.iter().enumerate() {
            let action = match (answer as usize + i) % 3 {
                0 => Action::Approve,
                1 => Action::Claim,
                _ => Action::Escalate,
            };
            let _ = engine.act(id, &lead, action, "a note", now());
        }
        engine.tick(now() + chrono::Duration::hours(2));
        engine.flush().unwrap().wait().unwrap();
        let before = held(&engine);
        engine.close().unwrap();

        let engine = common::engine(dir.path());
        let after = held(&engine);
        prop_assert_eq!(&before.0, &after.0, "open review items");
        prop_assert_eq!(&before.1, &after.1, "active flows");
        prop_assert_eq!(&before.2, &after.2, "entities");
        engine.close().unwrap();

        // Every signal reads back as it was taken (the first of a repeat).
        for signal in &sent {
            let back = signalbox::journal::read::signal(dir.path(), &signal.id, &signal.source);
            let back = back.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(back.is_some(), "{} not journaled", signal.id);
        }
        let counts = signalbox::journal::read::counts(dir.path()).unwrap();
        prop_assert!(counts.chain_ok, "{:?}", counts);
        prop_assert_eq!(counts.undecided_signals, 0, "{:?}", counts);
        prop_assert_eq!(counts.set_aside, 0, "{:?}", counts);
        for (id, _, _) in signalbox::journal::read::recent_decisions(dir.path(), 1000).unwrap() {
            prop_assert!(signalbox::journal::read::explain(dir.path(), &id).unwrap().is_some());
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
            .args(["check", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        prop_assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
