//! Third-party clients, not our own examples: the official CloudEvents SDK
//! for Python (structured and binary modes, extensions, text and binary
//! data) and PagerDuty's Python client (trigger, acknowledge, resolve, a
//! trigger without a key, a change event) against the real server. What
//! they send is kept whole, and the change is seen beside a later alert.

use std::process::Command;

use crate::common::{client, drained, post_event, serve, settled};
use serde_json::{Value, json};

const ROUTING_KEY: &str = "R0UT1NGK3Y0000000000000000000123";

#[test]
fn the_cloudevents_sdk_and_the_pagerduty_client_are_understood() {
    let check = Command::new("python3")
        .args(["-c", "import cloudevents, pagerduty"])
        .output()
        .expect("python3");
    assert!(
        check.status.success(),
        "the Python packages cloudevents and pagerduty must be installed (.ci/run installs them): {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/send.py"
        ))
        .args([&s.base, ROUTING_KEY])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the clients failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for mode in ["structured", "binary", "text", "bytes"] {
        assert_eq!(report[mode]["status"], 202, "{mode}: {report}");
    }
    assert_eq!(report["trigger"]["dedup_key"], "db1-disk");
    assert_eq!(report["resolve"]["dedup_key"], "db1-disk");
    assert!(
        report["trigger_without_key"]["dedup_key"]
            .as_str()
            .unwrap()
            .len()
            >= 16
    );
    let c = client();
    drained(&c, &s.base);

    let explained = |id: &str| -> Value {
        let decision = settled(&c, &s.base, id)["decision"]
            .as_str()
            .unwrap()
            .to_string();
        c.get(format!("{}/v1/decisions/{decision}", s.base))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let structured = explained(report["structured"]["id"].as_str().unwrap());
    // The explanation shows the event as CloudEvents writes it: extensions
    // are attributes beside the others.
    let signal = &structured["signal"];
    assert_eq!(
        signal["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "{signal}"
    );
    assert_eq!(signal["priorityhint"], 2, "{signal}");
    let binary = explained(report["binary"]["id"].as_str().unwrap());
    assert_eq!(binary["signal"]["tenant"], "north");
    assert_eq!(binary["signal"]["data"]["customer"], "c0002");
    let text = explained(report["text"]["id"].as_str().unwrap());
    assert_eq!(text["signal"]["datacontenttype"], "text/plain");
    assert!(
        text["signal"]["data"]
            .as_str()
            .unwrap()
            .contains("the deploy is done")
    );
    let bytes = explained(report["bytes"]["id"].as_str().unwrap());
    assert_eq!(bytes["signal"]["data_base64"], "AAEC/yBiaW5hcnk=");

    // The change is on record, and a later alert on that service is
    // decided with it in view.
    let alert = json!({"specversion": "1.0", "id": "after-deploy", "source": "monitoring",
                       "type": "alert.firing", "subject": "service/deploy-pipeline", "severity": "warning",
                       "data": {"service": "deploy-pipeline", "fingerprint": "f-after", "summary": "5xx up"}});
    assert_eq!(post_event(&c, &s.base, &alert).status(), 202);
    let after = explained("after-deploy");
    let hits: Vec<&str> = after["decision"]["policy_hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["rule"].as_str())
        .collect();
    assert!(hits.contains(&"alert-after-change"), "{after}");
    assert!(
        after["decision"]["snapshot"]["changes/recent"]
            .to_string()
            .contains("Deployed payments v2.3.1"),
        "{after}"
    );
}
