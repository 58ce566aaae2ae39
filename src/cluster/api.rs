//! Any node answers the HTTP API for the whole cluster. Each partition's
//! owner answers requests for its partition on `sb.api.<p>` (core NATS
//! request and reply: nothing stored) with the same router a single
//! process serves (`answer`); a node that receives a request asks every
//! partition and gathers their answers (`forward`), as the endpoint needs:
//!
//! - one thing by id (a review item, a task, a page...): the partition
//!   that has it answers, the others say 404;
//! - a list: the partitions' lists, one after another, with a cursor that
//!   holds each partition's own (`Cursor`);
//! - `GET /v1/state`: the partitions' states merged (`state`);
//! - something every partition holds alike (the rota, the versions): the
//!   first partition's answer;
//! - a change every partition makes (a reload, a ramp call): made by all,
//!   answered once all did.
//!
//! The token is checked by the partition that answers, as a single
//! process checks it (the front only refuses a request without one
//! early). A partition without an owner (a takeover under way) makes the
//! answer a 503 naming it, to be tried again: never a list with a hole.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;

use super::{Node, bus};
use crate::intake::{AppState, Refusal};

/// How long a node waits for the partitions' answers.
const ASK_FOR: Duration = Duration::from_secs(5);
/// The largest answer a partition sends back (the bus's own limit is
/// about 1 MiB by default; a list's page stays well under it).
const ANSWER_LIMIT: usize = 8 << 20;
const METHOD: &str = "Sb-Method";
const URI: &str = "Sb-Uri";
const STATUS: &str = "Sb-Status";

/// Answers the HTTP API for `partition` with `router` (its engine's), for
/// as long as the partition runs here.
pub async fn answer(client: async_nats::Client, partition: u32, router: Router) {
    let mut requests = match client.subscribe(bus::api_subject(partition)).await {
        Ok(requests) => requests,
        Err(e) => {
            tracing::warn!(partition, error = %e, "the partition cannot answer the HTTP API");
            return;
        }
    };
    while let Some(message) = requests.next().await {
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let (client, router) = (client.clone(), router.clone());
        tokio::spawn(async move {
            let (headers, body) = respond(router, message).await;
            if let Err(e) = client.publish_with_headers(reply, headers, body).await {
                tracing::warn!(partition, error = %e, "answering a forwarded request");
            }
        });
    }
}

/// Runs one forwarded request through the partition's router.
async fn respond(router: Router, message: async_nats::Message) -> (async_nats::HeaderMap, Bytes) {
    let mut out = async_nats::HeaderMap::new();
    let request = message.headers.as_ref().and_then(|h| {
        let method = Method::from_bytes(h.get(METHOD)?.as_str().as_bytes()).ok()?;
        let uri: Uri = h.get(URI)?.as_str().parse().ok()?;
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        for (name, values) in h.iter() {
            let name: &str = name.as_ref();
            if name.starts_with("Sb-") {
                continue;
            }
            for value in values {
                request = request.header(name, value.as_str());
            }
        }
        request.body(Body::from(message.payload.clone())).ok()
    });
    let Some(request) = request else {
        out.insert(STATUS, "400");
        return (
            out,
            Bytes::from_static(b"{\"error\":\"a forwarded request without its method or URI\"}"),
        );
    };
    let response = match tower::ServiceExt::oneshot(router, request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, ANSWER_LIMIT).await {
        Ok(body) => body,
        Err(e) => {
            out.insert(STATUS, "502");
            let text = serde_json::json!({ "error": format!("the partition's answer: {e}") });
            return (out, Bytes::from(text.to_string()));
        }
    };
    out.insert(STATUS, parts.status.as_str());
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            out.append(name.as_str(), value);
        }
    }
    (out, body)
}

