//! The HTTP intake against the real server (`signalbox serve`) on a random
//! loopback port, with a real SQLite journal.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{client, decided, drained, event, metric, serve, serve_with_config};
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// Whether a signal is durable: still in the intake log, or already in the
/// journal (read over connections of their own, as another process would).
fn durable(dir: &Path, id: &str) -> bool {
    let count = |file: &str, sql: &str| -> i64 {
        let conn = rusqlite::Connection::open(dir.join(file)).unwrap();
        conn.query_row(sql, [id], |r| r.get(0)).unwrap()
    };
    count(
        "intake.db",
        "SELECT COUNT(*) FROM intake WHERE json_extract(body, '$.id') = ?1",
    ) + count("signalbox.db", "SELECT COUNT(*) FROM signals WHERE id = ?1")
        > 0
}

/// Signals the engine ignored as repeats, from `/metrics`: the sum over
/// every type.
fn duplicates(c: &Client, base: &str) -> f64 {
    common::metrics_text(c, base)
        .lines()
        .filter(|l| {
            l.starts_with("signalbox_signals_total{") && l.contains("outcome=\"duplicate\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn cloudevents_in_every_mode_are_journaled_before_202() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let c = client();
    let one = event(
        "e1",
        "ticket.opened",
        "customer/c0001",
        json!({"customer": "c0001", "text": "refund"}),
    );
    let r = c
        .post(format!("{}/v1/signals", s.base))
        .header("content-type", "application/cloudevents+json")
        .body(one.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), &v["ids"]),
        (Some(1), &json!(["e1"]))
    );
    // Acknowledged means durable: another connection sees it at once.
    assert!(durable(&s.dir, "e1"));
    let e1 = decided(&c, &s.base, "e1");
    assert!(e1.starts_with('D'), "{e1}");

    let batch = json!([
        event(
            "e2",
            "order.placed",
            "order/z2",
            json!({"customer": "c0002", "supplier": "baltic", "value": 50.0})
        ),
        event(
            "e1",
            "ticket.opened",
            "customer/c0001",
            json!({"customer": "c0001"})
        ),
    ]);
    let r = c
        .post(format!("{}/v1/signals", s.base))
        .header("content-type", "application/cloudevents-batch+json")
        .body(batch.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(v["accepted"].as_u64(), Some(2));
    assert!(durable(&s.dir, "e2"));
    decided(&c, &s.base, "e2");
    // The repeated e1 is accepted and ignored: counted, not decided again.
    assert_eq!(duplicates(&c, &s.base), 1.0);
    assert_eq!(decided(&c, &s.base, "e1"), e1);

    let r = c
        .post(format!("{}/v1/signals", s.base))
        .header("ce-specversion", "1.0")
        .header("ce-id", "e3")
        .header("ce-source", "shop")
        .header("ce-type", "order.placed")
        .header("ce-subject", "order/z3")
        .header("content-type", "application/json")
        .body(json!({"customer": "c0003", "supplier": "delta", "value": 75.0}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);

    let r = c
        .post(format!("{}/v1/signals", s.base))
        .header("content-type", "application/json")
        .body(
            json!([event(
                "e4",
                "health.changed",
                "service/erp",
                json!({"health": "degraded"})
            )])
            .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    decided(&c, &s.base, "e3");
    decided(&c, &s.base, "e4");
    assert_eq!(signalbox::journal::read::counts(&s.dir).unwrap().signals, 4);
    let r = c.get(format!("{}/v1/signals/nope", s.base)).send().unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().unwrap().contains("not received"));
}

#[test]
fn a_backlog_past_its_limit_is_refused_with_503_and_retry_after_then_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_with_config(
        &dir.path().join("d"),
        &[],
        Some("[intake]\nmax_backlog = 100\n"),
    );
    let c = client();
    let batch: Vec<Value> = (0..2000)
        .map(|i| {
            event(
                &format!("b{i}"),
                "ticket.opened",
                "customer/c0001",
                json!({"customer": "c0001"}),
            )
        })
        .collect();
    let r = c
        .post(format!("{}/v1/signals", s.base))
        .header("content-type", "application/cloudevents-batch+json")
        .body(Value::Array(batch).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().unwrap()["accepted"], 2000);
    // 2,000 acknowledged and not yet decided, against a limit of 100.
    let one = event(
        "late",
        "ticket.opened",
        "customer/c0001",
        json!({"customer": "c0001"}),
    )
    .to_string();
    let post = || {
        c.post(format!("{}/v1/signals", s.base))
            .header("content-type", "application/cloudevents+json")
            .body(one.clone())
            .send()
            .unwrap()
    };
    let r = post();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("wait to be decided"),
        "{v}"
    );
    assert!(
        !durable(&s.dir, "late"),
        "a refused signal is not journaled"
    );
    assert_eq!(
        metric(
            &c,
            &s.base,
            "signalbox_refused_total{endpoint=\"signals\",status=\"503\"} "
        ),
        1.0
    );
    // Once the engine has caught up, the same signal is taken.
    drained(&c, &s.base);
    assert_eq!(post().status(), 202);
    decided(&c, &s.base, "late");
    decided(&c, &s.base, "b1999");
}

#[test]
fn bad_requests_get_json_errors_naming_the_field_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &["--body-limit", "2048"]);
    let c = client();
    let post = |ct: &str, body: String| {
        c.post(format!("{}/v1/signals", s.base))
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap()
    };
    let r = post(
        "application/cloudevents+json",
        "{\"specversion\":\"1.0\",".into(),
    );
    assert_eq!(r.status(), 400);
    let v: Value = r.json().unwrap();
    assert!(v["error"].as_str().unwrap().contains("malformed"), "{v}");

    let r = post(
        "application/cloudevents+json",
        json!({"specversion": "1.0", "id": "x", "source": "s"}).to_string(),
    );
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "type");

    let r = post(
        "application/cloudevents-batch+json",
        json!([event("ok", "ticket.opened", "", json!({})), {"specversion": "1.0", "id": 5}])
            .to_string(),
    );
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "[1].id");
    assert!(!durable(&s.dir, "ok"), "a bad batch is refused whole");

    assert_eq!(post("text/plain", "hello".into()).status(), 415);
    let big = event(
        "big",
        "ticket.opened",
        "",
        json!({"text": "x".repeat(4096)}),
    )
    .to_string();
    assert_eq!(post("application/cloudevents+json", big).status(), 413);

    let metrics = c
        .get(format!("{}/metrics", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for status in ["400", "413", "415"] {
        assert!(
            metrics.contains(&format!("endpoint=\"signals\",status=\"{status}\"")),
            "{metrics}"
        );
    }
}

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
    assert_eq!(duplicates(&c, &s.base), 1.0);
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

#[test]
fn a_public_address_without_tokens_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without any token"));
}

