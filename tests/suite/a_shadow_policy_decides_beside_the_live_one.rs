//! Shadow mode: a candidate policy decides every signal beside the live
//! one and never acts. A headless run with a shadow makes exactly the
//! decisions of the run without one; each decision records the shadow's
//! choice; the report says how often it agreed with the live policy and
//! with the people. The live policy as its own shadow agrees but for the
//! live policy's exploring; a candidate that forbids an option agrees less.
//! A model checkpoint (`model export`) decides in the shadow the same way.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;

use serde_json::Value;

/// A 4 h headless run of seed 1 into `dir`, with a shadow candidate given
/// as a flag (`--shadow`, `--shadow-model`, `--shadow-playbook`) and its file.
fn run(dir: &Path, shadow: Option<(&str, &Path)>) -> Value {
    let mut args: Vec<&OsStr> = ["run", "--headless", "--seed", "1", "--duration", "4h"]
        .into_iter()
        .chain(["--report", "json", "--no-baseline", "--data-dir"])
        .map(OsStr::new)
        .collect();
    args.push(dir.as_os_str());
    if let Some((flag, file)) = shadow {
        args.extend([OsStr::new(flag), file.as_os_str()]);
    }
    common::json_of(args)
}

/// The report without what differs from one run to another anyway, and
/// without what the shadow adds (its agreement, wherever a summary has it).
fn decisions_of(mut report: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for key in [
                    "elapsed_seconds",
                    "data_dir",
                    "shadow",
                    "shadow_agreement",
                    "shadow_people_agreement",
                ] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut report);
    report
}

