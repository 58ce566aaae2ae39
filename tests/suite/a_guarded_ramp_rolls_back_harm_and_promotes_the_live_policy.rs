//! A guarded ramp over the Northwind simulator. A harmful candidate (it
//! never expedites an order, where the simulator's truth expedites gold and
//! platinum customers' orders) is rolled back by its first step's gates on
//! their own: the live policy decides again, the model is put back as it
//! was when the ramp started, the change is journaled with its readings and
//! announced. The live policy ramped as its own candidate is promoted
//! through every step. A ramp in progress survives a restart at its step;
//! only a lead may call it. The headless run reports the same.

use crate::common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use signalbox::decide::policy::Role;
use signalbox::decide::ramp::{LeadCall, RampPlan, Status};
use signalbox::engine::Engine;
use signalbox::review::Actor;
use signalbox::sim::{Simulator, default_start, engine_config, world};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ramps")
        .join(name)
}

fn open(dir: &Path) -> (Engine, Simulator) {
    let start = default_start();
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(1), start);
    let sim = Simulator::new(1, start, Duration::hours(24), &world);
    let mut config = engine_config(dir, 1);
    config.notices = true;
    (Engine::open(config, world, start).unwrap(), sim)
}

/// Runs the simulator through the engine from `from` until `until` says
/// stop (or `to`); returns the time it stopped and the ramp notices seen.
fn drive(
    engine: &mut Engine,
    sim: &mut Simulator,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut until: impl FnMut(&Engine) -> bool,
) -> (DateTime<Utc>, Vec<String>) {
    let mut now = from;
    let mut notices = Vec::new();
    while now < to && !until(engine) {
        now += Duration::seconds(15);
        sim.step(engine, now);
        engine.flush().unwrap().wait().unwrap();
        for n in engine.take_notices() {
            if n.event == "ramp" {
                notices.push(n.text);
            }
        }
    }
    (now, notices)
}

fn status(engine: &Engine) -> Option<Status> {
    engine.ramp().map(|r| r.status)
}

