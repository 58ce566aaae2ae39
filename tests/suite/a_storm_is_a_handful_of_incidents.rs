//! The storm of `benches/storm.sh` at a size for CI, on a served
//! deployment, through Alertmanager's webhook format: 2,000 alerts from
//! 100 services (20 each), datacenter dc0 down (its warnings inhibited),
//! one service silenced, five transient alerts and one that flaps. It
//! becomes one incident per service that is not held, no page for a held
//! alert, a review queue within its budget, and every held alert counted
//! by what held it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, client, serve_deployment, wait_for};
use crate::pages_reach_people_and_stop_when_acknowledged::{OPERATOR, TOKENS, body, requests};

const BUDGET: usize = 30;

fn alert(status: &str, labels: Value, n: usize) -> Value {
    json!({
        "status": status,
        "labels": labels,
        "annotations": {"summary": "storm"},
        "startsAt": format!("2026-12-06T10:{:02}:{:02}Z", n / 60 % 60, n % 60),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://storm/graph",
        "fingerprint": format!("{:016x}", n + 1),
    })
}

fn webhook(alerts: &[Value]) -> Value {
    json!({
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "signalbox", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://storm", "alerts": alerts,
    })
}

fn send(c: &reqwest::blocking::Client, base: &str, alerts: &[Value]) {
    let r = c
        .post(format!("{base}/v1/alertmanager"))
        .bearer_auth(OPERATOR)
        .json(&webhook(alerts))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().unwrap_or_default());
}

