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
