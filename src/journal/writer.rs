//! The writer thread: it owns the write connection, takes the batches in
//! the order they were submitted, applies many in one transaction (group
//! commit), extends the audit chain, and tells each batch's submitter when
//! it is durable.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;
use rusqlite::{CachedStatement, Connection, Transaction, params};

use super::{Record, WriterStats, chain};
use crate::flow::FlowEvent;

/// What a batch's submitter is told: durable, or the commit's error.
pub(super) type Done = Result<(), Arc<rusqlite::Error>>;

pub(super) struct Batch {
    pub(super) records: Vec<Record>,
    pub(super) done: Option<mpsc::Sender<Done>>,
}

/// The writer's reusable buffers for JSON text (see `json`): a row's body
/// and a flow's event lines, which one statement can bind together.
#[derive(Default)]
struct Buffers {
    body: Vec<u8>,
    events: Vec<u8>,
}

const MAX_BATCHES_PER_COMMIT: usize = 256;
pub(super) const QUEUE_DEPTH: usize = 1024;

/// Buckets for commit durations, in seconds: 50 µs up to about 3 s, each
/// half again as wide as the one before.
pub fn commit_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00005, 1.5, 28,
    ))
}

/// Flow events as JSON lines, the form `flows.events` appends, in `buf`.
fn event_lines<'a>(buf: &'a mut Vec<u8>, events: &[FlowEvent]) -> rusqlite::Result<&'a str> {
    buf.clear();
    for e in events {
        append_json(buf, e);
        buf.push(b'\n');
    }
    text(buf)
}

/// `value`'s JSON text in `buf`, which is reused from row to row: a body
/// serialised into a fresh `String` grew it by doubling and was freed at
/// once, for each of the three or four rows a signal writes.
/// A finished flow's outcome turned bad after it left memory: changed in
/// its row only if that still says it was within SLA.
const FLOW_OUTCOME: &str = "UPDATE flows SET body = json_set(body, '$.outcome', json(?2))
     WHERE id = ?1 AND json_valid(body) AND json_extract(body, '$.outcome') = 'within_sla'";

fn json<'a, T: serde::Serialize + ?Sized>(
    buf: &'a mut Vec<u8>,
    value: &T,
) -> rusqlite::Result<&'a str> {
    buf.clear();
    append_json(buf, value);
    text(buf)
}

/// Our types serialise without error (plain structs, string keys); were
/// one not to, its row says so rather than going missing.
fn append_json<T: serde::Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    let start = buf.len();
    if let Err(e) = serde_json::to_writer(&mut *buf, value) {
        buf.truncate(start);
        let note = serde_json::json!({ "unserialisable": e.to_string() });
        buf.extend_from_slice(note.to_string().as_bytes());
    }
}

/// serde_json writes UTF-8; checked all the same, and a failure fails the
/// commit instead of writing something else.
fn text(buf: &[u8]) -> rusqlite::Result<&str> {
    Ok(std::str::from_utf8(buf)?)
}

/// What the writer thread holds besides its connection.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) batches: Receiver<Batch>,
    /// Where committed records go back to be freed (see `Journal::spent`).
    pub(super) spent: SyncSender<Vec<Record>>,
    /// The audit chain's last hash.
    pub(super) last_hash: String,
    pub(super) stats: Arc<Mutex<WriterStats>>,
    pub(super) commits: Histogram,
    pub(super) path: PathBuf,
    /// The versions of the shared views this writer has committed (see
    /// `Rows::decision`); others may be in the journal from earlier runs.
    pub(super) views: HashSet<String>,
    /// Where each commit goes before it is made (a cluster node's).
    pub(super) fence: Option<Arc<dyn super::Fence>>,
}

