//! The operator console: a terminal UI over the embedded engine.
//!
//! Input → `Input` (through the keymap) → `App::update` → `Effect`s sent to
//! the engine thread; what the engine publishes, coalesced by `feed`, folds
//! into the `App`; `views` draw the `App`. The terminal is restored on exit, on error and on panic
//! (`ratatui::init` installs the panic hook).

pub mod app;
pub mod attach;
pub mod backend;
pub mod demo;
pub mod driver;
pub mod feed;
#[cfg(test)]
pub(crate) mod fixture;
pub mod keymap;
pub mod link;
pub mod render_bench;
pub mod theme;
pub mod views;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind};

use app::{App, Effect, Focus, Input, Message};
use backend::{Backend, Embedded, Request, Worker};
use driver::DriverOptions;
use keymap::{KeyAction, Keymap};
use theme::Theme;

use crate::engine::host::Handle;
use crate::review::Actor;

/// Everything the console needs to start.
pub struct ConsoleOptions {
    pub seed: u64,
    pub speed: f64,
    pub data_dir: PathBuf,
    pub operator: Actor,
    pub theme: String,
    pub keymap: String,
    pub colleagues: usize,
    /// Where the HTTP intake listens, if it does.
    pub listen: Option<std::net::SocketAddr>,
    pub tokens: Vec<String>,
    /// Signals the HTTP intake holds undecided before it answers 503.
    pub max_backlog: u64,
    /// The HTTP intake's limits, and its deadline for a request's body.
    pub http_limits: crate::intake::server::Limits,
    pub body_timeout: std::time::Duration,
    /// A deployment to run instead of the Northwind simulator.
    pub deployment: Option<Box<crate::deploy::Deployment>>,
    /// The settings in force: the deployment's, or the user's `config.toml`.
    pub server: crate::config::Config,
    /// A shadow candidate and a guarded ramp beside the live rules.
    pub candidates: crate::decide::CandidateFiles,
}

/// Frames are drawn at most this often.
const FRAME: Duration = Duration::from_millis(33);

/// The longest a pass folds what the engine published before it draws and
/// looks at the keys.
const FOLD_BUDGET: Duration = Duration::from_millis(8);

/// Loads theme and keymap, reporting problems as start-up warnings and
/// falling back to the defaults.
pub fn load_look(theme: &str, keymap: &str, warnings: &mut Vec<String>) -> (Theme, Keymap) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let themes = crate::config::user_dir("themes");
    let theme = match Theme::load(theme, themes.as_deref(), no_color) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(format!("{e}; using the default theme"));
            Theme::fallback(no_color)
        }
    };
    let keymaps = crate::config::user_dir("keymaps");
    let keymap = match Keymap::load(keymap, keymaps.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            warnings.push(format!("{e}; using the default keymap"));
            Keymap::load("default", None).unwrap_or_default()
        }
    };
    for c in keymap.conflicts() {
        warnings.push(c.to_string());
    }
    (theme, keymap)
}

