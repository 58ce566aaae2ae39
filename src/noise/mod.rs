//! Noise controls: what keeps a signal from opening work of its own even
//! though it was taken in. Each is a rule over a signal's labels, and a
//! signal it holds is recorded (journaled, explained) with the rule that
//! held it: silences (`silence`). Pure data with the time passed in; the
//! engine consults them before deciding, the intake serves them.

pub mod silence;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::signal::Signal;

pub use silence::{Silence, SilenceBook, SilenceRefused, SilenceState};

/// A signal's labels, as matchers see them: its type, source, subject and
/// severity; the string fields of its `data`; an Alertmanager alert's
/// `data.labels`; its string extensions. Later ones win.
pub fn labels(signal: &Signal) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("type".to_string(), signal.kind.clone());
    out.insert("source".to_string(), signal.source.clone());
    out.insert("subject".to_string(), signal.subject.clone());
    if let Some(s) = signal.severity {
        out.insert("severity".to_string(), s.as_str().to_string());
    }
    let strings = |map: &serde_json::Map<String, serde_json::Value>, out: &mut BTreeMap<_, _>| {
        for (k, v) in map {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.to_string());
            }
        }
    };
    strings(&signal.extensions, &mut out);
    if let Some(data) = signal.data.as_object() {
        strings(data, &mut out);
        if let Some(labels) = data.get("labels").and_then(|l| l.as_object()) {
            strings(labels, &mut out);
        }
    }
    out
}

/// One of a silence's matchers, as Alertmanager writes them: `name=value`,
/// `name!=value`, `name=~regex`, `name!~regex` (a regex matches the whole
/// value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl Matcher {
    /// Whether the matcher can be used; why not (a regex that does not
    /// compile, an empty name).
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a matcher needs a name".into());
        }
        if self.is_regex {
            anchored(&self.value).map_err(|e| format!("{}=~{:?}: {e}", self.name, self.value))?;
        }
        Ok(())
    }

    /// Whether `labels` satisfy it (a missing label is the empty string).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.name).map_or("", String::as_str);
        let hit = match self.is_regex {
            true => anchored(&self.value).is_ok_and(|r| r.is_match(value)),
            false => value == self.value,
        };
        hit == self.is_equal
    }

    /// As Alertmanager prints it: `service=~"api|web"`.
    pub fn text(&self) -> String {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (true, false) => "!~",
        };
        format!("{}{op}{:?}", self.name, self.value)
    }
}

/// A regex matching a whole value, as Alertmanager anchors them.
fn anchored(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert() -> Signal {
        Signal {
            id: "a1".into(),
            kind: "alert.firing".into(),
            source: "alertmanager".into(),
            subject: "service/api".into(),
            data: json!({ "service": "api", "labels": { "alertname": "HighErrors", "dc": "fra" } }),
            ..Signal::default()
        }
    }

    #[test]
    fn matchers_read_labels_as_alertmanager_does() {
        let l = labels(&alert());
        let m = |name: &str, value: &str, is_regex, is_equal| Matcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        };
        assert!(m("alertname", "HighErrors", false, true).matches(&l));
        assert!(m("service", "api|web", true, true).matches(&l));
        assert!(!m("service", "ap", true, true).matches(&l), "anchored");
        assert!(m("dc", "ams", false, false).matches(&l));
        assert!(m("team", "", false, true).matches(&l), "missing is empty");
        assert!(m("type", "alert\\..*", true, true).matches(&l));
        assert!(m("x", "(", true, true).check().is_err());
        assert_eq!(
            m("service", "api|web", true, true).text(),
            "service=~\"api|web\""
        );
    }
}
