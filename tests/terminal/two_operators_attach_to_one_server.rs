//! Two consoles attached to one real server, in real terminals (tmux,
//! 120x40): an operator and a lead see the same signals; the operator's
//! claim shows in the lead's console; the lead approves a lead-only item
//! and it leaves both queues; `kill -9` of the server shows in both as a
//! lost link, and after the restart both resume, the decided item stays
//! decided and a new signal reaches both; a console attached after all
//! that starts with the decisions made before it came.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::terminal::{Sessions, start, tmux, wait_for};
use crate::common::{Kill, event};
use serde_json::json;

const OPERATOR: &str = "op-secret-1";
const LEAD: &str = "lead-secret-1";

fn server(dir: &std::path::Path, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args([
            "serve",
            "--demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .args([
            "--token",
            "op-secret-1:operator:oskar",
            "--token",
            "lead-secret-1:lead:lena",
        ])
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c = common::client();
    common::wait_for("the server to listen", Duration::from_secs(20), || {
        c.get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .ok()
            .map(|_| ())
    });
    child
}

fn post(port: u16, e: serde_json::Value) {
    common::post_as(
        &common::client(),
        &format!("http://127.0.0.1:{port}"),
        OPERATOR,
        &e,
    );
}

#[test]
fn an_operator_and_a_lead_share_one_server_through_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let mut served = Kill(server(&data, port));
    let pid = std::process::id();
    let (op, lead) = (format!("sbx-op-{pid}"), format!("sbx-lead-{pid}"));
    let _sessions = Sessions(vec![op.clone(), lead.clone()]);
    for (session, token) in [(&op, OPERATOR), (&lead, LEAD)] {
        let cmd = format!(
            "HOME={} {} attach http://127.0.0.1:{port} --token {token}",
            dir.path().display(),
            env!("CARGO_BIN_EXE_signalbox"),
        );
        start(session, &cmd);
        wait_for(session, |s| s.contains("connected"), "the link");
        tmux(session, &["send-keys", "-t", session, ":review", "Enter"]);
    }
    wait_for(
        &op,
        |s| s.contains("oskar (operator)"),
        "the operator's identity from the token",
    );
    wait_for(
        &lead,
        |s| s.contains("lena (lead)"),
        "the lead's identity from the token",
    );

    post(
        port,
        event(
            "t1",
            "ticket.opened",
            "customer/c0001",
            json!({"customer": "c0001"}),
        ),
    );
    post(
        port,
        event(
            "a1",
            "approval.requested",
            "customer/c0002",
            json!({"customer": "c0002", "amount": 60000}),
        ),
    );
    for s in [&op, &lead] {
        wait_for(
            s,
            |s| s.contains("│R0000001") && s.contains("│R0000002"),
            "both items",
        );
    }

    // The operator claims the first (the ticket: the nearest deadline);
    // the lead's console shows who holds it.
    tmux(&op, &["send-keys", "-t", &op, "c"]);
    wait_for(
        &lead,
        |s| s.contains("held by oskar"),
        "the operator's claim in the lead's console",
    );

    // The lead approves the lead-only approval.
    tmux(&lead, &["send-keys", "-t", &lead, "Down"]);
    wait_for(
        &lead,
        |s| s.contains("approval.requested customer/c0002"),
        "the approval selected",
    );
    tmux(&lead, &["send-keys", "-t", &lead, "a"]);
    tmux(
        &lead,
        &["send-keys", "-t", &lead, "-l", "checked the contract"],
    );
    tmux(&lead, &["send-keys", "-t", &lead, "Enter"]);
    for s in [&op, &lead] {
        wait_for(
            s,
            |s| s.contains("R0000001") && !s.contains("│R0000002"),
            "the approval to leave the queue",
        );
    }

    // The server dies; both consoles say so and keep what they showed.
    drop(served);
    for s in [&op, &lead] {
        wait_for(
            s,
            |s| s.contains("LOST") && s.contains("R0000001"),
            "the lost link, state kept",
        );
    }
    served = Kill(server(&data, port));
    for s in [&op, &lead] {
        wait_for(
            s,
            |s| s.contains("connected") && !s.contains("LOST"),
            "the link back",
        );
    }
    post(
        port,
        event(
            "t2",
            "ticket.opened",
            "customer/c0003",
            json!({"customer": "c0003"}),
        ),
    );
    for s in [&op, &lead] {
        wait_for(
            s,
            |s| s.contains("R0000003") && s.contains("R0000001") && !s.contains("│R0000002"),
            "the new item, the decided one still gone",
        );
    }

    // More than one page of history (200 decisions) before the late
    // console comes: context-only signals, each a recorded decision.
    for i in 0..200 {
        post(
            port,
            event(
                &format!("h{i}"),
                "health.changed",
                "service/erp",
                json!({"service": "erp", "health": "up"}),
            ),
        );
    }
    // A console attached now starts with the past: its Audit view shows
    // the decisions made before it came (and before the restart), a page
    // at a time as it scrolls back.
    let late = format!("sbx-late-{pid}");
    let _late = Sessions(vec![late.clone()]);
    let cmd = format!(
        "HOME={} {} attach http://127.0.0.1:{port} --token {LEAD}",
        dir.path().display(),
        env!("CARGO_BIN_EXE_signalbox"),
    );
    start(&late, &cmd);
    wait_for(
        &late,
        |s| s.contains("connected"),
        "the late console's link",
    );
    tmux(&late, &["send-keys", "-t", &late, ":audit", "Enter"]);
    wait_for(
        &late,
        |s| s.contains("D0000203") && !s.contains("D0000003"),
        "the last page of decisions made before it attached",
    );
    // Scrolling past its last row reads the page before; the first
    // decisions are then at the bottom.
    tmux(&late, &["send-keys", "-t", &late, "End"]);
    wait_for(
        &late,
        |s| s.contains("older decisions (the journal's beginning)"),
        "the page before, to the beginning",
    );
    tmux(&late, &["send-keys", "-t", &late, "End"]);
    wait_for(
        &late,
        |s| s.contains("D0000001") && s.contains("D0000002") && s.contains("D0000003"),
        "the decisions made first",
    );
    drop(served);
}
