//! The breaker on the model: the Northwind simulator runs through the
//! engine, and four hours in a corrupted checkpoint (every weight turned
//! the other way) replaces the model. The breaker opens on its readings
//! within the hour, says so as a notice and in the engine's status, and
//! decisions fall back to rules alone while the model goes on learning
//! beside them; once its readings recover it closes. Every change is
//! journaled, and a restart keeps the breaker's state. A sound model run
//! the same way never trips it. The headless run's drill
//! (`--corrupt-model-at`) reports the same.

use crate::common;

use chrono::Duration;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use signalbox::engine::Engine;
use signalbox::review::Actor;
use signalbox::sim::{Simulator, default_start, engine_config, world};

/// What a simulated run saw of the breaker.
struct Seen {
    /// Notices about the model, as (time, text).
    notices: Vec<(chrono::DateTime<chrono::Utc>, String)>,
    opened_in_status: bool,
}

fn drive(dir: &std::path::Path, hours: i64, corrupt_at: Option<i64>) -> Seen {
    let start = default_start();
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(1), start);
    let mut sim = Simulator::new(1, start, Duration::hours(hours), &world);
    let mut config = engine_config(dir, 1);
    config.notices = true;
    let mut engine = Engine::open(config, world, start).unwrap();
    let mut seen = Seen {
        notices: Vec::new(),
        opened_in_status: false,
    };
    let drill = Actor::new("drill", signalbox::decide::policy::Role::System);
    let mut now = start;
    let end = start + Duration::hours(hours);
    while now < end {
        now += Duration::seconds(15);
        if corrupt_at.is_some_and(|h| now == start + Duration::hours(h)) {
            let mut bad = engine.model_checkpoint();
            for entry in &mut bad.entries {
                entry.1 = -entry.1;
            }
            engine
                .load_model(&bad, &drill, "a corrupted checkpoint", now)
                .unwrap();
        }
        sim.step(&mut engine, now);
        engine.flush().unwrap().wait().unwrap();
        for n in engine.take_notices() {
            if n.reference == "model" {
                assert_eq!(n.event, "breaker");
                seen.notices.push((n.time, n.text));
            }
        }
        let status = signalbox::engine::overview::status(&engine, now);
        seen.opened_in_status |= status.model_breaker.is_some_and(|b| b.open);
    }
    engine.close().unwrap();
    seen
}

#[test]
fn a_corrupted_model_is_held_until_it_recovers_and_a_sound_one_never_is() {
    let dir = tempfile::tempdir().unwrap();
    let corrupted = dir.path().join("corrupted");
    let seen = drive(&corrupted, 12, Some(4));
    let start = default_start();
    let (opened, text) = seen
        .notices
        .first()
        .expect("a notice when the breaker opens");
    assert!(
        text.starts_with("model breaker open: the model is off"),
        "{text}"
    );
    assert!(
        *opened > start + Duration::hours(4) && *opened < start + Duration::hours(5),
        "opened at {opened}"
    );
    assert!(seen.opened_in_status);
    let (closed, text) = seen.notices.get(1).expect("and when it closes");
    assert!(
        text.starts_with("model breaker closed: the model recovered"),
        "{text}"
    );

    // While it was open, the rules decided: nothing acted on the model.
    let db = rusqlite::Connection::open(corrupted.join("signalbox.db")).unwrap();
    let in_window = |what: &str| -> i64 {
        db.query_row(
            &format!(
                "SELECT count(*) FROM audit WHERE kind = 'decision' AND {what}
                 AND time >= ?1 AND time < ?2"
            ),
            [opened.to_rfc3339(), closed.to_rfc3339()],
            |r| r.get(0),
        )
        .unwrap()
    };
    let decided = in_window("json_extract(body, '$.mode') <> 'record'");
    assert!(decided > 50, "{decided} decisions while open");
    assert_eq!(in_window("json_extract(body, '$.mode') = 'auto'"), 0);
    assert!(in_window("json_extract(body, '$.mode') = 'rules'") > 0);
    assert_eq!(
        in_window(
            "json_extract(body, '$.mode') <> 'record'
             AND json_extract(body, '$.why') NOT LIKE '%model breaker open, %'"
        ),
        0,
        "each decision says why the rules decided"
    );
    // Journaled: the replacement and both changes of the breaker.
    let kinds: Vec<String> = db
        .prepare("SELECT kind || ' ' || ref_id FROM audit WHERE kind IN ('model', 'model_breaker') ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(kinds[0].starts_with("model logreg-"), "{kinds:?}");
    assert_eq!(kinds[1..], ["model_breaker open", "model_breaker closed"]);
    drop(db);

    // A restart keeps the breaker's state (closed, one trip).
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(1), start);
    let engine = Engine::open(engine_config(&corrupted, 1), world, start).unwrap();
    let state = engine.model_breaker().cloned().expect("resumed");
    assert!(!state.open && state.trips == 1, "{state:?}");
    engine.close().unwrap();

    let sound = drive(&dir.path().join("sound"), 12, None);
    assert!(sound.notices.is_empty(), "{:?}", sound.notices);
    assert!(!sound.opened_in_status);
}

#[test]
fn the_headless_drill_reports_what_the_breaker_did() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("run");
    let report = common::json_of(
        [
            "run",
            "--headless",
            "--seed",
            "1",
            "--duration",
            "8h",
            "--report",
            "json",
            "--no-baseline",
            "--corrupt-model-at",
            "3h",
            "--data-dir",
        ]
        .into_iter()
        .map(std::ffi::OsStr::new)
        .chain([data.as_os_str()]),
    );
    let b = &report["model_breaker"];
    assert_eq!(b["trips"], 1, "{b}");
    assert_eq!(b["changes"][0]["state"], "open", "{b}");
    let error = b["changes"][0]["readings"]["calibration_error"]
        .as_f64()
        .unwrap();
    assert!(error > 0.25, "{b}");
}
