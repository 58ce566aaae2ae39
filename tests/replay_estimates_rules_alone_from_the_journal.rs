//! `signalbox replay --model off`: rules alone re-decide a real headless
//! run's settled decisions, never acting. Over the rules-only run's own
//! journal nothing changes and the estimate is the measured value itself;
//! over the model run's journal the decisions rules would take differently
//! are counted and, where the journal gives them too little support (a
//! person's answer supports only itself; the model explores 5 % of the
//! time), the replay says inconclusive and gives no number.

mod common;

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