/// A partition's answer to a forwarded request.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub partition: u32,
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub(super) fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        // The partition's own, not the bytes' default.
        response.headers_mut().remove(header::CONTENT_TYPE);
        for (name, value) in self.headers {
            let lower = name.to_ascii_lowercase();
            if lower == "content-length" || lower == "transfer-encoding" {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(lower.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// How the partitions' answers to an endpoint make one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Gather {
    /// One thing by id: the partition that has it.
    One,
    /// A list: each partition's, one after another. `key`: where the
    /// items are in an object body (none: the body is the list); `cursor`:
    /// the query parameter that pages.
    List {
        key: Option<&'static str>,
        cursor: &'static str,
        /// Every partition holds each item (silences): listed once by id.
        once: bool,
    },
    /// `/v1/state`, merged.
    State,
    /// The same in every partition: the first answer.
    Same,
    /// A change every partition makes.
    All,
    /// `/metrics`: the node's own and its partitions' (`metrics`).
    Metrics,
}

/// How `method path` is gathered; a refusal for what a cluster does not
/// answer yet.
pub(super) fn gather_of(method: &Method, path: &str) -> Result<Gather, Refusal> {
    let get = method == Method::GET;
    let list = |key, cursor| Gather::List {
        key,
        cursor,
        once: false,
    };
    let gather = match path {
        "/v1/state" if get => Gather::State,
        "/v1/reviews" if get => list(Some("items"), "after"),
        "/v1/quarantine" if get => list(Some("items"), "after"),
        "/v1/history" if get => list(Some("history"), "before"),
        "/v1/tasks" | "/v1/flows" | "/v1/pages" | "/v1/incidents" if get => list(None, "after"),
        "/api/v2/silences" if get => Gather::List {
            key: None,
            cursor: "after",
            once: true,
        },
        "/v1/config" | "/v1/oncall" | "/v1/ramp" | "/api/v2/status" | "/v1/silences/preview"
            if get =>
        {
            Gather::Same
        }
        // Silences and on-call overrides hold in every partition: made,
        // changed and ended in all (a new silence under one id).
        "/v1/config/reload" | "/api/v2/silences" | "/v1/oncall/overrides" => Gather::All,
        _ if path.starts_with("/v1/ramp/") => Gather::All,
        _ if path.starts_with("/api/v2/silence/") && !get => Gather::All,
        "/metrics" if get => Gather::Metrics,
        _ => Gather::One,
    };
    Ok(gather)
}

/// The node's fallback: every endpoint the node does not answer itself,
/// asked of the partitions and gathered.
pub async fn forward(node: Arc<Node>, State(state): State<AppState>, request: Request) -> Response {
    match forward_request(&node, &state, request).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

async fn forward_request(
    node: &Node,
    state: &AppState,
    request: Request,
) -> Result<Response, Refusal> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let signed_link = parts.method == Method::GET && path.starts_with("/v1/pages/");
    if !signed_link {
        // Refused here rather than by sixteen partitions.
        state.tokens.check_read(&parts.headers)?;
    }
    let gather = gather_of(&parts.method, &path)?;
    let body = axum::body::to_bytes(body, state.body_limit)
        .await
        .map_err(|e| {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request's body: {e}"),
            )
        })?;
    let mut headers = parts.headers.clone();
    // A client's own `sb-` headers are not passed on: they are the
    // cluster's, between its nodes.
    let ours: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("sb-"))
        .cloned()
        .collect();
    for name in ours {
        headers.remove(name);
    }
    if path == "/api/v2/silences" && parts.method == Method::POST {
        let id = uuid::Uuid::new_v4().to_string();
        if let Ok(id) = HeaderValue::from_str(&id) {
            headers.insert(crate::intake::SILENCE_ID, id);
        }
    }
    let base = Forwarded {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers,
        body,
    };
    let last_event = state.events.as_ref().map(|hub| hub.last_id());
    let partitions: Vec<u32> = (0..node.settings.partitions).collect();
    match gather {
        Gather::List { key, cursor, once } => {
            let cursors = super::cursor::Cursor::from_query(&parts.uri, cursor)?;
            let asked: Vec<(u32, Forwarded)> = partitions
                .iter()
                .filter_map(|&p| cursors.request_for(p, &base, cursor).map(|f| (p, f)))
                .collect();
            let answers = ask_all(node, asked).await;
            let answers = whole(answers)?;
            super::cursor::merge_list(answers, &parts.uri, (key, once), cursor)
        }
        Gather::State => {
            let asked = partitions.iter().map(|&p| (p, base.clone())).collect();
            let answers = whole(ask_all(node, asked).await)?;
            super::state::merge(
                answers,
                last_event,
                state.events.as_ref().map(|h| h.clients()),
            )
        }
        Gather::Metrics => {
            let owned = node.view().owned;
            let asked = owned.iter().map(|&p| (p, base.clone())).collect();
            // A partition that moved meanwhile is its new owner's to show.
            let texts: Vec<(u32, String)> = ask_all(node, asked)
                .await
                .into_iter()
                .flatten()
                .filter(|a| a.status.is_success())
                .map(|a| (a.partition, String::from_utf8_lossy(&a.body).into_owned()))
                .collect();
            // The node's log keeps what it acknowledged (`retain`); what
            // waits to be decided is each partition's backlog.
            let own = crate::intake::metrics::render(
                &state.counters,
                &Default::default(),
                0,
                &state.log,
                state.events.as_deref(),
                None,
            );
            let text = super::metrics::merge(&own, &texts);
            Ok((
                [(header::CONTENT_TYPE, crate::intake::metrics::CONTENT_TYPE)],
                text,
            )
                .into_response())
        }
        Gather::One | Gather::Same | Gather::All => {
            let asked = partitions.iter().map(|&p| (p, base.clone())).collect();
            choose(gather, ask_all(node, asked).await)
        }
    }
}

