//! Alerts group into incidents (the starter groups `alert.firing` by
//! subject): three critical alerts on `service/api` and one on
//! `service/web` are two incidents and two pages, not four; the alerts
//! that joined say so in their explanation. The api incident outlives a
//! kill -9 and still takes a new alert of its group; it resolves with its
//! last alert (and its page with it), and a person resolves the web one
//! over HTTP.

use std::time::Duration;

use crate::common::{self, client, event, serve_deployment, wait_for};
use crate::pages_reach_people_and_stop_when_acknowledged::{OPERATOR, TOKENS, requests};
use serde_json::{Value, json};

fn alert(kind: &str, n: u32, service: &str) -> Value {
    let mut e = event(
        &format!("{kind}-{n}"),
        kind,
        &format!("service/{service}"),
        json!({ "service": service, "fingerprint": format!("fp-{n}") }),
    );
    e["severity"] = json!("critical");
    e
}

fn get(c: &reqwest::blocking::Client, base: &str, path: &str) -> Value {
    let r = c
        .get(format!("{base}{path}"))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().unwrap()
}

/// The open incident of `subject`.
fn incident_of(c: &reqwest::blocking::Client, base: &str, subject: &str) -> Value {
    get(c, base, "/v1/incidents?state=all")
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["labels"][0][1] == subject && i["state"] == "open")
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn a_storm_on_one_service_is_one_incident_and_one_page() {
    let tmp = tempfile::tempdir().unwrap();
    let dana_log = tmp.path().join("dana.jsonl");
    let (_dana, dana_port) = common::receiver(None, &dana_log);
    let dir = tmp.path().join("ops");
    common::paged_deployment(&dir, dana_port, 1, "1h");
    let c = client();
    let s = serve_deployment(&dir, &TOKENS);
    for (n, service) in [(1, "api"), (2, "api"), (3, "web"), (4, "api")] {
        common::post_as(&c, &s.base, OPERATOR, &alert("alert.firing", n, service));
    }
    let api = wait_for(
        "the api incident's three alerts",
        Duration::from_secs(10),
        || {
            let i = incident_of(&c, &s.base, "service/api");
            (i["alerts"] == 3).then_some(i)
        },
    );
    assert_eq!(api["firing"].as_array().unwrap().len(), 3, "{api}");
    let web = incident_of(&c, &s.base, "service/web");
    assert_eq!(web["alerts"], 1, "{web}");
    wait_for("two pages", Duration::from_secs(10), || {
        (requests(&dana_log).len() >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(requests(&dana_log).len(), 2, "one page per incident");
    let metrics = c
        .get(format!("{}/metrics", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("signalbox_signals_held_total{reason=\"grouped\"} 2")
            && metrics.contains("signalbox_incidents_open 2"),
        "{metrics}"
    );

    // The second api alert was recorded into the incident, saying so.
    let second = common::settled_with(&c, &s.base, "alert.firing-2", Some(OPERATOR));
    let explained = c
        .get(format!(
            "{}/v1/decisions/{}?format=text",
            s.base,
            second["decision"].as_str().unwrap()
        ))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let api_id = api["id"].as_str().unwrap().to_string();
    assert!(
        explained.contains(&format!(
            "grouped into incident {api_id} (subject=service/api)"
        )),
        "{explained}"
    );

    // One alert resolves: the incident goes on. Then a kill -9.
    common::post_as(&c, &s.base, OPERATOR, &alert("alert.resolved", 1, "api"));
    wait_for(
        "fp-1 resolved in the incident",
        Duration::from_secs(10),
        || {
            let i = get(&c, &s.base, &format!("/v1/incidents/{api_id}"));
            (i["firing"].as_array().unwrap().len() == 2).then_some(())
        },
    );
    let mut s = s;
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    drop(s);
    let s = serve_deployment(&dir, &TOKENS);

    // After the restart the incident still takes its group's alerts.
    common::post_as(&c, &s.base, OPERATOR, &alert("alert.firing", 5, "api"));
    let i = wait_for("the fifth alert joined", Duration::from_secs(10), || {
        let i = get(&c, &s.base, &format!("/v1/incidents/{api_id}"));
        (i["alerts"] == 4).then_some(i)
    });
    assert_eq!(i["state"], "open", "{i}");
    for n in [2, 4, 5] {
        common::post_as(&c, &s.base, OPERATOR, &alert("alert.resolved", n, "api"));
    }
    let i = wait_for("the incident resolved", Duration::from_secs(10), || {
        let i = get(&c, &s.base, &format!("/v1/incidents/{api_id}"));
        (i["state"] == "resolved").then_some(i)
    });
    assert!(
        i["resolved"][0]
            .as_str()
            .unwrap()
            .contains("resolved at the source"),
        "{i}"
    );
    let pages = get(&c, &s.base, "/v1/pages?state=all");
    let api_page = pages
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["incident"][0] == api_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(api_page["state"], "resolved", "{api_page}");
    assert_eq!(requests(&dana_log).len(), 2, "no page after the restart");

    // A person resolves the web incident.
    let web_id = web["id"].as_str().unwrap();
    let r = c
        .post(format!("{}/v1/incidents/{web_id}/resolve", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let done: Value = r.json().unwrap();
    assert_eq!(done["state"], "resolved");
    assert_eq!(done["resolved"][0], "oskar", "the token's identity");
    let again = c
        .post(format!("{}/v1/incidents/{web_id}/resolve", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap();
    assert_eq!(again.status(), 409);
    // Explained by its id, the incident's record is there: in text and JSON.
    let explain = |format: &str| {
        c.get(format!("{}/v1/decisions/{web_id}?format={format}", s.base))
            .bearer_auth(OPERATOR)
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let text = explain("text");
    assert!(
        text.contains(&format!(
            "incident {web_id}  alert.firing  (subject=service/web)  state resolved" // Resolved by a person; its alert has not resolved at the source.
        )) && text.contains("alerts 1  still firing 1")
            && text.contains("resolved by oskar at"),
        "{text}"
    );
    let json: Value = serde_json::from_str(&explain("json")).unwrap();
    assert_eq!(json["incident"]["id"], web_id, "{json}");
    assert_eq!(json["incident"]["resolved"][0], "oskar", "{json}");
    // A new api alert is a new incident.
    common::post_as(&c, &s.base, OPERATOR, &alert("alert.firing", 6, "api"));
    let next = wait_for("a new api incident", Duration::from_secs(10), || {
        let i = incident_of(&c, &s.base, "service/api");
        (!i.is_null()).then_some(i)
    });
    assert_ne!(next["id"], api_id.as_str());
}

/// The health the starter's overview shows for `service`.
fn health(c: &reqwest::blocking::Client, base: &str, service: &str) -> String {
    let state = get(c, base, "/v1/state?part=overview");
    state["overview"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == service)
        .and_then(|s| s["health"].as_str())
        .unwrap_or("unknown")
        .to_string()
}

/// PagerDuty's details as a new user sends them: `custom_details.service`
/// names the service (before `component` and `source`), so two triggers
/// on it are one incident; an `acknowledge` of either acknowledges the
/// incident's page; resolving both brings the service back up.
#[test]
fn pagerduty_events_name_the_service_acknowledge_and_restore_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dana_log = tmp.path().join("dana.jsonl");
    let (_dana, dana_port) = common::receiver(None, &dana_log);
    let dir = tmp.path().join("ops");
    common::paged_deployment(&dir, dana_port, 1, "1h");
    let c = client();
    let s = serve_deployment(&dir, &TOKENS);
    let send = |body: Value| {
        let r = c
            .post(format!("{}/v2/enqueue", s.base))
            .bearer_auth(OPERATOR)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().unwrap_or_default());
    };
    let key = "R0UT1NGK3Y0000000000000000000001";
    for dedup in ["db-1", "db-2"] {
        send(json!({
            "routing_key": key, "event_action": "trigger", "dedup_key": dedup,
            "payload": {
                "summary": "replication lag", "source": "host-7", "severity": "critical",
                "component": "postgres", "custom_details": { "service": "api" }
            }
        }));
    }
    let incident = wait_for("one incident of two", Duration::from_secs(10), || {
        let i = incident_of(&c, &s.base, "service/api");
        (i["alerts"] == 2).then_some(i)
    });
    assert_eq!(health(&c, &s.base, "api"), "down");
    wait_for("the page", Duration::from_secs(10), || {
        requests(&dana_log).into_iter().next()
    });
    send(json!({"routing_key": key, "event_action": "acknowledge", "dedup_key": "db-2"}));
    let page = wait_for(
        "the incident's page acknowledged",
        Duration::from_secs(10),
        || {
            get(&c, &s.base, "/v1/pages?state=all")
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["incident"][0] == incident["id"] && p["state"] == "acknowledged")
                .cloned()
        },
    );
    assert!(
        page["acknowledged"][0]
            .as_str()
            .unwrap()
            .starts_with("the source"),
        "{page}"
    );
    for dedup in ["db-1", "db-2"] {
        send(json!({"routing_key": key, "event_action": "resolve", "dedup_key": dedup}));
    }
    wait_for("the service up again", Duration::from_secs(10), || {
        (health(&c, &s.base, "api") == "up").then_some(())
    });
    let id = incident["id"].as_str().unwrap();
    assert_eq!(
        get(&c, &s.base, &format!("/v1/incidents/{id}"))["state"],
        "resolved"
    );
}

/// An inhibition rule of the playbook: while a datacenter's outage fires,
/// the warnings of that datacenter (by its `dc` label) are recorded as
/// inhibited and ask nobody, across a kill -9; another datacenter's
/// warning, or one after the outage resolved, goes to review as before.
#[test]
fn a_datacenter_down_inhibits_its_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    common::init(&dir);
    let mut playbook = std::fs::read_to_string(dir.join("playbook.toml")).unwrap();
    playbook.push_str(
        "\n[[inhibit]]\nsource = ['alertname=\"DatacenterDown\"']\ntarget = ['severity=\"warning\"']\nequal = [\"dc\"]\n",
    );
    std::fs::write(dir.join("playbook.toml"), playbook).unwrap();
    let c = client();
    let s = serve_deployment(&dir, &TOKENS);
    let labelled = |id: &str, kind: &str, service: &str, severity: &str, labels: Value| {
        let mut e = event(
            id,
            kind,
            &format!("service/{service}"),
            json!({ "service": service, "fingerprint": format!("fp-{service}"), "labels": labels }),
        );
        e["severity"] = json!(severity);
        e
    };
    let down = labelled(
        "dc-1",
        "alert.firing",
        "dc-fra",
        "critical",
        json!({"alertname": "DatacenterDown", "dc": "fra"}),
    );
    common::post_as(&c, &s.base, OPERATOR, &down);
    common::settled_with(&c, &s.base, "dc-1", Some(OPERATOR));
    let mut s = s;
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    drop(s);
    let s = serve_deployment(&dir, &TOKENS);
    let warn = |id: &str, service: &str, dc: &str| {
        labelled(
            id,
            "alert.firing",
            service,
            "warning",
            json!({"alertname": "Slow", "dc": dc}),
        )
    };
    common::post_as(&c, &s.base, OPERATOR, &warn("w-api", "api", "fra"));
    common::post_as(&c, &s.base, OPERATOR, &warn("w-web", "web", "ams"));
    let why = |signal: &str| {
        let d = common::settled_with(&c, &s.base, signal, Some(OPERATOR));
        get(
            &c,
            &s.base,
            &format!("/v1/decisions/{}", d["decision"].as_str().unwrap()),
        )["decision"]["why"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let held = why("w-api");
    assert!(
        held.starts_with("inhibited by rule 1 (source alertname=\"DatacenterDown\" → target severity=\"warning\", equal dc) while alert fp-dc-fra fires (equal: fra)"),
        "{held}"
    );
    assert!(!why("w-web").contains("inhibited"));
    let open: Value = get(&c, &s.base, "/v1/reviews");
    let subjects = open.to_string();
    assert!(
        subjects.contains("service/web") && !subjects.contains("service/api"),
        "{subjects}"
    );

    // The outage resolves: the next warning of fra asks a person again.
    let mut resolved = down.clone();
    resolved["id"] = json!("dc-2");
    resolved["type"] = json!("alert.resolved");
    common::post_as(&c, &s.base, OPERATOR, &resolved);
    common::settled_with(&c, &s.base, "dc-2", Some(OPERATOR));
    common::post_as(&c, &s.base, OPERATOR, &warn("w-db", "database", "fra"));
    assert!(!why("w-db").contains("inhibited"));
}

/// A maintenance window of the playbook holds the database's signals
/// (recorded, nobody asked) while the api's go to review; `validate`
/// refuses a window whose times cross midnight in one range.
#[test]
fn a_maintenance_window_holds_its_services_signals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    common::init(&dir);
    let original = std::fs::read_to_string(dir.join("playbook.toml")).unwrap();
    let window = |times: &str| {
        format!(
            "{original}\n[[maintenance]]\nname = \"database-works\"\nmatchers = ['service=\"database\"']\n[[maintenance.interval]]\ntimes = [{times}]\nlocation = \"Europe/Berlin\"\n"
        )
    };
    std::fs::write(
        dir.join("playbook.toml"),
        window("{ start = \"23:00\", end = \"02:00\" }"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .arg("validate")
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("database-works") && err.contains("cross midnight"),
        "{err}"
    );
    std::fs::write(
        dir.join("playbook.toml"),
        window("{ start = \"00:00\", end = \"24:00\" }"),
    )
    .unwrap();
    let c = client();
    let s = serve_deployment(&dir, &TOKENS);
    for (id, service) in [("m-db", "database"), ("m-api", "api")] {
        let mut e = event(
            id,
            "alert.firing",
            &format!("service/{service}"),
            json!({ "service": service, "fingerprint": id }),
        );
        e["severity"] = json!("warning");
        common::post_as(&c, &s.base, OPERATOR, &e);
    }
    let why = |signal: &str| {
        let d = common::settled_with(&c, &s.base, signal, Some(OPERATOR));
        get(
            &c,
            &s.base,
            &format!("/v1/decisions/{}", d["decision"].as_str().unwrap()),
        )["decision"]["why"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        why("m-db"),
        "in maintenance window \"database-works\": recorded"
    );
    assert!(!why("m-api").contains("maintenance"));
}
