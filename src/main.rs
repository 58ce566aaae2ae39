//! The `signalbox` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use signalbox::decide::explain;
use signalbox::journal::read;
use signalbox::sim::run::{self, RunOptions};

#[derive(Parser)]
#[command(
    name = "signalbox",
    version,
    about = "Operations console over an embedded, learning process orchestrator"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Northwind simulator through the engine and report on it.
    Run(RunArgs),
    /// Explain one decision from the journal.
    Explain {
        /// Decision id, e.g. D0000042.
        id: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Open a journal (resuming what was in flight, deciding what was
    /// acknowledged but undecided) and print its counts.
    Check {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Measure end-to-end throughput and decision latency against raw SQLite.
    Bench(signalbox::bench::BenchArgs),
}

#[derive(Args, Clone)]
struct RunArgs {
    /// No terminal UI: run to the end and print a report.
    #[arg(long)]
    headless: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated span, e.g. 8h or 90m.
    #[arg(long, default_value = "8h", value_parser = parse_span)]
    duration: chrono::Duration,
    /// Simulated seconds per real second, or `max`.
    #[arg(long, default_value = "max", value_parser = parse_speed)]
    speed: Speed,
    /// Where the journals go (the model run here, the baseline in `baseline/`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    report: ReportFormat,
    /// A policy file to use instead of the shipped default.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Skip the rules-only baseline run.
    #[arg(long)]
    no_baseline: bool,
}

#[derive(Clone, Copy, Debug)]
enum Speed {
    Max,
    Factor(f64),
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum ReportFormat {
    Text,
    Json,
}

fn parse_span(text: &str) -> Result<chrono::Duration, String> {
    signalbox::decide::policy::parse_duration(text)
}

fn parse_speed(text: &str) -> Result<Speed, String> {
    if text == "max" {
        return Ok(Speed::Max);
    }
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(Speed::Factor(v)),
        _ => Err(format!(
            "`{text}` is not `max` or a positive number of simulated seconds per second"
        )),
    }
}

/// The platform data directory, where journals live unless told otherwise.
fn default_data_dir() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("dev", "signalbox", "signalbox")
        .context("no home directory to put the data directory in; pass --data-dir")?;
    Ok(dirs.data_dir().to_path_buf())
}

fn headless(args: &RunArgs) -> Result<()> {
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            default_data_dir()?
                .join("runs")
                .join(format!("seed-{}-{stamp}", args.seed))
        }
    };
    let speed = match args.speed {
        Speed::Max => None,
        Speed::Factor(f) => Some(f),
    };
    let options = RunOptions {
        seed: args.seed,
        duration: args.duration,
        speed,
        data_dir: dir.clone(),
        learning: true,
        policy_file: args.policy.clone(),
    };
    let model = run::run(&options).with_context(|| format!("model run in {}", dir.display()))?;
    let baseline_options = RunOptions {
        data_dir: dir.join("baseline"),
        learning: false,
        ..options
    };
    let baseline = if args.no_baseline {
        model.clone()
    } else {
        run::run(&baseline_options)
            .with_context(|| format!("baseline run in {}", baseline_options.data_dir.display()))?
    };
    let report = run::report(args.seed, args.duration, &model, &baseline);
    match args.report {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Text => print!("{}", run::report_text(&report, &model, &baseline)),
    }
    Ok(())
}

fn data_dir_or_default(dir: &Option<PathBuf>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.clone()),
        None => default_data_dir(),
    }
}

fn explain_cmd(id: &str, dir: &Path, json: bool) -> Result<()> {
    let Some(explanation) = read::explain(dir, id)
        .with_context(|| format!("reading the journal in {}", dir.display()))?
    else {
        bail!("no decision `{id}` in the journal at {}", dir.display());
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&explain::to_json(&explanation))?
        );
    } else {
        print!("{}", explain::render(&explanation));
    }
    Ok(())
}

fn check_cmd(dir: &Path, json: bool) -> Result<()> {
    if !dir.join(signalbox::journal::FILE_NAME).exists() {
        bail!("no journal at {}", dir.display());
    }
    let start = signalbox::sim::default_start();
    let mut world_rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let world = signalbox::sim::world::northwind(&mut world_rng, start);
    let now = chrono::Utc::now().max(start);
    let config = signalbox::engine::EngineConfig::new(dir, 0);
    let engine = signalbox::engine::Engine::open(config, world, now)?;
    let resumed = (engine.counts().active_flows, engine.counts().open_reviews);
    engine.close()?;
    let counts = read::counts(dir)?;
    if json {
        let mut v = serde_json::to_value(&counts)?;
        v["resumed_flows"] = resumed.0.into();
        v["resumed_reviews"] = resumed.1.into();
        println!("{v}");
    } else {
        println!(
            "journal {}: {} signals, {} decided, {} undecided; {} decisions, {} review actions, \
             {} open reviews; {} flows ({} active); {} feedback; chain {}",
            dir.display(),
            counts.signals,
            counts.decided_signals,
            counts.undecided_signals,
            counts.decisions,
            counts.review_actions,
            counts.open_reviews,
            counts.flows,
            counts.active_flows,
            counts.feedback,
            if counts.chain_ok {
                "verifies"
            } else {
                "BROKEN"
            }
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => headless(&RunArgs {
            headless: true,
            seed: 1,
            duration: chrono::Duration::hours(8),
            speed: Speed::Max,
            data_dir: None,
            report: ReportFormat::Text,
            policy: None,
            no_baseline: false,
        }),
        Some(Command::Run(args)) => {
            if !args.headless {
                eprintln!("the console is not built yet; running headless");
            }
            headless(&args)
        }
        Some(Command::Explain { id, data_dir, json }) => {
            data_dir_or_default(&data_dir).and_then(|dir| explain_cmd(&id, &dir, json))
        }
        Some(Command::Check { data_dir, json }) => {
            data_dir_or_default(&data_dir).and_then(|dir| check_cmd(&dir, json))
        }
        Some(Command::Bench(args)) => signalbox::bench::run(&args).map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signalbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
