//! `signalbox advise policies`: the rules behind people's overrides,
//! drafted, validated and replayed over the journal before a lead reads
//! them. Nothing is applied: a lead copies a draft into policies.toml (or
//! ramps it).

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use signalbox::advisor::drafts::{MIN_SUPPORT, Overrides, Pattern};
use signalbox::decide::policy::PolicySet;
use signalbox::journal::read;
use signalbox::replay::{self, Candidate, Scoring};

use super::JournalPlace;

/// Patterns drafted for, at most.
const PATTERNS: usize = 5;

/// One draft and what checking it found.
#[derive(Debug, Serialize)]
struct Checked {
    /// `fields in common`, or the advisor's model.
    by: String,
    rule: String,
    /// Why `validate` refuses it; empty when it passes.
    refused: Vec<String>,
    /// Of the pattern's overrides, those the draft would have decided as
    /// people did.
    matches_overrides: usize,
    replay: Option<replay::Report>,
}

#[derive(Debug, Serialize)]
struct Drafts {
    pattern: Pattern,
    drafts: Vec<Checked>,
    /// Why the advisor gave no draft, if it did not.
    advisor: Option<String>,
}

pub(crate) fn advise_policies_cmd(
    place: &JournalPlace,
    since: Option<&str>,
    min_support: Option<usize>,
    json: bool,
) -> Result<()> {
    let Some(deployment) = &place.deployment else {
        bail!(
            "advise policies drafts rules for a deployment's policies.toml: give its --config DIR"
        );
    };
    place.check_author()?;
    let since = super::parse_since(since)?;
    let dir = place.dir.as_path();
    let mut overrides = Overrides::default();
    read::each_replayable(dir, since, None, |r| overrides.add(&r))
        .with_context(|| format!("reading the journal in {}", dir.display()))?;
    let min = min_support.unwrap_or(MIN_SUPPORT).max(1);
    let patterns = overrides.patterns(min);
    let advisor = super::advisor(place);
    let policies_path = deployment.dir.join("policies.toml");
    let live = std::fs::read_to_string(&policies_path)
        .with_context(|| format!("reading {}", policies_path.display()))?;
    let mut out = Vec::new();
    let mut pending = Vec::new();
    for pattern in patterns.into_iter().take(PATTERNS) {
        let reason = format!(
            "people chose {} over {} in {} decisions",
            pattern.chosen,
            pattern.proposed,
            pattern.decisions.len()
        );
        let known = deployment
            .rules
            .playbook
            .play(&pattern.signal_type)
            .is_some();
        let mut rules = vec![(
            "fields in common".to_string(),
            pattern.rule(
                &pattern.id("common"),
                &pattern.common_condition(),
                &reason,
                known,
            ),
        )];
        let said = match &advisor {
            Err(e) => Some(e.to_string()),
            Ok(advisor) => match advisor.draft(&pattern) {
                Ok(d) => {
                    let rule = pattern.rule(&pattern.id("advised"), &d.when, &d.reason, known);
                    rules.push((format!("advisor {}", advisor.model()), rule));
                    None
                }
                Err(e) => Some(e.to_string()),
            },
        };
        let mut drafts = Vec::new();
        for (by, rule) in rules {
            let (checked, ready) = validate(deployment, &live, by, rule);
            if let Some(ready) = ready {
                pending.push((out.len(), drafts.len(), ready));
            }
            drafts.push(checked);
        }
        out.push(Drafts {
            pattern,
            drafts,
            advisor: said,
        });
    }
    replay_all(dir, since, &mut out, pending)
        .with_context(|| format!("replaying the drafts over the journal in {}", dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if out.is_empty() {
        println!(
            "no proposal was overridden the same way {min} times or more in the journal at {}",
            dir.display()
        );
    } else {
        for (n, d) in out.iter().enumerate() {
            print!("{}", render(n + 1, d));
        }
    }
    Ok(())
}

/// A validated draft, waiting for the journal's one pass: its replay,
/// the same candidate to re-decide the pattern's overrides, and how many
/// it decided as people did.
struct Pending {
    replay: replay::Replay,
    alone: Candidate,
    matches: usize,
}

/// A draft parsed beside the live policies as `validate` parses them:
/// refused with why, or ready to replay.
fn validate(
    deployment: &signalbox::deploy::Deployment,
    live: &str,
    by: String,
    rule: String,
) -> (Checked, Option<Pending>) {
    let text = format!("{live}\n\n{rule}");
    let playbook = &deployment.rules.playbook;
    let mut checked = Checked {
        by,
        rule,
        refused: vec![],
        matches_overrides: 0,
        replay: None,
    };
    match PolicySet::parse_all(&text, "draft", playbook) {
        Err(errors) => {
            // The first line of each: what is wrong, without the excerpt
            // CEL repeats.
            checked.refused = errors
                .iter()
                .map(|e| e.to_string().lines().next().unwrap_or("").to_string())
                .collect();
            (checked, None)
        }
        Ok(set) => {
            let mut rules = deployment.rules.clone();
            rules.policy = std::sync::Arc::new(set);
            let name = format!("policies.toml with the draft by {}", checked.by);
            let candidate = |rules| Candidate::new(name.clone(), rules, Scoring::Logged, false);
            let pending = Pending {
                replay: replay::Replay::new(candidate(rules.clone())),
                alone: candidate(rules),
                matches: 0,
            };
            (checked, Some(pending))
        }
    }
}

/// Replays every validated draft over the journal in one pass, and puts
/// what each found beside it.
fn replay_all(
    dir: &std::path::Path,
    since: Option<chrono::DateTime<chrono::Utc>>,
    out: &mut [Drafts],
    mut pending: Vec<(usize, usize, Pending)>,
) -> Result<()> {
    read::each_replayable(dir, since, None, |r| {
        for (p, _, draft) in &mut pending {
            let chosen = &out[*p].pattern.chosen;
            if out[*p].pattern.decisions.contains(&r.decision.id)
                && draft
                    .alone
                    .redecide(&r)
                    .is_some_and(|again| &again.proposal == chosen)
            {
                draft.matches += 1;
            }
            draft.replay.add(&r);
        }
    })?;
    for (p, d, draft) in pending {
        let checked = &mut out[p].drafts[d];
        checked.matches_overrides = draft.matches;
        checked.replay = Some(draft.replay.finish(1));
    }
    Ok(())
}

fn render(n: usize, d: &Drafts) -> String {
    let p = &d.pattern;
    let mut out = format!(
        "pattern {n}: {} (class {}): people chose {} over {} {} times ({})\n",
        p.signal_type,
        p.class,
        p.chosen,
        p.proposed,
        p.decisions.len(),
        p.decisions
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
            + if p.decisions.len() > 5 { ", …" } else { "" }
    );
    let common: Vec<String> = p.common.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    out.push_str(&format!(
        "  fields in common: {}\n",
        if common.is_empty() {
            "none".into()
        } else {
            common.join(", ")
        }
    ));
    if !p.left_out.is_empty() {
        out.push_str(&format!(
            "  left out (shared by every decision that took another option too): {}\n",
            p.left_out.join(", ")
        ));
    }
    if let Some(why) = &d.advisor {
        out.push_str(&format!("  no draft by the advisor: {why}\n"));
    }
    for c in &d.drafts {
        out.push_str(&format!("  draft ({})\n", c.by));
        for line in c.rule.lines() {
            out.push_str(&format!("    {line}\n"));
        }
        if !c.refused.is_empty() {
            out.push_str(&format!(
                "    validate refuses it: {}\n",
                c.refused.join("; ")
            ));
            continue;
        }
        out.push_str("    validate: ok\n");
        if let Some(r) = &c.replay {
            let estimate = match (r.estimate.value, r.estimate.ci) {
                (Some(v), Some([lo, hi])) => {
                    format!("{:.1} % [{:.1}, {:.1}]", v * 100.0, lo * 100.0, hi * 100.0)
                }
                _ => "inconclusive".into(),
            };
            let logged = r
                .logged_value
                .map_or("–".into(), |v| format!("{:.1} %", v * 100.0));
            out.push_str(&format!(
                "    replay: as people chose in {} of the {} overrides; changes {} of {} decisions; within SLA {estimate} (journal {logged})\n",
                c.matches_overrides,
                p.decisions.len(),
                r.changed,
                r.decisions,
            ));
            let changed: Vec<&str> = r.examples.iter().map(|e| e.decision_id.as_str()).collect();
            if !changed.is_empty() {
                out.push_str(&format!(
                    "    changes, among others: {}\n",
                    changed.join(", ")
                ));
            }
        }
    }
    out
}
