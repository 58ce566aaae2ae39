//! `signalbox bench`: end-to-end signals decided and journaled per second,
//! decision latency, and in the same run the raw rate of batched SQLite
//! inserts of the very rows the engine wrote, on the same disk. With
//! `--load URL`, a load sent to a running server instead (`load`).

mod advisor;
mod drive;
pub mod load;

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::engine::{Engine, EngineError};
use crate::journal::{self, JournalError};
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
    /// With --load: every Nth signal is a critical alert on a service of
    /// its own (`service/api-N`)
    /// (which pages on the starter deployment) and the others are tickets
    /// (which do not): the paging benchmark's mix.
    #[arg(long)]
    pub pages_every: Option<u64>,
    /// With --load: where to write, as JSON lines, when each paging signal
    /// left (`{"id", "sent_ms"}`, milliseconds since the epoch).
    #[arg(long)]
    pub sent_log: Option<PathBuf>,
    /// Shadow mode's cost: each round runs once without and once with this
    /// candidate policy file deciding beside the live one.
    #[arg(long)]
    pub shadow: Option<PathBuf>,
    /// Benchmark the advisor at this OpenAI-compatible endpoint instead:
    /// its latency, how many of its answers are valid, and, for the
    /// simulator's types taken out of the playbook, how often its proposal
    /// is the hidden truth against how often the playbook's default is.
    #[arg(long)]
    pub advisor: Option<String>,
    /// With --advisor: the model to ask for.
    #[arg(long, default_value = "smollm2")]
    pub advisor_model: String,
    /// With --advisor: decisions asked about per type.
    #[arg(long, default_value_t = 20)]
    pub per_type: usize,
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

/// Runs the benchmark `args` ask for: a load on a server, the console's
/// drawing, or the engine against raw SQLite.
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    if let Some(base) = &args.load {
        return run_load(args, base);
    }
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempdir()?;
            tmp.clone()
        }
    };
    let result = if let Some(url) = &args.advisor {
        advisor::run(url, &args.advisor_model, args.per_type, &dir)
    } else if args.render {
        crate::console::render_bench::run(&dir.join("render"))
            .map_err(|e| BenchError::Setup(format!("render: {e:#}")))
    } else {
        run_engine(args, &dir)
    };
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// A load of distinct alerts sent to the server at `base`.
fn run_load(args: &BenchArgs, base: &str) -> Result<(), BenchError> {
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
        pages_every: args.pages_every,
        sent_log: args.sent_log.clone(),
    };
    let figures = load::run(&plan)?;
    print!("{}", load::report(&plan, &figures));
    Ok(())
}

/// The engine's rounds in `dir`, then raw SQLite inserts of the same rows.
fn run_engine(args: &BenchArgs, dir: &std::path::Path) -> Result<(), BenchError> {
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
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(SEED), start);
    // A stream long enough for the warm-up and then `signals` (the world's
    // replies come on top of it).
    let per_day = stream::generate(SEED, start, Duration::hours(24), &world).len();
    let rounds = args.rounds.max(1);
    let passes = if args.shadow.is_some() { 2 } else { 1 };
    let days = (args.signals * rounds * passes).div_ceil(per_day.max(1)) as i64 + 1;
    let span = warm_up + Duration::hours(24 * days);
    let sim = Simulator::new(SEED, start, span, &world);
    let engine = Engine::open(crate::sim::engine_config(&engine_dir, SEED), world, start)?;
    let capacity = args.signals * rounds + args.batch;
    let mut drive = drive::Drive::new(sim, start, args.batch, capacity);
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
    let engine = drive.warm_up(engine, start + warm_up)?;
    println!(
        "bench: warm-up: {} simulated hours in {:.1} s, model {}",
        warm_up.num_hours(),
        began.elapsed().as_secs_f64(),
        engine.model_version()
    );
    if args.unanswered {
        drive.sim.set_colleagues(0);
    }
    let (engine, measured, shadowed) = timed_rounds(args, &mut drive, engine, start + span)?;
    engine.close()?;
    report(
        &mut drive.latencies,
        measured,
        shadowed,
        &engine_dir,
        &raw_dir,
    )
}

/// The timed rounds, each followed by one with the shadow candidate on
/// when there is one: the rounds without it, and those with it.
fn timed_rounds(
    args: &BenchArgs,
    drive: &mut drive::Drive,
    mut engine: Engine,
    stream_end: DateTime<Utc>,
) -> Result<(Engine, Vec<drive::Round>, Vec<drive::Round>), BenchError> {
    let shadow = match &args.shadow {
        Some(path) => Some(
            crate::decide::policy::PolicySet::load(path, engine.playbook())
                .map_err(EngineError::from)?,
        ),
        None => None,
    };
    let rounds = args.rounds.max(1);
    let (mut measured, mut shadowed) = (Vec::with_capacity(rounds), Vec::new());
    for r in 1..=rounds {
        let (e, round) = drive.round(engine, r, args.signals, stream_end, true)?;
        engine = e;
        measured.push(round);
        if let Some(candidate) = &shadow {
            // The same engine, its shadow on for one round: the baseline is
            // the round before, in the same run.
            engine.set_shadow(Some(std::sync::Arc::clone(candidate)));
            let (e, round) = drive.round(engine, r, args.signals, stream_end, false)?;
            engine = e;
            shadowed.push(round);
            engine.set_shadow(None);
        }
    }
    Ok((engine, measured, shadowed))
}

/// The figures: rates by round, the shadow's cost, latency percentiles,
/// and the ratio to raw SQLite inserts of the same rows.
fn report(
    latencies: &mut [u32],
    mut measured: Vec<drive::Round>,
    mut shadowed: Vec<drive::Round>,
    engine_dir: &std::path::Path,
    raw_dir: &std::path::Path,
) -> Result<(), BenchError> {
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
    let raw_rows_per_s = raw_inserts(engine_dir, raw_dir, per_commit)?;
    let ratio = engine_rows_per_s / raw_rows_per_s.max(1.0);
    println!(
        "bench: baseline: raw batched SQLite inserts of the same rows, same batch size, same disk: {raw_rows_per_s:.0} rows/s"
    );
    println!("bench: targets: >= 20000 signals/s, p99 <= 1000 us, ratio >= 0.25");
    println!(
        "bench: {signals_per_s:.0} signals/s, p99 {} us, raw sqlite {raw_rows_per_s:.0} rows/s, ratio {ratio:.2}",
        pct(0.99)
    );
    Ok(())
}

/// The key `thread_cpu` gives the bench's own thread, whose /proc name is
/// the program's file name.
pub(crate) const MAIN_THREAD: &str = "main";

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

pub(crate) fn thread_cpu() -> Option<std::collections::HashMap<String, f64>> {
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
