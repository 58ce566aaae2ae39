//! `signalbox validate` names the file and line of each kind of problem;
//! a reload (HTTP, lead only, or SIGHUP) refuses a broken deployment with
//! its problems while the running one keeps deciding, and applies a good
//! one whole, journaled, with the next decision recording its version.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{client, event, serve_deployment, wait_for};
use serde_json::{Value, json};

const OPERATOR: &str = "op-secret-1";
const LEAD: &str = "lead-secret-1";
const TOKENS: [&str; 4] = [
    "--token",
    "op-secret-1:operator:oskar",
    "--token",
    "lead-secret-1:lead:lena",
];

fn validate(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .arg("validate")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the file"))
        + 1
}

#[test]
fn validate_names_the_file_and_line_of_each_kind_of_problem() {
    let tmp = tempfile::tempdir().unwrap();
    // (file, what is replaced, by what, the text on the line to blame, what the message says)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "organization.toml",
            "[[agent]]\nid = \"ben\"",
            "[[agent]\nid = \"ben\"",
            "[[agent]\n",
            "unclosed",
        ),
        (
            "organization.toml",
            "shift = \"11:00-19:00\"",
            "shift = \"11-19\"",
            "shift = \"11-19\"",
            "shift",
        ),
        (
            "organization.toml",
            "id = \"ben\"\nteam = \"support\"",
            "id = \"ben\"\nteam = \"suport\"",
            "team = \"suport\"",
            "suport",
        ),
        (
            "organization.toml",
            "timezone = \"Europe/Berlin\"",
            "timezone = \"Mars/Olympus\"",
            "Mars/Olympus",
            "time zone",
        ),
        (
            "policies.toml",
            "when = \"signal.severity == 'critical'\"",
            "when = \"signal.severity == \"",
            "when = \"signal.severity == \"",
            "CEL",
        ),
        (
            "steps.toml",
            "team = \"support\"\nminutes = 60",
            "team = \"nobody\"\nminutes = 60",
            "team = \"nobody\"",
            "nobody",
        ),
        (
            "steps.toml",
            "automation = \"runbook\"",
            "automation = \"ghost\"",
            "automation = \"ghost\"",
            "ghost",
        ),
        (
            "playbook.toml",
            "steps = [\"service_desk.acknowledge\", \"service_desk.resolve\"]",
            "steps = [\"service_desk.acknowledge\", \"service_desk.nope\"]",
            "service_desk.nope",
            "service_desk.nope",
        ),
        (
            "playbook.toml",
            "[signal.\"ticket.opened\"]\n",
            "[signal.\"ticket.opened\"]\nfold = \"nonsense\"\n",
            "[signal.\"ticket.opened\"]",
            "nonsense",
        ),
        (
            "playbook.toml",
            "id = \"signal.data.host\"",
            "id = \"signal.data.(\"",
            "[signal.\"certificate.expiring\"]",
            "CEL",
        ),
        (
            "policies.toml",
            "when = \"context.tier == 'gold' || context.tier == 'platinum'\"",
            "when = \"contxt.tier == 'gold'\"",
            "when = \"contxt.tier == 'gold'\"",
            "unknown variable `contxt`",
        ),
        (
            "policies.toml",
            "when = \"context.tier == 'gold' || context.tier == 'platinum'\"",
            "when = \"context.tier > 3\"",
            "when = \"context.tier > 3\"",
            "cannot be ordered",
        ),
        (
            "policies.toml",
            "when = \"!has(signal.data.severity) || signal.data.severity != 'high'\"",
            "when = \"signal.data.sevrity != 'high'\"",
            "when = \"signal.data.sevrity != 'high'\"",
            "`signal.data` has no field `sevrity`",
        ),
        (
            "policies.toml",
            "types = [\"ticket.opened\"]",
            "types = [\"ticket.opend\"]",
            "id = \"routine-tickets-to-support\"",
            "ticket.opend",
        ),
        (
            "playbook.toml",
            "id = \"signal.data.ticket\"",
            "id = \"signal.data.tiket\"",
            "[signal.\"ticket.opened\"]",
            "`signal.data` has no field `tiket`",
        ),
        (
            "playbook.toml",
            "fields = { ticket = \"string\"",
            "fields = { ticket = \"strng\"",
            "[signal.\"ticket.opened\"]",
            "strng",
        ),
        (
            "signalbox.toml",
            "retry_base = \"30s\"",
            "retry_base = \"soon\"",
            "retry_base = \"soon\"",
            "retry_base",
        ),
        (
            "signalbox.toml",
            "retry_base = \"30s\"",
            "retry_base = 30",
            "retry_base = 30",
            "`retry_base`",
        ),
        (
            "signalbox.toml",
            "# tokens = [\"change-me-ops:operator:ops-bot\", \"change-me-lead:lead:alice\"]",
            "tokens = [\"change-me-ops:operator:ops-bot\", \"short:lead:alice\"]",
            "tokens = [",
            "tokens: token 2",
        ),
        (
            "signalbox.toml",
            "claim_expiry = \"15m\"",
            "claim_expiry = \"10s\"",
            "claim_expiry = \"10s\"",
            "under a minute",
        ),
    ];
    for (n, (file, from, to, blamed, says)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("case{n}"));
        common::init(&dir);
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "case {n}: {from:?} not in {file}");
        let broken = text.replacen(from, to, 1);
        std::fs::write(&path, &broken).unwrap();
        let (ok, stderr) = validate(&dir);
        assert!(!ok, "case {n}: validate passed a broken {file}");
        let blamed = blamed.trim_end_matches('\n');
        // The blamed text where the change is, else where it first appears.
        let line = match (broken.find(to), to.find(blamed)) {
            (Some(at), Some(within)) => broken[..at + within].matches('\n').count() + 1,
            _ => line_of(&broken, blamed),
        };
        let expected = format!("{file}:{line}: ");
        let hit = stderr.lines().find(|l| l.contains(&expected));
        let hit = hit.unwrap_or_else(|| panic!("case {n}: no {expected:?} in:\n{stderr}"));
        assert!(
            hit.contains(says),
            "case {n}: {hit:?} does not say {says:?}"
        );
    }
    // A rule that would overflow a stack is refused at its line, however
    // it is written: a long chain, deep nesting.
    for (n, when) in [
        vec!["1"; 2000].join(" + ") + " > 0",
        vec!["1"; 1000].join("+") + " > 0",
        "(".repeat(100_000) + "true" + &")".repeat(100_000),
        "signal.data.items.exists(a, signal.data.items.exists(b, signal.data.items.exists(c, \
         signal.data.items.exists(d, a == d))))"
            .to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("cel{n}"));
        common::init(&dir);
        let path = dir.join("policies.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let from = "when = \"signal.severity == 'critical'\"";
        std::fs::write(&path, text.replacen(from, &format!("when = \"{when}\""), 1)).unwrap();
        let (ok, stderr) = validate(&dir);
        assert!(!ok, "a rule of {} bytes passed", when.len());
        let line = line_of(&text, from);
        assert!(
            stderr.contains(&format!(
                "policies.toml:{line}: rule `critical-alert-pages`: CEL"
            )),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Every stage's problems in one run: a broken steps file does not hide
    // a policy's.
    let dir = tmp.path().join("stages");
    common::init(&dir);
    let steps = std::fs::read_to_string(dir.join("steps.toml")).unwrap();
    std::fs::write(
        dir.join("steps.toml"),
        steps.replacen("team = \"support\"", "team = \"nobody\"", 1),
    )
    .unwrap();
    let policies = std::fs::read_to_string(dir.join("policies.toml")).unwrap();
    std::fs::write(
        dir.join("policies.toml"),
        policies.replace("context.tier", "context.teir"),
    )
    .unwrap();
    let (ok, stderr) = validate(&dir);
    assert!(!ok);
    assert!(
        stderr.contains("nobody") && stderr.contains("teir"),
        "{stderr}"
    );
    // Nor does a playbook's own problem.
    let playbook = std::fs::read_to_string(dir.join("playbook.toml")).unwrap();
    std::fs::write(
        dir.join("playbook.toml"),
        playbook.replacen("\"string?\"", "\"text\"", 1),
    )
    .unwrap();
    let (ok, stderr) = validate(&dir);
    assert!(!ok);
    assert!(
        stderr.contains("\"text\"") && stderr.contains("teir"),
        "{stderr}"
    );

    // Several problems at once are all named.
    let dir = tmp.path().join("several");
    common::init(&dir);
    let org = std::fs::read_to_string(dir.join("organization.toml")).unwrap();
    let org = org
        .replace("shift = \"11:00-19:00\"", "shift = \"late\"")
        .replace("owner = \"support\"", "owner = \"nobody\"")
        .replace("lead = \"emil\"", "lead = \"zoe\"");
    std::fs::write(dir.join("organization.toml"), &org).unwrap();
    let (ok, stderr) = validate(&dir);
    assert!(!ok);
    assert!(
        stderr.contains("late") && stderr.contains("nobody"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "organization.toml:{}: lead `zoe` is not an [[agent]] or [[person]]",
            line_of(&org, "lead = \"zoe\"")
        )),
        "{stderr}"
    );
}

