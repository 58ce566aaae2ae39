//! A signal the engine cannot decide is quarantined: answered as such,
//! counted, listed; the engine goes on, a restart does not retry it, and a
//! lead (over HTTP or on the command line) retries or drops it.

use std::process::Command;
use std::time::Duration;

use crate::common::{client, event, serve, wait_for};
use serde_json::{Value, json};

const TOKENS: [&str; 8] = [
    "--token",
    "ingest-secret-1:ingest",
    "--token",
    "viewer-secret-1:viewer",
    "--token",
    "operator-secret:operator:ana",
    "--token",
    "lead-secret-123:lead:lars",
];

/// Signals no value of which may stop the engine.
fn poison() -> Vec<Value> {
    let mut out: Vec<Value> = [1e300, -1e10, 1e10]
        .iter()
        .enumerate()
        .map(|(i, hours)| {
            event(
                &format!("p{i}"),
                "supplier.delayed",
                "supplier/baltic",
                json!({"supplier": "baltic", "delay_hours": hours}),
            )
        })
        .collect();
    // The last second signalbox keeps (before year 9000, so that what is
    // derived from it stays within four-digit years): odd, and decided.
    let mut late = event(
        "late",
        "order.placed",
        "order/late",
        json!({"customer": "c0001", "supplier": "baltic", "value": 10}),
    );
    late["time"] = json!("8999-12-31T23:59:59Z");
    out.push(late);
    out
}

fn post(c: &reqwest::blocking::Client, base: &str, token: &str, event: &Value) -> u16 {
    c.post(format!("{base}/v1/signals"))
        .bearer_auth(token)
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn state(c: &reqwest::blocking::Client, base: &str, id: &str) -> Value {
    c.get(format!("{base}/v1/signals/{id}"))
        .bearer_auth("viewer-secret-1")
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn poison_signals_are_quarantined_and_the_engine_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let s = serve(dir.path(), &TOKENS);
    for e in poison() {
        assert_eq!(post(&c, &s.base, "ingest-secret-1", &e), 202);
    }
    let good = event(
        "ok1",
        "ticket.opened",
        "customer/c0001",
        json!({"customer": "c0001"}),
    );
    assert_eq!(post(&c, &s.base, "ingest-secret-1", &good), 202);
    let viewer = |path: &str| {
        c.get(format!("{}{path}", s.base))
            .bearer_auth("viewer-secret-1")
            .send()
            .unwrap()
    };
    // The good one is decided after the poison, by the same engine.
    wait_for("ok1 to be decided", Duration::from_secs(20), || {
        (state(&c, &s.base, "ok1")["state"] == "decided").then_some(())
    });
    for id in ["p0", "p1", "p2"] {
        let v = state(&c, &s.base, id);
        assert_eq!(v["state"], "quarantined", "{v}");
        assert!(
            v["error"].as_str().unwrap().contains("data.delay_hours"),
            "{v}"
        );
    }
    assert_eq!(state(&c, &s.base, "late")["state"], "decided");
    assert_eq!(viewer("/healthz").status(), 200);
    let metrics = viewer("/metrics").text().unwrap();
    assert!(
        metrics.contains("signalbox_quarantined_total 3"),
        "{metrics}"
    );
    assert!(metrics.contains("signalbox_quarantine_held 3"), "{metrics}");
    let list: Value = viewer("/v1/quarantine").json().unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "{list}");

    // kill -9, and back: nothing retried by itself, the engine healthy.
    drop(s);
    let s = serve(dir.path(), &TOKENS);
    let fresh = event(
        "ok2",
        "ticket.opened",
        "customer/c0002",
        json!({"customer": "c0002"}),
    );
    assert_eq!(post(&c, &s.base, "ingest-secret-1", &fresh), 202);
    wait_for("ok2 to be decided", Duration::from_secs(20), || {
        (state(&c, &s.base, "ok2")["state"] == "decided").then_some(())
    });
    assert_eq!(state(&c, &s.base, "p0")["state"], "quarantined");
    let held = |c: &reqwest::blocking::Client| {
        c.get(format!("{}/metrics", s.base))
            .bearer_auth("viewer-secret-1")
            .send()
            .unwrap()
            .text()
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("signalbox_quarantine_held ")?
                    .parse::<f64>()
                    .ok()
            })
    };
    assert_eq!(held(&c), Some(3.0));

    // Retrying and dropping are a lead's; the identity is the token's.
    let act = |token: &str, id: &str, what: &str, body: Value| {
        c.post(format!("{}/v1/quarantine/{id}/{what}", s.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap()
    };
    assert_eq!(
        act("operator-secret", "p0", "retry", json!({})).status(),
        403
    );
    assert_eq!(
        act(
            "lead-secret-123",
            "p0",
            "retry",
            json!({"actor": "someone"})
        )
        .status(),
        400
    );
    let r = act(
        "lead-secret-123",
        "p0",
        "retry",
        json!({"note": "try once more"}),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().unwrap()["state"],
        "quarantined",
        "it fails again"
    );
    let r = act(
        "lead-secret-123",
        "p1",
        "drop",
        json!({"note": "bad data from test"}),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(state(&c, &s.base, "p1")["state"], "dropped");
    assert_eq!(
        act("lead-secret-123", "p1", "drop", json!({})).status(),
        404
    );
    assert_eq!(held(&c), Some(2.0));

    // While the server holds the journal, the command line may not.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_signalbox"))
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("HOME", dir.path())
            .env("USER", "olga")
            .output()
            .unwrap()
    };
    let busy = cli(&["quarantine", "drop", "p2"]);
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("another signalbox process"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert!(s.terminate().success());
    let listed = cli(&["quarantine", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("p0") && text.contains("p2") && !text.contains("p1"),
        "{text}"
    );
    let dropped = cli(&["quarantine", "drop", "p2", "--note", "seen"]);
    assert!(
        dropped.status.success(),
        "{}",
        String::from_utf8_lossy(&dropped.stderr)
    );
    let checked = cli(&["check", "--json"]);
    let v: Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(v["quarantined"], 1, "{v}");
    assert_eq!(v["undecided_signals"], 0, "{v}");
    assert_eq!(v["chain_ok"], true, "{v}");
}
