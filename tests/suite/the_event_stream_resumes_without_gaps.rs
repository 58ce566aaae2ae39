//! `GET /v1/events`: every engine event, numbered; a client that comes
//! back with `Last-Event-ID` gets what followed it, no gap and no repeat
//! (checked against the journal's decisions); an opened review item names
//! its decision and signal, sent before it; ids keep increasing across a
//! restart, and a client whose id is no longer held is told to reset; one
//! that stops reading is cut off with `lagged` rather than slowing the
//! engine.

use crate::common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use crate::common::{client, event, serve};
use serde_json::{Value, json};

/// Reads SSE events (id, type, data) from a streaming response until
/// `enough` says stop or the stream ends.
fn read_events(
    response: impl std::io::Read,
    mut enough: impl FnMut(&[(u64, String, Value)]) -> bool,
) -> Vec<(u64, String, Value)> {
    let mut out = Vec::new();
    let (mut id, mut name, mut data) = (0u64, String::new(), String::new());
    for line in BufReader::new(response).lines() {
        let Ok(line) = line else { break };
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().unwrap();
        } else if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        } else if line.is_empty() && !name.is_empty() {
            out.push((
                id,
                std::mem::take(&mut name),
                serde_json::from_str(&data).unwrap_or(Value::Null),
            ));
            data.clear();
            if enough(&out) {
                break;
            }
        }
    }
    out
}

/// A client that takes the stream as it is sent: plain, or (asking for
/// zstd) compressed, decoded by the test rather than the client.
fn raw_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(None)
        .no_zstd()
        .build()
        .unwrap()
}

/// The stream after `after`, zstd-compressed: decoded frame after frame.
fn zstd_stream(base: &str, after: u64) -> impl std::io::Read {
    let r = raw_client()
        .get(format!("{base}/v1/events"))
        .header("accept-encoding", "gzip, zstd;q=0.9")
        .header("last-event-id", after.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "zstd");
    zstd::stream::read::Decoder::new(r).unwrap()
}

fn stream(
    c: &reqwest::blocking::Client,
    base: &str,
    after: Option<u64>,
) -> reqwest::blocking::Response {
    let mut r = c.get(format!("{base}/v1/events"));
    if let Some(id) = after {
        r = r.header("last-event-id", id.to_string());
    }
    let r = r.send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    r
}

