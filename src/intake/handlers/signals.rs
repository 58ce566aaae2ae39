//! Signals: CloudEvents in, and what became of a signal.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::ok;
use crate::intake::AppState;
use crate::intake::auth::{Allowed, ToIngest, ToRead};
use crate::intake::refusal::Refusal;
use crate::intake::request::{SourceQuery, content_type, header_text, read_body, read_journal};
use crate::journal::QuarantineState;
use crate::journal::read::SignalState;
use crate::signal::{Signal, wire};

/// What an accepted request answers: the ids of its signals, now durable in
/// the intake log, and how many signals wait to be decided before them.
pub(super) struct Accepted {
    ids: Vec<String>,
    backlog: u64,
}

/// Appends signals to the intake log and waits until they are durable.
pub(super) async fn ingest(
    state: &AppState,
    endpoint: &'static str,
    signals: Vec<Signal>,
) -> Result<Accepted, Refusal> {
    let ids: Vec<String> = signals.iter().map(|s| s.id.clone()).collect();
    if signals.is_empty() {
        // An empty batch is valid, and there is nothing to make durable.
        return Ok(Accepted {
            ids,
            backlog: state.log.backlog(),
        });
    }
    // What the deployment's signal types declare their data holds.
    if let Some(reloader) = &state.reloader {
        for (i, signal) in signals.iter().enumerate() {
            reloader.check_data(signal).map_err(|e| {
                let field = e.field().map(|f| match signals.len() {
                    1 => f.to_string(),
                    _ => format!("[{i}].{f}"),
                });
                Refusal::new(StatusCode::BAD_REQUEST, format!("{} {e}", signal.kind)).field(field)
            })?;
        }
    }
    let durable = state.log.append(&signals)?;
    durable
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the intake log stopped before committing",
            )
        })?
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    // On a cluster node the log keeps them (`cluster::retain`), and the
    // 202 waits for the cluster's stream too (replicated).
    let backlog = match &state.cluster {
        Some(cluster) => {
            cluster
                .publish(signals)
                .await
                .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
            0
        }
        None => state.log.backlog(),
    };
    state.counters.accepted(endpoint, ids.len() as u64);
    Ok(Accepted { ids, backlog })
}

pub(super) fn accepted(a: &Accepted) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "accepted": a.ids.len(),
            "ids": a.ids,
            "backlog": a.backlog,
        })),
    )
        .into_response()
}

/// CloudEvents in any of the HTTP binding's modes: structured, batched,
/// binary (and plain JSON as structured).
pub(in crate::intake) async fn ingest_cloudevents(
    State(state): State<AppState>,
    _: Allowed<ToIngest>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let bytes = read_body(&state, body).await?;
    let now = Utc::now();
    let ct = content_type(&headers);
    let bad =
        |e: wire::WireError| Refusal::new(StatusCode::BAD_REQUEST, e.to_string()).field(e.field());
    // Binary mode: the attributes are headers, whatever the body's type.
    let binary =
        headers.contains_key("ce-specversion") && !ct.starts_with("application/cloudevents");
    let parsed = if binary {
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(name, value)| (name.as_str().to_lowercase(), value))
            .filter(|(name, _)| name.starts_with("ce-"))
            .map(|(name, value)| (name, header_text(value)))
            .collect();
        let content_type = headers.get(header::CONTENT_TYPE).map(header_text);
        wire::binary(&pairs, content_type.as_deref(), &bytes, now)
            .map(|s| vec![s])
            .map_err(bad)?
    } else {
        match ct.as_str() {
            "application/cloudevents+json" => wire::structured(&bytes, now, false).map_err(bad)?,
            "application/cloudevents-batch+json" => wire::batch(&bytes, now).map_err(bad)?,
            "application/json" => wire::structured(&bytes, now, true).map_err(bad)?,
            other => {
                return Err(Refusal::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "content type {:?} is not accepted: use application/cloudevents+json, \
                         application/cloudevents-batch+json, application/json or binary mode \
                         (ce-specversion and the other attributes as ce-* headers)",
                        other
                    ),
                ));
            }
        }
    };
    let report = ingest(&state, "signals", parsed).await?;
    Ok(accepted(&report))
}

/// What became of a signal: the decision taken on it, its quarantine, or
/// that it is not decided yet (still queued in the intake log, or never
/// received).
pub(in crate::intake) async fn status(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Path(id): Path<String>,
    Query(query): Query<SourceQuery>,
) -> Result<Response, Refusal> {
    let lookup = id.clone();
    let found = read_journal(&state, move |dir| {
        crate::journal::read::signal_state(dir, &lookup, query.source.as_deref())
    })
    .await?;
    match found {
        SignalState::Decided { source, decision } => Ok(ok(json!({
            "id": id, "source": source, "state": "decided", "decision": decision
        }))),
        SignalState::Quarantined(q) => Ok(ok(json!({
            "id": id, "source": q.source,
            "state": match q.state {
                QuarantineState::Dropped => "dropped",
                _ => "quarantined",
            },
            "error": q.error, "since": q.time,
        }))),
        SignalState::Ambiguous(sources) => Err(Refusal::new(
            StatusCode::CONFLICT,
            format!(
                "several sources sent a signal `{id}` ({}): ask with ?source=",
                sources.join(", ")
            ),
        )
        .field(Some("source".into()))),
        SignalState::Pending { .. } | SignalState::Unknown => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!(
                "no decision on signal `{id}`: not received, or among the {} still queued",
                state.log.backlog()
            ),
        )),
    }
}
