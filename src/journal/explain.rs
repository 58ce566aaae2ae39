//! One decision as an operator reads it after the fact: what came in, what
//! the engine saw, which rules fired, how the options scored, what it chose,
//! who acted and why, what came of it, and whether the audit chain holds.

use std::fmt::Write;

use serde_json::{Value, json};

use super::read::Explanation;

fn line(out: &mut String, text: impl AsRef<str>) {
    out.push_str(text.as_ref());
    out.push('\n');
}

/// The explanation as text.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    for section in [
        header,
        signal,
        snapshot,
        policy,
        scores,
        actions,
        flow,
        pages,
        incident,
        branches_and_feedback,
        chain,
    ] {
        section(&mut out, e);
    }
    out
}

/// The decision: what, when, how and why.
fn header(out: &mut String, e: &Explanation) {
    let d = &e.decision;
    line(
        out,
        format!("decision {}  ({} · {})", d.id, d.signal_type, d.subject),
    );
    if let Some(parent) = &d.parent {
        line(out, format!("  branch of decision {parent}"));
    }
    line(
        out,
        format!(
            "  at {}  class {}  mode {}",
            d.time.to_rfc3339(),
            d.class,
            d.mode.as_str()
        ),
    );
    line(out, format!("  why: {}", d.why));
    line(out, "");
}

/// The signal as journaled.
fn signal(out: &mut String, e: &Explanation) {
    let d = &e.decision;
    line(out, "signal");
    match &e.signal {
        Some(s) => {
            line(
                out,
                format!("  id {}  source {}  type {}", s.id, s.source, s.kind),
            );
            line(
                out,
                format!("  subject {}  time {}", s.subject, s.time.to_rfc3339()),
            );
            if let Some(sev) = s.severity {
                line(out, format!("  severity {}", sev.as_str()));
            }
            if let Some(ct) = &s.datacontenttype {
                line(out, format!("  datacontenttype {ct}"));
            }
            for (k, v) in &s.extensions {
                line(out, format!("  extension {k} = {v}"));
            }
            match &s.data {
                serde_json::Value::Object(map) => {
                    for (k, v) in map {
                        line(out, format!("  data.{k} = {v}"));
                    }
                }
                serde_json::Value::Null => {}
                other => line(out, format!("  data = {other}")),
            }
            if let Some(b) = &s.data_base64 {
                line(out, format!("  data_base64 ({} characters)", b.len()));
            }
        }
        None => line(out, format!("  {} (not in the journal)", d.signal_id)),
    }
    line(out, "");
}

/// What the decision read of the context.
fn snapshot(out: &mut String, e: &Explanation) {
    let d = &e.decision;
    line(
        out,
        format!("context snapshot ({} entities)", d.snapshot.len()),
    );
    for (key, value) in &d.snapshot {
        line(out, format!("  {key}: {value}"));
    }
    line(out, "");
}

/// The rules that fired, and those that failed.
fn policy(out: &mut String, e: &Explanation) {
    let d = &e.decision;
    line(out, format!("policy {}", d.policy_version));
    if d.policy_hits.is_empty() {
        line(out, "  no rule fired");
    }
    for hit in &d.policy_hits {
        line(
            out,
            format!("  {}", serde_json::to_string(hit).unwrap_or_default()),
        );
    }
    for err in &d.policy_errors {
        line(out, format!("  rule error: {err}"));
    }
    line(out, "");
}

