//! The log's writer thread: appends in groups, one commit each, then the
//! answers.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

use rusqlite::{Connection, params};

use super::{Append, GROUP, HIGH_WATER, Shared, TRUNCATE_EVERY, TRUNCATE_MAX};

/// Appends until every sender is gone, then closes the connection.
pub(super) fn writer_loop(
    mut conn: Connection,
    rx: Receiver<Append>,
    shared: Arc<Shared>,
    path: &Path,
) {
    let mut next = shared.committed.load(Ordering::SeqCst) + 1;
    let mut truncated = shared.decided.load(Ordering::SeqCst);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match rx.try_recv() {
                Ok(append) => batch.push(append),
                Err(_) => break,
            }
        }
        let decided = shared.decided.load(Ordering::SeqCst);
        let truncate = (decided >= truncated + TRUNCATE_EVERY)
            .then_some(decided.min(truncated + TRUNCATE_MAX));
        let started = std::time::Instant::now();
        let written = write(&mut conn, &batch, next, truncate);
        shared.commits.observe(started.elapsed().as_secs_f64());
        match written {
            Ok(last) => {
                next = last + 1;
                if let Some(upto) = truncate {
                    truncated = upto;
                }
                if let Ok(mut acks) = shared.acks.lock() {
                    acks.push_back((last, std::time::Instant::now()));
                }
                shared.committed.store(last, Ordering::SeqCst);
                if !shared.nudged.swap(true, Ordering::SeqCst)
                    && let Ok(wake) = shared.wake.lock()
                    && let Some(wake) = wake.as_ref()
                {
                    wake();
                }
                for append in batch {
                    let _ = append.reply.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(log = %path.display(), error = %e, "intake log commit failed");
                // A commit reported failed may still have happened: go on
                // from what the file holds, never reusing a number.
                if let Ok(last) = conn.query_row("SELECT MAX(seq) FROM intake", [], |r| {
                    r.get::<_, Option<i64>>(0)
                }) {
                    next = next.max(last.map_or(0, |l| l.max(0) as u64) + 1);
                }
                let message = format!("intake log {}: {e}", path.display());
                for append in batch {
                    let _ = append.reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// Appends the batch's signals from sequence number `next` (and deletes
/// the rows up to `truncate`) in one transaction; returns the last number.
fn write(
    conn: &mut Connection,
    batch: &[Append],
    mut next: u64,
    truncate: Option<u64>,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached("INSERT INTO intake (seq, body) VALUES (?1, ?2)")?;
        for append in batch {
            for (i, row) in append.rows.iter().enumerate() {
                let seq = append.at.get(i).copied().unwrap_or(next);
                if seq < next {
                    continue;
                }
                insert.execute(params![seq as i64, row])?;
                next = seq + 1;
            }
        }
    }
    if let Some(upto) = truncate {
        tx.execute("DELETE FROM intake WHERE seq <= ?1", [upto as i64])?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![HIGH_WATER, (next - 1).to_string()],
        )?;
    }
    tx.commit()?;
    Ok(next - 1)
}
