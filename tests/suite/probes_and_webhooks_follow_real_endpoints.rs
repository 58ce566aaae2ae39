//! Health probes and webhook executors against real (tiny) HTTP endpoints:
//! state changes become signals, a failing executor opens its breaker.

use std::time::Duration;

use crate::common::{client, decided, event, serve_with_config};
use serde_json::{Value, json};

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
