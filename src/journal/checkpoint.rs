//! WAL checkpoints off the writer's path.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::JournalError;
use super::schema::{checkpoint_pages, connect};

/// The multiple of the checkpoint threshold (`schema::CHECKPOINT_BYTES`)
/// at which the writer checkpoints itself.
const CHECKPOINT_IN_WRITER: i64 = 4;

/// Moves WAL checkpoints off the writer. SQLite's automatic checkpoint runs
/// inside the commit that crosses the threshold, so the writer (and every
/// answer waiting for its commit) stalls while pages are copied into the
/// database and it is synced; the bench measured it at ~8% of the writer's
/// time. Instead the writer's WAL hook wakes a thread of its own that runs a
/// PASSIVE checkpoint on its own connection while the writer goes on. A
/// passive checkpoint never blocks the writer but can be outrun by it (the
/// WAL restarts only once every frame was copied back), so past
/// `CHECKPOINT_IN_WRITER` times the threshold the writer checkpoints itself
/// as SQLite would have, which bounds the WAL.
pub(crate) fn start_checkpointer(
    conn: &mut Connection,
    path: &Path,
) -> Result<JoinHandle<()>, JournalError> {
    let err = |error| JournalError::Sqlite {
        path: path.display().to_string(),
        error,
    };
    let threshold = checkpoint_pages(conn).map_err(err)?;
    let checkpoints = connect(path)?;
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    // Replaces the automatic checkpoint (`wal_autocheckpoint` is a WAL
    // hook too).
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
        let pages = i64::from(pages);
        if pages >= threshold * CHECKPOINT_IN_WRITER {
            // An error here would fail a commit that has happened; a busy
            // checkpoint (the thread is mid-way through one) is tried again
            // at the next commit.
            if let Err(e) = wal.checkpoint() {
                tracing::debug!(error = %e, "journal checkpoint in the writer deferred");
            }
        } else if pages >= threshold {
            // Full: a wake-up is already pending.
            let _ = wake.try_send(());
        }
        Ok(())
    }))
    .map_err(err)?;
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("journal-checkpoint".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                let done = checkpoints.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    r.get::<_, i64>(0)
                });
                if let Err(e) = done {
                    tracing::warn!(path = %shown, error = %e, "journal checkpoint failed; the writer will checkpoint itself");
                }
            }
        })
        .map_err(|error| JournalError::Io {
            path: path.display().to_string(),
            error,
        })
}
