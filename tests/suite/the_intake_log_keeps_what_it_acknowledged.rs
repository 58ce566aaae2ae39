//! The intake log on a real SQLite file: order, the engine's cursor across
//! restarts, a replaced log, deletion of what was decided, the backlog
//! limit.

use std::path::Path;

use chrono::Utc;
use serde_json::json;
use signalbox::intake::log::{IntakeLog, LogReader, Refused};
use signalbox::signal::Signal;

fn signal(id: &str) -> Signal {
    Signal::from_value(
        json!({"specversion": "1.0", "id": id, "source": "test", "type": "ticket.opened",
               "subject": "customer/c0001", "data": {"customer": "c0001"}}),
        Utc::now(),
    )
    .unwrap()
}

/// Appends and waits until the signals are durable.
fn append(log: &IntakeLog, ids: &[&str]) {
    let signals: Vec<Signal> = ids.iter().map(|id| signal(id)).collect();
    log.append(&signals)
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
}

fn ids(reader: &mut LogReader, max: usize) -> Vec<String> {
    reader
        .read(max)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect()
}

/// Closes the log as a stopping process does; the reader's cursor, as the
/// journal would have it.
fn close(log: IntakeLog, writer: std::thread::JoinHandle<()>, reader: LogReader) -> String {
    let cursor = reader.cursor();
    drop(reader);
    drop(log);
    writer.join().unwrap();
    cursor
}

fn rows(dir: &Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(dir.join("intake.db")).unwrap();
    let mut stmt = conn.prepare("SELECT seq FROM intake ORDER BY seq").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// As a later deletion of decided rows leaves the log.
fn delete_every_row(dir: &Path) {
    rusqlite::Connection::open(dir.join("intake.db"))
        .unwrap()
        .execute("DELETE FROM intake", [])
        .unwrap();
}

#[test]
fn the_engine_resumes_after_its_cursor_and_reads_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cursor = {
        let (log, writer) = IntakeLog::open(dir.path()).unwrap();
        append(&log, &["a", "b"]);
        append(&log, &["c"]);
        let mut reader = log.reader(None).unwrap();
        assert!(reader.pending());
        assert_eq!(ids(&mut reader, 2), ["a", "b"]);
        assert_eq!(reader.position(), 2);
        // The journal keeps which signal was read at the cursor.
        assert_eq!(reader.signal_at_cursor(), Some(signal("b").identity()));
        reader.seek(1);
        assert_eq!(reader.signal_at_cursor(), None, "a was not the last read");
        reader.seek(2);
        let cursor = close(log, writer, reader);
        assert!(cursor.ends_with(":2"), "{cursor}");
        cursor
    };
    // Restarted: the journal says the engine took up to b.
    let (log, _writer) = IntakeLog::open(dir.path()).unwrap();
    let mut reader = log.reader(Some(&cursor)).unwrap();
    assert_eq!(log.backlog(), 1, "c is acknowledged and not decided");
    append(&log, &["d"]);
    assert_eq!(ids(&mut reader, 10), ["c", "d"]);
    assert!(!reader.pending());
    assert!(ids(&mut reader, 10).is_empty());
}

#[test]
fn a_replaced_log_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let cursor = {
        let (log, writer) = IntakeLog::open(dir.path()).unwrap();
        append(&log, &["a", "b", "c"]);
        let mut reader = log.reader(None).unwrap();
        assert_eq!(ids(&mut reader, 10).len(), 3);
        close(log, writer, reader)
    };
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("intake.db{suffix}")));
    }
    // A fresh file has another id: the old cursor (at 3) does not apply.
    let (log, _writer) = IntakeLog::open(dir.path()).unwrap();
    append(&log, &["x"]);
    let mut reader = log.reader(Some(&cursor)).unwrap();
    assert_eq!(ids(&mut reader, 10), ["x"]);
}

#[test]
fn decided_rows_are_deleted_and_their_numbers_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..5000).map(|i| format!("s{i}")).collect();
    let cursor = {
        let (log, writer) = IntakeLog::open(dir.path()).unwrap();
        for chunk in names.chunks(500) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            append(&log, &chunk);
        }
        let mut reader = log.reader(None).unwrap();
        let mut read = 0;
        while reader.pending() {
            read += ids(&mut reader, 512).len();
        }
        assert_eq!(read, 5000);
        // The journal has committed the decisions of all 5,000.
        reader.progress().decided(reader.position());
        assert_eq!(log.backlog(), 0);
        // The next commit deletes them.
        append(&log, &["after"]);
        assert_eq!(rows(dir.path()), [5001]);
        assert_eq!(ids(&mut reader, 10), ["after"]);
        reader.progress().decided(reader.position());
        close(log, writer, reader)
    };
    let (log, _writer) = IntakeLog::open(dir.path()).unwrap();
    let mut reader = log.reader(Some(&cursor)).unwrap();
    append(&log, &["later"]);
    assert_eq!(ids(&mut reader, 10), ["later"]);
    assert_eq!(reader.position(), 5002, "numbers go on after deleted rows");
}

