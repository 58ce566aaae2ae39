//! What a hostile sender or a careless policy author does cannot brick,
//! stall or starve signalbox: a record the journal cannot read is set
//! aside and the start goes on; a signal walked by nested comprehensions
//! is decided within the evaluation budget; a restart over signals that
//! share one id is linear; a deployment's journal is never decided with
//! the demo's policies; streams cannot take the request slots; claims are
//! exclusive; the bearer scheme is case-insensitive; `signalbox:` sources
//! are refused however they are spelled.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{client, event, serve, serve_deployment, wait_for};
use serde_json::{Value, json};

fn sb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(args)
        .output()
        .unwrap()
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("signalbox.db")).unwrap()
}

#[test]
fn records_the_journal_cannot_read_are_set_aside_and_the_start_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (engine, item) = common::engine_with_item(dir, 20_000.0);
    engine.close().unwrap();
    {
        // As an older version might have left them: an open review whose
        // row no longer reads, and an acknowledged signal whose time is
        // past what the journal can read back.
        let conn = db(dir);
        conn.execute(
            "UPDATE reviews SET body = '{\"id\": 7' WHERE id = ?1",
            [&item],
        )
        .unwrap();
        let far = json!({"specversion": "1.0", "id": "far", "source": "old", "type": "ticket.opened",
                         "subject": "customer/c0001", "time": "+10000-01-01T23:58:59Z", "data": {}});
        conn.execute(
            "INSERT INTO signals (id, source, type, subject, time, body)
             VALUES ('far', 'old', 'ticket.opened', 'customer/c0001', '+10000-01-01T23:58:59Z', ?1)",
            [far.to_string()],
        )
        .unwrap();
    }
    let dir_arg = dir.to_str().unwrap();
    for round in 0..2 {
        let out = sb(&["check", "--data-dir", dir_arg]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "round {round}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("set aside: reviews {item}")),
            "{text}"
        );
        assert!(text.contains("set aside: signals"), "{text}");
    }
    let out = sb(&["quarantine", "list", "--data-dir", dir_arg, "--json"]);
    let held: Value = serde_json::from_slice(&out.stdout).unwrap();
    let far = held
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["signal_id"] == "far")
        .unwrap_or_else(|| panic!("the unreadable signal is held: {held}"));
    assert!(
        far["error"]
            .as_str()
            .unwrap()
            .contains("cannot be read back"),
        "{far}"
    );
    let raw: String = db(dir)
        .query_row(
            "SELECT raw FROM set_aside WHERE tbl = 'reviews' AND key = ?1",
            [&item],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(raw, "{\"id\": 7", "the raw text is kept as it was");
    // The engine opens on it in-process too, and the item is gone from
    // the queue rather than stopping the start.
    let engine = common::engine(dir);
    assert!(engine.open_reviews().is_empty());
    engine.close().unwrap();
}

#[test]
fn a_restart_over_signals_sharing_one_id_is_linear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::engine(dir).close().unwrap();
    // 20,000 decided signals sharing one id across sources: a query that
    // joined signals to decisions by id alone took 31 s for these.
    const N: usize = 20_000;
    {
        let mut conn = db(dir);
        let tx = conn.transaction().unwrap();
        for i in 0..N {
            let source = format!("src-{i}");
            let body = json!({"specversion": "1.0", "id": "same", "source": source,
                              "type": "order.placed", "subject": "order/x",
                              "time": "2026-03-31T08:00:00Z"});
            tx.execute(
                "INSERT INTO signals (id, source, type, subject, time, body)
                 VALUES ('same', ?1, 'order.placed', 'order/x', '2026-03-31T08:00:00Z', ?2)",
                [&source, &body.to_string()],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO audit (kind, ref_id, decision_id, signal_id, signal_source, time, body,
                                    prev_hash, hash)
                 VALUES ('decision', ?1, ?1, 'same', ?2, '2026-03-31T08:00:00Z', '{}', '', '')",
                [&format!("X{i}"), &source],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    // A liveness bound, not a speed figure (benches/restart.sh has those):
    // linear, this is well under a second; quadratic, minutes.
    let dir_owned = dir.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(signalbox::journal::read::counts(&dir_owned).unwrap());
    });
    let counts = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the journal's counts within two minutes");
    assert_eq!(counts.signals as usize, N);
    assert_eq!(counts.undecided_signals, 0);
    // Every identity came back: a repeat of one is known as such.
    let mut engine = common::engine(dir);
    let mut again = common::signal("same", "order.placed", "order/x", json!({}));
    again.source = "src-7".into();
    assert!(matches!(
        engine.ingest(again, signalbox::sim::default_start()),
        signalbox::engine::Ingested::Duplicate
    ));
    engine.close().unwrap();
}

