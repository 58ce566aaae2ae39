//! What many decisions read alike (the services' health) is journaled once
//! per change, in the journal's `views` table, and each decision names it
//! by version: many decisions under one health make one view, a change of
//! health another, and going back to an earlier health names the view
//! already kept, after a restart too. Explain and replay read the views
//! back; a view that is missing or altered is named, by explain, replay
//! and `check`, never passed over.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;

use serde_json::{Value, json};

use signalbox::decide::policy::Role;
use signalbox::journal::{JournalError, read};
use signalbox::review::{Action, Actor};
use signalbox::sim::default_start;

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("signalbox.db")).unwrap()
}

/// The views the journal keeps: (kind, version, text), those with a
/// service down last.
fn views(dir: &Path) -> Vec<(String, String, String)> {
    let conn = db(dir);
    let mut stmt = conn
        .prepare("SELECT kind, version, body FROM views ORDER BY body LIKE '%\"down\"%', version")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// How many decisions name each services' view, by version.
fn named(dir: &Path) -> Vec<(String, i64)> {
    let conn = db(dir);
    let mut stmt = conn
        .prepare(
            "SELECT json_extract(body, '$.policy_input.services_view') AS v, COUNT(*)
             FROM audit WHERE kind = 'decision' AND v IS NOT NULL GROUP BY v ORDER BY MIN(seq)",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Tickets from customers, each decided (by the model or a person).
fn tickets(engine: &mut signalbox::engine::Engine, range: std::ops::Range<usize>) -> Vec<String> {
    let mut ids = Vec::new();
    for i in range {
        let subject = format!("customer/c{:04}", i % 50 + 1);
        let s = common::signal(&format!("t{i}"), "ticket.opened", &subject, json!({}));
        if let signalbox::engine::Ingested::Decided { decision_id, .. } =
            engine.ingest(s, default_start())
        {
            ids.push(decision_id);
        }
    }
    ids
}

/// A lead approves every open item, so that each decision is settled
/// (replay reads settled decisions).
fn approve_all(engine: &mut signalbox::engine::Engine) {
    let lead = Actor::new("lena", Role::Lead);
    for item in engine.open_reviews() {
        engine
            .act(&item.id, &lead, Action::Approve, "fine", default_start())
            .unwrap();
    }
}

fn health(engine: &mut signalbox::engine::Engine, id: &str, health: &str) {
    let s = common::signal(
        id,
        "health.changed",
        "service/payments",
        json!({"health": health}),
    );
    engine.ingest(s, default_start());
}

#[test]
fn decisions_under_one_health_share_one_journaled_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let up = tickets(&mut engine, 0..40);
    engine.flush().unwrap().wait().unwrap();
    let first = views(dir.path());
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].0, "services");
    assert!(first[0].2.contains(r#""payments":"up""#), "{first:?}");

    health(&mut engine, "h1", "down");
    let down = tickets(&mut engine, 40..80);
    health(&mut engine, "h2", "up");
    let up_again = tickets(&mut engine, 80..100);
    approve_all(&mut engine);
    engine.close().unwrap();
    // After a restart, decisions under the same health name the view kept.
    let mut engine = common::engine(dir.path());
    let after_restart = tickets(&mut engine, 100..110);
    approve_all(&mut engine);
    engine.close().unwrap();

    let kept = views(dir.path());
    assert_eq!(kept.len(), 2, "one view per health: {kept:?}");
    assert!(kept[1].2.contains(r#""payments":"down""#), "{kept:?}");
    let (up_version, down_version) = (&kept[0].1, &kept[1].1);
    let counts = named(dir.path());
    assert_eq!(
        counts,
        vec![
            (
                up_version.clone(),
                (up.len() + up_again.len() + after_restart.len()) as i64
            ),
            (down_version.clone(), down.len() as i64)
        ],
        "every decision names its view: {kept:?}"
    );
    // No decision holds a view itself.
    let inline: i64 = db(dir.path())
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE kind = 'decision'
             AND json_type(body, '$.policy_input.services') IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(inline, 0);

    // Read back whole: explain holds the view the decision was taken under.
    let e = read::explain(dir.path(), &down[0]).unwrap().unwrap();
    let input = e.decision.policy_input.as_ref().expect("decided by policy");
    let services = input.services.held().expect("resolved").value();
    assert_eq!(services["payments"], "down");
    let text = signalbox::journal::explain::to_json(&e);
    assert_eq!(
        text["decision"]["policy_input"]["services"]["payments"],
        "down"
    );
    assert_eq!(
        text["decision"]["policy_input"]["services_view"],
        *down_version
    );
    let counts = read::counts(dir.path()).unwrap();
    assert_eq!((counts.views, counts.view_problems.len()), (2, 0));
    assert!(counts.chain_ok);

    // Replay reads every decision's views: the live policies, re-deciding
    // over what was journaled, change nothing.
    let args = ["replay", "--json", "--data-dir"].map(OsStr::new);
    let replay: Value = common::json_of(args.into_iter().chain([dir.path().as_os_str()]));
    assert!(replay["decisions"].as_u64().unwrap() > 0, "{replay}");
    assert_eq!(replay["changed"], 0, "{replay}");
}

#[test]
fn a_missing_or_altered_view_is_named_never_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let ids = tickets(&mut engine, 0..20);
    approve_all(&mut engine);
    engine.close().unwrap();
    let (_, version, text) = views(dir.path()).remove(0);

    // Altered: its text no longer hashes to its version.
    let altered = text.replace(r#""payments":"up""#, r#""payments":"down""#);
    db(dir.path())
        .execute("UPDATE views SET body = ?1", [&altered])
        .unwrap();
    match read::explain(dir.path(), &ids[0]) {
        Err(JournalError::View {
            decision,
            version: named,
            fault,
            ..
        }) => {
            assert_eq!(
                (decision.as_str(), named.as_str()),
                (ids[0].as_str(), version.as_str())
            );
            assert!(fault.contains("altered"), "{fault}");
        }
        other => panic!("expected a view error, got {other:?}"),
    }

    // Missing: explain, replay and check each name it.
    db(dir.path()).execute("DELETE FROM views", []).unwrap();
    let error = read::explain(dir.path(), &ids[0]).unwrap_err().to_string();
    assert!(
        error.contains(&ids[0]) && error.contains(&version) && error.contains("does not hold"),
        "{error}"
    );
    let problems = read::counts(dir.path()).unwrap().view_problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].version, version);
    assert_eq!(problems[0].first_decision, ids[0]);
    assert_eq!(problems[0].decisions, ids.len() as u64);

    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let replay = run(&["replay"]);
    let said = String::from_utf8_lossy(&replay.stderr);
    assert!(
        !replay.status.success() && said.contains(&version),
        "{said}"
    );
    let check = run(&["check"]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        said.contains(&format!("view services {version} is missing")),
        "{said}"
    );
}
