//! `signalbox bench --advisor URL`: the advisor as a candidate is judged.
//! Six simulated hours of Northwind run into a journal; then, for each
//! type the simulator knows the hidden truth of, the playbook's knowledge
//! of the type is taken away (no proposal, scores, rules or why: the
//! signal, its context and the type's options only) and the advisor is
//! asked to choose, the options listed in a different order for each
//! decision. Its choices are scored against the truth, beside the
//! playbook's default and the first option listed on the same decisions
//! (the baselines, from the same run). Then a few decisions are explained in words. Printed: latency
//! p50/p99 of each kind of call, the share of valid and allowed answers,
//! the share of sentences kept, and agreement with the truth per type.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::BenchError;
use crate::advisor::{AdviceError, Advisor, AdvisorConfig};
use crate::decide::estimate::quantile;
use crate::journal::read;

/// The simulator's types whose best option the truth knows.
const TYPES: &[&str] = &["order.placed", "ticket.opened", "supplier.delayed"];
/// Decisions explained in words.
const WORDS: usize = 10;

#[derive(Default)]
struct Tally {
    asked: usize,
    valid: usize,
    advisor_right: usize,
    default_right: usize,
    /// The first option listed to the advisor (the type's options, turned
    /// by one for each decision): what a chooser with a bias to the top of
    /// the list would get.
    first_right: usize,
}

