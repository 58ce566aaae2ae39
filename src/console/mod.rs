//! The operator console: a terminal UI over the embedded engine.
//!
//! Input → `Input` (through the keymap) → `App::update` → `Effect`s sent to
//! the engine thread; what the engine publishes, coalesced by `feed`, folds
//! into the `App`; `views` draw the `App`. The terminal is restored on exit, on error and on panic
//! (`ratatui::init` installs the panic hook).

pub mod app;
pub mod attach;
pub mod demo;
pub mod driver;
pub mod feed;
#[cfg(test)]
pub(crate) mod fixture;
pub mod keymap;
pub mod render_bench;
pub mod theme;
pub mod views;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind};

use tokio::sync::oneshot;

use app::{App, Effect, Focus, Input, Message};
use driver::DriverOptions;
use keymap::{KeyAction, Keymap};
use theme::Theme;

use crate::engine::host::{Busy, Command, Handle};
use crate::review::{Action, Actor};

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
    // The HTTP intake and its log's writer, stopped after the engine.
    let mut serving = None;
    let intake = match options.listen {
        None => None,
        Some(addr) => {
            let tokens = crate::intake::auth::Tokens::parse(&options.tokens)?;
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
                            reloader: None,
                            events: None,
                            streams: Default::default(),
                        };
                        crate::intake::spawn_server(addr, state, options.http_limits)
                            .map(|(local, server)| (local, server, log, writer))
                            .map_err(|e| e.to_string())
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
    let outbound = match Outbound::start(&options, &handle) {
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
    let result = event_loop(&mut terminal, &mut app, &handle, None, &tap);
    ratatui::restore();
    handle.stop();
    let _ = engine.join();
    stop_intake(serving);
    outbound.stop();
    result
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
    app.link = Some(attach::Link {
        server: remote.base.clone(),
        state: attach::LinkState::Connecting,
        rtt: None,
    });
    if !warnings.is_empty() {
        app.status_line = Some((warnings.join("; "), true));
    }
    let mut terminal = ratatui::try_init().map_err(|e| {
        ratatui::restore();
        anyhow::anyhow!("the console needs a terminal ({e})")
    })?;
    // No engine here: a handle nobody reads, for the loop's signature.
    let (handle, _unused) = Handle::channel(PathBuf::new());
    let result = event_loop(&mut terminal, &mut app, &handle, Some(&remote), &tap);
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
}

impl Outbound {
    fn start(options: &ConsoleOptions, handle: &Handle) -> std::io::Result<Outbound> {
        let webhooks = options
            .deployment
            .as_ref()
            .is_some_and(|d| !d.webhooks().is_empty())
            || !options.server.webhooks.is_empty();
        let receivers = options.server.notify.clone();
        if !webhooks && receivers.is_empty() {
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
        Ok(Outbound {
            runtime: Some(runtime),
            dispatcher: Some(dispatcher),
            notifier,
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
    engine: &Handle,
    remote: Option<&attach::Remote>,
    published: &feed::Tap,
) -> anyhow::Result<()> {
    let mut outside = Outside {
        engine,
        remote,
        back: mpsc::channel(),
    };
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
        for message in outside.arrived() {
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
            match outside.carry_out(effect, app) {
                Next::Quit => return Ok(()),
                Next::Tell(message) => {
                    app.update(message);
                }
                Next::Wait => {}
            }
        }
    }
}

/// What carrying out an effect leads to.
enum Next {
    Quit,
    /// Something to tell the app at once.
    Tell(Message),
    /// Nothing yet: an answer will come back.
    Wait,
}

/// Where the console's effects go, and the answers that come back: the
/// engine's to an action, and explanations read from the journal on a
/// thread of their own (a read can take a while on a big journal; the UI
/// goes on meanwhile).
struct Outside<'a> {
    engine: &'a Handle,
    /// The server, when attached: actions and explanations go there.
    remote: Option<&'a attach::Remote>,
    back: (mpsc::Sender<Message>, mpsc::Receiver<Message>),
}

impl Outside<'_> {
    /// Answers that have come back since the last call.
    fn arrived(&mut self) -> Vec<Message> {
        self.back.1.try_iter().collect()
    }

    /// Carries out one effect.
    fn carry_out(&mut self, effect: Effect, app: &App) -> Next {
        if let Some(remote) = self.remote {
            let back = self.back.0.clone();
            match effect {
                Effect::Act {
                    review_id,
                    action,
                    note,
                } => remote.act(back, vec![review_id], action, note),
                Effect::ActOnEach {
                    review_ids,
                    action,
                    note,
                } => remote.act(back, review_ids, action, note),
                Effect::TaskAct {
                    task_id,
                    action,
                    note,
                } => remote.task_act(back, task_id, action, note),
                Effect::Explain { decision_id } => remote.explain(back, decision_id),
                Effect::Ramp { call, note } => remote.ramp(back, call, note),
                Effect::Quit => return Next::Quit,
                Effect::SwitchTheme(name) => {
                    return self.carry_out_locally(Effect::SwitchTheme(name), app);
                }
            }
            return Next::Wait;
        }
        self.carry_out_locally(effect, app)
    }

    /// Carries out one effect against the embedded engine.
    fn carry_out_locally(&mut self, effect: Effect, app: &App) -> Next {
        match effect {
            Effect::Quit => Next::Quit,
            Effect::Act {
                review_id,
                action,
                note,
            } => self.act_on_each(vec![review_id], action, note, app),
            Effect::ActOnEach {
                review_ids,
                action,
                note,
            } => self.act_on_each(review_ids, action, note, app),
            Effect::TaskAct {
                task_id,
                action,
                note,
            } => {
                let (tx, rx) = oneshot::channel();
                let command = Command::TaskAct {
                    task_id,
                    action,
                    actor: app.operator.clone(),
                    note,
                    reply: tx,
                };
                self.send_and_answer(command, rx, |t| {
                    format!("task {} {} ({})", t.id, t.state, t.template)
                })
            }
            Effect::Ramp { call, note } => {
                let (tx, rx) = oneshot::channel();
                let command = Command::Ramp {
                    call,
                    actor: app.operator.clone(),
                    note,
                    reply: tx,
                };
                self.send_and_answer(command, rx, |state| ramp_said(&state))
            }
            Effect::Explain { decision_id } => {
                let (dir, back) = (app.data_dir.clone(), self.back.0.clone());
                let spawned = std::thread::Builder::new()
                    .name("explain".into())
                    .spawn(move || {
                        let _ = back.send(explain(&dir, decision_id));
                    });
                match spawned {
                    Ok(_) => Next::Wait,
                    Err(e) => Next::Tell(Message::Explained {
                        title: "explain".into(),
                        text: format!("cannot read the journal now: {e}"),
                    }),
                }
            }
            Effect::SwitchTheme(name) => {
                let no_color = app.theme.no_color;
                let loaded = Theme::load(
                    &name,
                    crate::config::user_dir("themes").as_deref(),
                    no_color,
                );
                Next::Tell(Message::Theme(
                    loaded.map(|t| (name, t)).map_err(|e| e.to_string()),
                ))
            }
        }
    }
}

impl Outside<'_> {
    /// Sends `command` to the embedded engine; its answer (once the action
    /// is durable) is waited for off the UI thread and said with `say`.
    fn send_and_answer<T: Send + 'static>(
        &mut self,
        command: Command,
        rx: oneshot::Receiver<Result<T, crate::engine::EngineError>>,
        say: impl FnOnce(T) -> String + Send + 'static,
    ) -> Next {
        if let Err(busy) = self.engine.send(command) {
            let why = match busy {
                Busy::Full => "the engine is busy: try again",
                Busy::Gone => "the engine has stopped",
            };
            return Next::Tell(Message::Acted(Err(why.into())));
        }
        let back = self.back.0.clone();
        let waiter = std::thread::Builder::new()
            .name("answer".into())
            .spawn(move || {
                let answer = match rx.blocking_recv() {
                    Ok(Ok(value)) => Ok(say(value)),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("the engine has stopped".to_string()),
                };
                let _ = back.send(Message::Acted(answer));
            });
        match waiter {
            Ok(_) => Next::Wait,
            Err(e) => Next::Tell(Message::Acted(Err(e.to_string()))),
        }
    }

    /// One action on one item or on each of several through the embedded
    /// engine: each a command of its own (journaled as its own action); one
    /// answer for all of them, waited for off the UI thread.
    fn act_on_each(
        &mut self,
        review_ids: Vec<String>,
        action: Action,
        note: String,
        app: &App,
    ) -> Next {
        let mut waiting = Vec::new();
        for id in review_ids {
            let (tx, rx) = oneshot::channel();
            let command = Command::Act {
                review_id: id.clone(),
                actor: app.operator.clone(),
                action: action.clone(),
                note: note.clone(),
                reply: tx,
            };
            let sent = match self.engine.send(command) {
                Ok(()) => Ok(rx),
                Err(Busy::Full) => Err("the engine is busy: try again"),
                Err(Busy::Gone) => Err("the engine has stopped"),
            };
            waiting.push((id, sent));
        }
        let back = self.back.0.clone();
        let name = action.name();
        let waiter = std::thread::Builder::new()
            .name("bulk-answer".into())
            .spawn(move || {
                let answers = waiting
                    .into_iter()
                    .map(|(id, sent)| {
                        let answer = match sent.map(|rx| rx.blocking_recv()) {
                            Ok(Ok(Ok(r))) => Ok(r.actor.name),
                            Ok(Ok(Err(e))) => Err(e.to_string()),
                            Ok(Err(_)) => Err("the engine has stopped".to_string()),
                            Err(why) => Err(why.to_string()),
                        };
                        (id, answer)
                    })
                    .collect();
                let _ = back.send(Message::Acted(acted(name, answers)));
            });
        match waiter {
            Ok(_) => Next::Wait,
            Err(e) => Next::Tell(Message::Acted(Err(e.to_string()))),
        }
    }
}