pub fn run(options: ConsoleOptions) -> anyhow::Result<()> {
    let mut warnings = Vec::new();
    let (theme, keymap) = load_look(&options.theme, &options.keymap, &mut warnings);
    let (handle, command_rx) = Handle::channel(options.data_dir.clone());
    let (feed, tap) = feed::Feed::channel();
    let mut sources = match &options.deployment {
        Some(d) => vec![format!("deployment:{}", d.dir.display())],
        None => vec!["sim:northwind".to_string()],
    };
    let advisor = start_advisor(&options, &handle, &mut warnings);
    // The HTTP intake and its log's writer, stopped after the engine.
    let (intake, serving) = match options.listen {
        None => (None, None),
        Some(addr) => match start_intake(&options, addr, &handle, advisor.clone())? {
            Ok((local, server, log, writer)) => {
                sources.push(format!("http://{local}"));
                (Some(log), Some((server, writer)))
            }
            Err(e) => {
                warnings.push(format!("HTTP intake off: {e}"));
                (None, None)
            }
        },
    };
    let outbound = match Outbound::start(&options, &handle, intake.as_ref()) {
        Ok(o) => o,
        Err(e) => {
            warnings.push(format!("webhooks and notifications off: {e}"));
            Outbound::default()
        }
    };
    let engine = driver::spawn(
        DriverOptions {
            seed: options.seed,
            speed: options.speed,
            data_dir: options.data_dir.clone(),
            colleagues: options.colleagues,
            intake,
            deployment: options.deployment.clone(),
            server: options.server.clone(),
            candidates: options.candidates.clone(),
            dispatcher: outbound.dispatcher.clone(),
            notifier: outbound.notifier.clone(),
            pager: outbound.pager.clone(),
        },
        handle.clone(),
        command_rx,
        feed,
    )?;
    let mut app = App::new(
        keymap,
        theme,
        options.operator.clone(),
        options.data_dir.clone(),
    );
    app.sources = sources;
    if let Some(d) = &options.deployment {
        app.instance = format!("{} (embedded)", d.dir.display());
    }
    if !warnings.is_empty() {
        app.status_line = Some((warnings.join("; "), true));
    } else if let Some(url) = app.sources.iter().find(|s| s.starts_with("http")) {
        // The header may abbreviate the sources; where signals go is said
        // once in full.
        app.status_line = Some((format!("HTTP intake on {url}"), false));
    }
    let mut terminal = match ratatui::try_init() {
        Ok(t) => {
            // Over ratatui's hook: a signal's panic the engine catches and
            // quarantines must not restore the terminal under the UI.
            crate::engine::guard::install_hook();
            t
        }
        Err(e) => {
            ratatui::restore();
            handle.stop();
            let _ = engine.join();
            stop_intake(serving);
            outbound.stop();
            anyhow::bail!(
                "the console needs a terminal ({e}); without one use `signalbox run --headless` or `signalbox serve`"
            );
        }
    };
    let backend = Embedded {
        engine: handle.clone(),
        data_dir: options.data_dir.clone(),
        advisor,
    };
    let result = event_loop(&mut terminal, &mut app, &backend, &tap);
    ratatui::restore();
    handle.stop();
    let _ = engine.join();
    stop_intake(serving);
    outbound.stop();
    result
}

/// A running intake: its address, server, log and the log's writer.
type Intake = (
    std::net::SocketAddr,
    crate::intake::Server,
    crate::intake::log::IntakeLog,
    std::thread::JoinHandle<()>,
);

/// The console's own HTTP intake on `addr`: its address, server, log and
/// log writer, or why it could not start (an error in the tokens stops the
/// console instead).
fn start_intake(
    options: &ConsoleOptions,
    addr: std::net::SocketAddr,
    handle: &Handle,
    advisor: Option<std::sync::Arc<crate::advisor::Advisor>>,
) -> anyhow::Result<Result<Intake, String>> {
    let tokens = crate::intake::auth::Tokens::parse(&options.tokens)?;
    Ok(
        crate::intake::log::IntakeLog::open_with(&options.data_dir, options.max_backlog)
            .map_err(|e| e.to_string())
            .and_then(|(log, writer)| {
                let state = crate::intake::AppState {
                    engine: handle.clone(),
                    log: log.clone(),
                    tokens: std::sync::Arc::new(tokens),
                    counters: Default::default(),
                    body_limit: crate::intake::BODY_LIMIT,
                    body_timeout: options.body_timeout,
                    reloader: None,
                    words: advisor.map(|a| a as std::sync::Arc<dyn crate::intake::Words>),
                    events: None,
                    streams: Default::default(),
                    cluster: None,
                };
                crate::intake::spawn_server(addr, state, options.http_limits)
                    .map(|(local, server)| (local, server, log, writer))
                    .map_err(|e| e.to_string())
            }),
    )
}

/// The advisor `[advisor]` names, proposing beside the engine; a problem
/// with it is said among the start-up warnings and the console goes on
/// without.
fn start_advisor(
    options: &ConsoleOptions,
    handle: &Handle,
    warnings: &mut Vec<String>,
) -> Option<std::sync::Arc<crate::advisor::Advisor>> {
    let settings = options.server.advisor.as_ref()?;
    let started = crate::advisor::Advisor::new(settings, &options.data_dir)
        .map_err(|e| e.to_string())
        .and_then(|advisor| {
            let advisor = std::sync::Arc::new(advisor);
            crate::advisor::worker::spawn(std::sync::Arc::clone(&advisor), handle.clone(), false)
                .map(|_| advisor)
                .map_err(|e| e.to_string())
        });
    match started {
        Ok(advisor) => Some(advisor),
        Err(e) => {
            warnings.push(format!("advisor off: {e}"));
            None
        }
    }
}

