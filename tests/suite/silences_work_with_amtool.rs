//! Silences through Alertmanager's v2 API, with Debian's real `amtool`
//! (its token in `--http.config.file`): `silence add` makes one owned by
//! the token's identity, `silence query` lists it, an alert it matches is
//! recorded as silenced (no page) while another pages, another operator
//! may not expire it, `silence expire` ends it (and `query --expired`
//! shows it), and after that the same alert pages. A silence longer than
//! the deployment's maximum is refused; one about to end is announced to
//! the notification receivers.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{self, client, event, serve_deployment, wait_for};
use crate::pages_reach_people_and_stop_when_acknowledged::requests;
use serde_json::{Value, json};

const TOKENS: [&str; 4] = [
    "--token",
    "op-secret-1:operator:oskar",
    "--token",
    "op-secret-2:operator:olga",
];

fn amtool(base: &str, config: &Path, args: &[&str]) -> std::process::Output {
    Command::new("amtool")
        .arg(format!("--alertmanager.url={base}"))
        .arg(format!("--http.config.file={}", config.display()))
        .args(args)
        .output()
        .expect("amtool (Debian's prometheus-alertmanager) must be installed; .ci/run installs it")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn critical(n: u32, service: &str) -> Value {
    let mut e = event(
        &format!("s{n}"),
        "alert.firing",
        &format!("service/{service}"),
        json!({ "service": service, "fingerprint": format!("sf-{n}") }),
    );
    e["severity"] = json!("critical");
    e
}

#[test]
fn amtool_adds_queries_and_expires_silences_that_hold_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let dana_log = tmp.path().join("dana.jsonl");
    let notices = tmp.path().join("notices.jsonl");
    let (_dana, dana_port) = common::receiver(None, &dana_log);
    let (_notify, notify_port) = common::receiver(None, &notices);
    let dir = tmp.path().join("ops");
    common::paged_deployment(&dir, dana_port, 1, "1h");
    let server = std::fs::read_to_string(dir.join("signalbox.toml")).unwrap();
    std::fs::write(
        dir.join("signalbox.toml"),
        format!(
            "{server}\n[silences]\nmax_length = \"2h\"\n\n[[notify]]\nname = \"ops\"\nurl = \"http://127.0.0.1:{notify_port}/ops\"\nevents = [\"silence\"]\n"
        ),
    )
    .unwrap();
    let config = tmp.path().join("amtool-http.yml");
    std::fs::write(
        &config,
        "authorization:\n  type: Bearer\n  credentials: op-secret-1\n",
    )
    .unwrap();
    let s = serve_deployment(&dir, &TOKENS);
    let base = s.base.clone();

    let add = amtool(
        &base,
        &config,
        &[
            "silence",
            "add",
            "service=api",
            "--comment=deploying api",
            "--duration=1h",
        ],
    );
    assert!(add.status.success(), "{}", text(&add));
    let id = String::from_utf8_lossy(&add.stdout).trim().to_string();
    assert_eq!(id.len(), 36, "a silence id: {id}");
    let query = amtool(&base, &config, &["silence", "query"]);
    let listed = text(&query);
    assert!(query.status.success(), "{listed}");
    assert!(
        listed.contains(&id) && listed.contains("service=\"api\"") && listed.contains("oskar"),
        "the owner is the token's: {listed}"
    );
    let filtered = amtool(&base, &config, &["silence", "query", "service=web"]);
    assert!(!text(&filtered).contains(&id), "{}", text(&filtered));

    // The silence holds api's alert; web's pages.
    let c = client();
    common::post_as(&c, &base, "op-secret-1", &critical(1, "api"));
    common::post_as(&c, &base, "op-secret-1", &critical(2, "web"));
    let page = wait_for("web's page", Duration::from_secs(10), || {
        requests(&dana_log).into_iter().next()
    });
    assert!(
        page["body"].as_str().unwrap().contains("service/web"),
        "{page}"
    );
    let held = common::settled_with(&c, &base, "s1", Some("op-secret-1"));
    let why = c
        .get(format!(
            "{base}/v1/decisions/{}",
            held["decision"].as_str().unwrap()
        ))
        .bearer_auth("op-secret-1")
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert!(
        why["decision"]["why"]
            .as_str()
            .unwrap()
            .starts_with(&format!("silenced by {id} (service=\"api\")")),
        "{why}"
    );

    // Olga may not end oskar's silence; oskar ends it with amtool.
    let r = c
        .delete(format!("{base}/api/v2/silence/{id}"))
        .bearer_auth("op-secret-2")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let expire = amtool(&base, &config, &["silence", "expire", &id]);
    assert!(expire.status.success(), "{}", text(&expire));
    assert!(!text(&amtool(&base, &config, &["silence", "query"])).contains(&id));
    assert!(text(&amtool(&base, &config, &["silence", "query", "--expired"])).contains(&id));
    common::post_as(&c, &base, "op-secret-1", &critical(3, "api"));
    wait_for(
        "api's page once the silence ended",
        Duration::from_secs(10),
        || (requests(&dana_log).len() >= 2).then_some(()),
    );

    // Longer than the deployment allows: refused.
    let long = amtool(
        &base,
        &config,
        &[
            "silence",
            "add",
            "service=db",
            "--comment=x",
            "--duration=3h",
        ],
    );
    assert!(!long.status.success(), "{}", text(&long));
    // Ten minutes: within the quarter hour before its end, announced.
    let short = amtool(
        &base,
        &config,
        &[
            "silence",
            "add",
            "service=db",
            "--comment=short",
            "--duration=10m",
        ],
    );
    assert!(short.status.success(), "{}", text(&short));
    let short_id = String::from_utf8_lossy(&short.stdout).trim().to_string();
    let notice = wait_for("the notice that it ends", Duration::from_secs(10), || {
        requests(&notices).into_iter().next()
    });
    let body = notice["body"].as_str().unwrap();
    assert!(body.contains(&short_id) && body.contains("oskar"), "{body}");
}

