//! Commands on a journal: `explain`, `check`, `quarantine`, `replay`, `model export`.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use signalbox::setup::Runs;

use super::JournalPlace;
use crate::{QuarantineCommand, QuarantineTarget};
use signalbox::engine::quarantine::Release;
use signalbox::journal::{explain, read};

pub(crate) fn explain_cmd(id: &str, place: &JournalPlace, json: bool, words: bool) -> Result<()> {
    let dir = place.dir.as_path();
    let Some(explanation) = read::explain(dir, id)
        .with_context(|| format!("reading the journal in {}", dir.display()))?
    else {
        bail!("no decision `{id}` in the journal at {}", dir.display());
    };
    if words {
        let advisor = super::advisor(place)?;
        let words = advisor.explain(&explanation)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&words.to_json())?);
        } else {
            print!("{}", words.render());
        }
    } else if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&explain::to_json(&explanation))?
        );
    } else {
        print!("{}", explain::render(&explanation));
    }
    Ok(())
}

/// Opens an existing journal as a restart does (it resumes what was in
/// flight and decides what was journaled but not decided), for a command
/// that acts on it, under the rules of the deployment that writes it (or
/// the demo's); refused while another process holds it, and refused for a
/// journal another writer wrote.
pub(crate) fn open_journal(place: &JournalPlace) -> Result<signalbox::engine::Engine> {
    let dir = &place.dir;
    if !dir.join(signalbox::journal::FILE_NAME).exists() {
        bail!("no journal at {}", dir.display());
    }
    let now = chrono::Utc::now();
    let demo = signalbox::config::Config::default();
    let (runs, now) = match &place.deployment {
        Some(deployment) => (Runs::Deployment(deployment), now),
        // The demo's world as the embedded default starts it.
        None => (
            Runs::Demo {
                seed: 0,
                server: &demo,
            },
            now.max(signalbox::sim::default_start()),
        ),
    };
    let setup = signalbox::setup::engine(
        runs,
        dir,
        Default::default(),
        signalbox::sim::default_start(),
    )?;
    Ok(signalbox::engine::Engine::open(
        setup.config,
        setup.world,
        now,
    )?)
}

pub(crate) fn check_cmd(place: &JournalPlace, json: bool) -> Result<()> {
    let dir = place.dir.as_path();
    let engine = open_journal(place)?;
    let resumed = (engine.counts().active_flows, engine.counts().open_reviews);
    // Acknowledged by the HTTP intake but not yet in the journal: the
    // intake log holds them, and a restart decides them; so does this.
    let (engine, from_log) = signalbox::engine::host::drain_log(engine)?;
    engine.close()?;
    let counts = read::counts(dir)?;
    let aside = read::set_aside(dir)?;
    if json {
        let mut v = serde_json::to_value(&counts)?;
        v["set_aside_records"] = aside
            .iter()
            .map(|a| serde_json::json!({"table": a.table, "key": a.key, "error": a.error}))
            .collect::<Vec<_>>()
            .into();
        v["resumed_flows"] = resumed.0.into();
        v["resumed_reviews"] = resumed.1.into();
        v["decided_from_intake_log"] = from_log.into();
        println!("{v}");
    } else {
        println!(
            "journal {}: {} signals, {} decided, {} undecided, {} quarantined; {} decisions, \
             {} review actions, {} open reviews; {} flows ({} active); {} feedback; \
             {} shared views; chain {}; {} signals decided from the intake log",
            dir.display(),
            counts.signals,
            counts.decided_signals,
            counts.undecided_signals,
            counts.quarantined,
            counts.decisions,
            counts.review_actions,
            counts.open_reviews,
            counts.flows,
            counts.active_flows,
            counts.feedback,
            counts.views,
            if counts.chain_ok {
                "verifies"
            } else {
                "BROKEN"
            },
            from_log
        );
        for p in &counts.view_problems {
            println!(
                "view {} {} is {}: {} decisions name it, the first {} (they cannot be replayed \
                 or explained until it is back)",
                p.kind,
                p.version,
                match p.fault {
                    read::ViewFault::Missing => "missing from the journal",
                    read::ViewFault::Altered => "altered (its text does not hash to its version)",
                },
                p.decisions,
                p.first_decision
            );
        }
        for a in &aside {
            println!(
                "set aside: {} {} ({}): {} [its text is kept in the journal's set_aside table]",
                a.table,
                a.key,
                a.time.format("%Y-%m-%d %H:%M:%S"),
                a.error
            );
        }
    }
    Ok(())
}

