//! Bearer tokens with roles and names: `viewer` reads, `operator` and
//! `lead` read, ingest and act on reviews (with their role), `ingest` only
//! sends signals. A token's name is who acts in the audit trail: identity
//! and role come from the token, never from a request. With no token
//! configured (loopback only), every request is an operator named `http`.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use super::AppState;
use super::refusal::Refusal;
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

    pub fn name(self) -> &'static str {
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

/// What an endpoint needs of its caller's token (`Allowed`'s parameter).
pub trait Need {
    const PERMISSION: Permission;
}

/// Reading: metrics, explanations, the review queue, quarantine.
pub struct ToRead;
/// Sending signals.
pub struct ToIngest;
/// Acting on review items and quarantined signals.
pub struct ToAct;

impl Need for ToRead {
    const PERMISSION: Permission = Permission::Read;
}

impl Need for ToIngest {
    const PERMISSION: Permission = Permission::Ingest;
}

impl Need for ToAct {
    const PERMISSION: Permission = Permission::Act;
}

/// The credentials of an `Authorization: Bearer …` value. The scheme is
/// case-insensitive (RFC 9110 §11.1).
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// The caller, authenticated by its bearer token and allowed what `N`
/// needs: the check every endpoint makes, as an extractor. (PagerDuty's
/// endpoints, which may authenticate by the routing key in the body, call
/// `Tokens::check` themselves.)
pub struct Allowed<N>(pub Caller, pub PhantomData<N>);

impl<N: Need> FromRequestParts<AppState> for Allowed<N> {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refusal> {
        let caller = state.tokens.check(&parts.headers, None, N::PERMISSION)?;
        Ok(Allowed(caller, PhantomData))
    }
}

/// Who a request acts as.
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// One configured token: the secret, its role, and the name it acts under.
#[derive(Clone)]
struct Token {
    secret: String,
    role: TokenRole,
    name: String,
}

impl std::fmt::Debug for Token {
    // The secret is never shown, not even in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("role", &self.role)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A token that cannot be used, by its place in the list (its secret is
/// never repeated).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("token {which}: {problem}")]
pub struct TokenError {
    pub which: usize,
    pub problem: TokenProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum TokenProblem {
    #[error(
        "expected SECRET:ROLE:NAME or SECRET:ROLE, with ROLE one of viewer, operator, lead, ingest"
    )]
    Form,
    #[error("a secret must be at least 8 characters")]
    Short,
    #[error("a name is 1 to 64 characters, none of them `:` or a control character")]
    Name,
    #[error("the same secret is configured twice")]
    Twice,
}

#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    /// From `SECRET:ROLE:NAME` strings, or `SECRET:ROLE` (named after the
    /// role and its place in the list: `viewer-3`). Error messages never repeat a
    /// secret.
    pub fn parse(specs: &[String]) -> Result<Tokens, TokenError> {
        let mut tokens: Vec<Token> = Vec::new();
        for (n, spec) in specs.iter().enumerate() {
            let bad = |problem| TokenError {
                which: n + 1,
                problem,
            };
            let (secret, role, name) = split_spec(spec).ok_or(bad(TokenProblem::Form))?;
            if secret.len() < 8 {
                return Err(bad(TokenProblem::Short));
            }
            let name = match name {
                Some(name) => {
                    let name = name.trim();
                    if name.is_empty()
                        || name.len() > 64
                        || name.chars().any(|c| c.is_control() || c == ':')
                    {
                        return Err(bad(TokenProblem::Name));
                    }
                    name.to_string()
                }
                // Named by place, not by anything derived from the secret:
                // a name is shown to every viewer, and a hash of a secret
                // lets a guess be checked offline.
                None => format!("{}-{}", role.name(), n + 1),
            };
            if tokens.iter().any(|t| t.secret == secret) {
                return Err(bad(TokenProblem::Twice));
            }
            tokens.push(Token {
                secret: secret.to_string(),
                role,
                name,
            });
        }
        Ok(Tokens { tokens })
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks that the bearer token may read (a cluster node's check
    /// before it asks the partitions, which check again as they answer).
    pub fn check_read(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        self.check(headers, None, Permission::Read)
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
            .and_then(bearer_credentials);
        let presented = bearer.or(routing_key);
        let Some(presented) = presented else {
            return Err(
                Refusal::new(StatusCode::UNAUTHORIZED, "missing bearer token")
                    .field(Some("authorization".into())),
            );
        };
        let Some(token) = self
            .tokens
            .iter()
            .find(|t| constant_time_eq(t.secret.as_bytes(), presented.as_bytes()))
        else {
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, "unknown token")
                .field(Some("authorization".into())));
        };
        let role = &token.role;
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
            name: token.name.clone(),
            role,
        })
    }
}

/// `SECRET:ROLE:NAME` or `SECRET:ROLE` into its parts. The secret may hold
/// colons itself; the role is found from the end.
fn split_spec(spec: &str) -> Option<(&str, TokenRole, Option<&str>)> {
    if let Some((rest, last)) = spec.rsplit_once(':') {
        if let Some(role) = TokenRole::parse(last) {
            return Some((rest, role, None));
        }
        if let Some((secret, role)) = rest.rsplit_once(':')
            && let Some(role) = TokenRole::parse(role)
        {
            return Some((secret, role, Some(last)));
        }
    }
    None
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(bearer: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {bearer}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn a_token_names_who_acts_and_its_role() {
        let tokens = Tokens::parse(&[
            "s3cret-ops:operator:ana".into(),
            "with:colons:inside:lead:Bo Lead".into(),
            "plainsecret:viewer".into(),
        ])
        .unwrap();
        let ana = tokens
            .check(&headers("s3cret-ops"), None, Permission::Act)
            .unwrap();
        assert_eq!((ana.name.as_str(), ana.role), ("ana", Role::Operator));
        let bo = tokens
            .check(&headers("with:colons:inside"), None, Permission::Act)
            .unwrap();
        assert_eq!((bo.name.as_str(), bo.role), ("Bo Lead", Role::Lead));
        let viewer = tokens
            .check(&headers("plainsecret"), None, Permission::Read)
            .unwrap();
        assert_eq!(viewer.name, "viewer-3");
        assert!(!viewer.name.contains("plainsecret"));
        assert!(
            tokens
                .check(&headers("plainsecret"), None, Permission::Act)
                .is_err()
        );
    }

    #[test]
    fn bad_specs_are_refused_without_showing_the_secret() {
        for (spec, secret) in [
            ("short:lead", "short"),
            ("long-enough-pass:king", "long-enough-pass"),
            ("long-enough-pass:lead:a:b:c", "long-enough-pass"),
        ] {
            let err = Tokens::parse(&[spec.to_string()]).unwrap_err().to_string();
            assert!(!err.contains(secret), "{err}");
            assert!(err.starts_with("token 1"), "{err}");
        }
    }
}
