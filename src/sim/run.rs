//! The headless run: the simulator through the engine for a simulated span,
//! once with the model and once rules-only on the same seed, and the report
//! comparing them.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{SimStats, Simulator, default_start, world};
use std::ops::ControlFlow;

use crate::engine::host::{Handle, Host};
use crate::engine::runner::{Beside, Pace, Runner};
use crate::engine::{Engine, EngineError};
use crate::metrics::{Metrics, Summary, Tally};

/// Simulated time between engine ticks.
pub const STEP: Duration = Duration::seconds(15);

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub seed: u64,
    pub duration: Duration,
    /// Simulated seconds per real second; `None` runs as fast as it can.
    pub speed: Option<f64>,
    pub data_dir: PathBuf,
    pub learning: bool,
    /// A policy file instead of the shipped default.
    pub policy_file: Option<PathBuf>,
    /// A shadow candidate deciding beside the live rules, and a guarded
    /// ramp, started `ramp_at` into the run.
    pub candidates: crate::decide::CandidateFiles,
    /// A drill: this far into the run a corrupted checkpoint (every weight
    /// of the model as it is then, turned the other way) is put in place of
    /// the model, as a bad checkpoint would be.
    pub corrupt_model_at: Option<Duration>,
    /// And this far in, the model as it was before is put back.
    pub restore_model_at: Option<Duration>,
    /// How far into the run the ramp starts.
    pub ramp_at: Duration,
    /// Who decides, over what the policy file says.
    pub model_mode: Option<crate::decide::apprentice::ModelMode>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub learning: bool,
    pub data_dir: PathBuf,
    pub elapsed_seconds: f64,
    pub model_version: String,
    pub policy_version: String,
    pub sim: SimStats,
    #[serde(skip)]
    pub metrics: Metrics,
    /// The ramp as it ended, if one ran.
    #[serde(skip)]
    pub ramp: Option<crate::decide::ramp::RampState>,
}

/// Runs the simulator through a fresh engine in `options.data_dir`.
pub fn run(options: &RunOptions) -> Result<RunResult, EngineError> {
    if options.data_dir.join(crate::journal::FILE_NAME).exists() {
        return Err(EngineError::Recovery {
            dir: options.data_dir.display().to_string(),
            reason: "already holds a journal; a headless run starts from a fresh data directory"
                .into(),
        });
    }
    let started = Instant::now();
    let start = default_start();
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(options.seed), start);
    let sim = Simulator::new(options.seed, start, options.duration, &world);
    // The demo's settings (`setup::engine` builds them from these for
    // everything above the simulator); the ramp starts `ramp_at` into the
    // run, not with the engine.
    let mut config = super::engine_config(&options.data_dir, options.seed);
    config.learning = options.learning;
    config.policy_file = options.policy_file.clone();
    config.candidates = crate::decide::CandidateFiles {
        ramp: None,
        ..options.candidates.clone()
    };
    if let Some(mode) = options.model_mode {
        let mut rules = Engine::shipped_rules(options.policy_file.as_deref())?;
        if let Some(policy) = std::sync::Arc::get_mut(&mut rules.policy) {
            policy.set_mode(mode);
        }
        config.rules = Some(rules);
    }
    let engine = Engine::open(config, world, start)?;
    let ramp = match &options.candidates.ramp {
        Some(file) => Some((
            crate::decide::ramp::RampPlan::load(file, engine.playbook())
                .map_err(crate::engine::ramp::RampRefused::from)?,
            start + options.ramp_at,
        )),
        None => None,
    };
    let mut headless = Headless {
        sim,
        drill: Drill {
            corrupt_at: options.corrupt_model_at.map(|d| start + d),
            restore_at: options.restore_model_at.map(|d| start + d),
            kept: None,
        },
        learning: options.learning,
        ramp,
        start,
        now: start,
        end: start + options.duration,
        speed: options.speed,
        started,
        failed: None,
    };
    // At most one batch in flight: the journal writes one while the engine
    // works on the next.
    let mut runner = Runner::new(Host::new(engine, None), Pace::Max { start });
    runner.in_flight = 1;
    let (handle, commands) = Handle::channel(options.data_dir.clone());
    let ran = runner.run(&commands, &handle, &mut headless);
    let engine = ran.engine;
    ran.result?;
    if let Some(e) = headless.failed {
        return Err(e);
    }
    let sim = headless.sim;
    let model_version = engine.model_version();
    let policy_version = engine.policy().version.clone();
    let ramp = engine.ramp().cloned();
    let mut metrics = engine.close()?;
    // The last tick lands on the end instant, which opens an hour of its own.
    let hours = (options.duration.num_seconds() as f64 / 3600.0).ceil() as usize;
    metrics.hours.truncate(hours.max(1));
    Ok(RunResult {
        learning: options.learning,
        data_dir: options.data_dir.clone(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
        model_version,
        policy_version,
        sim: sim.stats,
        metrics,
        ramp,
    })
}

