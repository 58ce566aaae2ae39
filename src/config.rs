//! `config.toml` in the platform config directory: every field optional.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::intake::notify::NotifyConfig;
use crate::intake::probe::ProbeConfig;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub operator: Option<String>,
    pub role: Option<String>,
    pub theme: Option<String>,
    pub keymap: Option<String>,
    /// Simulated seconds per real second.
    pub speed: Option<f64>,
    pub data_dir: Option<PathBuf>,
    /// Bearer tokens for the HTTP intake, as `SECRET:ROLE:NAME` or `SECRET:ROLE`.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// The secret `signalbox attach` presents to a server.
    pub token: Option<String>,
    /// Health probes for `signalbox serve` and the console.
    #[serde(default, rename = "probe")]
    pub probes: Vec<ProbeConfig>,
    /// Executors that are webhooks: executor name (as in steps.toml) → URL.
    #[serde(default)]
    pub webhooks: std::collections::BTreeMap<String, String>,
    /// Step retries and circuit breakers.
    #[serde(default)]
    pub execution: Option<ExecutionConfig>,
    /// `[review]`: how review items are held.
    #[serde(default)]
    pub review: Option<ReviewConfig>,
    /// The intake log (`signalbox serve` and the console's intake).
    #[serde(default)]
    pub intake: Option<IntakeConfig>,
    /// Where `serve` listens (a deployment's signalbox.toml; `--listen` wins).
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    /// Where people reach this server (`https://signalbox.example.com`), for
    /// the links pages carry; default `http://` and the listen address.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Outbound TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Receivers of escalations, SLA breaches, quarantines and breaker trips.
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
    /// The mail server pages by email go through.
    #[serde(default)]
    pub smtp: Option<crate::intake::pager::SmtpConfig>,
    /// Where pages by PagerDuty go (default its US region's Events API).
    #[serde(default)]
    pub pagerduty: Option<crate::intake::pager::PagerDutyConfig>,
    /// `[silences]`: how long one may last.
    #[serde(default)]
    pub silences: Option<SilencesConfig>,
    /// `[tasks]`: how many open tasks each team may hold.
    #[serde(default)]
    pub tasks: Option<TasksConfig>,
    /// `[advisor]`: the language model that explains, proposes and drafts.
    #[serde(default)]
    pub advisor: Option<crate::advisor::AdvisorConfig>,
    /// `[cluster]`: `serve` as a node of a cluster over NATS JetStream
    /// (`--cluster` and `--node` take precedence).
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS servers, `nats://HOST:PORT` each.
    #[serde(default)]
    pub servers: Vec<String>,
    /// This node's name (unique in the cluster).
    pub node: Option<String>,
    /// Commits between snapshots of a partition's journal.
    pub snapshot_every: Option<u64>,
    /// How the node proves itself to NATS (at most one): a credentials
    /// file (`.creds`, NATS's decentralized JWT), a token from the named
    /// environment variable, or a user with the password from the named
    /// environment variable. Secrets never sit in this file.
    pub credentials: Option<std::path::PathBuf>,
    pub token_env: Option<String>,
    pub user: Option<String>,
    pub password_env: Option<String>,
    /// A CA bundle (PEM) the NATS servers' certificates are checked
    /// against; TLS is then required.
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TasksConfig {
    /// Open tasks each team may hold (`default` for the others; `"auto"`:
    /// its capacity in organization.toml): past it, a new task's flow is
    /// escalated, and the `budget` receivers are told once.
    #[serde(default)]
    pub bound: std::collections::BTreeMap<String, crate::review::budget::Budget>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM bundle of CA certificates trusted beside the system's roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Signals acknowledged and not yet decided past which the intake
    /// answers 503 (default `intake::log::MAX_BACKLOG`).
    pub max_backlog: Option<u64>,
    /// A request's headers must arrive within this (and an idle keep-alive
    /// connection is closed after it), e.g. "10s".
    pub header_timeout: Option<String>,
    /// A request's body must arrive within this, e.g. "30s".
    pub body_timeout: Option<String>,
    /// Connections open at once.
    pub max_connections: Option<usize>,
    /// How long a stopping server lets requests in flight finish, e.g. "5s".
    pub drain: Option<String>,
    /// Event streams (`/v1/events`) open at once, apart from connections.
    pub max_streams: Option<usize>,
    /// Event streams one token may hold open at once.
    pub max_streams_per_token: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecutionConfig {
    /// First retry delay of a failed automated step, e.g. "30s".
    pub retry_base: Option<String>,
    /// How long an open breaker waits before letting a probe through, e.g. "2m".
    pub breaker_cooldown: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// How long a claim holds an item for the one who claimed it, e.g.
    /// "15m"; after it, others act on the item without being asked twice.
    pub claim_expiry: Option<String>,
    /// The escalation policy (`[[escalation]]` of organization.toml) paged
    /// when an unanswered item's window is running out (it escalates).
    pub page: Option<String>,
    /// Open items each decision class may hold (`default` for the others):
    /// past it, new items take their safe default at once, saying so.
    #[serde(default)]
    pub budget: std::collections::BTreeMap<String, crate::review::budget::Budget>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SilencesConfig {
    /// The longest a silence may last, e.g. "7d" (none: as long as asked).
    pub max_length: Option<String>,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config {file}: {error}")]
    Read { file: String, error: String },
    /// A value that parses but cannot be used.
    #[error("config {field}: {reason}")]
    Field { field: String, reason: String },
}

/// A duration setting (`field` as `table.key`) in the policies' notation
/// ("30s", "2m"), if it is given.
fn duration_field(
    field: &str,
    text: Option<&str>,
) -> Result<Option<chrono::Duration>, ConfigError> {
    text.map(|t| {
        crate::decide::policy::parse_duration(t).map_err(|e| ConfigError::Field {
            field: field.to_string(),
            reason: e.to_string(),
        })
    })
    .transpose()
}

/// The platform directories signalbox uses.
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("dev", "signalbox", "signalbox")
}

/// Where `config.toml` is looked for.
pub fn config_path() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("config.toml"))
}