fn post(c: &reqwest::blocking::Client, base: &str, e: &Value) {
    common::post_as(c, base, OPERATOR, e);
}

fn policy_version_of(c: &reqwest::blocking::Client, base: &str, signal: &str) -> String {
    let d = common::settled_with(c, base, signal, Some(OPERATOR));
    let id = d["decision"].as_str().unwrap();
    let v: Value = c
        .get(format!("{base}/v1/decisions/{id}"))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["decision"]["policy_version"]
        .as_str()
        .unwrap()
        .to_string()
}

fn reload(c: &reqwest::blocking::Client, base: &str, token: &str) -> (u16, Value) {
    let r = c
        .post(format!("{base}/v1/config/reload"))
        .bearer_auth(token)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn config_entries(dir: &Path) -> Vec<Value> {
    let db = rusqlite::Connection::open(dir.join("data").join("signalbox.db")).unwrap();
    let mut q = db
        .prepare("SELECT body FROM audit WHERE kind = 'config' ORDER BY seq")
        .unwrap();
    q.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect()
}

#[test]
fn a_reload_is_all_or_nothing_for_leads_only_and_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    common::init(&dir);
    let c = client();
    let s = serve_deployment(&dir, &TOKENS);
    let ticket = |id: &str| {
        event(
            id,
            "ticket.opened",
            "customer/acme",
            json!({"customer": "acme", "ticket": id}),
        )
    };
    post(&c, &s.base, &ticket("t1"));
    // The starter's tickets declare a `ticket` field: one without it is
    // refused by name, not quarantined.
    let r = c
        .post(format!("{}/v1/signals", s.base))
        .bearer_auth(OPERATOR)
        .header("content-type", "application/cloudevents+json")
        .body(event("t0", "ticket.opened", "customer/acme", json!({})).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "data.ticket");
    let v1 = policy_version_of(&c, &s.base, "t1");
    assert!(v1.starts_with("1+"), "{v1}");

    // A broken policy: refused with the file and line; the old one decides.
    let path = dir.join("policies.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let broken = good.replace(
        "when = \"signal.severity == 'critical'\"",
        "when = \"signal.severity ==\"",
    );
    std::fs::write(&path, &broken).unwrap();
    let (status, body) = reload(&c, &s.base, LEAD);
    assert_eq!(status, 422, "{body}");
    let line = line_of(&broken, "when = \"signal.severity ==\"");
    let problems = body["problems"].to_string();
    assert!(
        problems.contains(&format!("policies.toml:{line}:")),
        "{body}"
    );
    post(&c, &s.base, &ticket("t2"));
    assert_eq!(policy_version_of(&c, &s.base, "t2"), v1);
    // A rule long enough to overflow the engine's stack: refused at its
    // line, and the server lives on.
    let chain = vec!["1"; 10_000].join(" + ");
    std::fs::write(
        &path,
        good.replace("signal.severity == 'critical'", &format!("{chain} > 0")),
    )
    .unwrap();
    let (status, body) = reload(&c, &s.base, LEAD);
    assert_eq!(status, 422, "{body}");
    assert!(
        body["problems"].to_string().contains("bytes long"),
        "{body}"
    );
    // Who reloads is the token's: a body naming someone is refused.
    let r = c
        .post(format!("{}/v1/config/reload", s.base))
        .bearer_auth(LEAD)
        .header("content-type", "application/json")
        .body(json!({"actor": "root"}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "actor");

    // Only a lead may reload.
    std::fs::write(&path, good.replace("version = \"1\"", "version = \"2\"")).unwrap();
    let (status, body) = reload(&c, &s.base, OPERATOR);
    assert_eq!(status, 403, "{body}");

    // A good one: applied, journaled, and the next decision records it.
    let (status, body) = reload(&c, &s.base, LEAD);
    assert_eq!(status, 200, "{body}");
    let v2 = body["versions"]["policy"].as_str().unwrap().to_string();
    assert!(v2.starts_with("2+"), "{body}");
    post(&c, &s.base, &ticket("t3"));
    assert_eq!(policy_version_of(&c, &s.base, "t3"), v2);
    let entries = wait_for("the reload in the journal", Duration::from_secs(5), || {
        let e = config_entries(&dir);
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(entries.len(), 1, "only the applied reload is journaled");
    let body = &entries[0]["body"];
    assert_eq!(body["actor"], "lena");
    assert!(
        body["summary"].as_str().unwrap().contains("policy 1+"),
        "{body}"
    );

    // SIGHUP reloads too (a new organization: a third team).
    let org = std::fs::read_to_string(dir.join("organization.toml")).unwrap();
    std::fs::write(
        dir.join("organization.toml"),
        format!(
            "{org}\n[[team]]\nid = \"network\"\nprocess = \"incident\"\nskills = [\"network\"]\n"
        ),
    )
    .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let entries = wait_for(
        "the SIGHUP reload in the journal",
        Duration::from_secs(10),
        || {
            let e = config_entries(&dir);
            (e.len() == 2).then_some(e)
        },
    );
    assert_eq!(entries[1]["body"]["actor"], "SIGHUP");
    assert!(
        entries[1]["body"]["summary"]
            .as_str()
            .unwrap()
            .contains("teams 2→3"),
        "{}",
        entries[1]
    );
}