pub(crate) fn quarantine_cmd(what: QuarantineCommand) -> Result<()> {
    use signalbox::journal::QuarantineState;
    match what {
        QuarantineCommand::List { journal, json } => {
            let dir = journal.place()?.dir;
            let held = read::quarantine(&dir, Some(QuarantineState::Held), i64::MAX)
                .with_context(|| format!("reading the journal in {}", dir.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&held)?);
            } else if held.is_empty() {
                println!("no signal is held in quarantine in {}", dir.display());
            } else {
                for q in &held {
                    println!(
                        "{}  {}  {}  {}  {}",
                        q.time.format("%Y-%m-%d %H:%M:%S"),
                        q.signal_id,
                        q.source,
                        q.kind,
                        q.error
                    );
                }
            }
            Ok(())
        }
        QuarantineCommand::Retry(target) => release_cmd(Release::Retry, &target),
        QuarantineCommand::Drop(target) => release_cmd(Release::Drop, &target),
    }
}

/// A lead's retry or drop of a held signal, on the journal itself: whoever
/// can open the journal's files stands as a lead here.
pub(crate) fn release_cmd(how: Release, target: &QuarantineTarget) -> Result<()> {
    use signalbox::engine::quarantine::Released;
    let mut engine = open_journal(&target.journal.place()?)?;
    let name = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let actor = signalbox::review::Actor::new(&name, signalbox::decide::policy::Role::Lead);
    let released = engine.release_quarantined(
        how,
        &target.id,
        target.source.as_deref(),
        &actor,
        &target.note,
        chrono::Utc::now(),
    );
    engine.close()?;
    match released? {
        Released::Decided(d) => println!("{} decided: {d}", target.id),
        Released::HeldAgain(e) => println!("{} failed again and is held: {e}", target.id),
        Released::Paused => println!(
            "{} is paused as a possible transient: decided when its hold-off ends",
            target.id
        ),
        Released::Dropped(q) => println!(
            "{} from {} dropped; it stays in the journal",
            q.signal_id, q.source
        ),
    }
    Ok(())
}

/// What `signalbox replay` replays: rules from a deployment or the shipped
/// ones, with a policy file or playbook of its own, and the model or not.
pub(crate) struct CandidateArgs {
    pub policy: Option<std::path::PathBuf>,
    pub playbook: Option<std::path::PathBuf>,
    /// `off`, a checkpoint file, or none (the model as it was).
    pub model: Option<String>,
}

impl CandidateArgs {
    fn candidate(&self, place: &JournalPlace) -> Result<signalbox::replay::Candidate> {
        use signalbox::decide::policy::PolicySet;
        use signalbox::playbook::Playbook;
        use signalbox::replay::{Candidate, Scoring};
        let mut rules = match &place.deployment {
            Some(deployment) => deployment.rules.clone(),
            None => signalbox::engine::Engine::shipped_rules(None)?,
        };
        let mut name = Vec::new();
        if let Some(path) = &self.playbook {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the playbook {}", path.display()))?;
            let origin = path.display().to_string();
            rules.playbook = std::sync::Arc::new(Playbook::parse(&text, &origin, &rules.steps)?);
            name.push(format!("playbook {origin}"));
        }
        if let Some(path) = &self.policy {
            rules.policy = PolicySet::load(path, &rules.playbook)?;
            name.push(format!(
                "policies {} ({})",
                path.display(),
                rules.policy.version
            ));
        } else {
            name.push(format!("the live policies ({})", rules.policy.version));
        }
        let scoring = match self.model.as_deref() {
            Some("off") => {
                name.push("rules alone (--model off)".into());
                Scoring::Off
            }
            Some(path) => {
                let model = signalbox::decide::candidate::load_checkpoint(Path::new(path))?;
                name.push(format!(
                    "the model of checkpoint {path} ({} updates)",
                    model.updates()
                ));
                Scoring::Checkpoint(model)
            }
            None => {
                name.push("the model as it was".into());
                Scoring::Logged
            }
        };
        Ok(Candidate::new(
            name.join(", "),
            rules,
            scoring,
            self.policy.is_none(),
        ))
    }
}

