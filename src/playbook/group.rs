//! How signals of a type group into incidents (`group` on a signal type):
//! the fields whose values make an incident's key, and how long a new
//! incident's page waits for more alerts to join it (Alertmanager's
//! `group_by` and `group_wait`).

use chrono::Duration;
use serde::Deserialize;
use serde_json::Value;

use crate::signal::Signal;

/// The signal's fields a grouping may name (and anything under `data.` or
/// `extensions.`).
const ROOTS: [&str; 6] = [
    "type",
    "source",
    "subject",
    "severity",
    "data",
    "extensions",
];

/// `group = { by = ["data.service"], wait = "30s" }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Grouping {
    /// Paths into the signal (`subject`, `severity`, `data.service`,
    /// `extensions.dc`): signals with equal values join one open incident.
    pub by: Vec<String>,
    /// How long a new incident's page waits for more alerts, e.g. "30s".
    #[serde(default)]
    pub wait: Option<String>,
    /// Alerts that join an incident after its page are told at most this
    /// often (Alertmanager's `group_interval`), e.g. "5m".
    #[serde(default)]
    pub interval: Option<String>,
    /// An incident still firing is told again after this long
    /// (`repeat_interval`), e.g. "4h".
    #[serde(default)]
    pub repeat: Option<String>,
}

impl Grouping {
    /// Whether the grouping can be used; why not.
    pub fn check(&self) -> Result<(), String> {
        if self.by.is_empty() {
            return Err("group.by names no field: every signal would be one incident".into());
        }
        for path in &self.by {
            let mut parts = path.split('.');
            let root = parts.next().unwrap_or("");
            if !ROOTS.contains(&root) {
                return Err(format!(
                    "group.by {path:?}: a signal has no `{root}` (it has {})",
                    ROOTS.join(", ")
                ));
            }
            let nested = matches!(root, "data" | "extensions");
            let rest: Vec<&str> = parts.collect();
            if nested == rest.is_empty() || rest.iter().any(|p| p.is_empty()) {
                return Err(format!(
                    "group.by {path:?}: name a field (`data.service`), or one of type, source, subject, severity"
                ));
            }
        }
        for (field, value) in [
            ("wait", &self.wait),
            ("interval", &self.interval),
            ("repeat", &self.repeat),
        ] {
            if let Some(v) = value {
                humantime::parse_duration(v).map_err(|e| format!("group.{field} {v:?}: {e}"))?;
            }
        }
        if let (Some(i), Some(r)) = (duration(&self.interval), duration(&self.repeat))
            && r < i
        {
            return Err("group.repeat is shorter than group.interval".into());
        }
        Ok(())
    }

    /// How long a new incident's page waits (none if unparsable: `check`
    /// refused it at load).
    pub fn wait(&self) -> Duration {
        duration(&self.wait).unwrap_or_else(Duration::zero)
    }

    /// When the incident's people are told: its wait, interval and repeat.
    pub fn timing(&self) -> Timing {
        Timing {
            wait: self.wait(),
            interval: duration(&self.interval),
            repeat: duration(&self.repeat),
        }
    }

    /// The incident key of `signal` (of type `kind`), and the values that
    /// made it, in the order of `by`.
    pub fn key(&self, kind: &str, signal: &Signal) -> (String, Vec<(String, String)>) {
        let labels: Vec<(String, String)> = self
            .by
            .iter()
            .map(|path| (path.clone(), value_at(signal, path)))
            .collect();
        let mut key = kind.to_string();
        for (path, value) in &labels {
            key.push('\u{1f}');
            key.push_str(path);
            key.push('=');
            key.push_str(value);
        }
        (key, labels)
    }
}

/// When an incident's people are told again (its group's `wait`,
/// `interval` and `repeat`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub wait: Duration,
    /// New alerts are told at most this often.
    pub interval: Option<Duration>,
    /// An incident still firing is told again after this long.
    pub repeat: Option<Duration>,
}

/// A duration as written ("5m"), if there is one and it reads.
fn duration(text: &Option<String>) -> Option<Duration> {
    let parsed = humantime::parse_duration(text.as_deref()?).ok()?;
    Duration::from_std(parsed).ok()
}

/// A field's value as text (a string as it is, anything else as JSON; a
/// missing field is empty).
fn value_at(signal: &Signal, path: &str) -> String {
    let mut parts = path.split('.');
    let text = |s: &str| s.to_string();
    let mut at: &Value = match parts.next() {
        Some("type") => return text(&signal.kind),
        Some("source") => return text(&signal.source),
        Some("subject") => return text(&signal.subject),
        Some("severity") => {
            return signal
                .severity
                .map(|s| text(s.as_str()))
                .unwrap_or_default();
        }
        Some("data") => &signal.data,
        Some("extensions") => {
            return parts
                .next()
                .and_then(|k| signal.extensions.get(k))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .unwrap_or_default();
        }
        _ => return String::new(),
    };
    for part in parts {
        match at.get(part) {
            Some(v) => at = v,
            None => return String::new(),
        }
    }
    match at {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(service: &str, dc: &str) -> Signal {
        let Value::Object(ext) = json!({ "dc": dc }) else {
            unreachable!()
        };
        Signal {
            id: format!("{service}-{dc}"),
            kind: "alert.firing".into(),
            subject: format!("service/{service}"),
            data: json!({ "service": service, "labels": { "team": "sre" } }),
            extensions: ext,
            ..Signal::default()
        }
    }

    #[test]
    fn equal_values_make_equal_keys() {
        let g = Grouping {
            by: vec!["data.labels.team".into(), "extensions.dc".into()],
            wait: Some("30s".into()),
            ..Grouping::default()
        };
        assert_eq!(g.check(), Ok(()));
        assert_eq!(g.wait(), Duration::seconds(30));
        let (a, labels) = g.key("alert.firing", &alert("api", "fra"));
        let (b, _) = g.key("alert.firing", &alert("db", "fra"));
        let (c, _) = g.key("alert.firing", &alert("api", "ams"));
        assert_eq!(a, b, "the same team and datacenter");
        assert_ne!(a, c);
        assert_eq!(labels[1], ("extensions.dc".to_string(), "fra".to_string()));
    }

    #[test]
    fn paths_into_nothing_are_refused() {
        let bad = |by: &str| Grouping {
            by: vec![by.into()],
            ..Grouping::default()
        };
        assert!(bad("labels.team").check().is_err());
        assert!(bad("data").check().is_err());
        assert!(bad("subject.x").check().is_err());
        assert!(bad("data..x").check().is_err());
        assert!(bad("severity").check().is_ok());
        let wait = Grouping {
            by: vec!["subject".into()],
            wait: Some("soon".into()),
            ..Grouping::default()
        };
        assert!(wait.check().is_err());
    }
}
