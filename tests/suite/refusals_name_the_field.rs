//! Garbage gets a 4xx whose JSON names the field at fault, on every
//! endpoint, and every refusal is counted.

use crate::common;

use crate::common::{client, decided, event, post_event, serve};
use serde_json::{Value, json};

#[test]
fn every_endpoint_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let c = client();
    let post = |path: &str, ct: &str, body: String| {
        c.post(format!("{}{path}", s.base))
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap()
    };
    let field = |r: reqwest::blocking::Response| -> (u16, Value) {
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap();
        (status, v["field"].clone())
    };

    // Alertmanager: down to the alert and its field.
    let alert = |patch: Value| {
        let mut a = json!({"status": "firing", "labels": {"alertname": "A"}, "annotations": {},
                           "startsAt": "2026-11-23T07:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                           "generatorURL": "", "fingerprint": "0123456789abcdef"});
        for (k, v) in patch.as_object().unwrap() {
            a[k] = v.clone();
        }
        json!({"version": "4", "status": "firing", "receiver": "r", "groupKey": "{}:{}",
               "alerts": [alert_ok(), a]})
        .to_string()
    };
    fn alert_ok() -> Value {
        json!({"status": "resolved", "labels": {}, "annotations": {}, "startsAt": "2026-11-23T07:00:00Z",
               "endsAt": "2026-11-23T07:10:00Z", "generatorURL": "", "fingerprint": "00000000000000aa"})
    }
    for (patch, want) in [
        (json!({"startsAt": "not a time"}), "alerts[1].startsAt"),
        // Valid RFC 3339, but year 10000 in UTC: the journal could not
        // read it back.
        (
            json!({"startsAt": "9999-12-31T23:59:59-23:59"}),
            "alerts[1].startsAt",
        ),
        (json!({"status": "pending"}), "alerts[1].status"),
        (
            json!({"labels": {"severity": 5}}),
            "alerts[1].labels.severity",
        ),
        (json!({"generatorURL": 7}), "alerts[1].generatorURL"),
    ] {
        let (status, f) = field(post("/v1/alertmanager", "application/json", alert(patch)));
        assert_eq!((status, f), (400, json!(want)));
    }
    let (status, _) = field(post("/v1/alertmanager", "text/plain", alert(json!({}))));
    assert_eq!(status, 415);

    // PagerDuty: its own shape, the field beside it.
    let pd = |body: Value| post("/v2/enqueue", "application/json", body.to_string());
    let key = "R0UT1NGK3Y0000000000000000000009";
    for (body, want) in [
        (
            json!({"routing_key": key, "event_action": "trigger",
                "payload": {"summary": "s", "source": "x", "severity": "loud"}}),
            "payload.severity",
        ),
        (
            json!({"routing_key": key, "event_action": "trigger",
                "payload": {"summary": "s", "source": "x", "severity": "info", "timestamp": "tuesday"}}),
            "payload.timestamp",
        ),
        (
            json!({"routing_key": key, "event_action": "trigger",
                "payload": {"summary": "s", "source": "x", "severity": "info",
                            "timestamp": "9999-12-31T23:59:59-23:59"}}),
            "payload.timestamp",
        ),
        (
            json!({"routing_key": key, "event_action": "trigger", "payload": {"source": "x", "severity": "info"}}),
            "payload.summary",
        ),
        (
            json!({"event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "info"}}),
            "routing_key",
        ),
    ] {
        let r = pd(body);
        assert_eq!(r.status(), 400);
        let v: Value = r.json().unwrap();
        assert_eq!(v["field"], want, "{v}");
        assert_eq!(v["status"], "invalid event", "{v}");
        assert!(v["errors"][0].as_str().unwrap().contains(want), "{v}");
    }
    let r = post(
        "/v2/change/enqueue",
        "application/json",
        json!({"routing_key": key, "payload": {"source": "x"}}).to_string(),
    );
    assert_eq!(field(r), (400, json!("payload.summary")));

    // CloudEvents: times the journal cannot keep, and collections past
    // what a policy may walk.
    let items: Vec<u32> = (0..10_001).collect();
    for (patch, want) in [
        (json!({"time": "9999-12-31T23:59:59-23:59"}), "time"),
        (json!({"time": "0000-01-01T00:00:00+23:59"}), "time"),
        (json!({"data": {"items": items}}), "data.items"),
    ] {
        let mut e = event("far", "ticket.opened", "customer/c0001", json!({}));
        for (k, v) in patch.as_object().unwrap() {
            e[k] = v.clone();
        }
        let (status, f) = field(post(
            "/v1/signals",
            "application/cloudevents+json",
            e.to_string(),
        ));
        assert_eq!((status, f), (400, json!(want)), "{patch}");
    }

    // Review actions: types and ranges named.
    let e = event(
        "ap",
        "approval.requested",
        "approval/ap",
        json!({"amount": 20000}),
    );
    assert_eq!(post_event(&c, &s.base, &e).status(), 202);
    let decision = decided(&c, &s.base, "ap");
    let item = decision.replacen('D', "R", 1);
    let act = |body: String, ct: &str| post(&format!("/v1/reviews/{item}/actions"), ct, body);
    for (body, want) in [
        (json!({"action": 1}), "action"),
        (json!({"action": "snooze", "minutes": -5}), "minutes"),
        (json!({"action": "snooze", "minutes": "soon"}), "minutes"),
        (json!({"action": "snooze", "minutes": 10000}), "minutes"),
        (json!({"action": "approve", "note": 3}), "note"),
        (json!({"action": "override"}), "option"),
        (json!({"action": "approve", "actor": "boss"}), "actor"),
    ] {
        let (status, f) = field(act(body.to_string(), "application/json"));
        assert_eq!((status, f), (400, json!(want)), "{body}");
    }
    let (status, _) = field(act("[]".into(), "application/json"));
    assert_eq!(status, 400);
    let (status, _) = field(act(json!({"action": "approve"}).to_string(), "text/plain"));
    assert_eq!(status, 415);

    let metrics = common::metrics_text(&c, &s.base);
    for series in [
        "endpoint=\"alertmanager\",status=\"400\"",
        "endpoint=\"alertmanager\",status=\"415\"",
        "endpoint=\"enqueue\",status=\"400\"",
        "endpoint=\"change_enqueue\",status=\"400\"",
        "endpoint=\"review_actions\",status=\"400\"",
        "endpoint=\"review_actions\",status=\"415\"",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
}
