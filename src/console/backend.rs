//! Where the console's requests are carried out: the embedded engine
//! (`Embedded`: commands through its handle, explanations read from its
//! journal) or a running server (`attach::Remote`: its HTTP API). Either
//! backend starts a request at once (the embedded engine has the command
//! queued before the next key is read) and hands back what answers it; the
//! console's one `Worker` thread runs those answers in order and passes
//! each on as a `Message`, so the UI never waits on the engine, the
//! journal or the network.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};

use tokio::sync::oneshot;

use super::app::{Effect, Message, SilencePreview};
use crate::decide::ramp::LeadCall;
use crate::engine::EngineError;
use crate::engine::host::{Busy, Command, Handle};
use crate::flow::TaskAction;
use crate::review::{Action, Actor};

/// What the console asks of its backend.
pub enum Request {
    /// One action on each of these review items, one command each.
    Act {
        review_ids: Vec<String>,
        action: Action,
        note: String,
    },
    TaskAct {
        task_id: String,
        action: TaskAction,
        note: String,
    },
    /// A decision's explanation, as the detail view shows it.
    Explain { decision_id: String },
    /// The same in words, by the advisor.
    Words { decision_id: String },
    /// A lead's call on the guarded ramp.
    Ramp { call: LeadCall, note: String },
    /// Acknowledge or resolve a page.
    PageAct {
        page_id: String,
        action: crate::engine::PageAction,
    },
    /// Resolve an incident as the console's operator.
    ResolveIncident { incident_id: String },
    /// End a silence now (the operator's own, or any as a lead).
    ExpireSilence { silence_id: String },
    /// Count what a silence with these matchers would match.
    PreviewSilence { matchers: Vec<String> },
    /// Make a silence from `starts` to `ends`.
    PutSilence {
        matchers: Vec<String>,
        starts: chrono::DateTime<chrono::Utc>,
        ends: chrono::DateTime<chrono::Utc>,
        comment: String,
    },
    /// The decisions (and their signals) journaled before `before`.
    History { before: String },
    /// Put `person` on call on `schedule` for a while.
    SetOverride {
        schedule: String,
        person: String,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    },
}

impl Request {
    /// The request an effect makes; the effects the UI carries out itself
    /// (quitting, switching the theme) are handed back.
    pub fn of(effect: Effect) -> Result<Request, Effect> {
        Ok(match effect {
            Effect::Act {
                review_id,
                action,
                note,
            } => Request::Act {
                review_ids: vec![review_id],
                action,
                note,
            },
            Effect::ActOnEach {
                review_ids,
                action,
                note,
            } => Request::Act {
                review_ids,
                action,
                note,
            },
            Effect::TaskAct {
                task_id,
                action,
                note,
            } => Request::TaskAct {
                task_id,
                action,
                note,
            },
            Effect::Explain { decision_id } => Request::Explain { decision_id },
            Effect::Words { decision_id } => Request::Words { decision_id },
            Effect::OlderHistory { before } => Request::History { before },
            Effect::Ramp { call, note } => Request::Ramp { call, note },
            Effect::PageAct { page_id, action } => Request::PageAct { page_id, action },
            Effect::ResolveIncident { incident_id } => Request::ResolveIncident { incident_id },
            Effect::ExpireSilence { silence_id } => Request::ExpireSilence { silence_id },
            Effect::PreviewSilence { matchers } => Request::PreviewSilence { matchers },
            Effect::PutSilence {
                matchers,
                starts,
                ends,
                comment,
            } => Request::PutSilence {
                matchers,
                starts,
                ends,
                comment,
            },
            Effect::SetOverride {
                schedule,
                person,
                from,
                to,
            } => Request::SetOverride {
                schedule,
                person,
                from,
                to,
            },
            other => return Err(other),
        })
    }
}

/// Decisions in one page of history.
pub const HISTORY_PAGE: usize = 200;

/// A page of history as the events the console folds: each decision
/// after its signal, oldest first.
pub fn history_events(
    past: Vec<(Option<crate::signal::Signal>, crate::decide::Decision)>,
) -> Vec<crate::engine::EngineEvent> {
    use crate::engine::EngineEvent;
    let mut out = Vec::with_capacity(past.len() * 2);
    for (signal, decision) in past {
        if let Some(signal) = signal {
            out.push(EngineEvent::Signal {
                signal: std::sync::Arc::new(signal),
                duplicate: false,
            });
        }
        out.push(EngineEvent::Decision(std::sync::Arc::new(decision)));
    }
    out
}

/// What answers a request, run on the worker.
pub type Answer = Box<dyn FnOnce() -> Message + Send>;

/// Carries out the console's requests.
pub trait Backend {
    /// Starts `request` for `operator`; what answers it is run on the
    /// worker.
    fn start(&self, request: Request, operator: &Actor) -> Answer;
}

/// The console's one worker: answers requests in order, off the UI thread.
pub struct Worker {
    jobs: Sender<Answer>,
    answers: Receiver<Message>,
}

