//! Any node of a cluster answers the HTTP API and the event stream for the
//! whole cluster: review items opened from signals posted to one node are
//! listed, paged and acted on through another (as the token's identity, and
//! with its role checked), `/v1/state` adds up every partition, a silence
//! made through one node (by the real `amtool`) holds in every partition
//! under one id, the event stream of a node carries the other's events
//! and a client goes on from one node's stream on the other's, each
//! node's `/metrics` (checked by `promtool`) shows the partitions it runs,
//! and after a node is killed its partitions answer again through the
//! survivor.

use crate::cluster_harness::Cluster;
use crate::common::{self, Kill};

use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

const OPS: &str = "ops-secret-1";
const VIEW: &str = "view-secret-1";

/// `GET path` on `base` as `token`: the status and the JSON body.
fn get(base: &str, path: &str, token: &str) -> (u16, Value) {
    let r = common::client()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// `POST path` with a JSON body on `base` as `token`.
fn post(base: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let r = common::client()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// Every open review item's id, following the list's cursor page by page
/// through `base`; listed again while a partition does not answer (503,
/// "a takeover may be under way, try again", as a client does).
fn review_ids(base: &str) -> Vec<String> {
    common::wait_for(
        "every partition to answer the review list",
        Duration::from_secs(30),
        || review_ids_once(base),
    )
}

fn review_ids_once(base: &str) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    let mut path = "/v1/reviews?limit=1".to_string();
    loop {
        let (status, page) = get(base, &path, VIEW);
        if status == 503 {
            return None;
        }
        assert_eq!(status, 200, "{page}");
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/reviews?limit=1&after={next}"),
            None => return Some(ids),
        }
    }
}

/// One event as a stream sent it.
type Event = (u64, String, Value);

/// The events `base` streams (from now on, or after `last` as a
/// `Last-Event-ID`), as (id, name, data), read in a thread until the
/// stream ends.
fn follow(base: &str, last: Option<u64>) -> Arc<Mutex<Vec<Event>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let mut asked = reqwest::blocking::Client::builder()
        .build()
        .unwrap()
        .get(format!("{base}/v1/events"))
        .bearer_auth(VIEW);
    if let Some(last) = last {
        asked = asked.header("last-event-id", last.to_string());
    }
    let response = asked.send().unwrap();
    assert_eq!(response.status(), 200);
    std::thread::spawn(move || {
        let (mut id, mut name) = (0, String::new());
        for line in std::io::BufReader::new(response).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("id: ") {
                id = n.parse().unwrap_or(0);
            } else if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let data = serde_json::from_str(data).unwrap_or(Value::Null);
                seen.lock().unwrap().push((id, name.clone(), data));
            }
        }
    });
    events
}

/// `promtool check metrics` (Prometheus's own) reads `text` without a
/// complaint.
fn promtool_accepts(text: &str) {
    let checked = common::promtool(text);
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// The health signals decided so far, through `base`.
fn health_signals(base: &str) -> usize {
    let (_, history) = get(base, "/v1/history?limit=1000", VIEW);
    history["history"].as_array().map_or(0, |h| {
        h.iter()
            .filter(|h| h["signal"]["type"] == "health.changed")
            .count()
    })
}

/// The ids of the signals among `events`.
fn signal_ids(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|(_, name, _)| name == "signal")
        .filter_map(|(_, _, d)| Some(d["signal"]["id"].as_str()?.to_string()))
        .collect()
}

