//! Bearer tokens with roles: `viewer` reads, `operator` and `lead` read,
//! ingest and act on reviews (with their role), `ingest` only sends signals.
//! With no token configured (loopback only), every request is an operator.

use axum::http::{HeaderMap, StatusCode, header};

use super::Refusal;
use crate::decide::policy::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    Viewer,
    Operator,
    Lead,
    Ingest,
}

impl TokenRole {
    pub fn parse(text: &str) -> Option<TokenRole> {
        match text {
            "viewer" => Some(TokenRole::Viewer),
            "operator" => Some(TokenRole::Operator),
            "lead" => Some(TokenRole::Lead),
            "ingest" => Some(TokenRole::Ingest),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TokenRole::Viewer => "viewer",
            TokenRole::Operator => "operator",
            TokenRole::Lead => "lead",
            TokenRole::Ingest => "ingest",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Ingest,
    Read,
    Act,
}

/// Who a request acts as.
pub struct Caller {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<(String, TokenRole)>,
}

impl Tokens {
    /// From `TOKEN:ROLE` strings.
    pub fn parse(specs: &[String]) -> Result<Tokens, String> {
        let mut tokens = Vec::new();
        for spec in specs {
            let (token, role) = spec
                .rsplit_once(':')
                .ok_or_else(|| format!("token {spec:?}: expected TOKEN:ROLE"))?;
            let role = TokenRole::parse(role).ok_or_else(|| {
                format!("token role {role:?}: expected viewer, operator, lead or ingest")
            })?;
            if token.len() < 8 {
                return Err("a token must be at least 8 characters".into());
            }
            tokens.push((token.to_string(), role));
        }
        Ok(Tokens { tokens })
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks the bearer token (or, for PagerDuty senders, the routing key)
    /// against what the endpoint needs.
    pub(super) fn check(
        &self,
        headers: &HeaderMap,
        routing_key: Option<&str>,
        need: Permission,
    ) -> Result<Caller, Refusal> {
        if self.tokens.is_empty() {
            return Ok(Caller {
                name: "http".into(),
                role: Role::Operator,
            });
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let presented = bearer.or(routing_key);
        let Some(presented) = presented else {
            return Err(
                Refusal::new(StatusCode::UNAUTHORIZED, "missing bearer token")
                    .field(Some("authorization".into())),
            );
        };
        let Some((_, role)) = self
            .tokens
            .iter()
            .find(|(t, _)| constant_time_eq(t.as_bytes(), presented.as_bytes()))
        else {
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, "unknown token")
                .field(Some("authorization".into())));
        };
        let allowed = match need {
            Permission::Ingest => matches!(
                role,
                TokenRole::Ingest | TokenRole::Operator | TokenRole::Lead
            ),
            Permission::Read => matches!(
                role,
                TokenRole::Viewer | TokenRole::Operator | TokenRole::Lead
            ),
            Permission::Act => matches!(role, TokenRole::Operator | TokenRole::Lead),
        };
        if !allowed {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("a {} token may not do this", role.name()),
            ));
        }
        let role = match role {
            TokenRole::Lead => Role::Lead,
            TokenRole::Viewer => Role::Viewer,
            _ => Role::Operator,
        };
        Ok(Caller {
            name: format!("token:{}", role.as_str()),
            role,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