/// The simulator beside a headless run's engine, a `STEP` a turn until the
/// end, with the model drill and the ramp's start, paced at `speed`.
struct Headless {
    sim: Simulator,
    drill: Drill,
    learning: bool,
    /// A ramp to start, and when.
    ramp: Option<(crate::decide::ramp::RampPlan, DateTime<Utc>)>,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    end: DateTime<Utc>,
    /// Paced at this many simulated seconds per real second, from `started`.
    speed: Option<f64>,
    started: Instant,
    /// What stopped the run.
    failed: Option<EngineError>,
}

impl Beside for Headless {
    fn advance(&mut self, engine: &mut Engine, _to: DateTime<Utc>) -> DateTime<Utc> {
        if self.now >= self.end {
            return self.now;
        }
        let now = (self.now + STEP).min(self.end);
        self.now = now;
        if let Err(e) = self.before_step(engine, now) {
            self.failed = Some(e);
            return now;
        }
        self.sim.step(engine, now);
        now
    }

    fn after_turn(&mut self, _engine: &mut Engine, now: DateTime<Utc>) -> ControlFlow<()> {
        pace(self.speed, self.started, now - self.start);
        match self.failed.is_some() || now >= self.end {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    }
}

impl Headless {
    /// The drill and the ramp's start, when due.
    fn before_step(&mut self, engine: &mut Engine, now: DateTime<Utc>) -> Result<(), EngineError> {
        if self.learning {
            self.drill.step(engine, now)?;
        }
        if let Some((plan, _)) = self.ramp.take_if(|(_, at)| now >= *at) {
            let lead = crate::review::Actor::new("headless run", crate::decide::policy::Role::Lead);
            engine.start_ramp(&plan, &lead, now)?;
        }
        Ok(())
    }
}

/// The model drill: a corrupted checkpoint put in place, and later the
/// model as it was before put back, both through `Engine::load_model` (so
/// journaled like any replacement).
struct Drill {
    corrupt_at: Option<DateTime<Utc>>,
    restore_at: Option<DateTime<Utc>>,
    kept: Option<crate::decide::model::Checkpoint>,
}

impl Drill {
    fn step(&mut self, engine: &mut Engine, now: DateTime<Utc>) -> Result<(), EngineError> {
        let drill = crate::review::Actor::new("drill", crate::decide::policy::Role::System);
        let bad = |e: crate::decide::model::CheckpointError| EngineError::Recovery {
            dir: "the model drill".into(),
            reason: e.to_string(),
        };
        if self.corrupt_at.is_some_and(|t| now >= t) {
            self.corrupt_at = None;
            let good = engine.model_checkpoint();
            let mut corrupted = good.clone();
            for entry in &mut corrupted.entries {
                entry.1 = -entry.1;
            }
            engine
                .load_model(&corrupted, &drill, "drill: a corrupted checkpoint", now)
                .map_err(bad)?;
            self.kept = Some(good);
        }
        if self.restore_at.is_some_and(|t| now >= t)
            && let Some(good) = self.kept.take()
        {
            self.restore_at = None;
            engine
                .load_model(&good, &drill, "drill: the model before the corruption", now)
                .map_err(bad)?;
        }
        Ok(())
    }
}

/// The report's `ramp`: its outcome (`promoted`, `rolled_back`, `paused`,
/// or `running` when the run ended first), and each step as it ended with
/// its gate readings.
pub fn ramp_report(state: &crate::decide::ramp::RampState) -> Value {
    let steps: Vec<Value> = state
        .history
        .iter()
        .map(|h| {
            let r = &h.reading;
            json!({
                "step": h.step,
                "coverage": h.coverage,
                "time": h.time,
                "then": h.then,
                "by": h.by,
                "verdict": r.verdict,
                "difference": r.difference,
                "ci": r.ci,
                "outcomes": r.tally.samples,
                "differing": r.tally.differing,
                "candidate": r.tally.candidate,
                "live": r.tally.live,
                "gates": r.gates,
            })
        })
        .collect();
    json!({
        "id": state.id,
        "outcome": state.status.as_str(),
        "candidate": state.candidate_version,
        "live": state.live_version,
        "classes": state.classes,
        "coverage": state.coverage(),
        "reason": state.reason,
        "steps": steps,
    })
}

/// Sleeps until the wall clock catches up with simulated time at `speed`.
fn pace(speed: Option<f64>, started: Instant, simulated: Duration) {
    let Some(speed) = speed.filter(|s| *s > 0.0) else {
        return;
    };
    let target = simulated.num_milliseconds() as f64 / 1000.0 / speed;
    let ahead = target - started.elapsed().as_secs_f64();
    if ahead > 0.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(ahead));
    }
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn last_hours(metrics: &Metrics, hours: usize) -> Tally {
    let n = metrics.hours.len();
    metrics.window(n.saturating_sub(hours)..n)
}

