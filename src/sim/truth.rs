//! The hidden ground truth: which option actually works best in each
//! situation. The engine never sees this; the simulator uses it to produce
//! outcomes and to answer review items, so learning is measured honestly.

use crate::context::{Supplier, Tier};
use crate::signal::Signal;

/// Chance an outcome is within SLA when the best option was taken, and when
/// another one was.
pub const P_RIGHT: f64 = 0.92;
pub const P_WRONG: f64 = 0.22;

/// Alerts the runbooks fix on their own.
pub const REMEDIABLE: &[&str] = &["DiskFull", "PodCrashLooping", "HighMemory", "QueueBacklog"];
/// Alerts that are known noise.
pub const NOISE: &[&str] = &["ProbeFlapping", "CertExpiresIn30d", "ClockSkewMinor"];

/// The best option for a top-level signal, given what the world knows about
/// its customer. `None` for types with nothing to choose.
pub fn best(signal: &Signal, tier: Option<Tier>, open_escalation: bool) -> Option<&'static str> {
    let premium = matches!(tier, Some(Tier::Gold | Tier::Platinum));
    match signal.kind.as_str() {
        "order.placed" => {
            let value = signal.data_f64("value").unwrap_or(0.0);
            Some(if premium || open_escalation {
                "expedite_fulfillment"
            } else if value >= 16384.0 && tier == Some(Tier::Bronze) {
                "credit_check_first"
            } else {
                "standard_fulfillment"
            })
        }
        "ticket.opened" => {
            let text = signal.data_str("text").unwrap_or_default().to_lowercase();
            let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
            Some(if open_escalation {
                "escalate_account_manager"
            } else if signal.data.get("duplicate_of").is_some() {
                "suppress_duplicate"
            } else if has(&["cancel our contract", "unacceptable", "lawyer"]) {
                if premium {
                    "escalate_account_manager"
                } else {
                    "route_specialist"
                }
            } else if has(&["invoice", "refund", "charged twice", "customs"]) {
                "route_specialist"
            } else {
                "route_tier1"
            })
        }
        "supplier.delayed" => {
            let hours = signal.data_f64("delay_hours").unwrap_or(0.0);
            Some(if hours >= 24.0 {
                "cascade_replan"
            } else if hours >= 8.0 {
                "escalate_procurement"
            } else {
                "hold_and_monitor"
            })
        }
        "alert.firing" => {
            let name = signal.data_str("alertname").unwrap_or_default();
            let critical = signal.severity.is_some_and(|s| s.as_str() == "critical");
            let service = signal.data_str("service").unwrap_or_default();
            Some(if REMEDIABLE.contains(&name) {
                "auto_remediate"
            } else if NOISE.contains(&name) {
                "suppress_noise"
            } else if critical && matches!(service, "payments" | "carrier") {
                "open_incident"
            } else {
                "page_oncall"
            })
        }
        "approval.requested" => {
            let amount = signal.data_f64("amount").unwrap_or(0.0);
            let over_budget =
                signal.data.get("over_budget").and_then(|v| v.as_bool()) == Some(true);
            let known = signal.data.get("known_vendor").and_then(|v| v.as_bool()) == Some(true);
            Some(if over_budget {
                "reject_request"
            } else if amount < 2048.0 && known {
                "auto_approve"
            } else {
                "finance_review"
            })
        }
        _ if is_context_only(&signal.kind) => None,
        _ => Some("acknowledge"),
    }
}

pub fn is_context_only(kind: &str) -> bool {
    matches!(
        kind,
        "health.changed"
            | "outcome.recorded"
            | "order.shipped"
            | "alert.resolved"
            | "escalation.opened"
            | "escalation.resolved"
    )
}

/// Inside a supplier-delay cascade: re-sourcing wins when the delay is long
/// and the alternate is dependable; otherwise re-planning on the same
/// supplier is faster.
pub fn best_for_order(delay_hours: f64, alternate: Option<&Supplier>) -> &'static str {
    match alternate {
        Some(alt) if delay_hours >= 32.0 && alt.reliability >= 0.9 => "source_alternate",
        _ => "replan_order",
    }
}