/// A request as it is asked of a partition.
#[derive(Debug, Clone)]
pub(super) struct Forwarded {
    pub method: Method,
    pub uri: Uri,
    pub headers: axum::http::HeaderMap,
    pub body: Bytes,
}

/// Asks each partition its request at once; a partition that does not
/// answer (no owner now, or none within `ASK_FOR`) is an `Err` naming why.
async fn ask_all(node: &Node, asked: Vec<(u32, Forwarded)>) -> Vec<Result<Answer, (u32, String)>> {
    let client = &node.bus.client;
    let asks = asked.into_iter().map(|(partition, f)| async move {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(METHOD, f.method.as_str());
        headers.insert(URI, f.uri.to_string());
        for (name, value) in &f.headers {
            let skip = [
                header::HOST,
                header::CONTENT_LENGTH,
                header::CONNECTION,
                header::ACCEPT_ENCODING,
            ];
            if skip.contains(name) {
                continue;
            }
            if let Ok(value) = value.to_str() {
                headers.append(name.as_str(), value);
            }
        }
        let asked = client.request_with_headers(bus::api_subject(partition), headers, f.body);
        let message = match tokio::time::timeout(ASK_FOR, asked).await {
            Ok(Ok(message)) => message,
            Ok(Err(e)) => return Err((partition, e.to_string())),
            Err(_) => {
                return Err((
                    partition,
                    format!("no answer within {} s", ASK_FOR.as_secs()),
                ));
            }
        };
        let Some(h) = message.headers.as_ref() else {
            return Err((partition, "an answer without its status".into()));
        };
        let status = h
            .get(STATUS)
            .and_then(|s| s.as_str().parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| (partition, "an answer without its status".to_string()))?;
        let headers = h
            .iter()
            .filter(|(name, _)| !AsRef::<str>::as_ref(*name).starts_with("Sb-"))
            .flat_map(|(name, values)| {
                values.iter().map(|v| {
                    (
                        AsRef::<str>::as_ref(name).to_string(),
                        v.as_str().to_string(),
                    )
                })
            })
            .collect();
        Ok(Answer {
            partition,
            status,
            headers,
            body: message.payload,
        })
    });
    futures_util::future::join_all(asks).await
}

/// Every partition's answer, or a 503 naming those that gave none.
fn whole(answers: Vec<Result<Answer, (u32, String)>>) -> Result<Vec<Answer>, Refusal> {
    let (got, missing) = split(answers);
    if missing.is_empty() {
        Ok(got)
    } else {
        Err(unanswered(&missing))
    }
}

/// The partitions' answers, and those that gave none (with why).
fn split(answers: Vec<Result<Answer, (u32, String)>>) -> (Vec<Answer>, Vec<(u32, String)>) {
    let mut got = Vec::with_capacity(answers.len());
    let mut missing = Vec::new();
    for answer in answers {
        match answer {
            Ok(answer) => got.push(answer),
            Err(gone) => missing.push(gone),
        }
    }
    (got, missing)
}

fn unanswered(missing: &[(u32, String)]) -> Refusal {
    let named: Vec<String> = missing
        .iter()
        .map(|(p, why)| format!("partition {p} ({why})"))
        .collect();
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "not every partition answered: {}; a takeover may be under way, try again",
            named.join(", ")
        ),
    )
    .retry_later()
}

/// The answer for `One`, `Same` and `All`.
fn choose(
    gather: Gather,
    answers: Vec<Result<Answer, (u32, String)>>,
) -> Result<Response, Refusal> {
    let (mut got, missing) = split(answers);
    let chosen = match gather {
        // The partition that has it; with partitions silent, a 404 would
        // be a guess.
        Gather::One => got
            .iter()
            .position(|a| a.status != StatusCode::NOT_FOUND)
            .or_else(|| missing.is_empty().then_some(0)),
        Gather::Same => got
            .iter()
            .position(|a| a.status.is_success())
            .or_else(|| missing.is_empty().then_some(0)),
        // Done only once every partition did it.
        _ if !missing.is_empty() => None,
        _ => got.iter().position(|a| !a.status.is_success()).or(Some(0)),
    };
    match chosen {
        Some(i) if i < got.len() => Ok(got.swap_remove(i).into_response()),
        _ => Err(unanswered(&missing)),
    }
}