impl Writer {
    /// Commits batches until every sender is gone.
    pub(super) fn run(mut self) {
        let mut buffers = Buffers::default();
        while let Ok(first) = self.batches.recv() {
            let mut batches = vec![first];
            while batches.len() < MAX_BATCHES_PER_COMMIT {
                match self.batches.try_recv() {
                    Ok(b) => batches.push(b),
                    Err(_) => break,
                }
            }
            let started = Instant::now();
            let result = self.commit(&batches, &mut buffers);
            self.commits.observe(started.elapsed().as_secs_f64());
            if let Ok(mut s) = self.stats.lock() {
                s.commits += 1;
                s.records += batches.iter().map(|b| b.records.len() as u64).sum::<u64>();
                s.last_commit_micros = started.elapsed().as_micros() as u64;
                s.busy_micros += s.last_commit_micros;
            }
            let mut records = Vec::with_capacity(batches.len());
            for batch in batches {
                if let Some(done) = batch.done {
                    let _ = done.send(result.clone());
                }
                records.push(batch.records);
            }
            // After the answers, which the submitting side may be waiting
            // for. (A full queue or a closed journal: freed here.)
            for batch in records {
                let _ = self.spent.try_send(batch);
            }
        }
    }

    /// One transaction for `batches`; on failure the chain's last hash is
    /// what it was before, and no view counts as written (those of the
    /// failed transaction are not).
    fn commit(&mut self, batches: &[Batch], buffers: &mut Buffers) -> Done {
        let hash_before = self.last_hash.clone();
        let result = write_batches(
            &mut self.conn,
            batches,
            &mut self.last_hash,
            &mut self.views,
            buffers,
            self.fence.as_deref(),
        );
        result.map_err(|e| {
            tracing::error!(path = %self.path.display(), error = %e, "journal commit failed");
            self.last_hash = hash_before;
            self.views.clear();
            Arc::new(e)
        })
    }
}

/// One record of the audit chain, beside its body.
struct AuditRow<'a> {
    kind: &'a str,
    ref_id: &'a str,
    decision_id: &'a str,
    signal_id: Option<&'a str>,
    signal_source: Option<&'a str>,
    time: chrono::DateTime<chrono::Utc>,
    parent: Option<&'a str>,
}

/// Appends to the audit chain within one transaction: each record's hash
/// covers the one before, and every `chain::MARK_EVERY`th is kept as a
/// checkpoint.
struct Audit<'t> {
    insert: CachedStatement<'t>,
    mark: CachedStatement<'t>,
    tx: &'t Transaction<'t>,
    last_hash: &'t mut String,
}

impl Audit<'_> {
    fn append(&mut self, row: AuditRow<'_>, body: &str) -> rusqlite::Result<()> {
        let hash = chain::link(self.last_hash, row.kind, body);
        self.insert.execute(params![
            row.kind,
            row.ref_id,
            row.decision_id,
            row.signal_id,
            row.signal_source,
            row.time.to_rfc3339(),
            body,
            &*self.last_hash,
            hash,
            row.parent
        ])?;
        let seq = self.tx.last_insert_rowid();
        if seq % chain::MARK_EVERY == 0 {
            self.mark.execute(params![seq, hash])?;
        }
        *self.last_hash = hash;
        Ok(())
    }
}

/// The statements of one transaction, prepared once (SQLite's statement
/// cache keeps them across transactions), and the buffers rows are
/// serialised into.
struct Rows<'t> {
    tx: &'t Transaction<'t>,
    audit: Audit<'t>,
    signal: CachedStatement<'t>,
    quarantine: CachedStatement<'t>,
    review: CachedStatement<'t>,
    page: CachedStatement<'t>,
    incident: CachedStatement<'t>,
    silence: CachedStatement<'t>,
    /// A small flow's row, its events appended.
    flow: CachedStatement<'t>,
    /// A big flow's row, without steps or events.
    header: CachedStatement<'t>,
    step: CachedStatement<'t>,
    log: CachedStatement<'t>,
    append_events: CachedStatement<'t>,
    event: CachedStatement<'t>,
    feedback: CachedStatement<'t>,
    entity: CachedStatement<'t>,
    meta: CachedStatement<'t>,
    view: CachedStatement<'t>,
    /// See `Writer::views`.
    views: &'t mut HashSet<String>,
    buffers: &'t mut Buffers,
}

