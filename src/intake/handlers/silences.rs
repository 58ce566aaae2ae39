//! Silences over Alertmanager's v2 API, as `amtool silence add|query|
//! expire --alertmanager.url=…` speaks it (with the token in its
//! `--http.config.file`): `GET /api/v2/status`, `GET /api/v2/silences
//! [?filter=…]`, `POST /api/v2/silences`, `GET` and `DELETE
//! /api/v2/silence/{id}`. Shapes as Alertmanager's OpenAPI spec has them;
//! the owner is the token's identity, whatever `createdBy` says.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ask, ok};
use crate::engine::host::Command;
use crate::intake::auth::{Allowed, ToAct, ToRead};
use crate::intake::refusal::{Refusal, busy, engine_answer};
use crate::intake::request::{json_body, read_body};
use crate::intake::{AppState, SILENCE_ID};
use crate::noise::silence::NewSilence;
use crate::noise::{Matcher, Silence};
use crate::review::Actor;
use crate::signal::labels::parse_matcher;

/// When this server started (`uptime` in the status).
pub(in crate::intake) static STARTED: LazyLock<DateTime<Utc>> = LazyLock::new(Utc::now);

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A silence as Alertmanager's `gettableSilence`.
fn gettable(s: &Silence, now: DateTime<Utc>) -> Value {
    json!({
        "id": s.id,
        "status": { "state": s.state(now).as_str() },
        "updatedAt": stamp(s.updated_at),
        "comment": s.comment,
        "createdBy": s.created_by,
        "startsAt": stamp(s.starts_at),
        "endsAt": stamp(s.ends_at),
        "matchers": s.matchers,
    })
}

/// `GET /api/v2/status`: what amtool asks first. There is no cluster and
/// no Alertmanager configuration; the version is signalbox's.
pub(in crate::intake) async fn status(_: Allowed<ToRead>) -> Response {
    ok(json!({
        "cluster": { "status": "disabled", "peers": [] },
        "config": { "original": "" },
        "uptime": stamp(*STARTED),
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "branch": "signalbox",
            "revision": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        },
    }))
}

/// `GET /api/v2/silences[?filter=name="value"…]`: every silence in memory
/// whose equality matchers the filters match (as Alertmanager filters).
pub(in crate::intake) async fn list(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let filters = filters(query.as_deref().unwrap_or(""), "filter")?;
    let silences = ask(&state, |reply| Command::Silences { reply }).await?;
    let now = Utc::now();
    let shown: Vec<Value> = silences
        .iter()
        .filter(|s| {
            let labels = s
                .matchers
                .iter()
                .filter(|m| !m.is_regex)
                .map(|m| (m.name.clone(), m.value.clone()))
                .collect();
            filters.iter().all(|f| f.matches(&labels))
        })
        .map(|s| gettable(s, now))
        .collect();
    Ok(ok(Value::Array(shown)))
}

/// `GET /v1/silences/preview?matcher=name="value"…`: what a silence with
/// these matchers would match before it is made: open review items, and
/// journaled signals of the last day (by their own time).
pub(in crate::intake) async fn preview(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let matchers = filters(query.as_deref().unwrap_or(""), "matcher")?;
    if matchers.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "give at least one matcher=name=\"value\"".to_string(),
        )
        .field(Some("matcher".into())));
    }
    let asked = matchers.clone();
    let (open_items, now) = ask(&state, |reply| Command::SilencePreview {
        matchers: asked,
        reply,
    })
    .await?;
    let counted = matchers.clone();
    let since = now - chrono::Duration::days(1);
    let last_day = crate::intake::request::read_journal(&state, move |dir| {
        crate::journal::read::seen::count_since(dir, since, |s| {
            let labels = crate::noise::labels(s);
            counted.iter().all(|m| m.matches(&labels))
        })
    })
    .await?;
    let texts: Vec<String> = matchers.iter().map(Matcher::text).collect();
    Ok(ok(json!({
        "matchers": texts,
        "open_items": open_items,
        "last_day": last_day,
    })))
}

/// `GET /api/v2/silence/{id}`.
pub(in crate::intake) async fn one(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let silences = ask(&state, |reply| Command::Silences { reply }).await?;
    match silences.iter().find(|s| s.id == id) {
        Some(s) => Ok(ok(gettable(s, Utc::now()))),
        None => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no silence {id}"),
        )),
    }
}

/// Alertmanager's `postableSilence`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Postable {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<Matcher>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    #[serde(default)]
    comment: String,
}

/// `POST /api/v2/silences`: makes a silence (or, with an `id`, changes
/// it), owned by the token's identity; `{"silenceID": …}`.
pub(in crate::intake) async fn post(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToAct>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let bytes = read_body(&state, body).await?;
    let map = json_body(&headers, &bytes)?;
    let p: Postable = serde_json::from_value(Value::Object(map))
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("a silence: {e}")))?;
    let asked = NewSilence {
        id: p.id.filter(|id| !id.is_empty()),
        new_id: given_id(&headers)?,
        matchers: p.matchers,
        starts_at: p.starts_at,
        ends_at: p.ends_at,
        comment: p.comment,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .engine
        .send(Command::PutSilence {
            asked,
            actor: Actor::new(&who.name, who.role),
            reply: tx,
        })
        .map_err(busy)?;
    let silence = engine_answer(rx).await?;
    Ok(ok(json!({ "silenceID": silence.id })))
}

/// The id a new silence is asked to take, if any: a UUID, or refused.
fn given_id(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let Some(value) = headers.get(SILENCE_ID) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
        .map(|id| Some(id.to_string()))
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("{SILENCE_ID} must be a UUID"),
            )
            .field(Some(SILENCE_ID.into()))
        })
}

/// `DELETE /api/v2/silence/{id}`: ends it now (its owner, or a lead).
pub(in crate::intake) async fn expire(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToAct>,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .engine
        .send(Command::ExpireSilence {
            id,
            actor: Actor::new(&who.name, who.role),
            reply: tx,
        })
        .map_err(busy)?;
    engine_answer(rx).await?;
    Ok(StatusCode::OK.into_response())
}

/// The `filter` parameters of a query, as matchers.
/// The matchers a query gives as `KEY=…` (repeated).
fn filters(query: &str, name: &str) -> Result<Vec<Matcher>, Refusal> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != name {
            continue;
        }
        let text = percent_encoding::percent_decode_str(&value.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        let m = parse_matcher(&text).ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("{name} {text:?} is not a matcher like name=\"value\""),
            )
            .field(Some(name.into()))
        })?;
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_as_amtool_writes_them() {
        let f = filters(
            "filter=alertname%3D%22Foo%22&filter=service%3D~api%7Cweb&x=1",
            "filter",
        )
        .unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].text(), "alertname=\"Foo\"");
        assert_eq!(f[1].text(), "service=~\"api|web\"");
        assert!(parse_matcher("a!=\"b\"").is_some_and(|m| !m.is_equal && !m.is_regex));
        assert!(parse_matcher("=x").is_none());
        assert!(filters("filter=nonsense", "filter").is_err());
    }
}
