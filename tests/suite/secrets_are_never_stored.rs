//! Secrets never reach the disk or a reader: a PagerDuty routing key (which
//! may be an ingest token) is not journaled, not in the intake log, not in
//! an explanation; bearer secrets are nowhere in the data directory either.
//! Only a fingerprint of the routing key names the integration.

use crate::common;

use std::path::Path;

use crate::common::{client, serve, settled_with};
use serde_json::{Value, json};

const ROUTING_KEY: &str = "R0UTINGKEYTHATISSECRET0000000001";
const TOKEN: &str = "very-secret-ingest-token";

/// Every byte under `dir`, files and subdirectories (WAL files included).
pub(crate) fn every_byte(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(every_byte(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend(bytes);
        }
    }
    out
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn routing_keys_and_tokens_are_never_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        dir.path(),
        &[
            "--token",
            &format!("{ROUTING_KEY}:ingest:pagerduty"),
            "--token",
            &format!("{TOKEN}:operator:ana"),
        ],
    );
    let c = client();
    let trigger = json!({
        "routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "disk-1",
        "payload": {"summary": "Disk 95% on db1", "source": "db1", "severity": "critical",
                    "custom_details": {"note": "no secret here"}},
    });
    let r = c
        .post(format!("{}/v2/enqueue", s.base))
        .json(&trigger)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    // The signal's id is made by the intake; find it in the review list.
    let items: Value = common::wait_for(
        "the alert's review item",
        std::time::Duration::from_secs(20),
        || {
            let v: Value = c
                .get(format!("{}/v1/reviews", s.base))
                .bearer_auth(TOKEN)
                .send()
                .unwrap()
                .json()
                .unwrap();
            v["items"][0].is_object().then_some(v)
        },
    );
    let decision = items["items"][0]["decision"].as_str().unwrap().to_string();
    // The queue answers between turns, before the turn's commit; the
    // explanation is read from the journal, so it comes once that is done.
    let explained = common::wait_for(
        "the decision to be explainable",
        std::time::Duration::from_secs(20),
        || {
            let r = c
                .get(format!("{}/v1/decisions/{decision}", s.base))
                .bearer_auth(TOKEN)
                .send()
                .unwrap();
            (r.status() == 200).then(|| r.text().unwrap())
        },
    );
    assert!(!explained.contains(ROUTING_KEY), "{explained}");
    let v: Value = serde_json::from_str(&explained).unwrap();
    let data = &v["signal"]["data"];
    assert_eq!(data["integration"].as_str().unwrap().len(), 8, "{data}");
    assert!(
        v["signal"]["source"]
            .as_str()
            .unwrap()
            .starts_with("signalbox:pagerduty/")
    );
    let ce = json!({"specversion": "1.0", "id": "t1", "source": "test", "type": "ticket.opened",
                    "subject": "customer/c0001", "data": {"customer": "c0001"}});
    let r = c
        .post(format!("{}/v1/signals", s.base))
        .bearer_auth(TOKEN)
        .json(&ce)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        settled_with(&c, &s.base, "t1", Some(TOKEN))["state"],
        "decided"
    );
    assert!(s.terminate().success());
    let bytes = every_byte(dir.path());
    assert!(!contains(&bytes, ROUTING_KEY), "the routing key is on disk");
    assert!(!contains(&bytes, TOKEN), "a bearer secret is on disk");
    assert!(contains(&bytes, "disk-1"), "the journal was read");
}
