//! Who writes a journal: a deployment directory, or the Northwind demo.
//!
//! A deployment's journal holds decisions made under its own organization
//! and policies; deciding its backlog with the demo's (as `check` once did,
//! on a journal holding 12,868 acknowledged tickets) puts wrong decisions
//! into the hash chain for good. So the first writer is recorded in the
//! journal's meta, and an engine opened with another is refused before it
//! decides anything.

use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use super::JournalError;

/// The journal meta key that names the writer.
pub const AUTHOR_KEY: &str = "author";

/// What decides into a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Author {
    /// The built-in Northwind playbook and policies (the console's demo,
    /// `serve --demo`, `run --headless`, `bench`).
    #[default]
    Demo,
    /// A deployment directory, by its absolute path.
    Deployment { dir: PathBuf },
}

impl Author {
    /// A deployment directory, made absolute (so `./ops` and `/srv/ops`
    /// name one writer).
    pub fn deployment(dir: &Path) -> Author {
        let dir = std::fs::canonicalize(dir)
            .or_else(|_| std::path::absolute(dir))
            .unwrap_or_else(|_| dir.to_path_buf());
        Author::Deployment { dir }
    }

    /// The flag a command opens a journal of this writer with.
    fn flag(&self) -> String {
        match self {
            Author::Demo => "no --config".into(),
            Author::Deployment { dir } => format!("--config {}", dir.display()),
        }
    }

    /// How a person names it, with that flag.
    pub fn describe(&self) -> String {
        match self {
            Author::Demo => format!("the Northwind demo ({})", self.flag()),
            Author::Deployment { dir } => {
                format!("the deployment {} ({})", dir.display(), self.flag())
            }
        }
    }
}

/// Why a journal may not be opened as `author`.
#[derive(Debug, thiserror::Error)]
#[error(
    "the journal in {dir} was written by {journal}; it is being opened with {opened}: \
     its signals would be decided under other policies. Open it with {journal_hint}"
)]
pub struct WrongAuthor {
    pub dir: String,
    pub journal: String,
    pub opened: String,
    pub journal_hint: String,
}

/// The writer recorded in the journal in `dir`, if any.
pub fn recorded(dir: &Path) -> Result<Option<Author>, JournalError> {
    let (conn, path) = super::read::open_existing(dir)?;
    if !super::read::has_table(&conn, &path, "meta")? {
        return Ok(None);
    }
    let text: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [AUTHOR_KEY], |r| {
            r.get(0)
        })
        .optional()
        .map_err(super::read::sql(&path))?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| JournalError::Corrupt {
            path: path.display().to_string(),
            what: format!("meta {AUTHOR_KEY}"),
            error: e.to_string(),
        })
    })
    .transpose()
}

/// Why a journal cannot be opened as a writer.
#[derive(Debug, thiserror::Error)]
pub enum AuthorError {
    #[error(transparent)]
    Wrong(Box<WrongAuthor>),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Refuses `opened` on a journal that another wrote. A journal without a
/// record (new, or from before writers were recorded) takes `opened`:
/// the answer is whether it must be recorded.
pub fn check(dir: &Path, opened: &Author) -> Result<bool, AuthorError> {
    if !dir.join(super::FILE_NAME).exists() {
        return Ok(true);
    }
    match recorded(dir)? {
        None => Ok(true),
        Some(journal) if journal == *opened => Ok(false),
        Some(journal) => Err(AuthorError::Wrong(Box::new(WrongAuthor {
            dir: dir.display().to_string(),
            journal_hint: journal.flag(),
            journal: journal.describe(),
            opened: opened.describe(),
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_as_written() {
        let d = Author::Deployment {
            dir: PathBuf::from("/srv/ops"),
        };
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(text, r#"{"kind":"deployment","dir":"/srv/ops"}"#);
        assert_eq!(serde_json::from_str::<Author>(&text).unwrap(), d);
        assert_eq!(
            serde_json::from_str::<Author>(r#"{"kind":"demo"}"#).unwrap(),
            Author::Demo
        );
    }
}