#[test]
fn a_shadow_changes_nothing_and_says_how_often_it_agreed() {
    let dir = tempfile::tempdir().unwrap();
    let live = include_str!("../../policies/default.toml");
    let same = dir.path().join("same.toml");
    std::fs::write(&same, live).unwrap();
    let forbidding = dir.path().join("forbidding.toml");
    std::fs::write(
        &forbidding,
        format!(
            "{}\n[[rule]]\nid = \"no-expedite\"\ntypes = [\"order.placed\"]\nwhen = \"true\"\nforbid = [\"expedite_fulfillment\"]\nreason = \"a candidate that never expedites\"\n",
            live.replace("version = \"2026.11-2\"", "version = \"candidate-1\"")
        ),
    )
    .unwrap();

    let alone = run(&dir.path().join("alone"), None);
    assert!(alone.get("shadow").is_none());
    let with_same = run(&dir.path().join("same"), Some(("--shadow", &same)));
    let with_other = run(&dir.path().join("other"), Some(("--shadow", &forbidding)));
    assert_eq!(decisions_of(with_same.clone()), decisions_of(alone.clone()));
    assert_eq!(decisions_of(with_other.clone()), decisions_of(alone));

    let s = &with_same["shadow"];
    let decisions = s["decisions"].as_u64().unwrap();
    assert!(decisions > 100, "{s}");
    let agreement = s["agreement"].as_f64().unwrap();
    assert!(agreement > 0.9 && agreement < 1.0, "{s}");
    assert!(s["with_people"].as_u64().unwrap() > 0, "{s}");
    // The engine's own count of agreement with people (Overview, /metrics)
    // is the journal's.
    let people = with_same["model"]["total"]["shadow_people_agreement"]
        .as_f64()
        .unwrap();
    assert!((people - s["people_agreement"].as_f64().unwrap()).abs() < 1e-9);
    let o = &with_other["shadow"];
    assert_eq!(o["decisions"], decisions, "{o}");
    assert!(o["agreement"].as_f64().unwrap() < agreement, "{o} vs {s}");

    // Each decision records the shadow's choice and its policy.
    let db = rusqlite::Connection::open(dir.path().join("other").join("signalbox.db")).unwrap();
    let (never, version): (i64, String) = db
        .query_row(
            "SELECT count(*), max(json_extract(body, '$.shadow.policy_version')) FROM audit
             WHERE kind = 'decision' AND json_extract(body, '$.signal_type') = 'order.placed'
             AND json_extract(body, '$.shadow.proposal') = 'expedite_fulfillment'",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            },
        )
        .unwrap();
    assert_eq!(never, 0, "the candidate never proposes what it forbids");
    assert!(version.is_empty() || version.starts_with("candidate-1"));
    let recorded: i64 = db
        .query_row(
            "SELECT count(*) FROM audit WHERE kind = 'decision'
             AND json_extract(body, '$.shadow.policy_version') LIKE 'candidate-1%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recorded as u64, decisions);
}

#[test]
fn a_server_with_a_shadow_exports_its_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let shadow = dir.path().join("shadow.toml");
    std::fs::write(&shadow, include_str!("../../policies/default.toml")).unwrap();
    let data = dir.path().join("data");
    let s = common::serve(&data, &["--shadow", shadow.to_str().unwrap()]);
    let c = common::client();
    for i in 0..5 {
        let e = common::event(
            &format!("t{i}"),
            "ticket.opened",
            "customer/c0001",
            serde_json::json!({"customer": "c0001"}),
        );
        assert_eq!(common::post_event(&c, &s.base, &e).status(), 202);
        common::decided(&c, &s.base, &format!("t{i}"));
    }
    let metrics = common::metrics_text(&c, &s.base);
    assert!(
        metrics.contains("signalbox_shadow_decisions_total 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("signalbox_shadow_agreement 1"),
        "{metrics}"
    );
}

#[test]
fn a_model_checkpoint_decides_in_the_shadow_too() {
    let dir = tempfile::tempdir().unwrap();
    // A trained model: the one a first run ended with, exported.
    let first = dir.path().join("first");
    let trained = run(&first, None);
    let trained_file = dir.path().join("trained.json");
    common::succeeds(
        ["model", "export", "--data-dir"]
            .map(OsStr::new)
            .into_iter()
            .chain([
                first.as_os_str(),
                "--out".as_ref(),
                trained_file.as_os_str(),
            ]),
    );
    // And the same turned the other way.
    let mut corrupted: Value =
        serde_json::from_str(&std::fs::read_to_string(&trained_file).unwrap()).unwrap();
    for entry in corrupted["entries"].as_array_mut().unwrap() {
        let w = entry[1].as_f64().unwrap();
        entry[1] = serde_json::json!(-w);
    }
    let corrupted_file = dir.path().join("corrupted.json");
    std::fs::write(&corrupted_file, corrupted.to_string()).unwrap();

    let with_model = |name: &str, file: &Path| {
        let data = dir.path().join(name);
        (run(&data, Some(("--shadow-model", file))), data)
    };
    let (good, good_dir) = with_model("good", &trained_file);
    let (bad, _) = with_model("bad", &corrupted_file);
    // The live decisions are those of a run without a shadow.
    assert_eq!(decisions_of(good.clone()), decisions_of(trained.clone()));
    assert_eq!(decisions_of(bad.clone()), decisions_of(trained));
    let (g, b) = (&good["shadow"], &bad["shadow"]);
    assert!(g["decisions"].as_u64().unwrap() > 100, "{g}");
    assert!(
        g["agreement"].as_f64().unwrap() > b["agreement"].as_f64().unwrap() + 0.2,
        "a trained model agrees more than its opposite: {g} vs {b}"
    );
    // Each decision names the checkpoint it was scored with.
    let exported: Value =
        serde_json::from_str(&std::fs::read_to_string(&trained_file).unwrap()).unwrap();
    let version = format!("logreg-{}b@{}", exported["bits"], exported["updates"]);
    let db = rusqlite::Connection::open(good_dir.join("signalbox.db")).unwrap();
    let named: i64 = db
        .query_row(
            "SELECT count(*) FROM audit WHERE kind = 'decision'
             AND json_extract(body, '$.shadow.model_version') = ?1",
            [&version],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(named as u64, g["decisions"].as_u64().unwrap());

    // A file that is not a checkpoint is refused, by name.
    let not = dir.path().join("not.json");
    std::fs::write(&not, "{\"bits\": 99}").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args([
            "run",
            "--headless",
            "--duration",
            "1h",
            "--no-baseline",
            "--shadow-model",
        ])
        .arg(&not)
        .arg("--data-dir")
        .arg(dir.path().join("refused"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not.json: not a model checkpoint"), "{err}");
}

#[test]
fn a_candidate_playbook_decides_in_the_shadow_too() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped playbook, without expedite among an order's options.
    let shipped = include_str!("../../playbooks/default.toml");
    let offered =
        r#"options = ["standard_fulfillment", "expedite_fulfillment", "credit_check_first"]"#;
    assert!(shipped.contains(offered));
    let candidate = dir.path().join("no-expedite-playbook.toml");
    std::fs::write(
        &candidate,
        shipped.replace(
            offered,
            r#"options = ["standard_fulfillment", "credit_check_first"]"#,
        ),
    )
    .unwrap();
    let with_playbook = |name: &str, file: &Path| {
        let data = dir.path().join(name);
        (run(&data, Some(("--shadow-playbook", file))), data)
    };
    let alone = run(&dir.path().join("alone"), None);
    let (shadowed, data) = with_playbook("shadowed", &candidate);
    assert_eq!(decisions_of(shadowed.clone()), decisions_of(alone));
    let s = &shadowed["shadow"];
    assert!(s["decisions"].as_u64().unwrap() > 100, "{s}");
    let agreement = s["agreement"].as_f64().unwrap();
    assert!(agreement > 0.5 && agreement < 1.0, "{s}");

    let db = rusqlite::Connection::open(data.join("signalbox.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    let orders = "SELECT count(*) FROM audit WHERE kind = 'decision'
                  AND json_extract(body, '$.signal_type') = 'order.placed'";
    assert_eq!(
        count(&format!(
            "{orders} AND json_extract(body, '$.shadow.proposal') = 'expedite_fulfillment'"
        )),
        0,
        "the candidate playbook does not offer expedite"
    );
    assert!(
        count(&format!(
            "{orders} AND json_extract(body, '$.proposal') = 'expedite_fulfillment'"
        )) > 0,
        "the live one does, and takes it"
    );

    // A playbook naming an option it does not define is refused, by name.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        shipped.replace(offered, r#"options = ["teleport"]"#),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args([
            "run",
            "--headless",
            "--duration",
            "1h",
            "--no-baseline",
            "--shadow-playbook",
        ])
        .arg(&broken)
        .arg("--data-dir")
        .arg(dir.path().join("refused"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.toml") && err.contains("teleport"),
        "{err}"
    );
}
