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