/// What `signalbox attach` needs.
pub struct AttachOptions {
    pub url: String,
    pub token: Option<String>,
    pub operator: Actor,
    pub theme: String,
    pub keymap: String,
}

/// The console on a running `signalbox serve`: the same views and keys,
/// its state from the server's events, actions through its HTTP API.
pub fn attach(options: AttachOptions) -> anyhow::Result<()> {
    let mut warnings = Vec::new();
    let (theme, keymap) = load_look(&options.theme, &options.keymap, &mut warnings);
    let remote = attach::Remote::new(&options.url, options.token.clone())?;
    let (feed, tap) = feed::Feed::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = attach::spawn(remote.clone(), feed, std::sync::Arc::clone(&stop));
    let mut app = App::new(keymap, theme, options.operator.clone(), PathBuf::new());
    app.instance = format!("attached to {}", remote.base);
    app.sources = vec![remote.base.clone()];
    app.link = Some(link::Link {
        server: remote.base.clone(),
        state: link::LinkState::Connecting,
        rtt: None,
    });
    if !warnings.is_empty() {
        app.status_line = Some((warnings.join("; "), true));
    }
    let mut terminal = ratatui::try_init().map_err(|e| {
        ratatui::restore();
        anyhow::anyhow!("the console needs a terminal ({e})")
    })?;
    let result = event_loop(&mut terminal, &mut app, &remote, &tap);
    ratatui::restore();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(tap);
    drop(follower);
    result
}

/// The deployment's webhook steps and notifications, sent as `serve`
/// sends them, on a runtime of their own; none when there is nothing to
/// send (the demo's steps are simulated).
#[derive(Default)]
struct Outbound {
    runtime: Option<tokio::runtime::Runtime>,
    dispatcher: Option<crate::engine::host::Dispatcher>,
    notifier: Option<crate::engine::host::Notifier>,
    pager: Option<crate::engine::host::Pager>,
}

