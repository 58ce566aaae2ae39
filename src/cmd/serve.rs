//! `serve`: the engine headless behind the HTTP intake, until SIGINT or
//! SIGTERM.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};

use super::{default_data_dir, init_logging};

/// What `serve` runs on.
pub(crate) enum Runs {
    /// A deployment directory (`signalbox init`).
    Deployment(PathBuf),
    /// The Northwind demo world with its simulated executors.
    Demo,
}

/// What `serve` takes from its flags and its settings file, checked.
pub(super) struct ServeSettings {
    pub config: signalbox::config::Config,
    pub tokens: signalbox::intake::auth::Tokens,
    pub limits: signalbox::intake::server::Limits,
    pub body_timeout: std::time::Duration,
    pub listen: std::net::SocketAddr,
}

/// Tokens from the environment: SIGNALBOX_TOKENS, comma-separated.
const TOKENS_ENV: &str = "SIGNALBOX_TOKENS";

pub(super) fn serve_settings(
    config: signalbox::config::Config,
    listen: Option<std::net::SocketAddr>,
    tokens: Vec<String>,
) -> Result<ServeSettings> {
    use signalbox::intake::{self, auth::Tokens};
    let mut specs = config.tokens.clone();
    if let Ok(env) = std::env::var(TOKENS_ENV) {
        specs.extend(
            env.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from),
        );
    }
    specs.extend(tokens);
    let tokens = Tokens::parse(&specs)?;
    let (limits, body_timeout) = config.http_limits()?;
    let listen = match (listen, config.listen) {
        (Some(l), _) | (None, Some(l)) => l,
        (None, None) => signalbox::intake::DEFAULT_LISTEN.parse()?,
    };
    intake::check_exposure(&listen, &tokens)?;
    for (executor, url) in &config.webhooks {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("config webhooks.{executor}: {url:?} must be http:// or https://");
        }
    }
    Ok(ServeSettings {
        config,
        tokens,
        limits,
        body_timeout,
        listen,
    })
}

/// The engine's setup, the deployment (if any) and the server's settings
/// for what `serve` runs on, on the journal in `data_dir` (default: the
/// deployment's data directory, else the settings' or the platform's).
fn engine_setup(
    runs: &Runs,
    data_dir: Option<PathBuf>,
    candidates: signalbox::decide::CandidateFiles,
) -> Result<(
    signalbox::setup::Setup,
    Option<signalbox::deploy::Deployment>,
    signalbox::config::Config,
)> {
    use signalbox::setup::{self, Runs as Engine};
    let start = signalbox::sim::default_start();
    match runs {
        Runs::Deployment(dir) => {
            let deployment = super::load_deployment(dir)?;
            let data_dir = data_dir.unwrap_or_else(|| deployment.data_dir());
            let setup = setup::engine(
                Engine::Deployment(&deployment),
                &data_dir,
                candidates,
                start,
            )?;
            let server = deployment.server.clone();
            Ok((setup, Some(deployment), server))
        }
        Runs::Demo => {
            let server =
                signalbox::config::Config::load(signalbox::config::config_path().as_deref())?;
            let dir = match data_dir.or(server.data_dir.clone()) {
                Some(d) => d,
                None => default_data_dir()?.join("serve"),
            };
            let runs = Engine::Demo {
                seed: 1,
                server: &server,
            };
            let setup = setup::engine(runs, &dir, candidates, start)?;
            Ok((setup, None, server))
        }
    }
}

/// Reads each JSON-lines source on a thread of its own, reporting bad
/// lines and, at the end, what it read.
fn spawn_sources(paths: Vec<String>, engine: &signalbox::engine::host::Handle) -> Result<()> {
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
    Ok(())
}

/// What `serve` without a deployment says.
const NO_DEPLOYMENT: &str = "serve needs a deployment directory: `signalbox init DIR` writes a \
    starter (organization, signal types, playbook, steps, policies), `signalbox validate DIR` \
    checks it, `signalbox serve --config DIR` runs it; `signalbox serve --demo` runs the \
    Northwind demo with simulated work";

