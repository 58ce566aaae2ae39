//! `signalbox bench`: end-to-end signals decided and journaled per second,
//! decision latency, and in the same run the raw rate of batched SQLite
//! inserts of the very rows the engine wrote, on the same disk. With
//! `--load URL`, a load sent to a running server instead (`load`).

pub mod load;

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::engine::{Engine, EngineError};
use crate::intake::service::IN_FLIGHT;
use crate::journal::{self, JournalError};
use crate::signal::Signal;
use crate::sim::{Simulator, default_start, stream, world};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// How many signals each timed round pushes through the engine.
    #[arg(long, default_value_t = 100_000)]
    pub signals: usize,
    /// Timed rounds of `signals` each, one after the other on the same
    /// engine; the figure is the median round (this machine's rate varies
    /// by 10-15% from one run to the next).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Signals per journal batch (one flush each).
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Where to put the journals (default: a fresh temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Simulated hours of Northwind traffic, outcomes and operator answers
    /// that train the engine before the timed run (the mix is one simulated
    /// day, so 24 shows the model every hour of it once).
    #[arg(long, default_value_t = 24)]
    pub warm_up_hours: i64,
    /// Nobody answers review items during the timed run (the simulated
    /// operators go home after the warm-up): every item escalates and takes
    /// its safe default, the heaviest path a decision can take.
    #[arg(long)]
    pub unanswered: bool,
    /// Benchmark the console's rendering instead of the engine.
    #[arg(long)]
    pub render: bool,
    /// Send a load of distinct alerts to a running server at this base URL
    /// instead, and report the waits for 202 and from 202 to decision.
    #[arg(long)]
    pub load: Option<String>,
    /// With --load: requests per second, open loop; 0 sends as fast as
    /// answers come (a burst).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// With --load: for how long.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// With --load: connections (closed loop), or the in-flight cap's unit.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// With --load: a bearer token allowed to ingest and read.
    #[arg(long)]
    pub token: Option<String>,
    /// With --load: every other signal resolves the alert that fired this
    /// many alerts before, as Alertmanager sends them.
    #[arg(long)]
    pub resolve_after: Option<u64>,
    /// Shadow mode's cost: each round runs once without and once with this
    /// candidate policy file deciding beside the live one.
    #[arg(long)]
    pub shadow: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("bench: {0}")]
    Setup(String),
}

/// The simulator's seed: the same traffic every run.
const SEED: u64 = 7;

/// What the main thread spent its wall time on.
#[derive(Default)]
struct Spent {
    tick: std::time::Duration,
    simulator: std::time::Duration,
    flush: std::time::Duration,
    wait: std::time::Duration,
}

/// One timed round's figures.
struct Round {
    signals: usize,
    elapsed: f64,
    rows: u64,
    commits: u64,
}

impl Round {
    fn signals_per_s(&self) -> f64 {
        self.signals as f64 / self.elapsed.max(1e-9)
    }
}

/// Drives the Northwind simulator through the engine, as `run --headless`
/// does (its stream, the outcomes and shipments the world sends back, its
/// operators answering review items), but at full speed and with the journal
/// flushed every `batch` signals, up to as many batches being written as the
/// HTTP intake keeps (`IN_FLIGHT`) while the engine works on the next.
struct Drive {
    sim: Simulator,
    engine: Engine,
    now: DateTime<Utc>,
    batch: usize,
    unflushed: usize,
    in_flight: std::collections::VecDeque<journal::Commit>,
}

