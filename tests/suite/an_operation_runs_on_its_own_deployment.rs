//! `init` → `validate` → `serve --config` on the real server: a signal type
//! declared only in the deployment directory updates the context and is
//! decided; tickets become tasks for support that stay open until a person
//! answers them; completing finishes the flow, failing runs compensation;
//! a restart resumes open tasks.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{Server, client, event, serve_deployment, wait_for};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const OPERATOR: &str = "op-secret-1";
const TOKENS: [&str; 4] = [
    "--token",
    "op-secret-1:operator:oskar",
    "--token",
    "lead-secret-1:lead:lena",
];

fn signalbox(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

fn post(c: &Client, s: &Server, e: &Value) {
    common::post_as(c, &s.base, OPERATOR, e);
}

fn get(c: &Client, s: &Server, path: &str) -> Value {
    let r = c
        .get(format!("{}{path}", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().unwrap()
}

fn act(c: &Client, s: &Server, task: &str, how: &str, body: Value) -> Value {
    let r = c
        .post(format!("{}/v1/tasks/{task}/{how}", s.base))
        .bearer_auth(OPERATOR)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{how} {task}");
    r.json().unwrap()
}

/// The open tasks of a flow, once there is one.
fn open_task_of(c: &Client, s: &Server, flow: &str) -> Value {
    wait_for(
        &format!("an open task of {flow}"),
        Duration::from_secs(10),
        || {
            let tasks = get(c, s, "/v1/tasks?state=open");
            tasks
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["flow"] == flow)
                .cloned()
        },
    )
}

fn flow_state(c: &Client, s: &Server, flow: &str) -> String {
    get(c, s, &format!("/v1/flows/{flow}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn flow_of(c: &Client, s: &Server, signal: &str) -> String {
    let decision = common::settled_with(c, &s.base, signal, Some(OPERATOR));
    assert_eq!(decision["state"], "decided", "{decision}");
    let id = decision["decision"].as_str().unwrap();
    format!("F{}", &id[1..])
}

/// A signal type of the operation's own, with its context update and its
/// step, added to the starter.
fn declare_backup_failed(dir: &Path) {
    let mut playbook = std::fs::read_to_string(dir.join("playbook.toml")).unwrap();
    playbook.push_str(
        r#"
[signal."backup.failed"]
class = "maintenance"
options = ["rerun_backup"]
default = "rerun_backup"
safe_default = "rerun_backup"
sla_minutes = 120
review_minutes = 30

[[signal."backup.failed".update]]
entity = "backup"
id = "signal.data.host"
set = { last_error = "signal.data.error", failures = "int(signal.data.attempt)" }

[option.rerun_backup]
label = "Rerun the backup by hand"
steps = ["maintenance.rerun_backup"]
"#,
    );
    std::fs::write(dir.join("playbook.toml"), playbook).unwrap();
    let mut steps = std::fs::read_to_string(dir.join("steps.toml")).unwrap();
    steps.push_str(
        "\n[step.\"maintenance.rerun_backup\"]\nprocess = \"incident\"\nskill = \"sre\"\nminutes = 20\n",
    );
    std::fs::write(dir.join("steps.toml"), steps).unwrap();
    let mut policies = std::fs::read_to_string(dir.join("policies.toml")).unwrap();
    policies.push_str(
        "\n[[rule]]\nid = \"backups-rerun\"\ntypes = [\"backup.failed\"]\nwhen = \"context.subject != null && context.subject.failures < 5\"\nforce = \"rerun_backup\"\nreason = \"A failed backup is rerun\"\n",
    );
    std::fs::write(dir.join("policies.toml"), policies).unwrap();
}

#[test]
fn a_starter_deployment_decides_routes_tasks_and_resumes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    let out = signalbox(&["init"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    declare_backup_failed(&dir);
    let out = signalbox(&["validate"], &dir);
    assert!(
        out.status.success(),
        "validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = client();
    let s = serve_deployment(&dir, &TOKENS);

    // A type declared only in the deployment: its update reaches the
    // context (the policy reads it) and it is decided.
    post(
        &c,
        &s,
        &event(
            "b1",
            "backup.failed",
            "backup/db1",
            json!({"host": "db1", "error": "disk full", "attempt": 2}),
        ),
    );
    let decision = common::settled_with(&c, &s.base, "b1", Some(OPERATOR));
    let d = get(
        &c,
        &s,
        &format!("/v1/decisions/{}", decision["decision"].as_str().unwrap()),
    );
    let text = d.to_string();
    assert!(
        text.contains("disk full"),
        "the snapshot holds the update: {text}"
    );
    assert!(text.contains("backups-rerun"), "the policy read it: {text}");
    assert!(
        d.to_string().contains("rules+"),
        "the rules version is recorded: {text}"
    );
    let backup_flow = flow_of(&c, &s, "b1");
    let task = open_task_of(&c, &s, &backup_flow);
    assert_eq!(task["team"], "sre");

    // A ticket: a task for support, which nothing but a person ends.
    post(
        &c,
        &s,
        &event(
            "t1",
            "ticket.opened",
            "customer/acme",
            json!({"ticket": "T-1", "customer": "acme"}),
        ),
    );
    let flow = flow_of(&c, &s, "t1");
    let first = open_task_of(&c, &s, &flow);
    assert_eq!(first["team"], "support", "{first}");
    assert_eq!(first["template"], "service_desk.acknowledge");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        open_task_of(&c, &s, &flow)["id"],
        first["id"],
        "no timer ends a task"
    );
    let done = act(
        &c,
        &s,
        first["id"].as_str().unwrap(),
        "complete",
        json!({"note": "called back"}),
    );
    assert_eq!(done["state"], "done", "{done}");
    assert!(
        done["note"].as_str().unwrap().contains("oskar"),
        "who acted is the token's name: {done}"
    );
    let second = open_task_of(&c, &s, &flow);
    assert_eq!(second["template"], "service_desk.resolve");
    act(
        &c,
        &s,
        second["id"].as_str().unwrap(),
        "complete",
        json!({}),
    );
    wait_for(
        "the ticket's flow to finish",
        Duration::from_secs(10),
        || (flow_state(&c, &s, &flow) == "done").then_some(()),
    );

    // Another ticket, its second task failed: what was done is undone.
    post(
        &c,
        &s,
        &event(
            "t2",
            "ticket.opened",
            "customer/globex",
            json!({"ticket": "T-2", "customer": "globex"}),
        ),
    );
    let flow2 = flow_of(&c, &s, "t2");
    let first = open_task_of(&c, &s, &flow2);
    act(&c, &s, first["id"].as_str().unwrap(), "complete", json!({}));
    let second = open_task_of(&c, &s, &flow2);
    act(
        &c,
        &s,
        second["id"].as_str().unwrap(),
        "fail",
        json!({"note": "cannot reproduce"}),
    );
    let undo = open_task_of(&c, &s, &flow2);
    assert_eq!(undo["template"], "service_desk.withdraw", "{undo}");
    assert_eq!(undo["compensation"], true);

    // Handed on to a team, it stays open there.
    let handed = act(
        &c,
        &s,
        undo["id"].as_str().unwrap(),
        "reassign",
        json!({"team": "sre", "note": "needs root"}),
    );
    assert_eq!(handed["team"], "sre");
    assert_eq!(handed["state"], "open");

    // A restart resumes the open tasks.
    let open_before = get(&c, &s, "/v1/tasks");
    assert!(s.terminate().success());
    let s = serve_deployment(&dir, &TOKENS);
    let open_after = get(&c, &s, "/v1/tasks");
    let ids = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&open_before), ids(&open_after));
    assert_eq!(ids(&open_after).len(), 2, "{open_after}");
    act(&c, &s, undo["id"].as_str().unwrap(), "complete", json!({}));
    wait_for(
        "the failed ticket's flow to be compensated",
        Duration::from_secs(10),
        || (flow_state(&c, &s, &flow2) == "compensated").then_some(()),
    );
    // Only a person may act, and on an open task.
    let r = c
        .post(format!(
            "{}/v1/tasks/{}/complete",
            s.base,
            undo["id"].as_str().unwrap()
        ))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap();
    assert_eq!(r.status(), 409);
}

#[test]
fn serve_without_a_deployment_names_init() {
    let out = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signalbox init"), "{err}");
}

/// A backup runner reached by webhook gets what it needs to rerun the job,
/// not only ids: the step template's `carries` names fields of the signal
/// and of the decision's context, and the body holds their values (a path
/// that leads nowhere, `null`). `validate` refuses a path into nothing, at
/// its line.
#[test]
fn an_automation_gets_the_fields_its_step_carries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    common::init(&dir);
    declare_backup_failed(&dir);
    let log = tmp.path().join("runner.jsonl");
    let (_runner, port) = common::receiver(None, &log);
    let org = std::fs::read_to_string(dir.join("organization.toml")).unwrap();
    let org = org.replace(
        "runbook = \"manual\"\n",
        &format!("runbook = \"manual\"\nbackup_runner = \"http://127.0.0.1:{port}/rerun\"\n"),
    );
    std::fs::write(dir.join("organization.toml"), org).unwrap();
    let steps = std::fs::read_to_string(dir.join("steps.toml")).unwrap();
    let carried = "automation = \"backup_runner\"\ncarries = { host = \"signal.data.host\", error = \"signal.data.error\", failures = \"context.subject.failures\", source = \"signal.source\", nothing = \"signal.data.job.id\" }\n";
    let with = steps.replace("minutes = 20\n", &format!("minutes = 20\n{carried}"));
    let bad = with.replace("context.subject.failures", "context.backup.failures");
    std::fs::write(dir.join("steps.toml"), &bad).unwrap();
    let out = signalbox(&["validate"], &dir);
    let line = bad
        .lines()
        .position(|l| l.contains("context.backup"))
        .unwrap()
        + 1;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("steps.toml:{line}:"))
            && err.contains("carries.failures")
            && err.contains("no field `backup`"),
        "{err}"
    );
    std::fs::write(dir.join("steps.toml"), &with).unwrap();
    let out = signalbox(&["validate"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let c = client();
    let s = serve_deployment(&dir, &TOKENS);
    post(
        &c,
        &s,
        &event(
            "b2",
            "backup.failed",
            "backup/db2",
            json!({"host": "db2", "error": "snapshot timed out", "attempt": 3}),
        ),
    );
    let request = wait_for("the runner's request", Duration::from_secs(15), || {
        std::fs::read_to_string(&log)
            .ok()?
            .lines()
            .next()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
    });
    let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["template"], "maintenance.rerun_backup", "{body}");
    assert_eq!(
        body["fields"],
        json!({
            "host": "db2",
            "error": "snapshot timed out",
            "failures": 3,
            "source": "test",
            "nothing": null,
        }),
        "{body}"
    );
}

/// Runs a ticket's two tasks (acknowledge, then resolve) as `last` says.
fn work_ticket(c: &Client, s: &Server, flow: &str, last: &str) {
    let first = open_task_of(c, s, flow);
    act(c, s, first["id"].as_str().unwrap(), "complete", json!({}));
    let second = open_task_of(c, s, flow);
    act(c, s, second["id"].as_str().unwrap(), last, json!({}));
}

/// The figures of one class in `signalbox report --json`.
fn reported(dir: &Path, class: &str) -> Value {
    let out = signalbox(&["report", "--json", "--config"], dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut by = serde_json::Map::new();
    for o in r["outcomes"].as_array().unwrap() {
        if o["class"] == class {
            for (k, v) in o["by"].as_object().unwrap() {
                let n = by.get(k).and_then(Value::as_u64).unwrap_or(0);
                by.insert(k.clone(), json!(n + v.as_u64().unwrap()));
            }
        }
    }
    json!({"by": by, "report": r})
}

/// A new deployment from `init` run over HTTP: a ticket resolved in time,
/// one after the time it was promised by, one whose resolution failed (and
/// was undone), a critical alert paged, acknowledged and resolved at the
/// source. `signalbox report` reads back exactly that, Overview's figures
/// (`/v1/state`) agree and survive a restart, and `/metrics` counts them.
#[test]
fn the_report_reads_back_what_was_done_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    let out = signalbox(&["init"], &dir);
    assert!(out.status.success());
    let playbook = std::fs::read_to_string(dir.join("playbook.toml")).unwrap();
    let fields = "fields = { ticket = \"string\", summary = \"string?\", severity = \"string?\" }";
    assert!(playbook.contains(fields));
    let promised = fields.replace(" }", ", promised_by = \"string?\" }\ndue = \"promised_by\"");
    std::fs::write(
        dir.join("playbook.toml"),
        playbook.replace(fields, &promised),
    )
    .unwrap();
    let c = client();
    let s = serve_deployment(&dir, &TOKENS);
    let now = chrono::Utc::now();
    let ticket = |id: &str, within: i64| {
        let by = now + chrono::Duration::seconds(within);
        let data = json!({"ticket": id, "promised_by": by.to_rfc3339()});
        event(id, "ticket.opened", &format!("ticket/{id}"), data)
    };
    for (id, within) in [("t1", 3600), ("t2", 4), ("t3", 3600)] {
        post(&c, &s, &ticket(id, within));
    }
    let flows: Vec<String> = ["t1", "t2", "t3"]
        .iter()
        .map(|t| flow_of(&c, &s, t))
        .collect();
    work_ticket(&c, &s, &flows[0], "complete");
    work_ticket(&c, &s, &flows[2], "fail");
    let undo = open_task_of(&c, &s, &flows[2]);
    act(&c, &s, undo["id"].as_str().unwrap(), "complete", json!({}));
    std::thread::sleep(Duration::from_secs(5));
    work_ticket(&c, &s, &flows[1], "complete");

    let alert = |id: &str, kind: &str| {
        let mut e = event(
            id,
            kind,
            "service/api",
            json!({"service": "api", "fingerprint": "fa"}),
        );
        e["severity"] = json!("critical");
        e
    };
    post(&c, &s, &alert("a1", "alert.firing"));
    let alert_flow = flow_of(&c, &s, "a1");
    let page = wait_for("a page", Duration::from_secs(10), || {
        let pages = get(&c, &s, "/v1/pages");
        let found = pages
            .as_array()?
            .iter()
            .find(|p| p["flow_id"] == alert_flow.as_str());
        found.map(|p| p["id"].as_str().unwrap().to_string())
    });
    act_on(&c, &s, &format!("/v1/pages/{page}/acknowledge"));
    post(&c, &s, &alert("a1-ok", "alert.resolved"));
    wait_for("the alert's flow to end", Duration::from_secs(10), || {
        (flow_state(&c, &s, &alert_flow) == "done").then_some(())
    });

    let desk = reported(&dir, "service_desk");
    assert_eq!(
        desk["by"],
        json!({"within_sla": 1, "late": 1, "failed": 1}),
        "{:#}",
        desk["report"]["outcomes"]
    );
    let incident = reported(&dir, "incident");
    assert_eq!(
        incident["by"],
        json!({"within_sla": 1}),
        "{:#}",
        incident["report"]
    );
    let r = &incident["report"];
    let tickets = (r["cycle"].as_array().unwrap().iter())
        .find(|c| c["signal_type"] == "ticket.opened")
        .unwrap();
    assert_eq!(tickets["flows"], 3, "{tickets}");
    let sre = (r["paging_by_team"].as_array().unwrap().iter())
        .find(|p| p["policy"] == "sre")
        .unwrap_or_else(|| panic!("{:#}", r["paging_by_team"]));
    assert_eq!(
        (sre["pages"].as_u64(), sre["acknowledged"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(sre["mtta_seconds"].as_f64().is_some(), "{sre}");
    assert!(sre["mttr_seconds"].as_f64().is_some(), "{sre}");

    // Overview's figures are the same, and a restart keeps them.
    let summary = |s: &Server| get(&c, s, "/v1/state")["overview"]["total"].clone();
    let before = summary(&s);
    assert_eq!(before["outcomes"], 4, "{before:#}");
    assert_eq!(before["within_sla"], 0.5, "{before:#}");
    assert!(s.terminate().success());
    let s = serve_deployment(&dir, &TOKENS);
    let after = summary(&s);
    for figure in [
        "signals",
        "outcomes",
        "within_sla",
        "flows_done",
        "flows_compensated",
    ] {
        assert_eq!(
            after[figure], before[figure],
            "{figure}: {before:#} then {after:#}"
        );
    }
    let metrics = c
        .get(format!("{}/metrics", s.base))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap();
    let text = metrics.text().unwrap();
    for (within, n) in [("true", 2), ("false", 2)] {
        let line =
            format!("signalbox_outcomes_total{{source=\"work\",within_sla=\"{within}\"}} {n}");
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
}

fn act_on(c: &Client, s: &Server, path: &str) {
    let r = c
        .post(format!("{}{path}", s.base))
        .bearer_auth(OPERATOR)
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "POST {path}");
}
