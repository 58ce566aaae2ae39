//! An explanation checks its record's place in the audit chain from the
//! checkpoint before it to the one after, whatever the journal's length:
//! tampering there is caught, tampering elsewhere is left to `check`,
//! which reads the whole chain one record at a time.

use crate::common;

use chrono::{DateTime, Utc};

use signalbox::engine::Ingested;
use signalbox::journal::{chain, read};
use signalbox::signal::Signal;
use signalbox::sim::default_start;

fn start() -> DateTime<Utc> {
    default_start()
}

fn tamper(dir: &std::path::Path, seq: i64) {
    let conn = rusqlite::Connection::open(dir.join("signalbox.db")).unwrap();
    let changed = conn
        .execute(
            "UPDATE audit SET body = replace(body, '\"confidence\"', '\"confidence_\"') WHERE seq = ?1",
            [seq],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

fn seq_of(dir: &std::path::Path, decision: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("signalbox.db")).unwrap();
    conn.query_row(
        "SELECT seq FROM audit WHERE kind = 'decision' AND ref_id = ?1",
        [decision],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn an_explanation_checks_its_segment_and_check_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = common::engine(dir.path());
    let mut decisions = Vec::new();
    for i in 0..(3 * chain::MARK_EVERY + 10) {
        let s = Signal {
            id: format!("t{i}"),
            source: "test".into(),
            kind: "ticket.opened".into(),
            subject: format!("customer/c{:04}", i % 50 + 1),
            time: start(),
            ..Signal::default()
        };
        if let Ingested::Decided { decision_id, .. } = engine.ingest(s, start()) {
            decisions.push(decision_id);
        }
    }
    engine.close().unwrap();
    let middle = &decisions[decisions.len() / 2];
    let e = read::explain(dir.path(), middle).unwrap().unwrap();
    assert!(e.chain.result.is_ok(), "{:?}", e.chain);
    let seq = seq_of(dir.path(), middle);
    assert!(
        e.chain.from <= seq && seq <= e.chain.to,
        "{:?} for {seq}",
        e.chain
    );
    assert!(
        e.chain.to - e.chain.from < chain::MARK_EVERY,
        "{:?}",
        e.chain
    );

    // Tampering in another segment: this record still stands, the whole
    // chain does not.
    tamper(dir.path(), seq_of(dir.path(), &decisions[3]));
    let e = read::explain(dir.path(), middle).unwrap().unwrap();
    assert!(e.chain.result.is_ok());
    assert!(!read::counts(dir.path()).unwrap().chain_ok);
    // Tampering in its own segment is caught.
    tamper(dir.path(), seq + 1);
    let e = read::explain(dir.path(), middle).unwrap().unwrap();
    let broken = e.chain.result.unwrap_err();
    assert_eq!(broken.seq, seq + 1);

    // A journal from before checkpoints gets them at its next opening.
    let fresh = tempfile::tempdir().unwrap();
    let mut engine = common::engine(fresh.path());
    for i in 0..(2 * chain::MARK_EVERY) {
        let s = Signal {
            id: format!("u{i}"),
            source: "test".into(),
            kind: "ticket.opened".into(),
            subject: "customer/c0001".into(),
            time: start(),
            ..Signal::default()
        };
        engine.ingest(s, start());
    }
    engine.close().unwrap();
    let marks = |dir: &std::path::Path| -> i64 {
        rusqlite::Connection::open(dir.join("signalbox.db"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM chain_marks", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(marks(fresh.path()), 2);
    rusqlite::Connection::open(fresh.path().join("signalbox.db"))
        .unwrap()
        .execute("DELETE FROM chain_marks", [])
        .unwrap();
    common::engine(fresh.path()).close().unwrap();
    assert_eq!(marks(fresh.path()), 2);
    assert!(read::counts(fresh.path()).unwrap().chain_ok);
}
