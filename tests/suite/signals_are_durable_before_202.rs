//! Signals over HTTP against the real server (`signalbox serve`) on a
//! loopback port: journaled before 202 in every CloudEvents mode, refused
//! with 503 past the backlog, kept exactly once through `kill -9`, and
//! read from a JSON-lines source.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{client, decided, drained, event, metric, serve, serve_with_config};
use reqwest::blocking::Client;
use serde_json::{Value, json};

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
    assert!(common::durable(&s.dir, "e1"));
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
    assert!(common::durable(&s.dir, "e2"));
    decided(&c, &s.base, "e2");
    // The repeated e1 is accepted and ignored: counted, not decided again.
    assert_eq!(common::duplicates(&c, &s.base), 1.0);
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
        !common::durable(&s.dir, "late"),
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
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
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