impl Drive {
    /// One step of simulated time: the signals due go in (each parsed from
    /// its JSON text, as they arrive over HTTP, and timed into `latencies`),
    /// timers run, the simulator answers. Returns how many signals went in.
    fn step(&mut self, latencies: &mut Vec<u32>, spent: &mut Spent) -> Result<usize, BenchError> {
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
            self.engine.ingest(signal, now);
            latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        }
        let t = Instant::now();
        self.engine.tick(now);
        let t_sim = Instant::now();
        self.sim.respond(&mut self.engine, now);
        spent.tick += t_sim - t;
        spent.simulator += t_sim.elapsed();
        self.unflushed += texts.len();
        if self.unflushed >= self.batch {
            self.flush(spent)?;
        }
        Ok(texts.len())
    }

    fn flush(&mut self, spent: &mut Spent) -> Result<(), BenchError> {
        let t = Instant::now();
        let commit = self.engine.flush()?;
        let t_wait = Instant::now();
        self.in_flight.push_back(commit);
        if self.in_flight.len() > IN_FLIGHT
            && let Some(oldest) = self.in_flight.pop_front()
        {
            oldest.wait()?;
        }
        spent.flush += t_wait - t;
        spent.wait += t_wait.elapsed();
        self.unflushed = 0;
        Ok(())
    }

    /// Times `signals` more signals through the engine, all of them
    /// durable at the end, and prints what the round measured.
    // Over 80 lines: one measured round, start to finish, so its timing reads in one place.
    fn round(
        &mut self,
        number: usize,
        signals: usize,
        stream_end: DateTime<Utc>,
        latencies: &mut Vec<u32>,
    ) -> Result<Round, BenchError> {
        let stats_before = self.engine.journal_stats();
        let tally_before = self.engine.metrics.total.clone();
        let answers_before = self.sim.stats.answers;
        let hour_before = self.now;
        let latencies_before = latencies.len();
        let mut spent = Spent::default();
        let cpu_before = thread_cpu();
        let began = Instant::now();
        let mut fed = 0;
        while fed < signals {
            let n = self.step(latencies, &mut spent)?;
            fed += n;
            if n == 0 && self.now > stream_end {
                break;
            }
        }
        self.flush(&mut spent)?;
        for commit in self.in_flight.drain(..) {
            commit.wait()?;
        }
        let elapsed = began.elapsed().as_secs_f64();
        let cpu_after = thread_cpu();
        let stats = self.engine.journal_stats();
        let rows = stats.records - stats_before.records;
        let commits = (stats.commits - stats_before.commits).max(1);
        let t = &self.engine.metrics.total;
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
        let ingest_time: u64 = latencies[latencies_before..]
            .iter()
            .map(|&l| u64::from(l))
            .sum();
        println!(
            "bench: round {number}: main thread: ingest {:.2} s, tick {:.2} s, flush {:.2} s, waiting for the journal {:.2} s, simulator and its operators {:.2} s; journal writer busy {:.2} s",
            ingest_time as f64 / 1e6,
            spent.tick.as_secs_f64(),
            spent.flush.as_secs_f64(),
            spent.wait.as_secs_f64(),
            spent.simulator.as_secs_f64(),
            (stats.busy_micros - stats_before.busy_micros) as f64 / 1e6
        );
        // CPU time by thread (not wall time: the writer's busy time above
        // includes waiting for fsync), per signal.
        if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
            let per_signal = |name: &str| {
                let used = after.get(name).copied().unwrap_or(0.0)
                    - before.get(name).copied().unwrap_or(0.0);
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
        println!(
            "bench: round {number}: memory: RSS {} MB; in memory: {} open review items, {} active flows, {} finished flows, {} decided review items, {} decisions awaiting an outcome",
            rss_mb().map_or("?".into(), |m| format!("{m:.0}")),
            self.engine.reviews.open_count(),
            self.engine.flows.active_count(),
            self.engine.flows.finished_count(),
            self.engine.reviews.decided_count(),
            self.engine.awaiting_count(),
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
        Ok(round)
    }
}

// Over 80 lines: the benchmark's steps in the order it runs them.

pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    if let Some(base) = &args.load {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let plan = load::Plan {
            base: base.trim_end_matches('/'),
            token: args.token.as_deref(),
            rate: args.rate,
            seconds: args.seconds,
            connections: args.connections,
            prefix: format!("load-{stamp:x}"),
            resolve_after: args.resolve_after,
        };
        let figures = load::run(&plan)?;
        print!("{}", load::report(&plan, &figures));
        return Ok(());
    }
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempdir()?;
            tmp.clone()
        }
    };
    if args.render {
        let result = crate::console::render_bench::run(&dir.join("render"))
            .map_err(|e| BenchError::Setup(format!("render: {e:#}")));
        if args.data_dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return result;
    }
    let engine_dir = dir.join("engine");
    let raw_dir = dir.join("raw");
    for d in [&engine_dir, &raw_dir] {
        if d.join(journal::FILE_NAME).exists() {
            return Err(BenchError::Setup(format!(
                "{} already holds a journal; use a fresh --data-dir",
                d.display()
            )));
        }
    }
    let start = default_start();
    let warm_up = Duration::hours(args.warm_up_hours.max(0));
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let world = world::northwind(&mut rng, start);
    // A stream long enough for the warm-up and then `signals` (the world's
    // replies come on top of it).
    let per_day = stream::generate(SEED, start, Duration::hours(24), &world).len();
    let rounds = args.rounds.max(1);
    let passes = if args.shadow.is_some() { 2 } else { 1 };
    let days = (args.signals * rounds * passes).div_ceil(per_day.max(1)) as i64 + 1;
    let span = warm_up + Duration::hours(24 * days);
    let sim = Simulator::new(SEED, start, span, &world);
    let engine = Engine::open(crate::sim::engine_config(&engine_dir, SEED), world, start)?;
    let mut drive = Drive {
        sim,
        engine,
        now: start,
        batch: args.batch.max(1),
        unflushed: 0,
        in_flight: Default::default(),
    };
    println!(
        "bench: {} signals of Northwind traffic (orders, tickets, approvals, alerts, supplier delays, health, shipments, outcomes, unrecognised), {}, journal flushed every {} signals",
        args.signals,
        if args.unanswered {
            "nobody answering review items"
        } else {
            "its simulated operators answering review items"
        },
        args.batch
    );
    // Warm the engine the way it runs in production: simulated traffic,
    // outcomes and operator answers train the model before the timed run.
    let began = Instant::now();
    let (mut discard, mut spent) = (Vec::new(), Spent::default());
    while drive.now < start + warm_up {
        drive.step(&mut discard, &mut spent)?;
        discard.clear();
    }
    drive.flush(&mut spent)?;
    println!(
        "bench: warm-up: {} simulated hours in {:.1} s, model {}",
        warm_up.num_hours(),
        began.elapsed().as_secs_f64(),
        drive.engine.model_version()
    );

    if args.unanswered {
        drive.sim.set_colleagues(0);
    }
    let shadow = match &args.shadow {
        Some(path) => Some(
            crate::decide::policy::PolicySet::load(path, drive.engine.playbook())
                .map_err(EngineError::from)?,
        ),
        None => None,
    };
    let mut latencies: Vec<u32> = Vec::with_capacity(args.signals * rounds + args.batch);
    let (mut measured, mut shadowed) = (Vec::with_capacity(rounds), Vec::new());
    for r in 1..=rounds {
        let round = drive.round(r, args.signals, start + span, &mut latencies)?;
        measured.push(round);
        if let Some(candidate) = &shadow {
            // The same engine, its shadow on for one round: the baseline is
            // the round before, in the same run.
            drive
                .engine
                .set_shadow(Some(std::sync::Arc::clone(candidate)));
            let mut unused = Vec::new();
            shadowed.push(drive.round(r, args.signals, start + span, &mut unused)?);
            drive.engine.set_shadow(None);
        }
    }
    drive.engine.close()?;
    latencies.sort_unstable();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    let rates: Vec<String> = measured
        .iter()
        .map(|m| format!("{:.0}", m.signals_per_s()))
        .collect();
    measured.sort_by(|a, b| a.signals_per_s().total_cmp(&b.signals_per_s()));
    let Some(median) = measured.get(measured.len() / 2) else {
        return Err(BenchError::Setup("no round ran".into()));
    };
    let signals_per_s = median.signals_per_s();
    if !shadowed.is_empty() {
        let rates: Vec<String> = shadowed
            .iter()
            .map(|m| format!("{:.0}", m.signals_per_s()))
            .collect();
        shadowed.sort_by(|a, b| a.signals_per_s().total_cmp(&b.signals_per_s()));
        let with = shadowed[shadowed.len() / 2].signals_per_s();
        println!(
            "bench: shadow: rounds with the candidate deciding beside: {} signals/s; median {with:.0} against {signals_per_s:.0} without: cost {:.1} % (target under 30 %)",
            rates.join(", "),
            100.0 * (1.0 - with / signals_per_s.max(1.0))
        );
    }
    let engine_rows_per_s = median.rows as f64 / median.elapsed;
    println!(
        "bench: rounds: {} signals/s; median {signals_per_s:.0}",
        rates.join(", ")
    );
    println!(
        "bench: decision latency over all rounds (parse + context + policy + model + flow, excluding commit wait): p50 {} us, p99 {} us, max {} us",
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(0)
    );

    let per_commit = (median.rows / median.commits.max(1)).max(1) as usize;
    let raw_rows_per_s = raw_inserts(&engine_dir, &raw_dir, per_commit)?;
    let ratio = engine_rows_per_s / raw_rows_per_s.max(1.0);
    println!(
        "bench: baseline: raw batched SQLite inserts of the same rows, same batch size, same disk: {raw_rows_per_s:.0} rows/s"
    );
    println!("bench: targets: >= 20000 signals/s, p99 <= 1000 us, ratio >= 0.25");
    println!(
        "bench: {signals_per_s:.0} signals/s, p99 {} us, raw sqlite {raw_rows_per_s:.0} rows/s, ratio {ratio:.2}",
        pct(0.99)
    );
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// The key `thread_cpu` gives the bench's own thread, whose /proc name is
/// the program's file name.
const MAIN_THREAD: &str = "main";

