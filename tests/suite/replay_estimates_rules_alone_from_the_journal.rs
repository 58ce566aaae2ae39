//! `signalbox replay --model off`: rules alone re-decide a real headless
//! run's settled decisions, never acting. Over the rules-only run's own
//! journal nothing changes and the estimate is the measured value itself;
//! over the model run's journal the decisions rules would take differently
//! are counted and, where the journal gives them too little support (a
//! person's answer supports only itself; the model explores 5 % of the
//! time), the replay says inconclusive and gives no number.
//!
//! A candidate policy file is evaluated over what each decision journaled
//! that policies read: the live policy itself changes nothing, and one
//! that forbids an option changes exactly the decisions that took it; a
//! cold model checkpoint never acts alone.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn replay(dir: &Path) -> Value {
    let args = ["replay", "--model", "off", "--json", "--data-dir"];
    common::json_of(args.map(OsStr::new).into_iter().chain([dir.as_os_str()]))
}

#[test]
fn replay_counts_what_rules_alone_change_and_says_when_it_cannot_tell() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let measured = common::headless(&run, 1, "4h");

    // The rules-only run, replayed with rules alone: the same policy.
    let same = replay(&run.join("baseline"));
    assert_eq!(same["changed"], 0, "{same}");
    assert_eq!(same["inconclusive"], false, "{same}");
    let estimate = &same["estimate"];
    assert_eq!(estimate["estimator"], "dr");
    assert_eq!(estimate["support"], 1.0);
    let value = estimate["value"].as_f64().unwrap();
    let baseline = measured["baseline_within_sla"].as_f64().unwrap();
    assert!(
        (value - baseline).abs() < 0.01,
        "{value} vs measured {baseline}"
    );
    let [low, high] = [0, 1].map(|i| estimate["ci"][i].as_f64().unwrap());
    assert!(
        low <= baseline && baseline <= high,
        "{low}..{high} vs {baseline}"
    );

    // The model run, replayed with rules alone.
    let model = replay(&run);
    let decisions = model["decisions"].as_u64().unwrap();
    let changed = model["changed"].as_u64().unwrap();
    assert!(changed > 0 && changed < decisions, "{model}");
    assert!(!model["examples"].as_array().unwrap().is_empty());
    let logged = model["logged_value"].as_f64().unwrap();
    let within = measured["within_sla"].as_f64().unwrap();
    assert!(
        (logged - within).abs() < 0.01,
        "{logged} vs measured {within}"
    );
    let e = &model["estimate"];
    assert!(e["support"].as_f64().unwrap() < 1.0, "{e}");
    assert!(e["ess"].as_f64().unwrap() < decisions as f64, "{e}");
    if model["inconclusive"] == true {
        assert!(e["value"].is_null() && e["ci"].is_null(), "{e}");
    } else {
        assert!(e["value"].is_f64(), "{e}");
    }
    // The text says the same.
    let text = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["replay", "--model", "off", "--data-dir"])
        .arg(&run)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains(&format!("changed: {changed}")), "{text}");
    assert_eq!(
        text.contains("inconclusive: the journal does not support"),
        model["inconclusive"] == true,
        "{text}"
    );
}

fn replay_policy(dir: &Path, policy: &Path) -> Value {
    let args = ["replay", "--json", "--data-dir"].map(OsStr::new);
    let rest = [dir.as_os_str(), OsStr::new("--policy"), policy.as_os_str()];
    common::json_of(args.into_iter().chain(rest))
}

#[test]
fn a_candidate_policy_is_replayed_over_what_each_decision_read() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let measured = common::headless(&run, 2, "4h");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.toml");

    // The live policy, replayed with the model as it was: nothing changes,
    // and the estimate is the measured value.
    let same = replay_policy(&run, &shipped);
    assert_eq!(same["skipped"], 0, "{same}");
    assert_eq!(same["changed"], 0, "{same}");
    let within = measured["within_sla"].as_f64().unwrap();
    let value = same["estimate"]["value"].as_f64().unwrap();
    assert!(
        (value - within).abs() < 0.01,
        "{value} vs measured {within}"
    );

    // Forbidding an option everywhere: only orders change, each away from
    // it (or acting alone once it no longer runs close), and each example
    // says why.
    let text = std::fs::read_to_string(&shipped).unwrap();
    let forbid = dir.path().join("no-expedite.toml");
    std::fs::write(
        &forbid,
        format!(
            "{text}\n[[rule]]\nid = \"never-expedite\"\ntypes = [\"order.placed\"]\n\
             when = \"true\"\nforbid = [\"expedite_fulfillment\"]\nreason = \"no expediting\"\n"
        ),
    )
    .unwrap();
    let candidate = replay_policy(&run, &forbid);
    let flips = candidate["flips"].as_object().unwrap();
    assert!(!flips.is_empty(), "{candidate}");
    assert!(
        flips
            .keys()
            .all(|f| f.starts_with("expedite_fulfillment → ")),
        "{candidate}"
    );
    let examples = candidate["examples"].as_array().unwrap();
    assert!(!examples.is_empty(), "{candidate}");
    for e in examples {
        let diff: Vec<&str> = e["diff"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            diff.iter()
                .any(|l| l.starts_with("+ policy never-expedite")),
            "{e}"
        );
        // Away from the forbidden option, or (with it gone from the
        // runner-ups) a clearer margin.
        assert!(
            diff.contains(&"- proposal: expedite_fulfillment") || diff.contains(&"- mode: review"),
            "{e}"
        );
        assert_eq!(e["signal_type"], "order.placed", "{e}");
    }
    let headline = &candidate["estimate"];
    assert_eq!(headline["estimator"], "dr");
    assert!(headline["support"].as_f64().unwrap() > 0.0, "{headline}");

    // A cold model checkpoint scoring the journaled features: it never has
    // the evidence to act alone, so whatever the model acted on alone goes
    // to a person, and nothing goes the other way.
    let cold = dir.path().join("cold.json");
    std::fs::write(&cold, r#"{"bits": 18, "updates": 0, "entries": []}"#).unwrap();
    let args = ["replay", "--json", "--model"].map(OsStr::new);
    let rest = [cold.as_os_str(), OsStr::new("--data-dir"), run.as_os_str()];
    let replayed = common::json_of(args.into_iter().chain(rest));
    assert_eq!(replayed["review_to_auto"], 0, "{replayed}");
    assert!(
        replayed["auto_to_review"].as_u64().unwrap() > 0,
        "{replayed}"
    );
    assert!(
        replayed["examples"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["candidate_mode"] != "auto"),
        "{replayed}"
    );
}
