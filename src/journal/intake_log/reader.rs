//! The engine's side of the log: reading in order from its cursor, and
//! telling the log what the journal holds.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rusqlite::{Connection, params};

use super::{JournalError, Shared};
use crate::signal::Signal;

/// The engine's side of the log: reads what was committed, in order.
/// Dropped (the engine's thread ended, however it ended), it halts the log:
/// nothing is acknowledged that nothing will decide.
pub struct LogReader {
    pub(super) conn: Connection,
    pub(super) shared: Arc<Shared>,
    pub(super) id: Arc<str>,
    pub(super) path: Arc<PathBuf>,
    pub(super) next: u64,
    /// The last row read that parsed: its sequence and its signal's
    /// identity (`signal_at_cursor`).
    pub(super) last: Option<(u64, u128)>,
}

/// Tells the log how far the journal holds the engine's decisions (sent to
/// whichever thread waits for the journal's commits).
#[derive(Clone)]
pub struct Progress(Arc<Shared>);

impl Progress {
    /// The journal holds the decisions of signals acknowledged at `acked`.
    pub fn observe(&self, acked: &[std::time::Instant]) {
        for at in acked {
            self.0.latency.observe(at.elapsed().as_secs_f64());
        }
    }

    /// The journal holds the decisions of everything up to `upto`.
    pub fn decided(&self, upto: u64) {
        // Under the halt's lock: a position reported after a failed commit
        // would let the log delete what that commit lost.
        if let Ok(halted) = self.0.halted.lock()
            && halted.is_none()
        {
            self.0.decided.fetch_max(upto, Ordering::SeqCst);
        }
    }

    /// How far the journal holds the engine's decisions.
    pub fn decided_upto(&self) -> u64 {
        self.0.decided.load(Ordering::SeqCst)
    }

    /// The engine stops deciding from the log: a journal commit of what it
    /// read failed, or it ended. Appends are refused from now on; a restart
    /// decides again from the journal's last cursor.
    pub fn halt(&self, why: &str) {
        self.0.halt(why);
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.halt("the engine thread panicked");
        } else {
            self.shared.halt("the engine has stopped");
        }
    }
}

impl LogReader {
    /// The engine comes round: appends are taken (see `STUCK_AFTER`).
    pub fn beat(&self) {
        self.shared.beat();
    }

    /// Whether signals are committed that have not been read (and the
    /// engine still decides from the log).
    pub fn pending(&self) -> bool {
        self.shared.committed.load(Ordering::SeqCst) >= self.next && !self.halted()
    }

    pub fn halted(&self) -> bool {
        self.shared.halted().is_some()
    }

    /// Sequence numbers committed to the log so far.
    pub fn committed(&self) -> u64 {
        self.shared.committed.load(Ordering::SeqCst)
    }

    /// Signals acknowledged and not yet decided.
    pub fn backlog(&self) -> u64 {
        self.shared.backlog()
    }

    /// Past this backlog the log refuses appends.
    pub fn max_backlog(&self) -> u64 {
        self.shared.max_backlog
    }

    /// The next `max` signals at most, each with when it was acknowledged
    /// (when this process committed it to the log; none for what an earlier
    /// one did). A row that no longer parses (it was written by this
    /// program, so only a damaged file does that) is logged as an error
    /// with its sequence number and skipped.
    pub fn read_acked(
        &mut self,
        max: usize,
    ) -> Result<Vec<(Signal, Option<std::time::Instant>)>, JournalError> {
        let read = self.read_rows(max)?;
        let Ok(mut acks) = self.shared.acks.lock() else {
            return Ok(read.into_iter().map(|(_, s)| (s, None)).collect());
        };
        let mut out = Vec::with_capacity(read.len());
        for (seq, signal) in read {
            // Commits below this row are behind the reader for good.
            while acks.front().is_some_and(|(last, _)| *last < seq) {
                acks.pop_front();
            }
            out.push((signal, acks.front().map(|(_, at)| *at)));
        }
        Ok(out)
    }

    /// `read_acked`, without the times.
    pub fn read(&mut self, max: usize) -> Result<Vec<Signal>, JournalError> {
        Ok(self.read_rows(max)?.into_iter().map(|(_, s)| s).collect())
    }

    fn read_rows(&mut self, max: usize) -> Result<Vec<(u64, Signal)>, JournalError> {
        self.shared.nudged.store(false, Ordering::SeqCst);
        if !self.pending() {
            return Ok(Vec::new());
        }
        // Everything up to here is committed, so visible to the query below
        // if it still exists.
        let committed = self.shared.committed.load(Ordering::SeqCst);
        let sql = |error| JournalError::Sqlite {
            path: self.path.display().to_string(),
            error,
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, body FROM intake WHERE seq >= ?1 ORDER BY seq LIMIT ?2")
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![self.next as i64, max as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql)?;
        let mut signals = Vec::with_capacity(max);
        let mut next = self.next;
        let mut read = 0;
        for row in rows {
            // An error part-way leaves the position where it was: the rows
            // are read again, not skipped.
            let (seq, body) = row.map_err(sql)?;
            next = seq as u64 + 1;
            read += 1;
            match serde_json::from_str::<Signal>(&body) {
                Ok(signal) => {
                    self.last = Some((seq as u64, signal.identity()));
                    signals.push((seq as u64, signal));
                }
                Err(e) => tracing::error!(
                    log = %self.path.display(), seq, error = %e,
                    "intake log row does not parse; skipped"
                ),
            }
        }
        if read < max {
            // Rows up to `committed` that the query did not see were deleted
            // (decided by a journal this one replaced): nothing to wait for.
            next = next.max(committed + 1);
        }
        self.next = next;
        Ok(signals)
    }

    /// Reads next after `position`: back, to read again rows the log still
    /// holds (those not yet reported decided), or forward to where it was.
    pub fn seek(&mut self, position: u64) {
        self.next = position + 1;
    }

    /// The last sequence number read.
    pub fn position(&self) -> u64 {
        self.next - 1
    }

    /// The journal meta value that records the position.
    pub fn cursor(&self) -> String {
        format!("{}:{}", self.id, self.position())
    }

    /// The identity of the signal read at the position, when the row there
    /// was read and parsed: what a cluster partition checks its stream
    /// still holds at the cursor when it starts.
    pub fn signal_at_cursor(&self) -> Option<u128> {
        self.last
            .filter(|(seq, _)| *seq == self.position())
            .map(|(_, identity)| identity)
    }

    pub fn progress(&self) -> Progress {
        Progress(Arc::clone(&self.shared))
    }
}
