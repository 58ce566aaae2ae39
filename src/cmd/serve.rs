//! `serve`: the engine headless behind the HTTP intake, until SIGINT or
//! SIGTERM.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};

use super::{default_data_dir, init_logging};

/// What `serve` takes from its flags and config.toml, checked.
struct ServeSettings {
    config: signalbox::config::Config,
    tokens: signalbox::intake::auth::Tokens,
    limits: signalbox::intake::server::Limits,
    body_timeout: std::time::Duration,
    retry_base: Option<chrono::Duration>,
    breaker_cooldown: Option<chrono::Duration>,
}

fn serve_settings(listen: std::net::SocketAddr, tokens: Vec<String>) -> Result<ServeSettings> {
    use signalbox::intake::{self, auth::Tokens};
    let config = signalbox::config::Config::load(signalbox::config::config_path().as_deref())?;
    let mut specs = config.tokens.clone();
    specs.extend(tokens);
    let tokens = Tokens::parse(&specs)?;
    let (limits, body_timeout) = config.http_limits()?;
    intake::check_exposure(&listen, &tokens)?;
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
    Ok(ServeSettings {
        config,
        tokens,
        limits,
        body_timeout,
        retry_base,
        breaker_cooldown,
    })
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

// Over 80 lines: the start and the ordered shutdown of serve's parts read together.

pub(crate) fn serve(
    listen: std::net::SocketAddr,
    data_dir: Option<PathBuf>,
    tokens: Vec<String>,
    body_limit: usize,
    sources: Vec<String>,
) -> Result<()> {
    use signalbox::intake::{self, AppState, service};
    let paths: Vec<String> = sources
        .iter()
        .map(|s| signalbox::intake::file::parse_spec(s))
        .collect::<Result<_, _>>()?;
    let settings = serve_settings(listen, tokens)?;
    let config = &settings.config;
    let dir = match data_dir.or(config.data_dir.clone()) {
        Some(d) => d,
        None => default_data_dir()?.join("serve"),
    };
    init_logging(&dir)?;
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
            c.webhooks = config.webhooks.clone();
            c.retry_base = settings.retry_base;
            c.breaker_cooldown = settings.breaker_cooldown;
        },
        Some(dispatch_tx),
        config.max_backlog(),
    )?;
    spawn_sources(paths, &engine)?;
    let probes: Vec<signalbox::intake::probe::Probe> = config
        .probes
        .iter()
        .cloned()
        .map(signalbox::intake::probe::Probe::new)
        .collect::<Result<_, _>>()?;
    let stopper = engine.clone();
    let (probe_engine, executor_engine) = (engine.clone(), engine.clone());
    let state = AppState {
        engine,
        log,
        tokens: std::sync::Arc::new(settings.tokens),
        counters: Default::default(),
        body_limit,
        body_timeout: settings.body_timeout,
    };
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
        let router = intake::router(state);
        intake::server::run(listener, router, settings.limits, stop_signals.recv()).await;
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
