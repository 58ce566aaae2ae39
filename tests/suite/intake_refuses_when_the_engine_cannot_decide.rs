//! The intake stops acknowledging when the engine cannot decide: with the
//! journal taken by another writer, the engine's commit fails, and from
//! then on every signal gets 503 with Retry-After (never a 202 that nothing
//! will decide), and `/healthz` says why.

use crate::common;

use std::time::Duration;

use crate::common::{client, event, post_event, serve, wait_for};
use serde_json::{Value, json};

#[test]
fn a_journal_that_cannot_be_written_stops_the_202s() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let c = client();
    let first = event("s1", "ticket.opened", "customer/c0001", json!({}));
    assert_eq!(post_event(&c, &s.base, &first).status(), 202);
    common::decided(&c, &s.base, "s1");
    // Another process takes the journal's write lock and keeps it.
    let blocker = rusqlite::Connection::open(dir.path().join("signalbox.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let second = event("s2", "ticket.opened", "customer/c0002", json!({}));
    assert_eq!(post_event(&c, &s.base, &second).status(), 202);
    let mut n = 0;
    let refused = wait_for("the intake to refuse", Duration::from_secs(30), || {
        n += 1;
        let e = event(
            &format!("later{n}"),
            "ticket.opened",
            "customer/c0003",
            json!({}),
        );
        let r = post_event(&c, &s.base, &e);
        (r.status() == 503).then_some(r)
    });
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("journal"),
        "{body}"
    );
    let health = c.get(format!("{}/healthz", s.base)).send().unwrap();
    assert_eq!(health.status(), 503);
    assert!(health.headers().contains_key("retry-after"));
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    // Still refused: the engine decides again only after a restart, which
    // picks up from the journal's last cursor: s2 was acknowledged, so it
    // is decided then.
    drop(s);
    let s = serve(dir.path(), &[]);
    let v = common::settled(&c, &s.base, "s2");
    assert_eq!(v["state"], "decided", "{v}");
    assert_eq!(
        c.get(format!("{}/healthz", s.base))
            .send()
            .unwrap()
            .status(),
        200
    );
}
