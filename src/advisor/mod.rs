//! The advisor: a language model behind an OpenAI-compatible chat
//! endpoint, local first, that explains decisions in words (`words.rs`),
//! proposes an option where people must decide (`propose.rs`) and drafts
//! policy rules from people's overrides (`drafts.rs`). Nothing it says is
//! taken on trust: an explanation keeps only the sentences that state the
//! journal's facts they cite, a proposal is one of the options the
//! decision's policies allow and is only shown to a person, a draft is
//! validated and replayed before a lead reads it. What it is given is
//! redacted (`redact.rs`) and quoted as data; every call is recorded
//! (`store.rs`), within a budget of tokens an hour and behind a breaker
//! (`guard.rs`). With no advisor configured, or a broken one, nothing
//! else changes.

pub mod client;
pub mod drafts;
pub mod facts;
pub mod guard;
pub mod propose;
pub mod redact;
pub mod settings;
pub mod store;
pub mod words;
pub mod worker;

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use chrono::Utc;

use crate::engine::overview::AdvisorRow;
pub use client::CallError;
use client::{Client, Prompt};
use redact::Redactor;
pub use settings::{AdvisorConfig, Settings};
use store::{Call, Store};

use crate::decide::Decision;
use crate::journal::read::Explanation;
use crate::signal::Signal;

impl crate::intake::Words for Advisor {
    fn words(&self, e: &Explanation) -> Result<serde_json::Value, String> {
        self.explain(e)
            .map(|w| w.to_json())
            .map_err(|e| e.to_string())
    }

    fn health(&self) -> AdvisorRow {
        Advisor::health(self)
    }
}

