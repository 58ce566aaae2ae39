//! Pages through PagerDuty's Events API v2 and past a channel that is
//! down. A page to a person whose method is `pagerduty` triggers an alert
//! on a receiver that checks every body as PagerDuty documents it
//! (tests/clients/pagerduty_receiver.py); acknowledging and resolving the
//! page in signalbox sends the same dedup_key with that action, so
//! PagerDuty's own escalation stops too. The routing key is never
//! journaled nor shown. When a person's first method cannot be reached,
//! their next one is used at once instead of after its delay.

use std::path::Path;
use std::time::Duration;

use crate::common::{self, client, serve_deployment, wait_for};
use crate::pages_reach_people_and_stop_when_acknowledged::{
    OPERATOR, TOKENS, body, critical, page, requests,
};
use serde_json::Value;

const ROUTING_KEY: &str = "PDR0UT1NGK3YTHAT1SSECRET00000042";

/// The events the PagerDuty receiver took, with the problems it found.
fn events(log: &Path) -> Vec<Value> {
    requests(log)
}

/// dana's contact and rules replaced by `reach` (TOML lines), and the
/// server told where PagerDuty's Events API is.
fn reach_dana(dir: &Path, reach: &str, events_url: &str) {
    let org = std::fs::read_to_string(dir.join("organization.toml")).unwrap();
    let start = org
        .find("contact = { webhook = \"http://127.0.0.1:")
        .unwrap();
    let end = start + org[start..].find("urgent = [\"webhook\"]").unwrap() + 20;
    let org = format!("{}{reach}{}", &org[..start], &org[end..]);
    std::fs::write(dir.join("organization.toml"), org).unwrap();
    let server = std::fs::read_to_string(dir.join("signalbox.toml")).unwrap();
    std::fs::write(
        dir.join("signalbox.toml"),
        format!("{server}\n[pagerduty]\nevents_url = \"{events_url}\"\n"),
    )
    .unwrap();
}

fn act(c: &reqwest::blocking::Client, base: &str, id: &str, action: &str) {
    let r = c
        .post(format!("{base}/v1/pages/{id}/{action}"))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
}

