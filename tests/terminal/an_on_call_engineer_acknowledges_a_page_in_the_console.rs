//! The console on a deployment pages people and lets one acknowledge, in
//! a real terminal. A critical alert on the console's own intake pages
//! dana (a real webhook receiver on loopback); the On-call view names her;
//! the Pages view shows the page triggered, and one key acknowledges it as
//! the console's operator, after which the second level (emil) is never
//! paged. Enter shows every attempt.

use std::path::Path;
use std::time::Duration;

use crate::common::terminal::{Sessions, start, tmux, wait_for};
use crate::common::{self, event, free_port};
use serde_json::{Value, json};

fn requests(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn keys(session: &str, keys: &[&str]) {
    let mut args = vec!["send-keys", "-t", session];
    args.extend(keys);
    tmux(session, &args);
}

#[test]
fn a_page_is_acknowledged_with_one_key_and_escalates_no_further() {
    let tmp = tempfile::tempdir().unwrap();
    let (dana_log, emil_log) = (tmp.path().join("dana.jsonl"), tmp.path().join("emil.jsonl"));
    let (_dana, dana_port) = common::receiver(None, &dana_log);
    let (_emil, emil_port) = common::receiver(None, &emil_log);
    let dir = tmp.path().join("ops");
    common::paged_deployment(&dir, dana_port, emil_port, "6s");
    let port = free_port();
    let session = format!("sbx-page-{}", std::process::id());
    let cmd = format!(
        "HOME={} {} --config {} --listen 127.0.0.1:{port} --operator tess --role lead",
        tmp.path().display(),
        env!("CARGO_BIN_EXE_signalbox"),
        dir.display()
    );
    start(&session, &cmd);
    let _sessions = Sessions(vec![session.clone()]);
    wait_for(
        &session,
        |s| s.contains(&dir.display().to_string()),
        "the console on the deployment",
    );

    keys(&session, &[":oncall", "Enter"]);
    wait_for(
        &session,
        |s| s.contains("sre-primary") && s.contains("dana"),
        "who is on call",
    );

    let mut alert = event(
        "crit-1",
        "alert.firing",
        "service/api",
        json!({"service": "api"}),
    );
    alert["severity"] = json!("critical");
    let c = common::client();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(common::post_event(&c, &base, &alert).status(), 202);
    common::wait_for("dana's page", Duration::from_secs(15), || {
        requests(&dana_log).into_iter().next()
    });

    keys(&session, &[":pages", "Enter"]);
    wait_for(
        &session,
        |s| s.contains("│P0000001") && s.contains("triggered"),
        "the page, triggered",
    );
    keys(&session, &["a"]);
    wait_for(
        &session,
        |s| s.contains("done: page P0000001 acknowledged"),
        "the acknowledgement",
    );
    wait_for(
        &session,
        |s| s.contains("acknowledged 1·1") && s.contains("tess"),
        "the page acknowledged by the console's operator",
    );
    keys(&session, &["Enter"]);
    wait_for(
        &session,
        |s| s.contains("acknowledged by tess") && s.contains("#1 ") && s.contains("delivered"),
        "the page's attempts",
    );
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        requests(&emil_log).is_empty(),
        "the second level is never paged"
    );
    assert_eq!(requests(&dana_log).len(), 1);

    // An override from the On-call view: emil for two hours, from now.
    keys(&session, &["Escape"]);
    wait_for(
        &session,
        |s| !s.contains("signalbox › pages › page"),
        "the detail closed",
    );
    keys(&session, &[":oncall", "Enter"]);
    wait_for(
        &session,
        |s| s.contains("signalbox › oncall"),
        "the On-call view",
    );
    keys(&session, &["o"]);
    wait_for(
        &session,
        |s| s.contains("override on sre-primary"),
        "the override dialog",
    );
    keys(&session, &["-l", "emil 2h"]);
    keys(&session, &["Enter"]);
    wait_for(
        &session,
        |s| s.contains("done: emil on call on sre-primary until"),
        "the override taken",
    );
    wait_for(
        &session,
        |s| {
            s.lines().any(|l| {
                l.contains("sre-primary") && l.contains("emil") && l.contains("override O")
            })
        },
        "emil on call by the override",
    );
}
