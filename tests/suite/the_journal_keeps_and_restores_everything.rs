//! What the journal holds comes back whole: a restart resumes reviews,
//! flows and the model; older journals are migrated; memory stays bounded
//! while the journal keeps everything.

use crate::common;

use serde_json::json;
use signalbox::decide::Mode;
use signalbox::decide::policy::Role;
use signalbox::engine::{EngineError, Ingested};
use signalbox::journal::read;
use signalbox::review::{Action, Actor, ReviewError};
use signalbox::sim::default_start;

#[test]
fn a_restart_resumes_reviews_flows_and_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    for i in 0..30 {
        let s = common::signal(
            &format!("o-{i}"),
            "order.placed",
            &format!("order/x{i}"),
            json!({"customer": "c0001", "supplier": "baltic", "value": 100.0 + i as f64}),
        );
        engine.ingest(s, default_start());
    }
    let (reviews, flows) = (engine.reviews.open_count(), engine.flows.active_count());
    let op = Actor::new("olga", Role::Operator);
    let first = engine.open_reviews()[0].id.clone();
    engine
        .act(&first, &op, Action::Approve, "ok", default_start())
        .unwrap();
    let version = engine.model_version();
    let waiting: Vec<_> = engine.open_reviews();
    engine.close().unwrap();
    let engine = common::engine(dir.path());
    assert_eq!(engine.reviews.open_count(), reviews - 1);
    // Each item comes back whole: its decision and signal are joined back
    // from where the journal keeps them.
    let mut restored: Vec<_> = engine.open_reviews();
    restored.sort_by(|a, b| a.id.cmp(&b.id));
    let mut waiting = waiting;
    waiting.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(restored, waiting);
    assert_eq!(engine.flows.active_count(), flows);
    assert_eq!(
        engine.model_version(),
        version,
        "weights come back from checkpoint and feedback"
    );
    engine.close().unwrap();
}

#[test]
fn decided_review_items_leave_memory_beyond_the_bound_and_stay_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    engine.reviews.set_keep_decided(2);
    let lead = Actor::new("lena", Role::Lead);
    let mut ids = Vec::new();
    for i in 0..4 {
        let s = common::signal(
            &format!("ap-{i}"),
            "approval.requested",
            &format!("approval/{i}"),
            json!({"amount": 20_000.0 + f64::from(i), "known_vendor": true}),
        );
        engine.ingest(s, default_start());
        let id = engine.open_reviews()[0].id.clone();
        engine
            .act(&id, &lead, Action::Approve, "checked", default_start())
            .unwrap();
        ids.push(id);
    }
    // The two oldest left memory; all four still answer "already decided",
    // by whom (from memory, or from the journal once written).
    assert!(engine.reviews.get(&ids[0]).is_none());
    assert!(engine.reviews.get(&ids[1]).is_none());
    engine.flush().unwrap().wait().unwrap();
    for id in [&ids[0], &ids[3]] {
        let again = engine.act(id, &lead, Action::Approve, "twice", default_start());
        assert!(
            matches!(
                &again,
                Err(EngineError::Review(ReviewError::AlreadyDecided { by, .. })) if by == "lena"
            ),
            "{again:?}"
        );
    }
    engine.close().unwrap();
    // The journal has all four answers.
    assert_eq!(read::counts(dir.path()).unwrap().review_actions, 4);
}

#[test]
fn a_flow_timeline_written_over_several_flushes_reads_back_whole() {
    use signalbox::flow::FlowEventKind;
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, id) = common::engine_with_item(dir.path(), 20_000.0);
    let decision_id = engine.reviews.get(&id).unwrap().decision.id.clone();
    let lead = Actor::new("lena", Role::Lead);
    engine
        .act(&id, &lead, Action::Approve, "vendor known", default_start())
        .unwrap();
    // Each tick's changes go out in their own flush.
    let mut at = default_start();
    for _ in 0..48 {
        at += chrono::Duration::minutes(15);
        engine.tick(at);
        engine.flush().unwrap().wait().unwrap();
    }
    let flow_id = engine.reviews.get(&id).unwrap().flow_id.clone();
    let state = engine.flows.get(&flow_id).unwrap().state;
    assert!(state.is_terminal(), "{state:?}");
    engine.close().unwrap();
    let e = read::explain(dir.path(), &decision_id).unwrap().unwrap();
    let kinds: Vec<FlowEventKind> = e.flow_events.iter().map(|ev| ev.kind).collect();
    assert_eq!(kinds.first(), Some(&FlowEventKind::Created), "{kinds:?}");
    assert!(kinds.contains(&FlowEventKind::Resumed), "{kinds:?}");
    assert!(kinds.contains(&FlowEventKind::StepStarted), "{kinds:?}");
    assert!(
        matches!(
            kinds.last(),
            Some(FlowEventKind::Done | FlowEventKind::Failed | FlowEventKind::Compensated)
        ),
        "{kinds:?}"
    );
    // In time order, as they happened.
    assert!(e.flow_events.windows(2).all(|w| w[0].time <= w[1].time));
}

