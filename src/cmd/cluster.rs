//! `serve --cluster`: a node of a cluster over NATS JetStream. Its HTTP
//! intake publishes to the cluster's signal stream, and it runs the
//! partitions its leases give it (`signalbox::cluster`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use futures_util::FutureExt as _;

use super::init_logging;
use super::serve::{STOP_GRACE, arm_stop_deadline, raise_file_limit, say};

pub(crate) struct NodeArgs {
    pub settings: signalbox::cluster::Settings,
    pub deployment: signalbox::deploy::Deployment,
    pub data_dir: PathBuf,
    pub tokens: signalbox::intake::auth::Tokens,
    pub limits: signalbox::intake::server::Limits,
    pub body_timeout: std::time::Duration,
    pub body_limit: usize,
    pub listen: std::net::SocketAddr,
}

/// A cluster node's commits between snapshots of a partition, if not
/// `[cluster] snapshot_every` or the default.
const SNAPSHOT_ENV: &str = "SIGNALBOX_CLUSTER_SNAPSHOT_EVERY";

/// What `serve` runs as a cluster node, if it does (`--cluster` and
/// `--node`, or the deployment's `[cluster]`).
pub(crate) fn node_args(
    runs: &super::serve::Runs,
    args: &super::serve::ServeArgs,
) -> Result<Option<NodeArgs>> {
    let super::serve::Runs::Deployment(dir) = runs else {
        if args.cluster.servers.is_some() || args.cluster.node.is_some() {
            anyhow::bail!("--cluster runs a deployment directory (--config DIR), not the demo");
        }
        return Ok(None);
    };
    let deployment = super::load_deployment(dir)?;
    let Some(settings) = settings(&args.cluster, &deployment)? else {
        return Ok(None);
    };
    if !args.sources.is_empty() {
        anyhow::bail!(
            "--source is not read by a cluster node (each node would read it): post its signals to any node's HTTP intake"
        );
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| deployment.data_dir());
    let server =
        super::serve::serve_settings(deployment.server.clone(), args.listen, args.tokens.clone())?;
    Ok(Some(NodeArgs {
        settings,
        deployment,
        data_dir,
        tokens: server.tokens,
        limits: server.limits,
        body_timeout: server.body_timeout,
        body_limit: args.body_limit,
        listen: server.listen,
    }))
}

/// The node's settings from `--cluster` and `--node`, else the
/// deployment's `[cluster]`; none: `serve` runs alone.
fn settings(
    flags: &super::serve::ClusterFlags,
    deployment: &signalbox::deploy::Deployment,
) -> Result<Option<signalbox::cluster::Settings>> {
    let config = deployment.server.cluster.clone().unwrap_or_default();
    let servers = match (&flags.servers, config.servers.is_empty()) {
        (Some(servers), _) => servers.clone(),
        (None, false) => config.servers.join(","),
        (None, true) if flags.node.is_some() || config.node.is_some() => {
            anyhow::bail!("--node needs --cluster or `[cluster] servers` in signalbox.toml")
        }
        (None, true) => return Ok(None),
    };
    let Some(node) = flags.node.clone().or(config.node.clone()) else {
        anyhow::bail!(
            "a cluster node needs its name: --node NAME or `[cluster] node` in signalbox.toml"
        );
    };
    let mut settings =
        signalbox::cluster::Settings::parse(&servers, &node).map_err(anyhow::Error::msg)?;
    if let Some(every) = config.snapshot_every {
        settings.snapshot_every = every;
    }
    settings.auth = signalbox::cluster::NatsAuth::from_config(&config, &deployment.dir)
        .map_err(anyhow::Error::msg)?;
    if let Ok(every) = std::env::var(SNAPSHOT_ENV) {
        settings.snapshot_every = every
            .parse()
            .with_context(|| format!("{SNAPSHOT_ENV}={every:?}: a number of commits"))?;
    }
    Ok(Some(settings))
}

