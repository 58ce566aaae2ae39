//! Hand-made values for unit tests: a signal and a decision without a
//! simulator or an engine behind them.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use crate::decide::Decision;
use crate::signal::Signal;

/// Tuesday 31 March 2026, 10:00 UTC, plus `minutes`.
pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 31, 10, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::minutes(minutes)
}

/// When the parsers' test inputs arrive: Monday 23 November 2026, 08:00 UTC.
pub fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Signal `s-{i}` of `kind` about `subject`, sent at minute `i`.
pub fn signal(i: usize, kind: &str, subject: &str, data: serde_json::Value) -> Signal {
    let text = json!({
        "specversion": "1.0", "id": format!("s-{i}"), "source": "northwind/shop",
        "type": kind, "subject": subject, "time": at(i as i64).to_rfc3339(), "data": data,
    });
    Signal::from_value(text, at(0)).expect("a test signal is valid")
}

/// Decision `D{i}` on `signal`, proposing the first of `options` (all
/// allowed), in `mode`, for a person of `role` to review within 30 minutes.
pub fn decision(
    i: usize,
    signal: &Signal,
    options: &[(&str, f64)],
    mode: &str,
    role: &str,
) -> Decision {
    let options: Vec<_> = options
        .iter()
        .map(|(o, s)| json!({"option": o, "score": s, "allowed": true}))
        .collect();
    let proposal = options[0]["option"].clone();
    serde_json::from_value(json!({
        "id": format!("D{i:07}"), "signal_id": signal.id, "signal_source": signal.source,
        "signal_type": signal.kind, "subject": signal.subject, "class": "fulfillment",
        "time": signal.time, "snapshot": {}, "features": ["tier=gold"], "options": options,
        "policy_hits": [], "policy_version": "2026.11-2", "model_version": "m-1",
        "proposal": proposal, "confidence": 0.62, "margin": 0.2, "threshold": 0.8,
        "contributions": [{"feature": "tier=gold", "weight": 0.4}], "explored": false,
        "propensity": 1.0, "mode": mode, "review_role": role, "priority": "high",
        "deadline": signal.time + Duration::hours(4),
        "review_deadline": signal.time + Duration::minutes(30),
        "safe_default": "hold_for_review", "why": "confidence 0.62 below 0.80",
    }))
    .expect("a test decision is valid")
}

/// The starter deployment with `[review] page = "sre"`, opened on a
/// fresh journal at `start`.
pub fn starter(dir: &std::path::Path, start: DateTime<Utc>) -> crate::engine::Engine {
    starter_with(dir, start, |_| {})
}

/// The starter deployment with `[review] page = "sre"` and what `more`
/// sets, collecting notices.
pub fn starter_with(
    dir: &std::path::Path,
    start: DateTime<Utc>,
    more: impl FnOnce(&mut crate::config::ReviewConfig),
) -> crate::engine::Engine {
    let ops = dir.join("ops");
    init_model_on(&ops);
    open_starter(dir, start, more)
}

/// `signalbox init` into `ops`, with the model `on` from the first signal
/// instead of the starter's apprentice mode: these tests are about what the
/// model's reviews and answers do, which the rules alone would not ask.
pub fn init_model_on(ops: &std::path::Path) {
    crate::deploy::init(ops).unwrap();
    let path = ops.join(crate::deploy::POLICY_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let anchor = "mode = \"apprentice\"";
    assert!(text.contains(anchor), "the starter is in apprentice mode");
    std::fs::write(&path, text.replace(anchor, "mode = \"on\"")).unwrap();
}

/// The starter deployment whose playbook has `line` added to the
/// `alert.firing` type, opened at `start`.
pub fn starter_firing(
    dir: &std::path::Path,
    start: DateTime<Utc>,
    line: &str,
) -> crate::engine::Engine {
    let anchor = "group = { by = [\"subject\"] }\n";
    starter_playbook(dir, start, |text| {
        assert!(
            text.contains(anchor),
            "the starter groups alerts by subject"
        );
        text.replace(anchor, &format!("{anchor}{line}\n"))
    })
}

/// The starter deployment with its playbook as `edit` makes it, opened at
/// `start`.
pub fn starter_playbook(
    dir: &std::path::Path,
    start: DateTime<Utc>,
    edit: impl FnOnce(String) -> String,
) -> crate::engine::Engine {
    let ops = dir.join("ops");
    init_model_on(&ops);
    let path = ops.join("playbook.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    open_starter(dir, start, |_| {})
}

/// Opens (or reopens, resuming its journal) the starter deployment written
/// under `dir`, with `[review] page = "sre"` and what `more` sets.
pub fn open_starter(
    dir: &std::path::Path,
    start: DateTime<Utc>,
    more: impl FnOnce(&mut crate::config::ReviewConfig),
) -> crate::engine::Engine {
    open_starter_server(dir, start, |server| {
        let mut review = crate::config::ReviewConfig {
            page: Some("sre".into()),
            ..Default::default()
        };
        more(&mut review);
        server.review = Some(review);
    })
}

/// Opens the starter deployment written under `dir` with its
/// signalbox.toml as `server` changes it.
pub fn open_starter_server(
    dir: &std::path::Path,
    start: DateTime<Utc>,
    server: impl FnOnce(&mut crate::config::Config),
) -> crate::engine::Engine {
    let ops = dir.join("ops");
    let mut deployment = crate::deploy::Deployment::load(&ops).unwrap();
    server(&mut deployment.server);
    let runs = crate::setup::Runs::Deployment(&deployment);
    let mut setup =
        crate::setup::engine(runs, &dir.join("data"), Default::default(), start).unwrap();
    setup.config.notices = true;
    crate::engine::Engine::open(setup.config, setup.world, start).unwrap()
}

/// An alert of `kind` (`alert.firing`, `alert.resolved`) with a
/// fingerprint, on `service/SERVICE`, as Alertmanager's webhook makes it.
pub fn alert(id: &str, kind: &str, fingerprint: &str, service: &str, at: DateTime<Utc>) -> Signal {
    let alert = json!({
        "specversion": "1.0", "id": id, "source": "am", "type": kind,
        "subject": format!("service/{service}"), "severity": "warning",
        "data": {"service": service, "fingerprint": fingerprint},
    });
    Signal::from_value(alert, at).unwrap_or_default()
}

/// A critical `alert.firing` with a fingerprint on `service/SERVICE`, as
/// Alertmanager's webhook makes it.
pub fn critical(id: &str, fingerprint: &str, service: &str, at: DateTime<Utc>) -> Signal {
    let mut a = alert(id, "alert.firing", fingerprint, service, at);
    a.severity = Some(crate::signal::Severity::Critical);
    a
}

/// A warning alert on `service/SERVICE`, as the starter takes it.
pub fn warning(id: &str, service: &str, at: DateTime<Utc>) -> Signal {
    let alert = json!({
        "specversion": "1.0", "id": id, "source": "test", "type": "alert.firing",
        "subject": format!("service/{service}"), "severity": "warning",
        "data": {"service": service},
    });
    Signal::from_value(alert, at).unwrap_or_default()
}
