//! Escalations, SLA breaches and quarantined signals reach the receivers
//! configured for them: a Slack-compatible incoming webhook (`{"text"}`)
//! and a generic JSON receiver, both real HTTP servers on loopback.

use crate::common;

use std::path::Path;
use std::time::Duration;

use crate::common::{client, event, serve_deployment, wait_for};
use serde_json::{Value, json};

const OPERATOR: &str = "op-secret-1";
const TOKENS: [&str; 2] = ["--token", "op-secret-1:operator:oskar"];

fn bodies(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let request: Value = serde_json::from_str(l).unwrap();
            serde_json::from_str(request["body"].as_str().unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn escalations_breaches_and_quarantines_are_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let (slack_log, json_log) = (
        tmp.path().join("slack.jsonl"),
        tmp.path().join("json.jsonl"),
    );
    let (_slack, slack_port) = common::receiver(None, &slack_log);
    let (_json, json_port) = common::receiver(None, &json_log);
    let dir = tmp.path().join("ops");
    common::init(&dir);
    let server = std::fs::read_to_string(dir.join("signalbox.toml")).unwrap();
    std::fs::write(
        dir.join("signalbox.toml"),
        format!(
            "{server}\n[[notify]]\nname = \"chat\"\nurl = \"http://127.0.0.1:{slack_port}/hook\"\nformat = \"slack\"\n\n\
             [[notify]]\nname = \"pager\"\nurl = \"http://127.0.0.1:{json_port}/events\"\nformat = \"json\"\nevents = [\"quarantine\"]\n"
        ),
    )
    .unwrap();
    // The rule reads a field tickets then declare.
    let playbook = std::fs::read_to_string(dir.join("playbook.toml")).unwrap();
    std::fs::write(
        dir.join("playbook.toml"),
        playbook.replacen(
            "severity = \"string?\"",
            "severity = \"string?\", urgent = \"bool?\"",
            1,
        ),
    )
    .unwrap();
    let policies = std::fs::read_to_string(dir.join("policies.toml")).unwrap();
    std::fs::write(
        dir.join("policies.toml"),
        format!("{policies}\n[[rule]]\nid = \"urgent-ticket\"\ntypes = [\"ticket.opened\"]\nwhen = \"has(signal.data.urgent)\"\ndeadline = \"2s\"\nreason = \"test\"\n"),
    )
    .unwrap();
    let c = client();
    let s = serve_deployment(&dir, &TOKENS);
    let post = |e: Value| common::post_as(&c, &s.base, OPERATOR, &e);
    // A signal that cannot be folded: quarantined.
    post(event(
        "c1",
        "certificate.expiring",
        "certificate/www",
        json!({"host": "www", "days_left": 1e300}),
    ));
    // A ticket with a two-second SLA that nobody works: at risk, then breached.
    post(event(
        "t1",
        "ticket.opened",
        "customer/acme",
        json!({"customer": "acme", "ticket": "T-1", "urgent": true}),
    ));
    // A lead's item that an operator escalates.
    let mut alert = event(
        "a1",
        "alert.firing",
        "service/database",
        json!({"service": "database"}),
    );
    alert["severity"] = json!("critical");
    post(alert);
    let item = wait_for("a review item", Duration::from_secs(10), || {
        let v: Value = c
            .get(format!("{}/v1/reviews", s.base))
            .bearer_auth(OPERATOR)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["items"][0]["id"].as_str().map(String::from)
    });
    let r = c
        .post(format!("{}/v1/reviews/{item}/actions", s.base))
        .bearer_auth(OPERATOR)
        .json(&json!({"action": "escalate", "note": "database is down"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());

    let texts = wait_for("four notices in the chat", Duration::from_secs(15), || {
        let texts: Vec<String> = bodies(&slack_log)
            .iter()
            .map(|b| b["text"].as_str().unwrap().to_string())
            .collect();
        (texts.len() >= 4).then_some(texts)
    });
    let all = texts.join("\n");
    for expected in [
        "quarantined",
        "escalated by oskar",
        "SLA at risk",
        "SLA breached",
    ] {
        assert!(all.contains(expected), "{expected:?} not in:\n{all}");
    }
    assert!(texts.iter().all(|t| t.starts_with("[signalbox] ")));
    let pager = bodies(&json_log);
    assert_eq!(
        pager.len(),
        1,
        "the pager asked for quarantines only: {pager:?}"
    );
    assert_eq!(pager[0]["event"], "quarantine");
    assert_eq!(pager[0]["reference"], "c1");
    assert!(
        pager[0]["text"].as_str().unwrap().contains("days_left"),
        "{}",
        pager[0]
    );
}
