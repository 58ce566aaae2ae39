//! People's actions on review items: checked against their role and the
//! item's state, journaled, and taught to the model (only what they mean).

use crate::common;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use signalbox::decide::policy::Role;
use signalbox::engine::{Engine, EngineError};
use signalbox::journal::read;
use signalbox::review::{Action, Actor, ReviewError};
use signalbox::sim::default_start;
use signalbox::sim::world;

#[test]
fn a_viewer_cannot_act_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, id) = common::engine_with_item(dir.path(), 20_000.0);
    let viewer = Actor::new("vic", Role::Viewer);
    let err = engine
        .act(&id, &viewer, Action::Approve, "ok", default_start())
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Review(ReviewError::Viewer { .. })),
        "{err}"
    );
    assert_eq!(engine.open_reviews().len(), 1);
    engine.close().unwrap();
    assert_eq!(read::counts(dir.path()).unwrap().review_actions, 0);
}

#[test]
fn lead_only_items_refuse_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, id) = common::engine_with_item(dir.path(), 80_000.0);
    let op = Actor::new("olga", Role::Operator);
    let err = engine
        .act(&id, &op, Action::Approve, "fine", default_start())
        .unwrap_err();
    assert!(err.to_string().contains("lead"), "{err}");
    let lead = Actor::new("lars", Role::Lead);
    engine
        .act(
            &id,
            &lead,
            Action::Approve,
            "checked the contract",
            default_start(),
        )
        .unwrap();
    engine.close().unwrap();
}

#[test]
fn an_item_already_decided_refuses_a_second_action() {
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, id) = common::engine_with_item(dir.path(), 20_000.0);
    let op = Actor::new("olga", Role::Operator);
    engine
        .act(&id, &op, Action::Approve, "ok", default_start())
        .unwrap();
    let other = Actor::new("omar", Role::Operator);
    let err = engine
        .act(
            &id,
            &other,
            Action::Override {
                option: "reject_request".into(),
            },
            "no",
            default_start(),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("already decided") && text.contains("olga"),
        "{text}"
    );
    engine.close().unwrap();
    let counts = read::counts(dir.path()).unwrap();
    assert_eq!((counts.review_actions, counts.open_reviews), (1, 0));
    assert!(counts.chain_ok);
}

#[test]
fn an_override_teaches_and_the_explanation_shows_who_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, id) = common::engine_with_item(dir.path(), 20_000.0);
    let decision = engine.reviews.get(&id).unwrap().decision.id.clone();
    let op = Actor::new("olga", Role::Operator);
    engine
        .act(
            &id,
            &op,
            Action::Override {
                option: "reject_request".into(),
            },
            "vendor is over budget",
            default_start(),
        )
        .unwrap();
    engine.close().unwrap();
    let e = read::explain(dir.path(), &decision)
        .unwrap()
        .expect("decision is in the journal");
    let text = signalbox::journal::explain::render(&e);
    assert!(
        text.contains("olga") && text.contains("vendor is over budget"),
        "{text}"
    );
    assert!(text.contains("audit chain: verifies"), "{text}");
    assert_eq!(
        e.feedback.len(),
        2,
        "override labels the proposal 0 and the choice 1"
    );
}

/// A quiet night: nobody answers the review queue, so items take their safe
/// defaults at their final deadline and some of their flows end after the
/// decision's deadline only because they waited. That wait is no evidence
/// against the option; a flow that failed, or that itself ran longer than its
/// decision allowed, is.
#[test]
fn a_flow_late_only_because_it_waited_for_review_teaches_nothing() {
    use chrono::Duration;
    use signalbox::engine::EngineEvent;
    use signalbox::flow::FlowState;
    use std::collections::HashMap;

    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let world = world::northwind(&mut rng, default_start());
    let signals = signalbox::sim::stream::generate(1, default_start(), Duration::hours(6), &world);
    assert!(signals.len() > 500, "a busy stream: {}", signals.len());

    // decision id -> (time allowed, decided at); settled at; finished.
    let mut allowed: HashMap<String, (Duration, DateTime<Utc>)> = HashMap::new();
    let mut settled: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut finished: HashMap<String, (FlowState, DateTime<Utc>)> = HashMap::new();
    let mut flow_labels: Vec<(String, f64)> = Vec::new();
    let mut collect = |engine: &mut Engine| {
        for event in engine.take_events() {
            match event {
                EngineEvent::Decision(d) => {
                    allowed.insert(d.id.clone(), (d.deadline - d.time, d.time));
                }
                EngineEvent::Settled {
                    decision_id, at, ..
                } => {
                    settled.insert(decision_id, at);
                }
                EngineEvent::FlowFinished(f) => {
                    finished.insert(f.decision_id, (f.state, f.time));
                }
                EngineEvent::Learned(fb) if fb.source == "flow" => {
                    flow_labels.push((fb.decision_id, fb.label));
                }
                _ => {}
            }
        }
    };
    let step = Duration::seconds(15);
    let mut now = default_start();
    let end = signals.last().map(|s| s.time).unwrap_or(now) + Duration::hours(4);
    let mut next = signals.into_iter().peekable();
    while now < end {
        while let Some(s) = next.next_if(|s| s.time <= now) {
            engine.ingest(s, now);
        }
        engine.tick(now);
        collect(&mut engine);
        now += step;
    }
    engine.flush().unwrap().wait().unwrap();

    let ran = |id: &str| -> Option<(FlowState, Duration, Duration, DateTime<Utc>)> {
        let (state, at) = *finished.get(id)?;
        let since = *settled.get(id)?;
        let (given, decided) = *allowed.get(id)?;
        Some((state, at - since, given, decided + given))
    };
    for (id, label) in &flow_labels {
        let (state, took, given, _) =
            ran(id).expect("a labelled flow was decided, settled and finished");
        assert_eq!(
            *label, 0.0,
            "a flow's own result only ever labels against: {id}"
        );
        assert!(
            state != FlowState::Done || took > given,
            "{id} was labelled 0 but its flow got done in {} min of the {} min its decision allowed",
            took.num_minutes(),
            given.num_minutes()
        );
    }
    // The case this test is about happened: flows released from review that
    // finished past the decision's deadline within the time they were given.
    let late_from_waiting = finished
        .keys()
        .filter(|id| {
            ran(id).is_some_and(|(state, took, given, deadline)| {
                state == FlowState::Done && took <= given && finished[*id].1 > deadline
            })
        })
        .count();
    assert!(
        late_from_waiting > 0,
        "no flow ended late only because it waited for review; labels: {}",
        flow_labels.len()
    );
}