/// The model's scores, the proposal and what pushed it.
fn scores(out: &mut String, e: &Explanation) {
    let d = &e.decision;
    line(out, format!("scores (model {})", d.model_version));
    for o in &d.options {
        let mark = if o.option == d.proposal { "→" } else { " " };
        let forbidden = if o.allowed {
            String::new()
        } else {
            format!("  forbidden by {}", o.forbidden_by.join(", "))
        };
        line(
            out,
            format!("  {mark} {:<28} {:.3}{forbidden}", o.option, o.score),
        );
    }
    line(
        out,
        format!(
            "  proposal {}  confidence {:.3}  margin {:.3}  threshold {:.2}{}",
            d.proposal,
            d.confidence,
            d.margin,
            d.threshold,
            if d.explored {
                format!("  explored (propensity {:.3})", d.propensity)
            } else {
                String::new()
            }
        ),
    );
    if let Some(r) = &d.ramp {
        let arm = match r.arm {
            crate::decide::ramp::Arm::Candidate => "candidate",
            crate::decide::ramp::Arm::Live => "live policy",
        };
        let batch = if r.batch == 0 {
            "between batches, read by none".to_string()
        } else {
            format!("read in batch {}", r.batch)
        };
        line(
            out,
            format!(
                "  {} step {}: taken by the {arm} at {:.0} % (chance of this action: candidate {:.3}, live {:.3}; logged {:.3}); {batch}",
                r.ramp,
                r.step + 1,
                r.coverage * 100.0,
                r.candidate,
                r.live,
                r.logged()
            ),
        );
    }
    if let Some(s) = &d.shadow {
        let model = if s.model_version.is_empty() {
            String::new()
        } else {
            format!(" with model {}", s.model_version)
        };
        line(
            out,
            format!(
                "  shadow: `{}` ({}) under {}{model}",
                s.proposal,
                s.mode.as_str(),
                s.policy_version
            ),
        );
    }
    if !d.contributions.is_empty() {
        line(out, "  top contributions:");
        for c in &d.contributions {
            let _ = writeln!(out, "    {:+.3}  {}", c.weight, c.feature);
        }
    }
    line(out, "");
}

/// What people did with it.
fn actions(out: &mut String, e: &Explanation) {
    line(out, "actions");
    if e.actions.is_empty() {
        line(out, "  none");
    }
    for a in &e.actions {
        let detail = match serde_json::to_value(&a.action)
            .ok()
            .and_then(|v| v.get("option").cloned())
        {
            Some(Value::String(o)) => format!(" `{o}`"),
            _ => String::new(),
        };
        line(
            out,
            format!(
                "  {}  {} ({}) {}{}: {}",
                a.time.to_rfc3339(),
                a.actor.name,
                a.actor.role.as_str(),
                a.action.name(),
                detail,
                a.note
            ),
        );
        if let Some(advised) = &a.advised {
            line(out, format!("    the advisor had proposed `{advised}`"));
        }
    }
    for advice in &e.advice {
        let shown = if advice.shadow {
            "shadow, not shown"
        } else {
            "shown"
        };
        line(
            out,
            format!(
                "  advisor {} ({shown}) at {} proposed `{}`: {}",
                advice.model,
                advice.time.to_rfc3339(),
                advice.option,
                advice.reason
            ),
        );
        for cited in &advice.citations {
            line(out, format!("    cites {cited}"));
        }
    }
    if let Some((option, propensity, by)) = executed(e) {
        let by = serde_json::to_value(by)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let how = if propensity >= 1.0 {
            "deterministic".to_string()
        } else {
            format!("probability {propensity:.3}")
        };
        line(
            out,
            format!("  executed `{option}`, chosen by {by} ({how})"),
        );
    }
}

/// The option it executed, the probability the logging policy gave it and
/// what chose it (as off-policy evaluation reads it).
fn executed(e: &Explanation) -> Option<(String, f64, crate::journal::read::ChosenBy)> {
    let d = &e.decision;
    let answer = e
        .actions
        .iter()
        .rev()
        .map(|a| &a.action)
        .find(|a| a.is_final());
    crate::journal::read::chosen(d.mode.as_str(), &d.proposal, d.propensity, answer)
}