/// The health probes of the settings and of the deployment's services.
fn probes_of(
    config: &signalbox::config::Config,
    deployment: Option<&signalbox::deploy::Deployment>,
) -> Result<Vec<signalbox::intake::probe::Probe>> {
    let mut configs = config.probes.clone();
    if let Some(d) = deployment {
        configs.extend(d.organization.probes.iter().cloned());
    }
    Ok(configs
        .into_iter()
        .map(signalbox::intake::probe::Probe::new)
        .collect::<Result<_, _>>()?)
}

/// Runs `serve` until SIGINT or SIGTERM: the engine's thread, the sources,
/// the outbound tasks, the HTTP server; then stops them in order.
pub(crate) struct ServeArgs {
    pub runs: Option<Runs>,
    pub listen: Option<std::net::SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub tokens: Vec<String>,
    pub body_limit: usize,
    pub sources: Vec<String>,
    pub candidates: signalbox::decide::CandidateFiles,
    /// The advisor's proposals are recorded, not shown.
    pub shadow_advisor: bool,
    /// A cluster node: the NATS servers and the node's name, as flags.
    pub cluster: ClusterFlags,
}

/// `--cluster` and `--node`, before `[cluster]` fills what they leave.
pub(crate) struct ClusterFlags {
    pub servers: Option<String>,
    pub node: Option<String>,
}

impl Runs {
    /// What `--config DIR` and `--demo` name, if either.
    pub(crate) fn from_flags(config_dir: Option<PathBuf>, demo: bool) -> Option<Runs> {
        match (config_dir, demo) {
            (Some(dir), _) => Some(Runs::Deployment(dir)),
            (None, true) => Some(Runs::Demo),
            (None, false) => None,
        }
    }
}

pub(crate) fn serve(mut args: ServeArgs) -> Result<()> {
    use signalbox::intake::{self, AppState, service};
    let (listen, body_limit) = (args.listen, args.body_limit);
    let Some(runs) = args.runs.take() else {
        bail!(NO_DEPLOYMENT);
    };
    if let Some(node) = super::cluster::node_args(&runs, &args)? {
        return super::cluster::serve(node);
    }
    let paths: Vec<String> = args
        .sources
        .iter()
        .map(|s| signalbox::intake::file::parse_spec(s))
        .collect::<Result<_, _>>()?;
    let (setup, deployment, server) = engine_setup(&runs, args.data_dir, args.candidates)?;
    let settings = serve_settings(server, listen, args.tokens)?;
    let config = &settings.config;
    let dir = setup.config.data_dir.clone();
    init_logging(&dir)?;
    let ca_file = config.tls.as_ref().and_then(|t| t.ca_file.clone());
    let probes = probes_of(config, deployment.as_ref())?;
    let (dispatch_tx, dispatch_rx) = tokio::sync::mpsc::unbounded_channel();
    let receivers = config.notify.clone();
    let (notice_tx, notice_rx) = tokio::sync::mpsc::unbounded_channel();
    let (pager_tx, pager_rx) = tokio::sync::mpsc::unbounded_channel();
    let notifier = (!receivers.is_empty()).then_some(notice_tx);
    let (runtime, stop_signals) = runtime_with_stop_signals()?;
    let service::Started {
        engine,
        log,
        engine_thread,
        events,
        log_writer,
        ..
    } = service::start(
        setup.config,
        setup.world,
        Some(dispatch_tx),
        notifier,
        Some(pager_tx),
        config.max_backlog(),
        None,
    )?;
    spawn_sources(paths, &engine)?;
    let advisor = start_advisor(config, &dir, &engine, args.shadow_advisor)?;
    let reloader = deployment.map(|d| {
        std::sync::Arc::new(signalbox::deploy::ServedDeployment::new(d))
            as std::sync::Arc<dyn signalbox::intake::reload::Served>
    });
    let stopper = engine.clone();
    let executor_engine = engine.clone();
    // Bound before the pager starts, so that its links name the port; a
    // failure is the server's, answered once the engine has stopped.
    let listen = settings.listen;
    let bound = runtime.block_on(tokio::net::TcpListener::bind(listen));
    let local = bound.as_ref().ok().and_then(|l| l.local_addr().ok());
    let base_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", local.unwrap_or(listen)));
    let pager = config.pager(&base_url, log.integration_key().to_vec());
    let outbound = Outbound {
        steps: dispatch_rx,
        probes,
        notices: notice_rx,
        receivers,
        ca_file,
        pages: (pager_rx, pager),
    };
    outbound.spawn(&runtime, &engine);
    let state = AppState {
        engine,
        log,
        tokens: std::sync::Arc::new(settings.tokens),
        counters: Default::default(),
        body_limit,
        body_timeout: settings.body_timeout,
        reloader: reloader.clone(),
        words: advisor.map(|a| a as std::sync::Arc<dyn signalbox::intake::Words>),
        events: Some(events),
        streams: std::sync::Arc::new(signalbox::intake::slots::StreamSlots::new(
            settings.limits.max_streams,
            settings.limits.max_streams_per_token,
        )),
        cluster: None,
    };
    raise_file_limit(&settings.limits);
    let served = runtime.block_on(async {
        if let Some(reloader) = reloader {
            reload_on_hangup(reloader, executor_engine)?;
        }
        let listener = bound.with_context(|| format!("listening on {listen}"))?;
        let local = listener.local_addr()?;
        say(&format!(
            "signalbox: listening on http://{local} (journal {})",
            dir.display()
        ));
        let router = intake::router(state);
        let deadline = settings.limits.drain + STOP_GRACE;
        let stop = async move {
            stop_signals.recv().await;
            arm_stop_deadline(deadline);
        };
        intake::server::run(listener, router, settings.limits, stop).await;
        anyhow::Ok(())
    });
    // Whether the server ran or failed (it could not listen, say), the
    // engine is stopped and its journal closed before the answer.
    stop_in_order(runtime, log_writer, stopper, engine_thread)?;
    served?;
    say("signalbox: stopped; journal closed");
    Ok(())
}

