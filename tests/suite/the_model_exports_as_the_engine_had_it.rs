//! `signalbox model export` prints the model as the journal has it (the
//! last checkpoint and the feedback after it, as a restart rebuilds it):
//! after a headless run it is the model the run ended with, at an earlier
//! time an earlier one, and `replay --model` takes what it writes.

use crate::common;

use std::ffi::OsStr;

#[test]
fn the_exported_model_is_the_one_the_run_ended_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("run");
    let report = common::headless(&data, 1, "3h");
    let ended_with = report["model"]["model_version"]
        .as_str()
        .unwrap()
        .to_string();

    let file = dir.path().join("model.json");
    let out = common::succeeds(
        ["model", "export", "--data-dir"]
            .map(OsStr::new)
            .into_iter()
            .chain([data.as_os_str(), "--out".as_ref(), file.as_os_str()]),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.starts_with(&format!("model {ended_with} (")),
        "{said} / {ended_with}"
    );
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        format!("logreg-{}b@{}", exported["bits"], exported["updates"]),
        ended_with
    );

    // An hour in: fewer updates.
    let early = common::json_of(
        [
            "model",
            "export",
            "--before",
            "2026-03-31T09:00:00Z",
            "--data-dir",
        ]
        .map(OsStr::new)
        .into_iter()
        .chain([data.as_os_str()]),
    );
    assert!(early["updates"].as_u64().unwrap() < exported["updates"].as_u64().unwrap());
    assert!(early["updates"].as_u64().unwrap() > 0);

    // Replay takes it.
    let replay = common::json_of(
        ["replay", "--json", "--model"]
            .map(OsStr::new)
            .into_iter()
            .chain([file.as_os_str(), "--data-dir".as_ref(), data.as_os_str()]),
    );
    assert!(replay["decisions"].as_u64().unwrap() > 100, "{replay:#}");

    // A journal that is not there is named.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["model", "export", "--data-dir"])
        .arg(dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}
