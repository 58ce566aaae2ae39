//! The shared views decisions name, read back: a decision's policy input
//! names the services' view and the changes' view by version (the journal
//! keeps each once, in `views`), and every reader that gives out a whole
//! decision resolves them here, or says which view is missing or altered.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::{has_table, sql};
use crate::context::SharedView;
use crate::decide::Decision;
use crate::journal::JournalError;

/// The views read so far from one journal, by version.
pub(in crate::journal) struct Views<'c> {
    conn: &'c Connection,
    path: &'c Path,
    /// The journal has a `views` table (one older than it has none, and
    /// its decisions name no view).
    table: bool,
    known: HashMap<String, Arc<SharedView>>,
}

/// Why a view a decision names cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewFault {
    /// The journal does not hold it.
    Missing,
    /// Its text does not hash to its version, or is not JSON.
    Altered,
}

impl<'c> Views<'c> {
    pub(in crate::journal) fn new(
        conn: &'c Connection,
        path: &'c Path,
    ) -> Result<Views<'c>, JournalError> {
        Ok(Views {
            conn,
            path,
            table: has_table(conn, path, "views")?,
            known: HashMap::new(),
        })
    }

    /// `decision` with each shared view it names held, or the error that
    /// names the decision and the view it cannot have.
    pub(in crate::journal) fn resolve(
        &mut self,
        decision: &mut Decision,
    ) -> Result<(), JournalError> {
        let Some(input) = decision.policy_input.as_mut() else {
            return Ok(());
        };
        let id = &decision.id;
        input.resolve(|kind, version| match self.get(version)? {
            Lookup::Found(view) => Ok(view),
            Lookup::Fault(fault, why) => Err(JournalError::View {
                path: self.path.display().to_string(),
                decision: id.clone(),
                kind,
                version: version.to_string(),
                fault: match fault {
                    ViewFault::Missing => "the journal does not hold".into(),
                    ViewFault::Altered => format!("the journal holds altered ({why})"),
                },
            }),
        })
    }

    /// The view `version`, or why it cannot be had.
    fn get(&mut self, version: &str) -> Result<Lookup, JournalError> {
        if let Some(view) = self.known.get(version) {
            return Ok(Lookup::Found(Arc::clone(view)));
        }
        let text: Option<String> = match self.table {
            false => None,
            true => self
                .conn
                .query_row(
                    "SELECT body FROM views WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql(self.path))?,
        };
        let Some(text) = text else {
            return Ok(Lookup::Fault(ViewFault::Missing, String::new()));
        };
        match SharedView::read(version, text) {
            Ok(view) => {
                let view = Arc::new(view);
                self.known.insert(version.to_string(), Arc::clone(&view));
                Ok(Lookup::Found(view))
            }
            Err(e) => Ok(Lookup::Fault(ViewFault::Altered, e.to_string())),
        }
    }
}

/// A view looked up: found, or why not (with the reason an altered one is
/// refused).
enum Lookup {
    Found(Arc<SharedView>),
    Fault(ViewFault, String),
}

/// A view that decisions name and the journal cannot give: which, why, and
/// the decisions that name it (how many, and the first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewProblem {
    /// `services` or `changes`.
    pub kind: String,
    pub version: String,
    pub fault: ViewFault,
    pub decisions: u64,
    pub first_decision: String,
}

/// How many views the journal holds, and every view its decisions name
/// that it cannot give back, in the order first named.
pub(super) fn problems(
    conn: &Connection,
    path: &Path,
) -> Result<(i64, Vec<ViewProblem>), JournalError> {
    let mut views = Views::new(conn, path)?;
    if !views.table {
        return Ok((0, Vec::new()));
    }
    let held = conn
        .query_row("SELECT COUNT(*) FROM views", [], |r| r.get(0))
        .map_err(sql(path))?;
    let mut stmt = conn
        .prepare(
            "SELECT ref_id, json_extract(body, '$.policy_input.services_view'),
                    json_extract(body, '$.policy_input.changes_view')
             FROM audit WHERE kind = 'decision' AND json_valid(body)
               AND json_type(body, '$.policy_input') = 'object' ORDER BY seq",
        )
        .map_err(sql(path))?;
    let mut rows = stmt.query([]).map_err(sql(path))?;
    let mut found: Vec<ViewProblem> = Vec::new();
    while let Some(row) = rows.next().map_err(sql(path))? {
        let id: String = row.get(0).map_err(sql(path))?;
        for (column, kind) in [(1, "services"), (2, "changes")] {
            let version = row.get::<_, Option<String>>(column).map_err(sql(path))?;
            let Some(version) = version.filter(|v| SharedView::empty(v).is_none()) else {
                continue;
            };
            if let Some(p) = found.iter_mut().find(|p| p.version == version) {
                p.decisions += 1;
                continue;
            }
            if let Lookup::Fault(fault, _) = views.get(&version)? {
                found.push(ViewProblem {
                    kind: kind.to_string(),
                    version,
                    fault,
                    decisions: 1,
                    first_decision: id.clone(),
                });
            }
        }
    }
    Ok((held, found))
}