/// Why there is no advice.
#[derive(Debug, thiserror::Error)]
pub enum AdviceError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error(transparent)]
    Call(#[from] CallError),
    /// The endpoint answered, but not with what was asked.
    #[error("the advisor's answer was refused: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// The advisor of one data directory.
pub struct Advisor {
    client: Client,
    store: Store,
    redactor: Redactor,
    guard: Mutex<Guard>,
}

use guard::Guard;

impl Advisor {
    /// The advisor `[advisor]` describes, recording into `data_dir`.
    pub fn new(config: &AdvisorConfig, data_dir: &Path) -> Result<Advisor, AdviceError> {
        let settings = config.settings()?;
        let redactor = Redactor::new(&settings.redact);
        Ok(Advisor {
            store: Store::open(data_dir, settings.keep)?,
            client: Client::new(settings)?,
            redactor,
            guard: Mutex::new(Guard::default()),
        })
    }

    /// Where it is asked (never with a credential: `settings` refuses one).
    pub fn endpoint(&self) -> &str {
        self.client.settings().endpoint.as_str()
    }

    pub fn model(&self) -> &str {
        &self.client.settings().model
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, Guard> {
        self.guard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The breaker, as Health, `/healthz` and `/metrics` show it.
    pub fn health(&self) -> AdvisorRow {
        let state = self.guard().state(Instant::now());
        AdvisorRow {
            model: self.model().to_string(),
            open: state.open,
            why: state.why,
            failures_in_a_row: state.failures_in_a_row,
            trips: state.opened,
        }
    }

    /// A person answered an item it proposed for.
    pub fn answered(&self, agreed: bool) {
        self.guard().answered(Instant::now(), agreed);
    }

    /// One call: within the breaker and the budget, recorded whatever
    /// comes of it, its answer checked by `check`.
    pub fn ask<T>(
        &self,
        purpose: &str,
        ref_id: &str,
        prompt: &Prompt,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, AdviceError> {
        let settings = self.client.settings();
        self.guard()
            .allows(Instant::now())
            .map_err(CallError::Breaker)?;
        let now = Utc::now();
        let spent = self.store.spent_since(now - chrono::Duration::hours(1))?;
        if spent >= settings.tokens_per_hour {
            return Err(CallError::Budget {
                used: spent,
                limit: settings.tokens_per_hour,
            }
            .into());
        }
        let mut call = Call {
            time: now,
            purpose: purpose.into(),
            ref_id: ref_id.into(),
            model: settings.model.clone(),
            prompt_digest: prompt.digest(),
            latency_ms: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            answer_digest: String::new(),
            valid: false,
            error: String::new(),
        };
        let started = Instant::now();
        let outcome = match self.client.chat(prompt) {
            Err(e) => {
                call.latency_ms = started.elapsed().as_millis() as u64;
                call.error = e.to_string();
                if e.counts() {
                    self.guard().called(Instant::now(), Some(&call.error));
                }
                Err(AdviceError::Call(e))
            }
            Ok(reply) => {
                call.latency_ms = reply.latency.as_millis() as u64;
                call.prompt_tokens = reply.prompt_tokens;
                call.completion_tokens = reply.completion_tokens;
                call.answer_digest = crate::hash::hex_digest(&[reply.content.as_bytes()], 16);
                match check(&reply.content) {
                    Ok(value) => {
                        call.valid = true;
                        self.guard().called(Instant::now(), None);
                        Ok(value)
                    }
                    Err(why) => {
                        let why = match reply.cut_off {
                            true => {
                                format!("{why} (cut off at max_tokens {})", settings.max_tokens)
                            }
                            false => why,
                        };
                        call.error = why.clone();
                        self.guard()
                            .called(Instant::now(), Some(&format!("invalid answer: {why}")));
                        Err(AdviceError::Invalid(why))
                    }
                }
            }
        };
        if let Err(e) = self.store.record(&call) {
            tracing::error!(error = %e, "advisor call not recorded");
        }
        outcome
    }

    /// A decision in words, with its pages and incident as they stand:
    /// kept from before for this model and these facts, or asked.
    pub fn explain(&self, e: &Explanation) -> Result<words::Words, AdviceError> {
        let id = &e.decision.id;
        let facts = facts::of_decision(e, &self.redactor);
        // The record moves on (a page acknowledged, an incident resolved):
        // words are kept for the facts they were asked on.
        let lines = facts.prompt_lines();
        let key = format!("{id}@{}", crate::hash::hex_digest(&[lines.as_bytes()], 6));
        if let Some(kept) = self.store.answer("words", &key, self.model())?
            && let Ok(mut words) = serde_json::from_value::<words::Words>(kept)
        {
            words.cached = true;
            return Ok(words);
        }
        let prompt = words::prompt(id, &facts);
        let model = self.model().to_string();
        let words = self.ask("words", id, &prompt, |content| {
            words::check(id, &model, content, &facts)
        })?;
        self.store
            .keep("words", &key, &model, Utc::now(), &words.to_json())?;
        Ok(words)
    }

    /// The advisor's condition for a pattern of overrides.
    pub fn draft(&self, pattern: &drafts::Pattern) -> Result<drafts::Drafted, AdviceError> {
        let prompt = drafts::prompt(pattern, &self.redactor);
        let id = format!("{}:{}", pattern.signal_type, pattern.chosen);
        self.ask("draft", &id, &prompt, |content| {
            drafts::check(content, &self.redactor)
        })
    }

    /// A proposal among `options` for a signal of a type the playbook does
    /// not know, from the signal and its context alone.
    pub fn propose_new(
        &self,
        id: &str,
        signal: &Signal,
        context: &serde_json::Value,
        options: &[String],
    ) -> Result<propose::Proposal, AdviceError> {
        let facts = facts::of_signal(signal, context, &self.redactor);
        self.propose_among(id, &signal.kind, options, &facts)
    }

    /// A proposal for a decision people must make.
    pub fn propose(
        &self,
        decision: &Decision,
        signal: Option<&Signal>,
    ) -> Result<propose::Proposal, AdviceError> {
        let facts = facts::of_case(decision, signal, &self.redactor);
        let options: Vec<String> = decision.allowed_options().map(String::from).collect();
        self.propose_among(&decision.id, &decision.signal_type, &options, &facts)
    }

    /// One of `options` for decision `id` on a signal of `kind`, from
    /// `facts`.
    fn propose_among(
        &self,
        id: &str,
        kind: &str,
        options: &[String],
        facts: &facts::Facts,
    ) -> Result<propose::Proposal, AdviceError> {
        let prompt = propose::prompt(id, kind, options, facts);
        self.ask("propose", id, &prompt, |content| {
            propose::check(content, id, options, facts, &self.redactor)
        })
    }
}