impl Outbound {
    fn start(
        options: &ConsoleOptions,
        handle: &Handle,
        intake: Option<&crate::intake::log::IntakeLog>,
    ) -> std::io::Result<Outbound> {
        let pages = options
            .deployment
            .as_ref()
            .is_some_and(|d| !d.organization.world.roster.is_empty());
        let webhooks = options
            .deployment
            .as_ref()
            .is_some_and(|d| !d.webhooks().is_empty())
            || !options.server.webhooks.is_empty();
        let receivers = options.server.notify.clone();
        if !webhooks && receivers.is_empty() && !pages {
            return Ok(Outbound::default());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("console-outbound")
            .enable_all()
            .build()?;
        let ca_file = options.server.tls.as_ref().and_then(|t| t.ca_file.clone());
        let (dispatcher, steps) = tokio::sync::mpsc::unbounded_channel();
        runtime.spawn(crate::intake::webhook::run(
            steps,
            handle.clone(),
            ca_file.clone(),
        ));
        let notifier = (!receivers.is_empty()).then(|| {
            let (notifier, notices) = tokio::sync::mpsc::unbounded_channel();
            runtime.spawn(crate::intake::notify::run(notices, receivers, ca_file));
            notifier
        });
        // Links in pages work while the HTTP intake listens (and are
        // signed with its data directory's secret).
        let pager = pages.then(|| {
            let (pager, sends) = tokio::sync::mpsc::unbounded_channel();
            let base_url = options
                .server
                .public_url
                .clone()
                .or_else(|| options.listen.map(|l| format!("http://{l}")))
                .unwrap_or_default();
            let secret = intake
                .map(|l| l.integration_key().to_vec())
                .unwrap_or_default();
            let settings = options.server.pager(&base_url, secret);
            runtime.spawn(crate::intake::pager::run(sends, handle.clone(), settings));
            pager
        });
        Ok(Outbound {
            runtime: Some(runtime),
            dispatcher: Some(dispatcher),
            notifier,
            pager,
        })
    }

    /// Stops sending (what is queued is dropped: the journal holds it).
    fn stop(self) {
        if let Some(runtime) = self.runtime {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// Stops the HTTP intake, then waits for its log's writer, which ends once
/// the server's and the engine's handles on the log are gone: the log is
/// closed cleanly, every append it acknowledged committed.
fn stop_intake(serving: Option<(crate::intake::Server, std::thread::JoinHandle<()>)>) {
    if let Some((server, writer)) = serving {
        server.stop();
        if writer.join().is_err() {
            tracing::error!("the intake log's writer panicked");
        }
    }
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    backend: &dyn Backend,
    published: &feed::Tap,
) -> anyhow::Result<()> {
    let worker = Worker::spawn()?;
    let mut last_draw = Instant::now() - FRAME;
    let mut folding: Option<feed::Pending> = None;
    loop {
        // What the engine published since the last pass, coalesced (at
        // most what the tables keep, however fast events come), folded for
        // a bounded time per pass: keys are read and frames drawn between.
        if folding.is_none() {
            folding = published.take();
        }
        if let Some(pending) = &mut folding
            && app.fold_for(pending, Some(Instant::now() + FOLD_BUDGET))
        {
            folding = None;
        }
        for message in worker.arrived() {
            app.update(message);
        }
        if app.dirty && last_draw.elapsed() >= FRAME {
            let size = terminal.size()?;
            let page = views::page_size(views::body_area(size.into()));
            if page != app.page {
                app.update(Message::Page(page));
            }
            terminal.draw(|f| views::draw(f, app))?;
            app.dirty = false;
            last_draw = Instant::now();
        }
        // Still folding: only a look at the keys before the next part.
        let wait = match folding {
            Some(_) => Duration::ZERO,
            None => Duration::from_millis(15),
        };
        if !event::poll(wait)? {
            continue;
        }
        let input = match event::read()? {
            Event::Key(key) if key.kind != KeyEventKind::Release => translate(app, key),
            Event::Resize(_, _) => Some(Input::Resize),
            _ => None,
        };
        let Some(input) = input else { continue };
        for effect in app.update(input) {
            match Request::of(effect) {
                Ok(request) => {
                    if let Err(said) = worker.answer(backend.start(request, &app.operator)) {
                        app.update(said);
                    }
                }
                Err(Effect::Quit) => return Ok(()),
                Err(Effect::SwitchTheme(name)) => {
                    app.update(switch_theme(name, app.theme.no_color));
                }
                // Every other effect is a request.
                Err(_) => {}
            }
        }
    }
}

/// The theme `name`, loaded for the app (or why it cannot be).
fn switch_theme(name: String, no_color: bool) -> Message {
    let loaded = Theme::load(
        &name,
        crate::config::user_dir("themes").as_deref(),
        no_color,
    );
    Message::Theme(loaded.map(|t| (name, t)).map_err(|e| e.to_string()))
}

/// A key event as the app sees it: text for prompts and dialogs, else the
/// keymap's action.
fn translate(app: &App, key: crossterm::event::KeyEvent) -> Option<Input> {
    let k = keymap::Key::from_event(&key);
    // A control-key quit works from a prompt or a dialog too (a dialog
    // asks first).
    if (app.typing() || matches!(app.focus, Focus::Dialog(_)))
        && key
            .modifiers
            .contains(crossterm::event::KeyModifiers::CONTROL)
        && let Some(k) = &k
        && app.keymap.action(k, &[keymap::Scope::Global]) == Some(KeyAction::Quit)
    {
        return Some(Input::Key(KeyAction::Quit));
    }
    if app.typing() {
        // Confirm and cancel keep their meaning while typing.
        if let Some(k) = &k
            && let Some(a @ (KeyAction::Confirm | KeyAction::Cancel)) =
                app.keymap.action(k, &[keymap::Scope::Dialog])
        {
            return Some(Input::Key(a));
        }
        if matches!(app.focus, Focus::Dialog(_)) {
            return Some(Input::Text(key));
        }
        return match key.code {
            KeyCode::Char(c) => Some(Input::Char(c)),
            KeyCode::Tab => Some(Input::Char('\t')),
            KeyCode::Backspace => Some(Input::Backspace),
            _ => None,
        };
    }
    let k = k?;
    let action = app.keymap.action(&k, &app.contexts());
    match (&app.focus, action) {
        (Focus::Dialog(_), None) => match key.code {
            KeyCode::Char(c) => Some(Input::Char(c)),
            _ => None,
        },
        (Focus::ConfirmQuit, None) => match key.code {
            KeyCode::Char(c) => Some(Input::Char(c)),
            _ => Some(Input::Key(KeyAction::Cancel)),
        },
        (_, Some(a)) => Some(Input::Key(a)),
        _ => None,
    }
}
