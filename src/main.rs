//! The `signalbox` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use signalbox::engine::quarantine::Release;
use signalbox::journal::explain;

// The engine allocates many small, short-lived values per signal (records,
// strings, JSON); mimalloc is markedly faster at that than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
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
    #[command(flatten)]
    console: ConsoleArgs,
}

/// The console's options (used when no subcommand is given).
#[derive(Args, Clone)]
struct ConsoleArgs {
    /// Simulated seconds per real second (default 60).
    #[arg(long, global = false)]
    speed: Option<f64>,
    /// Theme: default, light, high-contrast, colorblind, or a user theme.
    #[arg(long)]
    theme: Option<String>,
    /// Keymap: default, vim, emacs, or a user keymap.
    #[arg(long)]
    keymap: Option<String>,
    /// Who you are in the audit trail.
    #[arg(long)]
    operator: Option<String>,
    /// viewer, operator or lead.
    #[arg(long)]
    role: Option<String>,
    /// Where this session's journal goes (must not hold one already).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the HTTP intake listens (see `signalbox serve`).
    #[arg(long, default_value = signalbox::intake::DEFAULT_LISTEN)]
    listen: std::net::SocketAddr,
    /// Do not start the HTTP intake.
    #[arg(long)]
    no_listen: bool,
    /// A bearer token for the HTTP intake: SECRET:ROLE:NAME, or SECRET:ROLE (repeatable).
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// Simulated colleagues who answer review items besides you (0 to 3).
    #[arg(long, default_value_t = 3)]
    colleagues: usize,
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
    /// Run the engine headless behind the HTTP intake until SIGINT/SIGTERM.
    Serve {
        #[arg(long, default_value = signalbox::intake::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A bearer token: SECRET:ROLE:NAME or SECRET:ROLE, ROLE one of viewer, operator, lead, ingest (repeatable).
        #[arg(long = "token")]
        tokens: Vec<String>,
        /// Request body limit in bytes.
        #[arg(long, default_value_t = signalbox::intake::BODY_LIMIT)]
        body_limit: usize,
        /// Also read signals from a JSON-lines file: jsonl:PATH, or jsonl:- for stdin (repeatable).
        #[arg(long = "source")]
        sources: Vec<String>,
    },
    /// Signals the engine could not decide: list them, retry one, or drop it.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Configuration: `signalbox config path` prints where config.toml is read from.
    Config {
        #[arg(value_parser = ["path"])]
        what: String,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// The signals held, newest first.
    List {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Decide a held signal again (it is held again should it fail again).
    Retry(QuarantineTarget),
    /// Set a held signal aside for good (it stays in the journal).
    Drop(QuarantineTarget),
}

#[derive(Args)]
struct QuarantineTarget {
    /// The signal's id.
    id: String,
    /// Its source, where several sources sent that id.
    #[arg(long)]
    source: Option<String>,
    /// Why, for the audit trail.
    #[arg(long, default_value = "")]
    note: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
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

/// A new directory under the platform data directory, named for now.
fn fresh_dir(kind: &str, prefix: &str) -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    Ok(default_data_dir()?
        .join(kind)
        .join(format!("{prefix}-{stamp}")))
}

fn headless(args: &RunArgs) -> Result<()> {
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => fresh_dir("runs", &format!("seed-{}", args.seed))?,
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

/// Opens an existing journal as a restart does (it resumes what was in
/// flight and decides what was journaled but not decided), for a command
/// that acts on it; refused while another process holds it.
fn open_journal(dir: &Path) -> Result<signalbox::engine::Engine> {
    if !dir.join(signalbox::journal::FILE_NAME).exists() {
        bail!("no journal at {}", dir.display());
    }
    let start = signalbox::sim::default_start();
    let mut world_rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let world = signalbox::sim::world::northwind(&mut world_rng, start);
    let now = chrono::Utc::now().max(start);
    let config = signalbox::sim::engine_config(dir, 0);
    Ok(signalbox::engine::Engine::open(config, world, now)?)
}

fn check_cmd(dir: &Path, json: bool) -> Result<()> {
    let engine = open_journal(dir)?;
    let resumed = (engine.counts().active_flows, engine.counts().open_reviews);
    // Acknowledged by the HTTP intake but not yet in the journal: the
    // intake log holds them, and a restart decides them; so does this.
    let (engine, from_log) = signalbox::engine::host::drain_log(engine)?;
    engine.close()?;
    let counts = read::counts(dir)?;
    if json {
        let mut v = serde_json::to_value(&counts)?;
        v["resumed_flows"] = resumed.0.into();
        v["resumed_reviews"] = resumed.1.into();
        v["decided_from_intake_log"] = from_log.into();
        println!("{v}");
    } else {
        println!(
            "journal {}: {} signals, {} decided, {} undecided, {} quarantined; {} decisions, \
             {} review actions, {} open reviews; {} flows ({} active); {} feedback; chain {}; \
             {} signals decided from the intake log",
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
            if counts.chain_ok {
                "verifies"
            } else {
                "BROKEN"
            },
            from_log
        );
    }
    Ok(())
}

fn quarantine_cmd(what: QuarantineCommand) -> Result<()> {
    use signalbox::journal::QuarantineState;
    match what {
        QuarantineCommand::List { data_dir, json } => {
            let dir = data_dir_or_default(&data_dir)?;
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
fn release_cmd(how: Release, target: &QuarantineTarget) -> Result<()> {
    use signalbox::engine::quarantine::Released;
    let dir = data_dir_or_default(&target.data_dir)?;
    let mut engine = open_journal(&dir)?;
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
        Released::Dropped(q) => println!(
            "{} from {} dropped; it stays in the journal",
            q.signal_id, q.source
        ),
    }
    Ok(())
}

fn console(args: &ConsoleArgs) -> Result<()> {
    use signalbox::config::{Config, config_path};
    let config = Config::load(config_path().as_deref())?;
    let role_text = args
        .role
        .clone()
        .or(config.role.clone())
        .unwrap_or_else(|| "operator".into());
    let role = signalbox::decide::policy::Role::parse(&role_text)
        .filter(|r| *r != signalbox::decide::policy::Role::System)
        .with_context(|| format!("`{role_text}` is not a role (viewer, operator, lead)"))?;
    let name = args
        .operator
        .clone()
        .or(config.operator.clone())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    let data_dir = match args.data_dir.clone().or(config.data_dir.clone()) {
        Some(d) => d,
        None => fresh_dir("console", "session")?,
    };
    if data_dir.join(signalbox::journal::FILE_NAME).exists() {
        bail!(
            "{} already holds a journal; a console session starts in a fresh directory \
             (read the old one with `signalbox explain ID --data-dir {}`)",
            data_dir.display(),
            data_dir.display()
        );
    }
    let speed = args.speed.or(config.speed).unwrap_or(60.0);
    if !(speed > 0.0 && speed.is_finite()) {
        bail!("--speed must be a positive number of simulated seconds per second");
    }
    init_logging(&data_dir)?;
    let (http_limits, body_timeout) = config.http_limits()?;
    signalbox::console::run(signalbox::console::ConsoleOptions {
        seed: args.seed,
        speed,
        data_dir,
        operator: signalbox::review::Actor::new(&name, role),
        theme: args
            .theme
            .clone()
            .or(config.theme.clone())
            .unwrap_or_else(|| "default".into()),
        keymap: args
            .keymap
            .clone()
            .or(config.keymap.clone())
            .unwrap_or_else(|| "default".into()),
        colleagues: args.colleagues,
        listen: (!args.no_listen).then_some(args.listen),
        tokens: config
            .tokens
            .iter()
            .cloned()
            .chain(args.tokens.iter().cloned())
            .collect(),
        max_backlog: config.max_backlog(),
        http_limits,
        body_timeout,
    })
}

/// Logs go to a rolling file under the data directory, never the terminal.
fn init_logging(data_dir: &Path) -> Result<()> {
    let logs = data_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let appender = tracing_appender::rolling::daily(&logs, "signalbox.log");
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNALBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(appender)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging: {e}"))?;
    Ok(())
}

fn serve(
    listen: std::net::SocketAddr,
    data_dir: Option<PathBuf>,
    tokens: Vec<String>,
    body_limit: usize,
    sources: Vec<String>,
) -> Result<()> {
    let paths: Vec<String> = sources
        .iter()
        .map(|s| signalbox::intake::file::parse_spec(s))
        .collect::<Result<_, _>>()?;
    use signalbox::intake::{self, AppState, auth::Tokens, service};
    let config = signalbox::config::Config::load(signalbox::config::config_path().as_deref())?;
    let mut specs = config.tokens.clone();
    specs.extend(tokens);
    let tokens = Tokens::parse(&specs)?;
    let (limits, body_timeout) = config.http_limits()?;
    intake::check_exposure(&listen, &tokens)?;
    let dir = match data_dir.or(config.data_dir.clone()) {
        Some(d) => d,
        None => default_data_dir()?.join("serve"),
    };
    init_logging(&dir)?;
    let duration = |field: &str, text: &Option<String>| -> Result<Option<chrono::Duration>> {
        text.as_deref()
            .map(|t| {
                signalbox::decide::policy::parse_duration(t)
                    .map_err(|e| anyhow::anyhow!("config execution.{field}: {e}"))
            })
            .transpose()
    };
    let execution = config.execution.clone().unwrap_or_default();
    let retry_base = duration("retry_base", &execution.retry_base)?;
    let breaker_cooldown = duration("breaker_cooldown", &execution.breaker_cooldown)?;
    for (executor, url) in &config.webhooks {
        if !url.starts_with("http://") {
            bail!("config webhooks.{executor}: {url:?} must be http:// (TLS is not built in)");
        }
    }
    let webhooks = config.webhooks.clone();
    let (dispatch_tx, dispatch_rx) = tokio::sync::mpsc::unbounded_channel();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stop_signals = {
        let _inside = runtime.enter();
        StopSignals::new().context("listening for SIGINT and SIGTERM")?
    };
    let service::Started {
        engine,
        log,
        engine_thread,
        log_writer,
    } = service::start(
        dir.clone(),
        1,
        |c| {
            c.webhooks = webhooks;
            c.retry_base = retry_base;
            c.breaker_cooldown = breaker_cooldown;
        },
        Some(dispatch_tx),
        config.max_backlog(),
    )?;
    for path in paths {
        let label = path.clone();
        let reader = signalbox::intake::file::spawn(path, engine.clone(), |bad| {
            eprintln!("signalbox: {bad}")
        })?;
        std::thread::spawn(move || match reader.join() {
            Ok(Ok(r)) => eprintln!(
                "signalbox: {label}: {} lines, {} accepted, {} duplicates, {} bad",
                r.lines, r.accepted, r.duplicates, r.bad
            ),
            Ok(Err(e)) => eprintln!("signalbox: {label}: {e}"),
            Err(_) => eprintln!("signalbox: {label}: reader panicked"),
        });
    }
    let stopper = engine.clone();
    let state = AppState {
        engine,
        log,
        tokens: std::sync::Arc::new(tokens),
        counters: Default::default(),
        body_limit,
        body_timeout,
    };
    let probes: Vec<signalbox::intake::probe::Probe> = config
        .probes
        .iter()
        .cloned()
        .map(signalbox::intake::probe::Probe::new)
        .collect::<Result<_, _>>()?;
    let probe_engine = state.engine.clone();
    let executor_engine = state.engine.clone();
    let served = runtime.block_on(async {
        tokio::spawn(signalbox::intake::webhook::run(
            dispatch_rx,
            executor_engine,
        ));
        for probe in probes {
            tokio::spawn(probe.run(probe_engine.clone()));
        }
        drop(probe_engine);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let local = listener.local_addr()?;
        say(&format!(
            "signalbox: listening on http://{local} (journal {})",
            dir.display()
        ));
        intake::server::run(listener, intake::router(state), limits, stop_signals.recv()).await;
        anyhow::Ok(())
    });
    // Whether the server ran or failed (it could not listen, say), the
    // engine is stopped and its journal closed before the answer.
    // Stop the probes and executor with the runtime; the intake log's
    // writer ends with its last handle (the server's state). Then let the
    // engine answer what is queued, decide what the log still holds (up to
    // its drain limit), close the journal, and end.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    log_writer
        .join()
        .map_err(|_| anyhow::anyhow!("intake log writer panicked"))?;
    stopper.stop();
    drop(stopper);
    engine_thread
        .join()
        .map_err(|_| anyhow::anyhow!("engine thread panicked"))?;
    served?;
    say("signalbox: stopped; journal closed");
    Ok(())
}

/// A line on standard output that a daemon may lose: a supervisor that
/// closed the pipe must not turn a clean stop into a panic.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// SIGINT and SIGTERM, listened for from the start of `serve`: a signal
/// that arrived before the server was up would otherwise take its default
/// action and kill the process without draining.
#[cfg(unix)]
struct StopSignals(tokio::signal::unix::Signal, tokio::signal::unix::Signal);

#[cfg(unix)]
impl StopSignals {
    /// Must run inside the runtime.
    fn new() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals(
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    }

    async fn recv(mut self) {
        tokio::select! {
            _ = self.0.recv() => {},
            _ = self.1.recv() => {},
        }
    }
}

#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn new() -> std::io::Result<StopSignals> {
        Ok(StopSignals)
    }

    async fn recv(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => console(&cli.console),
        Some(Command::Serve {
            listen,
            data_dir,
            tokens,
            body_limit,
            sources,
        }) => serve(listen, data_dir, tokens, body_limit, sources),
        Some(Command::Config { .. }) => match signalbox::config::config_path() {
            Some(p) => {
                println!("{}", p.display());
                Ok(())
            }
            None => Err(anyhow::anyhow!("no home directory: no config path")),
        },
        Some(Command::Run(args)) if args.headless => headless(&args),
        Some(Command::Run(_)) => Err(anyhow::anyhow!(
            "`signalbox run` is the headless simulation and needs --headless; \
             the console is `signalbox` with no command"
        )),
        Some(Command::Explain { id, data_dir, json }) => {
            data_dir_or_default(&data_dir).and_then(|dir| explain_cmd(&id, &dir, json))
        }
        Some(Command::Check { data_dir, json }) => {
            data_dir_or_default(&data_dir).and_then(|dir| check_cmd(&dir, json))
        }
        Some(Command::Bench(args)) => signalbox::bench::run(&args).map_err(anyhow::Error::from),
        Some(Command::Quarantine(what)) => quarantine_cmd(what),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signalbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
