//! The benchmark's drive: the Northwind simulator beside the engine's
//! runner, as `run --headless` runs it (its stream, the outcomes and
//! shipments the world sends back, its operators answering review items),
//! but at full speed, each signal parsed from its JSON text and timed, a
//! turn (one journal batch) every `batch` signals, and as many turns in
//! flight as the HTTP intake keeps (`IN_FLIGHT`).

use std::ops::ControlFlow;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{BenchError, MAIN_THREAD, rss_mb, thread_cpu};
use crate::engine::Engine;
use crate::engine::host::{Handle, Host};
use crate::engine::runner::{Beside, IN_FLIGHT, Pace, Runner, Spent as RunnerSpent};
use crate::signal::Signal;
use crate::sim::Simulator;

/// What the drive spent the main thread's time on, besides deciding.
#[derive(Default)]
struct Spent {
    tick: std::time::Duration,
    simulator: std::time::Duration,
}

/// One timed round's figures.
pub struct Round {
    pub signals: usize,
    pub elapsed: f64,
    pub rows: u64,
    pub commits: u64,
}

impl Round {
    pub fn signals_per_s(&self) -> f64 {
        self.signals as f64 / self.elapsed.max(1e-9)
    }
}

/// How far a run of the drive goes.
#[derive(Clone, Copy)]
enum Goal {
    /// Until simulated time reaches this.
    Until(DateTime<Utc>),
    /// This many more signals, unless the stream ends first.
    Signals {
        want: usize,
        stream_end: DateTime<Utc>,
    },
}

/// The simulator and what the drive measures.
pub struct Drive {
    pub sim: Simulator,
    pub now: DateTime<Utc>,
    /// Signals per journal batch.
    batch: usize,
    goal: Goal,
    /// Signals fed since the goal was set.
    fed: usize,
    /// Each signal's time to be decided, in µs, unless discarded.
    pub latencies: Vec<u32>,
    keep_latencies: bool,
    spent: Spent,
    /// The goal was reached in the last turn.
    done: bool,
    failed: Option<BenchError>,
}

impl Drive {
    pub fn new(sim: Simulator, start: DateTime<Utc>, batch: usize, capacity: usize) -> Drive {
        Drive {
            sim,
            now: start,
            batch: batch.max(1),
            goal: Goal::Until(start),
            fed: 0,
            latencies: Vec::with_capacity(capacity),
            keep_latencies: true,
            spent: Spent::default(),
            done: false,
            failed: None,
        }
    }

