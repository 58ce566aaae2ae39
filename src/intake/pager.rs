//! Delivering pages' notifications: each attempt the engine made durable
//! goes to its person by its method (a Slack-compatible incoming webhook,
//! a JSON webhook signed with `X-Signalbox-Signature-256`), retried with
//! backoff behind a breaker per channel, and what became of it goes back
//! to the engine (`Command::PageDelivered`), which journals it and moves a
//! person whose channel failed on to their next method. Each message says
//! what happened, why, and links to the evidence and to a signed,
//! expiring acknowledgement for the person it was sent to.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::engine::host::{Command, Handle};
use crate::outbound::{Failed, Retries, post_json};
use crate::paging::pages::{Send, Tells};
use crate::paging::{Method, Urgency};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Tries per attempt, and the first wait between them (doubling).
const TRIES: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(500);

/// Failures in a row that open a channel's breaker, and how long it stays
/// open (attempts on it fail at once, moving people to their next method).
const TRIP_AFTER: u32 = 3;
const COOLDOWN: Duration = Duration::from_secs(60);

/// How long a signed acknowledgement link stays valid.
pub const LINK_LIFETIME: chrono::Duration = chrono::Duration::hours(24);

/// What the pager needs besides the engine.
#[derive(Clone)]
pub struct PagerSettings {
    /// Where people reach this server (links in messages).
    pub base_url: String,
    /// The data directory's secret; links are signed with a key made from it.
    pub secret: Vec<u8>,
    pub ca_file: Option<PathBuf>,
    /// The mail server pages by email go through, if there is one.
    pub smtp: Option<SmtpConfig>,
    /// Where PagerDuty events go (`[pagerduty] events_url`).
    pub pagerduty_url: String,
}

/// PagerDuty's Events API v2 (its US service region).
pub const PAGERDUTY_EVENTS: &str = "https://events.pagerduty.com/v2/enqueue";

/// `[pagerduty]` in the server's settings.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// `https://events.eu.pagerduty.com/v2/enqueue` for the EU region.
    pub events_url: String,
}

/// `[smtp]` in the server's settings.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "submission_port")]
    pub port: u16,
    /// The sender, `signalbox@example.com` or `Signalbox <…>`.
    pub from: String,
    /// `starttls` (the default: refused without it), or `none` on a
    /// trusted local relay.
    #[serde(default = "starttls")]
    pub tls: String,
    pub username: Option<String>,
    /// Never journaled or shown.
    pub password: Option<String>,
}

fn submission_port() -> u16 {
    587
}

fn starttls() -> String {
    "starttls".into()
}

impl SmtpConfig {
    /// Whether it can be used; why not.
    pub fn check(&self) -> Result<(), String> {
        if !matches!(self.tls.as_str(), "starttls" | "none") {
            return Err(format!(
                "smtp.tls {:?} is not \"starttls\" or \"none\"",
                self.tls
            ));
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map(drop)
            .map_err(|e| format!("smtp.from {:?}: {e}", self.from))
    }
}

/// A channel's breaker.
#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// Delivers notifications until the engine's side of the channel closes.
pub async fn run(mut sends: UnboundedReceiver<Send>, engine: Handle, settings: PagerSettings) {
    let client = match crate::outbound::client(settings.ca_file.as_deref(), Duration::from_secs(5))
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the pager cannot start");
            return;
        }
    };
    let breakers = Arc::new(tokio::sync::Mutex::new(HashMap::<Method, Breaker>::new()));
    let order = Arc::new(std::sync::Mutex::new(InOrder::default()));
    while let Some(send) = sends.recv().await {
        let (client, engine, settings) = (client.clone(), engine.clone(), settings.clone());
        let breakers = Arc::clone(&breakers);
        let (turn, before) = InOrder::queue(&order, &send);
        tokio::spawn(async move {
            if let Some(mut before) = before {
                // Ends when the one before is done (its sender dropped).
                let _ = before.changed().await;
            }
            let result = guarded(&client, &send, &settings, &breakers).await;
            drop(turn);
            if let Err(why) = &result {
                tracing::warn!(page = %send.page_id, attempt = send.attempt, person = %send.person,
                    method = send.method.as_str(), error = %why, "page notification not delivered");
            }
            let _ = engine.send(Command::PageDelivered {
                page_id: send.page_id,
                attempt: send.attempt,
                result,
            });
        });
    }
}