#[test]
fn a_harmful_candidate_is_rolled_back_by_its_gates() {
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, mut sim) = open(dir.path());
    let start = default_start();
    let at = start + Duration::hours(2);
    let (now, _) = drive(&mut engine, &mut sim, start, at, |_| false);
    let live = engine.policy().version.clone();
    let plan = RampPlan::load(&example("harmful.toml"), engine.playbook()).unwrap();
    let lead = Actor::new("lee", Role::Lead);
    let id = engine.start_ramp(&plan, &lead, now).unwrap();
    let model_at_start = engine.model_version();
    let again = engine.start_ramp(&plan, &lead, now).unwrap_err();
    assert!(again.to_string().contains("is still running"), "{again}");

    let (then, notices) = drive(
        &mut engine,
        &mut sim,
        now,
        start + Duration::hours(14),
        |e| status(e) != Some(Status::Running),
    );
    let state = engine.ramp().unwrap().clone();
    assert_eq!(state.status, Status::RolledBack, "{}", state.reason);
    assert_eq!(state.step, 0, "rolled back at its first step");
    assert!(
        state.reason.starts_with("a gate failed (")
            && state.reason.contains("lower_bound: off-policy difference"),
        "{}",
        state.reason
    );
    let reading = &state.history[0].reading;
    let (d, [low, high]) = (reading.difference.unwrap(), reading.ci.unwrap());
    assert!(high < 0.0 && d < -0.05, "{d} [{low}, {high}]");
    assert_eq!(engine.policy().version, live, "the live policy decides");
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].starts_with(&format!("ramp {id} rolled back")),
        "{notices:?}"
    );
    // Decisions from now on are the live policy's alone.
    let (_, _) = drive(
        &mut engine,
        &mut sim,
        then,
        then + Duration::minutes(30),
        |_| false,
    );
    engine.close().unwrap();

    let db = rusqlite::Connection::open(dir.path().join("signalbox.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    let ramped = "SELECT count(*) FROM audit WHERE kind = 'decision'
                  AND json_extract(body, '$.ramp.arm') = 'candidate'";
    assert!(count(ramped) > 20, "the candidate took its share");
    assert_eq!(
        count(&format!(
            "{ramped} AND json_extract(body, '$.policy_version') NOT LIKE '2026.11-2-never-expedite+%'"
        )),
        0,
        "each decision of the candidate's arm names its policy"
    );
    // The propensity of a ramped decision is the mixture of both arms'.
    let off = count(
        "SELECT count(*) FROM audit WHERE kind = 'decision' AND json_extract(body, '$.ramp') IS NOT NULL
         AND abs(json_extract(body, '$.propensity') - (json_extract(body, '$.ramp.coverage') * json_extract(body, '$.ramp.candidate')
             + (1 - json_extract(body, '$.ramp.coverage')) * json_extract(body, '$.ramp.live'))) > 1e-9",
    );
    assert_eq!(off, 0);
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM audit WHERE kind = 'decision' AND time > '{}'
             AND json_extract(body, '$.ramp') IS NOT NULL",
            then.to_rfc3339()
        )),
        0,
        "no decision is ramped after the rollback"
    );
    let changes: Vec<String> = db
        .prepare("SELECT kind || ' ' || ref_id FROM audit WHERE kind IN ('ramp', 'ramp_model', 'model') ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert_eq!(changes[0], format!("ramp_model {id}"));
    assert_eq!(changes[1], "ramp started");
    assert!(changes[2].starts_with("model logreg-"), "{changes:?}");
    assert_eq!(changes[3], "ramp rolled_back");
    let gates: String = db
        .query_row(
            "SELECT json_extract(body, '$.body.reading.gates') FROM audit WHERE kind = 'ramp' AND ref_id = 'rolled_back'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(gates.contains("off-policy difference"), "{gates}");
    // The model put back is the one the ramp started with.
    let restored: String = db
        .query_row(
            "SELECT json_extract(body, '$.body.after') || ' ' || json_extract(body, '$.body.why') FROM audit WHERE kind = 'model'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(restored, format!("{model_at_start} ramp {id} rolled back"));
}

#[test]
fn the_live_policy_is_promoted_and_a_ramp_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start = default_start();
    let (mut engine, mut sim) = open(dir.path());
    let (now, _) = drive(
        &mut engine,
        &mut sim,
        start,
        start + Duration::hours(2),
        |_| false,
    );
    // The live policy as its own candidate, in two shorter steps.
    let file = dir.path().join("live-ramp.toml");
    let candidate = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.toml");
    std::fs::write(
        &file,
        format!(
            "candidate = {:?}\nclasses = [\"fulfillment\"]\nsteps = [20, 50]\nhold = 200\nsettle = \"5h\"\n",
            candidate.display().to_string()
        ),
    )
    .unwrap();
    let plan = RampPlan::load(&file, engine.playbook()).unwrap();
    let id = engine
        .start_ramp(&plan, &Actor::new("lee", Role::Lead), now)
        .unwrap();
    let at_step = |step: usize| move |e: &Engine| e.ramp().is_some_and(|r| r.step >= step);
    let (now, notices) = drive(
        &mut engine,
        &mut sim,
        now,
        start + Duration::hours(12),
        at_step(1),
    );
    assert_eq!(status(&engine), Some(Status::Running));
    assert!(notices[0].contains("now takes 50 %"), "{notices:?}");
    // Only a lead calls a ramp.
    let operator = Actor::new("opal", Role::Operator);
    let refused = engine
        .call_ramp(LeadCall::RollBack, &operator, "", now)
        .unwrap_err();
    assert!(refused.to_string().contains("takes a lead"), "{refused}");
    engine.close().unwrap();

    // A restart: the ramp goes on at its step.
    let (mut engine, _) = open(dir.path());
    let state = engine.ramp().unwrap().clone();
    assert_eq!(
        (state.id.as_str(), state.step, state.status),
        (id.as_str(), 1, Status::Running)
    );
    let (now, notices) = drive(
        &mut engine,
        &mut sim,
        now,
        start + Duration::hours(16),
        |e| status(e) != Some(Status::Running),
    );
    let state = engine.ramp().unwrap().clone();
    assert_eq!(state.status, Status::Promoted, "{}", state.reason);
    assert_eq!(state.step, 1);
    assert!(notices.last().unwrap().contains("promoted"), "{notices:?}");
    for step in &state.history {
        assert_eq!(
            step.reading.difference,
            Some(0.0),
            "the policy against itself"
        );
    }
    assert_eq!(engine.policy().version, state.candidate_version);
    let call = engine.call_ramp(LeadCall::Advance, &Actor::new("lee", Role::Lead), "", now);
    assert!(call.unwrap_err().to_string().contains("is over"));
    engine.close().unwrap();
}

#[test]
fn the_headless_run_reports_the_ramp() {
    let dir = tempfile::tempdir().unwrap();
    let (ramp_file, data) = (example("harmful.toml"), dir.path().join("run"));
    let report = common::json_of(
        [
            "run",
            "--headless",
            "--no-baseline",
            "--duration",
            "12h",
            "--report",
            "json",
        ]
        .into_iter()
        .map(std::ffi::OsStr::new)
        .chain(["--ramp".as_ref(), ramp_file.as_os_str()])
        .chain(["--data-dir".as_ref(), data.as_os_str()]),
    );
    let ramp = &report["ramp"];
    assert_eq!(ramp["outcome"], "rolled_back", "{ramp:#}");
    let steps = ramp["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["coverage"], 0.1);
    assert_eq!(steps[0]["verdict"], "fail");
    assert_eq!(steps[0]["gates"].as_array().unwrap().len(), 3);

    // A ramp file that names a class the playbook lacks is refused, by name.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "candidate = \"x.toml\"\nsteps = [10]\nhold = 5\nclasses = [\"billing\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["run", "--headless", "--no-baseline", "--duration", "1h"])
        .arg("--ramp")
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("classes: no decision class `billing`"),
        "{err}"
    );
}

#[test]
fn a_lead_calls_the_ramp_over_http_with_the_tokens_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ramp = example("harmful.toml");
    let s = common::serve(
        &dir.path().join("data"),
        &[
            "--ramp",
            ramp.to_str().unwrap(),
            "--token",
            "operator-secret:operator:opal",
            "--token",
            "lead-secret:lead:lars",
        ],
    );
    let c = common::client();
    let get = c
        .get(format!("{}/v1/ramp", s.base))
        .bearer_auth("operator-secret")
        .send()
        .unwrap();
    assert_eq!(get.status(), 200);
    let state: serde_json::Value = get.json().unwrap();
    assert_eq!(state["ramp"]["status"], "running", "{state:#}");
    assert_eq!(
        state["ramp"]["candidate_version"].as_str().unwrap()[..26],
        *"2026.11-2-never-expedite+4"
    );
    let coverage = || -> String {
        let text = c
            .get(format!("{}/metrics", s.base))
            .bearer_auth("operator-secret")
            .send()
            .unwrap()
            .text()
            .unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("signalbox_ramp_coverage "));
        line.unwrap_or("absent").to_string()
    };
    assert_eq!(coverage(), "signalbox_ramp_coverage 0.1");

    let call = |token: &str, what: &str, body: serde_json::Value| {
        c.post(format!("{}/v1/ramp/{what}", s.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap()
    };
    let r = call("operator-secret", "rollback", serde_json::json!({}));
    assert_eq!(r.status(), 403);
    // The identity is the token's: a body naming someone else is refused.
    let r = call(
        "lead-secret",
        "rollback",
        serde_json::json!({"actor": "someone"}),
    );
    assert_eq!(r.status(), 400);
    let r = call("lead-secret", "sideways", serde_json::json!({}));
    assert_eq!(r.status(), 404);
    let r = call(
        "lead-secret",
        "rollback",
        serde_json::json!({"note": "not today"}),
    );
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["ramp"]["status"], "rolled_back");
    assert_eq!(
        body["ramp"]["reason"],
        "lars rolled the ramp back: not today"
    );
    let r = call("lead-secret", "advance", serde_json::json!({}));
    assert_eq!(r.status(), 409);
    assert_eq!(coverage(), "signalbox_ramp_coverage 0.0");
    assert_eq!(s.terminate().code(), Some(0));

    // A restart with the same flags does not ramp that candidate again.
    let s = common::serve(
        &dir.path().join("data"),
        &["--ramp", ramp.to_str().unwrap()],
    );
    let state: serde_json::Value = c
        .get(format!("{}/v1/ramp", s.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(state["ramp"]["status"], "rolled_back", "{state:#}");
}