/// Counters and gauges of `/metrics`, by their line's name and labels.
fn metrics(c: &reqwest::blocking::Client, base: &str) -> BTreeMap<String, f64> {
    let text = c
        .get(format!("{base}/metrics"))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn held(m: &BTreeMap<String, f64>, reason: &str) -> f64 {
    m.get(&format!(
        "signalbox_signals_held_total{{reason=\"{reason}\"}}"
    ))
    .copied()
    .unwrap_or(0.0)
}

#[test]
fn a_storm_of_two_thousand_alerts_is_a_handful_of_incidents() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("dana.jsonl");
    let (_dana, dana_port) = common::receiver(None, &log);
    let (_emil, emil_port) = common::receiver(None, &tmp.path().join("emil.jsonl"));
    let dir = tmp.path().join("ops");
    common::paged_deployment(&dir, dana_port, emil_port, "10m");
    let playbook = std::fs::read_to_string(dir.join("playbook.toml")).unwrap();
    let anchor = "group = { by = [\"subject\"] }\n";
    assert!(playbook.contains(anchor));
    let playbook = playbook.replace(
        anchor,
        "group = { by = [\"subject\"], wait = \"1s\" }\n\
         hold = { transient = \"3s\", flap = { changes = 4, within = \"1m\" } }\n",
    ) + "\n[[inhibit]]\nsource = ['alertname=\"DatacenterDown\"']\n\
         target = ['severity=\"warning\"']\nequal = [\"dc\"]\n";
    std::fs::write(dir.join("playbook.toml"), playbook).unwrap();
    let config = std::fs::read_to_string(dir.join("signalbox.toml")).unwrap();
    let config = config.replace(
        "# budget = { default = 200, incident = 50 }",
        &format!("budget = {{ default = {BUDGET} }}"),
    );
    assert!(config.contains("budget = { default = 30 }"));
    std::fs::write(dir.join("signalbox.toml"), config).unwrap();
    let s = serve_deployment(&dir, &TOKENS);
    let c = client();

    let silence = json!({
        "matchers": [{"name": "service", "value": "s099", "isRegex": false, "isEqual": true}],
        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "ignored", "comment": "known problem",
    });
    let r = c
        .post(format!("{}/api/v2/silences", s.base))
        .bearer_auth(OPERATOR)
        .json(&silence)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());

    let down = json!({"alertname": "DatacenterDown", "service": "dc-dc0", "dc": "dc0", "severity": "critical"});
    send(&c, &s.base, &[alert("firing", down, 100_000)]);
    // Services s005, s015, s025 … are critical (they page); the rest warn.
    let mut storm = Vec::new();
    for svc in 0..100 {
        let severity = if svc % 10 == 5 { "critical" } else { "warning" };
        for a in 0..20 {
            let labels = json!({
                "alertname": "HighLatency", "service": format!("s{svc:03}"),
                "dc": format!("dc{}", svc / 20), "severity": severity, "instance": format!("i{a}"),
            });
            storm.push(alert("firing", labels, svc * 20 + a));
        }
    }
    for chunk in storm.chunks(200) {
        send(&c, &s.base, chunk);
    }
    // Five alerts that resolve within their hold-off, and one that flaps
    // (its first two firings transient too).
    let transient = |n: usize| {
        let labels = json!({"alertname": "Blip", "service": format!("tr{n}"), "dc": "dc1", "severity": "critical"});
        (
            alert("firing", labels.clone(), 50_000 + n),
            alert("resolved", labels, 50_000 + n),
        )
    };
    let blips: Vec<(Value, Value)> = (0..5).map(transient).collect();
    send(
        &c,
        &s.base,
        &blips.iter().map(|b| b.0.clone()).collect::<Vec<_>>(),
    );
    std::thread::sleep(Duration::from_millis(500));
    send(
        &c,
        &s.base,
        &blips.iter().map(|b| b.1.clone()).collect::<Vec<_>>(),
    );
    let flap =
        json!({"alertname": "Flap", "service": "flap0", "dc": "dc2", "severity": "critical"});
    for (n, status) in ["firing", "resolved", "firing", "resolved", "firing"]
        .iter()
        .enumerate()
    {
        // A new firing episode each time (a new start), as Alertmanager
        // sends one.
        let mut a = alert(status, flap.clone(), 60_000 + n / 2 * 2);
        a["fingerprint"] = json!("f1a9f1a9f1a9f1a9");
        send(&c, &s.base, &[a]);
        std::thread::sleep(Duration::from_millis(300));
    }

    // dc-dc0, the two critical services of dc0 (not warnings: not
    // inhibited), and s020 … s098 (s099 is silenced).
    let expected = 1 + 2 + 79;
    let m = wait_for("the storm to settle", Duration::from_secs(60), || {
        let m = metrics(&c, &s.base);
        let paused = m
            .get("signalbox_alerts_held_off{state=\"paused\"}")
            .copied();
        let opened = m.get("signalbox_incidents_opened_total").copied();
        (paused == Some(0.0) && opened == Some(expected as f64)).then_some(m)
    });
    assert_eq!(held(&m, "inhibited"), 18.0 * 20.0, "dc0's warnings");
    assert_eq!(held(&m, "silenced"), 20.0);
    assert_eq!(
        held(&m, "grouped"),
        81.0 * 19.0,
        "every alert after a service's first"
    );
    assert_eq!(
        held(&m, "transient"),
        5.0 + 2.0,
        "the blips and the flap's first two"
    );
    assert_eq!(held(&m, "flapping"), 1.0, "the flap's third firing");
    assert_eq!(m["signalbox_alerts_held_off{state=\"flapping\"}"], 1.0);
    assert!(
        m["signalbox_review_queue_depth"] <= BUDGET as f64,
        "the review queue within its budget: {}",
        m["signalbox_review_queue_depth"]
    );

    // Pages only for incidents: never for a held alert's service.
    std::thread::sleep(Duration::from_secs(2));
    let paged: Vec<String> = requests(&log)
        .iter()
        .map(|r| {
            body(r)["page"]["subject"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(!paged.is_empty(), "the critical incidents page");
    for subject in &paged {
        let svc = subject.trim_start_matches("service/");
        let held = svc == "s099"
            || svc.starts_with("tr")
            || svc.starts_with("flap")
            || (svc.starts_with('s') && svc < "s020" && !matches!(svc, "s005" | "s015"));
        assert!(!held, "a page for a held alert: {subject}");
    }
    let pages: Value = c
        .get(format!("{}/v1/pages?state=all", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let pages = pages.as_array().unwrap();
    assert!(
        pages.len() <= expected,
        "at most a page per incident: {}",
        pages.len()
    );
    let incidents: Value = c
        .get(format!("{}/v1/incidents", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let s050 = incidents
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["labels"][0][1] == "service/s050")
        .expect("s050's incident");
    assert_eq!(s050["alerts"], 20, "{s050}");
}