/// A ramp after a lead's call, in a line.
pub(crate) fn ramp_said(state: &crate::decide::ramp::RampState) -> String {
    format!(
        "ramp {} {}: {}",
        state.id,
        state.status.as_str(),
        state.reason
    )
}

/// The server's answer to a ramp call (`{"ramp": state}`), in a line.
pub(crate) fn ramp_answer(v: &serde_json::Value) -> String {
    serde_json::from_value::<crate::decide::ramp::RampState>(v.clone())
        .map_or_else(|_| "ramp called".to_string(), |s| ramp_said(&s))
}

/// One answer for an action taken on one or more items: who did it, and
/// which were refused and why.
pub(crate) fn acted(
    action: &str,
    answers: Vec<(String, Result<String, String>)>,
) -> Result<String, String> {
    let total = answers.len();
    let (done, refused): (Vec<_>, Vec<_>) = answers.into_iter().partition(|(_, a)| a.is_ok());
    match (done.as_slice(), refused.as_slice()) {
        ([(id, Ok(actor))], []) => Ok(format!("{action} {id} by {actor}")),
        (_, []) => {
            let actor = done
                .first()
                .and_then(|(_, a)| a.as_ref().ok().cloned())
                .unwrap_or_default();
            Ok(format!("{action} {total} items by {actor}"))
        }
        // One item refused: the reason, as the engine or server gave it.
        ([], [(_, Err(why))]) => Err(why.clone()),
        _ => {
            let why: Vec<String> = refused
                .iter()
                .take(3)
                .map(|(id, a)| format!("{id}: {}", a.as_ref().err().map_or("", |w| w.as_str())))
                .collect();
            Err(format!(
                "{action}: {} of {total} done, {} refused ({}{})",
                done.len(),
                refused.len(),
                why.join("; "),
                if refused.len() > 3 { "; …" } else { "" }
            ))
        }
    }
}

/// A decision's explanation from the journal, as the detail view shows it.
fn explain(dir: &std::path::Path, decision_id: String) -> Message {
    let text = match crate::journal::read::explain(dir, &decision_id) {
        Ok(Some(e)) => crate::journal::explain::render(&e),
        Ok(None) => {
            format!("{decision_id} is not in the journal yet (it is written within a moment)")
        }
        Err(e) => format!("reading the journal: {e}"),
    };
    Message::Explained {
        title: format!("decision {decision_id}"),
        text,
    }
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
