//! One client for any OpenAI-compatible chat endpoint (llama.cpp's
//! `llama-server`, Ollama, vLLM, hosted APIs): `POST /v1/chat/completions`
//! with the answer constrained by a JSON schema
//! (`response_format: {"type": "json_schema", …}`), at temperature 0, with
//! the key read from its environment variable at each call and sent only
//! as a bearer token.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::settings::Settings;

/// What an endpoint answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The message's content: the JSON text the schema asked for.
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency: Duration,
    /// The answer was cut off at the most tokens allowed.
    pub cut_off: bool,
}

/// Why a call gave no answer. Messages never hold the key.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CallError {
    #[error("the advisor did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the advisor cannot be reached: {0}")]
    Unreachable(String),
    #[error("the advisor is rate limited (429){}", retry_note(*.retry_after))]
    RateLimited { retry_after: Option<u64> },
    #[error("the advisor answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the advisor's answer is not a chat completion: {0}")]
    Malformed(String),
    #[error("the advisor's key: environment variable {0} is not set")]
    NoKey(String),
    #[error("the advisor's budget of {limit} tokens an hour is spent ({used} used)")]
    Budget { used: u64, limit: u64 },
    #[error("the advisor's breaker is open: {0}")]
    Breaker(String),
}

fn retry_note(after: Option<u64>) -> String {
    after.map_or(String::new(), |s| format!("; retry after {s}s"))
}

impl CallError {
    /// Whether the failure counts against the endpoint (and toward its
    /// breaker), as opposed to our own budget or configuration.
    pub fn counts(&self) -> bool {
        !matches!(
            self,
            CallError::NoKey(_) | CallError::Budget { .. } | CallError::Breaker(_)
        )
    }
}

/// The messages of one call: instructions, then the data (quoted).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub system: String,
    pub user: String,
    /// The schema the answer must follow, and its name.
    pub schema_name: &'static str,
    pub schema: Value,
}

impl Prompt {
    /// The request body.
    pub fn body(&self, model: &str, max_tokens: u32) -> Value {
        json!({
            "model": model,
            "messages": [
                {"role": "system", "content": self.system},
                {"role": "user", "content": self.user},
            ],
            "temperature": 0,
            "max_tokens": max_tokens,
            "stream": false,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": self.schema_name, "strict": true, "schema": self.schema},
            },
        })
    }

    /// A digest of what was sent (for the record of the call).
    pub fn digest(&self) -> String {
        crate::hash::hex_digest(&[self.system.as_bytes(), self.user.as_bytes()], 16)
    }
}

/// The HTTP side.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    settings: Settings,
}

impl Client {
    pub fn new(settings: Settings) -> Result<Client, CallError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        Ok(Client { http, settings })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One call (blocking: not from inside an async task).
    pub fn chat(&self, prompt: &Prompt) -> Result<Reply, CallError> {
        let mut request = self
            .http
            .post(self.settings.endpoint.clone())
            .json(&prompt.body(&self.settings.model, self.settings.max_tokens));
        if let Some(var) = &self.settings.api_key_env {
            let key = std::env::var(var).map_err(|_| CallError::NoKey(var.clone()))?;
            request = request.bearer_auth(key);
        }
        let started = Instant::now();
        let response = request.send().map_err(|e| self.failed(&e))?;
        let status = response.status();
        if status.as_u16() == 429 {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            return Err(CallError::RateLimited { retry_after });
        }
        let text = response.text().map_err(|e| self.failed(&e))?;
        let latency = started.elapsed();
        if !status.is_success() {
            return Err(CallError::Status {
                status: status.as_u16(),
                body: error_message(&text),
            });
        }
        parse_reply(&text, latency)
    }

    fn failed(&self, e: &reqwest::Error) -> CallError {
        if e.is_timeout() {
            CallError::Timeout(self.settings.timeout)
        } else {
            // The URL is ours, never the key; say what failed without it.
            CallError::Unreachable(
                std::error::Error::source(e).map_or_else(|| e.to_string(), |s| s.to_string()),
            )
        }
    }
}

/// The error's message from an OpenAI-style error body, or its start.
fn error_message(text: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("error")))
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = message.unwrap_or_else(|| text.trim().to_string());
    message.chars().take(300).collect()
}

/// The content and usage of a chat completion.
fn parse_reply(text: &str, latency: Duration) -> Result<Reply, CallError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| CallError::Malformed(format!("not JSON: {e}")))?;
    let content = value
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| CallError::Malformed("no choices[0].message.content".into()))?;
    let tokens = |field: &str| {
        value
            .pointer(&format!("/usage/{field}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cut_off = value
        .pointer("/choices/0/finish_reason")
        .and_then(Value::as_str)
        == Some("length");
    Ok(Reply {
        cut_off,
        content: content.to_string(),
        prompt_tokens: tokens("prompt_tokens"),
        completion_tokens: tokens("completion_tokens"),
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_is_read_with_its_usage() {
        let reply = parse_reply(
            r#"{"choices":[{"message":{"role":"assistant","content":"{\"a\":1}"}}],"usage":{"prompt_tokens":12,"completion_tokens":5}}"#,
            Duration::from_millis(3),
        )
        .unwrap();
        assert_eq!(reply.content, r#"{"a":1}"#);
        assert_eq!((reply.prompt_tokens, reply.completion_tokens), (12, 5));
        for bad in [
            "nope",
            "{}",
            r#"{"choices":[]}"#,
            r#"{"choices":[{"message":{"content":3}}]}"#,
        ] {
            assert!(
                matches!(
                    parse_reply(bad, Duration::ZERO),
                    Err(CallError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_bodies_say_their_message() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"model not found","type":"invalid_request_error"}}"#
            ),
            "model not found"
        );
        assert_eq!(error_message(r#"{"error":"overloaded"}"#), "overloaded");
        assert_eq!(error_message("Bad Gateway\n"), "Bad Gateway");
    }
}
