//! Identity and role come from the bearer token: what each role may do, and
//! a public address without tokens refused at start.

use std::process::Command;
use std::time::Duration;

use crate::common::{client, event, serve};
use serde_json::{Value, json};

#[test]
fn tokens_and_roles_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        dir.path(),
        &[
            "--token",
            "ingest-secret:ingest",
            "--token",
            "viewer-secret:viewer",
            "--token",
            "operator-secret:operator",
            "--token",
            "lead-secret-1:lead:lars",
        ],
    );
    let c = client();
    let body = event(
        "t1",
        "approval.requested",
        "approval/1",
        json!({"amount": 80000.0}),
    )
    .to_string();
    let send = |token: Option<&str>| {
        let mut r = c
            .post(format!("{}/v1/signals", s.base))
            .header("content-type", "application/cloudevents+json")
            .body(body.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap().status()
    };
    assert_eq!(send(None), 401);
    assert_eq!(send(Some("wrong-token-x")), 401);
    assert_eq!(send(Some("viewer-secret")), 403);
    assert_eq!(send(Some("ingest-secret")), 202);

    // Reviews: the ingest token may not read; a viewer may read, not act.
    assert_eq!(
        c.get(format!("{}/v1/reviews", s.base))
            .bearer_auth("ingest-secret")
            .send()
            .unwrap()
            .status(),
        403
    );
    // The 202 came once t1 was durable; its review item opens once the
    // engine has decided it.
    let began = std::time::Instant::now();
    let list = loop {
        let list: Value = c
            .get(format!("{}/v1/reviews", s.base))
            .bearer_auth("viewer-secret")
            .send()
            .unwrap()
            .json()
            .unwrap();
        if list["items"][0].is_object() {
            break list;
        }
        assert!(began.elapsed() < Duration::from_secs(20), "no review item");
        std::thread::sleep(Duration::from_millis(20));
    };
    let item = list["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list["items"][0]["required_role"], "lead");
    let act = |token: &str, action: Value| {
        c.post(format!("{}/v1/reviews/{item}/actions", s.base))
            .bearer_auth(token)
            .json(&action)
            .send()
            .unwrap()
    };
    assert_eq!(
        act("viewer-secret", json!({"action": "approve"})).status(),
        403
    );
    let r = act(
        "operator-secret",
        json!({"action": "approve", "note": "ok"}),
    );
    assert_eq!(r.status(), 403, "lead-only item");
    assert!(
        r.json::<Value>().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("lead")
    );
    // Who acts comes from the token alone: a body naming someone (here the
    // operator trying to act as the lead) is refused, and changes nothing.
    let r = act(
        "operator-secret",
        json!({"action": "approve", "note": "as lars", "actor": "lars"}),
    );
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "actor");
    let r = act(
        "lead-secret-1",
        json!({"action": "approve", "note": "checked the contract"}),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["actor"], "lars");
    let r = act("lead-secret-1", json!({"action": "reject", "note": "no"}));
    assert_eq!(r.status(), 409, "already decided");

    let decision = item.replacen('R', "D", 1);
    let e: Value = c
        .get(format!("{}/v1/decisions/{decision}", s.base))
        .bearer_auth("viewer-secret")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(e["actions"][0]["actor"]["name"], "lars");
    assert_eq!(e["chain"]["verifies"], true);
    assert_eq!(
        c.get(format!("{}/v1/decisions/D9999999", s.base))
            .bearer_auth("viewer-secret")
            .send()
            .unwrap()
            .status(),
        404
    );
}

#[test]
fn a_public_address_without_tokens_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--demo", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without any token"));
}