impl<'t> Rows<'t> {
    fn prepare(
        tx: &'t Transaction<'t>,
        last_hash: &'t mut String,
        views: &'t mut HashSet<String>,
        buffers: &'t mut Buffers,
    ) -> rusqlite::Result<Rows<'t>> {
        Ok(Rows {
            tx,
            audit: Audit {
                insert: tx.prepare_cached(
                    "INSERT INTO audit (kind, ref_id, decision_id, signal_id, signal_source, time,
                                        body, prev_hash, hash, parent)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?,
                mark: tx.prepare_cached(
                    "INSERT OR REPLACE INTO chain_marks (seq, hash) VALUES (?1, ?2)",
                )?,
                tx,
                last_hash,
            },
            signal: tx.prepare_cached(
                "INSERT OR IGNORE INTO signals (id, source, type, subject, time, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            quarantine: tx.prepare_cached(
                "INSERT OR REPLACE INTO quarantine (signal_id, source, state, time, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            review: tx.prepare_cached(
                "INSERT OR REPLACE INTO reviews (id, state, body) VALUES (?1, ?2, ?3)",
            )?,
            page: tx.prepare_cached(
                "INSERT OR REPLACE INTO pages (id, state, body) VALUES (?1, ?2, ?3)",
            )?,
            incident: tx.prepare_cached(
                "INSERT OR REPLACE INTO incidents (id, state, decision_id, body)
                 VALUES (?1, ?2, ?3, ?4)",
            )?,
            silence: tx.prepare_cached(
                "INSERT OR REPLACE INTO silences (id, ends_at, body) VALUES (?1, ?2, ?3)",
            )?,
            flow: tx.prepare_cached(
                "INSERT INTO flows (id, state, decision_id, body, events) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET state = excluded.state,
                     decision_id = excluded.decision_id, body = excluded.body,
                     events = flows.events || excluded.events",
            )?,
            header: tx.prepare_cached(
                "INSERT INTO flows (id, state, decision_id, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET state = excluded.state,
                     decision_id = excluded.decision_id, body = excluded.body",
            )?,
            step: tx.prepare_cached(
                "INSERT OR REPLACE INTO flow_steps (flow_id, idx, body) VALUES (?1, ?2, ?3)",
            )?,
            log: tx.prepare_cached("INSERT INTO flow_log (flow_id, events) VALUES (?1, ?2)")?,
            append_events: tx
                .prepare_cached("UPDATE flows SET events = events || ?2 WHERE id = ?1")?,
            event: tx.prepare_cached(
                "INSERT INTO flow_events (flow_id, time, body) VALUES (?1, ?2, ?3)",
            )?,
            feedback: tx
                .prepare_cached("INSERT INTO feedback (decision_id, body) VALUES (?1, ?2)")?,
            entity: tx
                .prepare_cached("INSERT OR REPLACE INTO entities (key, body) VALUES (?1, ?2)")?,
            meta: tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?,
            view: tx.prepare_cached(
                "INSERT OR IGNORE INTO views (version, kind, time, body) VALUES (?1, ?2, ?3, ?4)",
            )?,
            views,
            buffers,
        })
    }

    /// Keeps an unreadable record's text in `set_aside`; a row of a state
    /// table leaves it, so the next start does not meet it again.
    fn set_aside(&self, aside: &super::SetAside) -> rusqlite::Result<()> {
        self.tx.execute(
            "INSERT OR IGNORE INTO set_aside (tbl, key, time, error, raw) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![aside.table, aside.key, aside.time.to_rfc3339(), aside.error, aside.raw],
        )?;
        let delete = match aside.table.as_str() {
            "reviews" => "DELETE FROM reviews WHERE id = ?1",
            "flows" => "DELETE FROM flows WHERE id = ?1",
            "entities" => "DELETE FROM entities WHERE key = ?1",
            "pages" => "DELETE FROM pages WHERE id = ?1",
            "incidents" => "DELETE FROM incidents WHERE id = ?1",
            "silences" => "DELETE FROM silences WHERE id = ?1",
            "verdicts" => "DELETE FROM verdicts WHERE key = ?1",
            "labels_due" => "DELETE FROM labels_due WHERE decision_id = ?1",
            _ => return Ok(()),
        };
        self.tx.execute(delete, [&aside.key])?;
        if aside.table == "flows" {
            self.tx
                .execute("DELETE FROM flow_steps WHERE flow_id = ?1", [&aside.key])?;
        }
        Ok(())
    }

    /// A decision's label waiting out the horizon, kept or (`None`) gone.
    fn label_due(&self, decision_id: &str, body: Option<&str>) -> rusqlite::Result<()> {
        match body {
            Some(body) => self
                .tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO labels_due (decision_id, body) VALUES (?1, ?2)",
                )?
                .execute(params![decision_id, body])?,
            None => self
                .tx
                .prepare_cached("DELETE FROM labels_due WHERE decision_id = ?1")?
                .execute([decision_id])?,
        };
        Ok(())
    }

    /// A finished flow's watch, kept or (`None`) settled.
    fn verdict(&self, key: &str, body: Option<&str>) -> rusqlite::Result<()> {
        match body {
            Some(body) => self.tx.execute(
                "INSERT OR REPLACE INTO verdicts (key, body) VALUES (?1, ?2)",
                params![key, body],
            )?,
            None => self
                .tx
                .execute("DELETE FROM verdicts WHERE key = ?1", [key])?,
        };
        Ok(())
    }

    // Over 80 lines: one arm per kind of record.

    fn write(&mut self, record: &Record) -> rusqlite::Result<()> {
        let buf = &mut self.buffers.body;
        match record {
            Record::Signal(s) => {
                self.signal.execute(params![
                    s.id,
                    s.source,
                    s.kind,
                    s.subject,
                    s.time.to_rfc3339(),
                    json(buf, &s.as_cloudevent())?
                ])?;
            }
            Record::Decision(d) => self.decision(d)?,
            Record::ReviewAction(a) => {
                let row = AuditRow {
                    kind: "review",
                    ref_id: &a.review_id,
                    decision_id: &a.decision_id,
                    signal_id: None,
                    signal_source: None,
                    time: a.time,
                    parent: None,
                };
                self.audit.append(row, json(buf, a)?)?;
            }
            Record::Review(item) => {
                let body = json(buf, &item.stored())?;
                self.review
                    .execute(params![item.id, item.state.as_str(), body])?;
            }
            Record::Page(page) => {
                let body = json(buf, page.as_ref())?;
                self.page
                    .execute(params![page.id, page.state.as_str(), body])?;
            }
            Record::Silence(s) => {
                let body = json(buf, s.as_ref())?;
                self.silence
                    .execute(params![s.id, s.ends_at.to_rfc3339(), body])?;
            }
            Record::Incident(i) => {
                let body = json(buf, i.as_ref())?;
                self.incident
                    .execute(params![i.id, i.state.as_str(), i.decision_id, body])?;
            }
            Record::Flow {
                flow,
                events,
                steps,
            } => self.flow(flow, events, steps.as_deref())?,
            Record::FlowEvents(events) => self.flow_events(events)?,
            Record::FlowOutcome { id, outcome } => {
                let outcome = json(buf, outcome)?;
                self.tx.execute(FLOW_OUTCOME, params![id, outcome])?;
            }
            Record::Verdict { key, body } => self.verdict(key, body.as_deref())?,
            Record::LabelDue { decision_id, body } => {
                self.label_due(decision_id, body.as_deref())?
            }
            Record::Quarantine(q) => {
                let body = json(buf, q)?;
                let row = AuditRow {
                    kind: "quarantine",
                    ref_id: &q.signal_id,
                    decision_id: "",
                    signal_id: Some(&q.signal_id),
                    signal_source: Some(&q.source),
                    time: q.time,
                    parent: None,
                };
                self.audit.append(row, body)?;
                let (state, time) = (q.state.as_str(), q.time.to_rfc3339());
                self.quarantine
                    .execute(params![q.signal_id, q.source, state, time, body])?;
            }
            Record::Feedback(f) => {
                self.feedback
                    .execute(params![f.decision_id, json(buf, f)?])?;
            }
            Record::Entity { key, body } => {
                self.entity.execute(params![key, body.as_str()])?;
            }
            Record::Checkpoint {
                feedback_count,
                body,
            } => {
                self.tx.execute(
                    "INSERT INTO checkpoints (feedback_count, body) VALUES (?1, ?2)",
                    params![feedback_count, body],
                )?;
                self.tx.execute(
                    "DELETE FROM checkpoints WHERE seq < (SELECT MAX(seq) FROM checkpoints)",
                    [],
                )?;
            }
            Record::Audit(entry) => {
                let row = AuditRow {
                    kind: &entry.kind,
                    ref_id: &entry.ref_id,
                    decision_id: &entry.decision_id,
                    signal_id: None,
                    signal_source: None,
                    time: entry.time,
                    parent: None,
                };
                self.audit.append(row, json(buf, entry)?)?;
            }
            Record::Meta { key, value } => {
                self.meta.execute(params![key, value])?;
            }
            Record::SetAside(aside) => self.set_aside(aside)?,
        }
        Ok(())
    }

    /// A decision in the audit chain, after the shared views it names that
    /// this writer has not written yet: each is journaled once (a view a
    /// journal already holds, from an earlier run, is left as it is), and
    /// the decision names it by version.
    fn decision(&mut self, d: &crate::decide::Decision) -> rusqlite::Result<()> {
        let shared = d.policy_input.iter().flat_map(|input| input.shared());
        for (kind, view) in shared.filter_map(|(kind, part)| Some((kind, part.held()?))) {
            if !self.views.contains(view.version()) {
                let time = d.time.to_rfc3339();
                self.view
                    .execute(params![view.version(), kind, time, view.text()])?;
                self.views.insert(view.version().to_string());
            }
        }
        let row = AuditRow {
            kind: "decision",
            ref_id: &d.id,
            decision_id: &d.id,
            signal_id: Some(&d.signal_id),
            signal_source: Some(&d.signal_source),
            time: d.time,
            parent: d.parent.as_deref(),
        };
        self.audit.append(row, json(&mut self.buffers.body, d)?)
    }

    /// A small flow: its row, its events appended. A big one: its header,
    /// its changed steps and a row of its events.
    fn flow(
        &mut self,
        f: &crate::flow::Flow,
        events: &[FlowEvent],
        steps: Option<&[(usize, crate::flow::Step)]>,
    ) -> rusqlite::Result<()> {
        let Buffers {
            body,
            events: lines,
        } = &mut *self.buffers;
        let Some(steps) = steps else {
            self.flow.execute(params![
                f.id,
                f.state.as_str(),
                f.decision_id,
                json(body, f)?,
                event_lines(lines, events)?
            ])?;
            return Ok(());
        };
        self.header.execute(params![
            f.id,
            f.state.as_str(),
            f.decision_id,
            json(body, f)?
        ])?;
        for (i, step) in steps {
            self.step
                .execute(params![f.id, *i as i64, json(body, step)?])?;
        }
        if !events.is_empty() {
            self.log
                .execute(params![f.id, event_lines(lines, events)?])?;
        }
        Ok(())
    }

    /// Events of a flow whose state did not change, appended to its row.
    fn flow_events(&mut self, events: &[FlowEvent]) -> rusqlite::Result<()> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let Buffers {
            body,
            events: lines,
        } = &mut *self.buffers;
        let appended = self
            .append_events
            .execute(params![first.flow_id, event_lines(lines, events)?])?;
        // A flow without a row (not expected): keep the events anyway.
        if appended == 0 {
            self.event.execute(params![
                first.flow_id,
                first.time.to_rfc3339(),
                json(body, events)?
            ])?;
        }
        Ok(())
    }
}

