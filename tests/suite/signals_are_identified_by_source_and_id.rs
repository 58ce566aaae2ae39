//! CloudEvents identify an event by `source` and `id` together: two
//! producers that use one id are two signals; the same pair again is a
//! duplicate. The ids the intake derives (Alertmanager fingerprints,
//! PagerDuty keys) live under signalbox's own sources, which no producer
//! may claim.

use crate::common;

use crate::common::{client, drained, post_event, serve};
use serde_json::{Value, json};

fn from(source: &str, id: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": source, "type": "ticket.opened",
           "subject": "customer/c0001", "data": {"customer": "c0001"}})
}

fn state(c: &reqwest::blocking::Client, base: &str, query: &str) -> (u16, Value) {
    let r = c.get(format!("{base}/v1/signals/{query}")).send().unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

#[test]
fn two_producers_may_share_an_id_and_derived_ids_cannot_be_claimed() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let c = client();
    for source in ["crm", "helpdesk", "crm"] {
        assert_eq!(post_event(&c, &s.base, &from(source, "42")).status(), 202);
    }
    drained(&c, &s.base);
    let (status, v) = state(&c, &s.base, "42");
    assert_eq!(status, 409, "two sources sent 42: {v}");
    assert_eq!(v["field"], "source");
    let (status, crm) = state(&c, &s.base, "42?source=crm");
    assert_eq!((status, &crm["state"]), (200, &json!("decided")), "{crm}");
    let (status, helpdesk) = state(&c, &s.base, "42?source=helpdesk");
    assert_eq!(status, 200);
    assert_ne!(
        crm["decision"], helpdesk["decision"],
        "two signals, two decisions"
    );
    let duplicates: f64 = common::metrics_text(&c, &s.base)
        .lines()
        .filter(|l| l.contains("outcome=\"duplicate\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(duplicates, 1.0, "crm's second 42");

    // A producer cannot take the id an Alertmanager firing will get.
    let claim = json!({"specversion": "1.0", "id": "am:0123456789abcdef:2026-11-23T07:00:00Z:firing",
                       "source": "signalbox:alertmanager", "type": "alert.firing",
                       "subject": "service/carrier", "data": {}});
    let r = post_event(&c, &s.base, &claim);
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "source");
    let r = c
        .post(format!("{}/v1/signals", s.base))
        .header("ce-specversion", "1.0")
        .header("ce-id", "x")
        .header("ce-source", "signalbox:pagerduty/abcd1234")
        .header("ce-type", "alert.resolved")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "ce-source");
    let batch = json!([from("ok", "b1"), {"specversion": "1.0", "id": "b2", "source": "signalbox:probe/x",
                       "type": "health.changed", "data": {}}]);
    let r = c
        .post(format!("{}/v1/signals", s.base))
        .header("content-type", "application/cloudevents-batch+json")
        .body(batch.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "[1].source");
    // The real thing from Alertmanager goes through under its source.
    let webhook = json!({"version": "4", "status": "firing", "receiver": "r", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "labels": {"alertname": "A", "service": "carrier"},
                    "annotations": {}, "startsAt": "2026-11-23T07:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "0123456789abcdef"}]});
    let r = c
        .post(format!("{}/v1/alertmanager", s.base))
        .json(&webhook)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let ids: Value = r.json().unwrap();
    assert_eq!(
        ids["ids"][0],
        "am:0123456789abcdef:2026-11-23T07:00:00Z:firing"
    );
    drained(&c, &s.base);
    let (status, v) = state(
        &c,
        &s.base,
        "am:0123456789abcdef:2026-11-23T07:00:00Z:firing",
    );
    assert_eq!(
        (status, &v["source"]),
        (200, &json!("signalbox:alertmanager")),
        "{v}"
    );
}
