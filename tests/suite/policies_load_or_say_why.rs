//! A policy file that does not load names its file and rule, and the
//! policy in force stays.

use crate::common;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use signalbox::decide::Mode;
use signalbox::engine::{Engine, EngineError, Ingested};
use signalbox::sim::default_start;
use signalbox::sim::world;

#[test]
fn a_policy_that_does_not_parse_is_refused_and_the_last_good_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let before = engine.policy().version.clone();
    let bad = dir.path().join("broken.toml");
    std::fs::write(&bad, "version = \"x\"\n[[rule]\nid = ").unwrap();
    let err = engine.reload_policy(&bad).unwrap_err().to_string();
    assert!(err.contains("broken.toml"), "names the file: {err}");
    assert_eq!(engine.policy().version, before);
    // The engine still decides with the old policy: big approvals need review.
    let s = common::signal(
        "ap-1",
        "approval.requested",
        "approval/1",
        json!({"amount": 25000.0, "known_vendor": true}),
    );
    assert!(matches!(
        engine.ingest(s, default_start()),
        Ingested::Decided {
            mode: Mode::Review,
            ..
        }
    ));
    engine.close().unwrap();
}

#[test]
fn cel_that_does_not_compile_names_file_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let bad = dir.path().join("cel.toml");
    std::fs::write(
        &bad,
        "version = \"t\"\n[[rule]]\nid = \"half-written\"\nwhen = \"signal.data.amount >\"\nrequire_review = true\nreason = \"r\"\n",
    )
    .unwrap();
    let err = engine.reload_policy(&bad).unwrap_err().to_string();
    assert!(
        err.contains("cel.toml") && err.contains("half-written"),
        "{err}"
    );
    // Opening an engine on that file is refused too, with the same detail.
    let other = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut config = signalbox::sim::engine_config(other.path(), 1);
    config.policy_file = Some(bad.clone());
    let refused = Engine::open(
        config,
        world::northwind(&mut rng, default_start()),
        default_start(),
    );
    assert!(matches!(refused, Err(EngineError::Policy(_))));
    engine.close().unwrap();
}
