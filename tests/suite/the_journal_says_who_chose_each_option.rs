//! For every settled decision the journal tells the option executed, the
//! probability the logging policy gave it and what chose it: the model
//! (exploring or not), a policy, rules alone, a person, or the safe
//! default. Checked over a real headless run (the model's journal and its
//! rules-only baseline's), each kind of choice against what it must be.

use crate::common;

use signalbox::journal::read::{ChosenBy, logged};

#[test]
fn every_executed_option_has_its_probability_and_what_chose_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("run");
    common::headless(&data, 1, "4h");

    let model = logged(&data, None).unwrap();
    assert!(
        model.len() > 500,
        "a four-hour run settles hundreds: {}",
        model.len()
    );
    let of = |by: ChosenBy| model.iter().filter(|l| l.by == by).count();
    for by in [ChosenBy::Model, ChosenBy::Person, ChosenBy::SafeDefault] {
        assert!(of(by) > 0, "some options chosen by {by:?}");
    }
    for l in &model {
        assert!(!l.option.is_empty(), "{l:?}");
        assert!(l.propensity > 0.0 && l.propensity <= 1.0, "{l:?}");
        assert_eq!(l.deterministic, l.propensity >= 1.0, "{l:?}");
        match l.by {
            // A person's answer, a forced option, rules and the safe default
            // support only what they took.
            ChosenBy::Person | ChosenBy::Policy | ChosenBy::Rules | ChosenBy::SafeDefault => {
                assert!(l.deterministic && !l.explored, "{l:?}")
            }
            // Exploring, the model took another option with a small chance;
            // otherwise its best with most of it.
            ChosenBy::Model if l.explored => assert!(l.propensity < 0.5, "{l:?}"),
            ChosenBy::Model => assert!(l.propensity > 0.5, "{l:?}"),
        }
    }
    assert!(
        model.iter().any(|l| l.explored),
        "a model run with exploration explores somewhere"
    );
    // `explain` says the same of one explored choice and one person's.
    let say = |id: &str| {
        let e = signalbox::journal::read::explain(&data, id)
            .unwrap()
            .unwrap();
        signalbox::journal::explain::render(&e)
    };
    let explored = model.iter().find(|l| l.explored).unwrap();
    let text = say(&explored.decision_id);
    let expected = format!(
        "executed `{}`, chosen by model (probability {:.3})",
        explored.option, explored.propensity
    );
    assert!(text.contains(&expected), "{expected} in:\n{text}");
    let person = model.iter().find(|l| l.by == ChosenBy::Person).unwrap();
    let text = say(&person.decision_id);
    let expected = format!(
        "executed `{}`, chosen by person (deterministic)",
        person.option
    );
    assert!(text.contains(&expected), "{expected} in:\n{text}");
    // `since` keeps the later part only.
    let middle = model[model.len() / 2].time;
    let later = logged(&data, Some(middle)).unwrap();
    assert!(later.len() < model.len() && later.iter().all(|l| l.time >= middle));

    // The rules-only baseline never asks the model: nothing it did gives
    // support to an option it did not take.
    let baseline = logged(&data.join("baseline"), None).unwrap();
    assert!(!baseline.is_empty());
    assert!(
        baseline
            .iter()
            .all(|l| l.deterministic && l.by != ChosenBy::Model),
        "{:?}",
        baseline
            .iter()
            .find(|l| !l.deterministic || l.by == ChosenBy::Model)
    );
}
