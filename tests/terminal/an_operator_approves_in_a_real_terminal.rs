//! End to end in a real terminal: tmux runs the console on a temporary data
//! dir; the test goes to the review view, approves the first item with a
//! note, quits, and finds the operator and note in `signalbox explain`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::terminal::{Sessions, alive, start, tmux, wait_for};

#[test]
fn approve_the_first_review_item_then_explain_shows_who_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("session");
    let session = format!("sbx-{}", std::process::id());
    let cmd = format!(
        "{} --data-dir {} --operator tess --role operator --colleagues 0 --speed 120 --listen 127.0.0.1:0",
        env!("CARGO_BIN_EXE_signalbox"),
        data.display()
    );
    start(&session, &cmd);
    let _cleanup = Sessions(vec![session.clone()]);
    let s = wait_for(&session, |s| s.contains("review queue"), "the overview");
    // The console's HTTP intake is named in the header; a signal posted
    // there shows up in the live tail.
    let addr = s
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the header names the intake address")
        .to_string();
    let event = serde_json::json!({
        "specversion": "1.0", "id": "from-http-1", "source": "curl", "type": "ticket.opened",
        "subject": "customer/c0002", "data": {"customer": "c0002", "text": "posted over http"},
    });
    let r = reqwest::blocking::Client::new()
        .post(format!("http://{addr}/v1/signals"))
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    // Each key waits for the screen the one before it makes (a loaded
    // machine draws late, and a key sent early lands in the wrong view).
    let breadcrumb = |s: &str| s.lines().nth(1).unwrap_or("").trim().to_string();
    tmux(
        &session,
        &["send-keys", "-t", &session, ":signals", "Enter"],
    );
    wait_for(
        &session,
        |s| breadcrumb(s) == "signalbox › signals",
        "the signals view",
    );
    tmux(
        &session,
        &["send-keys", "-t", &session, "/", "from-http", "Enter"],
    );
    wait_for(
        &session,
        |s| s.contains("/from-http ") && s.contains("from-http-1"),
        "the posted signal in the filtered tail",
    );
    tmux(&session, &["send-keys", "-t", &session, "Escape"]);
    wait_for(
        &session,
        |s| !s.contains("/from-http ") && breadcrumb(s) == "signalbox › signals",
        "the filter cleared",
    );
    tmux(&session, &["send-keys", "-t", &session, ":review", "Enter"]);
    wait_for(
        &session,
        |s| s.contains("decision context D"),
        "a review item",
    );
    tmux(&session, &["send-keys", "-t", &session, "a"]);
    wait_for(&session, |s| s.contains("approve R"), "the note dialog");
    tmux(
        &session,
        &[
            "send-keys",
            "-t",
            &session,
            "-l",
            "called the customer, fine",
        ],
    );
    tmux(&session, &["send-keys", "-t", &session, "Enter"]);
    let s = wait_for(
        &session,
        |s| s.contains("done: approve R"),
        "the confirmation",
    );
    let item = s
        .split("done: approve ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the status line names the item")
        .to_string();
    tmux(&session, &["send-keys", "-t", &session, "q"]);
    let began = Instant::now();
    while alive(&session) {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "console did not quit"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let decision = item.replacen('R', "D", 1);
    let out = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["explain", &decision, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("tess (operator) approve: called the customer, fine"),
        "{text}"
    );
    assert!(text.contains("audit chain: verifies"), "{text}");
}
