//! The embedded console reopens its journal, in a real terminal. On a
//! deployment directory (`signalbox --config DIR`, no simulator, wall
//! clock): an item left in the review queue and a task left open are there
//! again after the console is closed and reopened, twice. On a simulated
//! session's data directory (`signalbox --data-dir DIR`): the queue and the
//! model's version (after an approval taught it) are the same after each
//! of two reopenings.

use crate::common;

use crate::common::terminal::{Sessions, alive, start, tmux, wait_for};
use crate::common::{event, free_port};
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
        |s| s.contains(&dir.display().to_string()),
        "the console on the deployment",
    );
}

/// Quits (the quit key, then yes) and waits for the session to end.
fn close(session: &str) {
    tmux(session, &["send-keys", "-t", session, "q"]);
    tmux(session, &["send-keys", "-t", session, "q"]);
    common::wait_for(
        "the console to close",
        std::time::Duration::from_secs(20),
        || (!alive(session)).then_some(()),
    );
}

#[test]
fn the_queue_and_open_tasks_survive_closing_and_reopening_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    common::init(&dir);
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
            json!({"customer": "acme", "ticket": "T-1"}),
        ),
    ] {
        assert_eq!(common::post_event(&c, &base, &e).status(), 202);
    }
    for round in 0..3 {
        if round > 0 {
            open(&session, &dir, port);
        }
        tmux(&session, &["send-keys", "-t", &session, ":review", "Enter"]);
        wait_for(&session, |s| s.contains("│R0000001"), "the review item");
        tmux(&session, &["send-keys", "-t", &session, ":tasks", "Enter"]);
        wait_for(
            &session,
            |s| s.contains("service_desk.acknowledge"),
            "the open task",
        );
        close(&session);
    }
}

/// The model version the header shows ("model logreg-18b@1").
fn model_version(screen: &str) -> Option<String> {
    let header = screen.lines().next()?;
    let rest = header.split("model ").nth(1)?;
    rest.split_whitespace().next().map(String::from)
}

/// The review items in view ("│R0000003  alert.firing ...").
fn queue(screen: &str) -> Vec<String> {
    screen
        .lines()
        .filter_map(|l| l.strip_prefix('│'))
        .filter(|l| l.starts_with('R') || l.starts_with("*R"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|id| id.trim_start_matches('*').to_string())
        .collect()
}

#[test]
fn a_simulated_session_keeps_its_queue_and_model_through_two_reopenings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("session");
    let port = free_port();
    let session = format!("sbx-resim-{}", std::process::id());
    let _sessions = Sessions(vec![session.clone()]);
    // Slow simulated time: nothing times out or learns between two looks.
    let open = || {
        let cmd = format!(
            "HOME={} {} --data-dir {} --speed 1 --colleagues 0 --listen 127.0.0.1:{port} --operator tess",
            tmp.path().display(),
            env!("CARGO_BIN_EXE_signalbox"),
            data.display()
        );
        start(&session, &cmd);
        wait_for(&session, |s| s.contains("model "), "the console");
        tmux(&session, &["send-keys", "-t", &session, ":review", "Enter"]);
        wait_for(&session, |s| s.contains("review queue"), "the review view")
    };
    let c = common::client();
    let base = format!("http://127.0.0.1:{port}");
    open();
    for i in 0..3 {
        let mut alert = event(
            &format!("reopen-{i}"),
            "alert.firing",
            "service/carrier",
            json!({"alertname": "HighErrorRate", "service": "carrier"}),
        );
        alert["severity"] = json!("critical");
        let r = common::post_event(&c, &base, &alert);
        assert_eq!(r.status(), 202);
    }
    wait_for(&session, |s| queue(s).len() >= 3, "the alerts in review");
    // An approval teaches the model: its version moves on.
    let before = model_version(&tmux(&session, &["capture-pane", "-p", "-t", &session])).unwrap();
    tmux(&session, &["send-keys", "-t", &session, "a"]);
    tmux(&session, &["send-keys", "-t", &session, "checked", "Enter"]);
    let s = wait_for(&session, |s| s.contains("done: approve"), "the approval");
    let s = wait_for(
        &session,
        |now| model_version(now).is_some_and(|v| v != before),
        &format!("the model to learn from the approval ({s})"),
    );
    let mut version = model_version(&s).unwrap();
    let mut items = queue(&s);
    close(&session);
    for round in 1..=2 {
        let s = open();
        let s = wait_for(
            &session,
            |now| queue(now).len() >= items.len(),
            &format!("round {round}: the queue as it was ({items:?}; {s})"),
        );
        let shown = queue(&s);
        for id in &items {
            assert!(shown.contains(id), "round {round}: {id} kept: {shown:?}");
        }
        assert_eq!(
            model_version(&s).as_deref(),
            Some(version.as_str()),
            "round {round}: the model as it was"
        );
        version = model_version(&s).unwrap();
        items = shown;
        close(&session);
    }
}