#[test]
fn kill_9_mid_stream_keeps_every_acknowledged_signal_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let base = s.base.clone();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let acked = std::sync::Arc::clone(&acked);
            let base = base.clone();
            std::thread::spawn(move || {
                let c = Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                for i in 0..625 {
                    let id = format!("k-{t}-{i}");
                    let body = event(
                        &id,
                        "ticket.opened",
                        "customer/c0001",
                        json!({"customer": "c0001"}),
                    )
                    .to_string();
                    match c
                        .post(format!("{base}/v1/signals"))
                        .header("content-type", "application/cloudevents+json")
                        .body(body)
                        .send()
                    {
                        Ok(r) if r.status() == 202 => acked.lock().unwrap().push(id),
                        Ok(_) => {}
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Let a good share through, then SIGKILL mid-stream.
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if acked.lock().unwrap().len() >= 2000 {
            break;
        }
    }
    let mut s = s;
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 2000 && acked.len() < 10_000,
        "killed mid-stream: {}",
        acked.len()
    );
    // Restart on the same journal; once the engine has decided what the
    // intake log still held, look.
    let s2 = serve(&s.dir, &[]);
    drained(&client(), &s2.base);
    drop(s2);
    let conn = rusqlite::Connection::open(s.dir.join("signalbox.db")).unwrap();
    let mut missing = 0;
    for id in &acked {
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM signals WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(n <= 1);
        missing += usize::from(n == 0);
    }
    assert_eq!(missing, 0, "every 202 is in the journal");
    let counts = signalbox::journal::read::counts(&s.dir).unwrap();
    assert_eq!(
        counts.undecided_signals, 0,
        "restart decided what was acknowledged"
    );
}

#[test]
fn a_jsonl_source_reports_bad_lines_by_number_and_goes_on_and_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let lines = [
        event(
            "f1",
            "ticket.opened",
            "customer/c0001",
            json!({"customer": "c0001"}),
        )
        .to_string(),
        "not json".to_string(),
        json!({"specversion": "1.0", "id": "f2", "source": "file"}).to_string(),
        String::new(),
        event(
            "f3",
            "health.changed",
            "service/erp",
            json!({"health": "down"}),
        )
        .to_string(),
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("d"))
        .arg("--source")
        .arg(format!("jsonl:{}", input.display()))
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("bad") {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
    }
    assert!(seen.contains("in.jsonl:2: malformed JSON"), "{seen}");
    assert!(seen.contains("in.jsonl:3: missing field `type`"), "{seen}");
    assert!(
        seen.contains("2 accepted") && seen.contains("2 bad"),
        "{seen}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("journal closed"));
    let counts = signalbox::journal::read::counts(&dir.path().join("d")).unwrap();
    assert_eq!(counts.signals, 2);
}

/// A tiny HTTP endpoint whose answer the test switches between 200 and 500.
fn switchable_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{Read, Write};
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let flag = std::sync::Arc::clone(&healthy);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let status = if flag.load(std::sync::atomic::Ordering::SeqCst) {
                "200 OK"
            } else {
                "500 Internal Server Error"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
    });
    (format!("http://{addr}/health"), healthy)
}