fn write_batches(
    conn: &mut Connection,
    batches: &[Batch],
    last_hash: &mut String,
    views: &mut HashSet<String>,
    buffers: &mut Buffers,
    fence: Option<&dyn super::Fence>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut session = fence.map(|_| super::fence::record(&tx)).transpose()?;
    {
        let mut rows = Rows::prepare(&tx, last_hash, views, buffers)?;
        for record in batches.iter().flat_map(|b| &b.records) {
            rows.write(record)?;
        }
    }
    if let (Some(fence), Some(session)) = (fence, session.as_mut()) {
        let commit = format!("{:016x}", rand::random::<u64>());
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![super::fence::COMMIT_KEY, commit],
        )?;
        let changeset = super::fence::changeset(session)?;
        if !changeset.is_empty() {
            // Refused: the transaction is rolled back as it is dropped.
            fence.append(&commit, &changeset).map_err(|why| {
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some(format!("the commit was not replicated: {why}")),
                )
            })?;
        }
    }
    drop(session);
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::super::{Feedback, Journal, JournalError, QuarantineState, Quarantined, read};
    use super::*;
    use serde_json::json;

    fn held(i: usize) -> Record {
        Record::Quarantine(Quarantined {
            signal_id: format!("s{i}"),
            source: "test/writer".into(),
            kind: "order.placed".into(),
            subject: format!("order/o{i}"),
            error: "panicked: test".into(),
            state: QuarantineState::Held,
            time: chrono::Utc::now(),
            actor: "signalbox".into(),
            note: String::new(),
        })
    }

    fn feedback() -> Record {
        Record::Feedback(Feedback {
            decision_id: "D1".into(),
            option: "ship".into(),
            label: 1.0,
            importance: 1.0,
            source: "outcome".into(),
            features: vec![],
            time: chrono::Utc::now(),
        })
    }

    /// Batches submitted together are committed (in one transaction or a
    /// few) and each submitter hears of it; a commit that fails says so,
    /// writes none of its batch, and the audit chain goes on from where it
    /// was, unbroken.
    #[test]
    fn batches_commit_together_and_a_failed_commit_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let commits: Vec<_> = (0..50)
            .map(|i| journal.submit(vec![held(i)]).unwrap())
            .collect();
        for c in commits {
            c.wait().unwrap();
        }
        let stats = journal.stats.lock().unwrap().clone();
        assert_eq!(stats.records, 50);
        assert!(stats.commits <= 50);

        // The feedback table goes away under the writer: its next commit fails.
        let other = Connection::open(dir.path().join(super::super::FILE_NAME)).unwrap();
        other.execute_batch("DROP TABLE feedback").unwrap();
        let failed = journal.submit(vec![held(100), feedback()]).unwrap().wait();
        match failed {
            Err(JournalError::CommitFailed { error, .. }) => {
                assert!(error.to_string().contains("feedback"), "{error}")
            }
            other => panic!("expected CommitFailed, got {other:?}"),
        }
        other.execute_batch(super::super::schema::SCHEMA).unwrap();
        journal.submit(vec![held(101)]).unwrap().wait().unwrap();
        journal.close().unwrap();

        let counts = read::counts(dir.path()).unwrap();
        assert_eq!(counts.quarantined, 51, "s100 was in the failed commit");
        assert!(counts.chain_ok, "the chain goes on from the last commit");
    }

    /// A shared view is written once, with the first decision that names
    /// it; one first named in a commit that failed is written with the next
    /// decision that names it.
    #[test]
    fn a_shared_view_is_written_once_and_again_after_a_failed_commit() {
        use crate::context::SharedView;
        use crate::decide::{PolicyInput, ViewRef};
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let signal = crate::testkit::signal(1, "ticket.opened", "customer/c1", json!({}));
        let under = |i: usize, view: &Arc<SharedView>| {
            let mut d = crate::testkit::decision(i, &signal, &[("a", 0.5)], "auto", "operator");
            d.policy_input = Some(PolicyInput {
                fields: json!({"tier": "gold"}),
                services: ViewRef::Held(Arc::clone(view)),
                changes: Some(ViewRef::Held(SharedView::no_changes())),
            });
            Record::Decision(Arc::new(d))
        };
        let up = Arc::new(SharedView::new(json!({"payments": "up"})));
        let down = Arc::new(SharedView::new(json!({"payments": "down"})));
        let submit = |records| journal.submit(records).unwrap().wait();
        submit(vec![under(1, &up), under(2, &up)]).unwrap();
        submit(vec![under(3, &up)]).unwrap();
        let other = Connection::open(dir.path().join(super::super::FILE_NAME)).unwrap();
        other.execute_batch("DROP TABLE feedback").unwrap();
        assert!(submit(vec![under(4, &down), feedback()]).is_err());
        other.execute_batch(super::super::schema::SCHEMA).unwrap();
        submit(vec![under(5, &down)]).unwrap();
        journal.close().unwrap();

        let mut stmt = other
            .prepare("SELECT version, kind, body FROM views ORDER BY body")
            .unwrap();
        let views: Vec<(String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let row = |v: &SharedView| (v.version().into(), "services".into(), v.text().into());
        assert_eq!(views, vec![row(&down), row(&up)]);
        let named = read::decision(dir.path(), "D0000005").unwrap().unwrap();
        let input = named.policy_input.expect("kept");
        assert_eq!(input.services.held(), Some(&*down));
        let counts = read::counts(dir.path()).unwrap();
        assert_eq!((counts.decisions, counts.views), (4, 2));
        assert!(counts.view_problems.is_empty() && counts.chain_ok);
    }
}
