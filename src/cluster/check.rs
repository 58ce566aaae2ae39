//! What the decision stream holds, read as any node would rebuild it:
//! each partition's journal rebuilt into a scratch directory, and every
//! signal's decisions counted. "Acknowledged ⇒ decided exactly once" is
//! checked against this, not against any node's files.

use std::collections::BTreeMap;
use std::path::Path;

use super::bus::Bus;
use super::fence::rebuild;

/// The record, partition by partition.
#[derive(Debug, Default, serde::Serialize)]
pub struct Record {
    pub partitions: u32,
    /// Signals journaled, and the decisions taken on them (a fan-out's
    /// branches not counted: one per signal).
    pub signals: u64,
    pub decisions: u64,
    /// Signals held in quarantine (journaled, not decided).
    pub held: u64,
    /// Each signal decided more than once, with how many times
    /// ((source, id) → decisions): empty when the guarantee holds.
    pub repeated: BTreeMap<String, u64>,
    /// Every signal decided, (source, id) → when (the decision's time),
    /// for a caller comparing with what it was acknowledged.
    #[serde(skip)]
    pub decided: BTreeMap<(String, String), String>,
}

/// Rebuilds every partition into `scratch` and reads what was decided.
pub async fn read(bus: &Bus, partitions: u32, scratch: &Path) -> Result<Record, String> {
    let mut record = Record {
        partitions,
        ..Default::default()
    };
    for partition in 0..partitions {
        let dir = scratch.join(format!("p{partition:03}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        rebuild(bus, partition, &dir).await?;
        count(&dir, &mut record).map_err(|e| format!("partition {partition}: {e}"))?;
    }
    Ok(record)
}

fn count(dir: &Path, record: &mut Record) -> rusqlite::Result<()> {
    let path = dir.join(crate::journal::FILE_NAME);
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    record.signals +=
        conn.query_row("SELECT COUNT(*) FROM signals", [], |r| r.get::<_, i64>(0))? as u64;
    record.held += conn.query_row(
        "SELECT COUNT(*) FROM quarantine WHERE state = 'held'",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let mut stmt = conn.prepare(
        "SELECT COALESCE(signal_source, ''), COALESCE(signal_id, ''), COUNT(*), MIN(time) FROM audit
         WHERE kind = 'decision' AND parent IS NULL GROUP BY 1, 2",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (source, id, n, time) = row?;
        record.decisions += n as u64;
        if n > 1 {
            record.repeated.insert(format!("{source} {id}"), n as u64);
        }
        record.decided.insert((source, id), time);
    }
    Ok(())
}
