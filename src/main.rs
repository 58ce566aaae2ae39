//! The `signalbox` command line: its arguments, and which command runs.
//! The commands are in `cmd/`.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use cmd::journal::{check_cmd, explain_cmd, quarantine_cmd, replay_cmd};
use cmd::{data_dir_or_default, fresh_dir, init_logging};
use signalbox::sim::run::{self, RunOptions};

// The engine allocates many small, short-lived values per signal (records,
// strings, JSON); mimalloc is markedly faster at that than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Where this session's journal goes; a journal already there is
    /// resumed (its queue, flows, tasks and model; simulated time goes on
    /// from its last record).
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
    /// Run a deployment directory (`signalbox init`) instead of the
    /// Northwind simulator, on the wall clock, for one operator; its journal
    /// (the deployment's data directory, or --data-dir) is resumed.
    #[arg(long = "config")]
    config_dir: Option<PathBuf>,
    #[command(flatten)]
    candidates: signalbox::decide::CandidateFiles,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Rebuild every partition from the decision stream (into a scratch
    /// directory) and count what was decided: signals, decisions, and any
    /// signal decided more than once.
    Check {
        /// The NATS servers, comma-separated (else the deployment's
        /// `[cluster] servers`).
        #[arg(long)]
        cluster: Option<String>,
        /// The deployment directory whose `[cluster]` says how to reach
        /// NATS (servers, credentials or token, CA).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Also list every signal decided, as SOURCE ID TIME lines (TIME:
        /// the decision's, RFC 3339).
        #[arg(long)]
        list: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the Northwind simulator through the engine and report on it.
    Run(RunArgs),
    /// A cluster's record, read from NATS JetStream.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Explain one decision from the journal.
    Explain {
        /// Decision id, e.g. D0000042.
        id: String,
        #[command(flatten)]
        journal: cmd::JournalArgs,
        #[arg(long)]
        json: bool,
        /// In words, by the advisor (`[advisor]` in the deployment's
        /// signalbox.toml with --config, else in config.toml): each
        /// sentence cites the journal's facts it states, checked.
        #[arg(long)]
        words: bool,
    },
    /// Open a journal (resuming what was in flight, deciding what was
    /// acknowledged but undecided) and print its counts.
    Check {
        #[command(flatten)]
        journal: cmd::JournalArgs,
        #[arg(long)]
        json: bool,
    },
    /// Re-decide the journal's settled decisions with a candidate, never
    /// acting: what changes, and an off-policy estimate of its value (the
    /// share of outcomes within SLA) against the logged policy's.
    Replay {
        #[command(flatten)]
        journal: cmd::JournalArgs,
        /// The candidate's model: `off` for rules alone, or a checkpoint
        /// file (JSON, as the journal's `checkpoints` table keeps one)
        /// scoring each decision's journaled features; without it, the
        /// model as it was (the scores each decision journaled).
        #[arg(long)]
        model: Option<String>,
        /// The candidate's policies (default: the deployment's, or the
        /// shipped ones).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The candidate's playbook (default: the deployment's, or the
        /// shipped one).
        #[arg(long)]
        playbook: Option<PathBuf>,
        /// Only decisions at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Instead: a candidate noise configuration (a playbook with its
        /// group, hold, inhibit and maintenance) run over the journal's
        /// signals: incidents, pages and review items per hour, as seen
        /// and as the candidate would have shown them (needs --config).
        #[arg(long, conflicts_with_all = ["model", "policy", "playbook", "since"])]
        noise: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Measure end-to-end throughput and decision latency against raw SQLite.
    Bench(signalbox::bench::BenchArgs),
    /// Open the console on a running `signalbox serve`: the same views and
    /// keys, actions through its HTTP API with the token's identity.
    Attach {
        /// The server, e.g. http://127.0.0.1:7700
        url: String,
        /// Bearer token (also SIGNALBOX_TOKEN, or `token` in config.toml).
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        theme: Option<String>,
        #[arg(long)]
        keymap: Option<String>,
    },
    /// Write a starter deployment directory (organization, signal types,
    /// playbook, steps, policies, server settings), each file commented.
    Init { dir: PathBuf },
    /// Check a deployment directory: prints FILE:LINE: problem for each error, exits 1 on any.
    Validate { dir: PathBuf },
    /// Run the engine behind the HTTP intake on a deployment directory
    /// (--config DIR), or on the Northwind demo (--demo), until SIGINT/SIGTERM.
    /// SIGHUP reloads the deployment.
    Serve {
        /// The deployment directory (`signalbox init DIR` writes one).
        #[arg(long = "config", conflicts_with = "demo")]
        config_dir: Option<PathBuf>,
        /// Run the Northwind demo world with its simulated executors.
        #[arg(long)]
        demo: bool,
        /// Where to listen (default: the deployment's `listen`, else 127.0.0.1:7700).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
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
        #[command(flatten)]
        candidates: signalbox::decide::CandidateFiles,
        /// Run the advisor as a shadow: its proposals are recorded beside
        /// review items and judged against people's answers, not shown.
        #[arg(long)]
        shadow_advisor: bool,
        /// Run as a node of a cluster over NATS JetStream: the servers,
        /// comma-separated (nats://h1:4222,nats://h2:4222,nats://h3:4222).
        /// Needs --config and --node.
        /// Needs --config; also `[cluster] servers` in signalbox.toml.
        #[arg(long, requires = "config_dir", conflicts_with_all = ["demo", "sources", "shadow_advisor"])]
        cluster: Option<String>,
        /// This node's name in the cluster (unique; letters, digits, - and
        /// _); also `[cluster] node`.
        #[arg(long, requires = "config_dir")]
        node: Option<String>,
    },
    /// Who is on call: on each schedule (of --team), now or --at a time
    /// (RFC 3339), with overrides, the next change and the week's gaps.
    Oncall {
        #[command(flatten)]
        journal: cmd::JournalArgs,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        json: bool,
    },
    /// The measures of the operation from its journal: decision quality
    /// (how flows ended, by class and option; people's answers), cycle
    /// times, exceptions, paging (MTTA, MTTR, pages per person).
    Report {
        #[command(flatten)]
        journal: cmd::JournalArgs,
        /// Only what happened since: a duration back from now ("7d",
        /// "12h") or a time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only this team's flows (a step for it), pages, people and load.
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Signals the engine could not decide: list them, retry one, or drop it.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// The advisor (`[advisor]`): `advise policies` drafts the rules
    /// behind people's overrides, validated and replayed, never applied.
    #[command(subcommand)]
    Advise(AdviseCommand),
    /// The learned model: `model export` prints it as a checkpoint (what
    /// `replay --model` and `--shadow-model` take).
    #[command(subcommand)]
    Model(ModelCommand),
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
        #[command(flatten)]
        journal: cmd::JournalArgs,
        #[arg(long)]
        json: bool,
    },
    /// Decide a held signal again (it is held again should it fail again).
    Retry(QuarantineTarget),
    /// Set a held signal aside for good (it stays in the journal).
    Drop(QuarantineTarget),
}

#[derive(Subcommand)]
enum AdviseCommand {
    /// Where people overrode the same proposal the same way: a drafted
    /// rule from the fields those decisions shared, and the advisor's,
    /// each run through validate and replayed over the journal.
    Policies {
        #[command(flatten)]
        journal: cmd::JournalArgs,
        /// Only overrides since: a duration back from now ("7d") or a time
        /// (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Overrides a pattern needs (default 3).
        #[arg(long)]
        min_support: Option<usize>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Print the model as the journal has it (the last checkpoint and the
    /// feedback after it, as a restart rebuilds it) as checkpoint JSON.
    Export {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The model as it was at this time (RFC 3339), before later
        /// feedback.
        #[arg(long)]
        before: Option<chrono::DateTime<chrono::Utc>>,
        /// Write it here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
    #[command(flatten)]
    journal: cmd::JournalArgs,
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
    #[command(flatten)]
    candidates: signalbox::decide::CandidateFiles,
    /// A drill: this far into the run (e.g. 3h) a corrupted checkpoint
    /// replaces the model; the report's `model_breaker` says what the
    /// breaker on the model made of it.
    #[arg(long, value_parser = parse_span)]
    corrupt_model_at: Option<chrono::Duration>,
    /// With --corrupt-model-at: this far in, the model from before the
    /// corruption is put back.
    #[arg(long, value_parser = parse_span, requires = "corrupt_model_at")]
    restore_model_at: Option<chrono::Duration>,
    /// With --ramp: how far into the run it starts (the model has had time
    /// to learn by then).
    #[arg(long, value_parser = parse_span, default_value = "2h", requires = "ramp")]
    ramp_at: chrono::Duration,
    /// Who decides, whatever the policy file says: `rules` (the model
    /// learns beside them), `apprentice` (the rules until the model has
    /// shown, class by class, that it does better) or `on`.
    #[arg(long)]
    model_mode: Option<signalbox::decide::apprentice::ModelMode>,
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
    signalbox::decide::policy::parse_duration(text).map_err(|e| e.to_string())
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
        candidates: args.candidates.clone(),
        corrupt_model_at: args.corrupt_model_at,
        restore_model_at: args.restore_model_at,
        ramp_at: args.ramp_at,
        model_mode: args.model_mode,
    };
    let model = run::run(&options).with_context(|| format!("model run in {}", dir.display()))?;
    let baseline_options = RunOptions {
        data_dir: dir.join("baseline"),
        learning: false,
        candidates: signalbox::decide::CandidateFiles {
            ramp: None,
            ..options.candidates.clone()
        },
        ..options
    };
    let baseline =
        if args.no_baseline {
            None
        } else {
            Some(run::run(&baseline_options).with_context(|| {
                format!("baseline run in {}", baseline_options.data_dir.display())
            })?)
        };
    let mut report = run::report(args.seed, args.duration, &model, baseline.as_ref());
    let transitions = signalbox::journal::read::audit_entries(&dir, "model_breaker")
        .with_context(|| format!("reading the model breaker's changes in {}", dir.display()))?;
    report["model_breaker"] = serde_json::json!({
        "trips": transitions.iter().filter(|t| t.ref_id == "open").count(),
        "open_at_end": transitions.last().is_some_and(|t| t.ref_id == "open"),
        "changes": transitions.iter().map(|t| serde_json::json!({
            "time": t.time, "state": t.ref_id, "reason": t.body["state"]["reason"],
            "readings": t.body["readings"],
        })).collect::<Vec<_>>(),
    });
    let switches = signalbox::journal::read::audit_entries(&dir, "model_mode")
        .with_context(|| format!("reading the apprentice's switches in {}", dir.display()))?;
    if !switches.is_empty() {
        report["apprentice"] = serde_json::json!({
            "switches": switches.iter().map(|t| serde_json::json!({
                "time": t.time, "class": t.ref_id, "to": t.body["switch"]["to"],
                "readings": t.body["switch"]["readings"],
                "text": serde_json::from_value::<signalbox::decide::apprentice::Switch>(
                    t.body["switch"].clone(),
                ).map(|s| s.describe()).unwrap_or_default(),
            })).collect::<Vec<_>>(),
        });
    }
    if let Some(ramp) = &model.ramp {
        report["ramp"] = run::ramp_report(ramp);
    }
    if args.candidates.shadows() {
        let shadow = signalbox::journal::read::shadow(&dir)
            .with_context(|| format!("reading the shadow's choices in {}", dir.display()))?;
        report["shadow"] = serde_json::to_value(shadow)?;
    }
    match args.report {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Text => print!("{}", run::report_text(&report, &model, baseline.as_ref())),
    }
    Ok(())
}

fn attach(
    url: String,
    token: Option<String>,
    theme: Option<String>,
    keymap: Option<String>,
) -> Result<()> {
    use signalbox::config::{Config, config_path};
    let config = Config::load(config_path().as_deref())?;
    let token = token
        .or_else(|| {
            std::env::var("SIGNALBOX_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
        })
        .or(config.token.clone());
    let operator = signalbox::console::attach::whoami(&url, token.as_deref())?;
    signalbox::console::attach(signalbox::console::AttachOptions {
        url,
        token,
        operator,
        theme: theme
            .or(config.theme.clone())
            .unwrap_or_else(|| "default".into()),
        keymap: keymap
            .or(config.keymap.clone())
            .unwrap_or_else(|| "default".into()),
    })
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
    let deployment = match &args.config_dir {
        Some(dir) => Some(Box::new(cmd::load_deployment(dir)?)),
        None => None,
    };
    let data_dir = match (
        &deployment,
        args.data_dir.clone().or(config.data_dir.clone()),
    ) {
        (_, Some(d)) => d,
        (Some(d), None) => d.data_dir(),
        (None, None) => fresh_dir("console", "session")?,
    };
    let speed = args.speed.or(config.speed).unwrap_or(60.0);
    if !(speed > 0.0 && speed.is_finite()) {
        bail!("--speed must be a positive number of simulated seconds per second");
    }
    init_logging(&data_dir)?;
    let (http_limits, body_timeout) = config.http_limits()?;
    // The settings the engine runs under, checked before the terminal is taken.
    let server = match &deployment {
        Some(d) => d.server.clone(),
        None => config.clone(),
    };
    server.claim_expiry()?;
    server.execution_durations()?;
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
        deployment,
        server,
        candidates: args.candidates.clone(),
    })
}

fn advise_cmd(what: AdviseCommand) -> Result<()> {
    match what {
        AdviseCommand::Policies {
            journal,
            since,
            min_support,
            json,
        } => journal.place().and_then(|place| {
            cmd::advise::advise_policies_cmd(&place, since.as_deref(), min_support, json)
        }),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => console(&cli.console),
        Some(Command::Serve {
            config_dir,
            demo,
            listen,
            data_dir,
            tokens,
            body_limit,
            sources,
            candidates,
            shadow_advisor,
            cluster,
            node,
        }) => cmd::serve::serve(cmd::serve::ServeArgs {
            runs: cmd::serve::Runs::from_flags(config_dir, demo),
            listen,
            data_dir,
            tokens,
            body_limit,
            sources,
            candidates,
            shadow_advisor,
            cluster: cmd::serve::ClusterFlags {
                servers: cluster,
                node,
            },
        }),
        Some(Command::Init { dir }) => cmd::deploy::init(&dir),
        Some(Command::Cluster(ClusterCommand::Check {
            cluster,
            config,
            list,
            json,
        })) => cmd::cluster::check(cluster.as_deref(), config.as_deref(), list, json),
        Some(Command::Attach {
            url,
            token,
            theme,
            keymap,
        }) => attach(url, token, theme, keymap),
        Some(Command::Validate { dir }) => return cmd::deploy::validate(&dir),
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
        Some(Command::Explain {
            id,
            journal,
            json,
            words,
        }) => journal
            .place()
            .and_then(|place| explain_cmd(&id, &place, json, words)),
        Some(Command::Check { journal, json }) => {
            journal.place().and_then(|place| check_cmd(&place, json))
        }
        Some(Command::Replay {
            journal,
            model,
            policy,
            playbook,
            since,
            noise,
            json,
        }) => journal.place().and_then(|place| {
            if let Some(noise) = noise {
                return cmd::journal::replay_noise_cmd(&place, &noise, json);
            }
            let candidate = cmd::journal::CandidateArgs {
                policy,
                playbook,
                model,
            };
            replay_cmd(&place, &candidate, since, json)
        }),
        Some(Command::Report {
            journal,
            since,
            team,
            json,
        }) => journal.place().and_then(|place| {
            cmd::journal::report_cmd(&place, since.as_deref(), team.as_deref(), json)
        }),
        Some(Command::Oncall {
            journal,
            team,
            at,
            json,
        }) => journal
            .place()
            .and_then(|place| cmd::deploy::oncall(&place, team.as_deref(), at, json)),
        Some(Command::Bench(args)) => signalbox::bench::run(&args).map_err(anyhow::Error::from),
        Some(Command::Quarantine(what)) => quarantine_cmd(what),
        Some(Command::Advise(what)) => advise_cmd(what),
        Some(Command::Model(ModelCommand::Export {
            data_dir,
            before,
            out,
        })) => data_dir_or_default(&data_dir)
            .and_then(|dir| cmd::journal::model_export(&dir, before, out.as_deref())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signalbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