/// Adds `rules` rules to the deployment in `ops` that each walk every pair
/// of a certificate's `items` (declared as a list), asking for review.
fn with_pair_rules(ops: &Path, rules: usize) {
    let mut policies = std::fs::read_to_string(ops.join("policies.toml")).unwrap();
    for n in 0..rules {
        policies.push_str(&format!(
            "\n[[rule]]\nid = \"pairs{n}\"\ntypes = [\"certificate.expiring\"]\n\
             when = \"signal.data.items.exists(a, signal.data.items.exists(b, a + b < {n} - 100))\"\n\
             require_review = true\nreason = \"every pair of items\"\n"
        ));
    }
    std::fs::write(ops.join("policies.toml"), policies).unwrap();
    let playbook = std::fs::read_to_string(ops.join("playbook.toml")).unwrap();
    std::fs::write(
        ops.join("playbook.toml"),
        playbook.replacen(
            "fields = { host = \"string\", days_left = \"number\" }",
            "fields = { host = \"string\", days_left = \"number\", items = \"list?\" }",
            1,
        ),
    )
    .unwrap();
}

#[test]
fn a_signal_walked_by_nested_comprehensions_is_decided_within_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path().join("ops");
    common::init(&ops);
    with_pair_rules(&ops, 1);
    let s = serve_deployment(&ops, &[]);
    let c = client();
    // The largest list intake accepts: 10,000 items, 100 M pairs.
    let items: Vec<u32> = (0..10_000).collect();
    let e = event(
        "pairs",
        "certificate.expiring",
        "certificate/www",
        json!({"host": "www", "days_left": 9, "items": items}),
    );
    assert_eq!(common::post_event(&c, &s.base, &e).status(), 202);
    let id = common::decided(&c, &s.base, "pairs");
    let explained: Value = c
        .get(format!("{}/v1/decisions/{id}", s.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let decision = &explained["decision"];
    let errors = decision["policy_errors"].to_string();
    assert!(
        errors.contains("budget"),
        "the rule failed on its budget: {decision}"
    );
    assert_eq!(
        decision["mode"], "review",
        "a failed rule applies at its strictest"
    );
    // The engine goes on.
    let next = event(
        "after",
        "certificate.expiring",
        "certificate/api",
        json!({"host": "api", "days_left": 9}),
    );
    assert_eq!(common::post_event(&c, &s.base, &next).status(), 202);
    assert_eq!(common::settled(&c, &s.base, "after")["state"], "decided");
}

#[test]
fn a_deployments_journal_is_decided_only_under_its_own_policies() {
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path().join("ops");
    common::init(&ops);
    {
        let s = serve_deployment(&ops, &[]);
        let c = client();
        let e = event(
            "t1",
            "ticket.opened",
            "customer/acme",
            json!({"ticket": "T-1"}),
        );
        assert_eq!(common::post_event(&c, &s.base, &e).status(), 202);
        common::settled(&c, &s.base, "t1");
    }
    let data = ops.join("data");
    let (ops_arg, data_arg) = (ops.to_str().unwrap(), data.to_str().unwrap());
    for args in [
        vec!["check", "--data-dir", data_arg],
        vec!["replay", "--data-dir", data_arg],
        vec!["quarantine", "retry", "x", "--data-dir", data_arg],
    ] {
        let out = sb(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} decided under the demo's policies"
        );
        assert!(
            stderr.contains("was written by the deployment") && stderr.contains("--config"),
            "{args:?}: {stderr}"
        );
    }
    let out = sb(&["check", "--config", ops_arg, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts["decided_signals"], 1);
    // And the demo's journal is not opened as a deployment's.
    let demo = tmp.path().join("demo");
    common::engine(&demo).close().unwrap();
    let out = sb(&[
        "check",
        "--config",
        ops_arg,
        "--data-dir",
        demo.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the Northwind demo"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn event_streams_cannot_take_the_requests_slots() {
    let tmp = tempfile::tempdir().unwrap();
    // Fewer connection slots than streams: each stream gives its slot back.
    let s = common::serve_with_config(
        tmp.path(),
        &[
            "--token",
            "watch-secret-1:viewer:watcher",
            "--token",
            "ops-secret-1:operator:ops",
        ],
        Some("[intake]\nmax_connections = 16\nmax_streams = 64\nmax_streams_per_token = 32\n"),
    );
    let open_streams = |n: usize| -> Vec<std::net::TcpStream> {
        let addr = s.base.trim_start_matches("http://").to_string();
        (0..n)
            .map(|_| {
                use std::io::Write;
                let mut conn = std::net::TcpStream::connect(&addr).unwrap();
                write!(
                    conn,
                    "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: bearer watch-secret-1\r\n\r\n"
                )
                .unwrap();
                conn
            })
            .collect()
    };
    // More idle streams than the per-token cap: the rest are refused, and
    // health, intake and reads keep answering.
    let streams = open_streams(40);
    let c = client();
    let following = || -> f64 {
        let text = c
            .get(format!("{}/metrics", s.base))
            .bearer_auth("watch-secret-1")
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("signalbox_event_stream_clients "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    wait_for("the streams to be counted", Duration::from_secs(20), || {
        (following() >= 32.0).then_some(())
    });
    assert_eq!(following(), 32.0, "the per-token cap");
    for i in 0..8 {
        let health = c
            .get(format!("{}/healthz", s.base))
            .timeout(Duration::from_secs(10))
            .send()
            .unwrap();
        assert_eq!(health.status(), 200);
        let e = event(&format!("s{i}"), "order.placed", "order/1", json!({}));
        let r = c
            .post(format!("{}/v1/signals", s.base))
            .header("authorization", "BEARER ops-secret-1")
            .header("content-type", "application/cloudevents+json")
            .body(e.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 202, "case-insensitive bearer");
    }
    let refused = c
        .get(format!("{}/v1/events", s.base))
        .bearer_auth("watch-secret-1")
        .send()
        .unwrap();
    assert_eq!(refused.status(), 503);
    let v: Value = refused.json().unwrap();
    assert!(v["error"].as_str().unwrap().contains("per token"), "{v}");
    drop(streams);
}

#[test]
fn claims_are_exclusive_and_reserved_sources_are_refused_however_spelled() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(
        tmp.path(),
        &[
            "--token",
            "ana-secret-1:operator:ana",
            "--token",
            "bo-secret-12:operator:bo",
            "--token",
            "lena-secret-1:lead:lena",
        ],
    );
    let c = client();
    let e = event(
        "ap",
        "approval.requested",
        "approval/ap",
        json!({"amount": 20000}),
    );
    common::post_as(&c, &s.base, "ana-secret-1", &e);
    let decision = common::settled_with(&c, &s.base, "ap", Some("ana-secret-1"));
    let item = decision["decision"].as_str().unwrap().replacen('D', "R", 1);
    let claim = |token: &str| {
        c.post(format!("{}/v1/reviews/{item}/actions", s.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(json!({"action": "claim", "note": "mine"}).to_string())
            .send()
            .unwrap()
    };
    assert_eq!(claim("ana-secret-1").status(), 200);
    let second = claim("bo-secret-12");
    assert_eq!(second.status(), 409);
    let v: Value = second.json().unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("claimed by ana"),
        "{v}"
    );
    assert_eq!(claim("lena-secret-1").status(), 200, "a lead takes over");
    for source in ["SIGNALBOX:probe/x", " signalbox:pagerduty/x", "SignalBox:x"] {
        let mut e = event("spoof", "order.placed", "order/1", json!({}));
        e["source"] = json!(source);
        let r = c
            .post(format!("{}/v1/signals", s.base))
            .bearer_auth("ana-secret-1")
            .header("content-type", "application/cloudevents+json")
            .body(e.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{source:?}");
        assert_eq!(r.json::<Value>().unwrap()["field"], "source");
    }
}

/// Every list of open work comes a page at a time: the review items and
/// the flows of 25 approvals nobody answers, 10 to a page, each once, by
/// following the `Link` each page gives; a page size or filter out of
/// range is refused by name.
#[test]
fn lists_of_open_work_come_a_page_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(tmp.path(), &[]);
    let c = client();
    for n in 0..25 {
        let e = event(
            &format!("ap{n}"),
            "approval.requested",
            &format!("approval/ap{n}"),
            json!({"amount": 20000}),
        );
        assert_eq!(common::post_event(&c, &s.base, &e).status(), 202);
    }
    for n in 0..25 {
        common::settled(&c, &s.base, &format!("ap{n}"));
    }
    let walk = |first: &str| {
        let mut ids = Vec::new();
        let mut pages = 0;
        let mut next = Some(format!("{}{first}", s.base));
        while let Some(url) = next.take() {
            let r = c.get(&url).send().unwrap();
            assert_eq!(r.status(), 200, "{url}");
            next = r
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.strip_prefix('<')?.split_once('>'))
                .map(|(path, _)| format!("{}{path}", s.base));
            // Reviews come as `{items, next}`, flows and tasks as an array.
            let body: Value = r.json().unwrap();
            let page = body
                .get("items")
                .unwrap_or(&body)
                .as_array()
                .unwrap()
                .clone();
            assert!(page.len() <= 10, "{url}: {} items", page.len());
            ids.extend(page.iter().map(|v| v["id"].as_str().unwrap().to_string()));
            pages += 1;
        }
        (ids, pages)
    };
    for first in ["/v1/reviews?limit=10", "/v1/flows?state=active&limit=10"] {
        let (ids, pages) = walk(first);
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            (ids.len(), unique.len(), pages),
            (25, 25, 3),
            "{first}: {ids:?}"
        );
    }
    for (bad, field) in [
        ("/v1/flows?state=stuck", "state"),
        ("/v1/flows?limit=1001", "limit"),
        ("/v1/reviews?limit=0", "limit"),
    ] {
        let r = c.get(format!("{}{bad}", s.base)).send().unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().unwrap()["field"], field, "{bad}");
    }
}

/// SIGTERM stops the process within its drain and 5 s more, even with the
/// engine deep in work it cannot finish by then (40 rules that each walk
/// every pair of 10,000 items to their budget, for each of 20 signals):
/// the stop is said, and every signal acknowledged is still in the intake
/// log or the journal for the next start.
#[test]
fn sigterm_stops_the_process_in_time_whatever_the_engine_is_doing() {
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path().join("ops");
    common::init(&ops);
    with_pair_rules(&ops, 40);
    let config = std::fs::read_to_string(ops.join("signalbox.toml")).unwrap();
    std::fs::write(
        ops.join("signalbox.toml"),
        config.replacen("[intake]\n", "[intake]\ndrain = \"1s\"\n", 1),
    )
    .unwrap();
    let s = serve_deployment(&ops, &[]);
    let c = client();
    let items: Vec<u32> = (0..10_000).collect();
    let ids: Vec<String> = (0..20).map(|n| format!("slow{n}")).collect();
    for id in &ids {
        let e = event(
            id,
            "certificate.expiring",
            "certificate/www",
            json!({"host": "www", "days_left": 9, "items": items}),
        );
        assert_eq!(common::post_event(&c, &s.base, &e).status(), 202);
    }
    // The engine is on the first of them when the stop comes.
    std::thread::sleep(Duration::from_millis(500));
    let dir = s.dir.clone();
    let asked = std::time::Instant::now();
    let status = s.terminate();
    let took = asked.elapsed();
    // The drain (1 s) and the grace (5 s), with room for a loaded machine;
    // the work left was ~40 s.
    assert!(
        took < Duration::from_secs(15),
        "stopped {took:?} after SIGTERM ({status})"
    );
    for id in &ids {
        assert!(common::durable(&dir, id), "{id} is kept for the next start");
    }
}
