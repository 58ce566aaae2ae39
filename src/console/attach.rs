//! The console attached to a running `signalbox serve`: the state to start
//! from (`GET /v1/state`), the event stream after it (`GET /v1/events`),
//! the figures polled every second (which also gives the round-trip time),
//! and the operator's actions through the HTTP API with the token's
//! identity. A lost connection is said on the header; the last state stays
//! on screen, marked stale, while the link reconnects with backoff and
//! resumes after the last event it saw.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::app::Message;
use super::backend::{self, Answer, Backend, Request};
use super::feed::Feed;
use super::link::{Link, LinkState, Update};
use crate::decide::Decision;
use crate::engine::EngineEvent;
use crate::engine::overview::State;
use crate::flow::TaskAction;
use crate::review::{Action, ReviewItem, ReviewRow};
use crate::signal::Signal;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The server the console talks to.
#[derive(Clone)]
pub struct Remote {
    pub base: String,
    token: Option<String>,
    client: reqwest::blocking::Client,
}

impl Remote {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Remote> {
        let base = base.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|e| anyhow::anyhow!("{base:?} is not a URL: {e}"))?;
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        Ok(Remote {
            base,
            token,
            client,
        })
    }

    fn get(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        let r = self.client.get(format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn delete(&self, path: &str) -> Result<(), String> {
        let mut r = self
            .client
            .delete(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(10));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        let response = r.send().map_err(|e| format!("{}: {e}", self.base))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let v: Value = response.json().unwrap_or(Value::Null);
        Err(v["error"]
            .as_str()
            .map_or_else(|| status.to_string(), String::from))
    }

    fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(10))
            .json(&body);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        let response = r.send().map_err(|e| format!("{}: {e}", self.base))?;
        let status = response.status();
        let v: Value = response.json().unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            Err(v["error"]
                .as_str()
                .map_or_else(|| status.to_string(), String::from))
        }
    }

    fn state(&self, overview_only: bool) -> Result<(State, Duration), String> {
        let began = Instant::now();
        let path = if overview_only {
            "/v1/state?part=overview"
        } else {
            "/v1/state"
        };
        let mut state = self.state_page(path)?;
        // The open review items come a page at a time.
        while let Some(after) = state.next.take() {
            let page = self.state_page(&format!(
                "/v1/state?limit={}&after={}",
                crate::page::MAX_LIMIT,
                percent_encoding::utf8_percent_encode(&after, percent_encoding::NON_ALPHANUMERIC)
            ))?;
            state.reviews.extend(page.reviews);
            state.next = page.next;
        }
        Ok((state, began.elapsed()))
    }

    /// The last decisions (before decision `before`, if given) and their
    /// signals as events, oldest first (`GET /v1/history`), and whether
    /// the server has more before them.
    fn history(&self, before: Option<&str>) -> Result<(Vec<EngineEvent>, bool), String> {
        let mut path = format!("/v1/history?limit={}", super::backend::HISTORY_PAGE);
        if let Some(before) = before {
            let before =
                percent_encoding::utf8_percent_encode(before, percent_encoding::NON_ALPHANUMERIC);
            path.push_str(&format!("&before={before}"));
        }
        let response = self
            .get(&path)
            .timeout(Duration::from_secs(30))
            .send()
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("GET {path}: {}", response.status()));
        }
        let v: Value = response.json().map_err(|e| format!("GET {path}: {e}"))?;
        let mut out = Vec::new();
        let items = v["history"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for item in items {
            if let Ok(signal) = serde_json::from_value::<Signal>(item["signal"].clone()) {
                out.push(EngineEvent::Signal {
                    signal: Arc::new(signal),
                    duplicate: false,
                });
            }
            match serde_json::from_value::<Decision>(item["decision"].clone()) {
                Ok(d) => out.push(EngineEvent::Decision(Arc::new(d))),
                Err(e) => {
                    tracing::warn!(error = %e, "a decision of the history the console cannot read")
                }
            }
        }
        Ok((out, v["next"].is_string()))
    }

    /// What a silence with these matchers would match
    /// (`GET /v1/silences/preview`).
    fn preview_silence(&self, matchers: Vec<String>) -> Message {
        let remote = self;
        let query: Vec<String> = matchers
            .iter()
            .map(|m| {
                let m =
                    percent_encoding::utf8_percent_encode(m, percent_encoding::NON_ALPHANUMERIC);
                format!("matcher={m}")
            })
            .collect();
        let answer = remote
            .get(&format!("/v1/silences/preview?{}", query.join("&")))
            .timeout(Duration::from_secs(30))
            .send()
            .map_err(|e| e.to_string())
            .and_then(|r| {
                let status = r.status();
                let v: Value = r.json().unwrap_or(Value::Null);
                match status.is_success() {
                    true => Ok(super::app::SilencePreview {
                        open_items: v["open_items"].as_u64().unwrap_or(0) as usize,
                        last_day: v["last_day"].as_u64().unwrap_or(0),
                    }),
                    false => Err(v["error"]
                        .as_str()
                        .map_or_else(|| status.to_string(), String::from)),
                }
            });
        Message::SilencePreview {
            matchers,
            preview: answer,
        }
    }

    /// One `GET /v1/state` page.
    fn state_page(&self, path: &str) -> Result<State, String> {
        let response = self
            .get(path)
            .timeout(Duration::from_secs(10))
            .send()
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("GET {path}: {}", response.status()));
        }
        response.json().map_err(|e| format!("GET {path}: {e}"))
    }

    /// An action on review items, one request each, in order; one answer
    /// for all of them.
    fn act(&self, review_ids: Vec<String>, action: &Action, note: &str) -> Message {
        let mut body = json!({"action": action.name(), "note": note});
        match action {
            Action::Override { option } => body["option"] = json!(option),
            Action::Snooze { minutes } => body["minutes"] = json!(minutes),
            _ => {}
        }
        let answers = review_ids
            .into_iter()
            .map(|id| {
                let answer = self
                    .post(&format!("/v1/reviews/{id}/actions"), body.clone())
                    .map(|v| v["actor"].as_str().unwrap_or("?").to_string());
                (id, answer)
            })
            .collect();
        Message::Acted(backend::acted(action.name(), answers))
    }

    /// An action on a task.
    fn task_act(&self, task_id: &str, action: &TaskAction, note: &str) -> Message {
        let mut body = json!({"note": note});
        if let TaskAction::Reassign { team, agent } = action {
            body["team"] = json!(team);
            body["agent"] = json!(agent);
        }
        let answer = self
            .post(&format!("/v1/tasks/{task_id}/{}", action.as_str()), body)
            .map(|t| format!("task {task_id} {}", t["state"].as_str().unwrap_or("?")));
        Message::Acted(answer)
    }

    /// A lead's call on the guarded ramp.
    fn ramp(&self, call: crate::decide::ramp::LeadCall, note: &str) -> Message {
        let answer = self
            .post(
                &format!("/v1/ramp/{}", call.as_str()),
                json!({ "note": note }),
            )
            .map(|v| backend::ramp_answer(&v["ramp"]));
        Message::Acted(answer)
    }

    /// A decision's explanation, as the server renders it.
    fn explain(&self, decision_id: &str) -> Message {
        let text = self
            .get(&format!("/v1/decisions/{decision_id}?format=text"))
            .timeout(Duration::from_secs(10))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_else(|e| format!("asking {}: {e}", self.base));
        Message::Explained {
            title: format!("decision {decision_id}"),
            text,
        }
    }
}

