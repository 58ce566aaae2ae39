//! `[advisor]` in signalbox.toml (or the console's config.toml): where the
//! language model is, which model, the key's environment variable (never
//! the key), the time and tokens a call may take, and which fields never
//! leave. Local first: an endpoint that is not on this machine or a
//! private network needs `allow_remote = true`.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// The section as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdvisorConfig {
    /// The endpoint's base URL (`http://127.0.0.1:8080`, or one ending in
    /// `/v1`): calls go to its `/v1/chat/completions`.
    pub url: String,
    /// The model the endpoint is asked for.
    pub model: String,
    /// The environment variable that holds the API key, if one is needed.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// How long one call may take (default 30s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Tokens (prompt and answer) all calls may spend in an hour (default
    /// 200000).
    #[serde(default)]
    pub tokens_per_hour: Option<u64>,
    /// Most tokens one answer may take (default 800).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Field names whose values never reach the model (besides those that
    /// look like secrets): a signal's data, a context entity's fields.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Whether an endpoint off this machine and its private networks may
    /// be used.
    #[serde(default)]
    pub allow_remote: bool,
    /// How long the record of calls in `advice.sqlite` is kept (default
    /// 400d); older calls are deleted.
    #[serde(default)]
    pub keep: Option<String>,
}

/// The settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `…/v1/chat/completions`.
    pub endpoint: reqwest::Url,
    pub model: String,
    pub api_key_env: Option<String>,
    pub timeout: Duration,
    pub tokens_per_hour: u64,
    pub max_tokens: u32,
    pub redact: Vec<String>,
    /// How long calls stay in the record.
    pub keep: chrono::Duration,
}

/// The record of calls, a year and a little more by default.
pub const DEFAULT_KEEP_DAYS: i64 = 400;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_TOKENS_PER_HOUR: u64 = 200_000;
pub const DEFAULT_MAX_TOKENS: u32 = 800;

/// Why `[advisor]` cannot be used, naming the field.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("[advisor] {field}: {reason}")]
pub struct SettingsError {
    pub field: &'static str,
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError {
        field,
        reason: reason.into(),
    }
}

impl AdvisorConfig {
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        let base = reqwest::Url::parse(self.url.trim())
            .map_err(|e| bad("url", format!("{:?} is not a URL: {e}", self.url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("url", format!("{:?} is not http or https", self.url)));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad(
                "url",
                "holds a credential; name its environment variable in api_key_env",
            ));
        }
        if !self.allow_remote && !is_local(&base) {
            return Err(bad(
                "url",
                format!(
                    "{} is not on this machine or a private network; set allow_remote = true to send prompts there",
                    base.host_str().unwrap_or("")
                ),
            ));
        }
        let endpoint = endpoint(&base)?;
        if self.model.trim().is_empty() {
            return Err(bad("model", "is empty"));
        }
        if let Some(var) = &self.api_key_env
            && (var.is_empty() || var.contains('='))
        {
            return Err(bad(
                "api_key_env",
                format!("{var:?} is not an environment variable's name"),
            ));
        }
        let timeout = match &self.timeout {
            None => DEFAULT_TIMEOUT,
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| bad("timeout", format!("{text:?}: {e}")))?,
        };
        if timeout.is_zero() {
            return Err(bad("timeout", "is zero"));
        }
        let tokens_per_hour = self.tokens_per_hour.unwrap_or(DEFAULT_TOKENS_PER_HOUR);
        if tokens_per_hour == 0 {
            return Err(bad("tokens_per_hour", "is zero"));
        }
        let max_tokens = self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if !(16..=8192).contains(&max_tokens) {
            return Err(bad(
                "max_tokens",
                format!("{max_tokens} is not in 16..=8192"),
            ));
        }
        let keep = match &self.keep {
            None => chrono::Duration::days(DEFAULT_KEEP_DAYS),
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| bad("keep", format!("{text:?}: {e}")))
                .and_then(|d| {
                    chrono::Duration::from_std(d).map_err(|e| bad("keep", e.to_string()))
                })?,
        };
        if keep < chrono::Duration::days(1) {
            return Err(bad(
                "keep",
                "is under a day: the hour's budget reads the record",
            ));
        }
        Ok(Settings {
            keep,
            endpoint,
            model: self.model.trim().to_string(),
            api_key_env: self.api_key_env.clone(),
            timeout,
            tokens_per_hour,
            max_tokens,
            redact: self.redact.iter().map(|f| f.to_ascii_lowercase()).collect(),
        })
    }
}

