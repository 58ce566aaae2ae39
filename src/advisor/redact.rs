//! What never reaches a language model: the values of fields a deployment
//! names, of fields whose names say they hold a secret, and any text that
//! looks like a credential (bearer tokens, API keys, JWTs, private keys,
//! long random strings), wherever it sits in a value.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// What a redacted value reads as.
pub const REDACTED: &str = "[redacted]";

/// Field names (in any case, as a whole or as a `_`/`-` separated part)
/// whose values are secrets whatever the configuration says.
const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "authorization",
    "auth",
    "credential",
    "credentials",
    "cookie",
    "session",
    "private_key",
    "signature",
];

static SECRET_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    let patterns = [
        // Bearer and basic credentials in a header's form.
        r"(?i)\b(?:bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}",
        // Well-known key shapes: OpenAI/Anthropic, Slack, GitHub, AWS, Google.
        r"\bsk-[A-Za-z0-9_-]{16,}",
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
        r"\bgh[pousr]_[A-Za-z0-9]{20,}",
        r"\bAKIA[0-9A-Z]{16}\b",
        r"\bAIza[0-9A-Za-z_-]{35}\b",
        // A JWT.
        r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        // A PEM private key.
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
        // A credential in a URL.
        r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@",
        // key=value with a secret's name.
        r"(?i)\b(?:password|passwd|secret|token|api[_-]?key)\s*[=:]\s*\S+",
        // Long hexadecimal or base64-like runs (keys, digests of secrets).
        r"\b[A-Fa-f0-9]{32,}\b",
        r"\b[A-Za-z0-9+/_-]{40,}={0,2}",
    ];
    Regex::new(&patterns.join("|")).expect("the secret patterns are valid")
});

/// What to redact: the configured names, lowercased.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    names: Vec<String>,
}

impl Redactor {
    pub fn new(names: &[String]) -> Redactor {
        Redactor {
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a field of this name is never shown.
    pub fn hides(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        if self.names.contains(&lower) {
            return true;
        }
        let joined = lower.replace('-', "_");
        SECRET_NAMES.iter().any(|secret| {
            joined == *secret
                || joined.split('_').any(|part| part == *secret)
                || (secret.len() > 5 && joined.contains(secret))
        })
    }

    /// The text with anything that looks like a credential replaced.
    pub fn text(&self, text: &str) -> String {
        SECRET_TEXT.replace_all(text, REDACTED).into_owned()
    }

    /// The value with hidden fields' values and secret-looking text
    /// replaced, at any depth.
    pub fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if self.hides(k) {
                            Value::String(REDACTED.into())
                        } else {
                            self.value(v)
                        };
                        (self.text(k), v)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// A named field's value as it may be shown.
    pub fn field(&self, name: &str, value: &Value) -> Value {
        if self.hides(name) {
            Value::String(REDACTED.into())
        } else {
            self.value(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configured_and_secret_fields_are_hidden_at_any_depth() {
        let r = Redactor::new(&["customer_email".into()]);
        let v = r.value(&json!({
            "order": "O-1",
            "customer_email": "ann@example.com",
            "nested": {"db_password": "hunter22", "X-Api-Key": "k", "tier": "gold"},
            "list": [{"session_id": "abc"}],
        }));
        assert_eq!(v["order"], "O-1");
        assert_eq!(v["customer_email"], REDACTED);
        assert_eq!(v["nested"]["db_password"], REDACTED);
        assert_eq!(v["nested"]["X-Api-Key"], REDACTED);
        assert_eq!(v["nested"]["tier"], "gold");
        assert_eq!(v["list"][0]["session_id"], REDACTED);
    }

    #[test]
    fn text_that_looks_like_a_credential_is_replaced() {
        let r = Redactor::default();
        for secret in [
            "Authorization: Bearer abcdef0123456789",
            "key sk-proj-ABCDEFGHIJKLMNOPQRSTUV",
            "slack xoxb-1234567890-abcdefghij",
            "aws AKIAIOSFODNN7EXAMPLE here",
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            "postgres://app:s3cr3tpw@db.internal/app",
            "password=hunter22",
            "digest 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ] {
            let out = r.text(secret);
            assert!(out.contains(REDACTED), "{secret:?} -> {out:?}");
        }
        for plain in [
            "payments-api is degraded",
            "order O-1042 for ACME",
            "p99 latency 840 ms",
        ] {
            assert_eq!(r.text(plain), plain);
        }
    }
}