pub(crate) fn serve(args: NodeArgs) -> Result<()> {
    use signalbox::cluster::{self, Node};
    use signalbox::intake::{self, AppState};
    init_logging(&args.data_dir)?;
    let (runtime, stop_signals) = super::serve::runtime_with_stop_signals()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    let base_url = args
        .deployment
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let node = runtime
        .block_on(Node::connect(
            args.settings,
            args.deployment.clone(),
            &args.data_dir,
            base_url,
        ))
        .map_err(anyhow::Error::msg)?;
    // What this node acknowledged, kept past the NATS servers' sync
    // interval (`cluster::retain`); it carries the cluster's secret
    // (PagerDuty fingerprints). Its backlog is what is kept, not what
    // waits: bounded by the retention, not by max_backlog.
    let (log, log_writer) = intake::log::IntakeLog::open_with(&node.dir.join("intake"), u64::MAX)?;
    let log = log.with_integration_key(&node.bus.secret);
    let publisher = Arc::new(cluster::http::Publisher::new(&node));
    let retainer = cluster::retain::spawn(
        &log,
        Arc::clone(&publisher),
        Arc::clone(&node.tail),
        runtime.handle().clone(),
    )?;
    runtime.spawn(cluster::tail::watch(Arc::clone(&node)));
    let halt = log.clone();
    let hub = runtime
        .block_on(cluster::events::hub(&node.bus))
        .map_err(anyhow::Error::msg)?;
    runtime.spawn(cluster::events::follow(node.bus.clone(), Arc::clone(&hub)));
    let (engine, commands) = signalbox::engine::host::Handle::channel(node.dir.clone());
    drop(commands);
    let reloader = Arc::new(signalbox::deploy::ServedDeployment::new(args.deployment))
        as Arc<dyn intake::reload::Served>;
    let state = AppState {
        engine,
        log,
        tokens: Arc::new(args.tokens),
        counters: Default::default(),
        body_limit: args.body_limit,
        body_timeout: args.body_timeout,
        reloader: Some(reloader),
        words: None,
        events: Some(Arc::clone(&hub)),
        streams: Arc::new(intake::slots::StreamSlots::new(
            args.limits.max_streams,
            args.limits.max_streams_per_token,
        )),
        cluster: Some(publisher),
    };
    // Before any partition is taken: each answers with the node's tokens.
    let _ = node.front.set(state.clone());
    raise_file_limit(&args.limits);
    let router = intake::cluster_router(state, cluster::http::routes(Arc::clone(&node)));
    let limits = args.limits;
    let loop_failed = runtime.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ended_tx, mut ended_rx) = tokio::sync::oneshot::channel::<()>();
        let leases = cluster::lease::run(Arc::clone(&node), async move {
            let _ = stop_rx.await;
        });
        let manager = tokio::spawn(async move {
            let ran = std::panic::AssertUnwindSafe(leases).catch_unwind().await;
            let _ = ended_tx.send(());
            ran.is_ok()
        });
        say(&format!(
            "signalbox: node {} listening on http://{local} (cluster of {} partitions over {})",
            node.settings.node,
            node.settings.partitions,
            node.settings.servers.join(",")
        ));
        let deadline = limits.drain + STOP_GRACE;
        // The loop that runs the node's partitions ending by itself (a
        // panic) stops the node, with an error for whatever restarts it:
        // its leases lapse and the other nodes take its partitions.
        let stop = async move {
            tokio::select! {
                _ = stop_signals.recv() => {}
                _ = &mut ended_rx => {
                    tracing::error!("the loop that runs the node's partitions stopped; the node stops");
                }
            }
            arm_stop_deadline(deadline);
        };
        intake::server::run(listener, router, limits, stop).await;
        let _ = stop_tx.send(());
        !matches!(manager.await, Ok(true))
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    // The retainer lets go of the log once it is halted; what it keeps
    // stays in the file for the next start.
    halt.halt("the node stopped");
    drop(halt);
    if retainer.join().is_err() {
        tracing::error!("the retaining thread panicked");
    }
    log_writer
        .join()
        .map_err(|_| anyhow::anyhow!("intake log writer panicked"))?;
    if loop_failed {
        anyhow::bail!("the loop that runs the node's partitions panicked (see the log)");
    }
    say("signalbox: node stopped; its partitions handed back");
    Ok(())
}

/// `signalbox cluster check`: the record as the decision stream holds it.
pub(crate) fn check(
    servers: Option<&str>,
    config: Option<&std::path::Path>,
    list: bool,
    json: bool,
) -> Result<()> {
    let deployment = config.map(super::load_deployment).transpose()?;
    let cluster = deployment
        .as_ref()
        .and_then(|d| d.server.cluster.clone())
        .unwrap_or_default();
    let servers = match servers {
        Some(servers) => servers.to_string(),
        None if !cluster.servers.is_empty() => cluster.servers.join(","),
        None => anyhow::bail!(
            "cluster check needs --cluster URLS or --config DIR with `[cluster] servers`"
        ),
    };
    let mut settings =
        signalbox::cluster::Settings::parse(&servers, "check").map_err(anyhow::Error::msg)?;
    if let Some(deployment) = &deployment {
        settings.auth = signalbox::cluster::NatsAuth::from_config(&cluster, &deployment.dir)
            .map_err(anyhow::Error::msg)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let scratch = std::env::temp_dir().join(format!("signalbox-check-{}", std::process::id()));
    let read = runtime.block_on(async {
        let bus = signalbox::cluster::bus::Bus::connect(&settings)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        signalbox::cluster::check::read(&bus, settings.partitions, &scratch)
            .await
            .map_err(anyhow::Error::msg)
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let record = read?;
    if json {
        say(&serde_json::to_string_pretty(&record)?);
    } else {
        say(&format!(
            "{} partitions: {} signals journaled, {} decided ({} decisions), {} held, {} decided more than once",
            record.partitions,
            record.signals,
            record.decided.len(),
            record.decisions,
            record.held,
            record.repeated.len()
        ));
        for (signal, n) in &record.repeated {
            say(&format!("  repeated: {signal} decided {n} times"));
        }
    }
    if list {
        for ((source, id), time) in &record.decided {
            say(&format!("{source} {id} {time}"));
        }
    }
    if !record.repeated.is_empty() {
        anyhow::bail!(
            "{} signals were decided more than once",
            record.repeated.len()
        );
    }
    Ok(())
}