/// CPU seconds (user + system) used so far by each of this process's
/// threads, summed by thread name (`MAIN_THREAD` for the main one); None
/// where /proc is not there.
/// This process's resident memory now, in MB (Linux).
pub fn rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn thread_cpu() -> Option<std::collections::HashMap<String, f64>> {
    // /proc reports these in USER_HZ ticks, 100 a second on Linux.
    const TICKS: f64 = 100.0;
    let mut out: std::collections::HashMap<String, f64> = Default::default();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue;
        };
        // Fields after the command name (which may hold spaces): state is
        // the first, utime the 12th, stime the 13th.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let main = task.file_name().to_str() == Some(&std::process::id().to_string());
        let name = if main { MAIN_THREAD } else { name.trim() };
        *out.entry(name.to_string()).or_default() += (ticks(11) + ticks(12)) / TICKS;
    }
    Some(out)
}

fn tempdir() -> Result<PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!("signalbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

/// Reads every row the engine wrote and inserts the same rows into a fresh
/// database with the same schema and pragmas, `per_commit` rows per
/// transaction. Returns rows per second.
fn raw_inserts(
    from: &std::path::Path,
    to: &std::path::Path,
    per_commit: usize,
) -> Result<f64, BenchError> {
    let sql = |e: rusqlite::Error| BenchError::Setup(format!("raw sqlite: {e}"));
    let source = journal::connect(&from.join(journal::FILE_NAME))?;
    // Every table as (insert statement, rows of text/integer values).
    let tables: [(&str, &str, &str); 9] = [
        (
            "signals",
            "id, source, type, subject, time, body",
            "?1, ?2, ?3, ?4, ?5, ?6",
        ),
        (
            "audit",
            "kind, ref_id, decision_id, signal_id, signal_source, time, body, prev_hash, hash, parent",
            "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10",
        ),
        (
            "flows",
            "id, state, decision_id, body, events",
            "?1, ?2, ?3, ?4, ?5",
        ),
        ("flow_events", "flow_id, time, body", "?1, ?2, ?3"),
        ("flow_steps", "flow_id, idx, body", "?1, ?2, ?3"),
        ("flow_log", "flow_id, events", "?1, ?2"),
        ("feedback", "decision_id, body", "?1, ?2"),
        ("entities", "key, body", "?1, ?2"),
        ("views", "version, kind, time, body", "?1, ?2, ?3, ?4"),
    ];
    let mut rows: Vec<(usize, Vec<rusqlite::types::Value>)> = Vec::new();
    for (i, (table, cols, _)) in tables.iter().enumerate() {
        let mut stmt = source
            .prepare(&format!("SELECT {cols} FROM {table}"))
            .map_err(sql)?;
        let n = cols.split(',').count();
        let mut q = stmt.query([]).map_err(sql)?;
        while let Some(r) = q.next().map_err(sql)? {
            let mut values = Vec::with_capacity(n);
            for c in 0..n {
                values.push(r.get::<_, rusqlite::types::Value>(c).map_err(sql)?);
            }
            rows.push((i, values));
        }
    }
    std::fs::create_dir_all(to).map_err(|e| BenchError::Setup(format!("{}: {e}", to.display())))?;
    // Same schema (the journal creates it), then a plain connection to time.
    drop(journal::Journal::open(to)?);
    let mut conn = journal::connect(&to.join(journal::FILE_NAME))?;
    // Flows and entities are upserts in the engine; plain inserts of each
    // version would collide on their keys, so the raw side uses the same
    // INSERT OR REPLACE.
    let statements: Vec<String> = tables
        .iter()
        .map(|(t, cols, vals)| format!("INSERT OR REPLACE INTO {t} ({cols}) VALUES ({vals})"))
        .collect();
    let began = Instant::now();
    for chunk in rows.chunks(per_commit.max(1)) {
        let tx = conn.transaction().map_err(sql)?;
        for (table, values) in chunk {
            let mut stmt = tx.prepare_cached(&statements[*table]).map_err(sql)?;
            stmt.execute(rusqlite::params_from_iter(values.iter()))
                .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
    }
    let elapsed = began.elapsed().as_secs_f64();
    Ok(rows.len() as f64 / elapsed.max(1e-9))
}