/// The flow it set going, event by event.
fn flow(out: &mut String, e: &Explanation) {
    if let Some(flow) = &e.flow {
        line(out, "");
        line(
            out,
            format!(
                "flow {}  option {}  state {}  deadline {}",
                flow.id,
                flow.option,
                flow.state.as_str(),
                flow.deadline.to_rfc3339()
            ),
        );
        for ev in &e.flow_events {
            let kind = serde_json::to_value(ev.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            line(
                out,
                format!(
                    "  {}  {:<14} {}",
                    ev.time.format("%H:%M:%S"),
                    kind,
                    ev.detail
                ),
            );
        }
    }
    if let Some(p) = &e.pending {
        let until = p.until.to_rfc3339();
        let waits = match p.awaits.as_str() {
            "reopen" => format!("within SLA unless its alert fires again before {until}"),
            "end" => format!("within SLA if what ends it comes by {until}; late if not"),
            other => format!("{other} until {until}"),
        };
        line(out, format!("  outcome waits: {waits}"));
    }
}

/// The pages it started: who was told, how, and what came of it.
fn pages(out: &mut String, e: &Explanation) {
    for page in &e.pages {
        line(out, "");
        let mut lines = crate::paging::pages::describe(page).into_iter();
        if let Some(first) = lines.next() {
            line(out, format!("page {first}"));
        }
        for l in lines {
            line(out, format!("  {l}"));
        }
    }
}

/// Alerts an incident shows one by one, at most; the rest are counted.
const MEMBERS_SHOWN: usize = 10;

/// The incident it opened: its group, its alerts, and how it stands.
fn incident(out: &mut String, e: &Explanation) {
    let Some(i) = &e.incident else { return };
    line(out, "");
    let group: Vec<String> = i.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    line(
        out,
        format!(
            "incident {}  {}  ({})  state {}",
            i.id,
            i.kind,
            group.join(", "),
            i.state.as_str()
        ),
    );
    line(
        out,
        format!(
            "  opened {}  alerts {}  still firing {}",
            i.opened.to_rfc3339(),
            i.alerts,
            i.firing.len()
        ),
    );
    for m in i.members.iter().take(MEMBERS_SHOWN) {
        let resolved = m
            .resolved
            .map(|t| format!("  resolved {}", t.format("%H:%M:%S")))
            .unwrap_or_default();
        line(
            out,
            format!(
                "  {}  {}  {}{resolved}",
                m.at.format("%H:%M:%S"),
                m.signal_id,
                m.subject
            ),
        );
    }
    let more = i
        .alerts
        .saturating_sub(i.members.len().min(MEMBERS_SHOWN) as u64);
    if more > 0 {
        line(out, format!("  … and {more} more"));
    }
    if let Some((who, when)) = &i.resolved {
        line(out, format!("  resolved by {who} at {}", when.to_rfc3339()));
    }
}

/// Its fan-out's branches, and what the model learned from it.
fn branches_and_feedback(out: &mut String, e: &Explanation) {
    if !e.children.is_empty() {
        line(out, "");
        line(out, format!("branches ({})", e.children.len()));
        for c in &e.children {
            line(
                out,
                format!(
                    "  {}  {}  → {}  ({:.2})",
                    c.id, c.subject, c.proposal, c.confidence
                ),
            );
        }
    }
    if !e.feedback.is_empty() {
        line(out, "");
        line(out, "feedback to the model");
        for f in &e.feedback {
            line(
                out,
                format!(
                    "  {}  {}  {} label {} weight {}",
                    f.time.to_rfc3339(),
                    f.source,
                    f.option,
                    f.label,
                    f.importance
                ),
            );
        }
    }
}

/// Its place in the audit chain.
fn chain(out: &mut String, e: &Explanation) {
    line(out, "");
    match &e.chain.result {
        Ok(_) => line(
            out,
            format!(
                "audit chain: verifies around this record (records {}–{}, checkpoint to checkpoint; \
                 `signalbox check` reads it whole); its hash {}",
                e.chain.from, e.chain.to, e.hash
            ),
        ),
        Err(b) => line(
            out,
            format!("audit chain: BROKEN at record {}: {}", b.seq, b.reason),
        ),
    }
}

/// The explanation as JSON, for scripts and the HTTP API.
pub fn to_json(e: &Explanation) -> Value {
    let mut out = json!({
        "decision": e.decision,
        "hash": e.hash,
        "signal": e.signal.as_ref().map(|s| s.to_cloudevent()),
        "actions": e.actions,
        "advice": e.advice,
        "executed": executed(e).map(|(option, propensity, by)| json!({
            "option": option,
            "propensity": propensity,
            "by": by,
            "deterministic": propensity >= 1.0,
        })),
        "feedback": e.feedback,
        "flow": e.flow,
        "flow_events": e.flow_events,
        "outcome_waits": e.pending,
        "pages": e.pages,
        "incident": e.incident,
        "children": e.children.iter().map(|c| &c.id).collect::<Vec<_>>(),
        "chain": match &e.chain.result {
            Ok(n) => json!({"verifies": true, "records": n, "from": e.chain.from, "to": e.chain.to}),
            Err(b) => json!({"verifies": false, "seq": b.seq, "reason": b.reason,
                             "from": e.chain.from, "to": e.chain.to}),
        },
    });
    // The shared views the record names by version, beside their versions.
    if let Some(input) = &e.decision.policy_input {
        for (kind, part) in input.views() {
            if let Some(view) = part.held() {
                out["decision"]["policy_input"][kind] = view.value().clone();
            }
        }
    }
    out
}
