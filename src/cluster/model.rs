//! The cluster's one model: every partition's labelled examples are in the
//! model stream (`SB_MODEL`, published with its events by
//! `events::publish`), and each partition's engine learns from that
//! stream alone, in its order, from the position its checkpoint learnt
//! through (`engine::shared_model`). Same start, same updates, same order:
//! the same model in every partition, behind the newest example by the
//! time it takes to come back.

use std::time::Duration;

use super::bus::{self, Bus};
use crate::engine::host::{Busy, Command, Handle};
use crate::journal::Feedback;

/// Examples handed to the engine at once, at most.
const LEARN_BATCH: usize = 256;

/// Feeds `engine` the model stream after `through`, as it grows, until the
/// engine stops.
pub async fn follow(bus: Bus, engine: Handle, mut through: u64) {
    let mut wake = bus.wake_on(bus::ALL_MODEL, "the model stream").await;
    loop {
        match read_after(&bus, through).await {
            Ok((last, batch)) if !batch.is_empty() => {
                match engine.send(Command::LearnShared(batch)) {
                    Ok(()) => through = last,
                    Err(Busy::Gone) => return,
                    // Asked again after a pause, from the same place.
                    Err(Busy::Full) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
                continue;
            }
            // Only examples that could not be read: passed over.
            Ok((last, _)) => through = last,
            Err(e) => tracing::warn!(error = %e, "reading the model stream"),
        }
        wake.wait().await;
    }
}

/// Up to `LEARN_BATCH` examples after `through`, with their positions,
/// and the last position read. One that cannot be read is skipped (by
/// every partition alike), and said.
async fn read_after(
    bus: &Bus,
    mut through: u64,
) -> Result<(u64, Vec<(u64, Feedback)>), bus::BusError> {
    let mut batch = Vec::new();
    while batch.len() < LEARN_BATCH {
        let Some(message) = Bus::next_of(&bus.model, bus::ALL_MODEL, through + 1).await? else {
            break;
        };
        through = message.sequence;
        match serde_json::from_slice::<Feedback>(&message.payload) {
            Ok(example) => batch.push((message.sequence, example)),
            Err(e) => tracing::warn!(
                sequence = message.sequence,
                error = %e,
                "an example in the model stream could not be read; skipped"
            ),
        }
    }
    Ok((through, batch))
}