fn post_tickets(c: &reqwest::blocking::Client, base: &str, from: usize, to: usize) {
    let batch: Vec<Value> = (from..to)
        .map(|i| {
            event(
                &format!("t{i}"),
                "ticket.opened",
                "customer/c0001",
                json!({"customer": "c0001"}),
            )
        })
        .collect();
    let r = c
        .post(format!("{base}/v1/signals"))
        .header("content-type", "application/cloudevents-batch+json")
        .body(Value::Array(batch).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
}

/// `signalbox_event_stream_NAME_total` from /metrics.
fn stream_metric(base: &str, name: &str) -> u64 {
    common::metric(
        &client(),
        base,
        &format!("signalbox_event_stream_{name}_total"),
    ) as u64
}

fn journal_decisions(dir: &std::path::Path) -> Vec<String> {
    let db = rusqlite::Connection::open(dir.join("signalbox.db")).unwrap();
    let mut q = db
        .prepare("SELECT ref_id FROM audit WHERE kind = 'decision' ORDER BY seq")
        .unwrap();
    q.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn decisions(events: &[(u64, String, Value)]) -> Vec<String> {
    events
        .iter()
        .filter(|(_, name, _)| name == "decision")
        .map(|(_, _, d)| d["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_client_resumes_without_gap_or_repeat_and_ids_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap();
    let s = serve(dir.path(), &[]);
    // Plain first, then resumed compressed; after the restart, through
    // reqwest's own zstd decoding.
    let first = stream(&raw_client(), &s.base, None);
    assert!(first.headers().get("content-encoding").is_none());
    post_tickets(&client(), &s.base, 0, 50);
    // Read part of it, then go away.
    let seen = read_events(first, |e| decisions(e).len() >= 20);
    let last = seen.last().unwrap().0;
    post_tickets(&client(), &s.base, 50, 100);
    let rest = read_events(zstd_stream(&s.base, last), |e| {
        decisions(&seen).len() + decisions(e).len() >= 100
    });
    let ids: Vec<u64> = seen.iter().chain(&rest).map(|e| e.0).collect();
    assert_eq!(ids[0], 1);
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ids: {ids:?}"
    );
    let mut streamed = decisions(&seen);
    streamed.extend(decisions(&rest));
    let journaled = common::wait_for(
        "the journal to hold 100 decisions",
        Duration::from_secs(10),
        || {
            let d = journal_decisions(dir.path());
            (d.len() >= 100).then_some(d)
        },
    );
    assert_eq!(
        streamed, journaled,
        "the stream has every decision, once, in order"
    );
    // An opened item names its decision and signal, which came before it;
    // GET /v1/reviews/{id} gives it whole.
    let all: Vec<&(u64, String, Value)> = seen.iter().chain(&rest).collect();
    let opened: Vec<&Value> = all
        .iter()
        .filter(|e| e.1 == "review_opened")
        .map(|e| &e.2)
        .collect();
    assert!(!opened.is_empty(), "the tickets wait for review");
    for item in &opened {
        let (d, sig) = (
            item["decision_id"].as_str().unwrap(),
            item["signal_id"].as_str().unwrap(),
        );
        let before = all.iter().take_while(|e| !std::ptr::eq(&e.2, *item));
        let named: Vec<&str> = before
            .filter_map(|e| match e.1.as_str() {
                "decision" => e.2["id"].as_str(),
                "signal" => e.2["signal"]["id"].as_str(),
                _ => None,
            })
            .collect();
        assert!(named.contains(&d) && named.contains(&sig), "{item}");
    }
    let whole: Value = client()
        .get(format!(
            "{}/v1/reviews/{}",
            s.base,
            opened[0]["id"].as_str().unwrap()
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(whole["decision"]["id"], opened[0]["decision_id"], "{whole}");
    assert_eq!(whole["signal"]["id"], opened[0]["signal_id"], "{whole}");
    let missing = client()
        .get(format!("{}/v1/reviews/R-none", s.base))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);

    // /metrics counts what the stream sent, at least what was read here.
    let sent = stream_metric(&s.base, "events");
    assert!(sent >= ids.len() as u64, "{sent} < {}", ids.len());

    let last_before = *ids.last().unwrap();
    assert!(s.terminate().success());

    // After a restart: an id from before is not held, so the client resets;
    // new events go on from where the ids were.
    let s = serve(dir.path(), &[]);
    let state: Value = client()
        .get(format!("{}/v1/state", s.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        state["last_event_id"].as_u64().unwrap() >= last_before,
        "{}",
        state["last_event_id"]
    );
    let old = stream(&c, &s.base, Some(3));
    let reset = read_events(old, |e| !e.is_empty());
    assert_eq!(reset[0].1, "reset", "{reset:?}");
    let fresh = stream(&c, &s.base, Some(state["last_event_id"].as_u64().unwrap()));
    post_tickets(&client(), &s.base, 100, 101);
    let after = read_events(fresh, |e| !decisions(e).is_empty());
    assert!(
        after[0].0 > last_before,
        "ids keep increasing: {} after {last_before}",
        after[0].0
    );
}

#[test]
fn a_client_that_stops_reading_is_cut_off_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let stalled = stream(&raw_client(), &s.base, None);
    // Far more events than the hub holds for one client (five or so each).
    for n in 0..40 {
        post_tickets(&client(), &s.base, n * 200, (n + 1) * 200);
    }
    common::wait_for(
        "the engine to decide everything",
        Duration::from_secs(60),
        || (journal_decisions(dir.path()).len() >= 8000).then_some(()),
    );
    let events = read_events(stalled, |_| false);
    let (_, name, data) = events.last().unwrap();
    assert_eq!(name, "lagged", "{data}");
    assert!(data["missed"].as_u64().unwrap() > 0);
    assert_eq!(stream_metric(&s.base, "cut_off"), 1);
}