/// The chat endpoint under a base URL (with or without its `/v1`).
fn endpoint(base: &reqwest::Url) -> Result<reqwest::Url, SettingsError> {
    let path = base.path().trim_end_matches('/');
    let path = if path.ends_with("/chat/completions") {
        path.to_string()
    } else if path.ends_with("/v1") {
        format!("{path}/chat/completions")
    } else {
        format!("{path}/v1/chat/completions")
    };
    let mut url = base.clone();
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Whether the URL's host is this machine or on a private network (by
/// address; a name other than `localhost` is not known to be either).
pub fn is_local(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => local_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => local_ip(IpAddr::V6(ip)),
        None => false,
    }
}

fn local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| local_ip(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> AdvisorConfig {
        AdvisorConfig {
            url: url.into(),
            model: "smollm2".into(),
            api_key_env: None,
            timeout: None,
            tokens_per_hour: None,
            max_tokens: None,
            redact: vec![],
            allow_remote: false,
            keep: None,
        }
    }

    #[test]
    fn the_chat_endpoint_is_found_under_any_base() {
        for (base, want) in [
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/v1/chat/completions",
            ),
            (
                "http://127.0.0.1:8080/v1/",
                "http://127.0.0.1:8080/v1/chat/completions",
            ),
            (
                "http://localhost:11434/v1",
                "http://localhost:11434/v1/chat/completions",
            ),
            (
                "http://10.1.2.3/llm",
                "http://10.1.2.3/llm/v1/chat/completions",
            ),
        ] {
            let settings = config(base).settings().unwrap();
            assert_eq!(settings.endpoint.as_str(), want);
        }
    }

    #[test]
    fn a_remote_endpoint_needs_allow_remote() {
        for url in [
            "https://api.openai.com/v1",
            "http://8.8.8.8",
            "http://[2001:db8::1]",
        ] {
            let err = config(url).settings().unwrap_err();
            assert_eq!(err.field, "url", "{url}");
            assert!(err.reason.contains("allow_remote"), "{err}");
            let mut allowed = config(url);
            allowed.allow_remote = true;
            assert!(allowed.settings().is_ok(), "{url}");
        }
        for url in [
            "http://192.168.1.4:8000",
            "http://[::1]:8080",
            "http://[fd00::5]",
        ] {
            assert!(config(url).settings().is_ok(), "{url}");
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = config("ftp://127.0.0.1");
        assert_eq!(c.settings().unwrap_err().field, "url");
        c = config("http://user:secret@127.0.0.1");
        assert_eq!(c.settings().unwrap_err().field, "url");
        c = config("http://127.0.0.1");
        c.timeout = Some("soon".into());
        assert_eq!(c.settings().unwrap_err().field, "timeout");
        c.timeout = None;
        c.max_tokens = Some(3);
        assert_eq!(c.settings().unwrap_err().field, "max_tokens");
        c.max_tokens = None;
        c.api_key_env = Some("A=B".into());
        assert_eq!(c.settings().unwrap_err().field, "api_key_env");
        c.api_key_env = None;
        c.model = " ".into();
        assert_eq!(c.settings().unwrap_err().field, "model");
        c.model = "m".into();
        for keep in ["5m", "forever"] {
            c.keep = Some(keep.into());
            assert_eq!(c.settings().unwrap_err().field, "keep", "{keep}");
        }
        c.keep = Some("90d".into());
        assert_eq!(c.settings().unwrap().keep, chrono::Duration::days(90));
    }
}
