//! A journal whose commits are replicated before they happen: on a cluster
//! node (`cluster`), each commit's changes, as a SQLite changeset, are
//! appended to the partition's decision stream first, and the commit goes
//! ahead only if that append was accepted. A node that lost its partition
//! has its append refused and its transaction rolled back, so the stream,
//! not any node's file, is the record; a node's journal is a view of it,
//! rebuilt by `apply`.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::session::{ConflictAction, ConflictType, Session};

use super::JournalError;

/// Where a fenced journal's commits go before they are committed.
pub trait Fence: Send + Sync + std::fmt::Debug {
    /// Appends one commit's changeset; an error (refused, or no answer)
    /// rolls the commit back. `commit` names it: the same commit writes
    /// it to the journal's meta (`COMMIT_KEY`), so a copy of the file says
    /// which commit it ends with.
    fn append(&self, commit: &str, changeset: &[u8]) -> Result<(), String>;
}

/// The meta key of the last commit a fenced journal made.
pub const COMMIT_KEY: &str = "fence_commit";

/// The last commit a fenced journal's file holds (see `Fence::append`).
pub fn last_commit(path: &Path) -> Result<Option<String>, JournalError> {
    use rusqlite::OptionalExtension as _;
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|error| JournalError::Sqlite {
                path: path.display().to_string(),
                error,
            })?;
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [COMMIT_KEY], |r| {
        r.get(0)
    })
    .optional()
    .map_err(|error| JournalError::Sqlite {
        path: path.display().to_string(),
        error,
    })
}

/// Records every change of a transaction on `conn` from now on.
pub(super) fn record(conn: &Connection) -> rusqlite::Result<Session<'_>> {
    let mut session = Session::new(conn)?;
    session.attach::<&str>(None)?;
    Ok(session)
}

/// The changeset of what `session` recorded (empty when nothing changed).
pub(super) fn changeset(session: &mut Session<'_>) -> rusqlite::Result<Vec<u8>> {
    if session.is_empty() {
        return Ok(Vec::new());
    }
    let mut bytes = Vec::new();
    session.changeset_strm(&mut bytes)?;
    Ok(bytes)
}

/// Makes a journal's schema in `dir` (the tables a changeset is applied
/// to), without opening it for writing.
pub fn prepare(dir: &Path) -> Result<(), JournalError> {
    std::fs::create_dir_all(dir).map_err(|error| JournalError::Io {
        path: dir.display().to_string(),
        error,
    })?;
    let path = dir.join(super::FILE_NAME);
    let mut conn = super::connect(&path)?;
    conn.execute_batch(super::schema::SCHEMA)
        .and_then(|()| super::schema::migrate(&mut conn))
        .map_err(|error| JournalError::Sqlite {
            path: path.display().to_string(),
            error,
        })
}

/// Applies changesets, in order, to the journal in `dir` (made by
/// `prepare`), all in one transaction that `finish` commits (a rebuild is
/// whole or not at all, and syncs once). A row already there is
/// replaced by the changeset's (what the stream says is what was
/// committed); a change to a row that is not there is left out.
pub struct Applier {
    conn: Connection,
    path: String,
}

impl Applier {
    pub fn open(dir: &Path) -> Result<Applier, JournalError> {
        let path = dir.join(super::FILE_NAME);
        let conn = super::connect(&path)?;
        let path = path.display().to_string();
        conn.execute_batch("BEGIN")
            .map_err(|error| JournalError::Sqlite {
                path: path.clone(),
                error,
            })?;
        Ok(Applier { conn, path })
    }

    pub fn apply(&mut self, changeset: &[u8]) -> Result<(), JournalError> {
        let mut input: &[u8] = changeset;
        let sql = |error| JournalError::Sqlite {
            path: self.path.clone(),
            error,
        };
        self.conn
            .apply_strm(
                &mut input,
                None::<fn(&str) -> bool>,
                |conflict, _item| match conflict {
                    ConflictType::SQLITE_CHANGESET_DATA
                    | ConflictType::SQLITE_CHANGESET_CONFLICT => {
                        ConflictAction::SQLITE_CHANGESET_REPLACE
                    }
                    _ => ConflictAction::SQLITE_CHANGESET_OMIT,
                },
            )
            .map_err(sql)
    }

    /// Commits what was applied.
    pub fn finish(self) -> Result<(), JournalError> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(|error| JournalError::Sqlite {
                path: self.path,
                error,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, Record};
    use std::sync::{Arc, Mutex};

    /// Keeps what it is given; refuses once `refuse` is set.
    #[derive(Debug, Default)]
    struct Kept {
        changesets: Mutex<Vec<Vec<u8>>>,
        refuse: std::sync::atomic::AtomicBool,
    }

    impl Fence for Kept {
        fn append(&self, _commit: &str, changeset: &[u8]) -> Result<(), String> {
            if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("another node holds the partition".into());
            }
            self.changesets
                .lock()
                .map_err(|e| e.to_string())?
                .push(changeset.to_vec());
            Ok(())
        }
    }

    fn meta(key: &str, value: &str) -> Record {
        Record::Meta {
            key: key.into(),
            value: value.into(),
        }
    }

    fn dump(dir: &Path) -> Vec<(String, String)> {
        let conn = crate::journal::connect(&dir.join(crate::journal::FILE_NAME)).unwrap();
        let mut stmt = conn
            .prepare("SELECT key, value FROM meta WHERE key LIKE 't%' ORDER BY key")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_fenced_journal_is_rebuilt_from_its_changesets_and_a_refused_commit_is_rolled_back() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let kept = Arc::new(Kept::default());
        let journal = Journal::open_fenced(a.path(), Some(kept.clone())).unwrap();
        journal
            .submit(vec![meta("t1", "one"), meta("t2", "two")])
            .unwrap()
            .wait()
            .unwrap();
        journal
            .submit(vec![meta("t1", "uno")])
            .unwrap()
            .wait()
            .unwrap();
        kept.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
        let refused = journal.submit(vec![meta("t3", "three")]).unwrap().wait();
        assert!(refused.is_err(), "a refused append fails the commit");
        drop(journal);
        let written = dump(a.path());
        assert_eq!(
            written,
            vec![("t1".into(), "uno".into()), ("t2".into(), "two".into())],
            "the refused commit is not in the file"
        );
        prepare(b.path()).unwrap();
        let mut applier = Applier::open(b.path()).unwrap();
        for changeset in kept.changesets.lock().unwrap().iter() {
            applier.apply(changeset).unwrap();
        }
        applier.finish().unwrap();
        assert_eq!(dump(b.path()), written);
    }
}
