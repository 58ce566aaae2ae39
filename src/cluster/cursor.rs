//! A list gathered from every partition, and its cursor: each partition
//! pages its own list, so the cluster's cursor is every partition's own
//! cursor together (`c.` and the base64url of a JSON object from
//! partition to cursor). A partition absent from it has no more; a page
//! holds up to `limit` items from each partition that has more.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::api::{Answer, Forwarded};
use crate::intake::Refusal;

const PREFIX: &str = "c.";

/// Where each partition is in a list.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cursor {
    /// The first page: every partition from its start.
    Start,
    /// A cursor not made by a cluster (an item's id): given to every
    /// partition as it is.
    Plain(String),
    /// Each partition's cursor; a partition not named has no more.
    Each(BTreeMap<u32, String>),
}

impl Cursor {
    /// The cursor in `uri`'s query parameter `param`.
    pub(super) fn from_query(uri: &Uri, param: &str) -> Result<Cursor, Refusal> {
        let Some(value) = query_value(uri.query().unwrap_or(""), param) else {
            return Ok(Cursor::Start);
        };
        let Some(packed) = value.strip_prefix(PREFIX) else {
            return Ok(Cursor::Plain(value));
        };
        let each = URL_SAFE_NO_PAD
            .decode(packed)
            .ok()
            .and_then(|json| serde_json::from_slice::<BTreeMap<u32, String>>(&json).ok())
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("{param} is not a cursor this cluster gave"),
                )
                .field(Some(param.into()))
            })?;
        Ok(Cursor::Each(each))
    }

    /// The cursor of every partition in `each` (none: the list's end).
    pub(super) fn pack(each: &BTreeMap<u32, String>) -> Option<String> {
        if each.is_empty() {
            return None;
        }
        let json = serde_json::to_vec(each).ok()?;
        Some(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json)))
    }

    /// `base` as partition `p` is asked it (none: `p` has no more).
    pub(super) fn request_for(&self, p: u32, base: &Forwarded, param: &str) -> Option<Forwarded> {
        let own = match self {
            Cursor::Start => None,
            Cursor::Plain(value) => Some(value.as_str()),
            Cursor::Each(each) => Some(each.get(&p)?.as_str()),
        };
        let mut asked = base.clone();
        asked.uri = with_param(&base.uri, param, own);
        Some(asked)
    }
}

/// `param`'s value in `query`, percent-decoded.
fn query_value(query: &str, param: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == param).then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// `uri` with its `param` set to `value` (or taken out).
fn with_param(uri: &Uri, param: &str, value: Option<&str>) -> Uri {
    let mut pairs: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(param))
        .map(String::from)
        .collect();
    if let Some(value) = value {
        let value =
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
        pairs.push(format!("{param}={value}"));
    }
    let text = if pairs.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), pairs.join("&"))
    };
    text.parse().unwrap_or_else(|_| uri.clone())
}

