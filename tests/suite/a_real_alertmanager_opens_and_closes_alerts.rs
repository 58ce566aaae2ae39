//! A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`)
//! with a webhook receiver pointing at signalbox: alerts posted to
//! Alertmanager arrive as signals, and resolving them closes what they opened.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn query(db: &std::path::Path, sql: &str) -> Vec<(String, String)> {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare(sql) else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

#[test]
fn alerts_through_a_real_alertmanager_open_and_close() {
    let am_bin = "prometheus-alertmanager";
    assert!(
        Command::new(am_bin).arg("--version").output().is_ok(),
        "{am_bin} must be installed (.ci/run installs the Debian package prometheus-alertmanager)"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("signalbox");
    let mut sb = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sb.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _sb = common::Kill(sb);
    let sb_addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();

    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: signalbox\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: signalbox\n    webhook_configs:\n      - url: http://{sb_addr}/v1/alertmanager\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let am_port = common::free_port();
    let am = Command::new(am_bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("am").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _am = common::Kill(am);
    let client = reqwest::blocking::Client::new();
    let alerts = format!("http://127.0.0.1:{am_port}/api/v2/alerts");
    common::wait_for("alertmanager to start", Duration::from_secs(60), || {
        client
            .get(format!("http://127.0.0.1:{am_port}/-/ready"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });

    let now = chrono::Utc::now();
    let alert = |ends: chrono::DateTime<chrono::Utc>| {
        json!([{
            "labels": {"alertname": "HighErrorRate", "service": "carrier", "severity": "critical"},
            "annotations": {"summary": "5xx above 5% on carrier"},
            "startsAt": now.to_rfc3339(),
            "endsAt": ends.to_rfc3339(),
        }])
    };
    let r = client
        .post(&alerts)
        .json(&alert(now + chrono::Duration::hours(1)))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());

    let db = data.join("signalbox.db");
    let firing = common::wait_for(
        "the firing alert in the journal",
        Duration::from_secs(60),
        || {
            query(
                &db,
                "SELECT id, body FROM signals WHERE type = 'alert.firing'",
            )
            .into_iter()
            .next()
        },
    );
    let body: Value = serde_json::from_str(&firing.1).unwrap();
    assert_eq!(body["subject"], "service/carrier");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["data"]["alertname"], "HighErrorRate");

    // Resolve it at Alertmanager: it sends the resolution to signalbox.
    let r = client
        .post(&alerts)
        .json(&alert(chrono::Utc::now()))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    common::wait_for(
        "the resolved alert in the journal",
        Duration::from_secs(60),
        || {
            query(
                &db,
                "SELECT id, body FROM signals WHERE type = 'alert.resolved'",
            )
            .into_iter()
            .next()
        },
    );
    let flow =
        common::wait_for(
            "the flow the alert opened to be closed",
            Duration::from_secs(60),
            || {
                query(
            &db,
            &format!(
                "SELECT state, body FROM flows WHERE json_extract(body, '$.signal_id') = '{}'",
                firing.0
            ),
        )
        .into_iter()
        .next()
        .filter(|(state, _)| state != "running" && state != "waiting_human" && state != "pending")
            },
        );
    assert!(flow.1.contains("resolved at the source"), "{}", flow.1);
}
