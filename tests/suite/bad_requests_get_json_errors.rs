//! Bad requests against the real server get JSON errors naming the field,
//! and are counted in `/metrics`.

use crate::common;

use crate::common::{client, event, serve};
use serde_json::{Value, json};

#[test]
fn bad_requests_get_json_errors_naming_the_field_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &["--body-limit", "2048"]);
    let c = client();
    let post = |ct: &str, body: String| {
        c.post(format!("{}/v1/signals", s.base))
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap()
    };
    let r = post(
        "application/cloudevents+json",
        "{\"specversion\":\"1.0\",".into(),
    );
    assert_eq!(r.status(), 400);
    let v: Value = r.json().unwrap();
    assert!(v["error"].as_str().unwrap().contains("malformed"), "{v}");

    let r = post(
        "application/cloudevents+json",
        json!({"specversion": "1.0", "id": "x", "source": "s"}).to_string(),
    );
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "type");

    let r = post(
        "application/cloudevents-batch+json",
        json!([event("ok", "ticket.opened", "", json!({})), {"specversion": "1.0", "id": 5}])
            .to_string(),
    );
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "[1].id");
    assert!(
        !common::durable(&s.dir, "ok"),
        "a bad batch is refused whole"
    );

    assert_eq!(post("text/plain", "hello".into()).status(), 415);
    let big = event(
        "big",
        "ticket.opened",
        "",
        json!({"text": "x".repeat(4096)}),
    )
    .to_string();
    assert_eq!(post("application/cloudevents+json", big).status(), 413);

    let metrics = c
        .get(format!("{}/metrics", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for status in ["400", "413", "415"] {
        assert!(
            metrics.contains(&format!("endpoint=\"signals\",status=\"{status}\"")),
            "{metrics}"
        );
    }
}
