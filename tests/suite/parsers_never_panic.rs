//! Every parser of outside input, against generated input: CloudEvents in
//! all three HTTP modes, Alertmanager's and PagerDuty's payloads, the
//! JSON lines of `--source jsonl:`, policy TOML with CEL (compiled and
//! evaluated), themes and keymaps. None may panic; what they accept keeps
//! their invariants (limits hold, the journal's text reads back as the
//! same signal, derived signals carry signalbox's own sources).
//!
//! `cargo test` runs a short pass (256 cases each); the long one is
//! `benches/fuzz.sh` (`PROPTEST_CASES=1000000`, release build).

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use signalbox::decide::celval::{self, ContextView};
use signalbox::decide::policy::{OptionView, PolicySet};
use signalbox::playbook::steps::{DEFAULT_STEPS, StepCatalogue};
use signalbox::playbook::{DEFAULT_PLAYBOOK, Playbook};
use signalbox::signal::{RESERVED_SCHEME, Signal, alertmanager, pagerduty, wire};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-29T06:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Names the parsers look for, and some they do not.
const NAMES: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "data",
    "data_base64",
    "datacontenttype",
    "dataschema",
    "severity",
    "traceparent",
    "Bad-Name",
    "",
    "version",
    "alerts",
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
    "groupKey",
    "truncatedAlerts",
    "commonLabels",
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "summary",
    "timestamp",
    "component",
    "custom_details",
    "links",
    "images",
    "client",
    "amount",
    "delay_hours",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(NAMES).prop_map(String::from),
        1 => "\\PC{0,12}",
    ]
}

/// Strings that matter to these parsers, and any others.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "1.0",
                "4",
                "firing",
                "resolved",
                "trigger",
                "acknowledge",
                "resolve",
                "critical",
                "info",
                "loud",
                "2026-11-23T07:00:00Z",
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999999999+23:59",
                "2015-07-17T08:42:58.315+0000",
                "yesterday",
                "application/json",
                "text/plain; charset=utf-8",
                "application/octet-stream",
                "AAEC/w==",
                "not base64!",
                "%E2%82%AC",
                "%C0%A0",
                "\"quoted\\\"",
                "signalbox:x",
                "R0UT1NGK3Y0000000000000000000001",
                "supplier/baltic",
                "order/1",
                "service/erp",
            ][..]
        )
        .prop_map(String::from),
        "\\PC{0,40}",
        "[a-z0-9.:/_-]{0,600}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        proptest::sample::select(&[1e300, -1e300, 1e10, -1e10, 0.0, 2.5e-308, 9.0e15][..])
            .prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((name(), inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// A valid document with one field replaced, added or removed.
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    let Value::Object(fields) = base else {
        unreachable!("templates are objects")
    };
    let keys: Vec<String> = fields.keys().cloned().collect();
    (proptest::sample::select(keys), name(), json_value(), 0..3u8).prop_map(
        move |(key, other, value, how)| {
            let mut fields: Map<String, Value> = fields.clone();
            match how {
                0 => {
                    fields.insert(key, value);
                }
                1 => {
                    fields.remove(&key);
                }
                _ => {
                    fields.insert(other, value);
                }
            }
            Value::Object(fields)
        },
    )
}

fn cloudevent() -> Value {
    json!({"specversion": "1.0", "id": "e1", "source": "test", "type": "ticket.opened",
           "subject": "customer/c0001", "time": "2026-11-23T07:00:00Z",
           "data": {"customer": "c0001", "text": "refund"}})
}

fn alert_webhook() -> Value {
    json!({"version": "4", "status": "firing", "receiver": "r", "groupKey": "{}:{}",
           "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
           "externalURL": "http://am", "alerts": [{"status": "firing",
           "labels": {"alertname": "A", "service": "erp"}, "annotations": {"summary": "s"},
           "startsAt": "2026-11-23T07:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
           "generatorURL": "http://p", "fingerprint": "0123456789abcdef"}]})
}

fn pagerduty_event() -> Value {
    json!({"routing_key": "R0UT1NGK3Y0000000000000000000001", "event_action": "trigger",
           "dedup_key": "k", "payload": {"summary": "s", "source": "db1", "severity": "error",
           "timestamp": "2015-07-17T08:42:58.315+0000", "component": "erp",
           "custom_details": {"a": 1}}})
}

/// What every accepted signal must hold.
fn sound(signal: &Signal) -> Result<(), TestCaseError> {
    prop_assert!(signal.check().is_ok(), "{signal:?}");
    let text = signal.to_cloudevent_json();
    let back = Signal::from_json(&text, now());
    prop_assert_eq!(back.as_ref().ok(), Some(signal), "{}", text);
    Ok(())
}

fn bytes_or_json() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| v.to_string().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cloudevents_structured_and_batched(
        body in prop_oneof![bytes_or_json(), mutated(cloudevent()).prop_map(|v| v.to_string().into_bytes())],
        batch in prop::collection::vec(mutated(cloudevent()), 0..4),
    ) {
        for allow_array in [false, true] {
            if let Ok(signals) = wire::structured(&body, now(), allow_array) {
                for s in &signals {
                    sound(s)?;
                    prop_assert!(!s.source.starts_with(RESERVED_SCHEME));
                }
            }
        }
        let batch = Value::Array(batch).to_string();
        if let Ok(signals) = wire::batch(batch.as_bytes(), now()) {
            for s in &signals {
                sound(s)?;
            }
        }
        // The JSON lines of a file source: the same parser, a line each.
        if let Ok(s) = Signal::from_slice(&body, now()) {
            sound(&s)?;
        }
    }

    #[test]
    fn cloudevents_binary(
        headers in prop::collection::vec((name(), text()), 0..10),
        content_type in proptest::option::of(text()),
        body in bytes_or_json(),
    ) {
        let mut pairs: Vec<(String, String)> = vec![
            ("ce-specversion".into(), "1.0".into()),
            ("ce-id".into(), "b1".into()),
            ("ce-source".into(), "test".into()),
            ("ce-type".into(), "t".into()),
        ];
        pairs.extend(headers.into_iter().map(|(n, v)| (format!("ce-{}", n.to_lowercase()), v)));
        if let Ok(s) = wire::binary(&pairs, content_type.as_deref(), &body, now()) {
            sound(&s)?;
        }
    }

    #[test]
    fn alertmanager_webhooks(
        body in prop_oneof![bytes_or_json(), mutated(alert_webhook()).prop_map(|v| v.to_string().into_bytes())],
        alert in mutated(alert_webhook()["alerts"][0].clone()),
    ) {
        if let Ok(signals) = alertmanager::parse(&body, now()) {
            for s in &signals {
                sound(s)?;
                prop_assert_eq!(s.source.as_str(), alertmanager::SOURCE);
            }
        }
        let mut webhook = alert_webhook();
        webhook["alerts"] = json!([alert]);
        if let Ok(signals) = alertmanager::parse(webhook.to_string().as_bytes(), now()) {
            for s in &signals {
                sound(s)?;
            }
        }
    }

    #[test]
    fn pagerduty_events(
        body in prop_oneof![bytes_or_json(), mutated(pagerduty_event()).prop_map(|v| v.to_string().into_bytes())],
        payload in mutated(pagerduty_event()["payload"].clone()),
    ) {
        for body in [body, {
            let mut e = pagerduty_event();
            e["payload"] = payload;
            e.to_string().into_bytes()
        }] {
            match pagerduty::parse(&body, now(), b"key") {
                Ok(e) => {
                    sound(&e.signal)?;
                    prop_assert!(e.signal.source.starts_with(pagerduty::SOURCE));
                    prop_assert!(e.signal.data.get("routing_key").is_none());
                }
                Err(e) => prop_assert!(!pagerduty::error_text(&e).is_empty()),
            }
            if let Ok(s) = pagerduty::parse_change(&body, now(), b"key") {
                sound(&s)?;
            }
        }
    }
}