#[test]
fn probes_turn_state_changes_into_health_signals() {
    let dir = tempfile::tempdir().unwrap();
    let (url, healthy) = switchable_endpoint();
    let data = dir.path().join("d");
    let config = format!(
        "[[probe]]\nname = \"payments\"\nurl = \"{url}\"\ninterval = \"100ms\"\ntimeout = \"1s\"\n"
    );
    let _server = serve_with_config(&data, &[], Some(&config));
    let health = || -> Vec<String> {
        let Ok(conn) = rusqlite::Connection::open(data.join("signalbox.db")) else {
            return Vec::new();
        };
        let Ok(mut stmt) = conn.prepare(
            "SELECT json_extract(body, '$.data.health') FROM signals WHERE type = 'health.changed' ORDER BY seq",
        ) else {
            return Vec::new();
        };
        stmt.query_map([], |r| r.get::<_, String>(0))
            .map(|r| r.filter_map(Result::ok).collect())
            .unwrap_or_default()
    };
    let wait = |want: &[&str]| {
        let began = std::time::Instant::now();
        loop {
            let seen = health();
            if seen == want {
                return;
            }
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "health signals {seen:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait(&["up"]);
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    wait(&["up", "down"]);
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    wait(&["up", "down", "up"]);
}

#[test]
fn a_failing_webhook_opens_its_breaker_takes_the_fallback_and_closes_on_recovery() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let healthy = Arc::new(AtomicBool::new(false));
    let keys = Arc::new(Mutex::new(Vec::<String>::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/wms", listener.local_addr().unwrap());
    {
        let (healthy, keys) = (Arc::clone(&healthy), Arc::clone(&keys));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                if let Some(k) = request
                    .lines()
                    .find_map(|l| l.strip_prefix("idempotency-key: "))
                {
                    keys.lock().unwrap().push(k.trim().to_string());
                }
                let status = if healthy.load(Ordering::SeqCst) {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let config = format!(
        "[webhooks]\nwms = \"{hook}\"\n\n[execution]\nretry_base = \"50ms\"\nbreaker_cooldown = \"1s\"\n"
    );
    let server = serve_with_config(&data, &[], Some(&config));
    let base = server.base.clone();
    let c = client();
    let post = |e: Value| {
        let r = c
            .post(format!("{base}/v1/signals"))
            .header("content-type", "application/cloudevents+json")
            .body(e.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
        let id = r.json::<Value>().unwrap()["ids"][0]
            .as_str()
            .unwrap()
            .to_string();
        Some(decided(&c, &base, &id))
    };
    // An open escalation forces expedited fulfilment: a priority pick on
    // the warehouse system, which is the webhook.
    post(event(
        "esc",
        "escalation.opened",
        "customer/c0001",
        json!({"customer": "c0001"}),
    ));
    let order = |n: u32| {
        post(event(
            &format!("o{n}"),
            "order.placed",
            &format!("order/w{n}"),
            json!({"customer": "c0001", "supplier": "delta", "value": 90.0}),
        ))
        .unwrap()
    };
    let metrics = || {
        c.get(format!("{base}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let began = std::time::Instant::now();
        while !ok() {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}:\n{}",
                metrics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let first = order(1);
    let second = order(2);
    wait("the breaker to open", &|| {
        metrics().contains("signalbox_breaker_open{executor=\"wms\",state=\"open\"} 1")
    });
    let explain = |d: &str| {
        c.get(format!("{base}/v1/decisions/{d}"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    wait("the fallback to people", &|| {
        explain(&first).contains("fallback to people")
    });
    let third = order(3);
    wait("the third order to go to people at once", &|| {
        let e = explain(&third);
        e.contains("fulfillment.priority_pick order/w3 → agent:")
            || e.contains("fulfillment.priority_pick order/w3 → team:")
    });
    // The endpoint recovers; after the cooldown one probe closes the breaker.
    healthy.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1200));
    let fourth = order(4);
    wait("the breaker to close", &|| {
        metrics().contains("signalbox_breaker_open{executor=\"wms\",state=\"closed\"} 0")
    });
    wait("the fourth order's pick done by the webhook", &|| {
        explain(&fourth).contains("fulfillment.priority_pick done")
    });
    let keys = keys.lock().unwrap().clone();
    assert!(keys.iter().all(|k| k.split(':').count() == 3), "{keys:?}");
    assert!(keys.len() >= 5, "retries were sent: {keys:?}");
    let _ = second;
}