/// What goes to one channel about one page goes in the order the engine
/// made it: delivered side by side, a resolve could overtake its
/// acknowledge or its trigger (PagerDuty then ignores the acknowledge, or
/// keeps an alert open that was resolved here). Each send waits for the
/// one before it on its page, method and address, retries included;
/// other pages and channels do not wait.
#[derive(Default)]
struct InOrder {
    /// Per conversation, the last send queued: its turn, and what ends
    /// when it is done.
    last: HashMap<Conversation, (u64, watch::Receiver<()>)>,
    turns: u64,
}

/// A page, a method and an address.
type Conversation = (String, Method, String);

/// A send's place in its conversation. Dropped when the send is done, or
/// when its task ends any other way: the next one then goes.
struct Turn {
    order: Arc<std::sync::Mutex<InOrder>>,
    key: Conversation,
    turn: u64,
    /// Dropped last, after the conversation forgets this turn.
    _go_next: watch::Sender<()>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut o = self
            .order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if o.last.get(&self.key).is_some_and(|(t, _)| *t == self.turn) {
            o.last.remove(&self.key);
        }
    }
}

impl InOrder {
    /// Queues a send: its turn, and what to wait for before it goes.
    fn queue(
        order: &Arc<std::sync::Mutex<Self>>,
        send: &Send,
    ) -> (Turn, Option<watch::Receiver<()>>) {
        let key = (send.page_id.clone(), send.method, send.address.clone());
        let mut o = order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        o.turns += 1;
        let turn = o.turns;
        let (tx, rx) = watch::channel(());
        let before = o.last.insert(key.clone(), (turn, rx)).map(|(_, rx)| rx);
        let turn = Turn {
            order: Arc::clone(order),
            key,
            turn,
            _go_next: tx,
        };
        (turn, before)
    }
}

/// Sends one notification unless its channel's breaker is open, and
/// counts the result on the breaker.
async fn guarded(
    client: &reqwest::Client,
    send: &Send,
    settings: &PagerSettings,
    breakers: &tokio::sync::Mutex<HashMap<Method, Breaker>>,
) -> Result<String, String> {
    let open = breakers
        .lock()
        .await
        .get(&send.method)
        .and_then(|b| b.open_until)
        .is_some_and(|t| Instant::now() < t);
    let result = if open {
        Err(format!(
            "the {} channel's breaker is open",
            send.method.as_str()
        ))
    } else {
        deliver(client, send, settings).await
    };
    let mut all = breakers.lock().await;
    let b = all.entry(send.method).or_default();
    match &result {
        Ok(_) => *b = Breaker::default(),
        Err(_) if !open => {
            b.failures += 1;
            if b.failures >= TRIP_AFTER {
                b.open_until = Some(Instant::now() + COOLDOWN);
                b.failures = 0;
            }
        }
        Err(_) => {}
    }
    result
}

/// Sends one notification; the channel's answer, or why it failed.
async fn deliver(
    client: &reqwest::Client,
    send: &Send,
    settings: &PagerSettings,
) -> Result<String, String> {
    let ack = ack_link(
        settings,
        &send.page_id,
        &send.person,
        Utc::now() + LINK_LIFETIME,
    );
    let text = message(send, settings, &ack);
    let idempotency = format!("{}-{}", send.page_id, send.attempt);
    let retries = Retries {
        tries: TRIES,
        backoff: BACKOFF,
        jitter: true,
    };
    let (url, body, signature) = match send.method {
        Method::Slack => (
            send.address.as_str(),
            slack_body(&text).to_string().into_bytes(),
            None,
        ),
        Method::Webhook => {
            let body = json!({
                "source": "signalbox",
                "event": "page",
                "page": send.page,
                "attempt": send.attempt,
                "person": send.person,
                "text": text,
                "ack_url": ack,
            })
            .to_string()
            .into_bytes();
            let signature = sign(&settings.secret, &body);
            (send.address.as_str(), body, Some(signature))
        }
        Method::Email => return email(send, settings, &text).await,
        Method::PagerDuty => (
            settings.pagerduty_url.as_str(),
            pagerduty_event(send, settings, &ack)
                .to_string()
                .into_bytes(),
            None,
        ),
    };
    // PagerDuty deduplicates by the event's dedup_key instead.
    let mut headers = Vec::new();
    if send.method != Method::PagerDuty {
        headers.push(("idempotency-key", idempotency.as_str()));
    }
    let signed = signature.map(|s| format!("sha256={s}"));
    if let Some(s) = &signed {
        headers.push(("x-signalbox-signature-256", s.as_str()));
    }
    let tried = |n: u32| match n {
        0 | 1 => String::new(),
        n => format!(" (after {n} tries)"),
    };
    let said = |a: crate::outbound::Answer| match a.body.is_empty() {
        true => format!("answered {}{}", a.status, tried(a.tries)),
        false => format!("answered {}: {}{}", a.status, a.body, tried(a.tries)),
    };
    match post_json(client, url, body, &headers, retries).await {
        Ok(a) => Ok(said(a)),
        Err(Failed::Answered(a)) => Err(said(a)),
        Err(Failed::Unreachable(e, n)) => Err(format!("{e}{}", tried(n))),
    }
}