/// Where user themes and keymaps are looked for.
pub fn user_dir(kind: &str) -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join(kind))
}

impl Config {
    /// Reads the file if it exists; a missing file is an empty config.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path.filter(|p| p.exists()) else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: path.display().to_string(),
            error: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Read {
            file: path.display().to_string(),
            error: e.to_string(),
        })
    }

    /// The HTTP server's limits and the body deadline, from `[intake]`.
    pub fn http_limits(
        &self,
    ) -> Result<(crate::intake::server::Limits, std::time::Duration), ConfigError> {
        let mut limits = crate::intake::server::Limits::default();
        let mut body = crate::intake::BODY_TIMEOUT;
        let Some(intake) = &self.intake else {
            return Ok((limits, body));
        };
        let duration = |field: &str,
                        text: &Option<String>|
         -> Result<Option<std::time::Duration>, ConfigError> {
            text.as_deref()
                .map(|t| {
                    humantime::parse_duration(t).map_err(|e| ConfigError::Field {
                        field: format!("intake.{field}"),
                        reason: format!("{t:?} is not a duration like 10s: {e}"),
                    })
                })
                .transpose()
        };
        if let Some(d) = duration("header_timeout", &intake.header_timeout)? {
            limits.header_timeout = d;
        }
        if let Some(d) = duration("drain", &intake.drain)? {
            limits.drain = d;
        }
        if let Some(d) = duration("body_timeout", &intake.body_timeout)? {
            body = d;
        }
        let count = |field: &str, n: Option<usize>| match n {
            Some(0) => Err(ConfigError::Field {
                field: format!("intake.{field}"),
                reason: "must be at least 1".into(),
            }),
            other => Ok(other),
        };
        if let Some(n) = count("max_connections", intake.max_connections)? {
            limits.max_connections = n;
        }
        if let Some(n) = count("max_streams", intake.max_streams)? {
            limits.max_streams = n;
        }
        if let Some(n) = count("max_streams_per_token", intake.max_streams_per_token)? {
            limits.max_streams_per_token = n;
        }
        Ok((limits, body))
    }

    /// `[execution]`'s retry base and breaker cooldown.
    #[allow(clippy::type_complexity)]
    pub fn execution_durations(
        &self,
    ) -> Result<(Option<chrono::Duration>, Option<chrono::Duration>), ConfigError> {
        let execution = self.execution.clone().unwrap_or_default();
        Ok((
            duration_field("execution.retry_base", execution.retry_base.as_deref())?,
            duration_field(
                "execution.breaker_cooldown",
                execution.breaker_cooldown.as_deref(),
            )?,
        ))
    }

    /// `[review] claim_expiry`, checked: a duration of at least a minute.
    /// How long a silence may last (`[silences] max_length`).
    pub fn silence_max(&self) -> Result<Option<chrono::Duration>, ConfigError> {
        let text = self.silences.as_ref().and_then(|s| s.max_length.as_deref());
        duration_field("silences.max_length", text)
    }

    /// The pager of a server with these settings, reached at `base_url`,
    /// signing its links with `secret`.
    pub fn pager(&self, base_url: &str, secret: Vec<u8>) -> crate::intake::pager::PagerSettings {
        crate::intake::pager::PagerSettings {
            base_url: base_url.trim_end_matches('/').to_string(),
            secret,
            ca_file: self.tls.as_ref().and_then(|t| t.ca_file.clone()),
            smtp: self.smtp.clone(),
            pagerduty_url: self
                .pagerduty
                .as_ref()
                .map_or(crate::intake::pager::PAGERDUTY_EVENTS, |p| {
                    p.events_url.as_str()
                })
                .to_string(),
        }
    }

    pub fn claim_expiry(&self) -> Result<Option<chrono::Duration>, ConfigError> {
        let field = "review.claim_expiry";
        let text = self.review.as_ref().and_then(|r| r.claim_expiry.as_deref());
        match duration_field(field, text)? {
            Some(d) if d < chrono::Duration::minutes(1) => Err(ConfigError::Field {
                field: field.to_string(),
                reason: format!(
                    "{:?} is under a minute; a claim must outlast writing a note",
                    text.unwrap_or_default()
                ),
            }),
            d => Ok(d),
        }
    }

    /// `[intake] max_backlog`, or the default.
    pub fn max_backlog(&self) -> u64 {
        self.intake
            .as_ref()
            .and_then(|i| i.max_backlog)
            .unwrap_or(crate::intake::log::MAX_BACKLOG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_optional_and_unknown_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "operator = \"ana\"\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.operator.as_deref(), Some("ana"));
        std::fs::write(&p, "colour = \"red\"\n").unwrap();
        let err = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(
            err.contains("config.toml") && err.contains("colour"),
            "{err}"
        );
        assert_eq!(
            Config::load(Some(&dir.path().join("none.toml"))).unwrap(),
            Config::default()
        );
    }
}