impl Worker {
    pub fn spawn() -> std::io::Result<Worker> {
        let (jobs, todo) = mpsc::channel::<Answer>();
        let (back, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name("console-answers".into())
            .spawn(move || {
                for job in todo {
                    if back.send(job()).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker { jobs, answers })
    }

    /// Queues `answer`; `Err` with a message saying so if the worker is gone.
    pub fn answer(&self, answer: Answer) -> Result<(), Message> {
        self.jobs
            .send(answer)
            .map_err(|_| Message::Acted(Err("the console's answer thread has stopped".into())))
    }

    /// Answers that have come since the last call.
    pub fn arrived(&self) -> Vec<Message> {
        self.answers.try_iter().collect()
    }
}

/// The engine in this process, behind its handle, and its journal.
pub struct Embedded {
    pub engine: Handle,
    pub data_dir: PathBuf,
    /// The advisor `[advisor]` names, if any.
    pub advisor: Option<std::sync::Arc<crate::advisor::Advisor>>,
}

impl Backend for Embedded {
    fn start(&self, request: Request, operator: &Actor) -> Answer {
        match request {
            Request::Act {
                review_ids,
                action,
                note,
            } => self.act_on_each(review_ids, action, note, operator),
            Request::TaskAct {
                task_id,
                action,
                note,
            } => {
                let (reply, rx) = oneshot::channel();
                let command = Command::TaskAct {
                    task_id,
                    action,
                    actor: operator.clone(),
                    note,
                    reply,
                };
                self.send(command, rx, |t| {
                    format!("task {} {} ({})", t.id, t.state, t.template)
                })
            }
            Request::Ramp { call, note } => {
                let (reply, rx) = oneshot::channel();
                let command = Command::Ramp {
                    call,
                    actor: operator.clone(),
                    note,
                    reply,
                };
                self.send(command, rx, |state| ramp_said(&state))
            }
            Request::Explain { decision_id } => self.explained(decision_id, false),
            Request::Words { decision_id } => self.explained(decision_id, true),
            Request::History { before } => self.history(before),
            Request::PageAct { page_id, action } => {
                let (reply, rx) = oneshot::channel();
                let command = Command::PageAct {
                    id: page_id,
                    action,
                    actor: operator.clone(),
                    reply,
                };
                self.send(command, rx, |p| {
                    format!("page {} {}", p.id, p.state.as_str())
                })
            }
            Request::ResolveIncident { incident_id } => {
                let (reply, rx) = oneshot::channel();
                let command = Command::ResolveIncident {
                    id: incident_id,
                    actor: operator.clone(),
                    reply,
                };
                self.send(command, rx, |i| {
                    format!("incident {} {}", i.id, i.state.as_str())
                })
            }
            Request::ExpireSilence { silence_id } => {
                let (reply, rx) = oneshot::channel();
                let command = Command::ExpireSilence {
                    id: silence_id,
                    actor: operator.clone(),
                    reply,
                };
                self.send(command, rx, |s| format!("silence {} expired", s.id))
            }
            Request::PreviewSilence { matchers } => self.preview_silence(matchers),
            Request::PutSilence {
                matchers,
                starts,
                ends,
                comment,
            } => {
                let parsed = match parse_matchers(&matchers) {
                    Ok(m) => m,
                    Err(why) => return Box::new(move || Message::Acted(Err(why))),
                };
                let asked = crate::noise::silence::NewSilence {
                    id: None,
                    new_id: None,
                    matchers: parsed,
                    starts_at: starts,
                    ends_at: ends,
                    comment,
                };
                let (reply, rx) = oneshot::channel();
                let command = Command::PutSilence {
                    asked,
                    actor: operator.clone(),
                    reply,
                };
                self.send(command, rx, |s| silence_said(&s.id, s.ends_at))
            }
            Request::SetOverride {
                schedule,
                person,
                from,
                to,
            } => {
                let (reply, rx) = oneshot::channel();
                let command = Command::Override {
                    schedule,
                    person,
                    from,
                    to,
                    actor: operator.clone(),
                    reply,
                };
                self.send(command, rx, |o| override_said(&o))
            }
        }
    }
}

impl Embedded {
    /// A decision explained from the journal, or in words by the advisor.
    fn explained(&self, decision_id: String, words: bool) -> Answer {
        let dir = self.data_dir.clone();
        let advisor = self.advisor.clone();
        Box::new(move || match words {
            true => in_words(&dir, advisor.as_deref(), decision_id),
            false => explain(&dir, decision_id),
        })
    }

    /// Counts what a silence would match: the open items (the engine's),
    /// then the last day's signals (the journal's, read on the worker).
    /// The page of history before decision `before`, read from the journal.
    fn history(&self, before: String) -> Answer {
        let dir = self.data_dir.clone();
        Box::new(move || {
            let page = crate::journal::read::history(&dir, HISTORY_PAGE as i64, Some(&before));
            Message::Older(
                page.map(|past| {
                    let more = past.len() == HISTORY_PAGE;
                    (history_events(past), more)
                })
                .map_err(|e| e.to_string()),
            )
        })
    }

    fn preview_silence(&self, matchers: Vec<String>) -> Answer {
        let parsed = match parse_matchers(&matchers) {
            Ok(m) => m,
            Err(why) => {
                return Box::new(move || Message::SilencePreview {
                    matchers,
                    preview: Err(why),
                });
            }
        };
        let (reply, rx) = oneshot::channel();
        let command = Command::SilencePreview {
            matchers: parsed.clone(),
            reply,
        };
        if let Err(busy) = self.engine.send(command) {
            let why = refused(busy).to_string();
            return Box::new(move || Message::SilencePreview {
                matchers,
                preview: Err(why),
            });
        }
        let dir = self.data_dir.clone();
        Box::new(move || {
            let preview = rx
                .blocking_recv()
                .map_err(|_| "the engine has stopped".to_string())
                .and_then(|(open_items, now)| {
                    let since = now - chrono::Duration::days(1);
                    let matches = |s: &crate::signal::Signal| {
                        let labels = crate::noise::labels(s);
                        parsed.iter().all(|m| m.matches(&labels))
                    };
                    crate::journal::read::seen::count_since(&dir, since, matches)
                        .map(|last_day| SilencePreview {
                            open_items,
                            last_day,
                        })
                        .map_err(|e| e.to_string())
                });
            Message::SilencePreview { matchers, preview }
        })
    }

    /// Sends `command`; the answer waits for its reply (once the action is
    /// durable) and says it with `say`.
    fn send<T: Send + 'static>(
        &self,
        command: Command,
        rx: oneshot::Receiver<Result<T, EngineError>>,
        say: impl FnOnce(T) -> String + Send + 'static,
    ) -> Answer {
        if let Err(busy) = self.engine.send(command) {
            let why = refused(busy);
            return Box::new(move || Message::Acted(Err(why.into())));
        }
        Box::new(move || {
            Message::Acted(match rx.blocking_recv() {
                Ok(Ok(value)) => Ok(say(value)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the engine has stopped".to_string()),
            })
        })
    }

    /// One action on each of several items: each a command of its own
    /// (journaled as its own action), one answer for all of them.
    fn act_on_each(
        &self,
        review_ids: Vec<String>,
        action: Action,
        note: String,
        operator: &Actor,
    ) -> Answer {
        let mut waiting = Vec::with_capacity(review_ids.len());
        for id in review_ids {
            let (reply, rx) = oneshot::channel();
            let command = Command::Act {
                review_id: id.clone(),
                actor: operator.clone(),
                action: action.clone(),
                note: note.clone(),
                reply,
            };
            let sent = self.engine.send(command).map(|()| rx).map_err(refused);
            waiting.push((id, sent));
        }
        let name = action.name();
        Box::new(move || {
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
            Message::Acted(acted(name, answers))
        })
    }
}

/// Why the engine did not take a command.
fn refused(busy: Busy) -> &'static str {
    match busy {
        Busy::Full => "the engine is busy: try again",
        Busy::Gone => "the engine has stopped",
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

/// A decision in words, by the advisor, as the detail view shows it.
fn in_words(
    dir: &std::path::Path,
    advisor: Option<&crate::advisor::Advisor>,
    decision_id: String,
) -> Message {
    let text = match (advisor, crate::journal::read::explain(dir, &decision_id)) {
        (None, _) => NO_ADVISOR.to_string(),
        (Some(advisor), Ok(Some(e))) => match advisor.explain(&e) {
            Ok(words) => words.render(),
            Err(e) => e.to_string(),
        },
        (_, Ok(None)) => {
            format!("{decision_id} is not in the journal yet (it is written within a moment)")
        }
        (_, Err(e)) => format!("reading the journal: {e}"),
    };
    Message::Explained {
        title: format!("decision {decision_id} in words"),
        text,
    }
}

/// What the words key says with no advisor configured.
pub const NO_ADVISOR: &str =
    "no advisor: add [advisor] (url, model) to config.toml, or to the deployment's signalbox.toml";

/// An override as the status line says it.
pub fn override_said(o: &crate::paging::Override) -> String {
    format!(
        "{} on call on {} until {} ({})",
        o.person,
        o.schedule,
        o.to.format("%a %H:%M UTC"),
        o.id
    )
}

/// The console's matchers (`name="value"`) as a silence's; the first that
/// does not read.
pub fn parse_matchers(texts: &[String]) -> Result<Vec<crate::noise::Matcher>, String> {
    texts
        .iter()
        .map(|t| {
            crate::signal::labels::parse_matcher(t)
                .ok_or_else(|| format!("matcher {t:?} does not read (name=\"value\")"))
        })
        .collect()
}

/// A silence made, as the status line says it.
pub fn silence_said(id: &str, ends: chrono::DateTime<chrono::Utc>) -> String {
    format!("silence {id} until {}", ends.format("%Y-%m-%d %H:%M UTC"))
}
