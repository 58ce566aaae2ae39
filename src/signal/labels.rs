//! A signal's labels, as rules that hold signals back read them, and the
//! Alertmanager-style matchers those rules are made of.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Signal;

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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
    /// The regex, compiled once (none if it does not compile).
    #[serde(skip)]
    regex: std::sync::OnceLock<Option<regex::Regex>>,
}

/// Two matchers are equal when they say the same.
impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        (&self.name, &self.value, self.is_regex, self.is_equal)
            == (&other.name, &other.value, other.is_regex, other.is_equal)
    }
}

fn yes() -> bool {
    true
}

impl Matcher {
    pub fn new(name: &str, value: &str, is_regex: bool, is_equal: bool) -> Matcher {
        Matcher {
            name: name.to_string(),
            value: value.to_string(),
            is_regex,
            is_equal,
            regex: Default::default(),
        }
    }

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
            true => self
                .regex
                .get_or_init(|| anchored(&self.value).ok())
                .as_ref()
                .is_some_and(|r| r.is_match(value)),
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

/// A matcher as written, `name=value`, `name!="value"`, `name=~re`,
/// `name!~re`; none if it is not one.
pub fn parse_matcher(text: &str) -> Option<Matcher> {
    let at = text.find(['=', '!'])?;
    let (name, rest) = text.split_at(at);
    let (op, value) = ["=~", "!~", "!=", "="]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))?;
    let value = value.trim();
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(quoted) => serde_json::from_str::<String>(&format!("\"{quoted}\"")).ok()?,
        None => value.to_string(),
    };
    let name = name.trim();
    (!name.is_empty()).then(|| Matcher::new(name, &value, op.ends_with('~'), !op.starts_with('!')))
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
        let m = Matcher::new;
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