    /// One step of simulated time: the signals due go in (each parsed from
    /// its JSON text, as they arrive over HTTP, and timed), timers run, the
    /// simulator answers. Returns how many signals went in.
    fn step(&mut self, engine: &mut Engine) -> Result<usize, BenchError> {
        self.now += crate::sim::run::STEP;
        let now = self.now;
        let texts: Vec<String> = self
            .sim
            .due(now)
            .iter()
            .map(|s| s.to_cloudevent_json())
            .collect();
        for text in &texts {
            let t = Instant::now();
            let signal =
                Signal::from_json(text, now).map_err(|e| BenchError::Setup(e.to_string()))?;
            engine.ingest(signal, now);
            if self.keep_latencies {
                self.latencies
                    .push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
        }
        let t = Instant::now();
        engine.tick(now);
        let t_sim = Instant::now();
        self.sim.respond(engine, now);
        self.spent.tick += t_sim - t;
        self.spent.simulator += t_sim.elapsed();
        Ok(texts.len())
    }

    /// Whether the goal is reached.
    fn reached(&self, last_step: usize) -> bool {
        match self.goal {
            Goal::Until(end) => self.now >= end,
            Goal::Signals { want, stream_end } => {
                self.fed >= want || (last_step == 0 && self.now > stream_end)
            }
        }
    }

    /// Runs the engine (every turn durable at the end) until `goal`.
    fn run(&mut self, engine: Engine, goal: Goal) -> Result<(Engine, RunnerSpent), BenchError> {
        self.goal = goal;
        self.fed = 0;
        self.done = false;
        let mut runner = Runner::new(Host::new(engine, None), Pace::Max { start: self.now });
        runner.in_flight = IN_FLIGHT;
        let (handle, commands) = Handle::channel(std::path::PathBuf::new());
        let ran = runner.run(&commands, &handle, self);
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        ran.result?;
        Ok((ran.engine, ran.spent))
    }

    /// Traffic until `until`, untimed: the model learns as in production.
    pub fn warm_up(&mut self, engine: Engine, until: DateTime<Utc>) -> Result<Engine, BenchError> {
        self.keep_latencies = false;
        let (engine, _) = self.run(engine, Goal::Until(until))?;
        self.keep_latencies = true;
        Ok(engine)
    }

    /// Times `signals` more signals through the engine, all of them
    /// durable at the end, and prints what the round measured; latencies
    /// are kept only with `timed`.
    pub fn round(
        &mut self,
        engine: Engine,
        number: usize,
        signals: usize,
        stream_end: DateTime<Utc>,
        timed: bool,
    ) -> Result<(Engine, Round), BenchError> {
        let stats_before = engine.journal_stats();
        let tally_before = engine.metrics.total.clone();
        let answers_before = self.sim.stats.answers;
        let hour_before = self.now;
        let latencies_before = self.latencies.len();
        self.spent = Spent::default();
        self.keep_latencies = timed;
        let cpu_before = thread_cpu();
        let began = Instant::now();
        let goal = Goal::Signals {
            want: signals,
            stream_end,
        };
        let (engine, runner) = self.run(engine, goal)?;
        let elapsed = began.elapsed().as_secs_f64();
        let cpu_after = thread_cpu();
        let stats = engine.journal_stats();
        let rows = stats.records - stats_before.records;
        let commits = (stats.commits - stats_before.commits).max(1);
        let t = &engine.metrics.total;
        let decisions = (t.decisions - tally_before.decisions).max(1) as f64;
        let share = |now: u64, before: u64| 100.0 * (now - before) as f64 / decisions;
        println!(
            "bench: round {number}: {:.1} simulated hours; decisions: {:.0} ({:.0}% auto, {:.0}% review, {:.0}% forced, {:.0}% record); review items answered by the simulated operators: {}, settled by escalation and safe default: {}",
            (self.now - hour_before).num_minutes() as f64 / 60.0,
            decisions,
            share(t.auto, tally_before.auto),
            share(t.review, tally_before.review),
            share(t.forced, tally_before.forced),
            share(t.record, tally_before.record),
            self.sim.stats.answers - answers_before,
            t.safe_defaults - tally_before.safe_defaults
        );
        let ingest_time: u64 = self.latencies[latencies_before..]
            .iter()
            .map(|&l| u64::from(l))
            .sum();
        println!(
            "bench: round {number}: main thread: ingest {:.2} s, tick {:.2} s, flush {:.2} s, waiting for the journal {:.2} s, simulator and its operators {:.2} s; journal writer busy {:.2} s",
            ingest_time as f64 / 1e6,
            self.spent.tick.as_secs_f64(),
            runner.flush.as_secs_f64(),
            runner.wait.as_secs_f64(),
            self.spent.simulator.as_secs_f64(),
            (stats.busy_micros - stats_before.busy_micros) as f64 / 1e6
        );
        let fed = self.fed;
        print_cpu(number, fed, cpu_before, cpu_after);
        println!(
            "bench: round {number}: memory: RSS {} MB; in memory: {} open review items, {} active flows, {} finished flows, {} decided review items, {} decisions awaiting an outcome",
            rss_mb().map_or("?".into(), |m| format!("{m:.0}")),
            engine.reviews.open_count(),
            engine.flows.active_count(),
            engine.flows.finished_count(),
            engine.reviews.decided_count(),
            engine.awaiting_count(),
        );
        let round = Round {
            signals: fed,
            elapsed,
            rows,
            commits,
        };
        println!(
            "bench: round {number}: {fed} signals in {elapsed:.2} s = {:.0} signals/s; {rows} journal rows in {commits} commits = {:.0} rows/s",
            round.signals_per_s(),
            rows as f64 / elapsed.max(1e-9)
        );
        Ok((engine, round))
    }
}

/// CPU time by thread (not wall time: the writer's busy time includes
/// waiting for fsync), per signal.
fn print_cpu(
    number: usize,
    fed: usize,
    before: Option<std::collections::HashMap<String, f64>>,
    after: Option<std::collections::HashMap<String, f64>>,
) {
    let (Some(before), Some(after)) = (before, after) else {
        return;
    };
    let per_signal = |name: &str| {
        let used =
            after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0);
        used / fed.max(1) as f64 * 1e6
    };
    println!(
        "bench: round {number}: CPU per signal: main thread (engine and simulator) {:.0} us, journal writer {:.0} us, journal checkpoints {:.0} us (from /proc, 10 ms ticks)",
        per_signal(MAIN_THREAD),
        per_signal("journal-writer"),
        // Thread names are cut to 15 bytes in /proc.
        per_signal("journal-checkpo")
    );
}

impl Beside for Drive {
    /// Steps until a batch of signals went in or the goal is reached.
    fn advance(&mut self, engine: &mut Engine, _to: DateTime<Utc>) -> DateTime<Utc> {
        let mut this_turn = 0;
        loop {
            let n = match self.step(engine) {
                Ok(n) => n,
                Err(e) => {
                    self.failed = Some(e);
                    return self.now;
                }
            };
            self.fed += n;
            this_turn += n;
            self.done = self.reached(n);
            if this_turn >= self.batch || self.done {
                return self.now;
            }
        }
    }

    fn after_turn(&mut self, _engine: &mut Engine, _now: DateTime<Utc>) -> ControlFlow<()> {
        match self.failed.is_some() || self.done {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    }
}