/// The partitions' pages as one: their items one after another (the
/// history by decision time), and the cursor of those with more, in the
/// body's `next` where the body is an object and in a `Link` header.
pub(super) fn merge_list(
    answers: Vec<Answer>,
    uri: &Uri,
    (key, once): (Option<&'static str>, bool),
    param: &str,
) -> Result<Response, Refusal> {
    if let Some(refused) = answers.iter().position(|a| !a.status.is_success()) {
        return Ok(answers.into_iter().nth(refused).map_or_else(
            || StatusCode::BAD_GATEWAY.into_response(),
            Answer::into_response,
        ));
    }
    let mut items = Vec::new();
    let mut next = BTreeMap::new();
    let mut shape: Option<Value> = None;
    for answer in &answers {
        let body = answer.json().ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                format!("partition {}'s answer is not JSON", answer.partition),
            )
        })?;
        let own_next = body
            .get("next")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| answer.link_cursor(param));
        if let Some(own) = own_next {
            next.insert(answer.partition, own);
        }
        let list = match key {
            Some(key) => body.get(key).cloned(),
            None => Some(body.clone()),
        };
        if let Some(Value::Array(list)) = list {
            items.extend(list);
        }
        shape.get_or_insert(body);
    }
    if once {
        let mut seen = std::collections::HashSet::new();
        items.retain(|item| match item.get("id").and_then(Value::as_str) {
            Some(id) => seen.insert(id.to_string()),
            None => true,
        });
    }
    if key == Some("history") {
        let at = |v: &Value| {
            v.pointer("/decision/time")
                .and_then(Value::as_str)
                .map(String::from)
        };
        items.sort_by_key(at);
    }
    let next = Cursor::pack(&next);
    let body = match (key, shape) {
        (Some(key), Some(Value::Object(mut object))) => {
            object.insert(key.into(), Value::Array(items));
            object.insert(
                "next".into(),
                next.clone().map_or(Value::Null, Value::String),
            );
            Value::Object(object)
        }
        _ => Value::Array(items),
    };
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if let Some(next) = next {
        let link = format!("<{}>; rel=\"next\"", with_param(uri, param, Some(&next)));
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

impl Answer {
    /// The cursor in the answer's `Link: <…>; rel="next"` header.
    fn link_cursor(&self, param: &str) -> Option<String> {
        let link = self.header("link")?;
        let target = link
            .split(';')
            .next()?
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        let query = target.split_once('?')?.1;
        query_value(query, param)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use serde_json::json;

    fn answer(partition: u32, body: Value, link: Option<&str>) -> Answer {
        Answer {
            partition,
            status: StatusCode::OK,
            headers: link
                .map(|l| ("link".to_string(), l.to_string()))
                .into_iter()
                .collect(),
            body: Bytes::from(body.to_string()),
        }
    }

    async fn body_of(response: Response) -> (Option<String>, Value) {
        let link = response
            .headers()
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (link, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_cursor_holds_each_partitions_own_and_goes_round_trip() {
        let uri: Uri = "/v1/reviews?limit=2".parse().unwrap();
        let answers = vec![
            answer(
                0,
                json!({"items": [{"id": "R1"}, {"id": "R2"}], "next": "R2"}),
                None,
            ),
            answer(1, json!({"items": [{"id": "R9"}], "next": null}), None),
            answer(
                2,
                json!({"items": [{"id": "R5"}, {"id": "R6"}], "next": "R6"}),
                None,
            ),
        ];
        let response = merge_list(answers, &uri, (Some("items"), false), "after").unwrap();
        let (link, body) = body_of(response).await;
        let ids: Vec<&str> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["R1", "R2", "R9", "R5", "R6"]);
        let next = body["next"].as_str().unwrap();
        let link = link.unwrap();
        assert!(link.contains("limit=2"), "{link}");
        let again: Uri = format!("/v1/reviews?limit=2&after={next}").parse().unwrap();
        let cursor = Cursor::from_query(&again, "after").unwrap();
        assert_eq!(
            cursor,
            Cursor::Each(BTreeMap::from([(0, "R2".into()), (2, "R6".into())]))
        );
        let base = Forwarded {
            method: axum::http::Method::GET,
            uri: again.clone(),
            headers: Default::default(),
            body: Bytes::new(),
        };
        assert!(
            cursor.request_for(1, &base, "after").is_none(),
            "partition 1 had no more"
        );
        let asked = cursor.request_for(2, &base, "after").unwrap();
        assert_eq!(asked.uri.to_string(), "/v1/reviews?limit=2&after=R6");
        // The link's cursor reads back as the body's.
        let from_link = Cursor::from_query(
            &link
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .parse()
                .unwrap(),
            "after",
        )
        .unwrap();
        assert_eq!(from_link, cursor);
    }

    #[tokio::test]
    async fn lists_without_an_object_page_by_their_link_and_the_last_page_has_no_cursor() {
        let uri: Uri = "/v1/tasks".parse().unwrap();
        let answers = vec![
            answer(
                3,
                json!([{"id": "T1"}]),
                Some("</v1/tasks?limit=1&after=T1>; rel=\"next\""),
            ),
            answer(4, json!([]), None),
        ];
        let (link, body) =
            body_of(merge_list(answers, &uri, (None, false), "after").unwrap()).await;
        assert_eq!(body, json!([{"id": "T1"}]));
        let link = link.unwrap();
        let target: Uri = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            Cursor::from_query(&target, "after").unwrap(),
            Cursor::Each(BTreeMap::from([(3, "T1".into())]))
        );
        let last = vec![answer(3, json!([]), None)];
        let (link, _) = body_of(merge_list(last, &uri, (None, false), "after").unwrap()).await;
        assert!(link.is_none());
    }

    #[test]
    fn a_cursor_that_is_not_the_clusters_is_refused_by_name() {
        let uri: Uri = "/v1/reviews?after=c.%21%21".parse().unwrap();
        let refused = Cursor::from_query(&uri, "after").unwrap_err();
        assert!(format!("{refused:?}").contains("after"), "{refused:?}");
    }

    #[tokio::test]
    async fn history_reads_in_decision_time_across_partitions() {
        let uri: Uri = "/v1/history".parse().unwrap();
        let item = |t: &str| json!({"signal": {}, "decision": {"time": t}});
        let answers = vec![
            answer(
                0,
                json!({"history": [item("2026-01-01T00:00:02Z")], "next": null}),
                None,
            ),
            answer(
                1,
                json!({"history": [item("2026-01-01T00:00:01Z")], "next": null}),
                None,
            ),
        ];
        let (_, body) =
            body_of(merge_list(answers, &uri, (Some("history"), false), "before").unwrap()).await;
        let times: Vec<&str> = body["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["decision"]["time"].as_str().unwrap())
            .collect();
        assert_eq!(times, ["2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"]);
        assert!(body["next"].is_null());
    }
}