impl Remote {
    /// The decision in words, by the server's advisor.
    fn words(&self, decision_id: &str) -> Message {
        let answer = self
            .get(&format!("/v1/decisions/{decision_id}?words=1"))
            .timeout(Duration::from_secs(120))
            .send()
            .and_then(|r| r.json::<Value>());
        let text = match answer {
            Err(e) => format!("asking {}: {e}", self.base),
            Ok(v) => match serde_json::from_value::<crate::advisor::words::Words>(v.clone()) {
                Ok(words) => words.render(),
                Err(_) => v["error"].as_str().unwrap_or("no answer").to_string(),
            },
        };
        Message::Explained {
            title: format!("decision {decision_id} in words"),
            text,
        }
    }
}

/// The server carries out the requests, as the token's identity (the
/// operator named on this side is not sent: the server knows who it is).
impl Backend for Remote {
    fn start(&self, request: Request, _operator: &crate::review::Actor) -> Answer {
        let remote = self.clone();
        match request {
            Request::Act {
                review_ids,
                action,
                note,
            } => Box::new(move || remote.act(review_ids, &action, &note)),
            Request::TaskAct {
                task_id,
                action,
                note,
            } => Box::new(move || remote.task_act(&task_id, &action, &note)),
            Request::Ramp { call, note } => Box::new(move || remote.ramp(call, &note)),
            Request::SetOverride {
                schedule,
                person,
                from,
                to,
            } => Box::new(move || {
                let body = json!({
                    "schedule": schedule, "person": person,
                    "from": from.to_rfc3339(), "to": to.to_rfc3339(),
                });
                let answer = remote
                    .post("/v1/oncall/overrides", body)
                    .and_then(|v| {
                        serde_json::from_value::<crate::paging::Override>(v)
                            .map_err(|e| format!("the server's override: {e}"))
                    })
                    .map(|o| super::backend::override_said(&o));
                Message::Acted(answer)
            }),
            Request::ResolveIncident { incident_id } => Box::new(move || {
                let answer = remote
                    .post(&format!("/v1/incidents/{incident_id}/resolve"), json!({}))
                    .map(|i| {
                        format!(
                            "incident {incident_id} {}",
                            i["state"].as_str().unwrap_or("?")
                        )
                    });
                Message::Acted(answer)
            }),
            Request::PreviewSilence { matchers } => {
                Box::new(move || remote.preview_silence(matchers))
            }
            Request::PutSilence {
                matchers,
                starts,
                ends,
                comment,
            } => Box::new(move || {
                let answer = backend::parse_matchers(&matchers).and_then(|parsed| {
                    let body = json!({
                        "matchers": parsed,
                        "startsAt": starts,
                        "endsAt": ends,
                        "createdBy": "",
                        "comment": comment,
                    });
                    remote.post("/api/v2/silences", body).map(|v| {
                        backend::silence_said(v["silenceID"].as_str().unwrap_or("?"), ends)
                    })
                });
                Message::Acted(answer)
            }),
            Request::ExpireSilence { silence_id } => Box::new(move || {
                Message::Acted(
                    remote
                        .delete(&format!("/api/v2/silence/{silence_id}"))
                        .map(|()| format!("silence {silence_id} expired")),
                )
            }),
            Request::PageAct { page_id, action } => Box::new(move || {
                let verb = match action {
                    crate::engine::PageAction::Acknowledge => "ack",
                    crate::engine::PageAction::Resolve => "resolve",
                };
                let answer = remote
                    .post(&format!("/v1/pages/{page_id}/{verb}"), json!({}))
                    .map(|p| format!("page {page_id} {}", p["state"].as_str().unwrap_or("?")));
                Message::Acted(answer)
            }),
            Request::Explain { decision_id } => Box::new(move || remote.explain(&decision_id)),
            Request::Words { decision_id } => Box::new(move || remote.words(&decision_id)),
            Request::History { before } => {
                Box::new(move || Message::Older(remote.history(Some(&before))))
            }
        }
    }
}

