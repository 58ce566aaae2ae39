//! Capacity for long-lived event streams, apart from request capacity.
//!
//! Every connection takes one of the server's connection slots while it
//! is open (`server::run`). An `/v1/events` stream holds its connection for
//! as long as the client keeps it, so 1,030 idle streams once held every
//! slot and no health check, intake or review action was answered. A
//! stream therefore trades its connection slot for a stream slot: the
//! connection gives its slot back when the stream starts, and the stream
//! holds one of `max_streams` slots (at most `max_streams_per_token` for
//! one token) until it ends. Past either cap a stream is refused (503 with
//! `Retry-After`), and requests keep their own capacity.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection's slot, in each of its requests' extensions: a stream
/// takes it out (giving it back to the server) when it starts.
#[derive(Clone)]
pub struct ConnectionSlot(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl ConnectionSlot {
    pub fn new(permit: OwnedSemaphorePermit) -> ConnectionSlot {
        ConnectionSlot(Arc::new(Mutex::new(Some(permit))))
    }

    /// Gives the connection's slot back to the server.
    pub fn release(&self) {
        if let Ok(mut slot) = self.0.lock() {
            slot.take();
        }
    }
}

/// The stream slots of one server.
pub struct StreamSlots {
    total: Arc<Semaphore>,
    per_token: usize,
    by_token: Arc<Mutex<HashMap<String, usize>>>,
    pub max: usize,
}

/// One stream's hold on its slots, released when the stream ends.
pub struct StreamSlot {
    _total: OwnedSemaphorePermit,
    token: String,
    by_token: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut by) = self.by_token.lock()
            && let Some(n) = by.get_mut(&self.token)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by.remove(&self.token);
            }
        }
    }
}

/// Why a stream was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefused {
    #[error("{0} event streams are open, the server's limit (intake.max_streams); try again later")]
    Full(usize),
    #[error(
        "{name} has {open} event streams open, the limit per token (intake.max_streams_per_token)"
    )]
    TokenFull { name: String, open: usize },
}

impl StreamSlots {
    pub fn new(max: usize, per_token: usize) -> StreamSlots {
        StreamSlots {
            total: Arc::new(Semaphore::new(max.max(1))),
            per_token: per_token.max(1),
            by_token: Arc::default(),
            max: max.max(1),
        }
    }

    /// A slot for a stream of `token` (the caller's name), if one is free.
    pub fn take(&self, token: &str) -> Result<StreamSlot, StreamRefused> {
        let mut by = self
            .by_token
            .lock()
            .map_err(|_| StreamRefused::Full(self.max))?;
        let open = by.get(token).copied().unwrap_or(0);
        if open >= self.per_token {
            return Err(StreamRefused::TokenFull {
                name: token.to_string(),
                open,
            });
        }
        let permit = Arc::clone(&self.total)
            .try_acquire_owned()
            .map_err(|_| StreamRefused::Full(self.max))?;
        *by.entry(token.to_string()).or_insert(0) += 1;
        Ok(StreamSlot {
            _total: permit,
            token: token.to_string(),
            by_token: Arc::clone(&self.by_token),
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.max - self.total.available_permits()
    }
}

impl Default for StreamSlots {
    fn default() -> StreamSlots {
        StreamSlots::new(DEFAULT_MAX_STREAMS, DEFAULT_MAX_STREAMS_PER_TOKEN)
    }
}

/// Event streams open at once, unless configured.
pub const DEFAULT_MAX_STREAMS: usize = 256;
/// Event streams one token may hold open at once, unless configured.
pub const DEFAULT_MAX_STREAMS_PER_TOKEN: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_in_total_and_per_token_and_free_on_drop() {
        let slots = StreamSlots::new(3, 2);
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert!(matches!(
            slots.take("a"),
            Err(StreamRefused::TokenFull { .. })
        ));
        let _b1 = slots.take("b").unwrap();
        assert_eq!(slots.take("c").err(), Some(StreamRefused::Full(3)));
        drop(a1);
        assert_eq!(slots.open(), 2);
        assert!(slots.take("a").is_ok());
    }
}
