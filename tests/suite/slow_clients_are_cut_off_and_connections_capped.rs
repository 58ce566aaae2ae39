//! The intake facing slow or abusive clients: headers and bodies have
//! deadlines, connections are capped, a stop drains within its own
//! deadline even with a client holding a half-sent request, the token is
//! checked before any body is read, and over-long attributes are refused
//! by name.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{client, serve_with_config};
use serde_json::{Value, json};

fn connect(base: &str) -> TcpStream {
    let s = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until the server closes or answers; what it sent.
fn read_answer(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if String::from_utf8_lossy(&buf).contains("\r\n\r\n{") && buf.ends_with(b"}") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading: {e}"),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn slow_clients_are_cut_off_and_connections_capped() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_with_config(
        dir.path(),
        &[],
        Some("[intake]\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\nmax_connections = 3\n"),
    );
    // Headers that never end: the connection is closed.
    let mut slow = connect(&s.base);
    slow.write_all(b"POST /v1/signals HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let answer = read_answer(&mut slow);
    assert!(!answer.contains("202"), "{answer}");
    // A body that never ends: 408, as JSON.
    let mut half = connect(&s.base);
    half.write_all(
        b"POST /v1/signals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"specv",
    )
    .unwrap();
    let answer = read_answer(&mut half);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"status\":408"), "{answer}");

    // Three connections hold every slot; a fourth waits until one ends.
    let holders: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut h = connect(&s.base);
            h.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            h
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut fourth = connect(&s.base);
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    fourth
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = fourth.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "served past the cap: {early:?}"
    );
    fourth
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let answer = read_answer(&mut fourth);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(holders);

    // Over-long attributes are refused by name.
    let c = client();
    for (field, value) in [
        ("id", "i".repeat(513)),
        ("type", "t".repeat(257)),
        ("subject", "s".repeat(1025)),
    ] {
        let mut e =
            json!({"specversion": "1.0", "id": "x", "source": "test", "type": "ticket.opened"});
        e[field] = json!(value);
        let r = common::post_event(&c, &s.base, &e);
        assert_eq!(r.status(), 400, "{field}");
        assert_eq!(r.json::<Value>().unwrap()["field"], field);
    }
}

#[test]
fn a_stop_drains_within_its_deadline_and_tokens_come_before_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_with_config(
        dir.path(),
        &["--token", "ingest-secret-1:ingest"],
        Some("[intake]\nheader_timeout = \"60s\"\nbody_timeout = \"60s\"\ndrain = \"1s\"\n"),
    );
    // A promised megabyte that never comes, without a token: refused
    // without waiting for the body.
    let mut anonymous = connect(&s.base);
    anonymous
        .write_all(b"POST /v1/signals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    let answer = read_answer(&mut anonymous);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // A client holds a half-sent request; the stop does not wait for it.
    let mut holder = connect(&s.base);
    holder
        .write_all(b"POST /v1/signals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ingest-secret-1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let began = Instant::now();
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "the stop waited {:?} for a client",
        began.elapsed()
    );
    drop(holder);
}
