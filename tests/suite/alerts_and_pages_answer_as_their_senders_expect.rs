//! Alertmanager's webhook and PagerDuty's Events API v2 against the real
//! server: firing opens, resolved closes, and each sender gets the answer
//! its own API gives.

use crate::common;

use crate::common::{client, decided, serve};
use serde_json::{Value, json};

#[test]
fn alertmanager_resolved_closes_what_firing_opened() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let c = client();
    let payload = |status: &str| {
        json!({
            "version": "4", "status": status, "receiver": "signalbox", "groupKey": "{}:{}",
            "alerts": [{
                "status": status,
                "labels": {"alertname": "HighErrorRate", "service": "carrier", "severity": "critical"},
                "annotations": {"summary": "5xx above 5%"},
                "startsAt": "2026-11-25T10:00:00Z",
                "endsAt": if status == "resolved" { "2026-11-25T10:20:00Z" } else { "0001-01-01T00:00:00Z" },
                "fingerprint": "abc123",
            }]
        })
    };
    let r = c
        .post(format!("{}/v1/alertmanager", s.base))
        .json(&payload("firing"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let firing = r.json::<Value>().unwrap()["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let decision = decided(&c, &s.base, &firing);
    // Alertmanager repeats notifications: a repeat is a duplicate.
    let r = c
        .post(format!("{}/v1/alertmanager", s.base))
        .json(&payload("firing"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c
        .post(format!("{}/v1/alertmanager", s.base))
        .json(&payload("resolved"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let resolved = r.json::<Value>().unwrap()["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    decided(&c, &s.base, &resolved);
    assert_eq!(common::duplicates(&c, &s.base), 1.0);
    let e: Value = c
        .get(format!("{}/v1/decisions/{decision}", s.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let state = e["flow"]["state"].as_str().unwrap();
    assert!(
        state == "done" || state == "failed",
        "closed, not left open: {state}"
    );
    let text = e.to_string();
    assert!(text.contains("resolved at the source"), "{text}");

    let bad = json!({"version": "3", "alerts": []});
    let r = c
        .post(format!("{}/v1/alertmanager", s.base))
        .json(&bad)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "version");
}

#[test]
fn pagerduty_events_v2_answer_as_pagerduty_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let c = client();
    let trigger = json!({
        "routing_key": "R0UT1NGK3Y0000000000000000000001", "event_action": "trigger", "dedup_key": "db-disk-1",
        "payload": {"summary": "Disk 95% on db1", "source": "db1", "severity": "critical", "component": "erp",
                    "custom_details": {"free_gb": 3}}
    });
    let r = c
        .post(format!("{}/v2/enqueue", s.base))
        .json(&trigger)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(
        (v["status"].as_str(), v["dedup_key"].as_str()),
        (Some("success"), Some("db-disk-1"))
    );
    let no_key = json!({"routing_key": "R0UT1NGK3Y0000000000000000000001", "event_action": "trigger", "payload": {"summary": "x", "source": "y", "severity": "info"}});
    let v: Value = c
        .post(format!("{}/v2/enqueue", s.base))
        .json(&no_key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        !v["dedup_key"].as_str().unwrap_or("").is_empty(),
        "a key is made up for a trigger without one"
    );
    let resolve = json!({"routing_key": "R0UT1NGK3Y0000000000000000000001", "event_action": "resolve", "dedup_key": "db-disk-1"});
    assert_eq!(
        c.post(format!("{}/v2/enqueue", s.base))
            .json(&resolve)
            .send()
            .unwrap()
            .status(),
        202
    );
    let bad = json!({"routing_key": "R0UT1NGK3Y0000000000000000000001", "event_action": "explode", "dedup_key": "k"});
    let r = c
        .post(format!("{}/v2/enqueue", s.base))
        .json(&bad)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["field"], "event_action");
    // PagerDuty's own error shape.
    assert_eq!(v["status"], "invalid event");
    assert_eq!(v["message"], "Event object is invalid");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("'event_action'")
    );
    let bad = json!({"routing_key": "R0UT1NGK3Y0000000000000000000001", "event_action": "trigger", "payload": {"summary": "x", "source": "y", "severity": "apocalyptic"}});
    let r = c
        .post(format!("{}/v2/enqueue", s.base))
        .json(&bad)
        .send()
        .unwrap();
    assert_eq!(r.json::<Value>().unwrap()["field"], "payload.severity");
}