/// Who the server says the token is (`GET /v1/me`), checked before the
/// terminal is taken: a wrong token or an unreachable server is said plainly.
pub fn whoami(url: &str, token: Option<&str>) -> anyhow::Result<crate::review::Actor> {
    let remote = Remote::new(url, token.map(String::from))?;
    let response = remote
        .get("/v1/me")
        .timeout(Duration::from_secs(5))
        .send()
        .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", remote.base))?;
    let status = response.status();
    let v: Value = response.json().unwrap_or(Value::Null);
    if !status.is_success() {
        let why = v["error"].as_str().unwrap_or("");
        anyhow::bail!("{} refused: {status} {why}", remote.base);
    }
    let name = v["name"].as_str().unwrap_or("unknown");
    let role = v["role"]
        .as_str()
        .and_then(crate::decide::policy::Role::parse)
        .unwrap_or(crate::decide::policy::Role::Viewer);
    Ok(crate::review::Actor::new(name, role))
}

/// Follows the server until `stop` is set: state, then events, then again
/// after any loss. Everything goes to `feed`, which coalesces it for the UI.
pub fn spawn(remote: Remote, feed: Feed, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    // The poller: the figures, and the round trip.
    {
        let (remote, feed, stop) = (remote.clone(), feed.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok((state, rtt)) = remote.state(true) {
                    let sent = feed.publish(Update::Status(Box::new(state.overview)));
                    if sent.is_err() || feed.publish(Update::Rtt(rtt)).is_err() {
                        return;
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    std::thread::spawn(move || follow(&remote, &feed, &stop))
}

fn link(remote: &Remote, state: LinkState) -> Update {
    Update::Link(Link {
        server: remote.base.clone(),
        state,
        rtt: None,
    })
}

/// The connection loop: (re)connect, read, and on loss wait and resume.
fn follow(remote: &Remote, feed: &Feed, stop: &AtomicBool) {
    let mut last: Option<u64> = None;
    let mut recent = Recent::default();
    let mut attempt = 0u32;
    while !stop.load(Ordering::Relaxed) {
        if last.is_none() {
            match remote.state(false) {
                Ok((state, _)) => {
                    let first = last.is_none() && attempt == 0;
                    last = Some(state.last_event_id);
                    if feed.publish(Update::Snapshot(Box::new(state))).is_err() {
                        return;
                    }
                    // The recent past, once, before the stream goes on
                    // from now: the Audit and Signals views start with it.
                    if first
                        && let Ok((past, _)) = remote.history(None)
                        && feed.events(past).is_err()
                    {
                        return;
                    }
                }
                Err(why) => {
                    attempt += 1;
                    let _ = feed.publish(link(remote, LinkState::Lost { why, attempt }));
                    backoff(attempt, stop);
                    continue;
                }
            }
        }
        let why = match read_stream(remote, feed, &mut last, &mut recent, stop) {
            Ok(()) => "the server closed the stream".to_string(),
            Err(why) => why,
        };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        attempt += 1;
        if feed
            .publish(link(remote, LinkState::Lost { why, attempt }))
            .is_err()
        {
            return;
        }
        backoff(attempt, stop);
    }
}

fn backoff(attempt: u32, stop: &AtomicBool) {
    let wait = Duration::from_millis(250 * 2u64.saturating_pow(attempt.min(6))).min(MAX_BACKOFF);
    let until = Instant::now() + wait;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the stream after `last` until it ends; `last` follows each event.
/// A `reset` clears `last` (the state is fetched again); `lagged` ends it.
fn read_stream(
    remote: &Remote,
    feed: &Feed,
    last: &mut Option<u64>,
    recent: &mut Recent,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut request = remote.get("/v1/events");
    if let Some(id) = *last {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("GET /v1/events: {}", response.status()));
    }
    let _ = feed.publish(link(remote, LinkState::Connected));
    let (mut id, mut name, mut data) = (None, String::new(), String::new());
    for line in BufReader::new(response).lines() {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let line = line.map_err(|e| e.to_string())?;
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse::<u64>().ok();
        } else if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        } else if line.is_empty() && !name.is_empty() {
            let (kind, body) = (std::mem::take(&mut name), std::mem::take(&mut data));
            match kind.as_str() {
                "reset" => {
                    *last = None;
                    return Err("the server no longer holds what was missed: reloading".into());
                }
                "lagged" => return Err("this console fell behind the server".into()),
                _ => {}
            }
            if let Some(i) = id.take() {
                *last = Some(i);
            }
            match recent.read(remote, &kind, &body) {
                Ok(event) => {
                    if feed.events(vec![event]).is_err() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    tracing::warn!(event = %kind, error = %e, "an event the console cannot read")
                }
            }
        }
    }
    Ok(())
}

/// Decisions and signals read last, for the review items the stream names
/// them in (an item follows its decision at once).
#[derive(Default)]
struct Recent {
    decisions: Kept<Decision>,
    signals: Kept<Signal>,
}

/// Values by id, the newest `RECENT` of them.
struct Kept<T> {
    by_id: HashMap<String, Arc<T>>,
    order: VecDeque<String>,
}

/// Decisions (and signals) kept for joining, at most.
const RECENT: usize = 4_096;

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Kept {
            by_id: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<T> Kept<T> {
    fn insert(&mut self, id: &str, value: &Arc<T>) {
        if self
            .by_id
            .insert(id.to_string(), Arc::clone(value))
            .is_none()
        {
            self.order.push_back(id.to_string());
        }
        while self.order.len() > RECENT {
            if let Some(gone) = self.order.pop_front() {
                self.by_id.remove(&gone);
            }
        }
    }

    fn get(&self, id: &str) -> Option<Arc<T>> {
        self.by_id.get(id).cloned()
    }
}

impl Recent {
    /// An event from its stream name and data.
    fn read(&mut self, remote: &Remote, name: &str, data: &str) -> Result<EngineEvent, String> {
        if name == "review_opened" {
            let row: ReviewRow = serde_json::from_str(data).map_err(|e| e.to_string())?;
            return self
                .join(remote, row)
                .map(|item| EngineEvent::ReviewOpened(Box::new(item)));
        }
        // From text, not through a `Value`: a decision's snapshot holds raw
        // JSON, which only a text source can give.
        let text = format!("{{\"type\":{},\"data\":{data}}}", Value::from(name));
        let event = serde_json::from_str::<EngineEvent>(&text).map_err(|e| e.to_string())?;
        match &event {
            EngineEvent::Signal { signal, .. } => self.signals.insert(&signal.id, signal),
            EngineEvent::Decision(d) => self.decisions.insert(&d.id, d),
            _ => {}
        }
        Ok(event)
    }

    /// The item whole: its decision and signal from those read, or (when
    /// this console came in between) from `GET /v1/reviews/{id}`.
    fn join(&self, remote: &Remote, row: ReviewRow) -> Result<ReviewItem, String> {
        let decision = self.decisions.get(&row.decision_id);
        let signal = self.signals.get(&row.signal_id);
        if let (Some(d), Some(s)) = (decision, signal) {
            return Ok(row.into_item(d, s));
        }
        let path = format!(
            "/v1/reviews/{}",
            percent_encoding::utf8_percent_encode(&row.id, percent_encoding::NON_ALPHANUMERIC)
        );
        let response = remote
            .get(&path)
            .send()
            .map_err(|e| format!("GET {path}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {path}: {}", response.status()));
        }
        let text = response.text().map_err(|e| format!("GET {path}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}"))
    }
}
