//! `/metrics` stays valid Prometheus text whatever the signals say: a real
//! Prometheus (Debian's) scrapes it with `up` at 1 after signals whose
//! types carry quotes, newlines and a would-be series, none of which is
//! forged; types outside the playbook count under one label value.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Kill, client, drained, free_port, post_event, serve, wait_for};
use serde_json::{Value, json};

/// A form value, every byte but letters and digits percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_it_after_hostile_signal_types() {
    for bin in ["prometheus", "promtool"] {
        assert!(
            Command::new(bin).arg("--version").output().is_ok(),
            "{bin} must be installed (.ci/run installs the Debian package prometheus)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("signalbox");
    let s = serve(&data, &[]);
    let c = client();
    let hostile = [
        "evil\"} 1\nsignalbox_forged_total{x=\"1",
        "it's",
        "back\\slash",
        "new\nline",
    ];
    for (i, kind) in hostile.iter().enumerate() {
        let e = json!({"specversion": "1.0", "id": format!("h{i}"), "source": "test", "type": kind,
                       "subject": "customer/c0001", "data": {}});
        assert_eq!(post_event(&c, &s.base, &e).status(), 202);
    }
    for i in 0..50 {
        let e = json!({"specversion": "1.0", "id": format!("u{i}"), "source": "test",
                       "type": format!("made.up.{i}"), "data": {}});
        assert_eq!(post_event(&c, &s.base, &e).status(), 202);
    }
    drained(&c, &s.base);
    let text = common::metrics_text(&c, &s.base);
    let checked = common::promtool(&text);
    assert!(
        checked.status.success(),
        "promtool: {}\n{text}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let kinds: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("signalbox_signals_total{"))
        .collect();
    assert_eq!(
        kinds.len(),
        1,
        "every unknown type under `other`: {kinds:?}"
    );
    assert!(kinds[0].contains("type=\"other\""), "{kinds:?}");

    let port = free_port();
    let target = s.base.trim_start_matches("http://");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: signalbox\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _prometheus = Kill(prometheus);
    let query = |q: &str| -> Option<Value> {
        let r = c
            .post(format!("http://127.0.0.1:{port}/api/v1/query"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("query={}", percent_encode(q)))
            .send()
            .ok()?;
        let v: Value = r.json().ok()?;
        (v["status"] == "success").then(|| v["data"]["result"].clone())
    };
    let up = wait_for("two good scrapes", Duration::from_secs(60), || {
        let scrapes = query("count_over_time(up{job=\"signalbox\"}[1m])")?;
        let n: f64 = scrapes[0]["value"][1].as_str()?.parse().ok()?;
        (n >= 2.0).then(|| query("up{job=\"signalbox\"}"))?
    });
    assert_eq!(up[0]["value"][1], "1", "{up}");
    let forged = query("{__name__=~\"signalbox_forged.*\"}").unwrap();
    assert_eq!(forged, json!([]), "a series was forged");
    let signals = query("signalbox_signals_total").unwrap();
    assert_eq!(signals.as_array().unwrap().len(), 1, "{signals}");
}
