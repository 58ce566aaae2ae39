//! The embedded console on a deployment directory (`signalbox --config
//! DIR`, no simulator, wall clock), in a real terminal: an item left in the
//! review queue and a task left open are there again after the console is
//! closed and reopened, twice.

mod common;

use std::process::Command;

use common::terminal::{Sessions, start, tmux, wait_for};
use common::{event, free_port};
use serde_json::json;

fn open(session: &str, dir: &std::path::Path, port: u16) {
    let cmd = format!(
        "HOME={} {} --config {} --listen 127.0.0.1:{port} --operator tess",
        dir.display(),
        env!("CARGO_BIN_EXE_signalbox"),
        dir.display()
    );
    start(session, &cmd);
    wait_for(
        session,
        |s| s.contains("deployment:"),
        "the console on the deployment",
    );
}

/// Quits (the quit key, then yes) and waits for the session to end.
fn close(session: &str) {
    tmux(&["send-keys", "-t", session, "q"]);
    tmux(&["send-keys", "-t", session, "q"]);
    common::wait_for(
        "the console to close",
        std::time::Duration::from_secs(20),
        || {
            let alive = Command::new("tmux")
                .args(["has-session", "-t", session])
                .status()
                .is_ok_and(|s| s.success());
            (!alive).then_some(())
        },
    );
}

#[test]
fn the_queue_and_open_tasks_survive_closing_and_reopening_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    let out = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let port = free_port();
    let session = format!("sbx-reopen-{}", std::process::id());
    let _sessions = Sessions(vec![session.clone()]);
    open(&session, &dir, port);
    let base = format!("http://127.0.0.1:{port}");
    let c = common::client();
    // A warning alert goes to review (no evidence yet); a ticket becomes a task.
    let mut alert = event(
        "a1",
        "alert.firing",
        "service/api",
        json!({"service": "api"}),
    );
    alert["severity"] = json!("warning");
    for e in [
        alert,
        event(
            "t1",
            "ticket.opened",
            "customer/acme",
            json!({"customer": "acme"}),
        ),
    ] {
        let r = c
            .post(format!("{base}/v1/signals"))
            .header("content-type", "application/cloudevents+json")
            .body(e.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    for round in 0..3 {
        if round > 0 {
            open(&session, &dir, port);
        }
        tmux(&["send-keys", "-t", &session, ":review", "Enter"]);
        wait_for(&session, |s| s.contains("│R0000001"), "the review item");
        tmux(&["send-keys", "-t", &session, ":tasks", "Enter"]);
        wait_for(
            &session,
            |s| s.contains("service_desk.acknowledge"),
            "the open task",
        );
        close(&session);
    }
}