/// An Events API v2 event: a page triggers an alert whose dedup_key is
/// the page's URL (unique across deployments, and the same for every
/// attempt, so PagerDuty keeps one alert per page); acknowledging or
/// resolving it here sends the same key with that action.
fn pagerduty_event(send: &Send, settings: &PagerSettings, ack: &str) -> serde_json::Value {
    let page = &send.page;
    let mut dedup_key = format!("{}/v1/pages/{}", settings.base_url, page.id);
    if dedup_key.len() > 255 {
        dedup_key = format!("signalbox/{}", page.id);
    }
    let action = match send.tells {
        Tells::Page => "trigger",
        Tells::Acknowledged => "acknowledge",
        Tells::Resolved => "resolve",
    };
    if send.tells != Tells::Page {
        return json!({
            "routing_key": send.address,
            "dedup_key": dedup_key,
            "event_action": action,
        });
    }
    let summary: String = format!("[signalbox] {}", page.title)
        .chars()
        .take(1024)
        .collect();
    let mut links = Vec::new();
    if let Some(d) = &page.decision_id {
        links.push(json!({
            "href": format!("{}/v1/decisions/{d}?format=text", settings.base_url),
            "text": "Why signalbox paged (the decision explained)",
        }));
    }
    links.push(
        json!({ "href": ack, "text": format!("Acknowledge in signalbox as {}", send.person) }),
    );
    json!({
        "routing_key": send.address,
        "event_action": action,
        "dedup_key": dedup_key,
        "payload": {
            "summary": summary,
            "source": if page.subject.is_empty() { "signalbox" } else { page.subject.as_str() },
            "severity": match page.urgency {
                Urgency::High => "critical",
                Urgency::Low => "warning",
            },
            "timestamp": page.opened.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "group": page.policy,
            "class": "signalbox page",
            "custom_details": {
                "page": page.id,
                "why": page.why,
                "person": send.person,
                "level": page.level + 1,
                "round": page.round + 1,
                "decision": page.decision_id,
                "flow": page.flow_id,
                "incident": page.incident.as_ref().map(|(id, _)| id),
                "alerts": page.incident.as_ref().map(|(_, n)| n),
                "console": format!("signalbox attach {}", settings.base_url),
            },
        },
        "links": links,
        "client": "signalbox",
        "client_url": settings.base_url,
    })
}

/// Sends a page by email through `[smtp]`, STARTTLS required unless told
/// otherwise; the server's answer, or why it failed.
async fn email(send: &Send, settings: &PagerSettings, text: &str) -> Result<String, String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let Some(smtp) = &settings.smtp else {
        return Err("email is not configured on this server (no [smtp])".into());
    };
    let message = Message::builder()
        .from(smtp.from.parse().map_err(|e| format!("smtp.from: {e}"))?)
        .to(send
            .address
            .parse()
            .map_err(|e| format!("address {:?}: {e}", send.address))?)
        .subject(format!(
            "[signalbox] PAGE {}: {}",
            send.page_id, send.page.title
        ))
        .message_id(Some(format!(
            "<{}-{}@signalbox>",
            send.page_id, send.attempt
        )))
        .body(text.to_string())
        .map_err(|e| e.to_string())?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(10)));
    if smtp.tls == "starttls" {
        let mut tls = TlsParameters::builder(smtp.host.clone());
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let ca = Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
            tls = tls.add_root_certificate(ca);
        }
        let tls = tls.build_rustls().map_err(|e| e.to_string())?;
        transport = transport.tls(Tls::Required(tls));
    }
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let answer = transport
        .build()
        .send(message)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "answered {} {}",
        answer.code(),
        answer.message().collect::<Vec<_>>().join(" ")
    ))
}

/// A Slack-compatible body: the text, and the same as one Block Kit
/// section (Mattermost and Rocket.Chat read `text`).
fn slack_body(text: &str) -> serde_json::Value {
    json!({
        "text": text,
        "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": text } }],
    })
}

