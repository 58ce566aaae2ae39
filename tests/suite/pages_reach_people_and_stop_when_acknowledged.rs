//! A step that pages reaches people: a critical alert on a deployment
//! pages its escalation policy; the on-call person's signed JSON webhook
//! gets it at once, the next level's Slack-compatible webhook when nobody
//! acknowledges in time, and the signed link in the message acknowledges
//! it (once: a second use, or a tampered link, is refused), after which
//! nobody is paged again. A page acknowledged over HTTP with a token stops
//! before its second level. The receivers are real HTTP servers on
//! loopback (Python's).

use std::path::Path;
use std::time::Duration;

use crate::common::{self, client, event, serve_deployment, wait_for};
use serde_json::{Value, json};

pub(crate) const OPERATOR: &str = "op-secret-1";
pub(crate) const TOKENS: [&str; 2] = ["--token", "op-secret-1:operator:oskar"];

pub(crate) fn requests(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn body(request: &Value) -> Value {
    serde_json::from_str(request["body"].as_str().unwrap()).unwrap()
}

/// A served deployment paging two real receivers, and where they log.
struct Paged {
    _tmp: tempfile::TempDir,
    dana_log: std::path::PathBuf,
    emil_log: std::path::PathBuf,
    _receivers: (common::Kill, common::Kill),
    s: common::Server,
}

fn paged(after: &str) -> Paged {
    let tmp = tempfile::tempdir().unwrap();
    let (dana_log, emil_log) = (tmp.path().join("dana.jsonl"), tmp.path().join("emil.jsonl"));
    let (dana, dana_port) = common::receiver(None, &dana_log);
    let (emil, emil_port) = common::receiver(None, &emil_log);
    let dir = tmp.path().join("ops");
    common::paged_deployment(&dir, dana_port, emil_port, after);
    let s = serve_deployment(&dir, &TOKENS);
    Paged {
        _tmp: tmp,
        dana_log,
        emil_log,
        _receivers: (dana, emil),
        s,
    }
}

/// Posts a critical alert on `api` and waits for dana's page: her
/// request, and the page's id.
fn page_dana(
    c: &reqwest::blocking::Client,
    s: &common::Server,
    dana_log: &Path,
    alert: &str,
) -> (Value, String) {
    common::post_as(c, &s.base, OPERATOR, &critical(alert, "api"));
    let first = wait_for("dana's page", Duration::from_secs(15), || {
        requests(dana_log).into_iter().next()
    });
    let id = body(&first)["page"]["id"].as_str().unwrap().to_string();
    (first, id)
}

pub(crate) fn critical(id: &str, service: &str) -> Value {
    let mut alert = event(
        id,
        "alert.firing",
        &format!("service/{service}"),
        json!({ "service": service }),
    );
    alert["severity"] = json!("critical");
    alert
}

pub(crate) fn page(c: &reqwest::blocking::Client, base: &str, id: &str) -> Value {
    c.get(format!("{base}/v1/pages/{id}"))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn a_page_escalates_and_a_signed_link_acknowledges_it_once() {
    let Paged {
        _tmp,
        dana_log,
        emil_log,
        _receivers,
        s,
    } = paged("3s");
    let c = client();
    let oncall: Value = c
        .get(format!("{}/v1/oncall?team=sre", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(oncall["on_call"][0]["person"], "dana", "{oncall}");

    common::post_as(&c, &s.base, OPERATOR, &critical("a1", "api"));
    let first = wait_for("dana's page", Duration::from_secs(15), || {
        requests(&dana_log).into_iter().next()
    });
    let signature = first["headers"]["X-Signalbox-Signature-256"]
        .as_str()
        .or(first["headers"]["x-signalbox-signature-256"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        signature.starts_with("sha256=") && signature.len() == 7 + 64,
        "{first}"
    );
    let sent = body(&first);
    assert_eq!(
        (sent["event"].as_str(), sent["person"].as_str()),
        (Some("page"), Some("dana"))
    );
    let text = sent["text"].as_str().unwrap();
    assert!(
        text.contains("alert.firing on service/api")
            && text.contains("Why: decision D")
            && text.contains("rule critical-alert-pages: A critical alert pages"),
        "{text}"
    );
    assert!(
        text.contains("/v1/decisions/D"),
        "links the evidence: {text}"
    );
    let id = sent["page"]["id"].as_str().unwrap().to_string();
    let ack = sent["ack_url"].as_str().unwrap().to_string();

    // Nobody acknowledges within 3 s: emil's Slack-compatible webhook.
    let slack = wait_for("emil's page", Duration::from_secs(15), || {
        requests(&emil_log).into_iter().next()
    });
    let slack = body(&slack);
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains(&format!("PAGE {id}")),
        "{slack}"
    );
    assert_eq!(slack["blocks"][0]["type"], "section");

    // A tampered link is refused; the signed one acknowledges, as dana.
    let tampered = ack.replace("person=dana", "person=emil");
    assert_eq!(c.get(&tampered).send().unwrap().status(), 403);
    let r = c.get(&ack).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let again = c.get(&ack).send().unwrap();
    assert_eq!(
        again.status(),
        409,
        "a link is spent once the page is acknowledged"
    );

    let p = wait_for(
        "the acknowledgement journaled",
        Duration::from_secs(5),
        || {
            let p = page(&c, &s.base, &id);
            (p["state"] == "acknowledged").then_some(p)
        },
    );
    assert_eq!(p["acknowledged"][0], "dana");
    let attempts = p["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{p}");
    assert!(
        attempts
            .iter()
            .all(|a| a["delivery"]["state"] == "delivered"),
        "{p}"
    );

    // The decision's explanation names the page and every attempt.
    let decision = p["decision_id"].as_str().unwrap();
    let explained = c
        .get(format!("{}/v1/decisions/{decision}?format=text", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        explained.contains(&format!("page {id} acknowledged"))
            && explained.contains("acknowledged by dana")
            && explained.contains("dana by webhook")
            && explained.contains("emil by slack"),
        "{explained}"
    );

    // Mean time to acknowledge, by the team whose policy it paged.
    let metrics = c
        .get(format!("{}/metrics", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("signalbox_pages{state=\"acknowledged\"} 1")
            && metrics.contains("signalbox_page_mean_time_to_acknowledge_seconds{team=\"sre\"} "),
        "{metrics}"
    );

    // Nothing more is sent for it.
    let (d, e) = (requests(&dana_log).len(), requests(&emil_log).len());
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        (requests(&dana_log).len(), requests(&emil_log).len()),
        (d, e)
    );
}

#[test]
fn acknowledged_over_http_it_stops_before_the_next_level() {
    let Paged {
        _tmp,
        dana_log,
        emil_log,
        _receivers,
        s,
    } = paged("4s");
    let c = client();
    let (_, id) = page_dana(&c, &s, &dana_log, "a2");
    let r = c
        .post(format!("{}/v1/pages/{id}/ack", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let acked: Value = r.json().unwrap();
    assert_eq!(acked["acknowledged"][0], "oskar", "the token's identity");
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        requests(&emil_log).is_empty(),
        "the second level is never paged"
    );
    let listed: Value = c
        .get(format!("{}/v1/pages?state=all", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
}

/// A PagerDuty `acknowledge` for the alert stops its page, as the source;
/// nobody at the second level is paged.
#[test]
fn an_acknowledge_from_the_source_stops_the_page() {
    let Paged {
        _tmp,
        dana_log,
        emil_log,
        _receivers,
        s,
    } = paged("4s");
    let c = client();
    let key = "R0UT1NGK3Y0000000000000000000001";
    let send = |body: Value| {
        let r = c
            .post(format!("{}/v2/enqueue", s.base))
            .bearer_auth(OPERATOR)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().unwrap_or_default());
    };
    send(json!({
        "routing_key": key, "event_action": "trigger", "dedup_key": "api-5xx",
        "payload": {"summary": "5xx on api", "source": "api-1", "severity": "critical", "component": "api"}
    }));
    let first = wait_for("dana's page", Duration::from_secs(15), || {
        requests(&dana_log).into_iter().next()
    });
    let id = body(&first)["page"]["id"].as_str().unwrap().to_string();
    send(json!({"routing_key": key, "event_action": "acknowledge", "dedup_key": "api-5xx"}));
    let p = wait_for("the page acknowledged", Duration::from_secs(10), || {
        let p = page(&c, &s.base, &id);
        (p["state"] == "acknowledged").then_some(p)
    });
    assert!(
        p["acknowledged"][0]
            .as_str()
            .unwrap()
            .starts_with("the source"),
        "{p}"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        requests(&emil_log).is_empty(),
        "the second level is never paged"
    );
}

/// A real SMTP server on loopback (tests/clients/smtp_receiver.py,
/// aiosmtpd) requiring STARTTLS with a certificate of a test CA; its port.
fn smtp_server(dir: &Path, log: &Path) -> (common::Kill, u16) {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    common::python_server(
        "smtp_receiver.py",
        &[cert.as_os_str(), key.as_os_str(), log.as_os_str()],
    )
}

/// A page by email goes through a real SMTP server over STARTTLS, with
/// the page's subject, its reason and its acknowledgement link, and the
/// server's answer is journaled on the attempt.
#[test]
fn a_page_by_email_goes_through_smtp_with_starttls() {
    let tmp = tempfile::tempdir().unwrap();
    crate::webhook_executors_speak_https::certificates(tmp.path());
    let mail_log = tmp.path().join("mail.jsonl");
    let (_smtp, smtp_port) = smtp_server(tmp.path(), &mail_log);
    let (_emil, emil_port) = common::receiver(None, &tmp.path().join("emil.jsonl"));
    let dir = tmp.path().join("ops");
    common::paged_deployment(&dir, 1, emil_port, "1m");
    let org = std::fs::read_to_string(dir.join("organization.toml")).unwrap();
    let org = org.replace(
        "contact = { webhook = \"http://127.0.0.1:1/dana\" }\nurgent = [\"webhook\"]",
        "contact = { email = \"dana@example.com\" }\nurgent = [\"email\"]",
    );
    assert!(org.contains("dana@example.com"));
    std::fs::write(dir.join("organization.toml"), org).unwrap();
    let server = std::fs::read_to_string(dir.join("signalbox.toml")).unwrap();
    std::fs::write(
        dir.join("signalbox.toml"),
        format!(
            "{server}\n[tls]\nca_file = {:?}\n\n[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nfrom = \"Signalbox <signalbox@example.com>\"\n",
            tmp.path().join("ca.pem")
        ),
    )
    .unwrap();
    let c = client();
    let s = serve_deployment(&dir, &TOKENS);
    common::post_as(&c, &s.base, OPERATOR, &critical("m1", "api"));
    let mail = wait_for("dana's email", Duration::from_secs(20), || {
        requests(&mail_log).into_iter().next()
    });
    assert_eq!(mail["to"], json!(["dana@example.com"]), "{mail}");
    assert_eq!(mail["tls"], true, "STARTTLS first: {mail}");
    let data = mail["data"].as_str().unwrap();
    assert!(
        data.contains("Subject: [signalbox] PAGE P0000001"),
        "{data}"
    );
    assert!(
        data.contains("Acknowledge: ") && data.contains("sig="),
        "{data}"
    );
    let p = wait_for("the delivery journaled", Duration::from_secs(10), || {
        let p = page(&c, &s.base, "P0000001");
        (p["attempts"][0]["delivery"]["state"] == "delivered").then_some(p)
    });
    let answer = p["attempts"][0]["delivery"]["answer"].as_str().unwrap();
    assert!(answer.contains("250"), "{p}");
}

/// Killed with -9 while a page waits at its first level, the server
/// resumes it after a restart: the same page goes on to its second level
/// in time, and the first level's attempt is not sent again.
#[test]
fn a_page_resumes_its_escalation_after_kill_9() {
    let Paged {
        _tmp,
        dana_log,
        emil_log,
        _receivers,
        s,
    } = paged("5s");
    let c = client();
    let (_, id) = page_dana(&c, &s, &dana_log, "k1");
    // The delivery is journaled before the kill, as it would be by then.
    wait_for(
        "the first attempt journaled",
        Duration::from_secs(5),
        || {
            let p = page(&c, &s.base, &id);
            (p["attempts"][0]["delivery"]["state"] == "delivered").then_some(())
        },
    );
    let dir = s.dir.parent().unwrap().to_path_buf();
    let mut s = s;
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    drop(s);
    let s = serve_deployment(&dir, &TOKENS);
    let second = wait_for(
        "emil's page after the restart",
        Duration::from_secs(20),
        || requests(&emil_log).into_iter().next(),
    );
    assert!(
        body(&second)["text"]
            .as_str()
            .unwrap()
            .contains(&format!("PAGE {id}"))
    );
    let p = page(&c, &s.base, &id);
    assert_eq!(
        (p["level"].as_u64(), p["state"].as_str()),
        (Some(1), Some("triggered")),
        "{p}"
    );
    assert_eq!(
        requests(&dana_log).len(),
        1,
        "the first level is not paged again"
    );
    let listed: Value = c
        .get(format!("{}/v1/pages?state=all", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "no second page for the same step: {listed}"
    );
}

/// `validate` warns of the coming week's gaps (a layer restricted to
/// office hours leaves the nights to nobody), at the schedule's line, and
/// still passes; `oncall` names nobody there.
#[test]
fn validate_warns_of_gaps_and_oncall_shows_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    common::init(&dir);
    let org = std::fs::read_to_string(dir.join("organization.toml")).unwrap();
    let org = org.replace(
        "rotation = \"1w\"\n",
        "rotation = \"1w\"\nrestrict = [\"mon-sun 08:00-20:00\"]\n",
    );
    std::fs::write(dir.join("organization.toml"), &org).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .arg("validate")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let warnings = String::from_utf8_lossy(&out.stderr);
    let line = org
        .lines()
        .position(|l| l.contains("id = \"sre-primary\""))
        .unwrap()
        + 1;
    assert!(
        warnings.contains(&format!(
            "organization.toml:{line}: warning: schedule `sre-primary`: nobody on call from"
        )) && warnings.contains(" 20:00 to ")
            && warnings.contains(" 08:00 (Europe/Berlin)"),
        "{warnings}"
    );
    assert!(
        warnings.lines().count() >= 6,
        "a gap each night: {warnings}"
    );
    // 03:00 in Berlin on a winter night: nobody.
    let night = common::json_of(
        [
            "oncall",
            "--config",
            dir.to_str().unwrap(),
            "--at",
            "2027-01-13T02:00:00Z",
            "--json",
        ]
        .map(std::ffi::OsStr::new),
    );
    assert_eq!(night["on_call"][0]["person"], Value::Null, "{night}");
    assert_eq!(night["on_call"][0]["by"], "gap");
}