#[test]
fn any_node_answers_the_api_and_the_event_stream_for_the_whole_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut cluster, _nats) = Cluster::new(tmp.path(), 1, 2);
    let toml = cluster.deployment.join("signalbox.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!("tokens = [\"{OPS}:operator:olive\", \"{VIEW}:viewer:vic\"]\n{text}"),
    )
    .unwrap();
    cluster.token = Some(VIEW.into());
    // A health probe of the service `api` (node a's own health): run by
    // the owner of its partition.
    let org = cluster.deployment.join("organization.toml");
    let text = std::fs::read_to_string(&org).unwrap();
    let probe = format!(
        "probe = {{ url = \"http://127.0.0.1:{}/healthz\", interval = \"1s\", timeout = \"2s\" }}",
        cluster.ports[0]
    );
    let text = text.replacen("# probe = { url = \"https://api.internal/healthz\", interval = \"15s\", timeout = \"2s\" }", &probe, 1);
    assert!(text.contains(&probe), "the starter's probe line moved");
    std::fs::write(&org, text).unwrap();
    // Its health signals fold into the context: the starter declares
    // `health.changed`.
    let mut nodes: Vec<Option<Kill>> = (0..2).map(|i| Some(cluster.start_node(i))).collect();
    cluster.settled(&[0, 1], Duration::from_secs(60));
    let (a, b) = (cluster.base(0), cluster.base(1));
    let events = follow(&b, None);

    // Four signals nobody catalogued (each a review item) through a; six
    // tickets through b.
    let c = common::client();
    for i in 0..4 {
        let e = common::event(
            &format!("u{i}"),
            "mystery.thing",
            &format!("thing/{i}"),
            json!({}),
        );
        common::post_as(&c, &a, OPS, &e);
    }
    for i in 0..6 {
        let e = common::event(
            &format!("t{i}"),
            "ticket.opened",
            &format!("ticket/{i}"),
            json!({"ticket": format!("T{i}")}),
        );
        common::post_as(&c, &b, OPS, &e);
    }

    // b lists a's items, one page at a time, each once.
    let ids = common::wait_for(
        "four review items listed through b",
        Duration::from_secs(30),
        || {
            let ids = review_ids(&b);
            (ids.len() == 4).then_some(ids)
        },
    );
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 4, "ids name one item in the cluster: {ids:?}");

    // Acted on through a: as the token's identity, its role checked.
    let item = &ids[0];
    let approve = json!({"action": "approve", "note": "seen"});
    let (status, refused) = post(&a, &format!("/v1/reviews/{item}/actions"), VIEW, &approve);
    assert_eq!(status, 403, "{refused}");
    let (status, done) = post(&a, &format!("/v1/reviews/{item}/actions"), OPS, &approve);
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["actor"], "olive");
    let (status, _) = post(&b, "/v1/reviews/R9999999/actions", OPS, &approve);
    assert_eq!(status, 404, "an item no partition has");
    assert_eq!(review_ids(&b).len(), 3);
    let decision = done["decision"].as_str().unwrap();
    let (status, explained) = get(&b, &format!("/v1/decisions/{decision}"), VIEW);
    assert_eq!(status, 200, "{explained}");

    // One model: the person's answer, learnt in one partition, reaches
    // every partition's model through the model stream.
    let model = common::wait_for(
        "every partition's model to learn the answer",
        Duration::from_secs(30),
        || {
            let (_, state) = get(&b, "/v1/state?part=overview", VIEW);
            let version = state["overview"]["model_version"].as_str()?.to_string();
            // Partitions still apart read "A to B".
            (!version.contains(" to ") && !version.ends_with("@0")).then_some(version)
        },
    );

    // The probe ran in the cluster: its health signal was decided (once
    // per start of its partition: on a, and again if handed back to b).
    let probed = common::wait_for("the probe's health signal", Duration::from_secs(30), || {
        let n = health_signals(&a);
        (n > 0).then_some(n)
    });
    assert!(
        probed <= 2,
        "{probed} health signals: the probe ran on more than its owner"
    );

    // The state adds up every partition.
    let (status, state) = get(&a, "/v1/state", VIEW);
    assert_eq!(status, 200, "{state}");
    // By the hour, from every partition's journal: the ten, and the
    // probe's first reading wherever it ran. Counted since each partition
    // started, no more (a partition that changed nodes under load, its
    // lease lapsing on a busy machine, counts again from its start there).
    let overview = &state["overview"];
    let hourly: i64 = (overview["hourly"].as_array().unwrap().iter())
        .map(|h| h["signals"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(hourly, 10 + probed as i64, "{overview}");
    let since_start = overview["signals"].as_i64().unwrap();
    assert!((1..=hourly).contains(&since_start), "{overview}");
    assert_eq!(state["overview"]["open_reviews"], 3);
    assert_eq!(state["reviews"].as_array().unwrap().len(), 3);
    assert_eq!(
        state["overview"]["attached"], 0,
        "a's own stream has no client"
    );

    // A silence made through b by amtool holds in every partition, under
    // one id; ended through a.
    let http = tmp.path().join("amtool.yml");
    std::fs::write(
        &http,
        format!("authorization:\n  type: Bearer\n  credentials: {OPS}\n"),
    )
    .unwrap();
    let amtool = |base: &str, args: &[&str]| {
        let out = Command::new("amtool")
            .arg(format!("--alertmanager.url={base}"))
            .arg(format!("--http.config.file={}", http.display()))
            .args(args)
            .output()
            .expect("amtool (Debian's prometheus-alertmanager) must be installed");
        assert!(
            out.status.success(),
            "amtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let id = amtool(
        &b,
        &[
            "silence",
            "add",
            "service=api",
            "--duration=1h",
            "--comment=maintenance",
        ],
    );
    let (_, silences) = get(&a, "/api/v2/silences", VIEW);
    let listed: Vec<&Value> = silences
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"] == id.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "listed once: {silences}");
    assert_eq!(listed[0]["createdBy"], "olive");
    amtool(&a, &["silence", "expire", &id]);
    let (_, silence) = get(&b, &format!("/api/v2/silence/{id}"), VIEW);
    assert_eq!(silence["status"]["state"], "expired", "{silence}");

    // b's event stream carried what a decided and what was done there.
    let seen = common::wait_for(
        "b's stream to carry every signal and the action",
        Duration::from_secs(30),
        || {
            let events = events.lock().unwrap();
            let signals: BTreeSet<String> = signal_ids(&events).into_iter().collect();
            let acted = events
                .iter()
                .any(|(_, name, d)| name == "review_action" && d["item"]["id"] == item.as_str());
            (signals.len() == 10 && acted).then_some(events.len())
        },
    );
    println!("b's event stream: {seen} events, every signal and the action taken through a");

    // A client that read b's stream goes on from a with its last id: the
    // events after it, without a gap or a repeat.
    let last = events.lock().unwrap().last().map(|(id, _, _)| *id).unwrap();
    let more: Vec<String> = (10..13).map(|i| format!("t{i}")).collect();
    for id in &more {
        let e = common::event(
            id,
            "ticket.opened",
            &format!("ticket/{id}"),
            json!({"ticket": id}),
        );
        common::post_as(&c, &b, OPS, &e);
    }
    let resumed = follow(&a, Some(last));
    let went_on = common::wait_for(
        "a's stream to go on from b's id",
        Duration::from_secs(30),
        || {
            let resumed = resumed.lock().unwrap();
            (signal_ids(&resumed).len() >= more.len()).then(|| resumed.clone())
        },
    );
    let mut got = signal_ids(&went_on);
    got.sort();
    assert_eq!(got, more, "only what followed b's last id, each once");
    assert!(
        went_on
            .iter()
            .all(|(id, name, _)| *id > last && name != "reset"),
        "{went_on:?}"
    );

    // Each node's /metrics: its own intake, and the partitions it runs,
    // each labelled; scraping both sees every partition once.
    let mut signals = 0.0;
    for base in [&a, &b] {
        let text = common::client()
            .get(format!("{base}/metrics"))
            .bearer_auth(VIEW)
            .send()
            .unwrap()
            .text()
            .unwrap();
        promtool_accepts(&text);
        signals += text
            .lines()
            .filter(|l| l.starts_with("signalbox_signals_total{partition=\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    assert_eq!(
        signals, 14.0,
        "every signal (and the probe's) counted once over both nodes"
    );

    // b dies: its partitions answer through a once a has taken them.
    nodes[1] = None;
    let began = std::time::Instant::now();
    common::wait_for(
        "a to answer for every partition again",
        Duration::from_secs(60),
        || {
            let (status, _) = get(&a, "/v1/reviews", VIEW);
            (status == 200).then_some(())
        },
    );
    assert_eq!(
        review_ids(&a).len(),
        3,
        "b's items, from the stream, through a"
    );
    let (_, state) = get(&a, "/v1/state?part=overview", VIEW);
    assert_eq!(
        state["overview"]["model_version"],
        model.as_str(),
        "b's partitions, rebuilt on a, learnt the model stream again"
    );
    println!(
        "kill -9 of b: a answers for the whole cluster after {:?}",
        began.elapsed()
    );
}