/// Journals before the review row kept only ids stored each item whole,
/// its decision (and that decision's snapshot of raw entity JSON) inside.
#[test]
fn a_review_row_written_whole_by_an_older_journal_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let s = common::signal(
        "o-1",
        "order.placed",
        "order/x1",
        json!({"customer": "c0001", "supplier": "baltic", "value": 100.0}),
    );
    engine.ingest(s, default_start());
    engine.flush().unwrap().wait().unwrap();
    let item = engine.open_reviews()[0].clone();
    let id = item.id.clone();
    assert!(item.decision.snapshot.contains_key("customer/c0001"));
    engine.close().unwrap();
    let path = dir.path().join(signalbox::journal::FILE_NAME);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let whole = serde_json::to_string(&item).unwrap();
    let changed = conn
        .execute("UPDATE reviews SET body = ?1 WHERE id = ?2", [&whole, &id])
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let engine = common::engine(dir.path());
    assert_eq!(engine.open_reviews(), vec![item]);
    engine.close().unwrap();
}

#[test]
fn a_journal_from_before_flow_events_moved_into_flows_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(signalbox::journal::FILE_NAME);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE flows (id TEXT PRIMARY KEY, state TEXT NOT NULL,
             decision_id TEXT NOT NULL, body TEXT NOT NULL);
         INSERT INTO flows VALUES ('F1', 'done', 'D1', '{}');
         CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO meta VALUES ('next_id', '42');",
    )
    .unwrap();
    drop(conn);
    drop(signalbox::journal::Journal::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let events: String = conn
        .query_row("SELECT events FROM flows WHERE id = 'F1'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, "", "the old row gets the new column, empty");
    // Tables of replaced rows are rebuilt keyed by id, their rows kept.
    for table in ["flows", "reviews", "entities", "meta"] {
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains("WITHOUT ROWID"), "{table}: {sql}");
    }
    let state: String = conn
        .query_row("SELECT state FROM flows WHERE id = 'F1'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "done");
    let next: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'next_id'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(next, "42");
    drop(conn);
    // Opening again finds nothing left to do.
    drop(signalbox::journal::Journal::open(dir.path()).unwrap());
}

/// A supplier delay over more open orders than `BIG_FLOW` allows inline:
/// the flow is journaled a row per step and only changed steps are written
/// at each flush; a restart mid-flow restores every step as it was, and the
/// explanation reads the whole flow and its whole timeline back.
#[test]
fn a_big_fan_out_is_journaled_by_step_and_restores_whole() {
    use signalbox::flow::FlowEventKind;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let orders = 60;
    for i in 0..orders {
        let s = common::signal(
            &format!("big-o{i}"),
            "order.placed",
            &format!("order/big{i:03}"),
            json!({"customer": "c0001", "supplier": "eastwind", "value": 900.0 + i as f64,
                   "lines": 3, "channel": "edi",
                   "promised": (default_start() + chrono::Duration::days(5)).to_rfc3339()}),
        );
        engine.ingest(s, default_start());
    }
    let delayed = common::signal(
        "big-delay",
        "supplier.delayed",
        "supplier/eastwind",
        json!({"supplier": "eastwind", "delay_hours": 48, "reason": "port closed"}),
    );
    let Ingested::Decided { decision_id, mode } = engine.ingest(delayed, default_start()) else {
        panic!("not decided")
    };
    if mode == Mode::Review {
        let item = engine
            .open_reviews()
            .into_iter()
            .find(|i| i.decision.id == decision_id)
            .map(|i| i.id.clone())
            .unwrap();
        let lead = Actor::new("lena", Role::Lead);
        let action = Action::Override {
            option: "cascade_replan".into(),
        };
        engine
            .act(&item, &lead, action, "fan out", default_start())
            .unwrap();
    }
    engine.flush().unwrap().wait().unwrap();
    let flow_id = engine
        .flows
        .flows
        .values()
        .find(|f| f.decision_id == decision_id)
        .map(|f| f.id.clone())
        .unwrap();
    let steps = engine.flows.get(&flow_id).unwrap().steps.len();
    assert!(
        steps > signalbox::flow::BIG_FLOW,
        "a fan-out over {orders} orders has {steps} steps"
    );
    let mut at = default_start();
    for _ in 0..6 {
        at += chrono::Duration::minutes(15);
        engine.tick(at);
        engine.flush().unwrap().wait().unwrap();
    }
    let before = engine.flows.get(&flow_id).unwrap().clone();
    assert!(!before.state.is_terminal(), "{:?}", before.state);
    engine.close().unwrap();

    // The flow's own row has no steps; each step has a row.
    let conn = rusqlite::Connection::open(dir.path().join(signalbox::journal::FILE_NAME)).unwrap();
    let (body_steps, rows): (i64, i64) = conn
        .query_row(
            "SELECT json_array_length(json_extract(body, '$.steps')),
                    (SELECT COUNT(*) FROM flow_steps WHERE flow_id = ?1)
             FROM flows WHERE id = ?1",
            [&flow_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((body_steps, rows), (0, before.steps.len() as i64));
    drop(conn);

    let mut engine = common::engine(dir.path());
    assert_eq!(engine.flows.get(&flow_id), Some(&before), "restored whole");
    for _ in 0..200 {
        at += chrono::Duration::minutes(15);
        engine.tick(at);
        engine.flush().unwrap().wait().unwrap();
        if engine.flows.get(&flow_id).unwrap().state.is_terminal() {
            break;
        }
    }
    let after = engine.flows.get(&flow_id).unwrap().clone();
    assert!(after.state.is_terminal(), "{:?}", after.state);
    engine.close().unwrap();

    let e = read::explain(dir.path(), &decision_id).unwrap().unwrap();
    assert_eq!(
        e.flow.as_ref(),
        Some(&after),
        "the explanation has every step"
    );
    let kinds: Vec<FlowEventKind> = e.flow_events.iter().map(|ev| ev.kind).collect();
    assert_eq!(kinds.first(), Some(&FlowEventKind::Created), "{kinds:?}");
    assert!(
        matches!(
            kinds.last(),
            Some(FlowEventKind::Done | FlowEventKind::Failed | FlowEventKind::Compensated)
        ),
        "{kinds:?}"
    );
    let started = kinds
        .iter()
        .filter(|k| **k == FlowEventKind::StepStarted)
        .count();
    // Every step that ran started (a failed flow skips the rest).
    let ran = after
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.state,
                signalbox::flow::StepState::Done | signalbox::flow::StepState::Failed
            )
        })
        .count();
    assert!(
        ran > 0 && started >= ran,
        "{started} starts, {ran} steps ran"
    );
    assert!(e.flow_events.windows(2).all(|w| w[0].time <= w[1].time));
}