#[test]
fn appends_are_refused_while_the_backlog_is_at_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _writer) = IntakeLog::open_with(dir.path(), 3).unwrap();
    let mut reader = log.reader(None).unwrap();
    append(&log, &["a", "b", "c"]);
    match log.append(&[signal("d")]) {
        Err(Refused::Full { backlog }) => assert_eq!(backlog, 3),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // Read is not decided: only a durable journal commit frees room.
    assert_eq!(ids(&mut reader, 10).len(), 3);
    assert!(log.append(&[signal("d")]).is_err());
    reader.progress().decided(2);
    append(&log, &["d"]);
    assert_eq!(ids(&mut reader, 10), ["d"]);
}

#[test]
fn a_reader_below_rows_already_deleted_moves_past_them() {
    // The journal was replaced while intake.db was kept: its rows were
    // decided (and deleted) by the old journal; the new one starts with no
    // cursor and must not wait for them forever.
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..4200).map(|i| format!("s{i}")).collect();
    {
        let (log, writer) = IntakeLog::open(dir.path()).unwrap();
        let chunk: Vec<&str> = names.iter().map(String::as_str).collect();
        append(&log, &chunk);
        let mut reader = log.reader(None).unwrap();
        while reader.pending() {
            ids(&mut reader, 1000);
        }
        reader.progress().decided(reader.position());
        append(&log, &["last"]);
        ids(&mut reader, 10);
        close(log, writer, reader);
    }
    assert_eq!(rows(dir.path()), [4201]);
    // The last row went too, at a later deletion.
    delete_every_row(dir.path());
    let (log, _writer) = IntakeLog::open(dir.path()).unwrap();
    let mut reader = log.reader(None).unwrap();
    assert!(reader.pending());
    assert!(ids(&mut reader, 10).is_empty());
    assert!(!reader.pending(), "past the deleted rows");
    assert_eq!(reader.position(), 4201);
    append(&log, &["new"]);
    assert_eq!(ids(&mut reader, 10), ["new"]);
}

#[test]
fn a_halted_engine_stops_the_log_taking_and_forgetting() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _writer) = IntakeLog::open(dir.path()).unwrap();
    let mut reader = log.reader(None).unwrap();
    let names: Vec<String> = (0..4100).map(|i| format!("s{i}")).collect();
    let chunk: Vec<&str> = names.iter().map(String::as_str).collect();
    append(&log, &chunk);
    while reader.pending() {
        ids(&mut reader, 1000);
    }
    // The journal commit of what was read failed.
    reader
        .progress()
        .halt("journal commit failed: disk I/O error");
    match log.append(&[signal("after")]) {
        Err(Refused::Halted(why)) => assert!(why.contains("disk I/O error"), "{why}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // A later success does not move the position the log may delete to.
    reader.progress().decided(4100);
    assert_eq!(log.backlog(), 4100);
    assert!(!reader.pending());
    assert_eq!(rows(dir.path()).len(), 4100, "nothing deleted");
}

#[test]
fn a_log_made_with_autoincrement_goes_on_from_its_sequence() {
    // Logs made before the writer numbered rows itself kept the highest
    // number in sqlite_sequence only, once their rows were deleted.
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("intake.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
             INSERT INTO meta VALUES ('log_id', '00000000000000aa');
             CREATE TABLE intake (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
             INSERT INTO intake (seq, body) VALUES (41, '{}');
             DELETE FROM intake;",
        )
        .unwrap();
    }
    let (log, writer) = IntakeLog::open(dir.path()).unwrap();
    let mut reader = log.reader(Some("00000000000000aa:41")).unwrap();
    append(&log, &["next"]);
    assert_eq!(ids(&mut reader, 10), ["next"]);
    assert_eq!(reader.position(), 42);
    // Decided and deleted: a restart goes on from 43 all the same.
    reader.progress().decided(42);
    let names: Vec<String> = (0..4100).map(|i| format!("s{i}")).collect();
    let chunk: Vec<&str> = names.iter().map(String::as_str).collect();
    append(&log, &chunk);
    while reader.pending() {
        ids(&mut reader, 1000);
    }
    reader.progress().decided(reader.position());
    append(&log, &["last"]);
    ids(&mut reader, 10);
    let cursor = close(log, writer, reader);
    assert_eq!(rows(dir.path()), [4143]);
    delete_every_row(dir.path());
    let (log, _writer) = IntakeLog::open(dir.path()).unwrap();
    let mut reader = log.reader(Some(&cursor)).unwrap();
    append(&log, &["after"]);
    assert_eq!(ids(&mut reader, 10), ["after"]);
    assert_eq!(reader.position(), 4144);
}

/// No append is acknowledged that nothing will decide: once the engine's
/// reader is gone (its thread ended, however), or the engine has been
/// silent past the limit, appends are refused; they are taken again when
/// a stuck engine comes round.
#[test]
fn appends_are_refused_while_the_engine_is_stuck_or_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _writer) = IntakeLog::open(dir.path()).unwrap();
    log.set_stuck_after(std::time::Duration::from_millis(200));
    let reader = log.reader(None).unwrap();
    append(&log, &["a"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let refused = log.append(&[signal("b")]).unwrap_err();
    assert!(matches!(refused, Refused::Stuck(_)), "{refused:?}");
    assert!(log.unavailable().unwrap().contains("not come round"));
    reader.beat();
    append(&log, &["c"]);
    assert_eq!(log.unavailable(), None);
    drop(reader);
    let refused = log.append(&[signal("d")]).unwrap_err();
    assert!(
        matches!(&refused, Refused::Halted(why) if why.contains("stopped")),
        "{refused:?}"
    );
}