pub fn run(url: &str, model: &str, per_type: usize, dir: &Path) -> Result<(), BenchError> {
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let config = AdvisorConfig {
        url: url.into(),
        model: model.into(),
        api_key_env: None,
        timeout: Some("120s".into()),
        tokens_per_hour: Some(100_000_000),
        max_tokens: None,
        redact: vec![],
        allow_remote: false,
        keep: None,
    };
    let advisor = Advisor::new(&config, &dir.join("advice")).map_err(|e| setup(&e))?;
    let journal = dir.join("sim");
    let options = crate::sim::run::RunOptions {
        seed: 1,
        duration: chrono::Duration::hours(6),
        speed: None,
        data_dir: journal.clone(),
        learning: true,
        policy_file: None,
        candidates: Default::default(),
        corrupt_model_at: None,
        restore_model_at: None,
        ramp_at: chrono::Duration::zero(),
        model_mode: None,
    };
    crate::sim::run::run(&options)?;
    let rules = crate::engine::Engine::shipped_rules(None)?;
    // Every k-th decision of each type, up to `per_type`.
    let mut picked: BTreeMap<&str, Vec<read::Replayable>> = BTreeMap::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    read::each_replayable(&journal, None, None, |r| {
        let Some(kind) = TYPES.iter().find(|t| **t == r.decision.signal_type) else {
            return;
        };
        let n = seen.entry(kind).or_default();
        *n += 1;
        let list = picked.entry(kind).or_default();
        if n.is_multiple_of(7) && list.len() < per_type && r.signal.is_some() {
            list.push(r);
        }
    })?;
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut propose_ms = Vec::new();
    for (kind, decisions) in &picked {
        let Some(play) = rules.playbook.play(kind) else {
            continue;
        };
        let tally = tallies.entry(kind).or_default();
        for r in decisions {
            let Some(signal) = &r.signal else { continue };
            let context = r
                .decision
                .policy_input
                .as_ref()
                .map_or(Value::Null, |p| p.fields.clone());
            let tier = context
                .get("tier")
                .and_then(|t| serde_json::from_value(t.clone()).ok());
            let escalated = context.get("open_escalation") == Some(&Value::Bool(true));
            let Some(truth) = crate::sim::truth::best(signal, tier, escalated) else {
                continue;
            };
            // The options in a different order for each decision, so that
            // a model that takes the first listed is seen to.
            let mut options = play.options.clone();
            let turn = tally.asked % options.len().max(1);
            options.rotate_left(turn);
            tally.asked += 1;
            tally.default_right += usize::from(play.default == truth);
            tally.first_right += usize::from(options.first().is_some_and(|o| o == truth));
            let began = Instant::now();
            let answer = advisor.propose_new(&r.decision.id, signal, &context, &options);
            propose_ms.push(began.elapsed().as_secs_f64() * 1000.0);
            match answer {
                Ok(p) => {
                    tally.valid += 1;
                    tally.advisor_right += usize::from(p.option == truth);
                }
                Err(AdviceError::Invalid(_)) => {}
                Err(e) => return Err(setup(&e)),
            }
        }
    }
    let ids: Vec<String> = picked
        .values()
        .flatten()
        .take(WORDS)
        .map(|r| r.decision.id.clone())
        .collect();
    let Explained {
        mut words_ms,
        kept,
        sentences,
        example,
    } = explain_some(&advisor, &journal, &ids)?;
    print!(
        "{}",
        render(
            model,
            &tallies,
            &mut propose_ms,
            &mut words_ms,
            (kept, sentences)
        )
    );
    if let Some(text) = example {
        println!("  the first explanation, as `explain --words` prints it:");
        for line in text.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

/// Decisions explained in words: how long each took, the sentences kept
/// of those written, and the first explanation as `explain --words`
/// prints it.
struct Explained {
    words_ms: Vec<f64>,
    kept: usize,
    sentences: usize,
    example: Option<String>,
}

fn explain_some(
    advisor: &Advisor,
    journal: &Path,
    ids: &[String],
) -> Result<Explained, BenchError> {
    let mut out = Explained {
        words_ms: Vec::new(),
        kept: 0,
        sentences: 0,
        example: None,
    };
    for id in ids {
        let Some(e) = read::explain(journal, id)? else {
            continue;
        };
        let began = Instant::now();
        match advisor.explain(&e) {
            Ok(w) => {
                out.kept += w.sentences.len();
                out.sentences += w.sentences.len() + w.dropped.len();
                out.example.get_or_insert_with(|| w.render());
            }
            Err(AdviceError::Invalid(_)) => {}
            Err(e) => return Err(BenchError::Setup(e.to_string())),
        }
        out.words_ms.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

fn pct(n: usize, d: usize) -> String {
    match d {
        0 => "–".into(),
        d => format!("{:.0} %", 100.0 * n as f64 / d as f64),
    }
}

fn latency(ms: &mut [f64]) -> String {
    if ms.is_empty() {
        return "–".into();
    }
    ms.sort_by(f64::total_cmp);
    format!(
        "p50 {:.0} ms, p99 {:.0} ms over {}",
        quantile(ms, 0.5),
        quantile(ms, 0.99),
        ms.len()
    )
}

fn render(
    model: &str,
    tallies: &BTreeMap<&str, Tally>,
    propose_ms: &mut [f64],
    words_ms: &mut [f64],
    (kept, sentences): (usize, usize),
) -> String {
    let mut out = format!("advisor {model}\n");
    out.push_str(&format!("  proposals: {}\n", latency(propose_ms)));
    out.push_str(&format!("  explanations: {}\n", latency(words_ms)));
    let all = tallies.values().fold(Tally::default(), |a, t| Tally {
        asked: a.asked + t.asked,
        valid: a.valid + t.valid,
        advisor_right: a.advisor_right + t.advisor_right,
        default_right: a.default_right + t.default_right,
        first_right: a.first_right + t.first_right,
    });
    out.push_str(&format!(
        "  valid and allowed proposals: {} of {} ({})\n",
        all.valid,
        all.asked,
        pct(all.valid, all.asked)
    ));
    out.push_str(&format!(
        "  sentences kept (each states the facts it cites): {kept} of {sentences} ({})\n",
        pct(kept, sentences)
    ));
    out.push_str("  agreement with the hidden truth, types taken out of the playbook:\n");
    out.push_str(&format!(
        "    {:<18} {:>6} {:>9} {:>9} {:>13}\n",
        "type", "asked", "advisor", "default", "first listed"
    ));
    for (kind, t) in tallies.iter().map(|(k, t)| (*k, t)).chain([("all", &all)]) {
        out.push_str(&format!(
            "    {:<18} {:>6} {:>9} {:>9} {:>13}\n",
            kind,
            t.asked,
            pct(t.advisor_right, t.asked),
            pct(t.default_right, t.asked),
            pct(t.first_right, t.asked)
        ));
    }
    out
}