/// The server's runtime, and SIGINT and SIGTERM listened for on it from
/// now on.
pub(super) fn runtime_with_stop_signals() -> Result<(tokio::runtime::Runtime, StopSignals)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stop_signals = {
        let _inside = runtime.enter();
        StopSignals::new().context("listening for SIGINT and SIGTERM")?
    };
    Ok((runtime, stop_signals))
}

/// The advisor `[advisor]` names, beside the engine; none without it.
fn start_advisor(
    config: &signalbox::config::Config,
    dir: &std::path::Path,
    engine: &signalbox::engine::host::Handle,
    shadow: bool,
) -> Result<Option<std::sync::Arc<signalbox::advisor::Advisor>>> {
    let Some(settings) = &config.advisor else {
        if shadow {
            bail!("--shadow-advisor needs [advisor] in signalbox.toml");
        }
        return Ok(None);
    };
    let advisor = std::sync::Arc::new(signalbox::advisor::Advisor::new(settings, dir)?);
    signalbox::advisor::worker::spawn(std::sync::Arc::clone(&advisor), engine.clone(), shadow)
        .context("starting the advisor's thread")?;
    tracing::info!(
        model = advisor.model(),
        endpoint = advisor.endpoint(),
        shadow,
        "advisor"
    );
    Ok(Some(advisor))
}

/// What `serve` sends out and polls, on its runtime: webhook steps, probes,
/// notifications.
struct Outbound {
    steps: tokio::sync::mpsc::UnboundedReceiver<signalbox::flow::Dispatch>,
    probes: Vec<signalbox::intake::probe::Probe>,
    notices: tokio::sync::mpsc::UnboundedReceiver<signalbox::engine::notices::Notice>,
    receivers: Vec<signalbox::intake::notify::NotifyConfig>,
    ca_file: Option<PathBuf>,
    pages: (
        tokio::sync::mpsc::UnboundedReceiver<signalbox::paging::pages::Send>,
        signalbox::intake::pager::PagerSettings,
    ),
}

impl Outbound {
    fn spawn(self, runtime: &tokio::runtime::Runtime, engine: &signalbox::engine::host::Handle) {
        runtime.spawn(signalbox::intake::webhook::run(
            self.steps,
            engine.clone(),
            self.ca_file.clone(),
        ));
        let (sends, settings) = self.pages;
        runtime.spawn(signalbox::intake::pager::run(
            sends,
            engine.clone(),
            settings,
        ));
        for probe in self.probes {
            runtime.spawn(probe.run(engine.clone(), self.ca_file.clone()));
        }
        if !self.receivers.is_empty() {
            runtime.spawn(signalbox::intake::notify::run(
                self.notices,
                self.receivers,
                self.ca_file,
            ));
        }
    }
}