#[test]
fn a_page_triggers_acknowledges_and_resolves_a_pagerduty_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let pd_log = tmp.path().join("pagerduty.jsonl");
    // PagerDuty takes a second over the acknowledge: the resolve sent
    // right after it must still come second.
    let (_pd, pd_port) = common::python_server(
        "pagerduty_receiver.py",
        &[pd_log.as_os_str(), std::ffi::OsStr::new("1")],
    );
    let dir = tmp.path().join("ops");
    common::paged_deployment(&dir, 1, 1, "1m");
    reach_dana(
        &dir,
        &format!("contact = {{ pagerduty = \"{ROUTING_KEY}\" }}\nurgent = [\"pagerduty\"]"),
        &format!("http://127.0.0.1:{pd_port}/v2/enqueue"),
    );
    let s = serve_deployment(&dir, &TOKENS);
    let c = client();
    common::post_as(&c, &s.base, OPERATOR, &critical("pd1", "api"));
    let trigger = wait_for("the trigger", Duration::from_secs(15), || {
        events(&pd_log).into_iter().next()
    });
    assert_eq!(trigger["errors"], serde_json::json!([]), "{trigger}");
    let event = &trigger["event"];
    assert_eq!(trigger["path"], "/v2/enqueue");
    assert_eq!(
        (
            event["event_action"].as_str(),
            event["routing_key"].as_str()
        ),
        (Some("trigger"), Some(ROUTING_KEY))
    );
    assert_eq!(event["payload"]["severity"], "critical");
    assert_eq!(event["payload"]["source"], "service/api");
    assert!(
        event["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("alert.firing on service/api"),
        "{event}"
    );
    let id = event["payload"]["custom_details"]["page"]
        .as_str()
        .unwrap()
        .to_string();
    let dedup = event["dedup_key"].as_str().unwrap().to_string();
    assert!(dedup.ends_with(&format!("/v1/pages/{id}")), "{dedup}");
    let links = event["links"].as_array().unwrap();
    assert!(
        links
            .iter()
            .any(|l| l["href"].as_str().unwrap().contains("/v1/decisions/D"))
            && links
                .iter()
                .any(|l| l["href"].as_str().unwrap().contains("sig=")),
        "the evidence and a signed acknowledgement: {event}"
    );
    let p = wait_for(
        "PagerDuty's answer journaled",
        Duration::from_secs(5),
        || {
            let p = page(&c, &s.base, &id);
            (p["attempts"][0]["delivery"]["state"] == "delivered").then_some(p)
        },
    );
    let answer = p["attempts"][0]["delivery"]["answer"].as_str().unwrap();
    assert!(
        answer.starts_with("answered 202") && answer.contains("Event processed"),
        "{answer}"
    );

    act(&c, &s.base, &id, "ack");
    act(&c, &s.base, &id, "resolve");
    let told = wait_for(
        "the acknowledge and the resolve",
        Duration::from_secs(15),
        || {
            let e = events(&pd_log);
            (e.len() >= 3).then_some(e)
        },
    );
    assert_eq!(told.len(), 3, "one event each: {told:?}");
    for (event, action) in told[1..].iter().zip(["acknowledge", "resolve"]) {
        assert_eq!(event["errors"], serde_json::json!([]), "{event}");
        assert_eq!(event["event"]["event_action"], action);
        assert_eq!(event["event"]["dedup_key"], dedup.as_str());
        assert_eq!(event["event"]["routing_key"], ROUTING_KEY);
    }
    let p = wait_for("every attempt journaled", Duration::from_secs(5), || {
        let p = page(&c, &s.base, &id);
        let a = p["attempts"].as_array().cloned().unwrap_or_default();
        (a.len() == 3 && a.iter().all(|a| a["delivery"]["state"] == "delivered")).then_some(p)
    });
    assert_eq!(p["attempts"][1]["tells"], "acknowledged", "{p}");
    assert_eq!(p["attempts"][2]["tells"], "resolved", "{p}");

    // The routing key is a credential: shown by its last four characters,
    // never whole, and nowhere in the data directory.
    let oncall = c
        .get(format!("{}/v1/oncall", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!oncall.contains(ROUTING_KEY), "{oncall}");
    drop(s);
    let journal = crate::secrets_are_never_stored::every_byte(&dir.join("data"));
    assert!(!crate::secrets_are_never_stored::contains(
        &journal,
        ROUTING_KEY
    ));
}

/// dana's PagerDuty cannot be reached: her webhook, written for ten
/// minutes later, is paged as soon as the first method has failed, and
/// the failure is on the page with why and how often it was tried.
#[test]
fn a_channel_that_is_down_moves_the_page_to_the_next_method() {
    let tmp = tempfile::tempdir().unwrap();
    let hook_log = tmp.path().join("dana.jsonl");
    let (_hook, hook_port) = common::receiver(None, &hook_log);
    let dir = tmp.path().join("ops");
    common::paged_deployment(&dir, 1, 1, "1h");
    let dead = common::free_port();
    reach_dana(
        &dir,
        &format!(
            "contact = {{ pagerduty = \"{ROUTING_KEY}\", webhook = \"http://127.0.0.1:{hook_port}/dana\" }}\nurgent = [\"pagerduty\", \"webhook after 10m\"]"
        ),
        &format!("http://127.0.0.1:{dead}/v2/enqueue"),
    );
    let s = serve_deployment(&dir, &TOKENS);
    let c = client();
    common::post_as(&c, &s.base, OPERATOR, &critical("down1", "api"));
    let hook = wait_for("dana's webhook", Duration::from_secs(20), || {
        requests(&hook_log).into_iter().next()
    });
    let id = body(&hook)["page"]["id"].as_str().unwrap().to_string();
    let p = page(&c, &s.base, &id);
    let attempts = p["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["method"], "pagerduty", "{p}");
    assert_eq!(attempts[0]["delivery"]["state"], "failed", "{p}");
    let why = attempts[0]["delivery"]["answer"].as_str().unwrap();
    assert!(
        why.contains("(after 3 tries)"),
        "retried with backoff: {why}"
    );
    assert_eq!(attempts[1]["method"], "webhook", "{p}");
}