/// What a page says: what, why, the level it is at, and where to look and
/// acknowledge.
fn message(send: &Send, settings: &PagerSettings, ack: &str) -> String {
    let page = &send.page;
    let mut lines = vec![
        format!(
            "[signalbox] PAGE {} ({:?}, level {}, round {}): {}",
            page.id,
            page.urgency,
            page.level + 1,
            page.round + 1,
            page.title
        ),
        format!("Why: {}", page.why),
    ];
    if let Some((incident, alerts)) = &page.incident {
        lines.push(format!(
            "Incident {incident}: {alerts} alert{} so far ({}/v1/incidents/{incident})",
            if *alerts == 1 { "" } else { "s" },
            settings.base_url
        ));
    }
    if let Some(d) = &page.decision_id {
        lines.push(format!(
            "Evidence: {}/v1/decisions/{d}?format=text",
            settings.base_url
        ));
    }
    lines.push(format!("Acknowledge: {ack}"));
    lines.push(format!("Console: signalbox attach {}", settings.base_url));
    lines.join("\n")
}

/// The signature of `body` with the pager's key: hex HMAC-SHA256.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = keyed(secret, b"webhook");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A MAC keyed for one use of the data directory's secret (the key is
/// HMAC(secret, purpose), so a link's signature is never a webhook's).
fn keyed(secret: &[u8], purpose: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: `new_from_slice` refuses none, and
    // the fallback (an empty key) is not reached.
    let mac = |key: &[u8]| {
        HmacSha256::new_from_slice(key).unwrap_or_else(|_| HmacSha256::new(&Default::default()))
    };
    let mut derive = mac(secret);
    derive.update(purpose);
    mac(&derive.finalize().into_bytes())
}

/// The MAC of an acknowledgement link, fed with what it is bound to.
fn link_mac(secret: &[u8], page: &str, action: &str, person: &str, expires: i64) -> HmacSha256 {
    let mut mac = keyed(secret, b"page-link");
    mac.update(format!("{page}\n{action}\n{person}\n{expires}").as_bytes());
    mac
}

/// A link that acknowledges `page` as `person` until `expires`.
pub fn ack_link(
    settings: &PagerSettings,
    page: &str,
    person: &str,
    expires: DateTime<Utc>,
) -> String {
    let expires = expires.timestamp();
    let sig = hex::encode(
        link_mac(&settings.secret, page, "ack", person, expires)
            .finalize()
            .into_bytes(),
    );
    let person_q =
        percent_encoding::utf8_percent_encode(person, percent_encoding::NON_ALPHANUMERIC);
    format!(
        "{}/v1/pages/{page}/ack?person={person_q}&expires={expires}&sig={sig}",
        settings.base_url
    )
}

/// Whether a link's signature matches and it has not expired.
pub fn link_is_valid(
    secret: &[u8],
    page: &str,
    action: &str,
    person: &str,
    expires: i64,
    sig: &str,
    now: DateTime<Utc>,
) -> bool {
    if now.timestamp() > expires {
        return false;
    }
    // Compared in constant time: the MAC's own verify.
    let Ok(given) = hex::decode(sig) else {
        return false;
    };
    link_mac(secret, page, action, person, expires)
        .verify_slice(&given)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link works for its page, action and person until it expires; any
    /// change to it is refused.
    #[test]
    fn signed_links_are_bound_and_expire() {
        let settings = PagerSettings {
            base_url: "http://127.0.0.1:7700".into(),
            secret: b"secret of the data directory".to_vec(),
            ca_file: None,
            smtp: None,
            pagerduty_url: PAGERDUTY_EVENTS.into(),
        };
        let now = Utc::now();
        let link = ack_link(
            &settings,
            "P0000001",
            "dana",
            now + chrono::Duration::hours(1),
        );
        let query = link.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let field = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_default()
                .to_string()
        };
        let (expires, sig) = (field("expires").parse::<i64>().unwrap(), field("sig"));
        let valid = |page: &str, person: &str, expires: i64, at: DateTime<Utc>| {
            link_is_valid(&settings.secret, page, "ack", person, expires, &sig, at)
        };
        assert!(valid("P0000001", "dana", expires, now));
        assert!(!valid("P0000002", "dana", expires, now), "another page");
        assert!(!valid("P0000001", "emil", expires, now), "another person");
        assert!(
            !valid("P0000001", "dana", expires + 3600, now),
            "a longer life"
        );
        assert!(
            !valid(
                "P0000001",
                "dana",
                expires,
                now + chrono::Duration::hours(2)
            ),
            "expired"
        );
        assert!(!link_is_valid(
            &settings.secret,
            "P0000001",
            "resolve",
            "dana",
            expires,
            &sig,
            now
        ));
    }
}
