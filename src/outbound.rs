//! Outbound HTTP (webhook executors, probes, notifications): one client
//! setup, with rustls trusting the system's roots and,
//! for internal endpoints, an extra CA bundle. `http://` stays allowed.

use std::path::Path;
use std::time::Duration;

/// Why an outbound client cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("CA file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The certificates of a PEM bundle; at least one.
pub fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, OutboundError> {
    let bad = |reason: String| OutboundError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// A client with `timeout` per request, trusting `ca_file` too.
pub fn client(ca_file: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, OutboundError> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(path) = ca_file {
        builder = builder.tls_certs_merge(read_ca(path)?);
    }
    Ok(builder.build()?)
}

/// What an endpoint answered: the status, and the start of the body
/// (at most `ANSWER_KEPT` bytes, for the record of an attempt).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub body: String,
    /// Tries it took (1: the first was answered so).
    pub tries: u32,
}

/// Bytes of an answer's body kept.
const ANSWER_KEPT: usize = 512;

impl Answer {
    async fn read(response: reqwest::Response, tries: u32) -> Answer {
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        let kept = &bytes[..bytes.len().min(ANSWER_KEPT)];
        Answer {
            status,
            body: String::from_utf8_lossy(kept).trim().to_string(),
            tries,
        }
    }
}

/// How a POST that did not succeed ended.
#[derive(Debug)]
pub enum Failed {
    /// The endpoint answered, with this status.
    Answered(Answer),
    /// It could not be reached (or did not answer in time), after this
    /// many tries.
    Unreachable(reqwest::Error, u32),
}

/// How a POST is retried: tries in all, the first wait (doubling), and
/// whether each wait adds up to one `backoff` of random jitter.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub tries: u32,
    pub backoff: Duration,
    pub jitter: bool,
}

/// POSTs a JSON body with `headers`, retrying connection errors,
/// timeouts, 5xx, 408 and 429; another 4xx refuses the body itself and is
/// not retried. The success's answer, or how the last try failed.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
    retries: Retries,
) -> Result<Answer, Failed> {
    use rand::Rng;
    let mut last = None;
    for n in 0..retries.tries {
        let mut request = client.post(url).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.body(body.clone()).send().await {
            Ok(r) if r.status().is_success() => return Ok(Answer::read(r, n + 1).await),
            Ok(r) if r.status().is_client_error() && !matches!(r.status().as_u16(), 408 | 429) => {
                return Err(Failed::Answered(Answer::read(r, n + 1).await));
            }
            Ok(r) => last = Some(Failed::Answered(Answer::read(r, n + 1).await)),
            Err(e) => last = Some(Failed::Unreachable(e, n + 1)),
        }
        if n + 1 < retries.tries {
            let jitter = if retries.jitter {
                rand::rng().random_range(0..retries.backoff.as_millis() as u64)
            } else {
                0
            };
            let wait = retries.backoff * 2u32.pow(n) + Duration::from_millis(jitter);
            tokio::time::sleep(wait).await;
        }
    }
    Err(last.unwrap_or(Failed::Answered(Answer {
        status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
        body: String::new(),
        tries: 0,
    })))
}
