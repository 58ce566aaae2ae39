//! The binary end to end: a headless run's report, `explain`, and a journal
//! whose process is killed mid-run with SIGKILL, then restarted.

use crate::common;

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_signalbox"))
}

#[test]
fn headless_report_has_the_headline_figures_and_explain_reads_a_decision() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("run");
    let report = common::headless(&data, 2, "2h");
    for key in [
        "within_sla",
        "baseline_within_sla",
        "within_sla_last_2h",
        "baseline_within_sla_last_2h",
        "agreement_first_hour",
        "agreement_last_hour",
    ] {
        let v = report[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert_eq!(report["model"]["hourly"].as_array().map(Vec::len), Some(2));

    let ids = signalbox::journal::read::recent_decisions(&data, 50).unwrap();
    let (id, _, _) = ids
        .iter()
        .find(|(_, _, mode)| mode != "record")
        .expect("some decision chose");
    let args = ["explain", id, "--data-dir"].map(OsStr::new);
    let out = common::succeeds(args.into_iter().chain([data.as_os_str()]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("decision {id}")) && text.contains("audit chain: verifies"),
        "{text}"
    );

    let out = bin()
        .args(["explain", "D9999999"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no decision `D9999999`"));
}

#[test]
fn a_bad_policy_file_stops_the_run_with_file_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("mine.toml");
    std::fs::write(&policy, "version = \"v\"\n[[rule]]\nid = \"typo\"\nwhen = \"signal.data.amount >>> 1\"\nreason = \"r\"\n").unwrap();
    let out = bin()
        .args(["run", "--headless", "--duration", "10m", "--no-baseline"])
        .arg("--policy")
        .arg(&policy)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mine.toml") && err.contains("typo"), "{err}");

    let out = bin()
        .args(["run", "--headless", "--speed", "fast"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`fast` is not `max`"));
}

#[test]
fn kill_9_mid_run_then_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("killed");
    let mut child = bin()
        .args([
            "run",
            "--headless",
            "--seed",
            "1",
            "--duration",
            "8h",
            "--speed",
            "3000",
            "--no-baseline",
        ])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the journal holds a good number of signals, then SIGKILL.
    let db = data.join(signalbox::journal::FILE_NAME);
    let began = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let n = signalbox::journal::read::counts(&data)
            .map(|c| c.signals)
            .unwrap_or(0);
        if n > 300 || began.elapsed() > Duration::from_secs(60) {
            break;
        }
        assert!(
            db.exists() || began.elapsed() < Duration::from_secs(30),
            "journal never appeared"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let before = signalbox::journal::read::counts(&data).unwrap();
    assert!(before.signals > 0);
    assert!(before.chain_ok);

    let args = ["check", "--json", "--data-dir"].map(OsStr::new);
    let after = common::json_of(args.into_iter().chain([data.as_os_str()]));
    // Every acknowledged (journaled) signal is still there and decided.
    assert_eq!(after["signals"].as_i64(), Some(before.signals));
    assert_eq!(after["undecided_signals"].as_i64(), Some(0));
    assert_eq!(after["decided_signals"].as_i64(), Some(before.signals));
    // Nothing is decided twice.
    assert_eq!(
        after["decisions"].as_i64().unwrap() - before.decisions,
        before.undecided_signals,
        "only the undecided signals got decisions on restart"
    );
    // What was in flight resumed.
    assert_eq!(after["resumed_flows"].as_i64(), Some(before.active_flows));
    assert_eq!(after["resumed_reviews"].as_i64(), Some(before.open_reviews));
    assert_eq!(after["chain_ok"].as_bool(), Some(true));
}

/// Without a baseline run the report shows no rules-only figures (it once
/// showed the model's own under that name), and an apprentice run lists
/// its switches as people read them.
#[test]
fn an_apprentice_run_without_a_baseline_lists_its_switches_and_no_rules_figures() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "--headless",
        "--seed",
        "3",
        "--duration",
        "6h",
        "--model-mode",
        "apprentice",
        "--no-baseline",
        "--data-dir",
    ]
    .map(OsStr::new);
    let out = common::succeeds(args.into_iter().chain([dir.path().as_os_str()]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("baseline: not run"), "{text}");
    assert!(
        text.contains("whole run: model ") && text.contains("rules-only    -\n"),
        "{text}"
    );
    let switches = text
        .lines()
        .skip_while(|l| !l.starts_with("apprentice: "))
        .skip(1)
        .collect::<Vec<_>>();
    assert!(!switches.is_empty(), "{text}");
    assert!(
        switches
            .iter()
            .all(|l| l.contains(" takes ") || l.contains(" take ")),
        "{text}"
    );
    assert!(
        switches.iter().any(|l| l.contains("the model takes")),
        "{text}"
    );
}