/// A silence as Alertmanager's API takes it, refused when it would match
/// everything, naming why.
#[test]
fn a_silence_that_would_hold_everything_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    common::init(&dir);
    let s = serve_deployment(&dir, &TOKENS);
    let now = chrono::Utc::now();
    let r = client()
        .post(format!("{}/api/v2/silences", s.base))
        .bearer_auth("op-secret-1")
        .json(&json!({
            "matchers": [{"name": "service", "value": ".*", "isRegex": true, "isEqual": true}],
            "startsAt": now.to_rfc3339(), "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "createdBy": "someone else", "comment": "all"
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .unwrap()
            .contains("must not match the empty string")
    );
}

/// Before a silence is made, `GET /v1/silences/preview` says what it would
/// match: open review items, and the last day's journaled signals.
#[test]
fn a_preview_counts_open_items_and_the_last_days_signals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    common::init(&dir);
    let s = serve_deployment(&dir, &TOKENS);
    let c = client();
    for (n, service) in [(1, "api"), (2, "api"), (3, "db")] {
        let mut warning = critical(n, service);
        warning["severity"] = json!("warning");
        common::post_as(&c, &s.base, "op-secret-1", &warning);
    }
    let preview = |query: &str| -> (u16, Value) {
        let r = c
            .get(format!("{}/v1/silences/preview?{query}", s.base))
            .bearer_auth("op-secret-1")
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap())
    };
    // The starter groups by subject: api's second alert joins its incident.
    let api = wait_for("the alerts decided", Duration::from_secs(10), || {
        let (status, v) = preview("matcher=service%3D%22api%22");
        (status == 200 && v["last_day"] == 2).then_some(v)
    });
    assert_eq!(api["open_items"], 1, "{api}");
    let (_, both) = preview("matcher=service%3D~%22api%7Cdb%22&matcher=type%3D%22alert.firing%22");
    assert_eq!(
        (both["open_items"].clone(), both["last_day"].clone()),
        (json!(2), json!(3))
    );
    let (status, refused) = preview("matcher=service");
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["field"], "matcher");
}