/// Stops `serve`'s parts in order: the probes and executor with the
/// runtime; the intake log's writer, which ends with its last handle (the
/// server's state); then the engine, which answers what is queued, decides
/// what the log still holds (up to its drain limit), closes the journal
/// and ends.
fn stop_in_order(
    runtime: tokio::runtime::Runtime,
    log_writer: std::thread::JoinHandle<()>,
    engine: signalbox::engine::host::Handle,
    engine_thread: std::thread::JoinHandle<()>,
) -> Result<()> {
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    log_writer
        .join()
        .map_err(|_| anyhow::anyhow!("intake log writer panicked"))?;
    engine.stop();
    drop(engine);
    engine_thread
        .join()
        .map_err(|_| anyhow::anyhow!("engine thread panicked"))?;
    Ok(())
}

/// Raises the soft limit on open files to the hard one (systemd's default
/// soft limit of 1,024 runs out before the connection cap), and says so
/// when even the hard limit is below what the caps may hold open.
pub(super) fn raise_file_limit(limits: &signalbox::intake::server::Limits) {
    // Connections, streams, the journal and intake log with their WALs,
    // logs, outbound clients: some to spare.
    let wanted = (limits.max_connections + limits.max_streams + 64) as u64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) if soft < wanted => say(&format!(
            "signalbox: the limit on open files is {soft}, below the {wanted} that \
             intake.max_connections ({}) and intake.max_streams ({}) may need; raise it \
             (LimitNOFILE= in the systemd unit, ulimit -n) or lower them",
            limits.max_connections, limits.max_streams
        )),
        Ok(soft) => tracing::info!(soft, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
}

/// How long past the drain a stopping process may take to close its
/// engine and journal before it ends anyway.
pub(super) const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Ends the process `after` from now, whatever is still running: a stop
/// must not wait on an engine busy with one signal. Nothing acknowledged
/// is lost by it: what was not decided is still in the intake log, and
/// the journal's last commit is whole.
pub(super) fn arm_stop_deadline(after: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        tracing::error!(
            seconds = after.as_secs(),
            "the engine did not stop in time; ending the process"
        );
        say(&format!(
            "signalbox: not stopped {}s after the stop signal; ending now (what was not \
             decided is kept in the intake log for the next start)",
            after.as_secs()
        ));
        std::process::exit(1);
    });
}

/// SIGHUP reloads the deployment directory; the result goes to the log
/// and standard output. Must run inside the runtime.
#[cfg(unix)]
fn reload_on_hangup(
    reloader: std::sync::Arc<dyn signalbox::intake::reload::Served>,
    engine: signalbox::engine::host::Handle,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let actor =
                signalbox::review::Actor::new("SIGHUP", signalbox::decide::policy::Role::System);
            match signalbox::intake::reload::reload(&*reloader, &engine, actor).await {
                Ok(v) => say(&format!(
                    "signalbox: reloaded (policy {}, {})",
                    v.policy, v.rules
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "reload refused");
                    say(&format!("signalbox: reload refused: {e}"));
                }
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_hangup(
    _: std::sync::Arc<dyn signalbox::intake::reload::Served>,
    _: signalbox::engine::host::Handle,
) -> Result<()> {
    Ok(())
}

/// A line on standard output that a daemon may lose: a supervisor that
/// closed the pipe must not turn a clean stop into a panic.
pub(super) fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// SIGINT and SIGTERM, listened for from the start of `serve`: a signal
/// that arrived before the server was up would otherwise take its default
/// action and kill the process without draining.
#[cfg(unix)]
pub(super) struct StopSignals(tokio::signal::unix::Signal, tokio::signal::unix::Signal);

#[cfg(unix)]
impl StopSignals {
    /// Must run inside the runtime.
    pub(super) fn new() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals(
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    }

    pub(super) async fn recv(mut self) {
        tokio::select! {
            _ = self.0.recv() => {},
            _ = self.1.recv() => {},
        }
    }
}

#[cfg(not(unix))]
pub(super) struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    pub(super) fn new() -> std::io::Result<StopSignals> {
        Ok(StopSignals)
    }

    pub(super) async fn recv(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
