//! The operator console: a terminal UI over the embedded engine.
//!
//! Input → `Input` (through the keymap) → `App::update` → `Effect`s sent to
//! the engine thread; the engine's `Update`s fold into the `App`; `views`
//! draw the `App`. The terminal is restored on exit, on error and on panic
//! (`ratatui::init` installs the panic hook).

pub mod app;
pub mod config;
pub mod demo;
pub mod driver;
pub mod keymap;
pub mod render_bench;
pub mod theme;
pub mod views;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind};

use tokio::sync::oneshot;

use app::{App, Effect, Focus, Input};
use driver::{DriverOptions, Update};
use keymap::{KeyAction, Keymap};
use theme::Theme;

use crate::engine::EngineError;
use crate::engine::host::{Busy, Command, Handle};
use crate::review::{Actor, ReviewAction};

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
}

/// Frames are drawn at most this often.
const FRAME: Duration = Duration::from_millis(33);

/// Loads theme and keymap, reporting problems as start-up warnings and
/// falling back to the defaults.
pub fn load_look(options: &ConsoleOptions, warnings: &mut Vec<String>) -> (Theme, Keymap) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let themes = config::user_dir("themes");
    let theme = match Theme::load(&options.theme, themes.as_deref(), no_color) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(format!("{e}; using the default theme"));
            Theme::fallback(no_color)
        }
    };
    let keymaps = config::user_dir("keymaps");
    let keymap = match Keymap::load(&options.keymap, keymaps.as_deref()) {
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
    let (theme, keymap) = load_look(&options, &mut warnings);
    let (handle, command_rx) = Handle::channel(options.data_dir.clone());
    let (update_tx, update_rx) = mpsc::channel::<Update>();
    let mut sources = vec!["sim:northwind".to_string()];
    // The HTTP intake and its log's writer, stopped after the engine.
    let mut serving = None;
    let intake = match options.listen {
        None => None,
        Some(addr) => {
            let tokens =
                crate::intake::auth::Tokens::parse(&options.tokens).map_err(anyhow::Error::msg)?;
            let served =
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
                        };
                        crate::intake::spawn_server(addr, state, options.http_limits)
                            .map(|(local, server)| (local, server, log, writer))
                    });
            match served {
                Ok((local, server, log, writer)) => {
                    sources.push(format!("http://{local}"));
                    serving = Some((server, writer));
                    Some(log)
                }
                Err(e) => {
                    warnings.push(format!("HTTP intake off: {e}"));
                    None
                }
            }
        }
    };
    let engine = driver::spawn(
        DriverOptions {
            seed: options.seed,
            speed: options.speed,
            data_dir: options.data_dir.clone(),
            colleagues: options.colleagues,
            intake,
        },
        handle.clone(),
        command_rx,
        update_tx,
    )?;
    let mut app = App::new(
        keymap,
        theme,
        options.operator.clone(),
        options.data_dir.clone(),
    );
    app.sources = sources;
    if !warnings.is_empty() {
        app.status_line = Some((warnings.join("; "), true));
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
            anyhow::bail!(
                "the console needs a terminal ({e}); without one use `signalbox run --headless` or `signalbox serve`"
            );
        }
    };
    let result = event_loop(&mut terminal, &mut app, &handle, &update_rx);
    ratatui::restore();
    handle.stop();
    let _ = engine.join();
    stop_intake(serving);
    result
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
    engine: &Handle,
    updates: &mpsc::Receiver<Update>,
) -> anyhow::Result<()> {
    let mut pending_reply: Option<oneshot::Receiver<Result<ReviewAction, EngineError>>> = None;
    let mut last_draw = Instant::now() - FRAME;
    loop {
        while let Ok(update) = updates.try_recv() {
            app.apply(update);
        }
        if let Some(rx) = &mut pending_reply {
            let answer = match rx.try_recv() {
                Ok(Ok(r)) => Some(Ok(format!(
                    "{} {} by {}",
                    r.action.name(),
                    r.review_id,
                    r.actor.name
                ))),
                Ok(Err(e)) => Some(Err(e.to_string())),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => {
                    Some(Err("the engine has stopped".to_string()))
                }
            };
            if let Some(answer) = answer {
                app.acted(answer);
                pending_reply = None;
            }
        }
        if app.dirty && last_draw.elapsed() >= FRAME {
            let size = terminal.size()?;
            app.page = views::page_size(views::body_area(size.into()));
            terminal.draw(|f| views::draw(f, app))?;
            app.dirty = false;
            last_draw = Instant::now();
        }
        if !event::poll(Duration::from_millis(15))? {
            continue;
        }
        let input = match event::read()? {
            Event::Key(key) if key.kind != KeyEventKind::Release => translate(app, key),
            Event::Resize(_, _) => Some(Input::Resize),
            _ => None,
        };
        let Some(input) = input else { continue };
        for effect in app.update(input) {
            match effect {
                Effect::Quit => {
                    if matches!(app.focus, Focus::Dialog(_)) {
                        app.focus = Focus::ConfirmQuit;
                    } else {
                        return Ok(());
                    }
                }
                Effect::Act {
                    review_id,
                    action,
                    note,
                } => {
                    let (tx, rx) = oneshot::channel();
                    let command = Command::Act {
                        review_id,
                        actor: app.operator.clone(),
                        action,
                        note,
                        reply: tx,
                    };
                    match engine.send(command) {
                        Ok(()) => pending_reply = Some(rx),
                        Err(Busy::Full) => app.acted(Err("the engine is busy: try again".into())),
                        Err(Busy::Gone) => app.acted(Err("the engine has stopped".into())),
                    }
                }
                Effect::Explain { decision_id } => {
                    let text = match crate::journal::read::explain(&app.data_dir, &decision_id) {
                        Ok(Some(e)) => crate::journal::explain::render(&e),
                        Ok(None) => format!(
                            "{decision_id} is not in the journal yet (it is written within a moment)"
                        ),
                        Err(e) => format!("reading the journal: {e}"),
                    };
                    app.show_detail(format!("decision {decision_id}"), text);
                }
                Effect::SwitchTheme(name) => {
                    let no_color = app.theme.no_color;
                    match Theme::load(&name, config::user_dir("themes").as_deref(), no_color) {
                        Ok(t) => {
                            app.theme = t;
                            app.status_line = Some((format!("theme {name}"), false));
                        }
                        Err(e) => app.status_line = Some((e.to_string(), true)),
                    }
                }
            }
        }
    }
}

/// A key event as the app sees it: text for prompts and dialogs, else the
/// keymap's action.
fn translate(app: &App, key: crossterm::event::KeyEvent) -> Option<Input> {
    let k = keymap::Key::from_event(&key);
    if app.typing() {
        // A control-key quit still works from a dialog (after confirming).
        if key
            .modifiers
            .contains(crossterm::event::KeyModifiers::CONTROL)
            && let Some(k) = &k
            && app.keymap.action(k, &[keymap::Scope::Global]) == Some(KeyAction::Quit)
        {
            return Some(Input::Key(KeyAction::Quit));
        }
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