/// Checkpoints run on a thread beside the writer: once the WAL passes its
/// threshold the database file takes the pages back while commits go on,
/// and nothing written is lost on the way.
#[test]
fn the_wal_is_checkpointed_beside_the_writer() {
    use signalbox::journal::{FILE_NAME, Journal, Record};
    const MIB: u64 = 1024 * 1024;

    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let value = "x".repeat(16 * 1024);
    // 48 batches of 64 rows of 16 KiB: about 48 MiB, past the 32 MiB at
    // which the checkpoint thread is woken, short of the 128 MiB at which
    // the writer would checkpoint itself.
    for batch in 0..48 {
        let records = (0..64)
            .map(|i| Record::Meta {
                key: format!("bulk-{batch:02}-{i:02}"),
                value: value.clone(),
            })
            .collect();
        journal.submit(records).unwrap().wait().unwrap();
    }
    let db = dir.path().join(FILE_NAME);
    let size = || std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    // The checkpoint runs in the background: wait for it (not a timing
    // assertion; the bound only keeps a broken build from hanging).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while size() < 24 * MIB && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        size() >= 24 * MIB,
        "the database file holds {} MiB: no checkpoint ran beside the writer",
        size() / MIB
    );
    journal.close().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM meta WHERE key LIKE 'bulk-%' AND length(value) = 16384",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 48 * 64);
}

#[test]
fn an_idle_flush_writes_nothing_to_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    engine.ingest(
        common::signal(
            "i1",
            "ticket.opened",
            "customer/c0001",
            json!({"customer": "c0001"}),
        ),
        default_start(),
    );
    engine.flush().unwrap().wait().unwrap();
    let wal = dir.path().join("signalbox.db-wal");
    let before = std::fs::metadata(&wal).unwrap().len();
    for _ in 0..5 {
        // The same instant: no timer is due, nothing changes.
        engine.tick(default_start());
        engine.flush().unwrap().wait().unwrap();
    }
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), before);
    assert_eq!(read::counts(dir.path()).unwrap().signals, 1);
}
