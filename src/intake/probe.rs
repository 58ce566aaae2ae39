//! Health probes: a service's `probe` in a deployment's organization.toml
//! (`[[probe]]` in config.toml for the demo). Each probe polls a URL
//! and turns a change of state into a `health.changed` signal, which the
//! context applies and routing respects.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::engine::host::{Command, Handle};
use crate::signal::Signal;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The service this probe speaks for (`payments`, `carrier`, ...).
    pub name: String,
    pub url: String,
    #[serde(default = "default_interval")]
    pub interval: String,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default = "default_status")]
    pub expect_status: u16,
}

fn default_interval() -> String {
    "10s".into()
}
fn default_timeout() -> String {
    "2s".into()
}
fn default_status() -> u16 {
    200
}

impl ProbeConfig {
    /// The subject of the health signals it sends.
    pub fn subject(&self) -> String {
        format!("service/{}", self.name)
    }
}

/// A probe's configuration that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("probe {probe}: {field} {reason}")]
pub struct ProbeError {
    pub probe: String,
    pub field: &'static str,
    pub reason: String,
}

impl ProbeConfig {
    /// Its interval and timeout, or the field that cannot be used.
    pub fn check(&self) -> Result<(std::time::Duration, std::time::Duration), ProbeError> {
        let bad = |field: &'static str, reason: String| ProbeError {
            probe: self.name.clone(),
            field,
            reason,
        };
        let parse = |field: &'static str, text: &str| {
            humantime::parse_duration(text).map_err(|e| bad(field, format!("{text:?}: {e}")))
        };
        let interval = parse("interval", &self.interval)?;
        let timeout = parse("timeout", &self.timeout)?;
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(bad(
                "url",
                format!("{:?} must be http:// or https://", self.url),
            ));
        }
        Ok((interval, timeout))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Up,
    Degraded,
    Down,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
        }
    }
}

/// A checked probe, ready to run.
pub struct Probe {
    config: ProbeConfig,
    interval: Duration,
    timeout: Duration,
}

impl Probe {
    pub fn new(config: ProbeConfig) -> Result<Probe, ProbeError> {
        let (interval, timeout) = config.check()?;
        Ok(Probe {
            config,
            interval,
            timeout,
        })
    }

    /// Polls until the engine goes away. Down needs two failures in a row;
    /// a success slower than half the timeout is degraded.
    pub async fn run(self, engine: Handle, ca_file: Option<std::path::PathBuf>) {
        let client = match crate::outbound::client(ca_file.as_deref(), self.timeout) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(probe = %self.config.name, error = %e, "probe cannot start");
                return;
            }
        };
        let mut last: Option<State> = None;
        let mut failures = 0u32;
        let mut seq = 0u64;
        loop {
            let started = Instant::now();
            let result = client.get(&self.config.url).send().await;
            let elapsed = started.elapsed();
            let observed = match result {
                Ok(r) if r.status().as_u16() == self.config.expect_status => {
                    failures = 0;
                    if elapsed > self.timeout / 2 {
                        State::Degraded
                    } else {
                        State::Up
                    }
                }
                _ => {
                    failures += 1;
                    if failures >= 2 {
                        State::Down
                    } else {
                        last.unwrap_or(State::Up)
                    }
                }
            };
            if last != Some(observed) {
                seq += 1;
                let signal = Signal {
                    id: format!(
                        "probe:{}:{}:{seq}",
                        self.config.name,
                        Utc::now().timestamp_millis()
                    ),
                    source: format!(
                        "{}probe/{}",
                        crate::signal::RESERVED_SCHEME,
                        self.config.name
                    ),
                    kind: "health.changed".into(),
                    subject: self.config.subject(),
                    time: Utc::now(),
                    data: json!({
                        "service": self.config.name,
                        "health": observed.as_str(),
                        "latency_ms": elapsed.as_millis() as u64,
                        "url": self.config.url,
                    }),
                    ..Signal::default()
                };
                let (tx, rx) = oneshot::channel();
                if engine
                    .send(Command::Ingest {
                        signals: vec![signal],
                        reply: tx,
                    })
                    .is_ok()
                {
                    match rx.await {
                        Ok(Ok(_)) => last = Some(observed),
                        Ok(Err(e)) => {
                            tracing::warn!(probe = %self.config.name, error = %e, "health signal not journaled")
                        }
                        Err(_) => return,
                    }
                }
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}
