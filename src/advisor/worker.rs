//! The advisor beside a running engine (`serve`): a thread that looks at
//! the review queue, asks for a proposal on each new item that wants one
//! (its signal's type is unknown, or the model was less sure than its
//! threshold; every item for a shadow advisor), and hands each checked
//! proposal to the engine, which journals it and shows it beside the
//! model's. It tells the breaker how often people chose what it
//! proposed. The engine never waits for it: with the advisor slow,
//! broken or behind its breaker, items are decided as they always were.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::oneshot;

use super::{AdviceError, Advisor, CallError};
use crate::engine::host::{Command, Handle};
use crate::page::Page;
use crate::review::{Advice, ReviewItem};

/// How often the queue is looked at.
const POLL: Duration = Duration::from_millis(500);
/// Items read from the queue per look.
const BATCH: usize = 100;
/// People's answers are read every this many looks (the engine's figures
/// walk its flows: not twice a second).
const ANSWERS_EVERY: u64 = 10;

/// Starts the thread; it ends when the engine stops.
pub fn spawn(
    advisor: Arc<Advisor>,
    engine: Handle,
    shadow: bool,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("advisor".into())
        .spawn(move || {
            let mut worker = Worker {
                advisor,
                engine,
                shadow,
                after: None,
                answers: (0, 0),
                passes: 0,
            };
            while !worker.engine.stopping() {
                worker.pass();
                std::thread::sleep(POLL);
            }
        })
}

struct Worker {
    advisor: Arc<Advisor>,
    engine: Handle,
    shadow: bool,
    /// The last item looked at (ids grow).
    after: Option<String>,
    /// People's answers to advised items, and agreements, as last read.
    answers: (u64, u64),
    passes: u64,
}

impl Worker {
    fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.engine.send(command(tx)).ok()?;
        rx.blocking_recv().ok()
    }

    /// One look: the breaker learns people's latest answers, then each
    /// new item that wants advice gets it.
    fn pass(&mut self) {
        // Health shows it; a full queue only delays it to the next pass.
        let _ = self
            .engine
            .send(Command::AdvisorState(self.advisor.health()));
        self.passes += 1;
        let read_answers = self.passes % ANSWERS_EVERY == 1;
        if read_answers && let Some(status) = self.ask(|reply| Command::Status { reply }) {
            let (answered, agreed) = (status.advised_answered, status.advised_agreed);
            let new_answers = answered.saturating_sub(self.answers.0);
            let new_agreed = agreed.saturating_sub(self.answers.1).min(new_answers);
            for i in 0..new_answers {
                self.advisor.answered(i < new_agreed);
            }
            self.answers = (answered, agreed);
        }
        let page = Page {
            after: self.after.clone(),
            limit: BATCH,
        };
        let Some(items) = self.ask(|reply| Command::Reviews { page, reply }) else {
            return;
        };
        // Ids grow, and each look begins after the last item looked at:
        // an item is asked about once.
        for item in items.items {
            if self.engine.stopping() {
                return;
            }
            let wanted = item.advice.is_none() && (self.shadow || item.wants_advice());
            if wanted {
                match self.propose(&item) {
                    Err(AdviceError::Call(CallError::Breaker(_) | CallError::Budget { .. })) => {
                        // Tried again once the breaker or the budget allows.
                        return;
                    }
                    Err(e) => tracing::warn!(review = %item.id, error = %e, "no advice"),
                    Ok(()) => {}
                }
            }
            self.after = Some(item.id);
        }
    }

    fn propose(&self, item: &ReviewItem) -> Result<(), AdviceError> {
        let proposal = self.advisor.propose(&item.decision, Some(&item.signal))?;
        let advice = Advice {
            option: proposal.option,
            reason: proposal.reason,
            citations: proposal.citations,
            model: self.advisor.model().to_string(),
            time: Utc::now(),
            shadow: self.shadow,
        };
        let review_id = item.id.clone();
        if let Some(Err(e)) = self.ask(|reply| Command::Advise {
            review_id,
            advice,
            reply,
        }) {
            tracing::info!(review = %item.id, error = %e, "advice not taken");
        }
        Ok(())
    }
}
