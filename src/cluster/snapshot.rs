//! Snapshots of a partition's journal in JetStream's object store, so that
//! taking a partition over reads the latest snapshot and the commits after
//! it, not the whole decision stream. A snapshot is a consistent copy of
//! the journal (`VACUUM INTO`, from a read transaction beside the writer);
//! the last commit it holds (`journal::fence::COMMIT_KEY`) gives its place
//! in the stream, kept as the object's description.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::object_store::ObjectMetadata;
use tokio::io::AsyncReadExt as _;

use super::bus::Bus;
use super::fence::StreamFence;

/// A snapshot is taken once this many commits were appended since the last.
pub const EVERY: u64 = 2000;

/// How often an owner looks whether a snapshot is due.
pub const LOOK_EVERY: Duration = Duration::from_secs(10);

/// How long a taking node waits for a snapshot before it reads the whole
/// stream instead.
const FETCH_FOR: Duration = Duration::from_secs(20);

fn name(partition: u32) -> String {
    format!("p{partition}")
}

/// Copies the partition's journal and stores it, named by the stream
/// sequence its last commit ends at. None: that commit is not one this
/// owner remembers (nothing stored).
pub async fn take(
    bus: &Bus,
    partition: u32,
    dir: &Path,
    fence: &StreamFence,
) -> Result<Option<u64>, String> {
    let journal = dir.join(crate::journal::FILE_NAME);
    let copy = dir.join("snapshot.db");
    let _ = std::fs::remove_file(&copy);
    let (from, to) = (journal.clone(), copy.clone());
    let commit = tokio::task::spawn_blocking(move || -> Result<Option<String>, String> {
        let conn = rusqlite::Connection::open_with_flags(
            &from,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .map_err(|e| e.to_string())?;
        conn.execute("VACUUM INTO ?1", [to.display().to_string()])
            .map_err(|e| format!("copying {}: {e}", from.display()))?;
        crate::journal::fence::last_commit(&to).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    let Some(sequence) = commit.as_deref().and_then(|c| fence.sequence_of(c)) else {
        let _ = std::fs::remove_file(&copy);
        return Ok(None);
    };
    let mut file = tokio::fs::File::open(&copy)
        .await
        .map_err(|e| format!("{}: {e}", copy.display()))?;
    let stored = bus
        .snapshots
        .put(
            ObjectMetadata {
                name: name(partition),
                description: Some(sequence.to_string()),
                ..Default::default()
            },
            &mut file,
        )
        .await
        .map_err(|e| format!("storing the snapshot of partition {partition}: {e}"));
    let _ = std::fs::remove_file(&copy);
    stored.map(|_| Some(sequence))
}

/// Writes the partition's latest snapshot as the journal in `dir`;
/// returns the stream sequence it holds commits up to (0: none, or none
/// could be read in time, and `dir` is left empty).
pub async fn fetch(bus: &Bus, partition: u32, dir: &Path) -> u64 {
    match tokio::time::timeout(FETCH_FOR, fetch_into(bus, partition, dir)).await {
        Ok(Ok(0)) => 0,
        Ok(Ok(sequence)) => {
            if agrees(bus, dir, sequence).await {
                return sequence;
            }
            // The stream lost what the snapshot holds (its servers lost
            // their unsynced tail, and its sequences are being given
            // again): the stream is the record, read whole.
            tracing::warn!(
                partition,
                sequence,
                "the snapshot's last commit is not in the decision stream at its place; reading the whole stream"
            );
            let _ = std::fs::remove_dir_all(dir);
            0
        }
        Ok(Err(why)) => {
            tracing::warn!(partition, reason = %why, "no snapshot; reading the whole decision stream");
            let _ = std::fs::remove_dir_all(dir);
            0
        }
        Err(_) => {
            tracing::warn!(
                partition,
                "the snapshot did not arrive in time; reading the whole decision stream"
            );
            let _ = std::fs::remove_dir_all(dir);
            0
        }
    }
}

/// Whether the decision stream holds, at `sequence`, the last part of the
/// commit the snapshot in `dir` ends with (a replica that is behind is
/// asked again for a second).
async fn agrees(bus: &Bus, dir: &Path, sequence: u64) -> bool {
    let path = dir.join(crate::journal::FILE_NAME);
    let Ok(Some(commit)) = crate::journal::fence::last_commit(&path) else {
        return false;
    };
    for _ in 0..20 {
        if let Ok(message) = bus.decisions.direct_get(sequence).await {
            let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_string());
            let last_part = header("Sb-Part")
                .and_then(|p| p.split_once('/').map(|(i, n)| i == n))
                .unwrap_or(false);
            return header("Sb-Commit").as_deref() == Some(commit.as_str()) && last_part;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn fetch_into(bus: &Bus, partition: u32, dir: &Path) -> Result<u64, String> {
    use async_nats::jetstream::object_store::GetErrorKind;
    let mut object = match bus.snapshots.get(name(partition)).await {
        Ok(object) => object,
        Err(e) if e.kind() == GetErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.to_string()),
    };
    let sequence: u64 = object
        .info()
        .description
        .as_deref()
        .and_then(|d| d.parse().ok())
        .ok_or("a snapshot without its sequence")?;
    let bytes = read_all(&mut object)
        .await
        .map_err(|e| format!("reading the snapshot: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(crate::journal::FILE_NAME);
    std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(sequence)
}

/// Everything `reader` gives, read by chunks rather than with
/// `read_to_end`: async-nats (0.52) hands over an object's last chunk and
/// reports a wrong digest in the same read (a snapshot replaced while it
/// was read), which tokio's `read_to_end` asserts never happens; in a debug
/// build that assertion panicked the takeover, and the partition never ran
/// again. The error itself is expected, and the caller reads the stream
/// whole instead.
async fn read_all(reader: &mut (impl tokio::io::AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut chunk).await? {
            0 => return Ok(bytes),
            n => bytes.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

/// Beside a running partition: a snapshot every `every` commits.
pub async fn keep(
    bus: Bus,
    partition: u32,
    dir: std::path::PathBuf,
    fence: Arc<StreamFence>,
    every: u64,
) {
    let mut taken_at = 0;
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let appended = fence.appended.load(Ordering::SeqCst);
        if appended < taken_at + every.max(1) || fence.lost() {
            continue;
        }
        match take(&bus, partition, &dir, &fence).await {
            Ok(Some(sequence)) => {
                taken_at = appended;
                tracing::info!(partition, sequence, "snapshot stored");
            }
            Ok(None) => {}
            Err(why) => tracing::warn!(partition, reason = %why, "taking a snapshot"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Reads as async-nats's object does when a snapshot was replaced
    /// while it was read: the last chunk, and an error in the same read.
    struct ChunkThenWrongDigest(usize);

    impl tokio::io::AsyncRead for ChunkThenWrongDigest {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.0 += 1;
            buf.put_slice(b"chunk");
            if self.0 < 3 {
                return Poll::Ready(Ok(()));
            }
            let wrong = std::io::Error::new(std::io::ErrorKind::InvalidData, "wrong digest");
            Poll::Ready(Err(wrong))
        }
    }

    #[tokio::test]
    async fn a_read_that_gives_bytes_and_an_error_at_once_is_an_error_not_a_panic() {
        let read = read_all(&mut ChunkThenWrongDigest(0)).await;
        let error = read.expect_err("the digest was wrong");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    }
}