fn side(result: &RunResult) -> Value {
    let m = &result.metrics;
    let hourly: Vec<Summary> = m.hourly();
    json!({
        "learning": result.learning,
        "data_dir": result.data_dir,
        "elapsed_seconds": result.elapsed_seconds,
        "model_version": result.model_version,
        "policy_version": result.policy_version,
        "simulator": result.sim,
        "total": m.total.summary(),
        "hourly": hourly,
    })
}

/// The report scripts read; the four headline figures sit at the top level.
/// Without a baseline run (`--no-baseline`) its figures are null.
pub fn report(
    seed: u64,
    duration: Duration,
    model: &RunResult,
    baseline: Option<&RunResult>,
) -> Value {
    let within = |r: Option<&RunResult>| {
        r.and_then(|r| ratio(r.metrics.total.within_sla, r.metrics.total.outcomes))
    };
    let within_last = |r: Option<&RunResult>| {
        let t = last_hours(&r?.metrics, 2);
        ratio(t.within_sla, t.outcomes)
    };
    let agreement = |r: Option<&RunResult>, hour: Option<usize>| {
        let hours = &r?.metrics.hours;
        let t = match hour {
            Some(h) => hours.get(h),
            None => hours.last(),
        }?;
        ratio(t.judged_right, t.judged)
    };
    let start: DateTime<Utc> = model.metrics.start;
    json!({
        "seed": seed,
        "start": start,
        "duration_hours": duration.num_minutes() as f64 / 60.0,
        // The value replay estimates: outcomes within SLA over the whole run.
        "within_sla": within(Some(model)),
        "baseline_within_sla": within(baseline),
        "within_sla_last_2h": within_last(Some(model)),
        "baseline_within_sla_last_2h": within_last(baseline),
        "agreement_first_hour": agreement(Some(model), Some(0)),
        "agreement_last_hour": agreement(Some(model), None),
        "baseline_agreement_first_hour": agreement(baseline, Some(0)),
        "baseline_agreement_last_hour": agreement(baseline, None),
        "episodes": super::stream::episodes().iter().map(|e| json!({
            "name": e.name,
            "starts_after_minutes": e.starts_after.num_minutes(),
            "minutes": e.lasts.num_minutes(),
        })).collect::<Vec<_>>(),
        "model": side(model),
        "baseline": baseline.map_or(Value::Null, side),
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "   -".to_string(), |v| format!("{:>5.1}%", v * 100.0))
}

/// The report as an operator reads it in a terminal.
pub fn report_text(report: &Value, model: &RunResult, baseline: Option<&RunResult>) -> String {
    let mut out = String::new();
    let f = |k: &str| report.get(k).and_then(Value::as_f64);
    out.push_str(&format!(
        "signalbox headless run: seed {}, {} simulated hours\n",
        report["seed"], report["duration_hours"]
    ));
    out.push_str(&format!(
        "  model:    {:.1}s wall, journal {}\n",
        model.elapsed_seconds,
        model.data_dir.display(),
    ));
    match baseline {
        Some(b) => out.push_str(&format!(
            "  baseline: {:.1}s wall, journal {}\n\n",
            b.elapsed_seconds,
            b.data_dir.display()
        )),
        None => out.push_str("  baseline: not run (--no-baseline)\n\n"),
    }
    out.push_str(&format!(
        "outcomes within SLA, whole run: model {}  rules-only {}\n",
        pct(f("within_sla")),
        pct(f("baseline_within_sla"))
    ));
    out.push_str(&format!(
        "outcomes within SLA, last 2h: model {}  rules-only {}\n",
        pct(f("within_sla_last_2h")),
        pct(f("baseline_within_sla_last_2h"))
    ));
    out.push_str(&format!(
        "agreement with ground truth: first hour {}  last hour {}\n\n",
        pct(f("agreement_first_hour")),
        pct(f("agreement_last_hour"))
    ));
    out.push_str(
        "hour  signals  auto   review override agree-op truth  in-SLA | base in-SLA  p50m  p95m\n",
    );
    for (i, h) in model.metrics.hours.iter().enumerate() {
        let s = h.summary();
        let b = baseline
            .and_then(|b| b.metrics.hours.get(i))
            .map(Tally::summary);
        out.push_str(&format!(
            "{:>4} {:>8} {} {} {}  {}  {} {} | {}  {:>5} {:>5}\n",
            i,
            s.signals,
            pct(s.automation_rate),
            pct(s.review_rate),
            pct(s.override_rate),
            pct(s.agreement_with_operators),
            pct(s.agreement_with_truth),
            pct(s.within_sla),
            pct(b.and_then(|b| b.within_sla)),
            s.cycle_p50_minutes
                .map_or("-".into(), |v| format!("{v:.0}")),
            s.cycle_p95_minutes
                .map_or("-".into(), |v| format!("{v:.0}")),
        ));
    }
    let t = model.metrics.total.summary();
    out.push_str(&format!(
        "\nwhole run: {} signals ({} duplicates), {} decisions, automation {}, review {}, overrides {}, \
         safe defaults {}, escalations {}, outcomes {} ({} within SLA)\n",
        t.signals,
        t.duplicates,
        t.decisions,
        pct(t.automation_rate),
        pct(t.review_rate),
        pct(t.override_rate),
        t.safe_defaults,
        t.escalations,
        t.outcomes,
        pct(t.within_sla)
    ));
    out.push_str("team utilisation:");
    for (team, u) in &t.utilisation {
        out.push_str(&format!(" {team} {}", pct(Some(*u))));
    }
    out.push('\n');
    let switches = report["apprentice"]["switches"].as_array();
    if let Some(switches) = switches.filter(|s| !s.is_empty()) {
        out.push_str(&format!("apprentice: {} switches\n", switches.len()));
        for s in switches {
            let time = s["time"].as_str().unwrap_or_default();
            let text = s["text"].as_str().unwrap_or_default();
            out.push_str(&format!("  {time}  {text}\n"));
        }
    }
    out
}