/// `signalbox replay`: a candidate re-decides the journal's settled
/// decisions, never acting; what changes, and the estimated value. A
/// progress bar on a terminal.
pub(crate) fn replay_cmd(
    place: &JournalPlace,
    candidate: &CandidateArgs,
    since: Option<chrono::DateTime<chrono::Utc>>,
    json: bool,
) -> Result<()> {
    use signalbox::replay;
    use std::io::IsTerminal;
    let dir = place.dir.as_path();
    place.check_author()?;
    let mut replay = replay::Replay::new(candidate.candidate(place)?);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "replaying {bar:40} {human_pos}/{human_len} decisions, {per_sec}, {eta} left",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let started = std::time::Instant::now();
    let mut show = |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let progress = bar
        .is_some()
        .then_some(&mut show as &mut dyn FnMut(u64, u64));
    let read = read::each_replayable(dir, since, progress, |r| replay.add(&r))
        .with_context(|| format!("reading the journal in {}", dir.display()))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let report = replay.finish(1);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", replay::render(&report));
        println!(
            "read {read} decisions in {elapsed:.1} s ({:.0} decisions/s)",
            read as f64 / elapsed.max(1e-9)
        );
    }
    Ok(())
}

/// `signalbox replay --noise FILE`: the candidate playbook's noise rules
/// over the journal's signals, on a scratch journal removed afterwards.
pub(crate) fn replay_noise_cmd(place: &JournalPlace, noise: &Path, json: bool) -> Result<()> {
    use signalbox::replay::noise;
    let Some(deployment) = &place.deployment else {
        anyhow::bail!(
            "replay --noise runs a candidate under a deployment's organization and policies: give its --config DIR"
        );
    };
    place.check_author()?;
    let dir = place.dir.as_path();
    let text = std::fs::read_to_string(noise)
        .with_context(|| format!("reading the candidate {}", noise.display()))?;
    let origin = noise.display().to_string();
    let mut deployment = deployment.clone();
    deployment.rules.playbook = std::sync::Arc::new(signalbox::playbook::Playbook::parse(
        &text,
        &origin,
        &deployment.rules.steps,
    )?);
    let scratch = std::env::temp_dir().join(format!("signalbox-noise-{}", std::process::id()));
    let _gone = Scratch(scratch.clone());
    let start = signalbox::journal::read::seen::shown_by_hour(dir)?
        .keys()
        .next()
        .copied()
        .unwrap_or_else(chrono::Utc::now);
    let runs = signalbox::setup::Runs::Deployment(&deployment);
    let setup = signalbox::setup::engine(runs, &scratch, Default::default(), start)?;
    let engine = signalbox::engine::Engine::open(setup.config, setup.world, start)?;
    let report = noise::replay_noise(dir, engine)
        .with_context(|| format!("replaying the journal in {}", dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!(
            "{}",
            noise::render(&report, &format!("the noise rules of {origin}"))
        );
    }
    Ok(())
}

/// A scratch directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `signalbox report`: the measures of the operation from its journal.
pub(crate) fn report_cmd(
    place: &JournalPlace,
    since: Option<&str>,
    team: Option<&str>,
    json: bool,
) -> Result<()> {
    use signalbox::journal::read::report;
    let since = super::parse_since(since)?;
    let r = report::report_for(&place.dir, since, team)
        .with_context(|| format!("reading the journal in {}", place.dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", report::render(&r));
    }
    Ok(())
}

/// `signalbox model export`: the model as the journal has it (at `before`,
/// or now), as checkpoint JSON.
pub(crate) fn model_export(
    dir: &Path,
    before: Option<chrono::DateTime<chrono::Utc>>,
    out: Option<&Path>,
) -> Result<()> {
    use signalbox::decide::model::{Checkpoint, DEFAULT_BITS, Model};
    let (checkpoint, feedback) = signalbox::journal::read::model_at(dir, before)
        .with_context(|| format!("reading the model from {}", dir.display()))?;
    let mut model = match checkpoint {
        Some(text) => {
            let checkpoint: Checkpoint = serde_json::from_str(&text)
                .with_context(|| format!("the journal's model checkpoint in {}", dir.display()))?;
            Model::restore(&checkpoint)?
        }
        None => Model::new(DEFAULT_BITS),
    };
    for fb in &feedback {
        model.learn(&fb.option, &fb.features, fb.label, fb.importance);
    }
    let text = serde_json::to_string(&model.checkpoint())?;
    match out {
        Some(path) => std::fs::write(path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    eprintln!(
        "model {} ({} labelled examples after the last checkpoint)",
        model.version(),
        feedback.len()
    );
    Ok(())
}