/// CEL fragments to build `when` expressions from.
fn cel_expression() -> impl Strategy<Value = String> {
    let atom = proptest::sample::select(
        &[
            "signal.data.amount",
            "signal.data",
            "signal.type",
            "signal.extensions",
            "context.tier",
            "context.services",
            "context.changes",
            "option.services",
            "1",
            "0",
            "-9223372036854775808",
            "9223372036854775807",
            "18446744073709551615",
            "1.5",
            "'x'",
            "''",
            "null",
            "true",
            "[]",
            "{}",
            "[1, 'a']",
            "{'a': 1}",
            "b'\\xff'",
            "double(signal.data.amount)",
            "int(signal.data.amount)",
            "size(signal.data)",
            "signal.data.amount / 0",
            "signal.data.amount % 0",
            "timestamp('x')",
            "duration('999999999999999h')",
            "'a'.matches('(')",
        ][..],
    )
    .prop_map(String::from);
    atom.prop_recursive(3, 12, 3, |inner| {
        (
            inner.clone(),
            proptest::sample::select(
                &[
                    " + ", " - ", " * ", " / ", " % ", " == ", " < ", " && ", " || ", " in ",
                ][..],
            ),
            inner,
        )
            .prop_map(|(a, op, b)| format!("({a}{op}{b})"))
    })
}

fn playbook() -> Playbook {
    let steps = StepCatalogue::parse(DEFAULT_STEPS, "steps").unwrap();
    Playbook::parse(DEFAULT_PLAYBOOK, "playbook", &steps).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn policies_parse_compile_and_evaluate(
        text in "\\PC{0,200}",
        when in cel_expression(),
        option_scope in any::<bool>(),
        data in json_value(),
    ) {
        let playbook = playbook();
        let _ = PolicySet::parse(&text, "fuzz.toml", &playbook);
        let toml = format!(
            "version = \"f\"\n[[rule]]\nid = \"r\"\nscope = \"{}\"\nwhen = {}\nrequire_review = true\nreason = \"r\"\n",
            if option_scope { "option" } else { "signal" },
            toml::Value::String(when.clone()),
        );
        if let Ok(set) = PolicySet::parse(&toml, "fuzz.toml", &playbook) {
            let signal = Signal { id: "s".into(), source: "t".into(), kind: "approval.requested".into(),
                                  time: now(), data, ..Signal::default() };
            let context = json!({"tier": "gold", "services": {"erp": "down"}, "changes": []});
            let option = OptionView { name: "auto_approve".into(),
                                      value: json!({"name": "auto_approve", "services": ["erp"]}) };
            let verdict = set.evaluate(
                &signal.kind,
                &celval::Json::signal(&signal, ""),
                ContextView::new(&context),
                &[&option],
            );
            // Fired or failed, this rule asks for review; quiet, nothing.
            prop_assert!(verdict.require_review || verdict.hits.is_empty());
        }
    }

    #[test]
    fn themes_and_keymaps_load_or_say_why(text in "\\PC{0,200}", inherits in "[a-z]{0,8}") {
        let dir = tempfile::tempdir().unwrap();
        for body in [text.clone(), format!("inherits = \"{inherits}\"\n{text}")] {
            std::fs::write(dir.path().join("mine.toml"), &body).unwrap();
            let _ = signalbox::console::theme::Theme::load("mine", Some(dir.path()), false);
            let _ = signalbox::console::keymap::Keymap::load("mine", Some(dir.path()));
        }
    }
}
